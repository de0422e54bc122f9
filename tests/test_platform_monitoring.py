"""The platform watches itself: Elasticsearch through an exporter sidecar with a monitor-only user,
scraped by Prometheus across the namespace boundary, and cluster-health alerts."""

import json

from components import logging_config as lc
from support import container


def test_exporter_sidecar_reads_cluster_health_as_a_monitor_only_user(dev):
    sts = dev.k8s("StatefulSet", "elasticsearch")
    exporter = container(sts, "exporter")
    env = {e["name"]: e for e in exporter["env"]}
    assert env["ES_USERNAME"]["value"] == lc.MONITOR_USER
    assert env["ES_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "monitor-password"
    assert {"name": "metrics", "containerPort": 9114, "protocol": "TCP"} in exporter["ports"]
    role = json.loads(dev.k8s("ConfigMap", "elasticsearch-setup")["data"][f"role-{lc.MONITOR_ROLE}.json"])
    assert role["cluster"] == ["monitor", "monitor_snapshot"]  # health, stats, snapshot list: read-only
    assert all(p == ["monitor"] for p in (i["privileges"] for i in role["indices"]))  # no document reads


def test_prometheus_scrapes_it_and_the_network_allows_exactly_that(dev):
    es_ingress = dev.k8s("NetworkPolicy", "elasticsearch")["spec"]["ingress"]
    scrape = [r for r in es_ingress if r["ports"] == [{"protocol": "TCP", "port": 9114}]]
    assert scrape == [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                       "ports": [{"protocol": "TCP", "port": 9114}]}]
    prom_egress = dev.k8s("NetworkPolicy", "prometheus")["spec"]["egress"]
    assert any({"protocol": "TCP", "port": 9114} in r["ports"] for r in prom_egress)
    bindings = {b["metadata"]["namespace"] for b in dev.k8s_all("RoleBinding")}
    assert "logging" in bindings


def test_the_alerts_exist_with_routing_labels(dev):
    import yaml

    rules = yaml.safe_load(dev.k8s("ConfigMap", "prometheus-rules")["data"]["new-api.yml"])
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert alerts["ElasticsearchClusterRed"]["labels"] == {"severity": "critical", "service": "elasticsearch"}
    assert alerts["ElasticsearchClusterYellow"]["for"] == "30m"


def test_alertmanager_rolls_when_its_config_or_a_receiver_credential_changes():
    """Alertmanager does not reload changed files on its own: the RandomId behind its pod
    template's rotation trigger is keyed by the config and every credential (a changed
    keeper replaces it: new bytes, the pods roll; tests/observability/test_rollout_triggers.py)."""
    from support import Stack, override
    from tools import mockrt

    def keepers(*changes):
        stack = Stack(mockrt.run_stack("prod", override("prod", *changes)))
        reg = next(r for r in stack.registrations if r.name.endswith("alertmanager-rotation"))
        return set(mockrt._strip_secrets(reg.inputs["keepers"]))

    base = keepers()
    assert base == {"alertmanager.yml", "smtp-password"}
    assert keepers(("monitoring.alertmanagerReplicas", 2)) == base
    assert keepers(("alertSlackWebhook", {"secure": "v1:abc"})) == base | {"slack-webhook-url"}
