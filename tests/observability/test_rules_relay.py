"""The relay's time-to-first-byte SLO (issue 14): its burn-rate alerts fire and stay silent
as they should, run by ``promtool test rules`` on the rules text the stack deploys, on
series labelled exactly as each entry's source emits them:

- ingress-nginx: ``nginx_ingress_controller_header_duration_seconds`` (socket.go
  ``headerTime``, observed from ``upstream_header_time`` in monitor.lua; default buckets
  0.005 ... 10 s);
- the Gateway API entry (default): Envoy's cluster statistics have no time-to-headers
  histogram (``upstream_rq_time`` is charged in the router's ``onUpstreamComplete``, at the
  end of the response), so Logstash counts the proxies' access-log lines with no-op filters
  of fixed ids (docs/relay-ttfb-gateway.md), exported by kuskoman/logstash-exporter as
  ``logstash_stats_pipeline_plugin_events_out{pipeline, plugin_type, plugin, plugin_id}``
  (``collectors/nodestats/pipeline_subcollector.go``), one counter set per Logstash replica,
  reset when a replica restarts."""

import subprocess
from pathlib import Path

import yaml
from conftest import k8s_object
from log_alert_cases import plugin
from promtool_cases import fire_and_silent, firing


LABELS = ('controller_class="k8s.io/ingress-nginx",controller_namespace="ingress-nginx",'
          'controller_pod="ingress-nginx-controller-7d9f-abcde",namespace="new-api",ingress="new-api",'
          'service="new-api",method="POST",status="200"')
BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10")
REPO = Path(__file__).resolve().parents[2]
RELAY_ALERTS = ("NewApiRelayLatencyBudgetBurnFast", "NewApiRelayLatencyBudgetBurnSlow")


def rules_text(stack) -> str:
    return k8s_object(stack.result, "ConfigMap", "prometheus-rules", "monitoring")["data"]["new-api.yml"]


def headers(per_minute: float, slow_share: float, path: str = "/v1") -> list:
    """Header-time histogram of relay requests: a share take 30 s to their headers, the rest 1 s."""
    fast, total = per_minute * (1 - slow_share), per_minute
    out = []
    for le in (*BUCKETS, "+Inf"):
        n = total if le == "+Inf" else (fast if float(le) >= 1 else 0)
        out.append({"series": f'nginx_ingress_controller_header_duration_seconds_bucket{{{LABELS},path="{path}",'
                              f'le="{le}"}}', "values": f"0+{n:g}x800"})
    return out



CASES = {
    # 20 % of relay calls wait 30 s for headers: burn 20 over 1h and 5m; silent: 0.5 %
    "NewApiRelayLatencyBudgetBurnFast": ("1m", "70m", headers(600, 0.20), headers(600, 0.005)),
    # 8 % slow for 7 h: burn 8 > 6 over 6h and 30m, below the fast alert's 14.4; silent: 3 %
    "NewApiRelayLatencyBudgetBurnSlow": ("2m", "440m", headers(600, 0.08), headers(600, 0.03)),
}


