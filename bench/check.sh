#!/usr/bin/env bash
# Inspection at scale: `graphwarden check --json` over N (default 100,000) tokens against the
# simulator. Goal on a 2-core machine: at least MIN_TPS (2,000) tokens/s and at most MAX_RSS_MB
# (200) MB peak resident memory, limited by Meta's (the simulator's) rate limits rather than by
# graphwarden.
#
# What it does:
#  1. Builds graphwarden (release) and copies the binary into a scratch directory, so that
#     concurrent edits and builds of the tree cannot change the program halfway through.
#  2. The inventory: `graphwarden init`, `app add`, then N × `graphwarden token add`, run
#     LOAD_JOBS at a time with xargs. There is no bulk import, and the secrets are sealed per
#     row, so rows cannot be written with sqlite3. Each add would inspect its token at once; the
#     loader points GRAPHWARDEN_GRAPH_URL at a closed loopback port (127.0.0.1:1) with retries
#     off, so the token is stored as `unknown` without a Graph call. This is setup, not the
#     measurement. It takes about 8 to 12 minutes for 100,000 tokens on 2 cores (about 9 ms of
#     CPU per process), so the loaded data directory is kept in CACHE_DIR
#     (target/bench-check/n$N-s$SEED) and reused by later runs; FRESH=1 reloads it.
#  3. The world: bench/check_world.py writes a simulator scenario with the same N token strings
#     (they depend only on SEED), expiries relative to now, one app and 1,000 users. The mix is
#     88 % valid, 5 % expiring within 7 days, 3 % password changed, 2 % expired, 2 %
#     de-authorized, so the store writes vary like a real inventory's.
#     The app has daily_active_users = DAU (default 1,000): an allowance of 200 × 1,000 =
#     200,000 calls per rolling hour, a mid-sized app. One round of 100,000 `debug_token` calls
#     uses 50 % of it: under graphwarden's pacing threshold (75 %), so the measured time is
#     graphwarden's and the simulator's work, not throttling. The usage is cleared between
#     rounds (as if an hour had passed).
#  4. Two measured rounds on the same copy of the inventory:
#       first   every token is `unknown` (just loaded): each gets a status change and an event;
#       steady  the same tokens an hour later: nothing changes (the cron case).
#     Each round runs `graphwarden check --json` under /usr/bin/time -v (wall time, peak RSS,
#     CPU), with `graphwarden_meta::client=trace` logging so that every Graph HTTP request that
#     answered is counted ("Graph answered."; transient retries are logged too), while a
#     sampler polls the simulator's usage and both processes' CPU and RSS every 0.2 s. From the
#     samples: when the simulator had answered the last debug_token (end of the Graph phase)
#     and what graphwarden did after it (writing the results to the store).
#     The output is verified: N tokens, all inspected, exactly the expected statuses.
#  5. Prints a table and exits non-zero if a round misses MIN_TPS or MAX_RSS_MB, or fails the
#     verification.
#
# Knobs: N, SEED, DAU, LOAD_JOBS (default 4), ROUNDS ("first steady"), CONCURRENCY (sets
# GRAPHWARDEN_INSPECTION__CONCURRENCY; unset = the product's default), MIN_TPS, MAX_RSS_MB,
# CACHE_DIR, FRESH, KEEP (keep the scratch directory).
# Loopback only. Bounded: load once (above), then each round takes N / throughput seconds plus
# a few seconds. Kills only the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

N=${N:-100000}
SEED=${SEED:-1}
DAU=${DAU:-1000}
LOAD_JOBS=${LOAD_JOBS:-4}
LOAD_CHUNK=${LOAD_CHUNK:-5000}
ROUNDS=${ROUNDS:-"first steady"}
MIN_TPS=${MIN_TPS:-2000}
MAX_RSS_MB=${MAX_RSS_MB:-200}
CACHE_DIR=${CACHE_DIR:-$ROOT/target/bench-check}
ROUND_TIMEOUT=${ROUND_TIMEOUT:-600}
FRESH=${FRESH:-0}
KEEP=${KEEP:-0}
APP_ID=1000000000000001
APP_SECRET=0123456789abcdef0123456789abcdef
HELPER="python3 $ROOT/bench/check_world.py"
T_START=$(date +%s)

say() { printf '[%5ds] %s\n' $(($(date +%s) - T_START)) "$*"; }

cargo build --quiet --release -p graphwarden
if [[ ! -x /usr/bin/time ]]; then
    say "installing GNU time (Debian package time)"
    apt-get install -y time >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y time >/dev/null; }
fi

