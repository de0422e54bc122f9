"""Progressive delivery with Argo Rollouts (seed 000 §13.4.4, seed 003 ch. 4.1): the
Rollout strategy and the AnalysisTemplates, as pure functions of the settings.

Fixes of the seeds' versions (SEED-NOTES §5.5 #25-29):
- analyses can fail: ``failureLimit`` below ``count`` (the seed's ``count: 3,
  failureLimit: 3`` could never fail), an ``inconclusiveLimit`` (no traffic pauses the
  rollout for a human instead of passing), a ``consecutiveErrorLimit``;
- queries read ingress-nginx metrics, which carry the ``service`` label the seed's app
  metrics never had, and address Prometheus by its in-cluster FQDN;
- blue-green pre-promotion checks the preview pods directly (``GET /api/status``): the
  preview Service gets no user traffic, so request metrics would say nothing.
"""

from typing import Optional

from . import monitoring_config as mc

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
}
"""Seed 000: steps 20/40/60/80 % with 10-minute pauses, ``X-Canary`` header, analysis from
step 2, success rate >= 0.95, p95 <= 0.5 s; blue-green scale-down delay 30 s. Analysis
every minute, 5 measurements, fails on the second bad one."""

#: Prometheus is not asked about a window shorter than two scrapes of ingress-nginx.
QUERY_WINDOW = "2m"


def template_names(name: str) -> dict:
    return {"success_rate": f"{name}-success-rate", "latency": f"{name}-latency", "status": f"{name}-status-check"}


def _selector() -> str:
    return 'namespace="{{args.namespace}}",service="{{args.service}}"'


def success_rate_query() -> str:
    """Share of non-5xx responses of one backend Service, through the ingress."""
    sel = _selector()
    return (f'sum(rate({mc.INGRESS_REQUESTS}{{{sel},status!~"5.."}}[{QUERY_WINDOW}])) / '
            f"sum(rate({mc.INGRESS_REQUESTS}{{{sel}}}[{QUERY_WINDOW}]))")


def latency_p95_query() -> str:
    """p95 request duration of one backend Service through the ingress, without the relay
    and playground paths (their duration is the model's generation time, streamed)."""
    return (f"histogram_quantile(0.95, sum by (le) (rate({mc.INGRESS_DURATION_BUCKET}"
            f"{{{_selector()},{mc.NOT_STREAMING}}}[{QUERY_WINDOW}])))")


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


def analysis_templates(name: str, prometheus_url: str, d: dict) -> dict:
    """AnalysisTemplate specs by template name (args: ``service``, ``namespace``)."""
    names = template_names(name)
    args = [{"name": "service"}, {"name": "namespace"}]
    rate, p95 = d["success_rate"], d["latency_p95_seconds"]
    return {
        names["success_rate"]: {"args": args, "metrics": [_metric(
            "success-rate", d, f"result[0] >= {rate}", f"result[0] < {rate}",
            {"prometheus": {"address": prometheus_url, "query": success_rate_query()}})]},
        names["latency"]: {"args": args, "metrics": [_metric(
            "latency-p95", d, f"result[0] <= {p95}", f"result[0] > {p95}",
            {"prometheus": {"address": prometheus_url, "query": latency_p95_query()}})]},
        names["status"]: {"args": args, "metrics": [{
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


def rollout_strategy(strategy: str, d: dict, *, name: str, namespace: str, stable_service: str,
                     second_service: str, stable_ingress: str) -> dict:
    """``Rollout.spec.strategy``: canary with nginx traffic routing through the stable
    Ingress, or blue-green with manual promotion."""
    names = template_names(name)
    if strategy == "canary":
        steps: list = []
        for weight in d["canary_steps"]:
            steps += [{"setWeight": weight}, {"pause": {"duration": f"{d['pause_seconds']}s"}}]
        return {"canary": {
            "stableService": stable_service,
            "canaryService": second_service,
            "maxUnavailable": 0,
            "maxSurge": "25%",
            "trafficRouting": {"nginx": {
                "stableIngress": stable_ingress,
                # header routing sends X-Canary: always to the canary (seed 000)
                "additionalIngressAnnotations": {"canary-by-header": d["canary_header"]},
            }},
            "analysis": {
                "templates": [{"templateName": names["success_rate"]}, {"templateName": names["latency"]}],
                "startingStep": d["analysis_starting_step"],
                "args": _args(second_service, namespace),
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
            "postPromotionAnalysis": {
                "templates": [{"templateName": names["success_rate"]}, {"templateName": names["latency"]}],
                "args": _args(stable_service, namespace)},
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
