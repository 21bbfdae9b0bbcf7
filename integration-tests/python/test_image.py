"""The container image, run the way the Helm chart runs it.

`deploy/image.sh build --prebuilt` makes the image from this build's binaries (the runtime
stage of deploy/Dockerfile, FROM scratch). The chart is rendered with `helm template` for the
local stack, and every workload is started from the image with podman (or docker) exactly as
its rendered pod spec says: the command and args, the env from the ConfigMaps and Secrets it
references, uid 10001, a read-only root filesystem with emptyDir volumes as tmpfs, all
capabilities dropped; host network in place of Services. The Deployments (registry,
http-producer, copycat, warehouse-loader, online-sink, verifier serve) must become ready on their readiness
probe; the CronJobs (copydog, copydog vacuum, verifier check) run once each, as a Job made from
them would. Records go in through http-producer; the verifier's check, from the image, must
find Kafka, the raw archive, the clean archive and the warehouse in agreement.

Skipped, with the reason, where no container runtime exists; ONEPIPE_REQUIRE_CONTAINERS=1
(set by .ci/run) turns the skip into a failure."""

import base64
import contextlib
import datetime
import json
import os
import pathlib
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.request
import uuid

import pytest
import yaml

from conftest import ROOT, binary, endpoint

IMAGE_SH = ROOT / "deploy/image.sh"
HELM = pathlib.Path.home() / ".cache/onepipe/bin/helm"
RECORDS = 3000


def runtime():
    run = subprocess.run([str(IMAGE_SH), "runtime"], capture_output=True, text=True)
    if run.returncode != 0:
        message = f"no container runtime, the image test cannot run: {run.stderr.strip()}"
        if os.environ.get("ONEPIPE_REQUIRE_CONTAINERS"):
            pytest.fail(message)
        pytest.skip(message)
    if "CONTAINERS_CONF" not in os.environ:
        os.environ["CONTAINERS_CONF"] = str(pathlib.Path.home() / ".cache/onepipe/containers.conf")
    return run.stdout.strip()


