"""Shared fixtures: a registry binary of this checkout on free ports, and the stack's Kafka."""

import json
import os
import pathlib
import subprocess
import tempfile
import time
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def endpoint(var):
    value = os.environ.get(var)
    if not value:
        pytest.fail(
            f"{var} is not set: start the local stack with `deploy/local/stack.sh up` and "
            f'`eval "$(deploy/local/stack.sh env)"` (or run `make test`)'
        )
    return value


def registry_binary():
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    path = pathlib.Path(os.environ.get("ONEPIPE_REGISTRY_BIN", f"{target}/debug/registry"))
    if not path.exists():
        pytest.fail(f"registry binary {path} not found: run `cargo build -p onepipe-registry` first")
    return path


class Endpoints(str):
    """The REST URL (usable as a string), with the admin URL beside it."""

    def __new__(cls, rest, admin):
        obj = super().__new__(cls, rest)
        obj.admin = admin
        return obj


@pytest.fixture
def registry():
    """Starts `registry` on free ports with its own SQLite file; yields the REST URL."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [
                str(registry_binary()),
                "--listen=127.0.0.1:0",
                "--rest-listen=127.0.0.1:0",
                "--admin-listen=127.0.0.1:0",
                f"--database=sqlite://{tmp}/registry.db",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        addrs = {}
        deadline = time.time() + 30
        while len(addrs) < 3 and time.time() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("message") == "listening":
                addrs[event["api"]] = f"http://{event['addr']}"
        if set(addrs) != {"grpc", "rest", "admin"}:
            proc.kill()
            pytest.fail(f"registry did not log its addresses, only {addrs} (exit code {proc.poll()})")
        try:
            yield Endpoints(addrs["rest"], addrs["admin"])
        finally:
            proc.terminate()
            assert proc.wait(timeout=30) == 0, "registry did not exit cleanly on SIGTERM"


@pytest.fixture
def topic():
    """A new single-partition topic on the stack's broker."""
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP")
    name = f"it-confluent-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)]).values():
        future.result(timeout=30)
    return name
