"""Progressive delivery (issue: blue-green and canary with automated analysis): the Rollout,
its analyses, and what follows it (HPA, PDB, Services, NetworkPolicies)."""

import math
import re
import subprocess

import pytest
import yaml

from components import monitoring_config
from support import Stack, override
from validators import require
from tools import mockrt, synth

ROLLOUT = "kubernetes:argoproj.io/v1alpha1:Rollout"


def run(stack: str, strategy: str, *changes) -> Stack:
    """The stack with a rollout strategy. Both colours (or stable plus canary) hold database
    connections during a rollout, so prod needs room for twice the HPA maximum."""
    extra = [("database.maxConnections", 300)] if stack == "prod" else []
    return Stack(mockrt.run_stack(stack, override(stack, ("app.delivery.strategy", strategy), *extra, *changes)))


@pytest.fixture(scope="module")
def canary() -> Stack:
    return run("prod", "canary")


@pytest.fixture(scope="module")
def bluegreen() -> Stack:
    return run("prod", "blue-green")


@pytest.fixture(scope="module")
def canary_nginx() -> Stack:
    return run("prod", "canary", ("entry.kind", "ingress-nginx"))


def rollout(stack: Stack) -> dict:
    return stack.k8s("Rollout", "new-api")


def templates(stack: Stack) -> dict:
    return {t["metadata"]["name"]: t["spec"] for t in stack.k8s_all("AnalysisTemplate")}


# ----------------------------------------------------------------------------- canary

def test_canary_steps_follow_the_seed(canary):
    steps = rollout(canary)["spec"]["strategy"]["canary"]["steps"]
    assert [s["setWeight"] for s in steps if "setWeight" in s] == [20, 40, 60, 80]
    assert [s["pause"]["duration"] for s in steps if "pause" in s] == ["600s"] * 4


def test_canary_routes_through_the_httproute_with_the_gateway_api_plugin(canary):
    """argoproj-labs/rollouts-plugin-trafficrouter-gatewayapi: ``setHTTPRouteWeight`` sets
    the weights of the backendRefs named like the stable and canary Services in every rule
    (and fails when either is missing); ``setHeaderRoute`` adds a header-match rule per
    rule for the managed route (pkg/plugin/httproute.go)."""
    spec = rollout(canary)["spec"]["strategy"]["canary"]
    plugin = spec["trafficRouting"]["plugins"]["argoproj-labs/gatewayAPI"]
    assert plugin == {"namespace": "new-api", "httpRoutes": [{"name": "new-api", "useHeaderRoutes": True}]}
    assert spec["trafficRouting"]["managedRoutes"] == [{"name": "canary-header"}]
    assert spec["steps"][0] == {"setHeaderRoute": {"name": "canary-header", "match": [
        {"headerName": "X-Canary", "headerValue": {"exact": "always"}}]}}
    assert [s["setWeight"] for s in spec["steps"] if "setWeight" in s] == [20, 40, 60, 80]
    route = canary.k8s("HTTPRoute", "new-api")
    for rule in route["spec"]["rules"]:
        assert [(b["name"], b["weight"]) for b in rule["backendRefs"]] == [("new-api", 100), ("new-api-canary", 0)]
    reg = next(r for r in canary.registrations if r.type.endswith(":HTTPRoute") and r.name.endswith("new-api-route"))
    assert reg.ignore_changes == ["spec.rules[*].backendRefs[*].weight"]


def test_canary_routes_through_the_stable_ingress_with_the_header(canary_nginx):
    canary = canary_nginx
    canary_spec = rollout(canary)["spec"]["strategy"]["canary"]
    nginx = canary_spec["trafficRouting"]["nginx"]
    ingress_names = [i["metadata"]["name"] for i in canary.k8s_all("Ingress")]
    assert nginx["stableIngress"] in ingress_names
    assert nginx["additionalIngressAnnotations"] == {"canary-by-header": "X-Canary"}
    assert (canary_spec["stableService"], canary_spec["canaryService"]) == ("new-api", "new-api-canary")


