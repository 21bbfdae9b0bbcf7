"""The full flow of `make run`, on the binaries of this build: deploy/local/run.sh --once
registers a dataset, sends a stream with duplicates, out-of-order versions, a refused
batch, a schema evolution and late events through http-producer; copycat, copydog,
warehouse-loader (SQLite), online-sink (SQLite) and the verifier run; the report must match what the demo
computed from what it sent, and the verifier must find every store in agreement."""

import os
import pathlib
import subprocess
import tempfile

from conftest import ROOT, binary


def test_make_run_once_reports_agreement():
    bin_dir = binary("registry").parent
    with tempfile.TemporaryDirectory() as data:
        run = subprocess.run(
            ["bash", str(ROOT / "deploy/local/run.sh"), "--once", "--events", "6000", "--data", data],
            env={**os.environ, "ONEPIPE_BIN": str(bin_dir)},
            capture_output=True, text=True, timeout=600,
        )
        out = run.stdout + run.stderr
        assert run.returncode == 0, out[-4000:]
        assert "verdict: all stores agree" in out, out[-4000:]
        assert "expected = computed by the demo from what it sent: match" in out, out[-4000:]
        assert "HTTP 422" in out
        assert (pathlib.Path(data) / "warehouse.db").exists()
        assert (pathlib.Path(data) / "online.db").exists()
        assert "records applied" in out
        assert "online (expected)" in out, out[-4000:]
