"""Progressive delivery with Argo Rollouts (seed 000 §13.4.4, seed 003 ch. 4.1): the
Rollout strategy and the AnalysisTemplates, as pure functions of the settings.

Fixes of the seeds' versions (SEED-NOTES §5.5 #25-29):
- analyses can fail: ``failureLimit`` below ``count`` (the seed's ``count: 3,
  failureLimit: 3`` could never fail), an ``inconclusiveLimit`` (no traffic pauses the
  rollout for a human instead of passing), a ``consecutiveErrorLimit``;
- queries read the entry's metrics (:mod:`components.entry_metrics`), selecting the new
  version's own traffic as the entry's proxy labels it (a canary's, never the stable
  Service's), and address Prometheus by its in-cluster FQDN;
- blue-green pre-promotion checks the preview pods directly (``GET /api/status``): the
  preview Service gets no user traffic, so request metrics would say nothing.
"""

from typing import Optional

from .entry import CANARY_HEADER_ROUTE, GATEWAY_API_PLUGIN
from .entry_metrics import RELAY_FIRST_BYTE_LE, RedSource

STRATEGIES = ("rolling", "blue-green", "canary")

DEFAULT_DELIVERY = {
    "canary_steps": [20, 40, 60, 80],
    "pause_seconds": 600,
    "canary_header": "X-Canary",
    "analysis_starting_step": 2,
    "scale_down_delay_seconds": 30,
    "success_rate": 0.95,
    "latency_p95_seconds": 0.5,
    "analysis_interval": "1m",
    "analysis_count": 5,
    "analysis_failure_limit": 1,
    "analysis_inconclusive_limit": 2,
    "rollouts_namespace": "argo-rollouts",
    "relay_headers_le": RELAY_FIRST_BYTE_LE,
    "relay_fast_ratio": 0.99,
}
"""Seed 000: steps 20/40/60/80 % with 10-minute pauses, ``X-Canary`` header, analysis from
step 2, success rate >= 0.95, p95 <= 0.5 s; blue-green scale-down delay 30 s. Analysis
every minute, 5 measurements, fails on the second bad one."""

#: Prometheus is not asked about a window shorter than two scrapes of the entry's proxy.
QUERY_WINDOW = "2m"


def template_names(name: str, relay: bool = False) -> dict:
    """Template names; ``relay``: the entry measures the relay's time to first byte."""
    names = {"success_rate": f"{name}-success-rate", "latency": f"{name}-latency", "status": f"{name}-status-check"}
    if relay:
        names["relay_latency"] = f"{name}-relay-latency"
    return names


def _measured(names: dict) -> list:
    """The templates that measure traffic (every one but the blue-green status check)."""
    return [{"templateName": names[k]} for k in ("success_rate", "latency", "relay_latency") if k in names]


def measured_version(strategy: str) -> Optional[str]:
    """Whose traffic the analyses measure: the canary's own during a canary (never the
    stable Service's, which would dilute a bad canary by the healthy majority); after a
    blue-green promotion every request goes to the new active version, so all of it."""
    return "canary" if strategy == "canary" else None


def success_rate_query(source: RedSource, version: Optional[str]) -> str:
    """Share of non-5xx responses of one version, as the entry's proxy saw them."""
    return source.success_ratio(version, QUERY_WINDOW)


def latency_p95_query(source: RedSource, version: Optional[str]) -> str:
    """p95 request duration (seconds) of one version without the relay and playground
    paths (their duration is the model's generation time, streamed)."""
    return source.quantile(0.95, version, QUERY_WINDOW)


def _metric(name: str, d: dict, success: str, failure: str, provider: dict) -> dict:
    return {
        "name": name,
        "interval": d["analysis_interval"],
        "count": d["analysis_count"],
        "failureLimit": d["analysis_failure_limit"],
        "inconclusiveLimit": d["analysis_inconclusive_limit"],
        "consecutiveErrorLimit": 3,
        # An empty result or NaN (no traffic) is neither: inconclusive, the rollout pauses.
        "successCondition": f"len(result) > 0 && {success}",
        "failureCondition": f"len(result) > 0 && {failure}",
        "provider": provider,
    }


def analysis_templates(name: str, prometheus_url: str, d: dict, source: RedSource, strategy: str) -> dict:
    """AnalysisTemplate specs by template name. The Prometheus templates take no args:
    their queries select the measured version (:func:`measured_version`) as ``source``
    labels it; the status check takes ``service`` and ``namespace``."""
    relay = source.measures_relay
    names = template_names(name, relay)
    version = measured_version(strategy)
    rate, p95 = d["success_rate"], d["latency_p95_seconds"]
    extra = {}
    if relay:
        # The relay's own gate (issue 14): the share of the version's relay requests whose
        # response headers (a stream's first byte) came within relay_headers_le seconds.
        fast = d["relay_fast_ratio"]
        extra[names["relay_latency"]] = {"metrics": [_metric(
            "relay-ttfb", d, f"result[0] >= {fast}", f"result[0] < {fast}",
            {"prometheus": {"address": prometheus_url,
                            "query": source.relay_fast_ratio(d["relay_headers_le"], version, QUERY_WINDOW)}})]}
    return {**extra,
        names["success_rate"]: {"metrics": [_metric(
            "success-rate", d, f"result[0] >= {rate}", f"result[0] < {rate}",
            {"prometheus": {"address": prometheus_url, "query": success_rate_query(source, version)}})]},
        names["latency"]: {"metrics": [_metric(
            "latency-p95", d, f"result[0] <= {p95}", f"result[0] > {p95}",
            {"prometheus": {"address": prometheus_url, "query": latency_p95_query(source, version)}})]},
        names["status"]: {"args": [{"name": "service"}, {"name": "namespace"}], "metrics": [{
            "name": "status",
            "interval": "10s",
            "count": 3,
            "failureLimit": 0,
            "successCondition": "result == true",
            "provider": {"web": {"url": "http://{{args.service}}.{{args.namespace}}.svc/api/status",
                                 "jsonPath": "{$.success}", "timeoutSeconds": 5}},
        }]},
    }


