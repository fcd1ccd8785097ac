#!/usr/bin/env bash
# Simulator throughput: is `graphwarden sim` ever the bottleneck of a benchmark?
#
# Builds the release binary, starts the simulator on a kernel-chosen loopback port with
# bench/sim-scenario.toml (an app whose hourly allowance cannot be reached, so no call is
# throttled), reads the `bench` token from the --json start line, warms up, then runs ROUNDS
# interleaved rounds of wrk against `GET /v26.0/me?access_token=…`:
#   each round: the measured run (-c$CONNS, $DURATION s), then short comparison runs at the
#   connection counts in $COMPARE ($COMPARE_DURATION s each), so that drift of the machine
#   hits every configuration alike.
# It prints requests/s per round and the median, the simulator's CPU µs per request (its
# utime+stime delta from /proc/PID/stat over the requests wrk counted) and the cores it used.
# wrk runs on the same 2 cores as the simulator: the numbers are a floor, not the simulator's
# ceiling.
#
# Exits non-zero when the median of the measured runs is below MIN_RPS (default 20000), or when
# any response was not 2xx (a throttle or a broken token would otherwise inflate the rate).
# Loopback only; bounded (about ROUNDS × (DURATION + COMPARE_DURATION × |COMPARE|) s plus a
# 3 s warm-up: 73 s by default, plus the build, seconds when cached and about 1 min 45 s from
# cold on a 2-core machine); kills only the simulator it started.
#
# Why 64 connections: below about 16 connections the rate is bound by round trips, not by
# either program (a 4 s probe here: -c2 about 35k req/s, -c8 about 48k); from 16 to 256 it is
# flat within the noise of this shared machine, so 64 sits in the middle of that plateau (and is
# a plausible fan-out of a parallel test suite). -c16 and -c256 run in every round beside it, so
# the table shows the choice is not the best case picked after the fact.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
COMPARE=${COMPARE:-"16 256"}
COMPARE_DURATION=${COMPARE_DURATION:-2}
MIN_RPS=${MIN_RPS:-20000}

cargo build --quiet --release -p graphwarden

if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk" >&2
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
if ! command -v curl >/dev/null 2>&1; then
    apt-get install -y curl >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y curl >/dev/null; }
fi

WORK=$(mktemp -d)
SIM_PID=""
cleanup() {
    if [[ -n "$SIM_PID" ]] && kill -0 "$SIM_PID" 2>/dev/null; then
        kill "$SIM_PID" 2>/dev/null || true
        wait "$SIM_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Port 0: the kernel picks a free port; the simulator reports it in its start line.
target/release/graphwarden sim --listen 127.0.0.1:0 --scenario bench/sim-scenario.toml --json \
    >"$WORK/sim.json" 2>"$WORK/sim.err" &
SIM_PID=$!

for _ in $(seq 100); do
    [[ -s "$WORK/sim.json" ]] && break
    kill -0 "$SIM_PID" 2>/dev/null || { cat "$WORK/sim.err" >&2; echo "the simulator exited" >&2; exit 1; }
    sleep 0.1
done
LINE=$(head -n 1 "$WORK/sim.json")
URL=$(grep -o '"url":"[^"]*"' <<<"$LINE" | cut -d'"' -f4)
TOKEN=$(tr '{' '\n' <<<"$LINE" | grep '"label":"bench"' | grep -o '"token":"[^"]*"' | cut -d'"' -f4 || true)
if [[ -z "$URL" || -z "$TOKEN" ]]; then
    echo "no url or bench token in the simulator's start line: $LINE" >&2
    exit 1
fi
case "$URL" in
    http://127.0.0.1:*) ;;
    *) echo "refusing a non-loopback URL: $URL" >&2; exit 1 ;;
esac
TARGET="$URL/v26.0/me?access_token=$TOKEN"

# One call by hand: the token must work and the app must not be throttled.
CHECK=$(curl -s --max-time 5 -o "$WORK/check.body" -w '%{http_code}' "$TARGET" || true)
if [[ "$CHECK" != 200 ]]; then
    echo "GET /v26.0/me answered $CHECK: $(cat "$WORK/check.body" 2>/dev/null)" >&2
    exit 1
