"""Seed 000's log alerts (rules 9-11) and Elasticsearch snapshot alerts, wired end to end:
the rendered Logstash pipeline counts what the rules read, the exporter sidecars expose it,
Prometheus scrapes it (plain and operator mode) through NetworkPolicies that admit it.
The alerts themselves fire and stay silent under promtool in test_rules.py
(log_alert_cases.py)."""

import re

import pulumi
import yaml
from conftest import k8s_object, k8s_objects, pod_spec, run_monitoring

from components import logging_alerts as la
from logstash import harness, lscl

LOG_ALERTS = {"HighErrorLogRate", "CriticalErrorSpike", "LogVolumeHigh", "LogPipelineDown"}
SNAPSHOT_ALERTS = {"ElasticsearchSnapshotFailed", "ElasticsearchSnapshotStale"}


def rules(result) -> dict:
    text = k8s_object(result, "ConfigMap", "prometheus-rules", "monitoring")["data"]["new-api.yml"]
    return {r["alert"]: r for g in yaml.safe_load(text)["groups"] for r in g["rules"] if "alert" in r}


def test_seed_log_alerts_keep_the_seed_values(dev):
    """SEED-NOTES §2 rules 9-11 (for, severity, thresholds); the log-based HighErrorRate is
    renamed (SEED-NOTES §4 #19)."""
    r = rules(dev.result)
    assert (r["HighErrorLogRate"]["for"], r["HighErrorLogRate"]["labels"]["severity"]) == ("2m", "warning")
    assert (r["CriticalErrorSpike"]["for"], r["CriticalErrorSpike"]["labels"]["severity"]) == ("1m", "critical")
    assert (r["LogVolumeHigh"]["for"], r["LogVolumeHigh"]["labels"]["severity"]) == ("5m", "warning")
    assert r["HighErrorLogRate"]["expr"].endswith("* 100 > 5")
    assert "[1m]" in r["CriticalErrorSpike"]["expr"] and r["CriticalErrorSpike"]["expr"].endswith("> 10")
    assert r["LogVolumeHigh"]["expr"].endswith("> 1000")
    # the HTTP one stays: on the entry's request metric (components/entry_metrics.py)
    from components import entry_metrics
    assert "HighErrorRate" in r and any(src.requests in r["HighErrorRate"]["expr"]
                                        for src in (entry_metrics.EnvoyGateway, entry_metrics.IngressNginx))


def test_the_pipeline_counts_what_the_rules_read(dev):
    """Every plugin_id the rules select is the ``id`` of a filter in the rendered pipeline
    (Logstash reports plugin metrics by that id); the error counter sits behind a condition
    on exactly the error levels, the line counter on every New API event."""
    pipeline = harness.rendered(dev)
    ids = {p.get("id") for p in pipeline.filters("mutate") if p.get("id")}
    used = {m for r in rules(dev.result).values() for m in re.findall(r'plugin_id="([^"]+)"', r["expr"])}
    assert used == {la.LOG_LINES_ID, la.LOG_ERRORS_ID} and used <= ids

    def branch_of(body, plugin_id, condition=None):
        for node in body:
            if isinstance(node, lscl.Plugin) and node.get("id") == plugin_id:
                return condition
            if isinstance(node, lscl.Branch):
                for cond, inner in node.clauses:
                    found = branch_of(inner, plugin_id, cond)
                    if found:
                        return found
        return None

    body = next(s for s in pipeline.sections if s.kind == "filter").body
    assert branch_of(body, la.LOG_ERRORS_ID) == '[level] == "error" or [level] == "fatal"'
    assert branch_of(body, la.LOG_LINES_ID) == '[service] == "new-api"'


def test_logstash_exporter_sidecar_is_scraped_through_its_network_policy(dev):
    logstash = k8s_object(dev.result, "Deployment", "logstash", "logging")
    exporter = next(c for c in pod_spec(logstash)["containers"] if c["name"] == "exporter")
    assert exporter["image"].startswith("ghcr.io/kuskoman/logstash-exporter:v1.")
    env = {e["name"]: e["value"] for e in exporter["env"]}
    assert env == {"LOGSTASH_URL": "http://127.0.0.1:9600", "PORT": "9198"}
    config = yaml.safe_load(k8s_object(dev.result, "ConfigMap", "prometheus-config")["data"]["prometheus.yml"])
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "logstash-exporter")
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["logging"]}}]
    keep = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert keep[("__meta_kubernetes_pod_container_port_number",)] == "9198"
    assert keep[("__meta_kubernetes_pod_label_app_kubernetes_io_name",)] == \
        logstash["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
    ingress = k8s_object(dev.result, "NetworkPolicy", "logstash", "logging")["spec"]["ingress"]
    assert any(p["port"] == 9198 and rule["from"][0]["namespaceSelector"]["matchLabels"] ==
               {"kubernetes.io/metadata.name": "monitoring"} for rule in ingress for p in rule["ports"])
    egress = k8s_object(dev.result, "NetworkPolicy", "prometheus", "monitoring")["spec"]["egress"]
    assert any(p["port"] == 9198 for rule in egress for p in rule.get("ports", [])
               if any(peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                      == "logging" for peer in rule.get("to", [])))


def test_elasticsearch_exporter_reads_snapshots_with_a_monitor_only_user(dev):
    sts = k8s_object(dev.result, "StatefulSet", "elasticsearch", "logging")
    exporter = next(c for c in pod_spec(sts)["containers"] if c["name"] == "exporter")
    assert "--collector.snapshots" in exporter["args"]
    role = yaml.safe_load(k8s_object(dev.result, "ConfigMap", "elasticsearch-setup", "logging")["data"]
                          ["role-new_api_monitor.json"])
    assert set(role["cluster"]) == {"monitor", "monitor_snapshot"}
    repo = yaml.safe_load(k8s_object(dev.result, "ConfigMap", "elasticsearch-setup", "logging")["data"]
                          ["slm-policy.json"])["repository"]
    assert repo == la.SNAPSHOT_REPOSITORY
    assert all(f'repository="{repo}"' in rules(dev.result)[a]["expr"] for a in SNAPSHOT_ALERTS)


def test_operator_mode_renders_the_same_alerts_and_scrapes_both_exporters():
    result = run_monitoring(mode="operator", operator_prometheus_url="http://prom.monitoring.svc:9090",
                            operator_alertmanager_url="http://am.monitoring.svc:9093",
                            elasticsearch_url="http://elasticsearch.logging.svc:9200",
                            elasticsearch_namespace="logging", elasticsearch_user="new_api_logs_reader",
                            elasticsearch_password=pulumi.Output.secret("pw"))
    assert result.error is None, result.error
    (rule,) = k8s_objects(result, "PrometheusRule")
    names = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert LOG_ALERTS | SNAPSHOT_ALERTS <= names
    monitors = {m["metadata"]["name"]: m["spec"] for m in k8s_objects(result, "PodMonitor")}
    for job, port in (("logstash-exporter", 9198), ("elasticsearch-exporter", 9114)):
        assert monitors[job]["namespaceSelector"] == {"matchNames": ["logging"]}
        assert monitors[job]["podMetricsEndpoints"][0]["portNumber"] == port
