#!/usr/bin/env bash
# A/B of proxy builds: CPU µs per request of two or more binaries, in interleaved runs against
# one upstream stub, so that the drift of this shared VM hits every candidate alike.
#
#   bench/proxy-ab.sh BINARY_A BINARY_B [...]          graphwarden binaries (`serve --proxy-listen`)
#   BARE=1 bench/proxy-ab.sh BARE_A BARE_B [...]       examples/bare_proxy builds (the floor)
#
# Why: between two runs of bench/proxy.sh the same binary's ratio to nginx moves by up to ±8 %
# on this VM, more than most single changes. Paired runs minutes apart, the order rotating each
# round, show a change of 2–3 % when most pairs agree. Compare pairs, not the extremes.
#
# The stub is bench/lib.sh's, as in bench/proxy.sh (nginx-light, 2 workers, `reuseport`, `{"id":"1","name":"bench"}`
# with usage headers at low percentages); every run is `wrk -t2 -c$CONNS -d$DURATION`s against
# `GET /v26.0/me?access_token=EAAbench123` (a token no inventory knows: passed through). CPU per
# request is the proxy process's utime+stime delta over the requests wrk counted (printed also
# as user+system, apart).
#
# Knobs: ROUNDS (6), DURATION (6), CONNS (64), REC (false: graphwarden's `proxy.record`), BARE
# (0), PATH_QUERY (the call; bench/lib.sh's by default). About ROUNDS × binaries × (DURATION + 1) s. Loopback only; stops only what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-6}
CONNS=${CONNS:-64}
REC=${REC:-false}
BARE=${BARE:-0}
PATH_QUERY=${PATH_QUERY:-$BENCH_PATH_QUERY}
(($# >= 2)) || { sed -n '2,18p' "$0" >&2; exit 2; }
need wrk wrk
need nginx nginx-light
need curl curl
need python3 python3

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

STUB_PORT=$(free_port)
stub_conf "$WORK/stub" "$STUB_PORT"
start_nginx "$WORK/stub"
PIDS+=("$NGINX_PID")
STUB_URL="http://127.0.0.1:$STUB_PORT"
wait_http "$STUB_URL/" || { cat "$WORK/stub/out" "$WORK/stub/error.log" >&2; echo "the stub did not start" >&2; exit 1; }

declare -a URL PID NAME
n=0
for bin in "$@"; do
    dir="$WORK/c$n"
    mkdir -p "$dir"
    cp "$bin" "$dir/bin" # a copy: a rebuild cannot swap it mid-run
    if [[ "$BARE" == 1 ]]; then
        "$dir/bin" 127.0.0.1:0 "$STUB_URL" 2 >"$dir/out" 2>"$dir/err" &
        PID[n]=$!
        PIDS+=("${PID[n]}")
        url=""
        for _ in $(seq 300); do
            url=$(grep -o 'http://[0-9.:]*' "$dir/out" 2>/dev/null || true)
            [[ -n "$url" ]] && break
            kill -0 "${PID[n]}" 2>/dev/null || { cat "$dir/err" >&2; echo "$bin exited" >&2; exit 1; }
            sleep 0.1
        done
        [[ -n "$url" ]] || { echo "$bin: no proxy address" >&2; exit 1; }
    else
        start_graphwarden "$dir/bin" "$dir" "$STUB_URL" "$REC" || exit 1
        PID[n]=$GW_PID
        PIDS+=("$GW_PID")
        url=$(graphwarden_url "$dir" "$GW_PID") || exit 1
    fi
    NAME[n]=$bin
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "$url$PATH_QUERY")" == 200 ]] ||
        { echo "$bin does not answer 200" >&2; exit 1; }
    URL[n]=$url
    n=$((n + 1))
done

TICKS=$(getconf CLK_TCK)
# user and system ticks of a process
cpu_ticks() { local s; s=$(<"/proc/$1/stat"); s=${s##*) }; set -- $s; echo "${12} ${13}"; }
for i in $(seq 0 $((n - 1))); do wrk -t2 -c"$CONNS" -d2s "${URL[i]}$PATH_QUERY" >/dev/null; done # warm-up

declare -a ALL
printf '%-6s %-40s %10s %12s %14s\n' round binary "req/s" "cpu µs/req" "(user+sys)"
for r in $(seq "$ROUNDS"); do
    for k in $(seq 0 $((n - 1))); do
        i=$(((k + r) % n))
        read -r u0 s0 < <(cpu_ticks "${PID[i]}")
        out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 5s "${URL[i]}$PATH_QUERY")
        read -r u1 s1 < <(cpu_ticks "${PID[i]}")
        reqs=$(awk '/requests in/ {print $1}' <<<"$out")
        rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
        per() { awk -v t="$1" -v n="$reqs" -v hz="$TICKS" 'BEGIN {printf "%.2f", n ? t * 1e6 / hz / n : 0}'; }
        us=$(per $((u1 - u0 + s1 - s0)))
        printf '%-6s %-40s %10s %12s %14s\n' "$r" "${NAME[i]}" "$rps" "$us" "($(per $((u1 - u0)))+$(per $((s1 - s0))))"
        ALL[i]+="$us "
    done
done
echo
echo "CPU µs per request by round (round 1 first); compare each round's pair:"
for i in $(seq 0 $((n - 1))); do
    med=$(tr ' ' '\n' <<<"${ALL[i]}" | grep . | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
    printf '  %-40s %s (median %s)\n' "${NAME[i]}" "${ALL[i]}" "$med"
done
