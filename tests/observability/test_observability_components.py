"""What the Monitoring and Logging components create: hardening, narrow exemptions,
RBAC, topology, operator-mode custom resources (validated against the CRD schemas),
the autoscaling metric, argument validation, and the dev footprint."""

import json

import jsonschema
import pytest
from conftest import SCHEMAS, k8s_object, k8s_objects, pod_spec, registration, run_monitoring

from components import common
from components import logging_config as lc
from components.logging import Logging
from tools import mockrt

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
OBS_NAMESPACES = {"monitoring", "logging", "node-agents"}
EXEMPT = common.EXEMPT_CONTROLS_ANNOTATION


def obs_workloads(result):
    for kind in WORKLOAD_KINDS:
        for obj in k8s_objects(result, kind):
            if obj["metadata"].get("namespace") in OBS_NAMESPACES:
                yield kind, obj


def test_every_container_is_restricted_with_resources_and_probes(stack):
    seen = 0
    for kind, obj in obs_workloads(stack.result):
        pod = pod_spec(obj)
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"] + pod.get("initContainers", []):
            seen += 1
            sc = c["securityContext"]
            assert sc["runAsUser"] >= 10000 and sc["runAsGroup"] >= 10000, c["name"]
            assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"], c["name"]
            assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
            assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"], c["name"]
            assert ":" in c["image"] and not c["image"].endswith(":latest"), c["image"]
            if kind != "Job" and c in pod["containers"]:
                assert c.get("readinessProbe") and c.get("livenessProbe"), c["name"]
    assert seen >= 10


def test_only_node_agents_get_host_access_each_by_a_narrow_exemption(stack):
    exempted = {}
    for _, obj in obs_workloads(stack.result):
        pod = pod_spec(obj)
        host = [v for v in pod.get("volumes", []) if "hostPath" in v]
        annotations = obj["spec"]["template"]["metadata"].get("annotations", {})
        if host or pod.get("hostNetwork") or pod.get("hostPID"):
            exempted[obj["metadata"]["name"]] = annotations.get(EXEMPT)
            assert annotations.get(common.EXEMPT_REASON_ANNOTATION)
            for c in pod["containers"]:
                for m in c.get("volumeMounts", []):
                    if m["name"] in {v["name"] for v in host}:
                        assert m["readOnly"] is True
        elif pod.get("automountServiceAccountToken"):
            assert annotations.get(EXEMPT) == "K8S-015", obj["metadata"]["name"]
        else:
            assert EXEMPT not in annotations
    assert exempted == {"node-exporter": "K8S-009,K8S-010", "filebeat": "K8S-010,K8S-015"}


def test_agent_namespace_is_the_only_privileged_one(dev):
    levels = {ns["metadata"]["name"]: ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
              for ns in k8s_objects(dev.result, "Namespace")}
    assert levels["node-agents"] == "privileged"
    assert levels["monitoring"] == levels["logging"] == "restricted"


