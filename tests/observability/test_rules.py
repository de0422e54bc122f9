"""Alert and recording rules: the text in the Prometheus rules ConfigMap passes
``promtool check rules``, and every alert fires on series that should trip it and stays
silent on series that should not (``promtool test rules``)."""

import subprocess

import pytest
import yaml
from conftest import k8s_object
from promtool_cases import fire_and_silent, firing

from components import monitoring_config as mc
from log_alert_cases import CASES as LOG_ALERT_CASES

SEL = 'namespace="new-api",service="new-api",ingress="new-api"'
ROUTED_SEVERITIES = {"critical", "warning", "info"}


def rules_text(result) -> str:
    return k8s_object(result.result, "ConfigMap", "prometheus-rules", "monitoring")["data"]["new-api.yml"]


def req(status: str, values: str) -> dict:
    return {"series": f'nginx_ingress_controller_requests{{{SEL},status="{status}",method="POST"}}',
            "values": values}


def buckets(counts: dict, total_values: str, path: str = "/") -> list:
    out = [{"series": f'nginx_ingress_controller_request_duration_seconds_bucket{{{SEL},path="{path}",le="{le}"}}',
            "values": v} for le, v in counts.items()]
    out.append({"series": f'nginx_ingress_controller_request_duration_seconds_bucket{{{SEL},path="{path}",le="+Inf"}}',
                "values": total_values})
    return out


