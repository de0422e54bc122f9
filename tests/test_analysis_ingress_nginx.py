"""The canary and blue-green analyses, as rendered by the stack, on series labelled exactly
as ingress-nginx labels them, evaluated with promtool and Argo Rollouts' decision rules
(tests/analysis_harness.py).

How ingress-nginx labels a request (kubernetes/ingress-nginx, controller v1.15.1):
- ``rootfs/etc/nginx/lua/monitor.lua`` ``metrics()``: ``namespace``, ``ingress``,
  ``service`` and ``path`` come from the nginx variables of the *location*, which belongs
  to the stable Ingress (Argo's canary Ingress is merged into it as an alternative
  backend); ``canary`` is ``ngx.var.proxy_alternative_upstream_name``, set only when
  ``balancer.lua`` ``get_balancer()`` picks the alternative backend, and ``""`` otherwise
  (``nginx.tmpl``). Prometheus drops a label whose value is empty, so stable traffic
  carries no ``canary`` label at all.
- The alternative upstream's name is ``upstreamName()`` of
  ``internal/ingress/controller/util.go``: ``<namespace>-<service>-<port number>`` (the
  port *name* only when the backend names its port). Argo Rollouts builds the canary
  Ingress by copying the stable one and replacing only the service name
  (``rollout/trafficrouting/nginx/nginx.go`` ``buildCanaryIngress``), so the port stays
  the stable Ingress's number: ``new-api-new-api-canary-80``.
- ``internal/ingress/metric/collectors/socket.go``: label set ``status, method, path,
  namespace, ingress, service, canary`` plus ``controller_namespace``,
  ``controller_class``, ``controller_pod``; our scrape job adds ``kubernetes_pod``/``node``.
"""

import pytest

import analysis_harness as harness
from support import Stack, override
from tools import mockrt
from validators import require

CANARY_UPSTREAM = "new-api-new-api-canary-80"
_CONST = ('controller_class="k8s.io/ingress-nginx",controller_namespace="ingress-nginx",'
          'controller_pod="ingress-nginx-controller-7d9f-abcde",job="ingress-nginx",'
          'kubernetes_pod="ingress-nginx-controller-7d9f-abcde",node="node-1"')


def _labels(path: str, status: str, canary: bool) -> str:
    out = (f'{_CONST},namespace="new-api",ingress="new-api",service="new-api",path="{path}",'
           f'method="POST",status="{status}"')
    return out + (f',canary="{CANARY_UPSTREAM}"' if canary else "")


def requests(rps: float, error_ratio: float, canary: bool, path: str = "/") -> list:
    """Counter series of one version at ``rps`` requests/s (30 s scrapes), a share of them 5xx."""
    ok, bad = rps * 30 * (1 - error_ratio), rps * 30 * error_ratio
    out = [{"series": f"nginx_ingress_controller_requests{{{_labels(path, '200', canary)}}}",
            "values": f"0+{ok:g}x40"}]
    if bad:
        out.append({"series": f"nginx_ingress_controller_requests{{{_labels(path, '500', canary)}}}",
                    "values": f"0+{bad:g}x40"})
    return out


def durations(rps: float, seconds: float, canary: bool, path: str = "/",
              metric: str = "request_duration_seconds") -> list:
    """Histogram series (ingress-nginx's default buckets): every request of the version
    takes ``seconds`` (``header_duration_seconds``: until the upstream's response headers)."""
    per_scrape = rps * 30
    out = []
    for le in ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"):
        below = le == "+Inf" or seconds <= float(le)
        out.append({"series": f"nginx_ingress_controller_{metric}_bucket"
                              f"{{{_labels(path, '200', canary)},le=\"{le}\"}}",
                    "values": f"0+{per_scrape if below else 0:g}x40"})
    return out


def traffic(canary_errors: float, canary_seconds: float, stable_errors: float = 0.0,
            weight: float = 0.2, total_rps: float = 50, canary_first_byte: float = 1.0) -> list:
    """Stable and canary traffic at a canary weight; relay calls (/v1) stream for 30 s on
    both, their response headers (first byte) after 1 s (the canary's: ``canary_first_byte``)."""
    series = (requests(total_rps * (1 - weight), stable_errors, canary=False)
              + durations(total_rps * (1 - weight), 0.05, canary=False)
              + durations(5, 30, canary=False, path="/v1")
              + durations(5, 1.0, canary=False, path="/v1", metric="header_duration_seconds"))
    if weight:
        series += (requests(total_rps * weight, canary_errors, canary=True)
                   + durations(total_rps * weight, canary_seconds, canary=True)
                   + durations(1, 30, canary=True, path="/v1")
                   + durations(1, canary_first_byte, canary=True, path="/v1", metric="header_duration_seconds"))
    return series


def _stack(strategy: str) -> Stack:
    stack = "prod"
    changes = [("app.delivery.strategy", strategy), ("database.maxConnections", 300),
               ("entry.kind", "ingress-nginx")]
    return Stack(mockrt.run_stack(stack, override(stack, *changes)))


@pytest.fixture(scope="module")
def canary_stack() -> Stack:
    return _stack("canary")


@pytest.fixture(scope="module")
def bluegreen_stack() -> Stack:
    return _stack("blue-green")


def _templates(stack: Stack) -> dict:
    return {t["metadata"]["name"]: t["spec"] for t in stack.k8s_all("AnalysisTemplate")}


def _canary_metrics(stack: Stack) -> list:
    analysis = stack.k8s("Rollout", "new-api")["spec"]["strategy"]["canary"]["analysis"]
    args = {a["name"]: a["value"] for a in analysis.get("args", [])}
    return harness.prometheus_metrics(_templates(stack), [t["templateName"] for t in analysis["templates"]], args)


def _post_promotion_metrics(stack: Stack) -> list:
    analysis = stack.k8s("Rollout", "new-api")["spec"]["strategy"]["blueGreen"]["postPromotionAnalysis"]
    args = {a["name"]: a["value"] for a in analysis.get("args", [])}
    return harness.prometheus_metrics(_templates(stack), [t["templateName"] for t in analysis["templates"]], args)


@pytest.mark.parametrize("case,kwargs,expected", harness.CANARY_CASES,
                         ids=[c[0] for c in harness.CANARY_CASES])
def test_canary_analysis_measures_the_canarys_own_traffic(tmp_path, canary_stack, case, kwargs, expected):
    phases = harness.decide(require("promtool"), tmp_path, _canary_metrics(canary_stack), traffic(**kwargs))
    harness.assert_phases(phases, expected, case)


@pytest.mark.parametrize("case,series,expected", [
    ("bad active version", traffic(0.0, 0.05, stable_errors=0.10, weight=0), {"success-rate": "Failed"}),
    ("healthy active version", traffic(0.0, 0.05, stable_errors=0.001, weight=0),
     {"success-rate": "Successful", "latency-p95": "Successful"}),
    ("no traffic", [], {"success-rate": "Inconclusive", "latency-p95": "Inconclusive"}),
])
def test_blue_green_post_promotion_analysis_measures_the_active_version(tmp_path, bluegreen_stack, case, series,
                                                                         expected):
    phases = harness.decide(require("promtool"), tmp_path, _post_promotion_metrics(bluegreen_stack),
                            series or [{"series": 'up{job="ingress-nginx"}', "values": "1x40"}])
    harness.assert_phases(phases, expected, case)