def test_rbac_is_read_only_and_never_reads_secrets(stack):
    assert k8s_objects(stack.result, "ClusterRole")
    for role in k8s_objects(stack.result, "ClusterRole"):
        for rule in role["rules"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, role["metadata"]["name"]
            assert "*" not in rule["resources"] and "secrets" not in rule["resources"]


def test_each_observability_workload_has_a_network_policy(stack):
    policies = [p for p in k8s_objects(stack.result, "NetworkPolicy") if p["metadata"]["namespace"] in OBS_NAMESPACES]
    assert list(obs_workloads(stack.result))
    for _, obj in obs_workloads(stack.result):
        labels = obj["spec"]["template"]["metadata"]["labels"]
        assert any(all(labels.get(k) == v for k, v in p["spec"]["podSelector"].get("matchLabels", {}).items())
                   and p["spec"]["podSelector"].get("matchLabels") for p in policies), obj["metadata"]["name"]


def test_dev_elasticsearch_is_one_node_without_mmap(dev):
    sts = k8s_object(dev.result, "StatefulSet", "elasticsearch")
    yml = k8s_object(dev.result, "ConfigMap", "elasticsearch-config")["data"]["elasticsearch.yml"]
    assert sts["spec"]["replicas"] == 1 and "discovery.type: single-node" in yml
    assert "node.store.allow_mmap: false" in yml
    env = {e["name"]: e for e in pod_spec(sts)["containers"][0]["env"]}
    assert env["ES_JAVA_OPTS"]["value"] == "-Xms512m -Xmx512m"
    assert env["ELASTIC_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "elasticsearch-credentials"


def test_prod_elasticsearch_is_three_nodes_with_tls_anti_affinity_and_pdb(prod):
    sts = k8s_object(prod.result, "StatefulSet", "elasticsearch")
    yml = k8s_object(prod.result, "ConfigMap", "elasticsearch-config")["data"]["elasticsearch.yml"]
    assert sts["spec"]["replicas"] == 3 and sts["spec"]["podManagementPolicy"] == "Parallel"
    assert "cluster.initial_master_nodes" in yml and "xpack.security.transport.ssl.enabled: true" in yml
    anti = pod_spec(sts)["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    assert k8s_object(prod.result, "PodDisruptionBudget", "elasticsearch")
    assert registration(prod.result, "StatefulSet", "elasticsearch").protect
    cert = k8s_object(prod.result, "Certificate", "elasticsearch-transport")
    assert "*.elasticsearch-headless.logging.svc" in cert["spec"]["dnsNames"]


def test_generated_elastic_credentials_are_secrets(prod):
    reg = registration(prod.result, "Secret", "elasticsearch-credentials")
    assert mockrt.is_secret_envelope(reg.inputs["stringData"])
    assert prod.result.stack_outputs["elasticPassword"][1] is True
    kibana = k8s_object(prod.result, "Deployment", "kibana")
    env = {e["name"]: e for e in pod_spec(kibana)["containers"][0]["env"]}
    assert "secretKeyRef" in env["XPACK_ENCRYPTEDSAVEDOBJECTS_ENCRYPTIONKEY"]["valueFrom"]


def test_dev_requests_stay_laptop_sized(dev):
    """Issue 5: the whole dev stack (app, datastores, monitoring, logging) requests at most
    2 vCPU and 5 GiB; DaemonSets counted once (one-node laptop cluster)."""
    cpu = mem = 0.0
    for kind in ("Deployment", "StatefulSet", "DaemonSet"):
        for obj in k8s_objects(dev.result, kind):
            pod = pod_spec(obj)
            n = 1 if kind == "DaemonSet" else int(obj["spec"].get("replicas", 1))
            req = lambda cs, k: [common.parse_quantity(c["resources"]["requests"][k]) for c in cs]  # noqa: E731
            cpu += n * max(sum(req(pod["containers"], "cpu")), max(req(pod.get("initContainers", []), "cpu") or [0]))
            mem += n * max(sum(req(pod["containers"], "memory")),
                           max(req(pod.get("initContainers", []), "memory") or [0]))
    assert cpu <= 2.0 and mem <= 5 * 2**30, (cpu, mem / 2**30)


# --------------------------------------------------------------------------- operator mode

def schema(group: str, kind: str, version: str) -> dict:
    return json.loads((SCHEMAS / group / f"{kind.lower()}_{version}.json").read_text())


def test_operator_mode_emits_custom_resources_valid_against_the_crd_schemas(operator_monitoring):
    kinds = {}
    for reg in operator_monitoring.registrations:
        if reg.type.startswith("kubernetes:monitoring.coreos.com") or reg.type.startswith("kubernetes:cert-manager"):
            obj = reg.inputs
            group, version = obj["apiVersion"].split("/")
            # The CRDs' Go-style patterns ("(?i)" mid-pattern) are not Python regexes: validate
            # the object without meta-validating the schema.
            sch = schema(group, obj["kind"], version)
            errors = list(jsonschema.validators.validator_for(sch)(sch).iter_errors(obj))
            assert not errors, [e.message for e in errors]
            kinds[obj["kind"]] = kinds.get(obj["kind"], 0) + 1
    # PodMonitors: the entry, Postgres and Redis exporters, cert-manager (the adapter's certificate)
    assert kinds == {"PodMonitor": 4, "ServiceMonitor": 2, "PrometheusRule": 1, "AlertmanagerConfig": 1,
                     "Issuer": 1, "Certificate": 1}
    assert not any(k8s_objects(operator_monitoring, "StatefulSet"))


def test_operator_rules_are_the_standalone_rules(operator_monitoring, full_monitoring):
    import yaml
    rule = next(r for r in operator_monitoring.registrations if r.type.endswith(":PrometheusRule"))
    standalone = yaml.safe_load(k8s_object(full_monitoring, "ConfigMap", "prometheus-rules")["data"]["new-api.yml"])
    operator = json.loads(json.dumps(rule.inputs["spec"]))
    # Only the exporter-presence checks differ: each mode has its own scrape jobs.
    mode_specific = lambda g: [x for x in g["groups"] if x["name"] != "new-api-exporters"]  # noqa: E731
    assert mode_specific(operator) == mode_specific(standalone)
    assert rule.inputs["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_operator_alertmanager_config_reads_credentials_from_the_secret(operator_monitoring):
    amc = next(r for r in operator_monitoring.registrations if r.type.endswith(":AlertmanagerConfig")).inputs
    critical = next(r for r in amc["spec"]["receivers"] if r["name"] == "critical-alerts")
    assert critical["slackConfigs"][0]["apiURL"] == {"name": "alertmanager-credentials", "key": "slack-webhook-url"}
    assert critical["webhookConfigs"][0]["urlSecret"]["key"] == "webhook-url"


# --------------------------------------------------------------------------- adapter

def test_adapter_serves_the_rps_metric_and_exposes_the_hpa_metric(full_monitoring):
    import yaml
    cfg = yaml.safe_load(k8s_object(full_monitoring, "ConfigMap", "prometheus-adapter")["data"]["config.yaml"])
    assert cfg["rules"][0]["name"]["as"] == "new_api_requests_per_second"
    api = k8s_object(full_monitoring, "APIService", "v1beta1.custom.metrics.k8s.io")
    assert api["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "monitoring/prometheus-adapter-tls"
    comp = next(r for r in full_monitoring.registrations if r.type == "new-api:index:Monitoring")
    metric = comp.outputs["hpa_metric"]
    assert metric["object"]["described_object"]["kind"] == "Ingress"
    assert metric["object"]["target"] == {"type": "AverageValue", "average_value": "20"}


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("override,message", [
    ({"mode": "sidecar"}, "mode: 'sidecar' must be one of standalone, operator"),
    ({"mode": "operator"}, "operator_prometheus_url: is required in operator mode"),
    ({"retention": "forever"}, "retention: 'forever' must be a Prometheus duration"),
    ({"resources": {"thanos": {}}}, "resources: unknown workloads ['thanos']"),
    ({"receivers": {"email_to": ["a@new-api.net"]}}, "receivers.email_from: is required"),
    ({"node_cidrs": ["10.0.0.1/8"]}, "node_cidrs: '10.0.0.1/8' is not a CIDR"),
])
def test_monitoring_rejects_bad_args_before_creating_anything(override, message):
    result = run_monitoring(**override)
    assert result.error is not None and message in str(result.error)
    assert not [r for r in result.registrations if r.custom]


@pytest.mark.parametrize("override,message", [
    ({"elasticsearch_replicas": 2}, "elasticsearch_replicas: 2 must be 1"),
    ({"heap": "1024"}, "heap: heap: '1024' must look like 512m or 2g"),
    ({"snapshot_bucket": "b"}, "service_account_annotations: snapshot_bucket needs an IRSA role"),
])
def test_logging_rejects_bad_args(override, message):
    base = {"namespace": "logging", "agent_namespace": "node-agents", "app_namespace": "new-api"}
    result = mockrt.run(lambda: Logging("logging", {**base, **override}))
    assert result.error is not None and message in str(result.error)


def test_plaintext_receiver_credential_is_refused():
    result = mockrt.run_stack("dev", overrides={"alertSlackWebhook": "https://hooks.slack.com/services/x"})
    assert result.error is not None and "pulumi config set --secret new-api:alertSlackWebhook" in str(result.error)
    assert not [r for r in result.registrations if r.custom]


def test_secret_receiver_credential_reaches_the_credentials_secret():
    result = mockrt.run_stack("dev", overrides={"alertSlackWebhook": {"secure": "v1:abc"}})
    assert result.error is None, result.error
    reg = registration(result, "Secret", "alertmanager-credentials")
    assert mockrt.is_secret_envelope(reg.inputs["stringData"])


def test_snapshot_bucket_adds_slm_to_setup():
    base = {"namespace": "logging", "agent_namespace": "node-agents", "app_namespace": "new-api",
            "snapshot_bucket": "new-api-backups",
            "service_account_annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/es"}}
    result = mockrt.run(lambda: Logging("logging", base))
    assert result.error is None, result.error
    data = k8s_object(result, "ConfigMap", "elasticsearch-setup")["data"]
    assert json.loads(data["snapshot-repository.json"])["settings"]["bucket"] == "new-api-backups"
    assert json.loads(data["slm-policy.json"])["repository"] == "backups"
    assert lc.LOG_INDEX_PREFIX in data["slm-policy.json"]
