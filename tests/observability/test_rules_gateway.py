"""The RED alerts (error ratio, p95 on the non-streaming paths, burn rates, SLO levels) and
the rps recording rule on the Gateway API entry: the rules text the dev stack deploys
(entry.kind gateway, its default), run by ``promtool test rules`` on series labelled as
Envoy emits them through Envoy Gateway (see tests/test_analysis_gateway.py for the
naming, with sources). Same scenarios and thresholds as the ingress-nginx cases in
test_rules.py, so both entries mean the same thing."""

import subprocess

import yaml
from conftest import k8s_object
from promtool_cases import fire_and_silent

from components import entry as entry_component

ENVOY_BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
                    600000, 1800000, 3600000)
RULE = {"/v1": 0, "/pg": 1, "/": 2}


def rules_text(stack) -> str:
    return k8s_object(stack.result, "ConfigMap", "prometheus-rules", "monitoring")["data"]["new-api.yml"]


def _labels(path: str = "/", backend: int = 0) -> str:
    return (f'envoy_cluster_name="httproute/new-api/new-api/rule/{RULE[path]}/backend/{backend}",'
            'job="envoy-gateway",kubernetes_namespace="envoy-gateway-system",'
            'kubernetes_pod="envoy-new-api-5c7d9-abcde",node="node-1"')


def req(status_class: str, values: str, path: str = "/") -> dict:
    return {"series": f'envoy_cluster_upstream_rq_xx{{{_labels(path)},envoy_response_code_class="{status_class}"}}',
            "values": values}


def buckets(per_ms: dict, total: str, path: str = "/") -> list:
    """Cumulative buckets: ``per_ms`` maps an Envoy bucket bound (ms) to the series of the
    requests at or below it; bounds not given take the next given one's value."""
    out, given = [], sorted(per_ms)
    for le in ENVOY_BUCKETS_MS:
        nxt = next((b for b in given if b >= le), None)
        value = per_ms[le] if le in per_ms else ("0x20" if nxt is not None else total)
        out.append({"series": f'envoy_cluster_upstream_rq_time_bucket{{{_labels(path)},le="{le:g}"}}',
                    "values": value})
    out.append({"series": f'envoy_cluster_upstream_rq_time_bucket{{{_labels(path)},le="+Inf"}}', "values": total})
    return out


CASES = {
    "HighErrorRate": ("1m", "10m", [req("2", "0+900x20"), req("5", "0+100x20")],
                      [req("2", "0+990x20"), req("5", "0+10x20")]),
    # silent: 30 s completions on the relay (/v1, rule 0) next to fast API calls
    "HighResponseTime": ("1m", "10m", buckets({2500: "0+100x20"}, "0+100x20"),
                         buckets({500: "0+100x20"}, "0+100x20") + buckets({30000: "0+500x20"}, "0+500x20", path="/v1")),
    "NewApiErrorBudgetBurnFast": ("1m", "70m", [req("2", "0+570x90"), req("5", "0+30x90")],
                                  [req("2", "0+999x90"), req("5", "0+1x90")]),
    "NewApiErrorBudgetBurnMedium": ("2m", "400m", [req("2", "0+1140x220"), req("5", "0+60x220")],
                                    [req("2", "0+1998x220"), req("5", "0+2x220")]),
    "NewApiErrorBudgetBurnSlow": ("2m", "1560m", [req("2", "0+1176x800"), req("5", "0+24x800")],
                                  [req("2", "0+3998x800"), req("5", "0+2x800")]),
    # p95 125 ms: 94 % within 100 ms, 6 % within 250 ms (Envoy has no 125 ms bucket); silent: all <= 50 ms
    "NewApiSLOLevel1Observe": ("1m", "10m",
                               [req("2", "0+600x20"), *buckets({100: "0+94x20", 250: "0+100x20"}, "0+100x20")],
                               [req("2", "0+600x20"), *buckets({50: "0+100x20"}, "0+100x20")]),
    "NewApiSLOLevel2EarlyWarning": ("1m", "12m", [req("2", "0+995x20"), req("5", "0+5x20")],
                                    [req("2", "0+1000x20")]),
    # p95 about 242 ms (all in (100, 250]); silent: p95 125 ms
    "NewApiSLOLevel3LatencyAlert": ("1m", "10m",
                                    [req("2", "0+600x20"), *buckets({100: "0x20", 250: "0+100x20"}, "0+100x20")],
                                    [req("2", "0+600x20"), *buckets({100: "0+94x20", 250: "0+100x20"}, "0+100x20")]),
    "NewApiSLOLevel4CircuitBreak": ("1m", "10m", [req("2", "0+950x20"), req("5", "0+50x20")],
                                    [req("2", "0+995x20"), req("5", "0+5x20")]),
}



def test_red_alerts_fire_and_stay_silent_on_envoys_series(dev, promtool, tmp_path):
    tests = fire_and_silent(CASES)
    # the adapter's series: Envoy's request rate of the app's route, named for the HTTPRoute
    tests.append({"name": "rps per HTTPRoute", "interval": "1m",
                  "input_series": [req("2", "0+540x20"), req("5", "0+60x20"), req("2", "0+600x20", path="/v1")],
                  "promql_expr_test": [{"expr": entry_component.ROUTE_RPS_RECORD, "eval_time": "10m", "exp_samples": [
                      {"labels": f'{entry_component.ROUTE_RPS_RECORD}{{httproute="new-api",namespace="new-api"}}',
                       "value": 20}]}]})
    (tmp_path / "rules.yml").write_text(rules_text(dev))
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False))
    out = subprocess.run([promtool, "test", "rules", str(tmp_path / "tests.yml")], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]


def test_the_adapter_serves_rps_of_the_httproute():
    """Prometheus Adapter maps the recorded series' ``namespace``/``httproute`` labels to
    the HTTPRoute the HPA's Object metric describes (kubernetes-sigs/prometheus-adapter
    docs/config.md, "Association"); it may read HTTPRoutes."""
    from support import Stack, override
    from tools import mockrt

    stack = Stack(mockrt.run_stack("dev", override("dev", ("monitoring.autoscale.enabled", True))))
    hpa = stack.k8s("HorizontalPodAutoscaler", "new-api")["spec"]["metrics"]
    obj = next(m["object"] for m in hpa if m["type"] == "Object")
    assert obj["describedObject"] == {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                                      "name": "new-api"}
    assert obj["metric"]["name"] == entry_component.RPS_METRIC
    route = stack.k8s("HTTPRoute", obj["describedObject"]["name"])
    assert route["metadata"]["namespace"] == "new-api"
    adapter = yaml.safe_load(stack.k8s("ConfigMap", "prometheus-adapter")["data"]["config.yaml"])
    rule = adapter["rules"][0]
    assert rule["seriesQuery"].startswith(entry_component.ROUTE_RPS_RECORD)
    assert rule["resources"]["overrides"]["httproute"] == {"group": "gateway.networking.k8s.io",
                                                           "resource": "httproute"}
    assert rule["name"]["as"] == obj["metric"]["name"]
    roles = [r for r in stack.k8s_all("ClusterRole") if "adapter" in r["metadata"]["name"]]
    assert any("httproutes" in rule["resources"] for r in roles for rule in r["rules"])
