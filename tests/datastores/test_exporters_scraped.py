"""Issue 12 defect 4 (aws side): in prod the database and the cache are RDS and
ElastiCache, and the exporter Deployments pointed at them must be what the existing
``postgres-exporter`` and ``redis-exporter`` jobs scrape, in both monitoring modes.

The consumer's rules, applied here to the rendered objects:
- Prometheus ``kubernetes_sd_configs`` role ``pod``: one target per declared container
  port, with ``__meta_kubernetes_namespace``, ``__meta_kubernetes_pod_label_<name>``
  (name sanitized to ``[a-zA-Z0-9_]``), ``__meta_kubernetes_pod_container_port_number``,
  ``__meta_kubernetes_pod_phase`` ... (prometheus.io/docs/prometheus/latest/configuration/
  configuration/#kubernetes_sd_config); ``relabel_configs`` with ``keep``/``drop``/
  ``replace``: source labels joined by ``;``, the regex fully anchored, default action
  ``replace`` with replacement ``$1`` (#relabel_config).
- Prometheus Operator ``PodMonitor``: pods of ``namespaceSelector.matchNames`` matched
  by ``selector``; ``podMetricsEndpoints[].portNumber`` selects the container port; the
  endpoint's ``relabelings`` run after the operator's own (monitoring.coreos.com/v1 API).
- NetworkPolicy: a connection is allowed when the source's egress and the destination's
  ingress both admit it (kubernetes.io/docs/concepts/services-networking/network-policies).
"""

import re

import pytest
import yaml

from support import Stack, override, relabel
from tools import mockrt

JOBS = {"postgres-exporter": ("new-api-postgres-exporter", 9187, "postgres"),
        "redis-exporter": ("new-api-redis-exporter", 9121, "redis")}


def _pods(stack, namespace: str) -> list[dict]:
    """Every pod the stack's workloads in ``namespace`` create (template metadata + spec)."""
    out = []
    for kind in ("Deployment", "StatefulSet"):
        for obj in stack.k8s_all(kind):
            if obj["metadata"].get("namespace") == namespace:
                t = obj["spec"]["template"]
                out.append({"name": obj["metadata"]["name"], "namespace": namespace,
                            "labels": t["metadata"].get("labels", {}), "spec": t["spec"]})
    return out