@pytest.mark.parametrize("kind,starting_step,selector,relay_selector", [
    ("gateway", 3, 'envoy_cluster_name=~"httproute/new-api/new-api/rule/',
     'plugin_id="new_api_relay_ttfb_canary_le_'),
    ("ingress-nginx", 2, 'canary="new-api-new-api-canary-80"', 'canary="new-api-new-api-canary-80"'),
])
def test_canary_analysis_starts_at_the_40_percent_step_on_the_canarys_traffic(canary, canary_nginx, kind,
                                                                              starting_step, selector,
                                                                              relay_selector):
    """What the queries decide on each entry's series: test_analysis_ingress_nginx.py,
    test_analysis_gateway.py. The gateway's steps begin with the header route. Both entries
    gate on the relay's time to first byte (issue 14): the gateway's from the canary's
    access-log counters (docs/relay-ttfb-gateway.md)."""
    stack = canary if kind == "gateway" else canary_nginx
    spec = rollout(stack)["spec"]["strategy"]["canary"]
    analysis = spec["analysis"]
    assert analysis["startingStep"] == starting_step and spec["steps"][starting_step] == {"setWeight": 40}
    assert {t["templateName"] for t in analysis["templates"]} == {
        "new-api-success-rate", "new-api-latency", "new-api-relay-latency"}
    assert set(templates(stack)) >= {t["templateName"] for t in analysis["templates"]}
    for t in analysis["templates"]:
        query = templates(stack)[t["templateName"]]["metrics"][0]["provider"]["prometheus"]["query"]
        assert (relay_selector if t["templateName"] == "new-api-relay-latency" else selector) in query


