#!/usr/bin/env bash
# Graph proxy overhead: graphwarden's proxy (`serve --proxy-listen`) against nginx as a reverse
# proxy, both in front of the same upstream stub, on loopback.
#
# The upstream stub is nginx (Debian nginx-light), 2 workers, answering every path with
# `{"id":"1","name":"bench"}` (application/json) and Meta's usage headers at low percentages
# (x-app-usage 10 %, x-business-use-case-usage 5 %), so graphwarden's pacer (it spaces calls
# above 75 %) never slows a call. It also serves stub_status, from which the script counts the
# requests that reached the upstream. Its listener is `reuseport` (one accept queue per worker):
# without it the kernel may hand one stub worker twice the kept-alive connections of the other,
# and which proxy instance got the lopsided share showed as up to 7 % of CPU per request between
# three instances of the same binary (under 2 % with `reuseport`). The stub, the tools and the
# start of a graphwarden proxy are bench/lib.sh's, shared with proxy-ab.sh and
# proxy-instructions.sh.
#
# Configurations, each its own process and port, all sent `GET /v26.0/me?access_token=EAAbench123`
# (a token the inventory does not know: it is passed through, nothing is injected):
#   direct   wrk → stub
#   nginx    wrk → nginx (2 workers, `upstream { keepalive 64; }`, proxy_http_version 1.1,
#            Connection "") → stub
#   hyper    wrk → the floor: graphwarden's HTTP stack alone (examples/bare_proxy.rs: the same
#            hyper server, upstream pool and worker threads, forwarding and nothing else) → stub
#   gw-off   wrk → graphwarden proxy, GRAPHWARDEN_PROXY__RECORD=false → stub
#   gw-rec   wrk → graphwarden proxy, recording on (SQLite, the default) → stub
# graphwarden's runtime has 2 worker threads, so nginx gets 2 workers. keepalive_requests is
# raised on both nginx instances (default 1,000) because neither hyper's server nor its client
# closes a kept-alive connection after a number of requests.
#
# Method: a warm-up of WARMUP s per configuration, then ROUNDS rounds. In each round every
# configuration gets `wrk -t2 -c$CONNS -d${DURATION}s --latency`, then a `-t1 -c1` run of
# LAT_DURATION s (p50 without queueing: at -c64 the 2 cores are saturated and p50 is mostly
# waiting in line). The order of the configurations rotates from round to round, so drift of
# this shared machine hits all alike; the summaries are medians over rounds. Per run:
#   req/s and p50 from wrk; CPU µs per request of the proxy process (utime+stime delta from
#   /proc/PID/stat, in `getconf CLK_TCK` ticks, over the requests wrk counted; for nginx the
#   master and its workers; for `direct` the stub itself); the stub's CPU per request; the CPU
#   everything else on the machine used meanwhile ("others": /proc/stat busy time minus wrk,
#   the stub and the proxy).
# Then one -c$RSS_CONNS round against each graphwarden proxy, sampling VmRSS every 0.25 s
# (VmHWM at the end). Last, gw-rec is stopped with SIGTERM and, once it has exited, the rows of
# `calls` in its database are compared with the requests wrk counted for it and with the
# requests the stub saw from it (stub_status, read before and after each of its runs).
#
# Goals (the issue): throughput ≥ 0.9 × nginx; CPU µs/req ≤ 1.25 × nginx (recording off) and
# ≤ 1.5 × nginx (recording on); added p50 over direct within 50 µs of nginx's; zero dropped
# records; RSS < 100 MB at 256 connections. Exits 1 if a goal is missed. The goals are judged
# on medians over rounds, each configuration's apart; beside the throughput and -c64 p50 goals
# the same comparison paired round by round with nginx's run is printed too (not judged): when
# the host's speed drifts within a run the two can disagree.
#
# About 3.5 minutes with the defaults (plus the build; plus any wait for a quiet machine, at most
# QUIET_BUDGET s in all). Loopback only; kills only the processes it started, by PID, and
# removes its scratch directory.
#
# Knobs: ROUNDS (3), DURATION (10), CONNS (64), THREADS (2), WARMUP (2), LAT_DURATION (3),
# RSS_CONNS (256), RSS_DURATION (10), QUIET_BUDGET (60), PERF (1 = also `perf record` each
# graphwarden proxy for one extra -c$CONNS run and print its top symbols), KEEP (1 = keep the
# scratch directory), GW_BINARY (measure this binary instead of building the tree), PATH_QUERY
# (the call: bench/lib.sh's, an 11-character token, unless given; a real token is ~200).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
ROOT=$PWD

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-2}
LAT_DURATION=${LAT_DURATION:-3}
RSS_CONNS=${RSS_CONNS:-256}
RSS_DURATION=${RSS_DURATION:-10}
QUIET_BUDGET=${QUIET_BUDGET:-60}
PERF=${PERF:-0}
KEEP=${KEEP:-0}
WORKERS=2 # graphwarden's tokio runtime has 2 worker threads (crates/graphwarden/src/main.rs)
PATH_QUERY=${PATH_QUERY:-$BENCH_PATH_QUERY}
T_START=$(date +%s)

