#!/usr/bin/env bash
# Inspection at scale: `graphwarden check --json` over N (default 100,000) tokens against the
# simulator. Goal on a 2-core machine: at least MIN_TPS (2,000) tokens/s and at most MAX_RSS_MB
# (200) MB peak resident memory, limited by Meta's (the simulator's) rate limits rather than by
# graphwarden.
#
# 1. Builds graphwarden (release) and copies the binary into a scratch directory, so that
#    concurrent edits and builds of the tree cannot change the program halfway through.
# 2. The world: bench/check_world.py writes a simulator scenario with one app, 1,000 people who
#    authorised it and N user tokens whose strings depend only on SEED (expiries are relative to
#    now, so it is written fresh every run). Each person holds 100 tokens: 88 valid, 5 expiring
#    within 7 days, 3 killed by a password change, 2 expired, 2 de-authorized.
#    The app has daily_active_users = DAU (default 1,000): an allowance of 200 × 1,000 =
#    200,000 calls per rolling hour, a mid-sized app. One round of 100,000 `debug_token` calls
#    uses 50 % of it, under graphwarden's pacing threshold (75 %), so a round measures
#    graphwarden's and the simulator's work, not throttling. The usage is cleared before each
#    round, as if an hour had passed. DAU=600 (120,000 calls an hour) shows the pacing instead:
#    the round then crosses 75 % at 90,000 calls and graphwarden spreads the rest out.
# 3. The inventory: `graphwarden init`, `app add`, then N × `graphwarden token add` (there is no
#    bulk import, and secrets are sealed per row, so rows cannot be written with sqlite3),
#    LOAD_JOBS processes at a time with xargs, each inspecting its token against the simulator
#    as `token add` does, so every token is stored with its real status. This is setup, not the
#    measurement, but slow: about 15 minutes for 100,000 tokens on 2 cores (about 200 tokens/s
#    at first, under 100/s near the end, as each `token add` counts the app's tokens). The data
#    directory is cached in CACHE_DIR (target/bench-check/n$N-s$SEED-v2) and reused; FRESH=1
#    reloads. Every run works on a copy (opening it migrates the schema when the tree has moved
#    on). With the cache, the three rounds take 1 to 8 minutes, depending on graphwarden.
# 4. The measured rounds (ROUNDS, default "steady steady deaths"):
#      steady  `graphwarden check --json` over all N tokens; nothing changed since the last
#              inspection (the hourly cron job).
#      deaths  the same, after a password change of DEATH_USERS people (default 1: 93 of their
#              tokens die), so `check` also looks for tokens derived from each newly dead one.
#    Each round runs under /usr/bin/time -v (wall time, peak RSS, CPU) and `timeout`
#    (ROUND_TIMEOUT, default 600 s), with logging `reqwest::retry=trace` (one "shouldn't retry"
#    line per HTTP response: the Graph requests made) and `graphwarden_meta::client=debug`
#    (graphwarden's own retries). A sampler polls the simulator's usage, both processes' CPU and
#    RSS every 0.2 s and, once a second, how many tokens the database (read-only) shows as
#    inspected in this round. From the samples: when the simulator had answered the last
#    `debug_token` (end of the Graph phase) and how fast graphwarden wrote results after it.
#    The output is verified: N tokens, all inspected, exactly the expected statuses.
# 5. Prints a table and exits non-zero if a round misses MIN_TPS or MAX_RSS_MB, runs out of time,
#    or fails the verification.
#
# Before each round it waits (up to QUIET_WAIT, 180 s) for a second in which other processes use
# under a quarter of a core, and it reports the CPU everything else used during the round.
#
# Knobs: N, SEED, DAU, LOAD_JOBS (4), ROUNDS, DEATH_USERS (1), ROUND_TIMEOUT (600), QUIET_WAIT,
# CONCURRENCY (sets GRAPHWARDEN_INSPECTION__CONCURRENCY; unset = the product's default of 4),
# MIN_TPS (2000), MAX_RSS_MB (200), CACHE_DIR, FRESH, KEEP (1 = keep the scratch directory),
# GW_BINARY (measure this binary instead of building the tree, e.g. a candidate fix).
# Loopback only; kills only the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

