"""Records POSTed to the http-producer binary are read by confluent-kafka's own
AvroDeserializer through the registry's REST port: the wire format, schema ids and
logical types are what other tools expect. Also: OpenAPI, admin endpoints, SIGTERM."""

import contextlib
import datetime
import decimal
import json
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import binary, endpoint, launch

SCHEMA = {
    "type": "record",
    "name": "ApiCall",
    "namespace": "example",
    "fields": [
        {"name": "call_id", "type": "string"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "cost", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 3}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "body", "type": "bytes"},
        {"name": "user", "type": ["null", "string"], "default": None},
        {"name": "tags", "type": {"type": "map", "values": "long"}},
    ],
}


@contextlib.contextmanager
def launch_http_producer(registry_grpc):
    args = [
        "--listen=127.0.0.1:0",
        "--admin-listen=127.0.0.1:0",
        f"--registry={registry_grpc}",
        f"--kafka-bootstrap={endpoint('ONEPIPE_KAFKA_BOOTSTRAP')}",
    ]
    with launch("http-producer", args, {"http", "admin"}) as (proc, addrs):
        yield proc, addrs["http"], addrs["admin"]


def request(url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_records_read_back_with_confluent_avro_deserializer(registry):
    topic = f"api-calls-{uuid.uuid4().hex[:8]}"
    with tempfile.NamedTemporaryFile("w", suffix=".avsc") as f:
        json.dump(SCHEMA, f)
        f.flush()
        subprocess.run(
            [
                str(binary("onepipe")),
                f"--registry={registry.grpc}",
                "topic", "create", topic,
                f"--schema-file={f.name}",
                "--unique-key=call_id",
                "--partitions=2",
                "--replication-factor=1",
                f"--kafka-bootstrap={endpoint('ONEPIPE_KAFKA_BOOTSTRAP')}",
            ],
            check=True,
            capture_output=True,
        )

    sent = [
        {
            "call_id": f"c-{i}",
            "at": f"2026-11-24T12:00:0{i}.250Z",
            "cost": f"{i}.125",
            "day": "2026-11-24",
            "body": "aGVsbG8=",
            "user": None if i % 2 else f"user-{i}",
            "tags": {"retries": i},
        }
        for i in range(6)
    ]
    with launch_http_producer(registry.grpc) as (proc, api, admin):
        status, body = request(
            f"{api}/v1/topics/{topic}/records",
            json.dumps({"records": [{"value": r} for r in sent]}).encode(),
            {"content-type": "application/json"},
        )
        assert status == 200, body
        assert len(json.loads(body)["offsets"]) == 6

        status, body = request(f"{api}/openapi.json")
        assert status == 200 and json.loads(body)["openapi"].startswith("3.")
        status, body = request(f"{admin}/readyz")
        assert status == 200, body
        status, body = request(f"{admin}/metrics")
        assert f'onepipe_http_records_produced_total{{topic="{topic}"}} 6' in body.decode()

        proc.terminate()
        assert proc.wait(timeout=30) == 0, "http-producer did not exit cleanly on SIGTERM"

    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry}))
    consumer = Consumer(
        {
            "bootstrap.servers": endpoint("ONEPIPE_KAFKA_BOOTSTRAP"),
            "group.id": f"py-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    got = {}
    deadline = time.time() + 30
    while len(got) < 6 and time.time() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        value = deserializer(msg.value(), SerializationContext(topic, MessageField.VALUE))
        assert msg.key() == json.dumps([value["call_id"]], separators=(",", ":")).encode()
        got[value["call_id"]] = value
    consumer.close()
    assert len(got) == 6
    for i, r in enumerate(sent):
        v = got[r["call_id"]]
        assert v["at"] == datetime.datetime(2026, 11, 24, 12, 0, i, 250000, tzinfo=datetime.timezone.utc)
        assert v["cost"] == decimal.Decimal(r["cost"])
        assert v["day"] == datetime.date(2026, 11, 24)
        assert v["body"] == b"hello"
        assert v["user"] == r["user"]
        assert v["tags"] == {"retries": i}
