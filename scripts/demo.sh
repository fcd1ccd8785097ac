#!/usr/bin/env bash
# A tour of graphwarden doing its job, offline: a simulated Meta Graph API, an encrypted
# inventory on the embedded SQLite default, inspection with `debug_token`, and what happens when
# a password changes and time passes. Everything runs on loopback and is cleaned up at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --release -p graphwarden
BIN=target/release/graphwarden
WORK=$(mktemp -d)
DATA=$WORK/graphwarden
SIM_PID=""
cleanup() {
  if [ -n "$SIM_PID" ]; then kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
gw() { echo "\$ graphwarden $*" >&2; "$BIN" --data-dir "$DATA" "$@"; }
json_get() { python3 -c "import json,sys; d=json.load(open('$WORK/sim.json')); print($1)"; }

say "Start a simulated Meta Graph API (graphwarden sim) on loopback"
"$BIN" sim --listen 127.0.0.1:0 --control --json > "$WORK/sim.json" 2>"$WORK/sim.log" &
SIM_PID=$!
for _ in $(seq 1 50); do [ -s "$WORK/sim.json" ] && break; sleep 0.1; done
SIM=$(json_get "d['url']")
APP_ID=$(json_get "d['apps'][0]['id']")
APP_SECRET=$(json_get "d['apps'][0]['secret']")
tok() { json_get "[t['token'] for t in d['tokens'] if t['label']=='$1'][0]"; }
echo "simulator at $SIM, app $APP_ID"
export GRAPHWARDEN_GRAPH_URL=$SIM

say "Set up graphwarden and register the app"
gw init
echo "$APP_SECRET" | gw app add "$APP_ID" --name "Acme Ads" --approved

say "Store tokens: each is inspected at once, and its kind comes from Meta"
tok ana-long-lived | gw token add ana --app "$APP_ID" --owner ana@example.com \
  --purpose "nightly insights export" --scopes-needed ads_read,ads_management --tag client:acme
tok acme-page | gw token add acme-page --app "$APP_ID" --parent ana --owner ana@example.com --tag client:acme
tok bot-60-days | gw token add etl-bot --app "$APP_ID" --kind system_user --owner data-team
tok ana-short-lived | gw token add ana-short --app "$APP_ID" --owner ana@example.com
echo "(the same token twice is refused, naming the alias that holds it:)"
tok ana-long-lived | gw token add duplicate --app "$APP_ID" || true

say "The inventory"
gw token list

say "Inspect everything (exit code 0 fine, 1 warning, 2 critical)"
code=0; gw check || code=$?; echo "exit code: $code"

say "The weekly security audit: findings with evidence and the action to take (exit 2: critical or high)"
code=0; gw audit || code=$?; echo "exit code: $code"
gw audit --last --format html --output "$WORK/audit.html" >/dev/null || true
echo "The same audit as one self-contained HTML page: $(wc -c < "$WORK/audit.html") bytes (removed with the demo)."

say "Ana changes her Facebook password"
# Ana is user 100000000000101 in the simulator's default world (docs/simulator.md).
curl -s -X POST "$SIM/__sim/events/password_change" -d '{"user_id":"100000000000101"}' >/dev/null
code=0; gw check || code=$?; echo "exit code: $code"

say "Two months pass"
curl -s -X POST "$SIM/__sim/clock" -d '{"advance":"61d"}' >/dev/null
code=0; gw check etl-bot --json > "$WORK/check.json" || code=$?
python3 -c "import json,sys; [print(r['alias'], r['status'], '-', r['action']) for r in json.load(open('$WORK/check.json'))]"
echo "exit code: $code"

say "What happened to ana, from the append-only event log"
gw token events ana

say "Encryption at rest"
gw key rotate
for label in ana-long-lived acme-page bot-60-days; do
  if grep -qF "$(tok $label)" "$DATA"/graphwarden.db*; then echo "FAIL: a token is stored in the clear" >&2; exit 1; fi
done
if grep -qF "$APP_SECRET" "$DATA"/graphwarden.db*; then echo "FAIL: the app secret is stored in the clear" >&2; exit 1; fi
echo "Checked: no token and no app secret appears in the database files in the clear."

say "The event log is hash-chained: any edited or deleted row is found"
gw events verify
echo "Was Ana's leaked token ever stored here? (asked by fingerprint; the log never holds it)"
tok ana-long-lived | gw events find --token - | head -3
