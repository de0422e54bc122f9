"""The relay's time-to-first-byte SLO (issue 14) on the ingress-nginx entry: its burn-rate
alerts fire and stay silent as they should on series labelled as ingress-nginx labels
them (``nginx_ingress_controller_header_duration_seconds``: socket.go ``headerTime``,
observed from ``upstream_header_time`` in monitor.lua; default buckets 0.005 ... 10 s),
run by ``promtool test rules`` on the rules text the stack deploys. On the Gateway API
entry the alerts are not rendered: Envoy's cluster statistics have no time-to-headers
histogram (``upstream_rq_time`` is charged in the router's ``onUpstreamComplete``, at the
end of the response)."""

import subprocess
from pathlib import Path

import yaml
from conftest import k8s_object
from promtool_cases import fire_and_silent, firing

from components import monitoring_config as mc

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


def test_relay_alerts_fire_and_stay_silent(nginx_dev, promtool, tmp_path):
    tests = fire_and_silent(CASES)
    # streamed completions whose whole duration is minutes but whose headers come in 1 s: no alert
    tests.append({"name": "long streams are not slow relay answers", "interval": "1m",
                  "input_series": headers(600, 0.0), "promql_expr_test": [firing(a, "70m", False) for a in CASES]})
    # too little relay traffic: quiet
    tests.append({"name": "no alert without relay traffic", "interval": "1m", "input_series": headers(3, 0.5),
                  "promql_expr_test": [firing(a, "70m", False) for a in CASES]})
    (tmp_path / "rules.yml").write_text(rules_text(nginx_dev))
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False))
    out = subprocess.run([promtool, "test", "rules", str(tmp_path / "tests.yml")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]


def test_relay_alerts_link_runbooks_and_exist_only_where_measured(nginx_dev, dev):
    nginx = {r["alert"]: r for g in yaml.safe_load(rules_text(nginx_dev))["groups"] for r in g["rules"]
             if "alert" in r}
    for alert in RELAY_ALERTS:
        assert nginx[alert]["annotations"]["runbook_url"].endswith(f"{alert}.md")
        assert (REPO / "docs" / "runbooks" / f"{alert}.md").is_file()
    gateway = mc.alert_names(yaml.safe_load(rules_text(dev)))
    assert not set(RELAY_ALERTS) & set(gateway)
