"""The kubelet and its cAdvisor are scraped, and everything that needs allows it: the
rendered prometheus.yml has node-role jobs on :10250 with the ServiceAccount token, the
ClusterRole grants ``nodes/metrics`` (the kubelet authorizes ``/metrics`` and
``/metrics/cadvisor`` as the ``nodes/metrics`` subresource: Kubernetes docs, "Kubelet
authentication/authorization"), Prometheus's NetworkPolicy lets it reach the nodes on
10250, and only the series the alerts and dashboards read are kept."""

import yaml
from conftest import k8s_object, k8s_objects, pod_spec

from components import platform_alerts as pa


def prom(stack) -> dict:
    return yaml.safe_load(k8s_object(stack.result, "ConfigMap", "prometheus-config", "monitoring")["data"]
                          ["prometheus.yml"])


def test_kubelet_and_cadvisor_jobs_scrape_every_node_with_the_token(stack):
    jobs = {j["job_name"]: j for j in prom(stack)["scrape_configs"]}
    for name, path in (("kubelet", "/metrics"), ("cadvisor", "/metrics/cadvisor")):
        job = jobs[name]
        assert job["kubernetes_sd_configs"] == [{"role": "node"}] and job["scheme"] == "https"
        assert job["metrics_path"] == path
        assert job["authorization"]["credentials_file"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
        kept = job["metric_relabel_configs"][0]
        assert kept["action"] == "keep"
    assert set(jobs["cadvisor"]["metric_relabel_configs"][0]["regex"].split("|")) >= {
        "container_cpu_cfs_throttled_periods_total", "container_memory_working_set_bytes"}
    assert "kubelet_volume_stats_available_bytes" in jobs["kubelet"]["metric_relabel_configs"][0]["regex"]
    sts = k8s_object(stack.result, "StatefulSet", "prometheus")
    assert pod_spec(sts)["automountServiceAccountToken"] is True


def test_prometheus_may_read_node_metrics(stack):
    roles = [r for r in k8s_objects(stack.result, "ClusterRole") if r["metadata"]["name"].endswith("prometheus-kubelet")]
    assert len(roles) == 1
    rules = {(tuple(r["resources"]), tuple(r["verbs"])) for r in roles[0]["rules"]}
    assert (("nodes/metrics",), ("get",)) in rules
    assert all("secrets" not in r["resources"] for r in roles[0]["rules"])
    binding = next(b for b in k8s_objects(stack.result, "ClusterRoleBinding")
                   if b["roleRef"]["name"] == roles[0]["metadata"]["name"])
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}]


def test_prometheus_egress_reaches_the_kubelet(stack):
    egress = k8s_object(stack.result, "NetworkPolicy", "prometheus")["spec"]["egress"]
    kubelet = [r for r in egress if {"protocol": "TCP", "port": pa.KUBELET_PORT} in r["ports"]]
    assert kubelet and all("ipBlock" in peer for r in kubelet for peer in r["to"])
