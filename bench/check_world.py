#!/usr/bin/env python3
"""Helper for bench/check.sh: the benchmark world, the token list, a sampler and the verdict.

Standard library only. Subcommands:

  world N SEED OUT.json [DAU]   a simulator scenario (JSON) with one app, 1,000 users who
                                authorised it and N user tokens with known strings. Expiries are
                                relative to now, so the file is written fresh for every run; the
                                token strings depend only on N's index and SEED, so an inventory
                                loaded once keeps matching.
  tokens N SEED                 "alias token tag" lines, in the same order, for the loader.
  expected N SEED               the status counts `graphwarden check` must report, as JSON.
  newly-dead N USERS            how many usable tokens a password change of USERS ("0,1")
                                kills (each makes `check` look for tokens derived from it).
  sample URL APP SIM_PID TIME_PID OUT.tsv STOP_FILE DB SINCE_MS
                                every 0.2 s until STOP_FILE exists: seconds since start, the
                                app's calls in the simulator's window (GET /__sim/usage),
                                utime+stime ticks and RSS of graphwarden (below TIME_PID) and of
                                the simulator, and once a second how many tokens the database
                                (opened read-only) shows inspected since SINCE_MS.
  verify N SEED CHECK.json [USERS]
                                exit 1 unless the check output holds N tokens, all inspected,
                                with exactly the expected statuses (after a password change of
                                USERS, when given).
  phases SAMPLES.tsv CALLS      when the simulator had answered all CALLS debug_token items
                                (end of the Graph phase) and what graphwarden did after.

The mix of tokens (by index modulo 100) is meant to look like an agency's inventory:
  80 % long-lived user tokens expiring in 20-59 days      -> valid
   8 % never-expiring user tokens                          -> valid
   5 % long-lived tokens expiring in 1-6 days               -> expiring (warning)
   3 % tokens killed by a password change (subcode 460)     -> password_changed
   2 % tokens past their expiry                             -> expired
   2 % tokens of people who removed the app (subcode 458)   -> deauthorized
"""

import json
import os
import random
import sqlite3
import string
import sys
import time
import urllib.request

APP_ID = "1000000000000001"
APP_SECRET = "0123456789abcdef0123456789abcdef"
USERS = 1000
DAY = 86_400
ALPHABET = string.ascii_letters + string.digits


def kind_of(i):
    m = i % 100
    if m < 80:
        return "long"
    if m < 88:
        return "never"
    if m < 93:
        return "expiring"
    if m < 96:
        return "password_changed"
    if m < 98:
        return "expired"
    return "deauthorized"


EXPECTED_STATUS = {
    "long": "valid",
    "never": "valid",
    "expiring": "expiring",
    "password_changed": "password_changed",
    "expired": "expired",
    "deauthorized": "deauthorized",
}


def token_strings(n, seed):
    """Like the simulator's own mint_token: `EAA` and 150-230 alphanumerics."""
    rng = random.Random(seed)
    for _ in range(n):
        length = rng.randint(150, 230)
        yield "EAA" + "".join(rng.choices(ALPHABET, k=length))


def alias(i):
    return f"bench-{i:06d}"


