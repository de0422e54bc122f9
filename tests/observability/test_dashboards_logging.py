"""Grafana dashboards and datasources; the ELK pipeline against New API's real log lines."""

import json
import re

import pytest
import yaml
from conftest import k8s_object, pod_spec, registration

from components import dashboards as dash
from components import logging_config as lc
from components import monitoring_config as mc
from tools import mockrt

# --------------------------------------------------------------------------- dashboards


def dashboard_models(result) -> dict:
    cm = k8s_object(result, "ConfigMap", "grafana-dashboards", "monitoring")
    return {name: json.loads(text) for name, text in cm["data"].items()}


# Which metrics the dashboards may read (a scrape keeps it, or a rule records it), in
# both monitoring modes: test_dashboards_platform.py.


@pytest.mark.parametrize("kind,metric", [("gateway", "envoy_cluster_upstream_rq_xx"),
                                         ("ingress-nginx", "nginx_ingress_controller_requests")])
def test_application_dashboard_has_the_seed_panels_on_the_entrys_metrics(dev, nginx_dev, kind, metric):
    model = dashboard_models((dev if kind == "gateway" else nginx_dev).result)["new-api.json"]
    panels = {p["title"]: p for p in model["panels"]}
    exprs = " ".join(dash.dashboard_exprs(model))
    assert any("request rate" in t for t in panels) and any("success rate" in t for t in panels)
    assert all(f"histogram_quantile({q}" in exprs for q in ("0.5", "0.95", "0.99"))
    error = next(p for t, p in panels.items() if "error rate" in t)
    assert [s["value"] for s in error["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, 1, 5]
    assert any("active connections" in t for t in panels)
    assert "http_requests_total" not in exprs and metric in exprs
    assert {p["type"] for p in model["panels"]} <= {"timeseries", "stat"}
    assert model["time"] == {"from": "now-1h", "to": "now"} and model["refresh"] == "30s"


def test_six_dashboards_with_stable_uids(dev):
    uids = {m["uid"] for m in dashboard_models(dev.result).values()}
    assert uids == {"new-api-app", "new-api-slo", "new-api-postgres", "new-api-redis", "new-api-capacity",
                    "new-api-nodes"}


def test_dashboard_promql_is_valid(dev, promtool, tmp_path):
    """Each panel query as a recording rule ($__rate_interval -> 5m) through promtool."""
    import subprocess
    exprs = [e for m in dashboard_models(dev.result).values() for e in dash.dashboard_exprs(m)]
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:q{i}", "expr": e.replace("$__rate_interval", "5m")} for i, e in enumerate(exprs)]}]}
    (tmp_path / "q.yml").write_text(yaml.safe_dump(rules))
    out = subprocess.run([promtool, "check", "rules", str(tmp_path / "q.yml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_datasources_prometheus_alertmanager_and_logs(dev):
    secret = k8s_object(dev.result, "Secret", "grafana", "monitoring")
    sources = {d["type"]: d for d in yaml.safe_load(secret["stringData"]["datasources.yaml"])["datasources"]}
    assert sources["prometheus"]["isDefault"] and sources["prometheus"]["url"] == "http://prometheus.monitoring.svc:9090"
    assert sources["alertmanager"]["url"].startswith("http://alertmanager.monitoring.svc")
    es = sources["elasticsearch"]
    assert es["jsonData"]["index"] == "new-api-logs-*"
    assert es["basicAuthUser"] == lc.READER_USER
    assert es["secureJsonData"]["basicAuthPassword"] == "$__env{GF_ELASTICSEARCH_PASSWORD}"


def test_grafana_sign_up_off_and_admin_password_generated_secret(dev):
    dep = k8s_object(dev.result, "Deployment", "grafana")
    env = {e["name"]: e for e in pod_spec(dep)["containers"][0]["env"]}
    assert env["GF_USERS_ALLOW_SIGN_UP"]["value"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "grafana"
    assert mockrt.is_secret_envelope(registration(dev.result, "Secret", "grafana").inputs["stringData"])
    assert dev.result.stack_outputs["grafanaAdminPassword"][1] is True


# --------------------------------------------------------------------------- log shipping
# (the pipeline's parsing runs for real in tests/test_logstash_pipeline.py)


def test_multiline_starts_events_only_at_new_api_prefixes():
    from logstash.lines import LINES

    starts = re.compile(lc.MULTILINE_PATTERN)
    assert all(starts.match(line) for line in LINES.values())
    assert not starts.match("goroutine 1 [running]:") and not starts.match("\tmain.go:42")
    assert starts.match("[GIN-debug] GET /api/status")


def logging_config(result, name: str) -> dict:
    return k8s_object(result, "ConfigMap", name, "logging")["data"]


def test_pipeline_parses_plain_text_and_writes_daily_indices(dev):
    conf = logging_config(dev.result, "logstash")["new-api.conf"]
    assert "port => 5044" in conf and 'index => "new-api-logs-%{+YYYY.MM.dd}"' in conf
    assert 'timezone => "UTC"' in conf and "yyyy/MM/dd - HH:mm:ss" in conf
    assert "stdout" not in conf and 'password => "${ES_PASSWORD}"' in conf
    assert "if [message] =~ /^\\{/" in conf  # json only for JSON lines


def test_filebeat_autodiscover_multiline_and_output(dev):
    fb = yaml.safe_load(logging_config_agent(dev.result)["filebeat.yml"])
    provider = fb["filebeat.autodiscover"]["providers"][0]
    assert provider["type"] == "kubernetes"
    app = provider["templates"][0]["config"][0]
    assert app["fields"]["service"] == "new-api"
    multiline = next(p["multiline"] for p in app["parsers"] if "multiline" in p)
    assert (multiline["pattern"], multiline["negate"], multiline["match"]) == (lc.MULTILINE_PATTERN, True, "after")
    assert fb["output.logstash"]["hosts"] == ["logstash.logging.svc:5044"]


def logging_config_agent(result) -> dict:
    return k8s_object(result, "ConfigMap", "filebeat", "node-agents")["data"]


@pytest.mark.parametrize("stack_name,days,replicas", [("dev", 7, 0), ("prod", 180, 1)])
def test_ilm_retention_per_stack(request, stack_name, days, replicas):
    data = logging_config(request.getfixturevalue(stack_name).result, "elasticsearch-setup")
    policy = json.loads(data["ilm-policy.json"])["policy"]["phases"]
    assert policy["delete"]["min_age"] == f"{days}d"
    template = json.loads(data["index-template.json"])
    assert template["index_patterns"] == ["new-api-logs-*"]
    assert template["template"]["settings"]["index.lifecycle.name"] == lc.ILM_POLICY
    assert template["template"]["settings"]["number_of_replicas"] == replicas
    assert "call PUT \"_ilm/policy/$ILM_POLICY\"" in data["setup.sh"]