N=${N:-100000}
SEED=${SEED:-1}
DAU=${DAU:-1000}
LOAD_JOBS=${LOAD_JOBS:-4}
LOAD_CHUNK=${LOAD_CHUNK:-5000}
ROUNDS=${ROUNDS:-"steady steady deaths"}
DEATH_USERS=${DEATH_USERS:-1}
ROUND_TIMEOUT=${ROUND_TIMEOUT:-600}
QUIET_WAIT=${QUIET_WAIT:-180}
MIN_TPS=${MIN_TPS:-2000}
MAX_RSS_MB=${MAX_RSS_MB:-200}
CACHE_DIR=${CACHE_DIR:-$ROOT/target/bench-check}
FRESH=${FRESH:-0}
KEEP=${KEEP:-0}
APP_ID=1000000000000001
APP_SECRET=0123456789abcdef0123456789abcdef
HELPER="python3 $ROOT/bench/check_world.py"
T_START=$(date +%s)

say() { printf '[%5ds] %s\n' $(($(date +%s) - T_START)) "$*"; }

if [[ -z "${GW_BINARY:-}" ]]; then
    cargo build --quiet --release -p graphwarden
fi
if [[ ! -x /usr/bin/time ]]; then
    say "installing GNU time (Debian package time)"
    apt-get install -y time >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y time >/dev/null; }
fi

WORK=$(mktemp -d)
SIM_PID=""
SAMPLER_PID=""
TIME_PID=""
cleanup() {
    for pid in "$SAMPLER_PID" "$TIME_PID" "$SIM_PID"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [[ "$KEEP" == 1 ]]; then
        echo "kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

GW="$WORK/graphwarden"
if [[ -n "${GW_BINARY:-}" ]]; then
    cp "$GW_BINARY" "$GW"
    TREE="binary $GW_BINARY"
else
    cp target/release/graphwarden "$GW"
    TREE="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates 2>/dev/null || echo '+dirty')"
fi
say "graphwarden check at scale: N=$N tokens, seed $SEED, DAU $DAU, tree $TREE"
say "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM"

# ---------------------------------------------------------------------------------------------
# The simulator, with the N tokens.
$HELPER world "$N" "$SEED" "$WORK/world.json" "$DAU"
"$GW" sim --listen 127.0.0.1:0 --control --json --scenario "$WORK/world.json" >"$WORK/sim.json" 2>"$WORK/sim.err" &
SIM_PID=$!
for _ in $(seq 300); do
    [[ -s "$WORK/sim.json" ]] && break
    kill -0 "$SIM_PID" 2>/dev/null || { cat "$WORK/sim.err" >&2; echo "the simulator exited" >&2; exit 1; }
    sleep 0.1
done
URL=$(head -n 1 "$WORK/sim.json" | grep -o '"url":"[^"]*"' | cut -d'"' -f4)
case "$URL" in
    http://127.0.0.1:*) ;;
    *) echo "refusing a non-loopback simulator URL: $URL" >&2; exit 1 ;;
esac
say "simulator on $URL (pid $SIM_PID): $N tokens, allowance $((200 * DAU)) calls per rolling hour"