def helm():
    if not HELM.exists():
        subprocess.run([str(ROOT / "deploy/helm-check.sh"), "--install"], check=True)
    return str(HELM)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(values, *extra):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump(values, f)
        f.flush()
        out = subprocess.run(
            [helm(), "template", "onepipe", str(ROOT / "helm/onepipe"), "--namespace", "onepipe",
             "-f", f.name, *extra],
            capture_output=True, text=True,
        )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def pod_spec(obj):
    if obj["kind"] == "Deployment":
        return obj["spec"]["template"]["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    raise AssertionError(f"not a workload: {obj['kind']}")


def expand(arg, env):
    """Kubernetes' expansion of $(VAR) in command and args from the container's env; $$ is a
    literal $ and an unknown $(VAR) stays as written."""
    out, i = [], 0
    while i < len(arg):
        if arg.startswith("$$", i):
            out.append("$")
            i += 2
        elif arg.startswith("$(", i) and ")" in arg[i:]:
            end = arg.index(")", i)
            name = arg[i + 2:end]
            out.append(env.get(name, arg[i:end + 1]))
            i = end + 1
        else:
            out.append(arg[i])
            i += 1
    return "".join(out)


class Cluster:
    """What a kubelet would do with the rendered objects, on one host with podman."""

    def __init__(self, rt, objects, tag):
        self.rt, self.tag = rt, tag
        self.objects = {(o["kind"], o["metadata"]["name"]): o for o in objects}
        self.started = []

    def _data(self, kind, name):
        obj = self.objects.get((kind, name))
        assert obj is not None, f"the pod references {kind} {name}, which the chart did not render"
        if kind == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
            data.update(obj.get("stringData") or {})
            return data
        return obj.get("data") or {}

    def command(self, obj, name, detach):
        spec = pod_spec(obj)
        (container,) = spec["containers"]
        assert container["image"] == self.tag, f"{obj['metadata']['name']} runs {container['image']}"
        env = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                env.update(self._data("ConfigMap", source["configMapRef"]["name"]))
            else:
                env.update(self._data("Secret", source["secretRef"]["name"]))
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
            else:
                ref = var["valueFrom"]
                kind, key = ("Secret", "secretKeyRef") if "secretKeyRef" in ref else ("ConfigMap", "configMapKeyRef")
                env[var["name"]] = self._data(kind, ref[key]["name"])[ref[key]["key"]]
        pod_sc, sc = spec.get("securityContext", {}), container.get("securityContext", {})
        args = [self.rt, "run", "--name", name, "--network", "host", "--pull", "never",
                "--user", f"{pod_sc['runAsUser']}:{pod_sc['runAsGroup']}"]
        args += ["-d"] if detach else ["--rm"]
        if sc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        for cap in sc.get("capabilities", {}).get("drop", []):
            args += ["--cap-drop", cap]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            assert "emptyDir" in volumes[mount["name"]], f"volume {mount['name']} is not an emptyDir"
            args += ["--tmpfs", f"{mount['mountPath']}:rw,mode=1777"]
        for key, value in sorted(env.items()):
            args += ["--env", f"{key}={value}"]
        command = [expand(a, env) for a in container["command"]]
        args += ["--entrypoint", json.dumps(command), self.tag]
        args += [expand(a, env) for a in container.get("args", [])]
        return args

    def start(self, obj):
        """Starts a Deployment's pod, waits for its readiness probe; returns the admin URL."""
        name = f"it-{obj['metadata']['name']}-{uuid.uuid4().hex[:6]}"
        # Removed at the end even when it fails to start (podman keeps it as Created).
        self.started.append(name)
        run = subprocess.run(self.command(obj, name, detach=True), capture_output=True, text=True)
        assert run.returncode == 0, f"{name} did not start: {run.stderr}"
        (container,) = pod_spec(obj)["containers"]
        probe = container["readinessProbe"]["httpGet"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        url = f"http://127.0.0.1:{ports[probe['port']]}"
        deadline = time.time() + 60
        while time.time() < deadline:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url + probe["path"], timeout=2) as r:
                    if r.status == 200:
                        return url
            state = subprocess.run([self.rt, "inspect", "--format", "{{.State.Running}}", name],
                                   capture_output=True, text=True).stdout.strip()
            if state != "true":
                break
            time.sleep(0.5)
        pytest.fail(f"{name} never became ready on {url}{probe['path']}:\n{self.logs(name)}")

    def run_job(self, obj, timeout=300):
        name = f"it-{obj['metadata']['name']}-{uuid.uuid4().hex[:6]}"
        try:
            return subprocess.run(self.command(obj, name, detach=False), capture_output=True,
                                  text=True, timeout=timeout)
        finally:
            # --rm removes it after it ran; not when it could not be started or timed out.
            subprocess.run([self.rt, "rm", "-f", "-t", "5", name], capture_output=True)

    def logs(self, name):
        out = subprocess.run([self.rt, "logs", "--tail", "40", name], capture_output=True, text=True)
        return out.stdout + out.stderr

    def stop(self):
        for name in self.started:
            subprocess.run([self.rt, "rm", "-f", "-t", "5", name], capture_output=True)


def metric(url, name):
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read() or b"{}")


