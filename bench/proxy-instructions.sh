#!/usr/bin/env bash
# Instructions per proxied call, under callgrind: the floor (examples/bare_proxy.rs) and
# graphwarden's proxy with recording off, in front of the same nginx stub as bench/proxy.sh.
#
# Why: on a shared 2-core VM the CPU time of the same binary moves by ±15 % between runs, so
# bench/proxy.sh cannot show a change smaller than that. The number of instructions a call
# executes in user space does not depend on the machine's speed. (System calls are not
# counted; `perf stat -e 'syscalls:sys_enter_*'` on each proxy at -c64 shows the same for
# both, 2 sendto, 2 recvfrom and 0.14 epoll_wait per call: BENCHMARKS.md, run 16.) Recording on is not measured: under valgrind the writer's
# batches hold a few rows instead of hundreds, which says nothing about the real cost.
#
# Method: each proxy runs under `valgrind --tool=callgrind`; `wrk -t1 -c$CONNS` warms it up for
# 2 s, `callgrind_control -z` zeroes the counts, `wrk` runs DURATION s, `callgrind_control -d`
# dumps; the dump's total over the requests wrk counted is the figure. About a minute.
#
# Knobs: DURATION (8), CONNS (4), GW_BINARY / BARE_BINARY (measure these instead of building
# the tree), KEEP_DUMPS (a directory to copy the callgrind dumps into, for callgrind_annotate),
# PATH_QUERY (the call, bench/lib.sh's by default; a real token is ~200 characters, the default's
# 11), INJECT (1 = also measure a call made with a stored token, see the end). Prints "floor N",
# "gw-off N" and their difference, in instructions per request.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
DURATION=${DURATION:-8}
CONNS=${CONNS:-4}
PATH_QUERY=${PATH_QUERY:-$BENCH_PATH_QUERY}
need valgrind valgrind
need wrk wrk
need nginx nginx-light
need curl curl
need python3 python3
binaries

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    sleep 1
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n "${KEEP_DUMPS:-}" ]]; then
        mkdir -p "$KEEP_DUMPS" && cp "$WORK"/cg.* "$KEEP_DUMPS"/ 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
STUB_PORT=$(free_port)
stub_conf "$WORK/stub" "$STUB_PORT"
start_nginx "$WORK/stub"
PIDS+=("$NGINX_PID")
STUB_URL=http://127.0.0.1:$STUB_PORT
wait_http "$STUB_URL/" || { cat "$WORK/stub/out" "$WORK/stub/error.log" >&2; echo "the stub did not start" >&2; exit 1; }

# measure NAME URL PID [QUERY [HEADER-ARGS...]] → instructions per request (HEADER-ARGS:
# `-H "Name: value"` pairs, given to curl and wrk alike)
measure() {
    local name=$1 url=$2 pid=$3 query=${4:-$PATH_QUERY} out reqs total dump
    shift $(($# < 4 ? $# : 4))
    for _ in $(seq 600); do curl -sf -o /dev/null --max-time 5 "$@" "$url$query" && break; sleep 0.2; done
    wrk -t1 -c"$CONNS" -d2s "$@" "$url$query" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" "$@" "$url$query")
    callgrind_control -d "$pid" >/dev/null 2>&1
    sleep 2
    grep -q 'Non-2xx' <<<"$out" && { echo "$name: some calls were not answered 200" >&2; exit 1; }
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    dump=$(ls "$WORK/cg.$name".*.1 2>/dev/null | head -1)
    [[ -n "$dump" && "$reqs" -gt 0 ]] || { echo "$name: no callgrind dump or no requests" >&2; exit 1; }
    total=$(awk '/^summary:/ {print $2}' "$dump")
    awk -v t="$total" -v r="$reqs" 'BEGIN {printf "%.0f\n", t / r}'
}

BARE_PORT=$(free_port)
valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.floor.%p" \
    "$BARE_BINARY" "127.0.0.1:$BARE_PORT" "$STUB_URL" 2 >"$WORK/bare.out" 2>"$WORK/bare.err" &
BARE_PID=$!
PIDS+=("$BARE_PID")
FLOOR=$(measure floor "http://127.0.0.1:$BARE_PORT" "$BARE_PID")
kill "$BARE_PID"

start_graphwarden "$GW_BINARY" "$WORK/gw" "$STUB_URL" false \
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.gw-off.%p" || exit 1
PIDS+=("$GW_PID")
GW_URL=$(graphwarden_url "$WORK/gw" "$GW_PID" 1200) || exit 1
GW=$(measure gw-off "$GW_URL" "$GW_PID")
echo "floor  $FLOOR instructions/request"
echo "gw-off $GW instructions/request"
echo "own    $((GW - FLOOR)) instructions/request (gw-off minus the floor)"

# INJECT=1: also a call made with a stored token (200 characters), asked for by a consumer key
# and an alias (`X-Graphwarden-Key`, `X-Graphwarden-Token`), recording off: the proxy adds the
# token and its proof, reads the JSON answer whole and searches it for the token.
if [[ "${INJECT:-0}" == 1 ]]; then
    kill "$GW_PID" 2>/dev/null || true
    KEY=$(inject_setup "$GW_BINARY" "$WORK/inject" "$STUB_URL") && [[ "$KEY" == gwk_* ]] ||
        { echo "could not set up a stored token and its key" >&2; exit 1; }
    start_graphwarden "$GW_BINARY" "$WORK/inject" "$STUB_URL" false \
        valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.gw-inject.%p" || exit 1
    PIDS+=("$GW_PID")
    INJ_URL=$(graphwarden_url "$WORK/inject" "$GW_PID" 1200) || exit 1
    INJ=$(measure gw-inject "$INJ_URL" "$GW_PID" "/v26.0/me?fields=id,name" \
        -H "X-Graphwarden-Key: $KEY" -H "X-Graphwarden-Token: bench")
    echo "gw-inject $INJ instructions/request (a stored token injected: $((INJ - GW)) over gw-off)"
fi