# ---------------------------------------------------------------------------------------------
# The inventory (cached).
CACHE="$CACHE_DIR/n$N-s$SEED-v2"
if [[ "$FRESH" == 1 || ! -f "$CACHE/complete" ]]; then
    rm -rf "$CACHE"
    mkdir -p "$CACHE"
    say "loading $N tokens with graphwarden token add, $LOAD_JOBS at a time (one-time setup, cached in $CACHE)"
    "$GW" --data-dir "$CACHE/data" init >/dev/null
    printf '%s\n' "$APP_SECRET" | "$GW" --data-dir "$CACHE/data" app add "$APP_ID" --name "check bench app" >/dev/null
    $HELPER tokens "$N" "$SEED" >"$WORK/tokens.txt"
    split -l "$LOAD_CHUNK" -d -a 4 "$WORK/tokens.txt" "$WORK/chunk."
    export GW CACHE APP_ID
    export GRAPHWARDEN_GRAPH_URL="$URL"
    # One process per token; the token travels in an environment variable, never in
    # graphwarden's argv. Failures are retried one at a time below.
    add_tokens() {
        xargs -P "$1" -L 1 sh -c 'T=$1 exec "$GW" --data-dir "$CACHE/data" token add "$0" --app "$APP_ID" --kind user --owner bench@example.com --tag "$2" --from-env T >/dev/null 2>&1'
    }
    load_start=$(date +%s.%N)
    loaded=0
    for chunk in "$WORK"/chunk.*; do
        add_tokens "$LOAD_JOBS" <"$chunk" || true
        loaded=$((loaded + $(wc -l <"$chunk")))
        elapsed=$(echo "$(date +%s.%N) - $load_start" | bc)
        say "$(awk -v l="$loaded" -v n="$N" -v e="$elapsed" 'BEGIN {r = l / e; printf "loaded %d/%d tokens, %.0f tokens/s, about %.0f s to go", l, n, r, (n - l) / r}')"
    done
    "$GW" --data-dir "$CACHE/data" token list --json | python3 -c 'import json, sys; [print(t["alias"]) for t in json.load(sys.stdin)]' | sort >"$WORK/have.txt"
    sort "$WORK/tokens.txt" | join -v 1 - "$WORK/have.txt" >"$WORK/missing.txt" || true
    if [[ -s "$WORK/missing.txt" ]]; then
        say "retrying $(wc -l <"$WORK/missing.txt") token(s) that did not load"
        add_tokens 1 <"$WORK/missing.txt" || true
    fi
    unset GRAPHWARDEN_GRAPH_URL
    count=$("$GW" --data-dir "$CACHE/data" token list --json | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
    if [[ "$count" != "$N" ]]; then
        echo "the inventory holds $count tokens, expected $N" >&2
        exit 1
    fi
    load_s=$(echo "$(date +%s.%N) - $load_start" | bc)
    printf 'loaded and inspected %s tokens in %.0f s with %s processes at a time on %s cores\n' "$N" "$load_s" "$LOAD_JOBS" "$(nproc)" >"$CACHE/load.txt"
    touch "$CACHE/complete"
fi
say "inventory: $(cat "$CACHE/load.txt"); data directory $(du -sh "$CACHE/data" | cut -f1)"
cp -a "$CACHE/data" "$WORK/data"

# ---------------------------------------------------------------------------------------------
# The rounds.
TICKS=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime, fields 14 and 15 of /proc/PID/stat
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo $((${12} + ${13}))
}
busy_ticks() { # all CPUs' busy time from /proc/stat: user nice system irq softirq steal
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
}
sim_calls() {
    curl -sf --max-time 5 "$URL/__sim/usage" | python3 -c "import json, sys; print(int(json.load(sys.stdin).get('apps', {}).get('$APP_ID', {}).get('calls_last_hour', 0)))"
}
to_seconds() { awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }' <<<"$1"; }

