#!/usr/bin/env bash
# Instructions per proxied call, under callgrind: the floor (examples/bare_proxy.rs) and
# graphwarden's proxy with recording off, in front of the same nginx stub as bench/proxy.sh.
#
# Why: on a shared 2-core VM the CPU time of the same binary moves by ±15 % between runs, so
# bench/proxy.sh cannot show a change smaller than that. The number of instructions a call
# executes in user space does not depend on the machine's speed. (System calls are not
# counted; `strace -c -f -p PID` shows they are the same for both, about 2 writev, 2 recvfrom
# and 0.5 epoll_wait per call.) Recording on is not measured: under valgrind the writer's
# batches hold a few rows instead of hundreds, which says nothing about the real cost.
#
# Method: each proxy runs under `valgrind --tool=callgrind`; `wrk -t1 -c$CONNS` warms it up for
# 2 s, `callgrind_control -z` zeroes the counts, `wrk` runs DURATION s, `callgrind_control -d`
# dumps; the dump's total over the requests wrk counted is the figure. About a minute.
#
# Knobs: DURATION (8), CONNS (4), GW_BINARY / BARE_BINARY (measure these instead of building
# the tree), KEEP_DUMPS (a directory to copy the callgrind dumps into, for callgrind_annotate). Prints "floor N", "gw-off N" and their difference, in instructions per request.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8}
CONNS=${CONNS:-4}
PATH_QUERY='/v26.0/me?access_token=EAAbench123'
for tool in valgrind:valgrind wrk:wrk nginx:nginx-light curl:curl python3:python3; do
    cmd=${tool%%:*} pkg=${tool#*:}
    command -v "$cmd" >/dev/null 2>&1 || [[ -x "/usr/sbin/$cmd" ]] ||
        { DEBIAN_FRONTEND=noninteractive apt-get install -y "$pkg" >/dev/null 2>&1 ||
            { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "$pkg" >/dev/null; }; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [[ -z "${GW_BINARY:-}" ]]; then
    cargo build --quiet --release -p graphwarden
    GW_BINARY=target/release/graphwarden
fi
if [[ -z "${BARE_BINARY:-}" ]]; then
    cargo build --quiet --release -p graphwarden-server --example bare_proxy
    BARE_BINARY=target/release/examples/bare_proxy
fi

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
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

STUB_PORT=$(free_port)
mkdir -p "$WORK/stub/tmp"
cat >"$WORK/stub/nginx.conf" <<CONF
worker_processes 2; daemon off; master_process on; user root root;
pid $WORK/stub/nginx.pid; error_log $WORK/stub/error.log warn;
events { worker_connections 8192; }
http {
    access_log off; keepalive_requests 100000000; keepalive_timeout 75s;
    client_body_temp_path $WORK/stub/tmp/body; proxy_temp_path $WORK/stub/tmp/proxy;
    fastcgi_temp_path $WORK/stub/tmp/fastcgi; uwsgi_temp_path $WORK/stub/tmp/uwsgi;
    scgi_temp_path $WORK/stub/tmp/scgi;
    server {
        listen 127.0.0.1:$STUB_PORT backlog=4096 reuseport;
        location / {
            default_type application/json;
            add_header x-app-usage '{"call_count":10,"total_time":5,"total_cputime":5}' always;
            add_header x-business-use-case-usage '{"1":[{"type":"ads_management","call_count":5,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":0}]}' always;
            return 200 '{"id":"1","name":"bench"}';
        }
    }
}
CONF
"$NGINX" -p "$WORK/stub" -e "$WORK/stub/error.log" -c "$WORK/stub/nginx.conf" >"$WORK/stub/out" 2>&1 &
PIDS+=($!)
STUB_URL=http://127.0.0.1:$STUB_PORT
for _ in $(seq 50); do curl -sf -o /dev/null "$STUB_URL/" && break; sleep 0.1; done

# measure NAME URL PID → instructions per request
measure() {
    local name=$1 url=$2 pid=$3 out reqs total dump
    for _ in $(seq 600); do curl -sf -o /dev/null --max-time 5 "$url$PATH_QUERY" && break; sleep 0.2; done
    wrk -t1 -c"$CONNS" -d2s "$url$PATH_QUERY" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" "$url$PATH_QUERY")
    callgrind_control -d "$pid" >/dev/null 2>&1
    sleep 2
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

"$GW_BINARY" --data-dir "$WORK/data" init >/dev/null 2>&1
env GRAPHWARDEN_PROXY__UPSTREAM="$STUB_URL" GRAPHWARDEN_PROXY__RECORD=false \
    GRAPHWARDEN_SCHEDULER__ENABLED=false GRAPHWARDEN_ALERTS__ENABLED=false GRAPHWARDEN_LOG__LEVEL=warn \
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.gw-off.%p" \
    "$GW_BINARY" --data-dir "$WORK/data" serve --listen 127.0.0.1:0 --proxy-listen 127.0.0.1:0 \
    >"$WORK/gw.out" 2>"$WORK/gw.err" &
GW_PID=$!
PIDS+=("$GW_PID")
GW_URL=""
for _ in $(seq 600); do
    GW_URL=$(grep -o 'Graph proxy on http://[0-9.:]*' "$WORK/gw.out" 2>/dev/null | sed 's/^Graph proxy on //' || true)
    [[ -n "$GW_URL" ]] && break
    sleep 0.2
done
[[ -n "$GW_URL" ]] || { cat "$WORK/gw.err" >&2; echo "graphwarden did not start" >&2; exit 1; }
GW=$(measure gw-off "$GW_URL" "$GW_PID")
echo "floor  $FLOOR instructions/request"
echo "gw-off $GW instructions/request"
echo "own    $((GW - FLOOR)) instructions/request (gw-off minus the floor)"
