"""TLS on both registry ports: the REST API through confluent-kafka's client and
plain HTTPS, the gRPC API through the `onepipe` CLI, each trusting a CA made here."""

import http.client
import json
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from conftest import binary, launch_registry

SCHEMA = {"type": "record", "name": "T", "fields": [{"name": "id", "type": "string"}]}


@pytest.fixture
def cert(tmp_path):
    """A test CA and a server certificate it signed for localhost and 127.0.0.1."""

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-days", "1", "-subj", "/CN=onepipe-test-ca", "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", *ec, "-subj", "/CN=localhost", "-keyout", "key.pem", "-out", "server.csr")
    (tmp_path / "ext.cnf").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "1", "-extfile", "ext.cnf", "-out", "cert.pem",
    )
    return tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"


def test_both_ports_speak_tls(cert):
    ca, crt, key = cert
    with launch_registry(f"--tls-cert={crt}", f"--tls-key={key}", scheme="https") as reg:
        assert reg.startswith("https://") and reg.grpc.startswith("https://")
        client = SchemaRegistryClient({"url": reg, "ssl.ca.location": str(ca)})
        schema_id = client.register_schema("t-value", Schema(json.dumps(SCHEMA), "AVRO"))
        assert json.loads(client.get_schema(schema_id).schema_str) == SCHEMA

        # Plain HTTP on the TLS port gets nowhere.
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            urllib.request.urlopen(reg.replace("https://", "http://") + "/subjects", timeout=5).read()
        ctx = ssl.create_default_context(cafile=str(ca))
        with urllib.request.urlopen(reg + "/subjects", context=ctx, timeout=10) as r:
            assert json.loads(r.read()) == ["t-value"]

        onepipe = [str(binary("onepipe")), "--registry", reg.grpc]
        listed = subprocess.run([*onepipe, "--tls-ca", str(ca), "schema", "list"], capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split() == ["t-value"]

        refused = subprocess.run([*onepipe, "schema", "list"], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1
        assert "--tls-ca" in refused.stderr
