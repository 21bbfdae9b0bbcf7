#!/usr/bin/env bash
# Checks the Helm chart offline: `helm lint --strict`, then `helm template` with the default
# values and with every helm/onepipe/ci/*-values.yaml, then every rendered manifest against
# the Kubernetes JSON schemas (strict: unknown fields fail) of each version in ONEPIPE_K8S_VERSIONS,
# plus what a schema cannot see (references between objects, names, pod hardening).
# Installs helm (go install, from the Go module proxy) and kubernetes-validate (PyPI, which
# bundles the schemas) on first use. kubeconform is not used: it fetches schemas from GitHub.
# Prints the resources rendered from the all-enabled values; exits non-zero on any problem.
# `deploy/helm-check.sh --install` installs helm and kubernetes-validate and stops there.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0
KUBERNETES_VALIDATE_VERSION=1.37.0
K8S_VERSIONS=${ONEPIPE_K8S_VERSIONS:-"1.30.0 1.37.0"}   # the oldest and newest bundled
CHART=${ONEPIPE_CHART:-helm/onepipe}   # another chart folder, for testing this script
BIN=$HOME/.cache/onepipe/bin
HELM=$BIN/helm

command -v go >/dev/null || export PATH=$PATH:/usr/local/go/bin
# A go-installed helm reports only "v3.22" itself; the module version is in the binary.
if ! go version -m "$HELM" 2>/dev/null | grep -Eq "^\s+mod\s+helm.sh/helm/v3\s+$HELM_VERSION\s"; then
  echo "helm-check: installing helm $HELM_VERSION into $BIN"
  GOBIN=$BIN go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi
if [ "$(python3 -c 'import kubernetes_validate.version as v; print(v.__version__)' 2>/dev/null)" \
     != "$KUBERNETES_VALIDATE_VERSION" ]; then
  echo "helm-check: installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION"
  python3 -m pip install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