def user_index(i):
    """100 consecutive tokens per person, so each person holds the whole mix once."""
    return (i // 100) % USERS


def user_id(i):
    return str(100000000000000 + 1 + user_index(i))


def world(n, seed, out, dau):
    now = int(time.time())
    users = [
        {
            "id": str(100000000000000 + 1 + u),
            "name": f"Bench User {u}",
            "apps": [
                {
                    "app_id": APP_ID,
                    "granted": ["public_profile", "ads_read", "ads_management", "business_management"],
                }
            ],
        }
        for u in range(USERS)
    ]
    tokens = []
    for i, text in enumerate(token_strings(n, seed)):
        k = kind_of(i)
        spread = (i * 7919) % 1000 / 1000.0  # deterministic spread in [0, 1)
        t = {
            "token": text,
            "kind": "user",
            "app_id": APP_ID,
            "user_id": user_id(i),
            "long_lived": True,
            "scopes": ["public_profile", "ads_read"] + (["ads_management"] if i % 3 == 0 else []),
        }
        if k == "long":
            t["issued_at"] = now - int(spread * 30 * DAY)
            t["expires_at"] = now + int((20 + spread * 39) * DAY)
        elif k == "never":
            t["issued_at"] = now - int(spread * 30 * DAY)
            t["expires_at"] = 0
        elif k == "expiring":
            t["issued_at"] = now - int((54 + spread * 5) * DAY)
            t["expires_at"] = now + int((1 + spread * 5) * DAY)
        elif k == "password_changed":
            t["issued_at"] = now - int(spread * 30 * DAY)
            t["expires_at"] = now + int((20 + spread * 39) * DAY)
            t["invalidated"] = "password_changed"
        elif k == "expired":
            t["issued_at"] = now - int((61 + spread * 10) * DAY)
            t["expires_at"] = now - int((1 + spread * 9) * DAY)
        else:
            t["issued_at"] = now - int(spread * 30 * DAY)
            t["expires_at"] = now + int((20 + spread * 39) * DAY)
            t["invalidated"] = "deauthorized"
        if i == 0:
            t["label"] = "bench-0"
        tokens.append(t)
    scenario = {
        "default_version": "v26.0",
        "apps": [
            {
                "id": APP_ID,
                "name": "graphwarden check bench app",
                "secret": APP_SECRET,
                "daily_active_users": dau,
            }
        ],
        "users": users,
        "tokens": tokens,
    }
    with open(out, "w") as f:
        json.dump(scenario, f, separators=(",", ":"))


def tokens(n, seed):
    out = sys.stdout
    for i, text in enumerate(token_strings(n, seed)):
        out.write(f"{alias(i)} {text} client:c{i % 100:02d}\n")


def killed_users(text):
    """User indexes (0-999) whose password changed before the round: "3,17" or ""."""
    return {int(u) for u in text.split(",") if u.strip()}


def expected(n, killed=frozenset()):
    """Status counts; a password change turns every token of the user not already invalidated
    (so also expired ones) into password_changed, as the simulator does."""
    counts = {}
    for i in range(n):
        k = kind_of(i)
        s = EXPECTED_STATUS[k]
        if user_index(i) in killed and k != "deauthorized":
            s = "password_changed"
        counts[s] = counts.get(s, 0) + 1
    return counts


def newly_dead(n, killed):
    """Tokens a password change moves from usable (valid, expiring) to dead."""
    return sum(1 for i in range(n) if user_index(i) in killed and kind_of(i) in ("long", "never", "expiring"))


def ticks_rss(pid):
    """utime+stime (ticks) and VmRSS (kB) of a process, or (None, None) once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as f:
            rss = next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), 0)
        return int(fields[11]) + int(fields[12]), rss
    except (OSError, IndexError, ValueError):
        return None, None


def graphwarden_under(pid):
    """The graphwarden process below `pid` (time -v, then timeout, then graphwarden)."""
    for _ in range(4):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "graphwarden":
                    return pid
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = f.read().split()
        except (OSError, ValueError):
            return None
        if not kids:
            return None
        pid = int(kids[0])
    return None


def recorded_since(db, since_ms):
    """Tokens whose inspection the store holds already (a read-only look, WAL allows it)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
        try:
            return con.execute(
                "SELECT count(*) FROM tokens WHERE last_checked_at >= ?", (since_ms,)
            ).fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return ""


def sample(url, app, sim_pid, time_pid, out, stop_file, db, since_ms):
    start = time.monotonic()
    gw = None
    recorded, last_db = "", 0.0
    with open(out, "w") as f:
        f.write("t\tsim_calls\tgw_ticks\tgw_rss_kb\tsim_ticks\tsim_rss_kb\trecorded\n")
        while not os.path.exists(stop_file):
            if gw is None:
                gw = graphwarden_under(time_pid)
            if time.monotonic() - last_db >= 1.0:
                recorded, last_db = recorded_since(db, since_ms), time.monotonic()
            try:
                with urllib.request.urlopen(f"{url}/__sim/usage", timeout=2) as r:
                    usage = json.load(r)
                calls = usage.get("apps", {}).get(app, {}).get("calls_last_hour", 0)
            except Exception:  # noqa: BLE001 - a missed sample is not fatal
                calls = ""
            gw_ticks, gw_rss = ticks_rss(gw) if gw else (None, None)
            sim_ticks, sim_rss = ticks_rss(sim_pid)
            f.write(
                f"{time.monotonic() - start:.3f}\t{calls}\t{'' if gw_ticks is None else gw_ticks}\t"
                f"{'' if gw_rss is None else gw_rss}\t{sim_ticks}\t{sim_rss}\t{recorded}\n"
            )
            f.flush()
            time.sleep(0.2)


def verify(n, path, killed=frozenset()):
    with open(path) as f:
        rows = json.load(f)
    problems = []
    if len(rows) != n:
        problems.append(f"{len(rows)} tokens in the output, expected {n}")
    not_inspected = sum(1 for r in rows if not r.get("inspected"))
    if not_inspected:
        causes = {}
        for r in rows:
            if not r.get("inspected"):
                causes[r.get("cause", "")] = causes.get(r.get("cause", ""), 0) + 1
        problems.append(f"{not_inspected} tokens not inspected: {causes}")
    got = {}
    for r in rows:
        got[r["status"]] = got.get(r["status"], 0) + 1
    want = expected(n, killed)
    if got != want:
        problems.append(f"statuses {got}, expected {want}")
    print(json.dumps({"tokens": len(rows), "not_inspected": not_inspected, "statuses": got}, sort_keys=True))
    if problems:
        for p in problems:
            print("verify: " + p, file=sys.stderr)
        sys.exit(1)


def phases(path, calls):
    """Split a round at the moment the simulator had answered every debug_token item."""
    hz = os.sysconf("SC_CLK_TCK")
    rows = []
    with open(path) as f:
        next(f)
        for line in f:
            cells = (line.rstrip("\n").split("\t") + [""] * 7)[:7]
            rows.append([float(cells[0])] + cells[1:])
    gw_rows = [r for r in rows if r[2]]
    out = {}
    if not gw_rows:
        print(json.dumps({"note": "graphwarden was never sampled"}))
        return
    first, last = gw_rows[0], gw_rows[-1]
    done = next((r for r in gw_rows if r[1] not in ("", "None") and float(r[1]) >= calls), None)
    out["sampled_s"] = round(last[0] - first[0], 2)
    started = next((r for r in gw_rows if r[1] not in ("", "None") and float(r[1]) > 0), None)
    if started:
        # Opening the inventory and listing every token, before the first debug_token.
        out["before_first_call_s"] = round(started[0] - first[0], 2)
        out["rss_mb_at_first_call"] = round(int(started[3]) / 1024, 1)
    out["rss_mb_peak_sampled"] = round(max(int(r[3]) for r in gw_rows if r[3]) / 1024, 1)
    if done:
        out["graph_phase_s"] = round(done[0] - first[0], 2)
        out["graph_phase_gw_cpu_s"] = round((int(done[2]) - int(first[2])) / hz, 2)
        out["graph_phase_sim_cpu_s"] = round((int(done[4]) - int(first[4])) / hz, 2)
        out["rss_mb_at_graph_end"] = round(int(done[3]) / 1024, 1)
        out["store_phase_s"] = round(last[0] - done[0], 2)
        out["store_phase_gw_cpu_s"] = round((int(last[2]) - int(done[2])) / hz, 2)
        recorded = [(r[0], int(r[6])) for r in gw_rows if r[6] not in ("", "None") and r[0] >= done[0]]
        if len(recorded) >= 2 and recorded[-1][0] > recorded[0][0]:
            (t0, n0), (t1, n1) = recorded[0], recorded[-1]
            out["store_recorded_last_sample"] = n1
            out["store_tokens_per_s"] = round((n1 - n0) / (t1 - t0), 1)
    else:
        out["graph_phase_s"] = None
        out["sim_calls_last_sample"] = last[1]
    print(json.dumps(out, sort_keys=True))


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "world":
        world(int(argv[2]), int(argv[3]), argv[4], int(argv[5]) if len(argv) > 5 else 1000)
    elif cmd == "tokens":
        tokens(int(argv[2]), int(argv[3]))
    elif cmd == "expected":
        print(json.dumps(expected(int(argv[2])), sort_keys=True))
    elif cmd == "newly-dead":
        print(newly_dead(int(argv[2]), killed_users(argv[3])))
    elif cmd == "sample":
        sample(argv[2], argv[3], int(argv[4]), int(argv[5]), argv[6], argv[7], argv[8], int(argv[9]))
    elif cmd == "verify":
        verify(int(argv[2]), argv[4], killed_users(argv[5]) if len(argv) > 5 else frozenset())
    elif cmd == "phases":
        phases(argv[2], float(argv[3]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(64)


if __name__ == "__main__":
    main(sys.argv)
