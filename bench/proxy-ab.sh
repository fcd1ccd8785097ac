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
# The stub is bench/proxy.sh's (nginx-light, 2 workers, `reuseport`, `{"id":"1","name":"bench"}`
# with usage headers at low percentages); every run is `wrk -t2 -c$CONNS -d$DURATION`s against
# `GET /v26.0/me?access_token=EAAbench123` (a token no inventory knows: passed through). CPU per
# request is the proxy process's utime+stime delta over the requests wrk counted (printed also
# as user+system, apart).
#
# Knobs: ROUNDS (6), DURATION (6), CONNS (64), REC (false: graphwarden's `proxy.record`), BARE
# (0). About ROUNDS × binaries × (DURATION + 1) s. Loopback only; stops only what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-6}
CONNS=${CONNS:-64}
REC=${REC:-false}
BARE=${BARE:-0}
PATH_QUERY='/v26.0/me?access_token=EAAbench123'
(($# >= 2)) || { sed -n '2,18p' "$0" >&2; exit 2; }
for tool in wrk:wrk nginx:nginx-light curl:curl python3:python3; do
    cmd=${tool%%:*} pkg=${tool#*:}
    command -v "$cmd" >/dev/null 2>&1 || [[ -x "/usr/sbin/$cmd" ]] ||
        { DEBIAN_FRONTEND=noninteractive apt-get install -y "$pkg" >/dev/null 2>&1 ||
            { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "$pkg" >/dev/null; }; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

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

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
STUB_PORT=$(free_port)
mkdir -p "$WORK/stub/tmp"
cat >"$WORK/stub/nginx.conf" <<EOF
worker_processes 2;
daemon off;
master_process on;
user root root;
pid $WORK/stub/nginx.pid;
error_log $WORK/stub/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    client_body_temp_path $WORK/stub/tmp/body;
    proxy_temp_path $WORK/stub/tmp/proxy;
    fastcgi_temp_path $WORK/stub/tmp/fastcgi;
    uwsgi_temp_path $WORK/stub/tmp/uwsgi;
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
EOF
"$NGINX" -p "$WORK/stub" -e "$WORK/stub/error.log" -c "$WORK/stub/nginx.conf" >"$WORK/stub/out" 2>&1 &
PIDS+=($!)
STUB_URL="http://127.0.0.1:$STUB_PORT"
for _ in $(seq 100); do curl -sf -o /dev/null "$STUB_URL/" && break; sleep 0.1; done

declare -a URL PID NAME
n=0
for bin in "$@"; do
    dir="$WORK/c$n"
    mkdir -p "$dir"
    cp "$bin" "$dir/bin" # a copy: a rebuild cannot swap it mid-run
    if [[ "$BARE" == 1 ]]; then
        "$dir/bin" 127.0.0.1:0 "$STUB_URL" 2 >"$dir/out" 2>"$dir/err" &
    else
        "$dir/bin" --data-dir "$dir/data" init >"$dir/init" 2>&1 || { cat "$dir/init" >&2; exit 1; }
        env GRAPHWARDEN_PROXY__UPSTREAM="$STUB_URL" GRAPHWARDEN_PROXY__RECORD="$REC" \
            GRAPHWARDEN_SCHEDULER__ENABLED=false GRAPHWARDEN_ALERTS__ENABLED=false \
            GRAPHWARDEN_LOG__LEVEL=warn \
            "$dir/bin" --data-dir "$dir/data" serve --listen 127.0.0.1:0 --proxy-listen 127.0.0.1:0 \
            >"$dir/out" 2>"$dir/err" &
    fi
    PID[n]=$!
    PIDS+=("${PID[n]}")
    NAME[n]=$bin
    url=""
    for _ in $(seq 300); do
        if [[ "$BARE" == 1 ]]; then
            url=$(grep -o 'http://[0-9.:]*' "$dir/out" 2>/dev/null || true)
        else
            url=$(grep -o 'Graph proxy on http://[0-9.:]*' "$dir/out" 2>/dev/null | sed 's/^Graph proxy on //' || true)
        fi
        [[ -n "$url" ]] && break
        kill -0 "${PID[n]}" 2>/dev/null || { cat "$dir/err" >&2; echo "$bin exited" >&2; exit 1; }
        sleep 0.1
    done
    [[ -n "$url" ]] || { echo "$bin: no proxy address" >&2; exit 1; }
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