EXPECTED_REQUESTS=$(((N + 49) / 50))
KILLED=""
FAILED=0
declare -a SUMMARY
round_no=0
for round in $ROUNDS; do
    round_no=$((round_no + 1))
    name="$round_no-$round"
    case "$round" in
        steady) ;;
        deaths)
            # DEATH_USERS more people (after any killed already) change their password.
            start_user=$(awk -F, '{print NF}' <<<"$KILLED")
            now_killed=""
            for u in $(seq "$start_user" $((start_user + DEATH_USERS - 1))); do
                curl -sf -X POST "$URL/__sim/events/password_change" \
                    -d "{\"user_id\":\"$((100000000000001 + u))\"}" >/dev/null
                now_killed="${now_killed:+$now_killed,}$u"
            done
            KILLED="${KILLED:+$KILLED,}$now_killed"
            ;;
        *) echo "unknown round $round (use steady or deaths)" >&2; exit 64 ;;
    esac
    newly_dead=$([[ "$round" == deaths ]] && $HELPER newly-dead "$N" "$now_killed" || echo 0)
    # This host is shared: wait (up to QUIET_WAIT s) until the other processes leave the CPUs
    # alone for a second, so that builds or tests of others do not end up in the figures.
    waited=0
    while :; do
        b0=$(busy_ticks)
        sleep 1
        b1=$(busy_ticks)
        others=$(awk -v d=$((b1 - b0)) -v hz="$TICKS" 'BEGIN {printf "%.2f", d / hz}')
        if awk -v o="$others" 'BEGIN {exit !(o < 0.25)}' || ((waited >= QUIET_WAIT)); then
            break
        fi
        ((waited == 0)) && say "the machine is busy ($others cores in use by others); waiting up to $QUIET_WAIT s"
        waited=$((waited + 1))
    done
    ((waited > 0)) && say "waited $waited s; $others cores in use by others"
    # A new hour for Meta: the app's window starts empty.
    curl -sf -X DELETE "$URL/__sim/usage" >/dev/null
    curl -sf -X DELETE "$URL/__sim/calls" >/dev/null
    say "round $name: graphwarden check --json over $N tokens${KILLED:+ (password changed: user(s) $KILLED; $newly_dead tokens die now)}"
    sim_before=$(cpu_ticks "$SIM_PID")
    busy_before=$(busy_ticks)
    rm -f "$WORK/stop"
    env_extra=()
    [[ -n "${CONCURRENCY:-}" ]] && env_extra+=("GRAPHWARDEN_INSPECTION__CONCURRENCY=$CONCURRENCY")
    since_ms=$(($(date +%s%3N) - 1000))
    set +e
    # time -v reports the peak RSS of the processes it waited for (timeout, graphwarden).
    env GRAPHWARDEN_GRAPH_URL="$URL" GRAPHWARDEN_LOG__LEVEL='warn,reqwest::retry=trace,graphwarden_meta::client=debug' "${env_extra[@]}" \
        /usr/bin/time -v -o "$WORK/time-$name.txt" \
        timeout --signal=KILL "$ROUND_TIMEOUT" \
        "$GW" --data-dir "$WORK/data" check --json >"$WORK/check-$name.json" 2>"$WORK/check-$name.err" &
    TIME_PID=$!
    $HELPER sample "$URL" "$APP_ID" "$SIM_PID" "$TIME_PID" "$WORK/samples-$name.tsv" "$WORK/stop" \
        "$WORK/data/graphwarden.db" "$since_ms" &
    SAMPLER_PID=$!
    wait "$TIME_PID"
    rc=$?
    TIME_PID=""
    set -e
    touch "$WORK/stop"
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
    sim_after=$(cpu_ticks "$SIM_PID")
    busy_after=$(busy_ticks)
    calls=$(sim_calls)
    phases=$($HELPER phases "$WORK/samples-$name.tsv" "$N")
    rss_mb=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$WORK/time-$name.txt")
    if [[ "$rc" == 137 ]] || grep -q 'Command terminated by signal 9' "$WORK/time-$name.txt"; then
        wall=$(to_seconds "$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time-$name.txt")")
        if awk -v w="$wall" -v t="$ROUND_TIMEOUT" 'BEGIN {exit !(w < t - 1)}'; then
            why="by the kernel (out of memory?) after $wall s"
        else
            why="after ROUND_TIMEOUT=$ROUND_TIMEOUT s"
        fi
        echo "  MISSED: graphwarden was killed $why without finishing; peak RSS $rss_mb MB"
        echo "  $calls debug_token calls charged; phases (from samples): $phases"
        SUMMARY+=("$(printf '%-9s %7s %8s %9s %7s %8s %8s %8s %7s %9s' "$name" "$N" "killed" "-" "$rss_mb" "-" "-" "-" "-" "$calls")")
        FAILED=1
        break # the inventory is half-written: later rounds would measure something else
    fi
    if [[ "$rc" -ge 64 ]]; then
        echo "graphwarden check failed with exit $rc:" >&2
        grep -v "shouldn't retry" "$WORK/check-$name.err" | tail -5 >&2
        exit 1
    fi
    wall=$(to_seconds "$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time-$name.txt")")
    gw_cpu=$(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {printf "%.2f (user %.2f, sys %.2f)", u + s, u, s}' "$WORK/time-$name.txt")
    # CPU the rest of the machine used meanwhile (other jobs on this shared host, the sampler).
    other_cpu=$(awk -v b0="$busy_before" -v b1="$busy_after" -v hz="$TICKS" -v g="${gw_cpu%% *}" -v sim0="$sim_before" -v sim1="$sim_after" \
        'BEGIN {printf "%.2f", (b1 - b0 - (sim1 - sim0)) / hz - g}')
    requests=$(grep -c "shouldn't retry" "$WORK/check-$name.err" || true)
    retries=$(grep -c 'Retrying a transient' "$WORK/check-$name.err" || true)
    sim_cpu=$(awk -v a="$sim_before" -v b="$sim_after" -v hz="$TICKS" 'BEGIN {printf "%.2f", (b - a) / hz}')
    tps=$(awk -v n="$N" -v w="$wall" 'BEGIN {printf "%.0f", n / w}')
    verdict=$($HELPER verify "$N" "$SEED" "$WORK/check-$name.json" "$KILLED") || { echo "  round $name: the output is wrong" >&2; FAILED=1; }
    echo "  exit $rc (2: the world holds dead tokens); $verdict"
    echo "  wall $wall s -> $tps tokens/s; peak RSS $rss_mb MB; graphwarden CPU $gw_cpu s; simulator CPU $sim_cpu s; everything else on the machine $other_cpu CPU s"
    echo "  Graph: $requests HTTP requests (expected $EXPECTED_REQUESTS batches of <= 50), $retries retries; $calls debug_token calls charged to the app ($(awk -v c="$calls" -v l=$((200 * DAU)) 'BEGIN {printf "%.1f", c * 100 / l}') % of the hour's allowance)"
    echo "  phases (from samples): $phases"
    SUMMARY+=("$(printf '%-9s %7s %8s %9s %7s %8s %8s %8s %7s %9s' "$name" "$N" "$wall" "$tps" "$rss_mb" "${gw_cpu%% *}" "$sim_cpu" "$requests" "$newly_dead" "$calls")")
    if awk -v t="$tps" -v m="$MIN_TPS" 'BEGIN {exit !(t < m)}'; then
        echo "  MISSED: $tps tokens/s is below $MIN_TPS"
        FAILED=1
    fi
    if awk -v r="$rss_mb" -v m="$MAX_RSS_MB" 'BEGIN {exit !(r > m)}'; then
        echo "  MISSED: peak RSS $rss_mb MB is above $MAX_RSS_MB MB"
        FAILED=1
    fi
done

echo
printf '%-9s %7s %8s %9s %7s %8s %8s %8s %7s %9s\n' round tokens "wall s" "tokens/s" "RSS MB" "gw CPU" "sim CPU" requests "died" "calls"
for line in "${SUMMARY[@]}"; do echo "$line"; done
say "done"
if [[ "$FAILED" != 0 ]]; then
    echo "FAIL: the goal ($MIN_TPS tokens/s, $MAX_RSS_MB MB, correct output) was not met in every round (see above)" >&2
    exit 1
fi
echo "PASS: every round at least $MIN_TPS tokens/s and at most $MAX_RSS_MB MB, output verified"