def _targets(pod: dict) -> list[dict]:
    """Kubernetes SD, pod role: a target per declared container port."""
    base = {"__meta_kubernetes_namespace": pod["namespace"], "__meta_kubernetes_pod_name": pod["name"] + "-0",
            "__meta_kubernetes_pod_phase": "Running", "__meta_kubernetes_pod_node_name": "node-a"}
    for k, v in pod["labels"].items():
        base["__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k)] = v
    out = []
    for c in pod["spec"]["containers"]:
        for p in c.get("ports", []):
            out.append({**base, "__address__": f"10.1.2.3:{p['containerPort']}",
                        "__meta_kubernetes_pod_container_name": c["name"],
                        "__meta_kubernetes_pod_container_port_number": str(p["containerPort"])})
    return out


def _selected(stack, job_name: str, config: dict) -> list[dict]:
    job = next(j for j in config["scrape_configs"] if j["job_name"] == job_name)
    namespaces = [n for sd in job["kubernetes_sd_configs"] for n in sd["namespaces"]["names"]]
    out = []
    for ns in namespaces:
        for pod in _pods(stack, ns):
            for target in _targets(pod):
                kept = relabel(target, job.get("relabel_configs", []))
                if kept is not None:
                    out.append({"pod": pod["name"], **{k: v for k, v in kept.items() if not k.startswith("__meta")}})
    return out


@pytest.mark.parametrize("job", sorted(JOBS))
def test_prod_prometheus_scrapes_the_managed_datastores_exporter(prod, job):
    """Old code: prod had no pod on 9187/9121 in the app namespace, so both jobs had no target."""
    config = yaml.safe_load(prod.k8s("ConfigMap", "prometheus-config")["data"]["prometheus.yml"])
    workload, port, service = JOBS[job]
    targets = _selected(prod, job, config)
    assert [(t["pod"], t["__address__"].rsplit(":", 1)[1], t["service"]) for t in targets] == \
        [(workload, str(port), service)]


@pytest.fixture(scope="module")
def prod_operator():
    return Stack(mockrt.run_stack("prod", overrides=override("prod", ("monitoring.mode", "operator"))))


def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


@pytest.mark.parametrize("job", sorted(JOBS))
def test_operator_pod_monitor_selects_the_managed_datastores_exporter(prod_operator, job):
    workload, port, service = JOBS[job]
    monitor = next(m for m in prod_operator.k8s_all("PodMonitor") if m["metadata"]["name"] == job)
    spec = monitor["spec"]
    hits = []
    for ns in spec["namespaceSelector"]["matchNames"]:
        for pod in _pods(prod_operator, ns):
            if not _matches(spec["selector"], pod["labels"]):
                continue
            for endpoint in spec["podMetricsEndpoints"]:
                for target in _targets(pod):
                    if target["__meta_kubernetes_pod_container_port_number"] != str(endpoint["portNumber"]):
                        continue
                    configs = [{{"sourceLabels": "source_labels", "targetLabel": "target_label"}.get(k, k): v
                                for k, v in r.items()} for r in endpoint.get("relabelings", [])]
                    kept = relabel({**target, "job": f"{ns}/{job}"}, configs)
                    if kept is not None:
                        hits.append((pod["name"], kept["job"], kept.get("service")))
    assert hits == [(workload, job, service)]


def _policy_admits(policies: list, pod: dict, peer_ns: str, peer_labels: dict, port: int, direction: str) -> bool:
    """Does any policy selecting ``pod`` admit the peer on ``port`` (``ingress`` or ``egress``)?"""
    ns_labels = {"kubernetes.io/metadata.name": peer_ns}
    selecting = [p for p in policies if p["metadata"]["namespace"] == pod["namespace"]
                 and _matches(p["spec"]["podSelector"], pod["labels"])
                 and direction.capitalize() in p["spec"].get("policyTypes", [])]
    for policy in selecting:
        for rule in policy["spec"].get(direction, []):
            peers = rule.get("from" if direction == "ingress" else "to", [])
            ports = [p["port"] for p in rule.get("ports", [])]
            if ports and port not in ports:
                continue
            for peer in peers:
                if "ipBlock" in peer:
                    continue
                ns_ok = (_matches(peer["namespaceSelector"], ns_labels) if "namespaceSelector" in peer
                         else peer_ns == pod["namespace"])
                pod_ok = _matches(peer.get("podSelector", {}), peer_labels)
                if ns_ok and pod_ok:
                    return True
    return False


@pytest.mark.parametrize("job", sorted(JOBS))
def test_network_policies_let_prometheus_reach_the_exporter(prod, job):
    workload, port, _ = JOBS[job]
    policies = prod.k8s_all("NetworkPolicy")
    exporter = next(p for p in _pods(prod, "new-api") if p["name"] == workload)
    prometheus = next(p for p in _pods(prod, "monitoring") if p["name"] == "prometheus")
    assert _policy_admits(policies, exporter, "monitoring", prometheus["labels"], port, "ingress")
    assert _policy_admits(policies, prometheus, "new-api", exporter["labels"], port, "egress")


@pytest.mark.parametrize("workload", [w for w, _, _ in JOBS.values()])
def test_exporters_are_hardened_like_every_workload(prod, workload):
    obj = prod.k8s("Deployment", workload)
    pod = obj["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] and not pod["automountServiceAccountToken"]
    assert pod["serviceAccountName"] == workload
    assert c["securityContext"]["readOnlyRootFilesystem"] and c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["resources"]["limits"]["memory"] and c["readinessProbe"] and c["livenessProbe"]
    policy = prod.k8s("NetworkPolicy", workload)["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    # Egress: only the managed endpoint's port in the VPC.
    endpoint_port = 5432 if "postgres" in workload else 6379
    assert [(r["to"], [p["port"] for p in r["ports"]]) for r in policy["egress"]] == \
        [([{"ipBlock": {"cidr": "10.0.0.0/16"}}], [endpoint_port])]


def test_redis_exporter_talks_tls_to_the_primary_endpoint(prod):
    env = {e["name"]: e for e in prod.k8s("Deployment", "new-api-redis-exporter")["spec"]["template"]["spec"]
           ["containers"][0]["env"]}
    assert env["REDIS_ADDR"]["value"] == "rediss://new-api-redis.mock.internal:6379"
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "new-api-redis-exporter"
