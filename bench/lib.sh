# What the proxy benchmarks share (sourced by proxy.sh, proxy-ab.sh and proxy-instructions.sh):
# the tools they install, the upstream stub they all measure against, and how they start a
# graphwarden proxy. One stub definition, so that the three scripts' figures stay comparable.
#
# The stub: nginx-light with 2 workers, listening with `reuseport` (an accept queue per worker,
# so a proxy's kept-alive connections spread evenly over them), answering every path with
# `{"id":"1","name":"bench"}` (`application/json`) and usage headers at low percentages
# (x-app-usage 10 %, x-business-use-case-usage 5 %: graphwarden's pacer, which spaces calls
# above 75 %, never slows a call), and `stub_status` at /__stub_status.

BENCH_PATH_QUERY='/v26.0/me?access_token=EAAbench123' # a token no inventory knows: passed through
STUB_BODY='{"id":"1","name":"bench"}'
STUB_APP_USAGE='{"call_count":10,"total_time":5,"total_cputime":5}'
STUB_BUC_USAGE='{"1":[{"type":"ads_management","call_count":5,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":0}]}'

# need COMMAND DEBIAN-PACKAGE: install the package when the command is missing.
need() {
    command -v "$1" >/dev/null 2>&1 && return
    [[ -x "/usr/sbin/$1" ]] && return
    echo "installing $2 (Debian package)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >/dev/null 2>&1 ||
        { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >/dev/null; }
}

# nginx_path: where nginx is (Debian puts it in /usr/sbin, often not on PATH).
nginx_path() { command -v nginx || echo /usr/sbin/nginx; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_http URL: until it answers 200 (10 s at most).
wait_http() {
    for _ in $(seq 100); do
        [[ "$(curl -s --max-time 1 -o /dev/null -w '%{http_code}' "$1" || true)" == 200 ]] && return 0
        sleep 0.1
    done
    return 1
}

# nginx_conf DIR PORT SERVER-BLOCK-BODY [HTTP-EXTRA] [LISTEN-OPTIONS] [WORKERS]: an nginx
# configuration in DIR/nginx.conf, everything it writes kept under DIR.
nginx_conf() {
    mkdir -p "$1/tmp"
    cat >"$1/nginx.conf" <<EOF
worker_processes ${6:-2};
daemon off;
master_process on;
user root root;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
    ${4:-}
    server {
        listen 127.0.0.1:$2 backlog=4096${5:+ $5};
        $3
    }
}
EOF
}

# stub_conf DIR PORT [WORKERS]: the stub's configuration (see the top of this file).
stub_conf() {
    nginx_conf "$1" "$2" "
        location = /__stub_status { stub_status; }
        location / {
            default_type application/json;
            add_header x-app-usage '$STUB_APP_USAGE' always;
            add_header x-business-use-case-usage '$STUB_BUC_USAGE' always;
            return 200 '$STUB_BODY';
        }" "" reuseport "${3:-2}"
}

