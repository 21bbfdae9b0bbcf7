"""The clean archive as a Delta Lake table, read by engines others wrote.

http-producer → Kafka → copycat → raw/ → copydog, three times: versions sent out of
order, then late records for an older date, then a schema evolution (a new optional
field). After each copydog run the Delta table must hold exactly the newest version of
every key, as computed here from what was sent; the `deltalake` Python package and
DuckDB's `delta_scan` and Apache Spark with delta-spark read the current version, and
`deltalake`, Spark and `onepipe query --as-of` read the first run's version by time
travel. The Python readers run in the virtualenv .ci/run makes (ONEPIPE_DELTA_PYTHON),
since duckdb-ext-delta needs a duckdb of its own version."""

import json
import os
import pathlib
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import binary, endpoint, launch
from test_archive_duckdb import _archived_ends
from test_http_producer import launch_http_producer, request

FIELDS = [
    {"name": "payment_id", "type": "string"},
    {"name": "version", "type": "long"},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "amount", "type": "long"},
]
V1 = {"type": "record", "name": "Payment", "namespace": "shop", "fields": FIELDS}
V2 = {**V1, "fields": FIELDS + [{"name": "note", "type": ["null", "string"], "default": None}]}
DAY0 = 1_795_478_400_000  # 2026-11-24T00:00:00Z
READER = pathlib.Path(__file__).parent / "delta" / "read_delta.py"
SPARK_READER = pathlib.Path(__file__).parent / "delta" / "read_spark.py"


def delta_python():
    python = os.environ.get("ONEPIPE_DELTA_PYTHON", str(pathlib.Path.home() / ".cache/onepipe/venv-delta/bin/python"))
    if not pathlib.Path(python).exists():
        pytest.fail(f"no Delta reader Python at {python}: .ci/run makes it (ONEPIPE_DELTA_PYTHON)")
    return python


def payment(i, version, day, amount, note=None):
    r = {"payment_id": f"p-{i:03}", "version": version, "at": DAY0 + day * 86_400_000 + i * 1000,
         "amount": amount}
    if note is not None:
        r["note"] = {"string": note}
    return r


def newest(sent):
    best = {}
    for r in sent:
        if r["payment_id"] not in best or r["version"] > best[r["payment_id"]]["version"]:
            best[r["payment_id"]] = r
    return {
        k: {"payment_id": k, "version": r["version"], "amount": r["amount"],
            "note": (r.get("note") or {}).get("string"),
            "_date": time.strftime("%Y-%m-%d", time.gmtime(r["at"] / 1000))}
        for k, r in sorted(best.items())
    }


def seen(rows, columns):
    return {r["payment_id"]: {c: r.get(c) for c in columns} for r in rows}


