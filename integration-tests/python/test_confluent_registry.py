"""The registry's REST API driven by confluent-kafka's own clients, unchanged:
register, evolve, be refused an incompatible change, serialize with AvroSerializer,
produce to Kafka, and decode with AvroDeserializer."""

import json

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import endpoint

V1 = {
    "type": "record",
    "name": "Payment",
    "namespace": "shop",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "amount_cents", "type": "long"},
    ],
}
V2 = {**V1, "fields": V1["fields"] + [{"name": "currency", "type": "string", "default": "EUR"}]}
BROKEN = {**V1, "fields": [{"name": "id", "type": "string"}, {"name": "amount_cents", "type": "string"}]}


def test_register_evolve_refuse(registry):
    client = SchemaRegistryClient({"url": registry})
    subject = "payments-value"
    id1 = client.register_schema(subject, Schema(json.dumps(V1), "AVRO"))
    assert client.register_schema(subject, Schema(json.dumps(V1), "AVRO")) == id1
    id2 = client.register_schema(subject, Schema(json.dumps(V2), "AVRO"))
    assert id2 != id1

    latest = client.get_latest_version(subject)
    assert (latest.version, latest.schema_id) == (2, id2)
    assert client.get_versions(subject) == [1, 2]
    assert subject in client.get_subjects()
    assert json.loads(client.get_schema(id1).schema_str) == V1

    assert client.test_compatibility(subject, Schema(json.dumps(BROKEN), "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(json.dumps(BROKEN), "AVRO"))
    assert refused.value.http_status_code == 409
    assert refused.value.error_code == 409
    assert "/fields/1/type" in refused.value.error_message

    with pytest.raises(SchemaRegistryError) as missing:
        client.get_schema(987654)
    assert (missing.value.http_status_code, missing.value.error_code) == (404, 40403)

    client.set_compatibility(subject, "FULL")
    assert client.get_compatibility(subject) == "FULL"


def test_serializer_kafka_deserializer(registry, topic):
    client = SchemaRegistryClient({"url": registry})
    serializer = AvroSerializer(client, json.dumps(V2))
    deserializer = AvroDeserializer(client)
    ctx = SerializationContext(topic, MessageField.VALUE)

    records = [{"id": f"p-{i}", "amount_cents": i * 100, "currency": "EUR" if i % 2 else "USD"} for i in range(50)]
    producer = Producer({"bootstrap.servers": endpoint("ONEPIPE_KAFKA_BOOTSTRAP"), "acks": "all", "enable.idempotence": True})
    for r in records:
        value = serializer(r, ctx)
        # onepipe's wire format is Confluent's: magic byte 0, then the id big-endian.
        assert value[0] == 0
        producer.produce(topic, key=json.dumps([r["id"]], separators=(",", ":")), value=value)
    assert producer.flush(30) == 0

    schema_id = int.from_bytes(value[1:5], "big")
    assert json.loads(client.get_schema(schema_id).schema_str)["fields"][-1]["name"] == "currency"
    assert client.get_latest_version(f"{topic}-value").schema_id == schema_id

    consumer = Consumer(
        {
            "bootstrap.servers": endpoint("ONEPIPE_KAFKA_BOOTSTRAP"),
            "group.id": f"{topic}-reader",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    decoded = []
    try:
        while len(decoded) < len(records):
            msg = consumer.poll(30)
            assert msg is not None, f"only {len(decoded)} of {len(records)} records came back"
            assert msg.error() is None, msg.error()
            decoded.append(deserializer(msg.value(), ctx))
    finally:
        consumer.close()
    assert decoded == records


def test_admin_endpoints(registry):
    import urllib.request

    client = SchemaRegistryClient({"url": registry})
    client.register_schema("m-value", Schema(json.dumps(V1), "AVRO"))
    with pytest.raises(SchemaRegistryError):
        client.register_schema("m-value", Schema(json.dumps(BROKEN), "AVRO"))

    def fetch(path):
        with urllib.request.urlopen(registry.admin + path, timeout=10) as r:
            return r.status, r.read().decode()

    assert fetch("/healthz")[0] == 200
    assert fetch("/readyz") == (200, "ready\n")
    status, text = fetch("/metrics")
    assert status == 200
    assert "onepipe_registry_schemas_registered_total 1" in text
    assert 'onepipe_registry_registrations_refused_total{reason="incompatible"} 1' in text
    assert "onepipe_registry_subjects 1" in text