def _pod_templates(stack: Stack, namespace: str) -> dict:
    """Every pod template in a namespace, by "Kind/name" (what a Service selector can match)."""
    out = {}
    for kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"):
        for obj in stack.k8s_all(kind):
            if obj["metadata"].get("namespace") == namespace:
                spec = obj["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else obj["spec"]
                out[f"{kind}/{obj['metadata']['name']}"] = spec["template"]["metadata"].get("labels", {})
    return out


def _selects(selector: dict, labels: dict) -> bool:
    """A Service's spec.selector matches pods carrying every pair (core/v1 ServiceSpec); an
    empty selector selects nothing automatically, so the Service would have no endpoints."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("service", ["new-api", "new-api-canary"])
def test_service_selects_exactly_the_serving_pods(canary, service):
    """The canary Service and the stable one select the serving pods (the Rollout adds its
    pod-template-hash to each) and none of the master's or the jobs' pods."""
    svc = canary.k8s("Service", service)
    selector = svc["spec"]["selector"]
    assert selector, f"Service {service} has an empty selector"
    selected = {name for name, labels in _pod_templates(canary, svc["metadata"]["namespace"]).items()
                if _selects(selector, labels)}
    assert selected == {"Deployment/new-api"}, selected


def test_hpa_and_pdb_follow_the_rollout(canary):
    hpa = canary.k8s("HorizontalPodAutoscaler", "new-api")["spec"]["scaleTargetRef"]
    assert hpa == {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "new-api"}
    assert "replicas" not in rollout(canary)["spec"]
    pdb = canary.k8s("PodDisruptionBudget", "new-api")["spec"]["selector"]["matchLabels"]
    assert pdb == rollout(canary)["spec"]["selector"]["matchLabels"]


def test_rollout_takes_its_pods_from_the_deployment_and_scales_it_down_progressively(canary):
    spec = rollout(canary)["spec"]
    assert spec["workloadRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "new-api",
                                   "scaleDown": "progressively"}
    assert spec["selector"]["matchLabels"] == canary.k8s("Deployment", "new-api")["spec"]["selector"]["matchLabels"]
    deps = set(canary.get(ROLLOUT, "new-api").dependencies)
    assert canary.get("kubernetes:apps/v1:Deployment", "new-api").urn in deps


# ----------------------------------------------------------------------------- analyses

def _prometheus_metrics(stack: Stack) -> list:
    """(template name, metric) of every Prometheus-backed analysis metric; never empty for
    a canary stack, so the loops below cannot pass by checking nothing."""
    found = [(name, m) for name, spec in templates(stack).items() for m in spec["metrics"]
             if "prometheus" in m["provider"]]
    # the relay's time-to-first-byte gate where the entry measures it (ingress-nginx, issue 14)
    relay = {"new-api-relay-latency"} if "new-api-relay-latency" in templates(stack) else set()
    assert {name for name, _ in found} == {"new-api-success-rate", "new-api-latency", *relay}, found
    return found


def test_analyses_query_the_stacks_prometheus(canary):
    assert _prometheus_metrics(canary)
    for spec in templates(canary).values():
        for metric in spec["metrics"]:
            if "prometheus" in metric["provider"]:
                assert metric["provider"]["prometheus"]["address"] == "http://prometheus.monitoring.svc:9090"


def test_analyses_can_fail(canary):
    assert _prometheus_metrics(canary)
    for name, spec in templates(canary).items():
        for metric in spec["metrics"]:
            assert metric["failureLimit"] < metric["count"], name


def _evaluate(condition: str, result: list) -> bool:
    """The analysis conditions are expr-lang; this subset maps onto Python."""
    expr = condition.replace("&&", "and").replace("||", "or").replace("true", "True")
    return bool(eval(expr, {"len": len, "result": result}))  # noqa: S307 (our own generated text)


@pytest.mark.parametrize("template,result,outcome", [
    ("new-api-success-rate", [0.99], "success"),
    ("new-api-success-rate", [0.95], "success"),
    ("new-api-success-rate", [0.90], "failure"),
    ("new-api-success-rate", [], "inconclusive"),
    ("new-api-success-rate", [math.nan], "inconclusive"),
    ("new-api-latency", [0.3], "success"),
    ("new-api-latency", [0.8], "failure"),
    ("new-api-latency", [], "inconclusive"),
])
def test_analysis_conditions_decide_as_the_seed_requires(canary, template, result, outcome):
    metric = templates(canary)[template]["metrics"][0]
    success = _evaluate(metric["successCondition"], result)
    failure = _evaluate(metric["failureCondition"], result)
    assert (success, failure) == {"success": (True, False), "failure": (False, True),
                                  "inconclusive": (False, False)}[outcome]


def _metric_names(query: str) -> set:
    names = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", query))
    return names - {"by", "sum", "rate", "histogram_quantile"}


@pytest.mark.parametrize("kind,jobs", [("gateway", ("envoy-gateway", "logstash-exporter")),
                                       ("ingress-nginx", ("ingress-nginx",))])
def test_analyses_use_only_metrics_the_stack_collects(canary, canary_nginx, kind, jobs):
    """The gateway's relay gate reads Logstash's counters (logstash-exporter's job)."""
    collected = frozenset().union(*(monitoring_config.EXPORTER_METRICS[job] for job in jobs))
    stack = canary if kind == "gateway" else canary_nginx
    assert _prometheus_metrics(stack)
    for spec in templates(stack).values():
        for metric in spec["metrics"]:
            if "prometheus" in metric["provider"]:
                names = _metric_names(metric["provider"]["prometheus"]["query"])
                assert names and names <= collected, names


def test_analysis_queries_are_valid_promql(tmp_path, canary):
    promtool = require("promtool")
    rules = []
    for name, spec in templates(canary).items():
        for metric in spec["metrics"]:
            if "prometheus" in metric["provider"]:
                query = (metric["provider"]["prometheus"]["query"]
                         .replace("{{args.namespace}}", "new-api").replace("{{args.service}}", "new-api-canary"))
                rules.append({"record": f"analysis:{name.replace('-', '_')}", "expr": query})
    assert len(rules) == len(_prometheus_metrics(canary))
    path = tmp_path / "analysis.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "analysis", "rules": rules}]}))
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ----------------------------------------------------------------------------- blue-green

def test_blue_green_waits_for_a_human_and_keeps_the_old_pods_briefly(bluegreen):
    bg = rollout(bluegreen)["spec"]["strategy"]["blueGreen"]
    assert bg["autoPromotionEnabled"] is False and bg["scaleDownDelaySeconds"] == 30
    assert (bg["activeService"], bg["previewService"]) == ("new-api", "new-api-preview")
    preview = bluegreen.k8s("Service", "new-api-preview")
    assert preview["spec"]["selector"] == bluegreen.k8s("Service", "new-api")["spec"]["selector"]
    selected = {name for name, labels in _pod_templates(bluegreen, preview["metadata"]["namespace"]).items()
                if _selects(preview["spec"]["selector"], labels)}
    assert selected == {"Deployment/new-api"}, selected


def test_blue_green_checks_the_preview_pods_before_and_traffic_after_promotion(bluegreen):
    bg = rollout(bluegreen)["spec"]["strategy"]["blueGreen"]
    pre = bg["prePromotionAnalysis"]
    assert [t["templateName"] for t in pre["templates"]] == ["new-api-status-check"]
    web = templates(bluegreen)["new-api-status-check"]["metrics"][0]["provider"]["web"]
    assert web["url"].endswith("/api/status") and web["jsonPath"] == "{$.success}"
    post = bg["postPromotionAnalysis"]
    # the relay's time-to-first-byte gate too (issue 14; on the gateway entry from the
    # proxies' access-log counters, docs/relay-ttfb-gateway.md)
    assert [t["templateName"] for t in post["templates"]] == [
        "new-api-success-rate", "new-api-latency", "new-api-relay-latency"]


def test_blue_green_lets_the_rollouts_controller_reach_the_pods(bluegreen, prod):
    def sources(stack):
        return {r["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                for r in stack.k8s("NetworkPolicy", "new-api-serving")["spec"]["ingress"]}
    assert sources(bluegreen) - sources(prod) == {"argo-rollouts"}


# ----------------------------------------------------------------------------- switching and guardrails

def test_rolling_has_no_rollout(prod):
    assert prod.of_type(ROLLOUT) == [] and prod.k8s_all("AnalysisTemplate") == []
    assert prod.k8s("HorizontalPodAutoscaler", "new-api")["spec"]["scaleTargetRef"]["kind"] == "Deployment"


def test_switching_strategy_replaces_nothing_that_runs(prod, canary):
    """Same URNs for every rolling resource, same pod template: the running pods stay until
    the Rollout's are available (workloadRef, scaleDown: progressively)."""
    before = {r.urn for r in prod.registrations}
    after = {r.urn for r in canary.registrations}
    assert before <= after
    old = prod.k8s("Deployment", "new-api")["spec"]["template"]
    new = canary.k8s("Deployment", "new-api")["spec"]["template"]
    assert old == new


@pytest.mark.parametrize("strategy", ["canary", "blue-green"])
def test_rollout_objects_are_schema_valid(strategy):
    stack = run("dev", strategy)
    for kind in ("Rollout", "AnalysisTemplate"):
        assert stack.k8s_all(kind), f"{strategy} renders no {kind}"
        for obj in stack.k8s_all(kind):
            assert synth.validate_manifest(obj) is None, obj["metadata"]["name"]


@pytest.mark.parametrize("strategy", ["canary", "blue-green"])
def test_rollout_stacks_pass_the_policy_pack(strategy):
    import sys

    sys.path.insert(0, str(mockrt.REPO / "policy"))
    import newapi_policy

    for stack_name in ("dev", "prod"):
        stack = run(stack_name, strategy)
        report = newapi_policy.evaluate_stack(synth.inventory(stack.result), environment=stack_name,
                                              config=synth.pack_config(stack_name))
        assert [v["message"] for v in report["violations"] if v["level"] == "mandatory"] == []
        assert report["checks_run"]["k8s-001-run-as-non-root"] > 0


@pytest.mark.parametrize("changes,expected", [
    ([("app.delivery.strategy", "canary"), ("monitoring.enabled", False)],
     "new-api:app.delivery.strategy = \"canary\": canary and blue-green analyses query Prometheus"),
    ([("app.delivery.strategy", "canary"), ("app.delivery.analysisFailureLimit", 5)],
     "new-api:app.delivery.analysisFailureLimit = 5: must be below analysisCount (5)"),
    ([("app.delivery.strategy", "canary"), ("app.delivery.canarySteps", [40, 20])],
     "new-api:app.delivery.canarySteps = [40, 20]: must be strictly increasing"),
    ([("app.delivery.strategy", "red-black")], "new-api:app.delivery.strategy = \"red-black\""),
    ([("app.delivery.strategy", "canary"), ("entry.kind", "ingress-nginx"), ("ingress.className", "traefik")],
     "canary traffic routing with entry.kind ingress-nginx uses ingress-nginx"),
    ([("entry.kind", "traefik")], "new-api:entry.kind = \"traefik\""),
    ([("entry.gateway.gateway.create", False)], "new-api:entry.gateway.gateway.namespace = null: is required"),
])
def test_bad_delivery_config_is_refused(changes, expected):
    result = mockrt.run_stack("dev", override("dev", *changes))
    assert expected in str(result.error), result.error
    assert result.registrations == []


def test_component_needs_a_prometheus_for_analysis():
    from test_components import GOOD_APP
    from components import ApiService

    result = mockrt.run(lambda: ApiService("api", {**GOOD_APP, "strategy": "canary"}))
    assert "prometheus_url: is required with strategy 'canary'" in str(result.error)


def _canary_component(**delivery):
    from test_components import GOOD_APP
    from components import ApiService

    return mockrt.run(lambda: ApiService("api", {**GOOD_APP, "strategy": "canary", "prometheus_url": "http://p:9090",
                                                 "delivery": delivery}))


@pytest.mark.parametrize("limit", [5, 9, -1])
def test_component_refuses_an_analysis_that_cannot_fail(limit):
    """Argo fails a measurement run when failures exceed failureLimit, so failureLimit >=
    count can never fail (argoproj/argo-rollouts docs, features/analysis.md "failureLimit");
    the boundary is failureLimit == count."""
    bad = _canary_component(analysis_count=5, analysis_failure_limit=limit)
    assert f"delivery.analysis_failure_limit: {limit} must be below analysis_count 5" in str(bad.error)
    assert [r.type for r in bad.registrations] == ["new-api:index:ApiService"], "no child before the check"


@pytest.mark.parametrize("limit", [0, 4])
def test_component_accepts_failure_limits_that_can_still_fail(limit):
    """0 (the first failure aborts) up to count - 1."""
    good = _canary_component(analysis_count=5, analysis_failure_limit=limit)
    assert good.error is None, good.error
    limits = {m["failureLimit"] for t in Stack(good).k8s_all("AnalysisTemplate") for m in t["spec"]["metrics"]
              if "prometheus" in m["provider"]}
    assert limits == {limit}


def test_the_rollouts_controller_may_query_prometheus(canary, prod):
    def sources(stack):
        rules = stack.k8s("NetworkPolicy", "prometheus")["spec"]["ingress"]
        return [p for r in rules for p in r["from"]]
    argo = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "argo-rollouts"}}}
    assert argo in sources(canary) and argo not in sources(prod)


def test_a_rollout_strategy_needs_database_room_for_both_versions():
    result = mockrt.run_stack("prod", override("prod", ("app.delivery.strategy", "canary")))
    message = str(result.error)
    assert "new-api:app.pool.maxOpenConns = 12" in message
    assert "(20 serving pods at app.autoscaling.maxReplicas 10 x 2 during a canary rollout + 1 master)" in message
    assert "database.maxConnections (200)" in message and result.registrations == []