# proxy_conf DIR PORT STUB-PORT [WORKERS]: nginx as the reverse proxy graphwarden is compared
# with, in front of the stub: HTTP/1.1 to it with `keepalive 64` (requests per connection
# unlimited, as neither hyper's server nor its client closes after a number of them).
proxy_conf() {
    nginx_conf "$1" "$2" "
        location / {
            proxy_pass http://stub;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }" "upstream stub { server 127.0.0.1:$3; keepalive 64; keepalive_requests 100000000; }" "" "${4:-2}"
}

# start_nginx DIR: run the nginx configured in DIR in the background; sets NGINX_PID.
start_nginx() {
    "$(nginx_path)" -p "$1" -e "$1/error.log" -c "$1/nginx.conf" >"$1/out" 2>&1 &
    NGINX_PID=$!
}

# binaries: build the tree's `graphwarden` and `examples/bare_proxy` (release), unless
# GW_BINARY / BARE_BINARY name builds to measure instead; sets both to what will be measured.
binaries() {
    if [[ -z "${GW_BINARY:-}" ]]; then
        cargo build --quiet --release -p graphwarden
        GW_BINARY=target/release/graphwarden
    fi
    if [[ -z "${BARE_BINARY:-}" ]]; then
        cargo build --quiet --release -p graphwarden-server --example bare_proxy
        BARE_BINARY=target/release/examples/bare_proxy
    fi
}

# start_bare BINARY DIR UPSTREAM WORKERS: the floor (examples/bare_proxy.rs) on a free
# loopback port in front of UPSTREAM, its output in DIR/bare.out and DIR/bare.err; sets
# BARE_PID, and BARE_URL once it listens (fails if it never does, within 10 s).
start_bare() {
    "$1" 127.0.0.1:0 "$3" "$4" >"$2/bare.out" 2>"$2/bare.err" &
    BARE_PID=$!
    BARE_URL=""
    for _ in $(seq 100); do
        BARE_URL=$(grep -o 'http://[0-9.:]*' "$2/bare.out" 2>/dev/null || true)
        [[ -n "$BARE_URL" ]] && return 0
        sleep 0.1
    done
    cat "$2/bare.err" >&2
    echo "the floor (bare_proxy) did not start" >&2
    return 1
}

# start_graphwarden BINARY DIR UPSTREAM RECORD [WRAPPER...]: `init` a data directory in DIR,
# then `serve --proxy-listen` on a free loopback port in front of UPSTREAM, with proxy.record =
# RECORD, the scheduler and alerts off and log.level = warn, under WRAPPER (valgrind, say) when
# given. Sets GW_PID; DIR/out and DIR/err hold its output. `graphwarden_url` waits for its address.
start_graphwarden() {
    local bin=$1 dir=$2 upstream=$3 record=$4
    shift 4
    mkdir -p "$dir"
    # (A data directory set up already, by `inject_setup` say, is kept.)
    [[ -e "$dir/data" ]] ||
        "$bin" --data-dir "$dir/data" init >"$dir/init" 2>&1 || { cat "$dir/init" >&2; return 1; }
    env GRAPHWARDEN_PROXY__UPSTREAM="$upstream" GRAPHWARDEN_PROXY__RECORD="$record" \
        GRAPHWARDEN_SCHEDULER__ENABLED=false GRAPHWARDEN_ALERTS__ENABLED=false \
        GRAPHWARDEN_LOG__LEVEL=warn \
        "$@" "$bin" --data-dir "$dir/data" serve --listen 127.0.0.1:0 --proxy-listen 127.0.0.1:0 \
        >"$dir/out" 2>"$dir/err" &
    GW_PID=$!
}

# graphwarden_url DIR PID [TENTHS]: print the proxy address the graphwarden in DIR announced
# (waiting up to TENTHS tenths of a second, 300 unless given); fails if it exits or never does.
graphwarden_url() {
    local url=""
    for _ in $(seq "${3:-300}"); do
        url=$(grep -o 'Graph proxy on http://[0-9.:]*' "$1/out" 2>/dev/null | sed 's/^Graph proxy on //' || true)
        [[ -n "$url" ]] && break
        kill -0 "$2" 2>/dev/null || { cat "$1/err" >&2; echo "graphwarden ($1) exited" >&2; return 1; }
        sleep 0.1
    done
    case "$url" in
        http://127.0.0.1:*) echo "$url" ;;
        *) cat "$1/out" "$1/err" >&2; echo "graphwarden ($1): no loopback proxy address: '$url'" >&2; return 1 ;;
    esac
}

# inject_setup BINARY DIR UPSTREAM: a data directory in DIR/data holding an app (1234, with a
# secret), a stored user token of a real one's length (200 characters) as `bench`, and a
# consumer key for it; prints the key. The token's first inspection, which `token add` tries,
# goes to UPSTREAM (the stub, which cannot answer it: the token is stored as `unknown`).
inject_setup() {
    local bin=$1 dir=$2 upstream=$3
    mkdir -p "$dir"
    export GRAPHWARDEN_GRAPH_URL="$upstream"
    "$bin" --data-dir "$dir/data" init >"$dir/init" 2>&1 || { cat "$dir/init" >&2; return 1; }
    BENCH_APP_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(16))') \
        "$bin" --data-dir "$dir/data" app add --name bench --secret-env BENCH_APP_SECRET 1234 \
        >>"$dir/init" 2>&1 || { cat "$dir/init" >&2; return 1; }
    printf 'EAA%s' "$(python3 -c "print('Zx9Q' * 49 + 'x')")" |
        "$bin" --data-dir "$dir/data" token add --app 1234 --kind user bench >>"$dir/init" 2>&1 ||
        { cat "$dir/init" >&2; return 1; }
    unset GRAPHWARDEN_GRAPH_URL
    "$bin" --data-dir "$dir/data" apikey create --name bench --role consumer --aliases bench 2>&1 |
        grep -o 'gwk_[A-Za-z0-9_]*' | tail -1
}
