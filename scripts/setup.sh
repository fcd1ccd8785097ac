#!/usr/bin/env bash
# Install what a fresh machine lacks to build and test graphwarden. Safe to run again.
#  - the pinned Rust toolchain's rustfmt and clippy (rust-toolchain.toml)
#  - cargo-nextest, when missing (from crates.io)
#  - PostgreSQL, when missing (Debian packages), for the PostgreSQL half of the suite
#  - Debian's prometheus-alertmanager and python3-aiosmtpd (an SMTP sink), when missing, which the
#    graphwarden-notify tests start and deliver to, and Debian's prometheus, which the server
#    tests start to scrape /metrics
#  - Debian's chromium and the one npm package (playwright-core, tests/browser/package-lock.json)
#    that drives it through the dashboard in the browser test
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed; install Rust (https://rustup.rs) first" >&2
  exit 69
fi

# rustup installs the components rust-toolchain.toml names on first use; make it explicit.
if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

if ! command -v pg_ctlcluster >/dev/null 2>&1 && [ "${GRAPHWARDEN_SKIP_POSTGRES:-}" != "1" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    log "installing PostgreSQL"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
  else
    log "PostgreSQL is not installed and apt-get is not available: the PostgreSQL tests will be skipped"
  fi
fi

# The real receivers the graphwarden-notify tests deliver to (design.md §5). Debian's aiosmtpd
# installs for Debian's /usr/bin/python3, which the tests run, not for a pyenv `python3` on PATH.
notify_pkgs=()
[ -x /usr/bin/prometheus-alertmanager ] || notify_pkgs+=(prometheus-alertmanager)
# Prometheus itself scrapes the daemon's /metrics in the server tests.
[ -x /usr/bin/prometheus ] || notify_pkgs+=(prometheus)
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || notify_pkgs+=(python3-aiosmtpd)
if [ "${#notify_pkgs[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    log "installing ${notify_pkgs[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${notify_pkgs[@]}" >/dev/null
  else
    log "${notify_pkgs[*]} not installed and apt-get is not available: the graphwarden-notify tests will fail"
  fi
fi

# The dashboard's browser test: Debian's Chromium (design.md §5), driven by playwright-core from
# npm with /usr/bin/chromium (no browser download).
if [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1; then
    log "installing chromium"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  else
    log "chromium is not installed and apt-get is not available: the browser test will fail"
  fi
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  if command -v npm >/dev/null 2>&1; then
    log "installing playwright-core for the browser test"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/browser --no-audit --no-fund --silent
  else
    log "npm is not installed: the browser test will fail"
  fi
fi