def _args(service: str, namespace: str) -> list:
    return [{"name": "service", "value": service}, {"name": "namespace", "value": namespace}]


def traffic_routing(entry_kind: str, d: dict, *, namespace, stable_route: str) -> dict:
    """``canary.trafficRouting`` for the entry: ingress-nginx's canary Ingress (Argo copies
    the stable Ingress with ``canary-by-header``), or Argo Rollouts' Gateway API plugin
    (``argoproj-labs/gatewayAPI``), which sets the weights of the stable and canary
    backendRefs of the app's HTTPRoute and adds a header-match rule for the
    ``setHeaderRoute`` step (argoproj-labs/rollouts-plugin-trafficrouter-gatewayapi
    ``pkg/plugin/httproute.go``)."""
    if entry_kind == "ingress-nginx":
        # header routing sends X-Canary: always to the canary (seed 000)
        return {"nginx": {"stableIngress": stable_route,
                          "additionalIngressAnnotations": {"canary-by-header": d["canary_header"]}}}
    return {"plugins": {GATEWAY_API_PLUGIN: {"namespace": namespace,
                                             "httpRoutes": [{"name": stable_route, "useHeaderRoutes": True}]}},
            "managedRoutes": [{"name": CANARY_HEADER_ROUTE}]}


def _header_steps(entry_kind: str, d: dict) -> list:
    """Steps that route ``<canary_header>: always`` to the canary from the start (with
    ingress-nginx the canary Ingress's annotation does it without a step)."""
    if entry_kind == "ingress-nginx":
        return []
    return [{"setHeaderRoute": {"name": CANARY_HEADER_ROUTE, "match": [
        {"headerName": d["canary_header"], "headerValue": {"exact": "always"}}]}}]


def rollout_strategy(strategy: str, d: dict, *, name: str, namespace, stable_service: str,
                     second_service: str, stable_route: str, entry_kind: str = "ingress-nginx",
                     relay: bool = False) -> dict:
    """``Rollout.spec.strategy``: canary with the entry's traffic router through the stable
    route object (Ingress or HTTPRoute), or blue-green with manual promotion; ``relay``:
    the analyses include the relay's time-to-first-byte gate."""
    names = template_names(name, relay)
    if strategy == "canary":
        header = _header_steps(entry_kind, d)
        steps: list = list(header)
        for weight in d["canary_steps"]:
            steps += [{"setWeight": weight}, {"pause": {"duration": f"{d['pause_seconds']}s"}}]
        return {"canary": {
            "stableService": stable_service,
            "canaryService": second_service,
            "maxUnavailable": 0,
            "maxSurge": "25%",
            "trafficRouting": traffic_routing(entry_kind, d, namespace=namespace, stable_route=stable_route),
            "analysis": {
                "templates": _measured(names),
                # counted in weight steps: a leading header step shifts the index
                "startingStep": d["analysis_starting_step"] + len(header),
            },
            "steps": steps,
        }}
    if strategy == "blue-green":
        return {"blueGreen": {
            "activeService": stable_service,
            "previewService": second_service,
            "autoPromotionEnabled": False,
            "scaleDownDelaySeconds": d["scale_down_delay_seconds"],
            "prePromotionAnalysis": {"templates": [{"templateName": names["status"]}],
                                     "args": _args(second_service, namespace)},
            "postPromotionAnalysis": {"templates": _measured(names)},
        }}
    raise ValueError(f"strategy: {strategy!r} has no Rollout; use one of {STRATEGIES[1:]}")


def second_service_name(name: str, strategy: str) -> Optional[str]:
    """The canary or preview Service of a strategy (None for rolling)."""
    return {"canary": f"{name}-canary", "blue-green": f"{name}-preview"}.get(strategy)


def validate(d: dict) -> None:
    """Raise ValueError naming the key for settings Argo would accept but that cannot work."""
    steps = d["canary_steps"]
    if not steps or any(not 0 < w < 100 for w in steps) or steps != sorted(set(steps)):
        raise ValueError(f"delivery.canary_steps: {steps} must be increasing weights between 1 and 99")
    if not 0 <= d["analysis_starting_step"] < 2 * len(steps):
        raise ValueError(f"delivery.analysis_starting_step: {d['analysis_starting_step']} is outside the "
                         f"{2 * len(steps)} steps")
    if not 0 <= d["analysis_failure_limit"] < d["analysis_count"]:
        raise ValueError(f"delivery.analysis_failure_limit: {d['analysis_failure_limit']} must be below "
                         f"analysis_count {d['analysis_count']}, or the analysis can never fail")
    if not 0 < d["success_rate"] <= 1:
        raise ValueError(f"delivery.success_rate: {d['success_rate']} must be in (0, 1]")
    if d["latency_p95_seconds"] <= 0 or d["pause_seconds"] < 0:
        raise ValueError("delivery.latency_p95_seconds must be positive and pause_seconds not negative")
