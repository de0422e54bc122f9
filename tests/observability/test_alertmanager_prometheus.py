"""Alertmanager and Prometheus configs, checked with amtool and promtool on the exact
texts the components put into their Secret and ConfigMap."""

import subprocess

import pytest
import yaml
from conftest import k8s_object, k8s_objects, pod_spec, registration, unwrap

from components import monitoring_config as mc
from tools import mockrt


def am_text(result) -> str:
    return k8s_object(result, "Secret", "alertmanager-config", "monitoring")["stringData"]["alertmanager.yml"]


def amtool_routes(amtool, path, *labels) -> str:
    out = subprocess.run([amtool, "config", "routes", "test", f"--config.file={path}", *labels],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip()


def test_alertmanager_config_passes_amtool(full_monitoring, amtool, tmp_path):
    path = tmp_path / "alertmanager.yml"
    path.write_text(am_text(full_monitoring))
    out = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 receivers" in out.stdout


def test_stack_alertmanager_config_passes_amtool(stack, amtool, tmp_path):
    path = tmp_path / "alertmanager.yml"
    path.write_text(am_text(stack.result))
    out = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("labels,receiver", [
    (["severity=critical", "service=new-api"], "critical-alerts"),
    (["severity=warning", "service=postgres"], "warning-alerts"),
    (["severity=info", "service=new-api"], "default"),
    (["alertname=Unknown"], "default"),
])
def test_alerts_route_by_severity(full_monitoring, amtool, tmp_path, labels, receiver):
    path = tmp_path / "alertmanager.yml"
    path.write_text(am_text(full_monitoring))
    assert amtool_routes(amtool, path, *labels) == receiver


def test_routing_follows_the_seed_and_inhibits_on_service(full_monitoring):
    cfg = yaml.safe_load(am_text(full_monitoring))
    route = cfg["route"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("10s", "5m", "1h")
    assert route["group_by"] == ["alertname", "cluster", "namespace", "service"]
    inhibit = cfg["inhibit_rules"][0]
    assert inhibit["source_matchers"] == ['severity="critical"']
    assert "alertname" not in inhibit["equal"] and "service" in inhibit["equal"]


def test_receiver_credentials_are_files_from_a_secret_never_plaintext(full_monitoring):
    text = am_text(full_monitoring)
    cfg = yaml.safe_load(text)
    critical = next(r for r in cfg["receivers"] if r["name"] == "critical-alerts")
    assert critical["email_configs"][0]["auth_password_file"].startswith(mc.ALERTMANAGER_SECRETS_DIR)
    assert critical["slack_configs"][0]["api_url_file"].startswith(mc.ALERTMANAGER_SECRETS_DIR)
    assert critical["slack_configs"][0]["channel"] == "#alerts"
    assert "smtp-password-value" not in text and "hooks.slack.com" not in text
    # The config (it holds the webhook URL, which amtool 0.25 cannot read from a file) is a
    # Secret whose data is a Pulumi secret; no ConfigMap carries it.
    reg = registration(full_monitoring, "Secret", "alertmanager-config")
    assert mockrt.is_secret_envelope(reg.inputs["stringData"])
    creds = registration(full_monitoring, "Secret", "alertmanager-credentials")
    assert mockrt.is_secret_envelope(creds.inputs["stringData"])
    assert not any("alertmanager.yml" in cm.get("data", {}) for cm in k8s_objects(full_monitoring, "ConfigMap"))


def test_alertmanager_mounts_config_and_credentials_secrets(full_monitoring):
    sts = k8s_object(full_monitoring, "StatefulSet", "alertmanager")
    volumes = {v["name"]: v for v in pod_spec(sts)["volumes"]}
    assert volumes["config"]["secret"]["secretName"] == "alertmanager-config"
    assert volumes["credentials"]["secret"]["secretName"] == "alertmanager-credentials"
    assert sts["spec"]["replicas"] == 2
    assert k8s_object(full_monitoring, "PodDisruptionBudget", "alertmanager")


# --------------------------------------------------------------------------- prometheus


def prom_text(result) -> str:
    return k8s_object(result, "ConfigMap", "prometheus-config", "monitoring")["data"]["prometheus.yml"]


def test_prometheus_config_passes_promtool_with_kubernetes_sd_set_aside(stack, promtool, tmp_path):
    """Debian's promtool has no Kubernetes discovery (VERIFIED.md): each kubernetes_sd block
    becomes a static placeholder; everything else, relabelling included, is checked."""
    cfg = mc.without_kubernetes_sd(yaml.safe_load(prom_text(stack.result)))
    rules = k8s_object(stack.result, "ConfigMap", "prometheus-rules", "monitoring")["data"]["new-api.yml"]
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "new-api.yml").write_text(rules)
    cfg["rule_files"] = [str(tmp_path / "rules" / "*.yml")]
    # The kubelet jobs read the pod's ServiceAccount token and CA, which promtool stats:
    # stand-ins here, same keys.
    for job in cfg["scrape_configs"]:
        for section, key in (("authorization", "credentials_file"), ("tls_config", "ca_file")):
            if key in job.get(section, {}):
                stand_in = tmp_path / f"{job['job_name']}-{key}"
                stand_in.write_text("stand-in\n")
                job[section][key] = str(stand_in)
    (tmp_path / "prometheus.yml").write_text(mc.dump(cfg))
    out = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 rule files found" in out.stdout


def test_kubernetes_sd_blocks_are_pod_role_scoped_to_namespaces_rbac_covers(dev):
    cfg = yaml.safe_load(prom_text(dev.result))
    bindings = {(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in k8s_objects(dev.result, "RoleBinding")}
    role = next(r for r in k8s_objects(dev.result, "ClusterRole") if r["metadata"]["name"].endswith("discovery"))
    assert all(set(rule["verbs"]) == {"get", "list", "watch"} for rule in role["rules"])
    assert any("pods" in rule["resources"] for rule in role["rules"])
    sd_jobs = [j for j in cfg["scrape_configs"] if "kubernetes_sd_configs" in j
               and j["kubernetes_sd_configs"][0]["role"] == "pod"]
    node_jobs = {j["job_name"] for j in cfg["scrape_configs"] if "kubernetes_sd_configs" in j} - {
        j["job_name"] for j in sd_jobs}
    assert node_jobs == {"kubelet", "cadvisor"}  # role node: test_kubelet_scraping.py
    assert {j["job_name"] for j in sd_jobs} == {"envoy-gateway", "postgres-exporter", "redis-exporter",
                                                "node-exporter", "kube-state-metrics", "elasticsearch-exporter",
                                                "logstash-exporter", "grafana", "blackbox-exporter",
                                                "cert-manager"}
    for job in sd_jobs:
        for sd in job["kubernetes_sd_configs"]:
            assert sd["role"] == "pod" and set(sd) == {"role", "namespaces"}
            for ns in sd["namespaces"]["names"]:
                assert (ns, role["metadata"]["name"]) in bindings, (job["job_name"], ns)
        keep = job["relabel_configs"][0]
        assert keep["action"] == "keep" and keep["source_labels"] == ["__meta_kubernetes_pod_container_port_number"]
        for rc in job["relabel_configs"]:
            for label in rc.get("source_labels", []):
                assert label.startswith("__meta_kubernetes_pod_") or label == "__meta_kubernetes_namespace"


def test_the_app_is_probed_not_scraped(dev, nginx_dev):
    jobs = {j["job_name"]: j for j in yaml.safe_load(prom_text(dev.result))["scrape_configs"]}
    app = jobs["new-api"]
    assert app["metrics_path"] == "/probe" and app["params"]["module"] == [mc.BLACKBOX_MODULE]
    assert app["static_configs"][0]["targets"] == ["http://new-api.new-api.svc:80/api/status"]
    assert (app["scrape_interval"], app["scrape_timeout"]) == ("10s", "5s")
    assert not any(j.get("metrics_path") == "/metrics" and "new-api" in str(j.get("static_configs"))
                   for j in jobs.values())
    # its RED metrics come from the entry's proxies: Envoy's stats (envoyproxy/gateway
    # bootstrap.go EnvoyStatsPort 19001, bootstrap.yaml.tpl /stats/prometheus), or ingress-nginx's
    envoy = jobs["envoy-gateway"]
    assert envoy["relabel_configs"][0]["regex"] == "19001" and envoy["metrics_path"] == "/stats/prometheus"
    assert envoy["kubernetes_sd_configs"][0]["namespaces"]["names"] == ["envoy-gateway-system"]
    nginx = {j["job_name"]: j for j in yaml.safe_load(prom_text(nginx_dev.result))["scrape_configs"]}
    assert nginx["ingress-nginx"]["relabel_configs"][0]["regex"] == "10254" and "envoy-gateway" not in nginx


@pytest.mark.parametrize("stack_name,retention", [("dev", "2d"), ("prod", "200h")])
def test_retention_per_stack(request, stack_name, retention):
    result = request.getfixturevalue(stack_name).result
    args = pod_spec(k8s_object(result, "StatefulSet", "prometheus"))["containers"][0]["args"]
    assert f"--storage.tsdb.retention.time={retention}" in args
    assert not any(a.startswith("--web.enable-lifecycle") for a in args)


def test_prometheus_sends_alerts_to_every_alertmanager_replica(prod):
    cfg = yaml.safe_load(prom_text(prod.result))
    targets = cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == [f"alertmanager-{i}.alertmanager-headless.monitoring.svc:9093" for i in range(2)]
    assert cfg["global"]["external_labels"]["cluster"] == "new-api-prod"


def test_prometheus_volume_is_protected_in_prod(prod, dev):
    reg = registration(prod.result, "StatefulSet", "prometheus")
    assert reg.protect and reg.retain_on_delete
    assert not registration(dev.result, "StatefulSet", "prometheus").protect
    sts = unwrap(reg.inputs)
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "20Gi"
