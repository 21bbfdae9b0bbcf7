#!/usr/bin/env python3
"""The `make run` demo: a realistic page-view stream into http-producer, and the report.

    demo.py produce --api URL --topic T --onepipe BIN --registry URL --events N --state FILE
    demo.py report  --state FILE --archive DIR --warehouse FILE --verifier-exit N ...

`produce` sends the stream and remembers, in the state file, what was accepted and
what the warehouse should end up holding (computed here, independently of onepipe):
- page views over three days, each view in one to three versions that arrive out of
  order (the newest version must win: the topic merges with max_by(version));
- retried batches (exact duplicates, as a client whose timeout fired would send);
- one batch with a bad record, refused as a whole (its 422 body is shown);
- a compatible schema evolution halfway (a new optional `referrer` field);
- late events for the first day at the end.
Only the Python standard library is used.
"""

import argparse
import json
import random
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

DAY0 = 1_795_478_400_000  # 2026-11-24T00:00:00Z
DAY_MS = 86_400_000

SCHEMA_V2 = {
    "type": "record",
    "name": "PageView",
    "namespace": "demo",
    "fields": [
        {"name": "view_id", "type": "string"},
        {"name": "version", "type": "long"},
        {"name": "user_id", "type": "long"},
        {"name": "url", "type": "string"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "duration_ms", "type": "long"},
        {"name": "referrer", "type": ["null", "string"], "default": None},
    ],
}


def post(api, topic, records, version=None):
    query = f"?schema_version={version}" if version else ""
    body = json.dumps({"records": [{"value": r} for r in records]}).encode()
    req = urllib.request.Request(
        f"{api}/v1/topics/{topic}/records{query}", data=body,
        headers={"content-type": "application/json"}, method="POST")
    for attempt in range(5):
        try:
            with urllib.request.urlopen(req, timeout=60) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as e:
            if e.code == 503 and attempt < 4:
                time.sleep(1)
                continue
            return e.code, json.loads(e.read())
    raise RuntimeError("unreachable")


def view(i, version, day, with_referrer):
    v = {
        "view_id": f"view-{i:07}",
        "version": version,
        "user_id": (i * 7919) % 50_000,
        "url": f"/products/{i % 997}",
        "at": DAY0 + day * DAY_MS + (i * 3_701) % DAY_MS,
        "duration_ms": (i * 31 + version * 1000) % 120_000,
    }
    if with_referrer:
        v["referrer"] = None if i % 3 else "https://search.example.org/"
    return v


