"""Drive the pack the way the engine does: the pulumi_policy analyzer servicer behind
PolicyPack, fed real AnalyzeRequest / AnalyzeStackRequest protobufs (numbers as doubles,
secrets as the engine's signature objects, unknowns as the preview sentinel)."""
import pytest
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer

import policy_fixtures as fx
from newapi_policy import PACK_NAME, POLICIES
from newapi_policy.controls import BY_POLICY, MANDATORY
from policy_cases import CASES, SENTINEL, build

SECRET_SIG = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
WORKLOAD_MANDATORY = sorted({c.policy for c in CASES if BY_POLICY[c.policy].level == MANDATORY
                             and c.fixture in fx.WORKLOAD_KINDS})


def servicer(config=None):
    s = _PolicyAnalyzerServicer(PACK_NAME, "0.1.0", POLICIES, EnforcementLevel.MANDATORY,
                                None, None, None, None, None, None, None)
    if config:
        req = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, (level, props) in config.items():
            pc = req.policyConfig[name]
            pc.enforcementLevel = level
            if props:
                json_format.ParseDict(props, pc.properties)
        s.Configure(req, None)
    return s


def struct(d):
    return json_format.ParseDict(d, struct_pb2.Struct())


def analyze(entry, srv=None):
    srv = srv or servicer()
    req = analyzer_pb2.AnalyzeRequest(type=entry["type"], properties=struct(entry["inputs"]), urn=entry["urn"],
                                      name=entry["name"])
    req.options.protect = entry.get("protect", False)
    return list(srv.Analyze(req, None).diagnostics)


def by_policy(diags, name):
    return [d for d in diags if d.policyName == name]


@pytest.mark.parametrize("kind", sorted(set(fx.WORKLOAD_KINDS) - {"Pod"}))
def test_compliant_workload_passes_through_the_engine_path(kind):
    assert analyze(fx.workload(kind)) == []


ENGINE_KINDS = ("Deployment", "StatefulSet", "Rollout", "Job", "CronJob", "Pod")
ENGINE_CASES = [c for c in CASES if c.policy in WORKLOAD_MANDATORY and c.fixture in ENGINE_KINDS]


def test_every_mandatory_workload_control_goes_through_the_engine_path():
    assert {c.policy for c in ENGINE_CASES} == set(WORKLOAD_MANDATORY)


@pytest.mark.parametrize("case", ENGINE_CASES, ids=lambda c: c.id)
def test_mandatory_workload_violation_blocks_through_the_engine_path(case):
    entry = build(case)[0]
    diags = by_policy(analyze(entry), case.policy)
    assert diags, f"{case.policy} produced no diagnostic"
    hits = [d for d in diags if case.expect in d.message]
    assert hits, [d.message for d in diags]
    for d in hits:
        assert d.enforcementLevel == analyzer_pb2.MANDATORY
        assert f"[{case.control}] " in d.message and d.policyPackName == PACK_NAME


def test_secret_values_are_seen_in_plain_by_policies():
    d = fx.workload("Deployment")
    env = d["inputs"]["spec"]["template"]["spec"]["containers"][0]["env"]
    env.append({"name": "API_KEY", "value": {**SECRET_SIG, "value": "sk-live-123"}})
    # a whole secret-wrapped securityContext is unwrapped too, and still judged
    c = d["inputs"]["spec"]["template"]["spec"]["initContainers"][0]
    c["securityContext"] = {**SECRET_SIG, "value": {**c["securityContext"], "privileged": True}}
    diags = analyze(d)
    assert [x.policyName for x in diags if "API_KEY" in x.message] == ["k8s-016-secrets-not-literal"]
    assert by_policy(diags, "k8s-008-no-privileged")


def test_unknown_value_skips_only_that_field_and_says_so():
    d = fx.workload("Deployment")
    pod = d["inputs"]["spec"]["template"]["spec"]
    pod["securityContext"]["runAsUser"] = SENTINEL
    pod["initContainers"][0]["securityContext"]["privileged"] = True
    pod["containers"][0]["securityContext"]["runAsGroup"] = 0
    diags = analyze(d)
    k1 = by_policy(diags, "k8s-001-run-as-non-root")
    mandatory = [x for x in k1 if x.enforcementLevel == analyzer_pb2.MANDATORY]
    # runAsGroup is known and wrong: still reported; runAsUser is unknown: not judged
    assert [m.message.split("\n")[-1] for m in mandatory] == [
        '[K8S-001] container "app" in Deployment new-api/new-api runs as GID 0: set securityContext.runAsNonRoot: '
        'true and runAsUser/runAsGroup >= 10000 (pod level or per container)']
    preview = [x for x in k1 if x.enforcementLevel == analyzer_pb2.ADVISORY]
    assert len(preview) == 1 and "can't run policy 'k8s-001-run-as-non-root'" in preview[0].message
    assert "spec.template.spec.securityContext.runAsUser can't be known during preview" in preview[0].message
    assert by_policy(diags, "k8s-008-no-privileged")  # other policies unaffected


def test_unknown_whole_object_is_reported_not_passed():
    d = fx.workload("StatefulSet")
    d["inputs"]["spec"]["template"]["spec"]["containers"][0]["securityContext"] = SENTINEL
    diags = analyze(d)
    for name in ("k8s-005-no-privilege-escalation", "k8s-006-drop-capabilities", "k8s-008-no-privileged",
                 "k8s-012-read-only-root-fs"):
        ds = by_policy(diags, name)
        assert len(ds) == 1 and "during preview" in ds[0].message and ds[0].enforcementLevel == analyzer_pb2.ADVISORY