def test_delta_table_is_read_by_deltalake_duckdb_and_spark(registry):
    python = delta_python()
    topic = f"dpay-{uuid.uuid4().hex[:8]}"
    bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP")
    onepipe = [str(binary("onepipe")), f"--registry={registry.grpc}"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "v1.avsc").write_text(json.dumps(V1))
        (tmp / "v2.avsc").write_text(json.dumps(V2))
        subprocess.run(
            [*onepipe, "topic", "create", topic, f"--schema-file={tmp / 'v1.avsc'}",
             "--unique-key=payment_id", "--merge=max_by:version", "--partition-time=at",
             "--sort-key=at,payment_id", "--checks=sum:amount", "--partitions=2",
             "--replication-factor=1", f"--kafka-bootstrap={bootstrap}"],
            check=True, capture_output=True,
        )
        store = f"file://{tmp}/archive"
        sent = []

        def stage(records):
            """Sends `records`, archives them all and runs copydog once."""
            with launch_http_producer(registry.grpc) as (proc, api, _admin):
                for k in range(0, len(records), 40):
                    status, body = request(
                        f"{api}/v1/topics/{topic}/records",
                        json.dumps({"records": [{"value": r} for r in records[k:k + 40]]}).encode(),
                        {"content-type": "application/json"},
                    )
                    assert status == 200, body
                proc.terminate()
                assert proc.wait(timeout=30) == 0
            sent.extend(records)
            args = [f"--registry={registry.grpc}", f"--kafka-bootstrap={bootstrap}",
                    f"--object-store={store}", f"--topics=^{topic}$", f"--group-id=cc-{topic}",
                    "--idle-flush=1s", "--admin-listen=127.0.0.1:0"]
            with launch("copycat", args, {"admin"}) as (proc, _addrs):
                deadline = time.time() + 60
                while sum(w + 1 for w in _archived_ends(tmp / "archive", topic).values()) < len(sent):
                    assert time.time() < deadline, "copycat did not archive everything in 60 s"
                    time.sleep(0.3)
                proc.terminate()
                assert proc.wait(timeout=30) == 0
            run = subprocess.run(
                [str(binary("copydog")), f"--registry={registry.grpc}", f"--object-store={store}",
                 "run", "--topic", topic],
                capture_output=True, text=True,
            )
            assert run.returncode == 0, run.stderr
            assert "Delta table at version" in run.stderr, run.stderr
            return newest(sent)

        # 1: two dates, versions sent newest first.
        first = stage([payment(i, v, i % 2, i * 100 + v) for i in range(60) for v in range(1 + i % 3, 0, -1)])
        # A time after version 1's commit and before version 2's, for `--as-of TIME`.
        time.sleep(1.1)
        after_first = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        time.sleep(1.1)
        # 2: late records for the first date: new keys and newer versions of old ones.
        stage([payment(i, 10, 0, i * 1000) for i in range(0, 60, 4)]
              + [payment(i, 1, 0, 7) for i in range(60, 70)])
        # 3: the schema gains an optional field; records with it for a third date and a
        # newer version of a key of the second.
        subprocess.run([*onepipe, "schema", "register", f"{topic}-value", f"--file={tmp / 'v2.avsc'}"],
                       check=True, capture_output=True)
        now = stage([payment(i, 20, 2, i, note=f"n{i}") for i in range(70, 80)]
                    + [payment(1, 30, 1, 31, note="late")])

        table = tmp / "archive" / "clean" / topic
        read = subprocess.run([python, str(READER), str(table), "payment_id", "--version", "1"],
                              capture_output=True, text=True)
        assert read.returncode == 0, read.stderr
        out = json.loads(read.stdout)
        columns = ["payment_id", "version", "amount", "note", "_date"]
        assert out["partition_columns"] == ["_date"]
        # Version 0 creates the table; versions 1-3 are manifests 1-3, in order.
        assert out["version"] == 3, out["history"]
        assert sorted(h["version"] for h in out["history"]) == [0, 1, 2, 3]
        assert seen(out["deltalake"], columns) == now
        assert seen(out["duckdb"], columns) == now
        # Time travel: version 1 is what the first run merged (before the note existed).
        old_columns = ["payment_id", "version", "amount", "_date"]
        want_first = {k: {c: v[c] for c in old_columns} for k, v in first.items()}
        assert seen(out["deltalake_as_of"], old_columns) == want_first
        # The schema evolution changed the table's schema, not the table: the same id.
        assert out["ids"][0] == out["ids"][1], out["ids"]
        assert "note" in out["schema"] and out["schema"]["_date"] == "PrimitiveType(\"date\")", out["schema"]
        # The commit alone says what the version holds: the manifest and its dates' checks.
        by_version = {h["version"]: h for h in out["history"]}
        info = by_version[3]["onepipe"]
        assert info["manifest"] == 3
        manifest = json.loads((table / "_manifests" / "0000000003.json").read_text())
        assert info["watermarks"] == manifest["watermarks"]
        for date, entry in info["dates"].items():
            assert entry["checks"] == manifest["dates"][date]["checks"]
            assert entry["rows"] == sum(1 for r in now.values() if r["_date"] == date)

        # Apache Spark with delta-spark, local mode: the current version and version 1.
        spark = subprocess.run([python, str(SPARK_READER), str(table), "payment_id", "--version", "1"],
                               capture_output=True, text=True, timeout=600)
        assert spark.returncode == 0, spark.stderr[-4000:]
        sp = json.loads(spark.stdout.strip().splitlines()[-1])
        assert sp["history"] == [0, 1, 2, 3]
        assert sp["schema"]["_date"] == "date" and sp["schema"]["version"] == "bigint", sp["schema"]
        assert seen(sp["spark"], columns) == now
        assert seen(sp["spark_as_of"], old_columns) == want_first
        assert "note" not in sp["spark_as_of"][0]

        # `onepipe query --as-of`: by version and by time, the first run's rows; without it,
        # the current ones. A version or time the table does not have is refused by name.
        name = topic.replace("-", "_")
        sql = f"SELECT payment_id, version, amount FROM {name} ORDER BY payment_id"

        def query(*extra):
            return subprocess.run(
                [str(binary("onepipe")), "query", sql, f"--object-store={store}", "--format=json", *extra],
                capture_output=True, text=True,
            )

        def rows(run):
            assert run.returncode == 0, run.stderr
            return {r["payment_id"]: r for r in map(json.loads, run.stdout.splitlines())}

        plain = ["payment_id", "version", "amount"]
        assert rows(query()) == {k: {c: v[c] for c in plain} for k, v in now.items()}
        want_v1 = {k: {c: v[c] for c in plain} for k, v in first.items()}
        assert rows(query("--as-of=1", f"--topic={topic}")) == want_v1
        assert rows(query(f"--as-of={after_first}")) == want_v1
        assert rows(query("--as-of=2", f"--topic={topic}")) != want_v1
        missing = query("--as-of=9", f"--topic={topic}")
        assert missing.returncode != 0 and "no version 9" in missing.stderr and "versions 0 to 3" in missing.stderr, missing.stderr
        before = query("--as-of=2020-01-01")
        assert before.returncode != 0 and "no version was committed at or before 2020-01-01" in before.stderr, before.stderr
        one_topic = query("--as-of=1")
        assert one_topic.returncode != 0 and "give one --topic" in one_topic.stderr, one_topic.stderr
        files = subprocess.run(
            [str(binary("onepipe")), "archive", "files", f"--topic={topic}", f"--object-store={store}", "--as-of=1"],
            capture_output=True, text=True,
        )
        assert files.returncode == 0, files.stderr
        manifest1 = json.loads((table / "_manifests" / "0000000001.json").read_text())
        assert sorted(files.stdout.split()) == sorted(f for d in manifest1["dates"].values() for f in d["files"])
