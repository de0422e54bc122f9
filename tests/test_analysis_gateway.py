"""The canary and blue-green analyses on the Gateway API entry, as rendered by the stack,
on series labelled exactly as Envoy (run by Envoy Gateway) emits them, evaluated with
promtool and Argo Rollouts' decision rules (tests/analysis_harness.py).

How the series are named (envoyproxy/gateway v1.9, docs/gateway-canary-metrics.md):
- Envoy's cluster statistics in Prometheus form carry the cluster as
  ``envoy_cluster_name`` and the status class as ``envoy_response_code_class``
  (``envoy_cluster_upstream_rq_xx``); ``envoy_cluster_upstream_rq_time`` is a histogram in
  milliseconds with Envoy's default buckets (0.5 ms ... 3600000 ms).
- Envoy Gateway names a rule's cluster ``httproute/<ns>/<route>/rule/<n>``
  (``internal/gatewayapi/helpers.go`` ``irRouteDestinationName``) and, when any backendRef
  of the rule carries a filter, gives each backendRef its own cluster
  ``.../rule/<n>/backend/<i>`` (``irDestinationSettingName``; ``internal/ir/xds.go``
  ``HasFiltersInSettings``; ``internal/xds/translator/translator.go``). Without a filter the
  weighted backendRefs share one cluster and the canary cannot be told apart (#6742, #7017).
- Our scrape job adds ``job``, ``kubernetes_namespace``, ``kubernetes_pod`` and ``node``;
  each Envoy replica reports its own counters.
- The relay's time to first byte (issue 14) is not an Envoy statistic: Logstash counts the
  proxies' access-log lines per version with no-op filters of fixed ids
  (docs/relay-ttfb-gateway.md), exported by kuskoman/logstash-exporter as
  ``logstash_stats_pipeline_plugin_events_out{pipeline, plugin_type, plugin, plugin_id}``,
  one counter per Logstash replica (tests/observability/log_alert_cases.py labels them).
"""

import pytest

import analysis_harness as harness
from observability.log_alert_cases import plugin
from support import Stack, override
from tools import mockrt
from validators import require

#: Envoy's default histogram buckets (ms), source/common/stats/histogram_impl.h.
ENVOY_BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
                    600000, 1800000, 3600000)
RULES = {"relay": 0, "playground": 1, "rest": 2}
PODS = ("envoy-new-api-5c7d9-abcde", "envoy-new-api-5c7d9-fghij")


def _labels(rule: str, backend: int, pod: str) -> str:
    return (f'envoy_cluster_name="httproute/new-api/new-api/rule/{RULES[rule]}/backend/{backend}",'
            f'job="envoy-gateway",kubernetes_namespace="envoy-gateway-system",kubernetes_pod="{pod}",'
            f'node="node-1",instance="10.0.3.7:19001"')


def requests(rps: float, error_ratio: float, backend: int, rule: str = "rest") -> list:
    """Counters of one version (backendRef), split over the two Envoy replicas, 30 s scrapes."""
    out = []
    for pod in PODS:
        ok, bad = rps * 15 * (1 - error_ratio), rps * 15 * error_ratio
        out.append({"series": f'envoy_cluster_upstream_rq_xx{{{_labels(rule, backend, pod)},envoy_response_code_class="2"}}',
                    "values": f"0+{ok:g}x40"})
        if bad:
            out.append({"series": f'envoy_cluster_upstream_rq_xx{{{_labels(rule, backend, pod)},'
                                  f'envoy_response_code_class="5"}}', "values": f"0+{bad:g}x40"})
    return out


def durations(rps: float, seconds: float, backend: int, rule: str = "rest") -> list:
    per_scrape = rps * 15
    out = []
    for pod in PODS:
        for le in (*ENVOY_BUCKETS_MS, "+Inf"):
            below = le == "+Inf" or seconds * 1000 <= le
            out.append({"series": f'envoy_cluster_upstream_rq_time_bucket{{{_labels(rule, backend, pod)},le="{le}"}}',
                        "values": f"0+{per_scrape if below else 0:g}x40"})
    return out


LOGSTASH_PODS = ("logstash-7d9f-abcde", "logstash-7d9f-fghij")


def first_bytes(rps: float, seconds: float, version: str) -> list:
    """Logstash's counts of one version's relay access lines (30 s scrapes, two replicas):
    all of them, and those whose first byte came within 10 s."""
    per_scrape = rps * 30 / len(LOGSTASH_PODS)
    return [plugin(f"new_api_relay_ttfb_{version}_le_{le}", f"0+{n:g}x40", pod)
            for pod in LOGSTASH_PODS
            for le, n in (("inf", per_scrape), ("10", per_scrape if seconds <= 10 else 0))]