# alert -> (interval, eval_time, firing series, silent series)
CASES = {
    "ApplicationDown": ("1m", "5m",
                        [{"series": 'probe_success{job="new-api",instance="http://new-api.new-api.svc:80/api/status"}',
                          "values": "0x10"}],
                        [{"series": 'probe_success{job="new-api",instance="http://new-api.new-api.svc:80/api/status"}',
                          "values": "1x10"}]),
    "NewApiMasterDown": ("1m", "10m",
                         [{"series": 'probe_success{job="new-api-master",instance="http://new-api-master.new-api.svc:3000/api/status"}',
                           "values": "0x15"}],
                         [{"series": 'probe_success{job="new-api-master",instance="http://new-api-master.new-api.svc:3000/api/status"}',
                           "values": "1x15"}]),
    # three exporters (one per node) report the same cluster health
    "ElasticsearchClusterRed": ("1m", "10m",
                                [{"series": f'elasticsearch_cluster_health_status{{cluster="logs",color="red",kubernetes_pod="es-{i}"}}',
                                  "values": "1x15"} for i in range(3)],
                                [{"series": 'elasticsearch_cluster_health_status{cluster="logs",color="red",kubernetes_pod="es-0"}',
                                  "values": "0x15"},
                                 {"series": 'elasticsearch_cluster_health_status{cluster="logs",color="green",kubernetes_pod="es-0"}',
                                  "values": "1x15"}]),
    # silent: a yellow blip shorter than 30 minutes (a node restart)
    "ElasticsearchClusterYellow": ("1m", "45m",
                                   [{"series": 'elasticsearch_cluster_health_status{cluster="logs",color="yellow"}',
                                     "values": "1x50"}],
                                   [{"series": 'elasticsearch_cluster_health_status{cluster="logs",color="yellow"}',
                                     "values": "0x20 1x10 0x20"}]),
    "HighErrorRate": ("1m", "10m", [req("200", "0+900x20"), req("502", "0+100x20")],
                      [req("200", "0+990x20"), req("500", "0+10x20")]),
    # silent: slow completions on the relay path /v1 (generation time, streamed) next to fast API calls
    "HighResponseTime": ("1m", "10m", buckets({"0.5": "0x20", "1": "0x20", "2.5": "0+100x20"}, "0+100x20"),
                         buckets({"0.5": "0+100x20", "1": "0+100x20", "2.5": "0+100x20"}, "0+100x20")
                         + buckets({"0.5": "0x20", "1": "0x20", "2.5": "0x20"}, "0+500x20", path="/v1")),
    "HighCPUUsage": ("1m", "12m",
                     [{"series": 'node_cpu_seconds_total{mode="idle",cpu="0",instance="n1"}', "values": "0+6x20"}],
                     [{"series": 'node_cpu_seconds_total{mode="idle",cpu="0",instance="n1"}', "values": "0+54x20"}]),
    "HighMemoryUsage": ("1m", "7m",
                        [{"series": 'node_memory_MemAvailable_bytes{instance="n1"}', "values": "10x10"},
                         {"series": 'node_memory_MemTotal_bytes{instance="n1"}', "values": "100x10"}],
                        [{"series": 'node_memory_MemAvailable_bytes{instance="n1"}', "values": "50x10"},
                         {"series": 'node_memory_MemTotal_bytes{instance="n1"}', "values": "100x10"}]),
    # silent: a full tmpfs is not a full disk (seed notes §5.6 #41)
    "HighDiskUsage": ("1m", "7m",
                      [{"series": 'node_filesystem_avail_bytes{instance="n1",fstype="ext4",mountpoint="/"}',
                        "values": "5x10"},
                       {"series": 'node_filesystem_size_bytes{instance="n1",fstype="ext4",mountpoint="/"}',
                        "values": "100x10"}],
                      [{"series": 'node_filesystem_avail_bytes{instance="n1",fstype="tmpfs",mountpoint="/run"}',
                        "values": "5x10"},
                       {"series": 'node_filesystem_size_bytes{instance="n1",fstype="tmpfs",mountpoint="/run"}',
                        "values": "100x10"}]),
    # 50 active + 40 idle of 100 = 90 %; silent: 50 + 20 = 70 % (no single series is over 80)
    "DatabaseConnectionHigh": ("1m", "5m",
                               [{"series": 'pg_stat_activity_count{instance="pg",datname="newapi",state="active"}',
                                 "values": "50x10"},
                                {"series": 'pg_stat_activity_count{instance="pg",datname="newapi",state="idle"}',
                                 "values": "40x10"},
                                {"series": 'pg_settings_max_connections{instance="pg"}', "values": "100x10"}],
                               [{"series": 'pg_stat_activity_count{instance="pg",datname="newapi",state="active"}',
                                 "values": "50x10"},
                                {"series": 'pg_stat_activity_count{instance="pg",datname="newapi",state="idle"}',
                                 "values": "20x10"},
                                {"series": 'pg_settings_max_connections{instance="pg"}', "values": "100x10"}]),
    # silent: maxmemory 0 gave +Inf and a permanent alert in the seed (§5.6 #43)
    "RedisMemoryHigh": ("1m", "5m",
                        [{"series": 'redis_memory_used_bytes{instance="r"}', "values": "95x10"},
                         {"series": 'redis_memory_max_bytes{instance="r"}', "values": "100x10"}],
                        [{"series": 'redis_memory_used_bytes{instance="r"}', "values": "95x10"},
                         {"series": 'redis_memory_max_bytes{instance="r"}', "values": "0x10"}]),
    "ScrapeTargetDown": ("1m", "8m", [{"series": 'up{job="postgres-exporter",instance="a"}', "values": "0x10"}],
                         [{"series": 'up{job="postgres-exporter",instance="a"}', "values": "1x10"}]),
    # 5 % errors burn 50x the 0.1 % budget; silent: 0.1 % burns at 1x
    "NewApiErrorBudgetBurnFast": ("1m", "70m", [req("200", "0+570x90"), req("500", "0+30x90")],
                                  [req("200", "0+999x90"), req("500", "0+1x90")]),
    "NewApiErrorBudgetBurnMedium": ("2m", "400m", [req("200", "0+1140x220"), req("500", "0+60x220")],
                                    [req("200", "0+1998x220"), req("500", "0+2x220")]),
    # 2 % errors for a day (burn 20 > 3 over 1d and 2h); silent: 0.05 % (burn 0.5)
    "NewApiErrorBudgetBurnSlow": ("2m", "1560m", [req("200", "0+1176x800"), req("500", "0+24x800")],
                                  [req("200", "0+3998x800"), req("500", "0+2x800")]),
    "NewApiSLOLevel1Observe": ("1m", "10m",
                               [req("200", "0+600x20"),
                                *buckets({"0.1": "0x20", "0.125": "0+100x20"}, "0+100x20")],
                               [req("200", "0+600x20"),
                                *buckets({"0.05": "0+100x20", "0.1": "0+100x20"}, "0+100x20")]),
    # success 99.5 %; silent: no 5xx series at all (success 100 %, `or vector(0)`)
    "NewApiSLOLevel2EarlyWarning": ("1m", "12m", [req("200", "0+995x20"), req("500", "0+5x20")],
                                    [req("200", "0+1000x20")]),
    "NewApiSLOLevel3LatencyAlert": ("1m", "10m",
                                    [req("200", "0+600x20"), *buckets({"0.1": "0x20", "0.25": "0+100x20"},
                                                                      "0+100x20")],
                                    [req("200", "0+600x20"), *buckets({"0.1": "0x20", "0.125": "0+100x20"},
                                                                      "0+100x20")]),
    "NewApiSLOLevel4CircuitBreak": ("1m", "10m", [req("200", "0+950x20"), req("500", "0+50x20")],
                                    [req("200", "0+995x20"), req("500", "0+5x20")]),
}

