"""Shared fixtures: a registry binary of this checkout on free ports, and the stack's Kafka."""

import contextlib
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


def binary(name):
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    path = pathlib.Path(f"{target}/debug/{name}")
    if not path.exists():
        pytest.fail(f"binary {path} not found: run `cargo build --workspace --bins` first")
    return path


def registry_binary():
    return binary("registry")


class Endpoints(str):
    """The REST URL (usable as a string), with the admin URL beside it."""

    def __new__(cls, rest, admin, grpc):
        obj = super().__new__(cls, rest)
        obj.admin = admin
        obj.grpc = grpc
        return obj


@pytest.fixture
def registry():
    """Starts `registry` on free ports with its own SQLite file; yields the REST URL."""
    with launch_registry() as endpoints:
        yield endpoints


@contextlib.contextmanager
def launch_registry(*extra_args, scheme="http"):
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [
                str(registry_binary()),
                "--listen=127.0.0.1:0",
                "--rest-listen=127.0.0.1:0",
                "--admin-listen=127.0.0.1:0",
                f"--database=sqlite://{tmp}/registry.db",
                *extra_args,
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
                tls = event["api"] in ("grpc", "rest") and scheme == "https"
                addrs[event["api"]] = f"{'https' if tls else 'http'}://{event['addr']}"
        if set(addrs) != {"grpc", "rest", "admin"}:
            proc.kill()
            pytest.fail(f"registry did not log its addresses, only {addrs} (exit code {proc.poll()})")
        try:
            yield Endpoints(addrs["rest"], addrs["admin"], addrs["grpc"])
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


@contextlib.contextmanager
def launch(name, args, apis):
    """Starts binary `name` with `args`, waits for it to log `listening` for each of `apis`;
    yields (process, {api: "http://addr"}). Kills it on exit if still running."""
    proc = subprocess.Popen([str(binary(name)), *args], stderr=subprocess.PIPE, text=True)
    addrs = {}
    deadline = time.time() + 30
    while len(addrs) < len(apis) and time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("message") == "listening":
            addrs[event["api"]] = f"http://{event['addr']}"
    if set(addrs) != set(apis):
        proc.kill()
        pytest.fail(f"{name} did not log its addresses, only {addrs} (exit {proc.poll()})")
    # Keep reading its log so the pipe never fills up and blocks it.
    import threading

    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    try:
        yield proc, addrs
    finally:
        if proc.poll() is None:
            proc.kill()
