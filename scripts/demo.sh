#!/usr/bin/env bash
# A short tour of graphwarden on the embedded SQLite default, in a throwaway data directory.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --release -p graphwarden
gw() { echo "\$ graphwarden $*" >&2; target/release/graphwarden --data-dir "$DATA" "$@"; }

DATA=$(mktemp -d)/graphwarden
trap 'rm -rf "$(dirname "$DATA")"' EXIT

# Demo credentials: the shape of Meta's, not real ones.
APP_ID=1234567890
APP_SECRET=0123456789abcdef0123456789abcdef
USER_TOKEN="EAAB$(head -c 60 /dev/urandom | od -An -tx1 | tr -d ' \n')ZDZD"
PAGE_TOKEN="EAAB$(head -c 60 /dev/urandom | od -An -tx1 | tr -d ' \n')ZDZD"

echo; gw init
echo; echo "$APP_SECRET" | gw app add "$APP_ID" --name "Acme Ads" --approved
echo; echo "$USER_TOKEN" | gw token add acme-user --app "$APP_ID" --owner ana@example.com \
  --requested-by "growth team" --purpose "nightly insights export" \
  --scopes-needed ads_read,ads_management --tag client:acme --user-id 100001
echo; echo "$PAGE_TOKEN" | gw token add acme-page --app "$APP_ID" --kind page --parent acme-user \
  --page-id 200002 --owner ana@example.com --tag client:acme
echo "(the same token twice is refused, naming the alias that holds it:)"
echo "$USER_TOKEN" | gw token add duplicate --app "$APP_ID" || true
echo; gw token list
echo; gw token list --tag client:acme --json | head -n 12; echo "  …"
echo; gw token show acme-page
echo; gw token events acme-user
echo; gw key rotate
echo; gw key status

echo
if grep -qF "$USER_TOKEN" "$DATA"/graphwarden.db* || grep -qF "$APP_SECRET" "$DATA"/graphwarden.db*; then
  echo "FAIL: a secret is stored in the clear" >&2
  exit 1
fi
echo "Checked: neither token nor the app secret appears in the database files in the clear."
echo; gw token reveal acme-user --yes --reason "demo" >/dev/null
echo "(token reveal printed the token and recorded who asked:)"
gw token events acme-user