# --install: only install the tools (the image test renders the chart with this helm).
[ "${1:-}" = --install ] && exit 0

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# "default" renders values.yaml alone; the others add one ci/ values file each.
sets=(default)
for f in "$CHART"/ci/*-values.yaml; do
  [ -e "$f" ] && sets+=("$(basename "$f" -values.yaml)")
done
for set in "${sets[@]}"; do
  args=()
  [ "$set" = default ] || args=(-f "$CHART/ci/$set-values.yaml")
  "$HELM" lint --strict --quiet "$CHART" "${args[@]}" >"$out/lint.log" 2>&1 \
    || { cat "$out/lint.log"; echo "helm-check: helm lint failed for $set values" >&2; exit 1; }
  "$HELM" template onepipe "$CHART" --namespace onepipe "${args[@]}" >"$out/$set.yaml" \
    || { echo "helm-check: helm template failed for $set values" >&2; exit 1; }
  echo "helm-check: $set values: lint ok, rendered $(grep -c '^kind:' "$out/$set.yaml") resources"
done

python3 - "$out" "$K8S_VERSIONS" "${sets[@]}" <<'PY'
import re, sys
import yaml
import kubernetes_validate
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

out, versions, sets = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
problems = []

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}

# The Prometheus Operator's CRD is not among the Kubernetes schemas: check the parts the
# chart sets by hand.
def check_service_monitor(d, where):
    spec = d.get("spec", {})
    if not spec.get("selector", {}).get("matchLabels"):
        problems.append(f"{where}: spec.selector.matchLabels missing")
    for i, ep in enumerate(spec.get("endpoints") or [None]):
        if not isinstance(ep, dict) or not isinstance(ep.get("port"), str):
            problems.append(f"{where}: spec.endpoints[{i}].port must be a port name")
        elif not str(ep.get("path", "/")).startswith("/"):
            problems.append(f"{where}: spec.endpoints[{i}].path must start with /")
    unknown = set(spec) - {"selector", "endpoints", "namespaceSelector", "jobLabel",
                           "targetLabels", "podTargetLabels", "sampleLimit"}
    if unknown:
        problems.append(f"{where}: unknown spec fields {sorted(unknown)}")

def pod_template(d):
    if d["kind"] == "CronJob":
        return d["spec"]["jobTemplate"]["spec"]["template"]
    return d["spec"]["template"]

def check_pod(d, where, objects):
    tpl = pod_template(d)
    spec, labels = tpl["spec"], tpl["metadata"].get("labels", {})
    psc = spec.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True:
        problems.append(f"{where}: pod securityContext.runAsNonRoot is not true")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: pod seccompProfile is not RuntimeDefault")
    sel = d["spec"].get("selector", {}).get("matchLabels") if d["kind"] != "CronJob" else None
    if sel is not None and any(labels.get(k) != v for k, v in sel.items()):
        problems.append(f"{where}: selector {sel} does not match the pod labels {labels}")
    volumes = {v["name"] for v in spec.get("volumes", [])}
    for c in spec["containers"]:
        cw = f"{where} container {c['name']}"
        sc = c.get("securityContext", {})
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{cw}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{cw}: allowPrivilegeEscalation is not false")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            problems.append(f"{cw}: capabilities do not drop ALL")
        if not c.get("resources", {}).get("limits", {}).get("memory"):
            problems.append(f"{cw}: no memory limit")
        ports = {p.get("name") for p in c.get("ports", [])}
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = c.get(probe, {}).get("httpGet", {})
            if get.get("path") != path or get.get("port") not in ports:
                problems.append(f"{cw}: {probe} is not GET {path} on a declared port")
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                problems.append(f"{cw}: mounts undeclared volume {m['name']}")
        for ref in c.get("envFrom", []):
            if "configMapRef" in ref and ("ConfigMap", ref["configMapRef"]["name"]) not in objects:
                problems.append(f"{cw}: ConfigMap {ref['configMapRef']['name']} is not rendered")
        for e in c.get("env", []):
            cm = e.get("valueFrom", {}).get("configMapKeyRef")
            if cm and ("ConfigMap", cm["name"]) not in objects:
                problems.append(f"{cw}: ConfigMap {cm['name']} is not rendered")
        env_names = {e["name"] for e in c.get("env", [])}
        for a in c.get("args", []):
            for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(a)):
                if var not in env_names:
                    problems.append(f"{cw}: arg {a!r} refers to an undefined variable {var}")
    return labels

def check_set(name):
    path = f"{out}/{name}.yaml"
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    objects, pods = {}, []
    for d in docs:
        for key in ("apiVersion", "kind", "metadata"):
            if key not in d:
                problems.append(f"{name}: a document without {key}")
                return []
        k = (d["kind"], d["metadata"]["name"])
        if k in objects:
            problems.append(f"{name}: {k[0]}/{k[1]} rendered twice")
        objects[k] = d
    for (kind, obj), d in objects.items():
        where = f"{name}: {kind}/{obj}"
        if kind == "ServiceMonitor":
            check_service_monitor(d, where)
        else:
            for v in versions:
                try:
                    kubernetes_validate.validate(d, v, strict=True)
                except ValidationError as e:
                    path_ = ".".join(str(p) for p in e.path)
                    problems.append(f"{where}: Kubernetes {v} schema: {path_}: {e.message}")
                except SchemaNotFoundError as e:
                    problems.append(f"{where}: {e.message}")
        limit = 52 if kind == "CronJob" else 63
        rx = DNS_1035 if kind == "Service" else DNS_LABEL
        if len(obj) > limit or not rx.match(obj):
            problems.append(f"{where}: name is not a valid {kind} name (≤{limit}, {rx.pattern})")
        for lk, lv in (d["metadata"].get("labels") or {}).items():
            if len(str(lv)) > 63:
                problems.append(f"{where}: label {lk} longer than 63 characters")
        if kind in WORKLOADS:
            pods.append((kind, obj, check_pod(d, where, objects)))
        if kind == "CronJob" and d["spec"].get("concurrencyPolicy") != "Forbid":
            problems.append(f"{where}: concurrencyPolicy is not Forbid")

    # Pods of exactly one workload: a selector that also caught another workload's pods
    # would route traffic to, count or scale the wrong pods.
    def selected(selector):
        return [f"{k}/{o}" for k, o, l in pods
                if all(l.get(a) == b for a, b in selector.items())]
    for (kind, obj), d in objects.items():
        where = f"{name}: {kind}/{obj}"
        sel = None
        if kind == "Service":
            sel = d["spec"].get("selector", {})
        elif kind in ("PodDisruptionBudget", "Deployment"):
            sel = d["spec"]["selector"]["matchLabels"]
        if sel is not None:
            hits = selected(sel)
            if len(hits) != 1 or (kind == "Deployment" and hits != [f"{kind}/{obj}"]):
                problems.append(f"{where}: selector {sel} matches the pods of {hits or 'nothing'}")
        if kind == "HorizontalPodAutoscaler":
            t = d["spec"]["scaleTargetRef"]
            if (t["kind"], t["name"]) not in objects:
                problems.append(f"{where}: scale target {t['kind']}/{t['name']} is not rendered")
            elif "replicas" in objects[(t["kind"], t["name"])]["spec"]:
                problems.append(f"{where}: its target sets replicas (they would fight)")
        if kind == "Ingress":
            for rule in d["spec"]["rules"]:
                for p in rule["http"]["paths"]:
                    svc = p["backend"]["service"]
                    target = objects.get(("Service", svc["name"]))
                    if not target or svc["port"].get("name") not in {x["name"] for x in target["spec"]["ports"]}:
                        problems.append(f"{where}: backend {svc} is not a rendered Service port")
        if kind == "ServiceMonitor":
            sel = d["spec"]["selector"]["matchLabels"]
            hits = [s for (k, _), s in objects.items() if k == "Service"
                    and all(s["metadata"].get("labels", {}).get(a) == b for a, b in sel.items())]
            ports = {ep["port"] for ep in d["spec"]["endpoints"]}
            if not hits:
                problems.append(f"{where}: selects no rendered Service")
            for s in hits:
                if not ports & {p["name"] for p in s["spec"]["ports"]}:
                    problems.append(f"{where}: Service {s['metadata']['name']} has no port {ports}")
    return list(objects)

rendered = {s: check_set(s) for s in sets}
if problems:
    print("helm-check: FAILED", file=sys.stderr)
    for p in problems:
        print("  " + p, file=sys.stderr)
    sys.exit(1)
total = sum(len(v) for v in rendered.values())
print(f"helm-check: {total} manifests valid against the Kubernetes {', '.join(versions)} schemas"
      f" (strict) and cross-checked")
for s in sets:
    if s != "default":
        print(f"helm-check: resources rendered from {s} values:")
        for kind, obj in sorted(rendered[s]):
            print(f"  {kind}/{obj}")
PY