def traffic(canary_errors: float, canary_seconds: float, stable_errors: float = 0.0, weight: float = 0.2,
            total_rps: float = 50, canary_first_byte: float = 1.0) -> list:
    """Stable (backendRef 0) and canary (backendRef 1) at a weight; relay streams for 30 s,
    their first byte after 1 s (the canary's: ``canary_first_byte``). Without canary weight
    its counters exist and stay at 0 (Logstash reports every filter of the pipeline)."""
    series = (requests(total_rps * (1 - weight), stable_errors, 0) + durations(total_rps * (1 - weight), 0.05, 0)
              + durations(5, 30, 0, rule="relay") + first_bytes(5, 1.0, "stable"))
    if weight:
        series += (requests(total_rps * weight, canary_errors, 1) + durations(total_rps * weight, canary_seconds, 1)
                   + durations(1, 30, 1, rule="relay") + first_bytes(1, canary_first_byte, "canary"))
    else:
        series += first_bytes(0, 1.0, "canary")
    return series


def _stack(strategy: str) -> Stack:
    return Stack(mockrt.run_stack("prod", override("prod", ("app.delivery.strategy", strategy),
                                                   ("database.maxConnections", 300))))


@pytest.fixture(scope="module")
def canary_stack() -> Stack:
    return _stack("canary")


@pytest.fixture(scope="module")
def bluegreen_stack() -> Stack:
    return _stack("blue-green")


def _metrics(stack: Stack, key: str, sub: str) -> list:
    analysis = stack.k8s("Rollout", "new-api")["spec"]["strategy"][key][sub]
    templates = {t["metadata"]["name"]: t["spec"] for t in stack.k8s_all("AnalysisTemplate")}
    args = {a["name"]: a["value"] for a in analysis.get("args", [])}
    return harness.prometheus_metrics(templates, [t["templateName"] for t in analysis["templates"]], args)


def test_every_backend_ref_is_its_own_envoy_cluster(canary_stack):
    """The isolation the analyses rely on: every backendRef of every rule carries a filter,
    so Envoy Gateway builds a cluster per backendRef (HasFiltersInSettings), stable at index
    0 and canary at index 1, in the rule order the metric source assumes."""
    rules = canary_stack.k8s("HTTPRoute", "new-api")["spec"]["rules"]
    assert [(r["name"], r["matches"][0]["path"]["value"]) for r in rules] == [
        ("relay", "/v1"), ("playground", "/pg"), ("rest", "/")]
    assert [r["name"] for r in rules] == sorted(RULES, key=RULES.get)
    for rule in rules:
        assert [b["name"] for b in rule["backendRefs"]] == ["new-api", "new-api-canary"]
        assert all(b.get("filters") for b in rule["backendRefs"]), rule["name"]


@pytest.mark.parametrize("case,kwargs,expected", harness.CANARY_CASES,
                         ids=[c[0] for c in harness.CANARY_CASES])
def test_canary_analysis_measures_the_canarys_own_traffic(tmp_path, canary_stack, case, kwargs, expected):
    phases = harness.decide(require("promtool"), tmp_path, _metrics(canary_stack, "canary", "analysis"), traffic(**kwargs))
    harness.assert_phases(phases, expected, case)


@pytest.mark.parametrize("case,series,expected", [
    ("bad active version", traffic(0.0, 0.05, stable_errors=0.10, weight=0), {"success-rate": "Failed"}),
    ("slow active version", traffic(0.0, 0.05, weight=0)[:0] + requests(40, 0, 0) + durations(40, 2.0, 0),
     {"latency-p95": "Failed"}),
    ("healthy active version", traffic(0.0, 0.05, stable_errors=0.001, weight=0),
     {"success-rate": "Successful", "latency-p95": "Successful", "relay-ttfb": "Successful"}),
    ("no traffic", [], {"success-rate": "Inconclusive", "latency-p95": "Inconclusive",
                        "relay-ttfb": "Inconclusive"}),
])
def test_blue_green_post_promotion_analysis_measures_the_active_version(tmp_path, bluegreen_stack, case, series,
                                                                         expected):
    phases = harness.decide(require("promtool"), tmp_path,
                            _metrics(bluegreen_stack, "blueGreen", "postPromotionAnalysis"),
                            series or [{"series": 'up{job="envoy-gateway"}', "values": "1x40"}])
    harness.assert_phases(phases, expected, case)
