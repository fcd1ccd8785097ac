#!/usr/bin/env bash
# What each proxy does per request, counted rather than timed: system calls, TCP segments,
# wake-ups, context switches, page faults and clock reads, for nginx as a proxy, the floor
# (examples/bare_proxy.rs) and graphwarden's proxy with recording off, each in front of
# bench/lib.sh's stub, under the load of bench/proxy.sh (`wrk -t2 -c$CONNS`).
#
# Why: bench/proxy.sh times the three, and on a shared 2-core VM their times move by more than
# the differences between them; proxy-instructions.sh counts user-space instructions. This
# counts what the kernel does for each, which times cannot tell apart: whether graphwarden
# makes a system call nginx does not, reads a socket that has nothing, sends more segments,
# wakes more often or is preempted more (BENCHMARKS.md, run 16).
#
# Method: per configuration a 1 s warm-up, then `perf stat` on the proxy's processes (nginx's
# workers; the floor's and graphwarden's one process, all threads) while `wrk` runs DURATION s;
# each count is divided by the requests wrk counted. TCP segments are the whole machine's
# (`/proc/net/snmp` OutSegs: wrk, proxy and stub together; the same work but the proxy's).
# Clock reads are counted with a uprobe on libc's `clock_gettime` when one can be added
# (root and a kernel with uprobes; the probe is removed at the end), else left out, in a run of
# their own: a uprobe costs microseconds per hit, which would change the other counts.
#
# Knobs: DURATION (5), CONNS (64), GW_BINARY / BARE_BINARY (measure these instead of building
# the tree), PATH_QUERY (the call; bench/lib.sh's by default). About half a minute plus the
# build. Loopback only; stops only what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
PATH_QUERY=${PATH_QUERY:-$BENCH_PATH_QUERY}
need perf linux-perf
need wrk wrk
need nginx nginx-light
need curl curl
need python3 python3
binaries

WORK=$(mktemp -d)
PIDS=()
PROBE=""
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    sleep 1
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -n "$PROBE" ]] && perf probe -q -d "$PROBE" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# The events, each where this kernel has it.
EVENTS=(raw_syscalls:sys_enter syscalls:sys_enter_recvfrom syscalls:sys_enter_read
    syscalls:sys_enter_sendto syscalls:sys_enter_writev syscalls:sys_enter_write
    syscalls:sys_enter_epoll_wait syscalls:sys_enter_getsockopt sched:sched_wakeup
    context-switches page-faults)
HAVE=()
for e in "${EVENTS[@]}"; do
    perf stat -e "$e" -- true >/dev/null 2>&1 && HAVE+=("$e")
done
LIBC=$(ldd "$GW_BINARY" | awk '/libc\.so/ {print $3}')
if [[ -n "$LIBC" ]] && perf probe -q -x "$LIBC" --add clock_gettime >/dev/null 2>&1; then
    PROBE=probe_libc:clock_gettime