def _promtool(promtool: str, tmp_path, rules: str, tests: list) -> None:
    (tmp_path / "rules.yml").write_text(rules)
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False))
    out = subprocess.run([promtool, "test", "rules", str(tmp_path / "tests.yml")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]


def test_relay_alerts_fire_and_stay_silent(nginx_dev, promtool, tmp_path):
    tests = fire_and_silent(CASES)
    # streamed completions whose whole duration is minutes but whose headers come in 1 s: no alert
    tests.append({"name": "long streams are not slow relay answers", "interval": "1m",
                  "input_series": headers(600, 0.0), "promql_expr_test": [firing(a, "70m", False) for a in CASES]})
    # too little relay traffic: quiet
    tests.append({"name": "no alert without relay traffic", "interval": "1m", "input_series": headers(3, 0.5),
                  "promql_expr_test": [firing(a, "70m", False) for a in CASES]})
    _promtool(promtool, tmp_path, rules_text(nginx_dev), tests)


# --------------------------------------------------------------------------- Gateway API entry

PODS = ("logstash-7d9f-abcde", "logstash-7d9f-fghij")
ENVOY = ('envoy_cluster_name="httproute/new-api/new-api/rule/0/backend/0",job="envoy-gateway",'
         'kubernetes_namespace="envoy-gateway-system",kubernetes_pod="envoy-new-api-5c7d9-abcde",node="n1",'
         'instance="10.0.3.7:19001"')


def counted(per_minute: float, slow_share: float, version: str = "stable", restart_at: int = 0,
            minutes: int = 800) -> list:
    """Logstash's counts of relay access lines, split over two replicas: every line passes
    ``..._le_inf``, those whose first byte came within 10 s ``..._le_10`` (slow ones wait
    30 s). ``restart_at``: the first replica restarts then (its counters start at 0 again)."""
    out = []
    for pod in PODS:
        for plugin_id, n in ((f"new_api_relay_ttfb_{version}_le_inf", per_minute / 2),
                             (f"new_api_relay_ttfb_{version}_le_10", per_minute / 2 * (1 - slow_share))):
            if restart_at and pod == PODS[0]:
                values = f"0+{n:g}x{restart_at} 0+{n:g}x{minutes - restart_at}"
            else:
                values = f"0+{n:g}x{minutes}"
            out.append(plugin(plugin_id, values, pod))
    return out


def whole_streams(per_minute: float, seconds: float) -> list:
    """Envoy's ``upstream_rq_time`` of the same relay calls (ms buckets): whole streams."""
    return [{"series": f'envoy_cluster_upstream_rq_time_bucket{{{ENVOY},le="{le}"}}',
             "values": f"0+{per_minute if le == '+Inf' or seconds * 1000 <= float(le) else 0:g}x800"}
            for le in ("1000", "10000", "60000", "300000", "+Inf")]


GATEWAY_CASES = {
    # 20 % of relay calls (canary and stable alike) wait 30 s for their first byte; silent: 0.5 %
    "NewApiRelayLatencyBudgetBurnFast": ("1m", "70m", counted(480, 0.20) + counted(120, 0.20, "canary"),
                                         counted(480, 0.005) + counted(120, 0.005, "canary")),
    # 8 % slow for 7 h: burn 8 > 6 over 6h and 30m; silent: 3 %
    "NewApiRelayLatencyBudgetBurnSlow": ("2m", "440m", counted(600, 0.08), counted(600, 0.03)),
}


def test_relay_alerts_fire_and_stay_silent_on_the_gateway_entry(dev, promtool, tmp_path):
    """The default entry: the same SLO read from Logstash's access-log counters."""
    tests = fire_and_silent(GATEWAY_CASES)
    # streams of 5 minutes whose first byte comes within 10 s: Envoy's upstream_rq_time is all
    # slow, the relay SLI is not
    tests.append({"name": "slow whole streams with fast first bytes", "interval": "1m",
                  "input_series": counted(600, 0.0) + whole_streams(600, 300),
                  "promql_expr_test": [firing(a, "70m", False) for a in GATEWAY_CASES]})
    # a Logstash replica restarting resets its counters: rate() takes it as a reset, not as
    # a burst of slow requests
    tests.append({"name": "a Logstash restart is no slow burst", "interval": "1m",
                  "input_series": counted(600, 0.005, restart_at=40),
                  "promql_expr_test": [firing(a, "70m", False) for a in GATEWAY_CASES]})
    tests.append({"name": "no alert without relay traffic", "interval": "1m", "input_series": counted(3, 0.5),
                  "promql_expr_test": [firing(a, "70m", False) for a in GATEWAY_CASES]})
    _promtool(promtool, tmp_path, rules_text(dev), tests)


def test_relay_alerts_link_runbooks_and_exist_on_both_entries(nginx_dev, dev):
    for stack in (nginx_dev, dev):
        rules = {r["alert"]: r for g in yaml.safe_load(rules_text(stack))["groups"] for r in g["rules"]
                 if "alert" in r}
        for alert in RELAY_ALERTS:
            assert rules[alert]["annotations"]["runbook_url"].endswith(f"{alert}.md")
            assert (REPO / "docs" / "runbooks" / f"{alert}.md").is_file()