CASES.update(LOG_ALERT_CASES)  # with the logging stack (tests/observability/log_alert_cases.py)

QUIET_TRAFFIC = ("1m", "10m", [req("200", "0+0.6x20"), req("500", "0+0.4x20")])
"""40 % errors at 0.01 req/s: too little traffic for the SLO ratio alerts."""



def unit_tests() -> dict:
    tests = fire_and_silent(CASES)
    interval, at, series = QUIET_TRAFFIC
    tests.append({"name": "SLO alerts need traffic", "interval": interval, "input_series": series,
                  "promql_expr_test": [firing(a, at, False) for a in CASES if a.startswith("NewApiSLO")]})
    return {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}


def test_rules_pass_promtool_check(dev, promtool, tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text(rules_text(dev))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_firing_and_a_silent_case(dev):
    assert set(CASES) <= set(mc.alert_names(yaml.safe_load(rules_text(dev))))  # the rest: test_platform_rules.py


def test_every_alert_fires_and_stays_silent_as_it_should(nginx_dev, promtool, tmp_path):
    """On the legacy ingress-nginx entry (its series above); the Gateway API entry's RED
    alerts on Envoy's series: test_rules_gateway.py."""
    (tmp_path / "rules.yml").write_text(rules_text(nginx_dev))
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(unit_tests(), sort_keys=False))
    out = subprocess.run([promtool, "test", "rules", str(tmp_path / "tests.yml")], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]


def test_every_alert_carries_severity_and_service_that_alertmanager_routes(stack):
    groups = yaml.safe_load(rules_text(stack))["groups"]
    assert [r for g in groups for r in g["rules"] if "alert" in r], "no alerting rule rendered"
    for group in groups:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in ROUTED_SEVERITIES, rule["alert"]
                assert rule["labels"]["service"], rule["alert"]


def test_seed_alerts_keep_their_names_for_and_severities(dev):
    rules = {r["alert"]: r for g in yaml.safe_load(rules_text(dev))["groups"] for r in g["rules"] if "alert" in r}
    seed = {"ApplicationDown": ("1m", "critical"), "HighErrorRate": ("2m", "warning"),
            "HighResponseTime": ("2m", "warning"), "HighCPUUsage": ("5m", "warning"),
            "HighMemoryUsage": ("5m", "warning"), "HighDiskUsage": ("5m", "critical"),
            "DatabaseConnectionHigh": ("2m", "warning"), "RedisMemoryHigh": ("2m", "warning")}
    for name, (for_, severity) in seed.items():
        assert (rules[name]["for"], rules[name]["labels"]["severity"]) == (for_, severity), name


def test_no_rule_reads_a_metric_new_api_does_not_have(dev):
    groups = yaml.safe_load(rules_text(dev))
    known = set().union(*mc.EXPORTER_METRICS.values()) | mc.SYNTHETIC_METRICS | mc.recorded_metrics(groups)
    used = {m for g in groups["groups"] for r in g["rules"] for m in mc.metric_names(r["expr"])}
    assert used <= known, used - known
    assert not {"http_requests_total", "http_request_duration_seconds_bucket"} & used


@pytest.mark.parametrize("expr,names", [
    ('sum by (le) (rate(a_bucket{x="1"}[5m])) / on (instance) b', {"a_bucket", "b"}),
    ('histogram_quantile(0.95, sum(rate(x[$__rate_interval])) by (le))', {"x"}),
    ('probe_success{job="new-api"} == 0 or absent(probe_success{job="new-api"})', {"probe_success"}),
])
def test_metric_name_extraction(expr, names):
    assert mc.metric_names(expr) == names


def test_the_master_is_probed_on_its_own():
    """Its failure stops migrations and background jobs but no public request: only a probe
    of its own Service notices (NewApiMasterDown)."""
    jobs = {j["job_name"]: j for j in mc.scrape_jobs(mc.Targets())}
    target = jobs["new-api-master"]["static_configs"][0]["targets"]
    assert target == ["http://new-api-master.new-api.svc:3000/api/status"]
    assert jobs["new-api-master"]["static_configs"][0]["labels"]["service"] == "new-api-master"