fi

TICKS=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of the simulator, fields 14 and 15 (counted after the `(comm)`).
    local stat
    stat=$(<"/proc/$SIM_PID/stat")
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo $((${12} + ${13}))
}

NON2XX_TOTAL=0
# run_wrk CONNS SECONDS → prints "rps requests ticks non2xx socket_errors"
run_wrk() {
    local c=$1 d=$2 before after out rps reqs non2xx errs
    before=$(cpu_ticks)
    out=$(timeout $((d + 20)) wrk -t"$THREADS" -c"$c" -d"${d}s" --timeout 5s "$TARGET") || { echo "wrk failed: $out" >&2; return 1; }
    after=$(cpu_ticks)
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    errs=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out")
    echo "${rps:-0} ${reqs:-0} $((after - before)) ${non2xx:-0} ${errs:-0}"
}

median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "graphwarden sim throughput: GET /v26.0/me on $URL (loopback)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); wrk shares these cores with the simulator"
echo "plan: warm-up 3 s, then $ROUNDS interleaved rounds of wrk -t$THREADS -c$CONNS -d${DURATION}s (+ -c{${COMPARE// /,}} for ${COMPARE_DURATION}s each)"
run_wrk "$CONNS" 3 >/dev/null

printf '\n%-6s %-6s %12s %12s %14s %10s %8s\n' round conns "req/s" requests "sim µs/req" "sim cores" non-2xx
declare -A RPS_OF CPU_OF
for round in $(seq "$ROUNDS"); do
    for c in "$CONNS" $COMPARE; do
        d=$COMPARE_DURATION
        [[ "$c" == "$CONNS" ]] && d=$DURATION
        read -r rps reqs ticks non2xx errs < <(run_wrk "$c" "$d")
        us=$(awk -v t="$ticks" -v hz="$TICKS" -v n="$reqs" 'BEGIN {printf "%.2f", n ? t * 1e6 / hz / n : 0}')
        cores=$(awk -v t="$ticks" -v hz="$TICKS" -v d="$d" 'BEGIN {printf "%.2f", t / hz / d}')
        printf '%-6s %-6s %12.0f %12s %14s %10s %8s%s\n' "$round" "$c" "$rps" "$reqs" "$us" "$cores" "$non2xx" \
            "$([[ "$errs" != 0 ]] && echo "  (socket errors: $errs)")"
        RPS_OF[$c]+="$rps "
        CPU_OF[$c]+="$us "
        NON2XX_TOTAL=$((NON2XX_TOTAL + non2xx))
    done
done

echo
printf '%-6s %14s %18s\n' conns "median req/s" "median sim µs/req"
for c in "$CONNS" $COMPARE; do
    m=$(tr ' ' '\n' <<<"${RPS_OF[$c]}" | grep . | median)
    u=$(tr ' ' '\n' <<<"${CPU_OF[$c]}" | grep . | median)
    printf '%-6s %14.0f %18.2f%s\n' "$c" "$m" "$u" "$([[ "$c" == "$CONNS" ]] && echo "   <- measured")"
done
MEDIAN=$(tr ' ' '\n' <<<"${RPS_OF[$CONNS]}" | grep . | median)
echo
echo "note: wrk and the simulator share $(nproc) cores on loopback; 'sim cores' is the simulator's share, the rest is wrk and the kernel."

if ((NON2XX_TOTAL > 0)); then
    echo "FAIL: $NON2XX_TOTAL responses were not 2xx (throttled or refused calls)" >&2
    exit 1
fi
if awk -v m="$MEDIAN" -v min="$MIN_RPS" 'BEGIN {exit !(m < min)}'; then
    printf 'FAIL: median %.0f req/s at -c%s is below %s req/s\n' "$MEDIAN" "$CONNS" "$MIN_RPS" >&2
    exit 1
fi
printf 'PASS: median %.0f req/s at -c%s (threshold %s req/s)\n' "$MEDIAN" "$CONNS" "$MIN_RPS"