WORK=$(mktemp -d)
SIM_PID=""
SAMPLER_PID=""
cleanup() {
    for pid in "$SAMPLER_PID" "$SIM_PID"; do
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
cp target/release/graphwarden "$GW"
TREE="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates 2>/dev/null || echo '+dirty')"
say "graphwarden check at scale: N=$N tokens, seed $SEED, DAU $DAU, tree $TREE"
say "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM"

# ---------------------------------------------------------------------------------------------
# 2. The inventory (cached).
CACHE="$CACHE_DIR/n$N-s$SEED"
if [[ "$FRESH" == 1 || ! -f "$CACHE/complete" ]]; then
    rm -rf "$CACHE"
    mkdir -p "$CACHE"
    say "loading $N tokens into a new inventory ($LOAD_JOBS processes at a time; one-time setup, cached in $CACHE)"
    "$GW" --data-dir "$CACHE/data" init >/dev/null
    printf '%s\n' "$APP_SECRET" | "$GW" --data-dir "$CACHE/data" app add "$APP_ID" --name "check bench app" >/dev/null
    $HELPER tokens "$N" "$SEED" >"$WORK/tokens.txt"
    split -l "$LOAD_CHUNK" -d -a 4 "$WORK/tokens.txt" "$WORK/chunk."
    export GW CACHE
    load_start=$(date +%s.%N)
    loaded=0
    for chunk in "$WORK"/chunk.*; do
        # One process per token; the token travels in an environment variable, never argv of
        # graphwarden. A failure is retried below, so xargs' status is not fatal here.
        GRAPHWARDEN_GRAPH_URL=http://127.0.0.1:1 GRAPHWARDEN_GRAPH__RETRIES=0 \
            xargs -P "$LOAD_JOBS" -L 1 sh -c 'T=$1 exec "$GW" --data-dir "$CACHE/data" token add "$0" --app '"$APP_ID"' --kind user --owner bench@example.com --tag "$2" --from-env T >/dev/null 2>&1' \
            <"$chunk" || true
        loaded=$((loaded + $(wc -l <"$chunk")))
        elapsed=$(echo "$(date +%s.%N) - $load_start" | bc)
        say "$(awk -v l="$loaded" -v n="$N" -v e="$elapsed" 'BEGIN {r = l / e; printf "loaded %d/%d tokens, %.0f tokens/s, about %.0f s to go", l, n, r, (n - l) / r}')"
    done
    # Whatever failed (a lock held too long, say) is added again, one at a time.
    "$GW" --data-dir "$CACHE/data" token list --json | python3 -c 'import json, sys; [print(t["alias"]) for t in json.load(sys.stdin)]' | sort >"$WORK/have.txt"
    sort "$WORK/tokens.txt" | join -v 1 - "$WORK/have.txt" >"$WORK/missing.txt" || true
    if [[ -s "$WORK/missing.txt" ]]; then
        say "retrying $(wc -l <"$WORK/missing.txt") token(s) that did not load"
        GRAPHWARDEN_GRAPH_URL=http://127.0.0.1:1 GRAPHWARDEN_GRAPH__RETRIES=0 \
            xargs -P 1 -L 1 sh -c 'T=$1 exec "$GW" --data-dir "$CACHE/data" token add "$0" --app '"$APP_ID"' --kind user --owner bench@example.com --tag "$2" --from-env T >/dev/null' \
            <"$WORK/missing.txt"
    fi
    count=$("$GW" --data-dir "$CACHE/data" token list --json | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
    if [[ "$count" != "$N" ]]; then
        echo "the inventory holds $count tokens, expected $N" >&2
        exit 1
    fi
    load_s=$(echo "$(date +%s.%N) - $load_start" | bc)
    printf 'loaded %s tokens in %.0f s with %s processes at a time on %s cores\n' "$N" "$load_s" "$LOAD_JOBS" "$(nproc)" >"$CACHE/load.txt"
    touch "$CACHE/complete"
fi
say "inventory: $(cat "$CACHE/load.txt"); database $(du -sh "$CACHE/data" | cut -f1)"
cp -a "$CACHE/data" "$WORK/data"

# ---------------------------------------------------------------------------------------------
# 3. The simulator, with the same tokens.
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

TICKS=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime, fields 14 and 15 of /proc/PID/stat
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo $((${12} + ${13}))
}
sim_calls() {
    curl -sf --max-time 5 "$URL/__sim/usage" | python3 -c "import json, sys; print(int(json.load(sys.stdin).get('apps', {}).get('$APP_ID', {}).get('calls_last_hour', 0)))"
}
# "m:ss.ss" or "h:mm:ss" from time -v → seconds
to_seconds() { awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }' <<<"$1"; }

EXPECTED_REQUESTS=$(((N + 49) / 50))
FAILED=0
declare -a SUMMARY
for round in $ROUNDS; do
    case "$round" in first | steady) ;; *) echo "unknown round $round" >&2; exit 64 ;; esac
    # A new hour for Meta: the app's window starts empty.
    curl -sf -X DELETE "$URL/__sim/usage" >/dev/null
    curl -sf -X DELETE "$URL/__sim/calls" >/dev/null
    say "round '$round': graphwarden check --json over $N tokens"
    sim_before=$(cpu_ticks "$SIM_PID")
    rm -f "$WORK/stop"
    env_extra=()
    [[ -n "${CONCURRENCY:-}" ]] && env_extra+=("GRAPHWARDEN_INSPECTION__CONCURRENCY=$CONCURRENCY")
    since_ms=$(($(date +%s%3N) - 1000))
    set +e
    # time -v reports the peak RSS of the process tree it waited for (timeout, graphwarden).
    env GRAPHWARDEN_GRAPH_URL="$URL" GRAPHWARDEN_LOG__LEVEL='warn,reqwest::retry=trace,graphwarden_meta::client=debug' "${env_extra[@]}" \
        /usr/bin/time -v -o "$WORK/time-$round.txt" \
        timeout --signal=KILL "$ROUND_TIMEOUT" \
        "$GW" --data-dir "$WORK/data" check --json >"$WORK/check-$round.json" 2>"$WORK/check-$round.err" &
    TIME_PID=$!
    $HELPER sample "$URL" "$APP_ID" "$SIM_PID" "$TIME_PID" "$WORK/samples-$round.tsv" "$WORK/stop" \
        "$WORK/data/graphwarden.db" "$since_ms" &
    SAMPLER_PID=$!
    wait "$TIME_PID"
    rc=$?
    set -e
    touch "$WORK/stop"
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
    sim_after=$(cpu_ticks "$SIM_PID")
    calls=$(sim_calls)
    if [[ "$rc" == 137 ]] || grep -q 'Command terminated by signal 9' "$WORK/time-$round.txt"; then
        phases=$($HELPER phases "$WORK/samples-$round.tsv" "$N")
        echo "  MISSED: killed after ROUND_TIMEOUT=$ROUND_TIMEOUT s without finishing; peak RSS $(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$WORK/time-$round.txt") MB"
        echo "  $calls debug_token calls charged; phases (from samples): $phases"
        SUMMARY+=("$(printf '%-7s %8s %8s %9s %9s %9s %9s %9s %9s' "$round" "$N" ">$ROUND_TIMEOUT" "<$(awk -v n="$N" -v w="$ROUND_TIMEOUT" 'BEGIN {printf "%.0f", n / w}')" "-" "-" "-" "-" "$calls")")
        FAILED=1
        # The inventory is half-written now; later rounds would measure something else.
        break
    fi
    if [[ "$rc" -ge 64 ]]; then
        echo "graphwarden check failed with exit $rc:" >&2
        grep -v "shouldn't retry" "$WORK/check-$round.err" | tail -5 >&2
        exit 1
    fi
    wall=$(to_seconds "$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time-$round.txt")")
    rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time-$round.txt")
    gw_user=$(awk -F': ' '/User time/ {print $2}' "$WORK/time-$round.txt")
    gw_sys=$(awk -F': ' '/System time/ {print $2}' "$WORK/time-$round.txt")
    requests=$(grep -c "shouldn't retry" "$WORK/check-$round.err" || true)
    retries=$(grep -c 'Retrying a transient' "$WORK/check-$round.err" || true)
    sim_cpu=$(awk -v a="$sim_before" -v b="$sim_after" -v hz="$TICKS" 'BEGIN {printf "%.2f", (b - a) / hz}')
    tps=$(awk -v n="$N" -v w="$wall" 'BEGIN {printf "%.0f", n / w}')
    rss_mb=$(awk -v k="$rss_kb" 'BEGIN {printf "%.1f", k / 1024}')
    verdict=$($HELPER verify "$N" "$SEED" "$WORK/check-$round.json") || { echo "round $round: the output is wrong" >&2; FAILED=1; }
    phases=$($HELPER phases "$WORK/samples-$round.tsv" "$N")
    echo "  exit $rc (2 = critical tokens present, as the world has dead ones); $verdict"
    echo "  wall ${wall} s -> $tps tokens/s; peak RSS $rss_mb MB; graphwarden CPU user ${gw_user} s + sys ${gw_sys} s; simulator CPU ${sim_cpu} s"
    echo "  Graph: $requests HTTP requests answered (expected $EXPECTED_REQUESTS batches of <= 50), $retries retries, $calls debug_token calls charged to the app ($(awk -v c="$calls" -v l=$((200 * DAU)) 'BEGIN {printf "%.1f", c * 100 / l}') % of the hour's allowance)"
    echo "  phases (from 0.2 s samples): $phases"
    SUMMARY+=("$(printf '%-7s %8s %8s %9s %9s %9s %9s %9s %9s' "$round" "$N" "$wall" "$tps" "$rss_mb" "$(awk -v u="$gw_user" -v s="$gw_sys" 'BEGIN {printf "%.2f", u + s}')" "$sim_cpu" "$requests" "$calls")")
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
printf '%-7s %8s %8s %9s %9s %9s %9s %9s %9s\n' round tokens "wall s" "tokens/s" "RSS MB" "gw CPU s" "sim CPU s" requests calls
for line in "${SUMMARY[@]}"; do echo "$line"; done
say "done"
if [[ "$FAILED" != 0 ]]; then
    echo "FAIL: goal $MIN_TPS tokens/s and $MAX_RSS_MB MB not met (see above)" >&2
    exit 1
fi
echo "PASS: every round at least $MIN_TPS tokens/s and at most $MAX_RSS_MB MB"