say() { printf '[%4ds] %s\n' $(($(date +%s) - T_START)) "$*"; }

GIVEN_GW=${GW_BINARY:-} # a build named to measure, not the tree's
binaries
need wrk wrk
need nginx nginx-light
need sqlite3 sqlite3
need curl curl
need python3 python3
NGINX=$(nginx_path)
T_START=$(date +%s) # the clock starts once the tools are there

WORK=$(mktemp -d)
declare -a MY_PIDS=() # everything this script started that may still run
WRK_PID=""
cleanup() {
    local pid
    [[ -n "$WRK_PID" ]] && kill "$WRK_PID" 2>/dev/null || true
    for pid in "${MY_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
    done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${MY_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${MY_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [[ "$KEEP" == 1 ]]; then
        echo "kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

GW="$WORK/graphwarden"
BARE="$WORK/bare_proxy"
cp "$BARE_BINARY" "$BARE"
cp "$GW_BINARY" "$GW" # a copy: a rebuild of the tree cannot swap it mid-run
if [[ -n "$GIVEN_GW" ]]; then
    TREE="binary $GIVEN_GW"
else
    TREE="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates 2>/dev/null || echo '+dirty')"
fi

children() { ps -o pid= --ppid "$1" | tr -d ' ' | tr '\n' ' '; }

# ---------------------------------------------------------------------------------------------
# The stub and nginx as a proxy.
STUB_PORT=$(free_port)
NGX_PORT=$(free_port)
stub_conf "$WORK/stub" "$STUB_PORT" "$WORKERS"
proxy_conf "$WORK/nginx" "$NGX_PORT" "$STUB_PORT" "$WORKERS"

start_nginx "$WORK/stub"
MY_PIDS+=("$NGINX_PID")
STUB_PID=$NGINX_PID
start_nginx "$WORK/nginx"
MY_PIDS+=("$NGINX_PID")
NGX_PID=$NGINX_PID
STUB_URL="http://127.0.0.1:$STUB_PORT"
NGX_URL="http://127.0.0.1:$NGX_PORT"
wait_http "$STUB_URL/" || { cat "$WORK/stub/out" "$WORK/stub/error.log" >&2; echo "the stub did not start" >&2; exit 1; }
wait_http "$NGX_URL/" || { cat "$WORK/nginx/out" "$WORK/nginx/error.log" >&2; echo "nginx (proxy) did not start" >&2; exit 1; }
STUB_WORKERS=$(children "$STUB_PID")
NGX_WORKERS=$(children "$NGX_PID")
# shellcheck disable=SC2206
MY_PIDS+=($STUB_WORKERS $NGX_WORKERS) # so that a killed master cannot leave its workers behind

# ---------------------------------------------------------------------------------------------
# graphwarden, twice: recording off and on, each with its own data directory.
start_gw() { # start_gw NAME RECORD → sets GW_PID, GW_URL
    start_graphwarden "$GW" "$WORK/$1" "$STUB_URL" "$2" || exit 1
    MY_PIDS+=("$GW_PID")
    GW_URL=$(graphwarden_url "$WORK/$1" "$GW_PID") || exit 1
}
start_bare "$BARE" "$WORK" "$STUB_URL" "$WORKERS" || { MY_PIDS+=("$BARE_PID"); exit 1; }
MY_PIDS+=("$BARE_PID")
start_gw gw-off false
GWOFF_PID=$GW_PID GWOFF_URL=$GW_URL
start_gw gw-rec true
GWREC_PID=$GW_PID GWREC_URL=$GW_URL

CONFIGS=(direct nginx hyper gw-off gw-rec)
declare -A URL_OF=([direct]=$STUB_URL [nginx]=$NGX_URL [hyper]=$BARE_URL [gw-off]=$GWOFF_URL [gw-rec]=$GWREC_URL)
declare -A PIDS_OF=([direct]="$STUB_PID $STUB_WORKERS" [nginx]="$NGX_PID $NGX_WORKERS" [hyper]=$BARE_PID [gw-off]=$GWOFF_PID [gw-rec]=$GWREC_PID)

say "graphwarden proxy vs nginx; tree $TREE; GET ${PATH_QUERY:0:60}$( ((${#PATH_QUERY} > 60)) && echo "… (${#PATH_QUERY} bytes)"); $($NGINX -v 2>&1 | sed 's/.*: //'); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
say "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, $(uname -sr)"
say "stub $STUB_URL (pids $STUB_PID $STUB_WORKERS); nginx $NGX_URL (pids $NGX_PID $NGX_WORKERS); hyper $BARE_URL (pid $BARE_PID); gw-off $GWOFF_URL (pid $GWOFF_PID); gw-rec $GWREC_URL (pid $GWREC_PID)"

# Bookkeeping for the dropped-records check: requests the stub saw from gw-rec, and requests wrk
# and curl counted against it.
stub_requests() { curl -sf --max-time 2 "$STUB_URL/__stub_status" | awk 'NR == 3 {print $3}'; }
REC_UPSTREAM=0
REC_CLIENT=0
REC_NON2XX=0
REC_ERRORS=0
STUB_MARK=0
rec_begin() { STUB_MARK=$(stub_requests); }
rec_end() { # the requests since rec_begin, less rec_end's own status request
    sleep 0.3 # let calls still in flight upstream finish
    REC_UPSTREAM=$((REC_UPSTREAM + $(stub_requests) - STUB_MARK - 1))
}

# Check every configuration by hand: 200, the stub's body, the usage headers passed back.
for c in "${CONFIGS[@]}"; do
    [[ "$c" == gw-rec ]] && rec_begin
    code=$(curl -s --max-time 5 -D "$WORK/check-$c.head" -o "$WORK/check-$c.body" -w '%{http_code}' "${URL_OF[$c]}$PATH_QUERY" || true)
    [[ "$c" == gw-rec ]] && { rec_end; REC_CLIENT=$((REC_CLIENT + 1)); }
    if [[ "$code" != 200 || "$(cat "$WORK/check-$c.body")" != "$STUB_BODY" ]] || ! grep -qi '^x-app-usage:' "$WORK/check-$c.head"; then
        echo "$c answered $code: $(cat "$WORK/check-$c.body" 2>/dev/null)" >&2
        cat "$WORK/check-$c.head" >&2
        exit 1
    fi
done

TICKS=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime (fields 14 and 15 of /proc/PID/stat), summed over the PIDs given
    local total=0 pid stat
    for pid in "$@"; do
        stat=$(<"/proc/$pid/stat") || { echo "process $pid is gone" >&2; return 1; }
        stat=${stat##*) }
        # shellcheck disable=SC2086
        set -- $stat
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
child_ticks() { # child_ticks FILE: CPU ticks of the waited-for children in `times` output
    awk -v hz="$TICKS" 'NR == 2 {
        split($1, u, /[ms]/); split($2, s, /[ms]/)
        printf "%d\n", ((u[1] * 60 + u[2]) + (s[1] * 60 + s[2])) * hz + 0.5 }' "$1"
}
to_us() { # wrk's latency text (123.45us, 1.23ms, 1.02s) in µs
    awk '{ v = $1 + 0; if ($1 ~ /us$/) print v; else if ($1 ~ /ms$/) print v * 1000; else if ($1 ~ /m$/) print v * 60e6; else print v * 1e6 }' <<<"$1"
}
QUIET_LEFT=$QUIET_BUDGET
quiet() { # wait (within QUIET_BUDGET s for the whole run) for a second in which others use < 0.25 core
    local b0 b1 waited=0
    while ((QUIET_LEFT > 0)); do
        b0=$(busy_ticks); sleep 1; b1=$(busy_ticks)
        awk -v d=$((b1 - b0)) -v hz="$TICKS" 'BEGIN {exit !(d / hz < 0.25)}' && break
        QUIET_LEFT=$((QUIET_LEFT - 1)); waited=$((waited + 1))
    done
    ((waited > 0)) && say "waited $waited s for a quiet machine ($QUIET_LEFT s of QUIET_BUDGET left)"
    return 0
}

# run CONFIG CONNS THREADS SECONDS → "rps requests p50_us proxy_ticks stub_ticks other_ticks non2xx errors"
run() {
    local c=$1 conns=$2 threads=$3 d=$4 out p0 p1 s0 s1 b0 b1 w0 w1 rps reqs p50 non2xx errs
    # shellcheck disable=SC2086
    p0=$(cpu_ticks ${PIDS_OF[$c]}); s0=$(cpu_ticks "$STUB_PID" $STUB_WORKERS); b0=$(busy_ticks)
    times >"$WORK/times0" # `times` in this shell itself (not in a $(…)): its children so far
    out=$(timeout $((d + 30)) wrk -t"$threads" -c"$conns" -d"${d}s" --timeout 5s --latency "${URL_OF[$c]}$PATH_QUERY") ||
        { echo "wrk failed against $c: $out" >&2; return 1; }
    # shellcheck disable=SC2086
    times >"$WORK/times1" # now including wrk
    p1=$(cpu_ticks ${PIDS_OF[$c]}); s1=$(cpu_ticks "$STUB_PID" $STUB_WORKERS); b1=$(busy_ticks)
    w0=$(child_ticks "$WORK/times0"); w1=$(child_ticks "$WORK/times1")
    echo "$out" >>"$WORK/wrk-$c.txt"
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    p50=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    errs=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out")
    local proxy=$((p1 - p0)) stub=$((s1 - s0))
    [[ "$c" == direct ]] && stub=0 # the stub is the server here; its CPU is in "proxy"
    echo "${rps:-0} ${reqs:-0} ${p50:-0} $proxy $stub $((b1 - b0 - (w1 - w0) - proxy - stub)) ${non2xx:-0} ${errs:-0}"
}

median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
med() { tr ' ' '\n' <<<"$1" | grep . | median; }
per_req() { awk -v t="$1" -v hz="$TICKS" -v n="$2" 'BEGIN {printf "%.2f", n ? t * 1e6 / hz / n : 0}'; }
cores() { awk -v t="$1" -v hz="$TICKS" -v d="$2" 'BEGIN {printf "%.2f", t / hz / d}'; }

NON2XX_TOTAL=0
ERRORS_TOTAL=0
# measure CONFIG CONNS THREADS SECONDS → sets R (the run's fields), and keeps gw-rec's counts
measure() {
    [[ "$2" -gt 1 ]] && quiet
    [[ "$1" == gw-rec ]] && { REC_CLIENT=$((REC_CLIENT + 1)); rec_begin; } # + wait_http's call
    wait_http "${URL_OF[$1]}$PATH_QUERY" || { echo "$1 does not answer before a run" >&2; exit 1; }
    read -r -a R < <(run "$@")
    ((${#R[@]} == 8)) || { echo "the run against $1 failed" >&2; exit 1; }
    NON2XX_TOTAL=$((NON2XX_TOTAL + R[6]))
    ERRORS_TOTAL=$((ERRORS_TOTAL + R[7]))
    if [[ "$1" == gw-rec ]]; then
        rec_end
        REC_CLIENT=$((REC_CLIENT + R[1]))
        REC_NON2XX=$((REC_NON2XX + R[6]))
        REC_ERRORS=$((REC_ERRORS + R[7]))
    fi
}

say "warm-up: ${WARMUP} s per configuration at -c$CONNS"
for c in "${CONFIGS[@]}"; do measure "$c" "$CONNS" "$THREADS" "$WARMUP"; done

say "$ROUNDS rounds: wrk -t$THREADS -c$CONNS -d${DURATION}s, then -t1 -c1 -d${LAT_DURATION}s, per configuration (order rotates)"
printf '\n%-5s %-7s %9s %10s %9s %6s %9s %8s %8s %9s %7s %6s\n' round config "req/s" requests "cpu µs/r" "cores" "stub µs/r" "p50 µs" "c1 p50" "c1 µs/r" others non2xx
declare -A RPS CPU P50 LAT ADD ADD1 STUBCPU CPU1 PAIR_RPS PAIR_ADD
for round in $(seq "$ROUNDS"); do
    declare -A p50_now=() lat_now=() rps_now=()
    for i in $(seq 0 $((${#CONFIGS[@]} - 1))); do
        c=${CONFIGS[$(((i + round - 1) % ${#CONFIGS[@]}))]}
        measure "$c" "$CONNS" "$THREADS" "$DURATION"
        rps=${R[0]} reqs=${R[1]} p50=${R[2]} ticks=${R[3]} stub=${R[4]} others=${R[5]} non2xx=${R[6]} errs=${R[7]}
        measure "$c" 1 1 "$LAT_DURATION"
        lat=${R[2]} c1us=$(per_req "${R[3]}" "${R[1]}")
        us=$(per_req "$ticks" "$reqs")
        stub_us=$(per_req "$stub" "$reqs")
        RPS[$c]+="$rps " CPU[$c]+="$us " P50[$c]+="$p50 " LAT[$c]+="$lat " STUBCPU[$c]+="$stub_us " CPU1[$c]+="$c1us "
        p50_now[$c]=$p50 lat_now[$c]=$lat rps_now[$c]=$rps
        printf '%-5s %-7s %9.0f %10s %9s %6s %9s %8.0f %8.1f %9s %7s %6s%s\n' "$round" "$c" "$rps" "$reqs" "$us" "$(cores "$ticks" "$DURATION")" \
            "$([[ "$c" == direct ]] && echo - || echo "$stub_us")" "$p50" "$lat" "$c1us" "$(cores "$others" "$DURATION")" "$non2xx" \
            "$([[ "$errs" != 0 ]] && echo "  (socket errors: $errs)")"
    done
    for c in "${CONFIGS[@]}"; do # added p50 over direct, within the round
        ADD[$c]+="$(awk -v a="${p50_now[$c]}" -v b="${p50_now[direct]}" 'BEGIN {print a - b}') "
        ADD1[$c]+="$(awk -v a="${lat_now[$c]}" -v b="${lat_now[direct]}" 'BEGIN {print a - b}') "
        # Paired with nginx's run of the same round (printed beside the goals, not judged):
        # the throughput ratio and the p50 difference (`direct`'s p50 cancels out of it).
        PAIR_RPS[$c]+="$(awk -v a="${rps_now[$c]}" -v b="${rps_now[nginx]}" 'BEGIN {print a / b}') "
        PAIR_ADD[$c]+="$(awk -v a="${p50_now[$c]}" -v b="${p50_now[nginx]}" 'BEGIN {print a - b}') "
    done
done

# Memory at RSS_CONNS connections.
echo
say "memory: wrk -t$THREADS -c$RSS_CONNS -d${RSS_DURATION}s against each graphwarden proxy, VmRSS sampled every 0.25 s"
declare -A RSS_MAX HWM RSS_RPS
for c in gw-off gw-rec; do
    quiet
    [[ "$c" == gw-rec ]] && { REC_CLIENT=$((REC_CLIENT + 1)); rec_begin; } # + wait_http's call
    wait_http "${URL_OF[$c]}$PATH_QUERY" || { echo "$c does not answer before the memory run" >&2; exit 1; }
    pid=${PIDS_OF[$c]}
    timeout $((RSS_DURATION + 30)) wrk -t"$THREADS" -c"$RSS_CONNS" -d"${RSS_DURATION}s" --timeout 5s --latency "${URL_OF[$c]}$PATH_QUERY" >"$WORK/rss-$c.txt" &
    WRK_PID=$!
    max=0
    while kill -0 "$WRK_PID" 2>/dev/null; do
        kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
        ((kb > max)) && max=$kb
        sleep 0.25
    done
    wait "$WRK_PID" || { echo "wrk failed against $c at -c$RSS_CONNS: $(cat "$WORK/rss-$c.txt")" >&2; exit 1; }
    WRK_PID=""
    RSS_MAX[$c]=$(awk -v k="$max" 'BEGIN {printf "%.1f", k / 1024}')
    HWM[$c]=$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
    out=$(<"$WORK/rss-$c.txt")
    RSS_RPS[$c]=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    errs=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out")
    NON2XX_TOTAL=$((NON2XX_TOTAL + ${non2xx:-0}))
    ERRORS_TOTAL=$((ERRORS_TOTAL + ${errs:-0}))
    if [[ "$c" == gw-rec ]]; then
        rec_end
        REC_CLIENT=$((REC_CLIENT + reqs))
        REC_NON2XX=$((REC_NON2XX + ${non2xx:-0}))
        REC_ERRORS=$((REC_ERRORS + ${errs:-0}))
    fi
    printf '  %-7s -c%s: %s req/s, %s requests, non-2xx %s, socket errors %s; VmRSS max %s MB, VmHWM %s MB\n' \
        "$c" "$RSS_CONNS" "${RSS_RPS[$c]}" "$reqs" "${non2xx:-0}" "${errs:-0}" "${RSS_MAX[$c]}" "${HWM[$c]}"
done

# Optional profile of each graphwarden proxy under the same load.
if [[ "$PERF" == 1 ]] && command -v perf >/dev/null 2>&1; then
    for c in gw-off gw-rec; do
        [[ "$c" == gw-rec ]] && { REC_CLIENT=$((REC_CLIENT + 1)); rec_begin; }
        wait_http "${URL_OF[$c]}$PATH_QUERY"
        perf record -F 999 -g -o "$WORK/perf-$c.data" -p "${PIDS_OF[$c]}" -- sleep "$DURATION" >/dev/null 2>&1 &
        perf_pid=$!
        MY_PIDS+=("$perf_pid")
        out=$(timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 5s "${URL_OF[$c]}$PATH_QUERY")
        wait "$perf_pid" || true
        if [[ "$c" == gw-rec ]]; then
            rec_end
            REC_CLIENT=$((REC_CLIENT + $(awk '/requests in/ {print $1}' <<<"$out")))
            REC_NON2XX=$((REC_NON2XX + $(awk '/Non-2xx or 3xx responses:/ {n = $NF} END {print n + 0}' <<<"$out")))
            REC_ERRORS=$((REC_ERRORS + $(awk '/Socket errors:/ {gsub(",", ""); n = $4 + $6 + $8 + $10} END {print n + 0}' <<<"$out")))
        fi
        echo
        say "perf, $c (-c$CONNS, $(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out") req/s): top symbols by self time, then by shared object"
        perf report -i "$WORK/perf-$c.data" --no-children --sort sym --stdio -g none 2>/dev/null | grep '%' | grep -v '^#' | head -25 || true
        perf report -i "$WORK/perf-$c.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep '%' | grep -v '^#' | head -8 || true
    done
fi

# Dropped records: stop gw-rec, let it write what it queued, count the rows.
echo
say "stopping gw-rec (SIGTERM) and counting its call records"
kill -TERM "$GWREC_PID"
stopped=0
for _ in $(seq 600); do
    kill -0 "$GWREC_PID" 2>/dev/null || { stopped=1; break; }
    sleep 0.1
done
wait "$GWREC_PID" && rc=0 || rc=$?
((stopped)) || { echo "gw-rec did not exit within 60 s of SIGTERM" >&2; exit 1; }
ROWS=$(sqlite3 "$WORK/gw-rec/data/graphwarden.db" 'select count(*) from calls')
BY_OUTCOME=$(sqlite3 "$WORK/gw-rec/data/graphwarden.db" "select outcome || ' ' || http_status || ': ' || count(*) from calls group by outcome, http_status" | tr '\n' ';' | sed 's/;$//; s/;/; /g')
say "gw-rec exited with $rc; rows in calls: $ROWS ($BY_OUTCOME)"
say "requests wrk and curl counted against gw-rec: $REC_CLIENT (non-2xx $REC_NON2XX, socket errors $REC_ERRORS); requests the stub saw from it: $REC_UPSTREAM"
if grep -qiE 'lost|error' "$WORK/gw-rec/err" "$WORK/gw-off/err" 2>/dev/null; then
    echo "graphwarden logged (warn and above):"
    grep -hiE 'lost|error' "$WORK/gw-rec/err" "$WORK/gw-off/err" | sort | uniq -c | sort -rn | head -5 || true
fi

# ---------------------------------------------------------------------------------------------
# Summary.
echo
printf '%-7s %10s %12s %13s %10s %11s %10s %11s %12s\n' config "req/s" "cpu µs/req" "stub µs/req" "p50 µs" "added p50" "c1 p50 µs" "c1 added" "c1 cpu µs/r"
declare -A M_RPS M_CPU M_ADD M_ADD1
for c in "${CONFIGS[@]}"; do
    M_RPS[$c]=$(med "${RPS[$c]}") M_CPU[$c]=$(med "${CPU[$c]}") M_ADD[$c]=$(med "${ADD[$c]}") M_ADD1[$c]=$(med "${ADD1[$c]}")
    printf '%-7s %10.0f %12.2f %13s %10.0f %11s %10.1f %11s %12.2f\n' "$c" "${M_RPS[$c]}" "${M_CPU[$c]}" \
        "$([[ "$c" == direct ]] && echo - || printf '%.2f' "$(med "${STUBCPU[$c]}")")" "$(med "${P50[$c]}")" \
        "$([[ "$c" == direct ]] && echo - || printf '%.0f' "${M_ADD[$c]}")" "$(med "${LAT[$c]}")" \
        "$([[ "$c" == direct ]] && echo - || printf '%.1f' "${M_ADD1[$c]}")" "$(med "${CPU1[$c]}")"
done
echo "(medians over $ROUNDS rounds; 'added' is p50 minus direct's p50 in the same round; c1: wrk -t1 -c1)"
echo

FAILED=0
verdict() { # verdict OK? TEXT
    if [[ "$1" == 1 ]]; then echo "  met:    $2"; else echo "  MISSED: $2"; FAILED=1; fi
}
ok() { awk "BEGIN {exit !($1)}" && echo 1 || echo 0; }
echo "goals (ratios of medians from this run):"
for c in gw-off gw-rec; do
    r=$(awk -v a="${M_RPS[$c]}" -v b="${M_RPS[nginx]}" 'BEGIN {printf "%.3f", a / b}')
    verdict "$(ok "$r >= 0.9")" "$c throughput $(printf '%.0f' "${M_RPS[$c]}") req/s = ${r} × nginx ($(printf '%.0f' "${M_RPS[nginx]}")), goal ≥ 0.9"
    echo "          (paired with nginx's run of each round: $(printf '%.3f ' ${PAIR_RPS[$c]})×; median $(printf '%.3f' "$(med "${PAIR_RPS[$c]}")") ×)"
done
r=$(awk -v a="${M_CPU[gw-off]}" -v b="${M_CPU[nginx]}" 'BEGIN {printf "%.3f", a / b}')
verdict "$(ok "$r <= 1.25")" "gw-off CPU ${M_CPU[gw-off]} µs/req = ${r} × nginx (${M_CPU[nginx]}), goal ≤ 1.25"
r=$(awk -v a="${M_CPU[gw-rec]}" -v b="${M_CPU[nginx]}" 'BEGIN {printf "%.3f", a / b}')
verdict "$(ok "$r <= 1.5")" "gw-rec CPU ${M_CPU[gw-rec]} µs/req = ${r} × nginx (${M_CPU[nginx]}), goal ≤ 1.5"
for c in gw-off gw-rec; do
    d=$(awk -v a="${M_ADD[$c]}" -v b="${M_ADD[nginx]}" 'BEGIN {printf "%.0f", a - b}')
    verdict "$(ok "$d <= 50")" "$c added p50 at -c$CONNS $(printf '%.0f' "${M_ADD[$c]}") µs vs nginx's $(printf '%.0f' "${M_ADD[nginx]}") µs: ${d} µs more, goal ≤ 50"
    echo "          (paired with nginx's run of each round: $(printf '%+.0f ' ${PAIR_ADD[$c]})µs; median $(printf '%+.0f' "$(med "${PAIR_ADD[$c]}")") µs)"
    d=$(awk -v a="${M_ADD1[$c]}" -v b="${M_ADD1[nginx]}" 'BEGIN {printf "%.1f", a - b}')
    verdict "$(ok "$d <= 50")" "$c added p50 at -c1 $(printf '%.1f' "${M_ADD1[$c]}") µs vs nginx's $(printf '%.1f' "${M_ADD1[nginx]}") µs: ${d} µs more, goal ≤ 50"
done
# wrk stops with calls in flight: those reach graphwarden (and maybe the stub) but are not in
# wrk's count. So rows ≥ wrk's count, and every call the stub saw must have its row; calls cut
# off before they reached the stub have one too (outcome `aborted`), so rows may exceed it.
verdict "$(ok "$ROWS >= $REC_UPSTREAM && $ROWS >= $REC_CLIENT")" \
    "records: $ROWS rows; the stub saw $REC_UPSTREAM calls from gw-rec ($((ROWS - REC_UPSTREAM)) more rows: aborted before reaching it); wrk and curl counted $REC_CLIENT answers ($((ROWS - REC_CLIENT)) rows more: calls in flight when wrk stopped); goal: a row for every call"
for c in gw-off gw-rec; do
    verdict "$(ok "${RSS_MAX[$c]} < 100 && ${HWM[$c]} < 100")" "$c memory at -c$RSS_CONNS: VmRSS max ${RSS_MAX[$c]} MB, VmHWM ${HWM[$c]} MB, goal < 100 MB"
done
echo "the floor (not a goal): hyper $(printf '%.0f' "${M_RPS[hyper]}") req/s = $(awk -v a="${M_RPS[hyper]}" -v b="${M_RPS[nginx]}" 'BEGIN {printf "%.3f", a / b}') × nginx, ${M_CPU[hyper]} µs/req = $(awk -v a="${M_CPU[hyper]}" -v b="${M_CPU[nginx]}" 'BEGIN {printf "%.3f", a / b}') × nginx; graphwarden's own work per call: $(awk -v a="${M_CPU[gw-off]}" -v b="${M_CPU[hyper]}" 'BEGIN {printf "%.2f", a - b}') µs (recording off), $(awk -v a="${M_CPU[gw-rec]}" -v b="${M_CPU[hyper]}" 'BEGIN {printf "%.2f", a - b}') µs (on)"
if ((NON2XX_TOTAL > 0 || ERRORS_TOTAL > 0)); then
    echo "  MISSED: $NON2XX_TOTAL non-2xx answers and $ERRORS_TOTAL socket errors over all runs"
    FAILED=1
fi
say "done"
if [[ "$FAILED" != 0 ]]; then
    echo "FAIL: not every goal was met (see above)" >&2
    exit 1
fi
echo "PASS: every goal met"