def psql(url, sql):
    out = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-tAc", sql], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def image():
    rt = runtime()
    tag = subprocess.run([str(IMAGE_SH), "tag"], capture_output=True, text=True, check=True).stdout.strip()
    bin_dir = binary("registry").parent
    build = subprocess.run([str(IMAGE_SH), "build", "--prebuilt", str(bin_dir), "--tag", tag],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    print(build.stdout.strip().splitlines()[-1])
    return rt, tag


def test_image_is_non_root_without_shell_or_compiler(image):
    rt, tag = image
    user = subprocess.run([rt, "image", "inspect", "--format", "{{.Config.User}}", tag],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert user == "10001:10001"
    name = f"it-export-{uuid.uuid4().hex[:6]}"
    subprocess.run([rt, "create", "--name", name, tag], capture_output=True, check=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tar = pathlib.Path(tmp) / "fs.tar"
            subprocess.run([rt, "export", "-o", str(tar), name], check=True)
            with tarfile.open(tar) as t:
                files = {pathlib.PurePath(m.name).name for m in t.getmembers() if m.isfile()}
    finally:
        subprocess.run([rt, "rm", "-f", name], capture_output=True)
    for binary_name in ("registry", "http-producer", "copycat", "copydog", "warehouse-loader",
                        "verifier", "online-sink", "onepipe"):
        assert binary_name in files, f"{binary_name} is not in the image"
    for tool in ("sh", "bash", "cc", "gcc", "ld", "rustc", "cargo", "apt", "dpkg"):
        assert tool not in files, f"the image holds {tool}"


def test_chart_default_image_is_what_make_image_builds(image):
    _, tag = image
    workloads = [o for o in render({}) if o["kind"] in ("Deployment", "CronJob")]
    assert workloads
    for obj in workloads:
        (container,) = pod_spec(obj)["containers"]
        assert container["image"] == tag, f"{obj['metadata']['name']} runs {container['image']}, not {tag}"


def test_pipeline_from_the_image_as_the_chart_runs_it(image):
    rt, tag = image
    bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP")
    pg = endpoint("ONEPIPE_DATABASE_URL")
    s3 = endpoint("ONEPIPE_S3_ENDPOINT")
    bucket = endpoint("ONEPIPE_S3_BUCKET")
    run_id = uuid.uuid4().hex[:8]
    topic = f"it_image_{run_id}"
    db = f"it_image_{run_id}"
    psql(pg, f"CREATE DATABASE {db}")
    db_url = pg.rsplit("/", 1)[0] + "/" + db
    ports = {k: free_port() for k in ("grpc", "rest", "radmin", "http", "hadmin", "cadmin",
                                      "dadmin", "wadmin", "vadmin", "oadmin")}
    values = {
        "kafka": {"bootstrap": bootstrap},
        "registryUrl": f"http://127.0.0.1:{ports['grpc']}",
        "objectStore": {"url": f"s3://{bucket}/{run_id}", "s3": {
            "endpoint": s3, "region": os.environ.get("AWS_REGION", "us-east-1"),
            "accessKeyId": os.environ["AWS_ACCESS_KEY_ID"],
            "secretAccessKey": os.environ["AWS_SECRET_ACCESS_KEY"]}},
        "registry": {"replicas": 1, "hpa": {"enabled": False}, "database": {"url": db_url},
                     "service": {"grpcPort": ports["grpc"], "restPort": ports["rest"],
                                 "adminPort": ports["radmin"]}},
        "httpProducer": {"replicas": 1, "hpa": {"enabled": False},
                         "service": {"port": ports["http"], "adminPort": ports["hadmin"]}},
        "copycat": {"topics": f"^{topic}$", "adminPort": ports["cadmin"],
                    "env": {"ONEPIPE_IDLE_FLUSH": "2s"}},
        "copydog": {"datasets": [{"topic": topic}], "adminPort": ports["dadmin"]},
        "warehouseLoader": {"adminPort": ports["wadmin"], "env": {"ONEPIPE_POLL_INTERVAL": "1s"},
                            "warehouses": [{"name": "pg", "datasets": [topic], "schema": "wh",
                                            "database": {"url": db_url}}]},
        "onlineSink": {"enabled": True, "datasets": [topic], "schema": "online", "hpa": {"enabled": False},
                       "adminPort": ports["oadmin"], "database": {"url": db_url}},
        "verifier": {"adminPort": ports["vadmin"], "check": {"dataset": topic},
                     "serve": {"enabled": True}},
    }
    objects = render(values)
    cluster = Cluster(rt, objects, tag)
    by_component = {}
    for obj in objects:
        if obj["kind"] in ("Deployment", "CronJob"):
            component = obj["metadata"]["labels"]["app.kubernetes.io/component"]
            by_component.setdefault(component, []).append(obj)
    assert {"registry", "http-producer", "copycat", "copydog", "copydog-vacuum", "warehouse-loader",
            "verifier", "verifier-serve", "online-sink"} <= set(by_component), sorted(by_component)
    try:
        cluster.start(by_component["registry"][0])
        cluster.start(by_component["http-producer"][0])
        producer_api = f"http://127.0.0.1:{ports['http']}"

        # The dataset is registered with the image's own CLI, as an operator's Job would.
        with tempfile.TemporaryDirectory() as tmp:
            schema = pathlib.Path(tmp) / "schema.avsc"
            schema.write_text(json.dumps({"type": "record", "name": "Order", "namespace": "it", "fields": [
                {"name": "id", "type": "string"},
                {"name": "version", "type": "long"},
                {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal",
                                            "precision": 12, "scale": 2}},
                {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}))
            os.chmod(tmp, 0o755)
            create = subprocess.run(
                [rt, "run", "--rm", "--network", "host", "--read-only", "--pull", "never",
                 "-v", f"{schema}:/schema.avsc:ro", tag, "onepipe", "--registry", values["registryUrl"],
                 "topic", "create", topic, "--schema-file", "/schema.avsc", "--unique-key", "id",
                 "--merge", "max_by:version", "--sort-key", "at,id", "--partition-time", "at",
                 "--checks", "sum:amount,row_checksum", "--partitions", "3",
                 "--kafka-bootstrap", bootstrap],
                capture_output=True, text=True, timeout=120)
            assert create.returncode == 0, create.stdout + create.stderr

        copycat = cluster.start(by_component["copycat"][0])
        for deployment in by_component["warehouse-loader"]:
            cluster.start(deployment)
        cluster.start(by_component["online-sink"][0])

        # 3000 versions of 2000 keys over two days; every key's last version wins.
        base = 1_790_000_000_000
        sent = 0
        for batch in range(6):
            records = []
            for i in range(500):
                n = batch * 500 + i
                records.append({"value": {"id": f"k{n % 2000}", "version": n, "amount": f"{n}.{n % 100:02d}",
                                          "at": base + (n % 2000) * 60_000}})
            status, body = post(f"{producer_api}/v1/topics/{topic}/records", {"records": records})
            assert status == 200, body
            sent += len(records)
        assert sent == RECORDS

        deadline = time.time() + 120
        while metric(copycat, "onepipe_copycat_records_archived_total") < RECORDS:
            assert time.time() < deadline, "copycat in the image did not archive every record"
            time.sleep(1)

        # online-sink in the image: one row per key, the last version of each.
        deadline = time.time() + 120
        online = f"online.{topic}"
        while True:
            exists = psql(db_url, f"SELECT to_regclass('{online}') IS NOT NULL")
            if exists == "t" and psql(db_url, f"SELECT count(*) FROM {online}") == "2000":
                break
            assert time.time() < deadline, "online-sink in the image did not apply every record"
            time.sleep(1)
        assert psql(db_url, f"SELECT min(version) FROM {online}") == str(RECORDS - 2000)

        merge = cluster.run_job(by_component["copydog"][0])
        assert merge.returncode == 0, f"copydog job failed:\n{merge.stdout}\n{merge.stderr[-3000:]}"

        deadline = time.time() + 120
        table = f"wh.{topic}"
        while True:
            exists = psql(db_url, f"SELECT to_regclass('{table}') IS NOT NULL")
            if exists == "t" and psql(db_url, f"SELECT count(*) FROM {table}") == "2000":
                break
            assert time.time() < deadline, "warehouse-loader in the image did not load the clean archive"
            time.sleep(1)

        check = cluster.run_job(by_component["verifier"][0])
        assert check.returncode == 0, f"the verifier found disagreement:\n{check.stdout}\n{check.stderr[-3000:]}"
        report = json.loads(check.stdout)
        assert report["mismatches"] == 0 and not report["errors"], report
        verdicts = {(line["store"], line["date"]): line["verdict"] for line in report["lines"]}
        # The warehouse under the name and in the schema the chart gave it, both dates of
        # each store checked.
        expected_dates = {
            datetime.datetime.fromtimestamp((base + k * 60_000) / 1000, datetime.timezone.utc).date().isoformat()
            for k in range(2000)
        }
        assert len(expected_dates) == 2
        for store in ("raw", "clean", "pg"):
            dates = {d for (s, d), v in verdicts.items() if s == store and v == "ok" and d != "(all)"}
            assert dates == expected_dates, f"{store}: {sorted(verdicts.items())}"
        assert verdicts[("kafka", "*")] == "ok", verdicts
        assert all(v == "ok" for v in verdicts.values()), verdicts

        # After the check: on one host network the check and serve pods would share the
        # verifier's admin port, which separate pods do not.
        serve = cluster.start(by_component["verifier-serve"][0])
        assert serve

        vacuum = cluster.run_job(by_component["copydog-vacuum"][0])
        assert vacuum.returncode == 0, f"copydog vacuum job failed:\n{vacuum.stderr[-3000:]}"
    except BaseException:
        for name in cluster.started:
            print(f"--- {name}\n{cluster.logs(name)}")
        raise
    finally:
        cluster.stop()
        with contextlib.suppress(AssertionError):
            psql(pg, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