def produce(args):
    rng = random.Random(7)
    n_views = max(args.events // 2, 10)
    # Each view gets 1-3 versions; versions are shuffled within a window so that newer
    # ones often arrive first.
    events = []
    for i in range(n_views):
        day = i % 2  # days 0 and 1; day 2 comes from the late phase below (day 0 again)
        for v in range(1, 2 + (i % 3)):
            events.append((i, v, day))
    window = 64
    for s in range(0, len(events), window):
        chunk = events[s:s + window]
        rng.shuffle(chunk)
        events[s:s + window] = chunk
    evolve_at = len(events) // 2
    batch = 1000
    accepted = rejected = sent_batches = retried = 0
    expected = {}  # view_id -> (version, day, duration) of the winner
    started = time.time()
    version_pin = None

    def note(records):
        for r in records:
            key = r["view_id"]
            day = (r["at"] - DAY0) // DAY_MS
            cur = expected.get(key)
            if cur is None or r["version"] >= cur[0]:
                expected[key] = (r["version"], day, r["duration_ms"])

    for s in range(0, len(events), batch):
        if s >= evolve_at and version_pin is None:
            print("demo: evolving the schema (v2 adds an optional `referrer`)", flush=True)
            with open(args.state + ".v2.avsc", "w") as f:
                json.dump(SCHEMA_V2, f)
            subprocess.run([args.onepipe, "--registry", args.registry, "schema", "register",
                            f"{args.topic}-value", "--file", args.state + ".v2.avsc"], check=True)
            version_pin = 2
        records = [view(i, v, day, version_pin == 2) for (i, v, day) in events[s:s + batch]]
        status, body = post(args.api, args.topic, records, version_pin)
        if status != 200:
            sys.exit(f"demo: batch refused ({status}): {json.dumps(body)[:500]}")
        accepted += len(records)
        sent_batches += 1
        note(records)
        if sent_batches % 20 == 0:  # a client retrying a batch whose reply it lost
            status, _ = post(args.api, args.topic, records, version_pin)
            assert status == 200
            accepted += len(records)
            retried += 1
        if sent_batches % 25 == 0:
            rate = accepted / (time.time() - started)
            print(f"demo: {accepted:>8} records accepted ({rate:,.0f}/s)", flush=True)

    # One bad batch: every record is refused, nothing lands.
    bad = [view(n_views + k, 1, 0, True) for k in range(3)]
    bad[1]["duration_ms"] = "12,5 s"
    del bad[2]["url"]
    status, body = post(args.api, args.topic, bad, 2)
    assert status == 422, (status, body)
    rejected += len(bad)
    print("demo: a bad batch was refused as a whole (HTTP 422):")
    print("  " + json.dumps(body, indent=2).replace("\n", "\n  "))

    # Late events for the first day: new views and newer versions of old ones.
    late = [view(i, 9, 0, True) for i in range(0, n_views, 50)]
    late += [view(n_views + 10 + k, 1, 0, True) for k in range(200)]
    for s in range(0, len(late), batch):
        status, body = post(args.api, args.topic, late[s:s + batch], 2)
        assert status == 200, body
        accepted += len(late[s:s + batch])
        note(late[s:s + batch])
    print(f"demo: {accepted} records accepted ({retried} batches retried), "
          f"{rejected} refused, in {time.time() - started:.1f} s", flush=True)

    per_day = {}
    for (_, day, dur) in expected.values():
        d = time.strftime("%Y-%m-%d", time.gmtime((DAY0 + day * DAY_MS) / 1000))
        rows, total = per_day.get(d, (0, 0))
        per_day[d] = (rows + 1, total + dur)
    with open(args.state, "w") as f:
        json.dump({"accepted": accepted, "rejected": rejected, "retried": retried,
                   "expected": per_day}, f)


def report(args):
    state = json.load(open(args.state))
    manifests = sorted((args.archive_path).glob(f"clean/{args.topic}/_manifests/*.json"))
    manifest = json.loads(manifests[-1].read_text()) if manifests else {"dates": {}}
    con = sqlite3.connect(args.warehouse)
    table = "".join(c if c.isalnum() or c == "_" else "_" for c in args.topic.lower())
    loaded = dict(con.execute(
        f'SELECT CAST("_date" AS TEXT), count(*) FROM "{table}" GROUP BY 1').fetchall())
    loaded = {k[:10]: v for k, v in loaded.items()}
    online_con = sqlite3.connect(args.online)
    online = dict(online_con.execute(
        f'SELECT CAST("_date" AS TEXT), count(*) FROM "{table}" GROUP BY 1').fetchall())
    online = {k[:10]: v for k, v in online.items()}
    print()
    print("=" * 78)
    print(f"onepipe demo report — dataset {args.topic}")
    print("=" * 78)
    print(f"records accepted by http-producer  {state['accepted']:>10}  "
          f"({state['retried']} batches sent twice)")
    print(f"records refused (one bad batch)    {state['rejected']:>10}")
    print(f"records archived by copycat        {args.archived:>10}")
    print(f"manifest                           {manifest.get('number', '-'):>10}")
    print()
    print(f"{'date':<12}{'expected':>10}{'clean':>10}{'warehouse':>11}{'online':>9}"
          "  sum(duration_ms) expected/clean")
    ok = True
    for d in sorted(set(state["expected"]) | set(manifest["dates"]) | set(loaded) | set(online)):
        exp_rows, exp_sum = state["expected"].get(d, (0, 0))
        entry = manifest["dates"].get(d, {})
        rows = entry.get("rows", 0)
        wh = loaded.get(d, 0)
        s = entry.get("checks", {}).get("sum(duration_ms)", "-")
        on = online.get(d, 0)
        # Every view's versions share its day, so the online table (one row per view,
        # whatever the day) holds each day's expected rows too.
        ok &= exp_rows == rows == wh == on and exp_sum == s
        print(f"{d:<12}{exp_rows:>10}{rows:>10}{wh:>11}{on:>9}  {exp_sum} / {s}")
    verdict = {0: "all stores agree", 1: "MISMATCH", 2: "could not check"}.get(args.verifier_exit, "?")
    print()
    print(f"verifier verdict: {verdict} (exit {args.verifier_exit})")
    print(f"expected = computed by the demo from what it sent: {'match' if ok else 'DIFFERENT'}")
    print()
    print("where things are:")
    print(f"  archive    {args.archive_path}  (raw/ byte-exact, clean/ deduplicated)")
    print(f"  warehouse  {args.warehouse}")
    print(f"  online     {args.online}  (online-sink: one row per view, seconds behind Kafka)")
    print(f"  logs       {args.logs}")
    print("explore:")
    print(f"  sqlite3 {args.warehouse} 'SELECT \"_date\", count(*) FROM \"{table}\" GROUP BY 1'")
    print(f"  {args.onepipe} topic describe {args.topic}")
    print(f"  {args.onepipe} archive check --topic {args.topic} --object-store file://{args.archive_path}")
    print(f"  {args.verifier} --object-store file://{args.archive_path} "
          f"--warehouse sqlite://{args.warehouse} --online sqlite://{args.online} "
          f"check --dataset {args.topic}")
    return 0 if ok and args.verifier_exit == 0 else 1


def main():
    import pathlib
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("produce")
    a.add_argument("--api", required=True)
    a.add_argument("--topic", required=True)
    a.add_argument("--onepipe", required=True)
    a.add_argument("--registry", required=True)
    a.add_argument("--events", type=int, default=200_000)
    a.add_argument("--state", required=True)
    b = sub.add_parser("report")
    b.add_argument("--topic", required=True)
    b.add_argument("--state", required=True)
    b.add_argument("--archive", required=True)
    b.add_argument("--warehouse", required=True)
    b.add_argument("--online", required=True)
    b.add_argument("--archived", type=int, required=True)
    b.add_argument("--verifier-exit", type=int, required=True)
    b.add_argument("--logs", required=True)
    b.add_argument("--onepipe", required=True)
    b.add_argument("--verifier", required=True)
    args = p.parse_args()
    if args.cmd == "produce":
        produce(args)
        return 0
    args.archive_path = pathlib.Path(args.archive)
    return report(args)


if __name__ == "__main__":
    sys.exit(main())
