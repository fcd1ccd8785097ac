#!/usr/bin/env bash
# Run the whole test suite: every crate, on SQLite, and on PostgreSQL when one is reachable
# (GRAPHWARDEN_TEST_DATABASE_URL, else the machine's cluster, started if needed).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/python-oracles.sh

if [ -z "${GRAPHWARDEN_TEST_DATABASE_URL:-}" ]; then
  if url=$(scripts/start-postgres.sh); then
    export GRAPHWARDEN_TEST_DATABASE_URL="$url"
  else
    echo "NOTE: no PostgreSQL reachable: the PostgreSQL half of the suite will be SKIPPED" >&2
  fi
fi
echo "==> PostgreSQL for tests: ${GRAPHWARDEN_TEST_DATABASE_URL:-none}" >&2

cargo nextest run --workspace --no-fail-fast "$@"