fi
((${#HAVE[@]})) || { echo "perf can count none of the events here" >&2; exit 1; }

STUB_PORT=$(free_port)
NGX_PORT=$(free_port)
stub_conf "$WORK/stub" "$STUB_PORT"
proxy_conf "$WORK/nginx" "$NGX_PORT" "$STUB_PORT"
start_nginx "$WORK/stub"
PIDS+=("$NGINX_PID")
start_nginx "$WORK/nginx"
PIDS+=("$NGINX_PID")
NGX_PID=$NGINX_PID
STUB_URL=http://127.0.0.1:$STUB_PORT
NGX_URL=http://127.0.0.1:$NGX_PORT
wait_http "$STUB_URL/" || { cat "$WORK/stub/error.log" >&2; echo "the stub did not start" >&2; exit 1; }
wait_http "$NGX_URL/" || { cat "$WORK/nginx/error.log" >&2; echo "nginx did not start" >&2; exit 1; }
NGX_WORKERS=$(ps -o pid= --ppid "$NGX_PID" | tr -d ' ' | paste -sd,)
start_bare "$BARE_BINARY" "$WORK" "$STUB_URL" 2 || { PIDS+=("$BARE_PID"); exit 1; }
PIDS+=("$BARE_PID")
start_graphwarden "$GW_BINARY" "$WORK/gw" "$STUB_URL" false || exit 1
PIDS+=("$GW_PID")
GW_URL=$(graphwarden_url "$WORK/gw" "$GW_PID") || exit 1

out_segs() { awk '/^Tcp:/ && $2 ~ /^[0-9]/ {print $12}' /proc/net/snmp; }

# run NAME URL PIDS EVENT... : one wrk run with perf counting EVENTs on PIDS; sets REQS and
# SEGS (requests wrk counted, segments the machine sent), counts in $WORK/perf.NAME
run() {
    local name=$1 url=$2 pids=$3 out s0 s1 list perf_pid
    shift 3
    wrk -t2 -c"$CONNS" -d1s "$url$PATH_QUERY" >/dev/null
    list=$(IFS=,; echo "$*")
    perf stat -x, -e "$list" -p "$pids" -o "$WORK/perf.$name" -- sleep $((DURATION + 1)) &
    perf_pid=$!
    sleep 0.3
    s0=$(out_segs)
    out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" "$url$PATH_QUERY")
    s1=$(out_segs)
    wait "$perf_pid" || true
    grep -q 'Non-2xx' <<<"$out" && { echo "$name: some calls were not answered 200" >&2; exit 1; }
    REQS=$(awk '/requests in/ {print $1}' <<<"$out")
    SEGS=$((s1 - s0))
    [[ "$REQS" -gt 0 ]] || { echo "$name: no requests" >&2; exit 1; }
}

# per EVENT NAME: EVENT's count in the last run of NAME, per request ("-" when not counted)
per() {
    awk -F, -v e="$1" -v r="$REQS" '$3 == e && $1 ~ /^[0-9.]+$/ { v = sprintf("%.3f", $1 / r) }
        END { print (v == "" ? "-" : v) }' "$WORK/perf.$2"
}

# count NAME URL PIDS: one column of per-request counts in $WORK/col.NAME
count() {
    local name=$1 url=$2 pids=$3 e
    wait_http "$url$PATH_QUERY" || { echo "$name does not answer" >&2; exit 1; }
    run "$name" "$url" "$pids" "${HAVE[@]}"
    {
        for e in "${HAVE[@]}"; do per "$e" "$name"; done
        awk -v d="$SEGS" -v r="$REQS" 'BEGIN {printf "%.3f\n", d / r}'
        echo "$REQS"
        if [[ -n "$PROBE" ]]; then
            run "$name" "$url" "$pids" "$PROBE"
            per "$PROBE" "$name"
        fi
    } >"$WORK/col.$name"
}
count nginx "$NGX_URL" "$NGX_WORKERS"
count hyper "$BARE_URL" "$BARE_PID"
count gw-off "$GW_URL" "$GW_PID"

printf '\nper request, wrk -t2 -c%s -d%ss, GET %s\n' "$CONNS" "$DURATION" "${PATH_QUERY:0:60}"
printf '%-34s %10s %10s %10s\n' "" nginx hyper gw-off
mapfile -t LABELS < <(printf '%s\n' "${HAVE[@]}" | sed 's/^syscalls:sys_enter_/system call /; s/^raw_syscalls:sys_enter$/all system calls/; s/^probe_libc:clock_gettime$/clock_gettime (libc)/')
LABELS+=("TCP segments sent (whole machine)" "requests counted")
[[ -n "$PROBE" ]] && LABELS+=("clock_gettime (libc, own run)")
paste "$WORK/col.nginx" "$WORK/col.hyper" "$WORK/col.gw-off" | {
    i=0
    while IFS=$'\t' read -r a b c; do
        printf '%-34s %10s %10s %10s\n' "${LABELS[$i]}" "$a" "$b" "$c"
        i=$((i + 1))
    done
}
