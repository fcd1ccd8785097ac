#!/usr/bin/env bash
# Set up the Python oracles the simulator's tests drive: a virtualenv at .venv (repo root) with
# Meta's official Python business SDK, `facebook-business`, at a pinned version. Idempotent: a
# second run with everything in place does nothing and prints nothing.
#
# The test `crates/graphwarden-sim/tests/it/python_sdk.rs` uses .venv/bin/python; without it
# the test is SKIPPED (and fails when CI is set).
set -euo pipefail
cd "$(dirname "$0")/.."

FACEBOOK_BUSINESS_VERSION="26.0.3"
VENV=".venv"
PY="$VENV/bin/python"

die() {
  echo "python-oracles: ERROR: $*" >&2
  exit 1
}

command -v python3 >/dev/null 2>&1 || die "python3 is not installed (install Python 3.9 or later)"

# A venv whose interpreter went away (python upgraded, pyenv version removed) is rebuilt.
if [ -e "$PY" ] && ! "$PY" -c 'import sys' >/dev/null 2>&1; then
  echo "python-oracles: $VENV is broken (its interpreter no longer runs); recreating it" >&2
  rm -rf "$VENV"
fi

if [ ! -x "$PY" ]; then
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    # Debian and Ubuntu ship venv/ensurepip separately.
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      echo "python-oracles: installing python3-venv" >&2
      apt-get update -qq >/dev/null || die "apt-get update failed"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
        || die "apt-get install python3-venv failed"
    else
      die "python3 lacks the venv/ensurepip modules: install python3-venv (Debian/Ubuntu) and rerun"
    fi
  fi
  rm -rf "$VENV"
  python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
fi

installed=$("$PY" -m pip show facebook-business 2>/dev/null | sed -n 's/^Version: //p' || true)
if [ "$installed" != "$FACEBOOK_BUSINESS_VERSION" ]; then
  "$PY" -m pip install --quiet --disable-pip-version-check \
    "facebook-business==$FACEBOOK_BUSINESS_VERSION" \
    || die "pip install facebook-business==$FACEBOOK_BUSINESS_VERSION failed (network? index?)"
fi

"$PY" -c 'import facebook_business' >/dev/null 2>&1 \
  || die "facebook_business does not import from $PY"
