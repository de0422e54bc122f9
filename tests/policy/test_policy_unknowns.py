"""The preview sentinel fed to every rule: a rule never crashes on it, never reports a
violation for the unknown field, and never passes silently (the unknown is recorded and
the SDK turns it into "can't run policy ... during preview")."""
import copy

import pytest

import policy_fixtures as fx
from newapi_policy import POLICIES, evaluate_stack
from policy_cases import CASES, REMOVE, SENTINEL, Append, Case, build
from policy_helpers import SYNTH_ONLY, messages, run_isolated

RESOURCE_POLICIES = [p for p in POLICIES if type(p).__name__ == "ResourceValidationPolicy"]
STACK_POLICIES = [p for p in POLICIES if type(p).__name__ == "StackValidationPolicy"]
# K8S-039 (a Pod is bare whatever its fields) and K8S-043 (the snippet annotation's presence is the
# violation, its value is irrelevant) judge known facts next to the mutated value: tested below.
VALUE_IRRELEVANT = {"k8s-039-no-bare-pods", "k8s-043-no-ingress-snippets"}
SENTINEL_CASES = [c for c in CASES if c.value is not REMOVE and c.target != "entry" and c.policy != SYNTH_ONLY
                  and c.policy not in VALUE_IRRELEVANT]


@pytest.mark.parametrize("case", SENTINEL_CASES, ids=lambda c: c.id)
def test_unknown_in_place_of_the_bad_value_is_skipped_and_recorded(case):
    value = Append(SENTINEL) if isinstance(case.value, Append) else SENTINEL
    report = run_isolated(case.policy, build(case, value), case.environment)
    assert not report["errors"], report["errors"]
    assert not [m for m in messages(report) if case.expect in m], "judged an unknown value"
    assert [u for u in report["unknowns"] if u["policy"] == case.policy], "unknown passed silently"


# Policies whose bad cases remove a resource: the sentinel goes into a field they read instead.
EXTRA = [Case("aws-013-s3-tls-only", "BucketPolicy/backups-policy", "object", ("policy",), None, ""),
         Case("aws-015-s3-access-logging", "Bucket/backups", "object", ("tags", "purpose"), None, ""),
         Case("k8s-034-prod-min-replicas", "HorizontalPodAutoscaler/new-api", "object",
              ("spec", "scaleTargetRef", "name"), None, ""),
         Case("k8s-049-namespace-quota", "ResourceQuota/quota", "object", ("metadata", "namespace"), None, "")]


@pytest.mark.parametrize("case", EXTRA, ids=lambda c: c.id)
def test_unknown_in_a_field_a_stack_rule_reads_is_recorded(case):
    report = run_isolated(case.policy, build(case, SENTINEL))
    assert not report["errors"] and report["violations"] == []
    assert [u for u in report["unknowns"] if u["policy"] == case.policy], "unknown passed silently"


def test_every_pack_policy_is_fed_the_sentinel():
    fed = {c.policy for c in SENTINEL_CASES + EXTRA}
    missing = sorted({p.name for p in POLICIES} - fed - VALUE_IRRELEVANT)
    assert missing == []


def test_snippet_annotation_with_unknown_value_is_still_reported():
    ing = fx.ingress()
    ing["inputs"]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/server-snippet"] = SENTINEL
    report = run_isolated("k8s-043-no-ingress-snippets", [ing])
    assert [m.split(":")[0] for m in messages(report)] == [
        "[K8S-043] Ingress new-api/new-api sets annotation nginx.ingress.kubernetes.io/server-snippet"]


def test_bare_pod_rule_on_unknown_inputs_still_reports_the_pod():
    pod = fx.workload("Pod")
    pod["inputs"]["metadata"] = SENTINEL
    report = run_isolated("k8s-039-no-bare-pods", [pod])
    assert [v["message"][:40] for v in report["violations"]] == ["[K8S-039] Pod new-api is a bare Pod that"]


def _nodes(value, path=()):
    """Every path below the root: leaves, list elements and whole sub-objects."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield path + (k,)
            yield from _nodes(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield path + (i,)
            yield from _nodes(v, path + (i,))


def _with_sentinel(entry, path):
    e = copy.deepcopy(entry)
    base = e["inputs"]
    for k in path[:-1]:
        base = base[k]
    base[path[-1]] = SENTINEL
    return e


@pytest.mark.parametrize("kind", sorted(fx.single_fixtures()), ids=str)
def test_sentinel_anywhere_in_a_compliant_fixture_never_crashes_or_flags(kind):
    entry = fx.single_fixture(kind)
    for path in _nodes(entry["inputs"]):
        report = evaluate_stack([_with_sentinel(entry, path)], policies=RESOURCE_POLICIES)
        assert not report["errors"], (path, report["errors"])
        bad = [m for m in messages(report) if not (kind == "Pod" and m.startswith("[K8S-039]"))]
        assert bad == [], (path, bad)


STACK_FIELDS = ("metadata", "selector", "podSelector", "scaleTargetRef", "replicas", "policyTypes", "egress",
                "ingress", "serviceName", "clusterIP", "minReplicas", "maxUnavailable", "priorityClassName",
                "stringData", "backupRetentionPeriod", "snapshotRetentionLimit", "annotations", "bucket",
                "persistentVolumeClaimRetentionPolicy", "value", "rules", "ports", "containers", "volumes",
                "policy", "enableKeyRotation", "deletionWindowInDays", "securityGroupId", "cidrIpv4", "fromPort",
                "toPort")


@pytest.mark.parametrize("name", sorted({f"{r['type'].rsplit(':', 1)[-1]}/{r['name']}" for r in fx.compliant_stack()}))
def test_sentinel_in_the_compliant_stack_never_crashes_or_flags(name):
    stack = fx.compliant_stack()
    idx = next(i for i, r in enumerate(stack) if f"{r['type'].rsplit(':', 1)[-1]}/{r['name']}" == name)
    paths = [p for p in _nodes(stack[idx]["inputs"]) if any(isinstance(k, str) and k in STACK_FIELDS for k in p)]
    assert paths, f"{name}: no field of STACK_FIELDS in its inputs, so nothing would be tested"
    for path in paths:
        mutated = list(stack)
        mutated[idx] = _with_sentinel(stack[idx], path)
        report = evaluate_stack(mutated, policies=STACK_POLICIES)
        assert not report["errors"], (path, report["errors"])
        assert messages(report) == [], (path, messages(report))
