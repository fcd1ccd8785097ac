#!/usr/bin/env bash
# Start the machine's PostgreSQL cluster when it is not running, and print a URL tests can use
# (trust or peer auth as the `postgres` role). Prints nothing and exits 1 when there is none.
set -uo pipefail

url="${GRAPHWARDEN_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

ready() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }

if command -v pg_isready >/dev/null 2>&1 && ! ready; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    for version in $(ls /etc/postgresql 2>/dev/null); do
      echo "==> starting PostgreSQL $version" >&2
      pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 2>&1 || true
    done
  fi
  for _ in $(seq 1 30); do ready && break; sleep 1; done
fi

if command -v pg_isready >/dev/null 2>&1 && ready; then
  # Local clusters installed from Debian use peer auth on TCP for `postgres` only when told
  # to; make sure a password-less local TCP login works for the tests.
  if ! psql "$url" -Atqc 'select 1' >/dev/null 2>&1; then
    echo "==> PostgreSQL is up but $url refuses the tests; set GRAPHWARDEN_TEST_DATABASE_URL" >&2
    exit 1
  fi
  echo "$url"
  exit 0
fi
exit 1
