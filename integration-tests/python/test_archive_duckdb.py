"""The whole flow with the real binaries: http-producer → Kafka → copycat (killed with
SIGKILL mid-way and restarted) → raw/ → copydog → clean/ → warehouse-loader (SQLite) →
verifier (all stores agree); DuckDB (an engine others wrote) reads exactly the files the
newest manifest names and agrees with its row counts and check values, and with the
result computed here from what was sent."""

import json
import pathlib
import subprocess
import tempfile
import time
import urllib.request
import uuid

from conftest import binary, endpoint, launch
from test_http_producer import launch_http_producer, request

SCHEMA = {
    "type": "record",
    "name": "Payment",
    "namespace": "shop",
    "fields": [
        {"name": "payment_id", "type": "string"},
        {"name": "version", "type": "long"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "amount", "type": "long"},
    ],
}


def _archived_ends(root, topic):
    """Per partition, the last offset the raw file names hold."""
    ends = {}
    for f in (root / "raw" / topic).glob("partition=*/date=*/hour=*/*.parquet"):
        p = f.parts[-4].split("=")[1]
        last = int(f.stem.split("-")[1])
        ends[p] = max(ends.get(p, -1), last)
    return ends


def metric(admin, name):
    with urllib.request.urlopen(f"{admin}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def test_clean_archive_is_what_duckdb_reads(registry):
    import duckdb

    topic = f"payments-{uuid.uuid4().hex[:8]}"
    bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP")
    with tempfile.TemporaryDirectory() as tmp:
        schema_file = pathlib.Path(tmp) / "payments.avsc"
        schema_file.write_text(json.dumps(SCHEMA))
        subprocess.run(
            [
                str(binary("onepipe")), f"--registry={registry.grpc}", "topic", "create", topic,
                f"--schema-file={schema_file}", "--unique-key=payment_id",
                "--merge=max_by:version", "--partition-time=at", "--sort-key=at,payment_id",
                "--checks=sum:amount,max:amount", "--partitions=3", "--replication-factor=1",
                f"--kafka-bootstrap={bootstrap}",
            ],
            check=True,
            capture_output=True,
        )

        # 300 payments over three days, each sent in 1-3 versions in reverse order, and
        # every fifth batch retried as a whole (duplicates).
        day0 = 1_795_478_400_000  # 2026-11-24T00:00:00Z
        sent = []
        for i in range(300):
            for v in range(1 + i % 3, 0, -1):
                sent.append({"payment_id": f"p-{i:03}", "version": v,
                             "at": day0 + (i % 3) * 86_400_000 + i * 1000, "amount": i * 100 + v})
        batches = [sent[k:k + 50] for k in range(0, len(sent), 50)]
        produced = 0
        with launch_http_producer(registry.grpc) as (proc, api, _admin):
            for n, batch in enumerate(batches):
                for _ in range(2 if n % 5 == 0 else 1):
                    status, body = request(
                        f"{api}/v1/topics/{topic}/records",
                        json.dumps({"records": [{"value": r} for r in batch]}).encode(),
                        {"content-type": "application/json"},
                    )
                    assert status == 200, body
                    produced += len(batch)
            proc.terminate()
            assert proc.wait(timeout=30) == 0

        store = f"file://{tmp}/archive"
        copycat_args = [
            f"--registry={registry.grpc}", f"--kafka-bootstrap={bootstrap}",
            f"--object-store={store}", f"--topics=^{topic}$", f"--group-id=cc-{topic}",
            "--idle-flush=1s", "--admin-listen=127.0.0.1:0",
            # The killed member's partitions move on sooner than the 45 s default.
            "--kafka-option=session.timeout.ms=6000",
        ]
        # The first copycat is killed with SIGKILL once it has written some files; the
        # second must finish the archive with every offset exactly once.
        with launch("copycat", copycat_args + ["--max-file-records=100"], {"admin"}) as (proc, addrs):
            deadline = time.time() + 60
            while metric(addrs["admin"], "onepipe_copycat_records_archived_total") < 200:
                assert time.time() < deadline, "copycat archived nothing in 60 s"
                time.sleep(0.1)
            proc.kill()
            proc.wait(timeout=30)
        with launch("copycat", copycat_args, {"admin"}) as (proc, addrs):
            deadline = time.time() + 60
            while True:
                check = subprocess.run(
                    [str(binary("onepipe")), "archive", "check", "--topic", topic, f"--object-store={store}"],
                    capture_output=True, text=True,
                )
                archived = sum(
                    int(w) + 1 for w in _archived_ends(pathlib.Path(tmp) / "archive", topic).values()
                )
                if check.returncode == 0 and archived == produced:
                    break
                assert time.time() < deadline, f"archive incomplete after the restart: {check.stdout}"
                time.sleep(0.5)
            proc.terminate()
            assert proc.wait(timeout=30) == 0

        run = subprocess.run(
            [str(binary("copydog")), f"--registry={registry.grpc}", f"--object-store={store}",
             "run", "--topic", topic],
            capture_output=True, text=True,
        )
        assert run.returncode == 0, run.stderr

        # Load a SQLite warehouse and verify raw, clean and the warehouse agree.
        warehouse = f"sqlite://{tmp}/mart.db"
        load = subprocess.run(
            [str(binary("warehouse-loader")), f"--registry={registry.grpc}", f"--object-store={store}",
             f"--database={warehouse}", f"--datasets={topic}", "--once", "--admin-listen=127.0.0.1:0"],
            capture_output=True, text=True,
        )
        assert load.returncode == 0, load.stderr[-3000:]
        verify = subprocess.run(
            [str(binary("verifier")), f"--registry={registry.grpc}", f"--object-store={store}",
             f"--warehouse={warehouse}", "check", "--dataset", topic],
            capture_output=True, text=True,
        )
        assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-2000:]
        assert "verdict: all stores agree" in verify.stdout

        manifests = sorted((pathlib.Path(tmp) / "archive" / "clean" / topic / "_manifests").glob("*.json"))
        manifest = json.loads(manifests[-1].read_text())
        assert sum(int(w) + 1 for w in manifest["watermarks"].values()) == produced

        # Expected, from what was sent: the highest version per payment.
        best = {}
        for r in sent:
            if r["payment_id"] not in best or r["version"] > best[r["payment_id"]]["version"]:
                best[r["payment_id"]] = r
        # `onepipe archive files` prints exactly the files the newest manifest names.
        listed = subprocess.run(
            [str(binary("onepipe")), "archive", "files", "--topic", topic, f"--object-store={store}"],
            capture_output=True, text=True, check=True,
        ).stdout.split()
        assert listed == [f for entry in manifest["dates"].values() for f in entry["files"]]

        # `onepipe query` (DataFusion) reads the same view.
        table = topic.replace("-", "_")
        csv = subprocess.run(
            [str(binary("onepipe")), "query", f"SELECT count(*) AS n, sum(amount) AS s FROM {table}",
             f"--object-store={store}", "--format=csv"],
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()
        assert csv[0] == "n,s"
        assert csv[1] == f"{sum(e['rows'] for e in manifest['dates'].values())},{sum(e['checks']['sum(amount)'] for e in manifest['dates'].values())}"

        con = duckdb.connect()
        assert len(manifest["dates"]) == 3
        for date, entry in manifest["dates"].items():
            files = [str(pathlib.Path(tmp) / "archive" / f) for f in entry["files"]]
            rows, keys, total, top = con.execute(
                "SELECT count(*), count(DISTINCT payment_id), sum(amount), max(amount) "
                "FROM read_parquet($files)", {"files": files}
            ).fetchone()
            want = [r for r in best.values()
                    if time.strftime("%Y-%m-%d", time.gmtime(r["at"] / 1000)) == date]
            assert rows == keys == entry["rows"] == len(want), date
            assert entry["checks"]["count_distinct(unique_key)"] == len(want)
            assert total == entry["checks"]["sum(amount)"] == sum(r["amount"] for r in want)
            assert top == entry["checks"]["max(amount)"] == max(r["amount"] for r in want)
            # Typed columns: the timestamp is a timestamp, sorted by the sort key.
            ats = [row[0] for row in con.execute(
                "SELECT \"at\" FROM read_parquet($files)", {"files": files}).fetchall()]
            assert ats == sorted(ats)
            kind = con.execute(
                "SELECT typeof(\"at\") FROM read_parquet($files) LIMIT 1", {"files": files}
            ).fetchone()[0]
            assert kind.startswith("TIMESTAMP"), kind