def test_numbers_arrive_as_doubles_and_messages_print_integers():
    d = fx.workload("Deployment")
    d["inputs"]["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 1001
    msgs = [x.message for x in by_policy(analyze(d), "k8s-001-run-as-non-root")]
    assert any("runs as UID 1001:" in m for m in msgs), msgs


def test_enforcement_level_override_and_environment_config():
    d = fx.workload("Deployment")
    d["inputs"]["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    srv = servicer({"k8s-008-no-privileged": (analyzer_pb2.ADVISORY, None)})
    diags = by_policy(analyze(d, srv), "k8s-008-no-privileged")
    assert diags and all(x.enforcementLevel == analyzer_pb2.ADVISORY for x in diags)
    srv = servicer({"k8s-008-no-privileged": (analyzer_pb2.DISABLED, None)})
    assert by_policy(analyze(d, srv), "k8s-008-no-privileged") == []
    hpa = fx.hpa()
    hpa["inputs"]["spec"]["minReplicas"] = 1
    assert by_policy(analyze(hpa), "k8s-022-hpa-bounds")
    srv = servicer({"k8s-022-hpa-bounds": (analyzer_pb2.MANDATORY, {"environment": "dev"})})
    assert by_policy(analyze(hpa, srv), "k8s-022-hpa-bounds") == []


def test_allowed_registries_from_pack_config():
    d = fx.workload("Deployment")
    d["inputs"]["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.corp.example/new-api:1" + fx.DIGEST
    assert by_policy(analyze(d), "k8s-014-allowed-registries")
    srv = servicer({"k8s-014-allowed-registries": (analyzer_pb2.ADVISORY,
                                                   {"allowedRegistries": ["registry.corp.example", "calciumion"]})})
    assert by_policy(analyze(d, srv), "k8s-014-allowed-registries") == []


def test_analyzer_info_lists_every_policy_with_level_and_schema():
    info = servicer().GetAnalyzerInfo(None, None)
    assert {p.name for p in info.policies} == {p.name for p in POLICIES}
    for p in info.policies:
        c = BY_POLICY[p.name]
        assert p.enforcementLevel == (analyzer_pb2.MANDATORY if c.level == MANDATORY else analyzer_pb2.ADVISORY)
        assert set(p.configSchema.properties) >= {"environment", "allowedRegistries", "minProdReplicas",
                                                   "minBackupRetentionDays"}


def _stack_request(resources):
    req = analyzer_pb2.AnalyzeStackRequest()
    for r in resources:
        ar = req.resources.add(type=r["type"], urn=r["urn"], name=r["name"], parent=r.get("parent") or "")
        ar.properties.CopyFrom(struct(r["inputs"]))
        ar.options.protect = r.get("protect", False)
        ar.dependencies.extend(r.get("dependencies") or [])
    return req


def test_analyze_stack_passes_the_compliant_stack():
    assert list(servicer().AnalyzeStack(_stack_request(fx.compliant_stack()), None).diagnostics) == []


def test_analyze_stack_reports_with_the_offending_urn():
    resources = fx.compliant_stack()
    resources = [r for r in resources if r["name"] != "default-deny"]
    pg = next(r for r in resources if r["name"] == "postgres" and r["type"].endswith("StatefulSet"))
    pg["inputs"]["spec"]["replicas"] = 3
    diags = list(servicer().AnalyzeStack(_stack_request(resources), None).diagnostics)
    k17 = by_policy(diags, "k8s-017-network-policies")
    assert {d.urn for d in k17} == {next(r["urn"] for r in resources if r["type"].endswith(":Namespace"))}
    k18 = by_policy(diags, "k8s-018-pdb-for-multi-replica")
    assert [d.urn for d in k18] == [pg["urn"]] and k18[0].enforcementLevel == analyzer_pb2.MANDATORY


def test_analyze_stack_unknown_selector_is_not_a_silent_pass():
    resources = fx.compliant_stack()
    svc = next(r for r in resources if r["name"] == "new-api" and r["type"].endswith(":Service"))
    svc["inputs"]["spec"]["selector"]["app.kubernetes.io/component"] = SENTINEL
    diags = by_policy(list(servicer().AnalyzeStack(_stack_request(resources), None).diagnostics),
                      "k8s-040-referential-integrity")
    assert len(diags) == 1 and "during preview" in diags[0].message
    assert diags[0].enforcementLevel == analyzer_pb2.ADVISORY


def test_stk001_under_the_engine_cannot_see_retain_on_delete():
    resources = fx.compliant_stack()
    cache = next(r for r in resources if r["name"] == "cache")
    cache["protect"], cache["retainOnDelete"] = False, True
    diags = by_policy(list(servicer().AnalyzeStack(_stack_request(resources), None).diagnostics),
                      "stk-001-stateful-protected")
    assert len(diags) == 1 and "CrossGuard cannot see retainOnDelete" in diags[0].message


def test_analyze_stack_sees_secret_values_in_plain():
    resources = fx.compliant_stack()
    am = next(r for r in resources if r["name"] == "alertmanager-config")
    am["inputs"]["stringData"] = {**SECRET_SIG, "value": {"alertmanager.yaml": "route:\n  receiver: nobody\nreceivers: []\n"}}
    diags = by_policy(list(servicer().AnalyzeStack(_stack_request(resources), None).diagnostics),
                      "stk-004-monitoring-alert-routing")
    assert [d.urn for d in diags] == [am["urn"]] and "undefined receiver nobody" in diags[0].message
