"""Every control has a compliant and a violating case; each violating case is a compliant
fixture plus one mutation, run with only its own policy, and must report the control id
and the message that says what to change."""
import os
import re

import pytest

import policy_fixtures as fx
from newapi_policy import CONTROLS, POLICIES
from newapi_policy.controls import BY_POLICY, SYNTH
from policy_cases import CASES, Case, build
from policy_helpers import SYNTH_ONLY, messages, run_isolated

RESOURCE_POLICIES = {p.name for p in POLICIES if type(p).__name__ == "ResourceValidationPolicy"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_case_reports_control_and_fix(case: Case):
    report = run_isolated(case.policy, build(case), case.environment)
    assert not report["errors"], report["errors"]
    assert report["checks_run"][case.policy] > 0, f"{case.policy} never ran"
    ours = [v for v in report["violations"] if v["policy"] == case.policy]
    assert ours, f"{case.policy} reported nothing for {case.id}"
    control = BY_POLICY[case.policy]
    hits = [m for m in messages(report) if case.expect in m]
    assert hits, f"no message contains {case.expect!r}: {messages(report)}"
    for m in hits:
        assert m.startswith(f"[{control.id}] "), m
        assert ": " in m.split("] ", 1)[1], f"message lacks the fix: {m}"
    assert all(v["level"] == control.level for v in ours)


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: c.policy_name)
def test_every_control_has_a_bad_case(control):
    assert any(c.policy == control.policy_name for c in CASES), f"{control.policy_name} has no violating case"


def _good_resources(policy_name):
    if policy_name in RESOURCE_POLICIES:
        singles = [r for k, r in fx.single_fixtures().items() if not (k == "Pod" and policy_name == "k8s-039-no-bare-pods")]
        return singles + fx.compliant_stack()
    return fx.compliant_stack()


@pytest.mark.parametrize("environment", ["prod", "dev"])
@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: c.policy_name)
def test_every_control_passes_its_compliant_fixtures(control, environment):
    report = run_isolated(control.policy_name, _good_resources(control.policy_name), environment)
    assert not report["errors"], report["errors"]
    assert report["violations"] == [], messages(report)
    assert not report["unknowns"]
    if not (control.prod_only and environment == "dev"):
        assert report["checks_run"][control.policy_name] > 0, f"{control.policy_name} never ran on its good fixtures"


@pytest.mark.parametrize("control", [c for c in CONTROLS if c.prod_only], ids=lambda c: c.policy_name)
def test_prod_only_controls_do_not_run_in_dev(control):
    case = next(c for c in CASES if c.policy == control.policy_name)
    report = run_isolated(case.policy, build(case), "dev")
    assert report["violations"] == [] and report["checks_run"][control.policy_name] == 0


def test_every_table_policy_is_in_the_pack_or_synth_only():
    names = {p.name for p in POLICIES}
    for c in CONTROLS:
        assert (c.policy_name in names) != (c.where == SYNTH), c.policy_name
    assert SYNTH_ONLY not in names


def test_policy_names_are_kebab_case_with_the_id():
    for p in POLICIES:
        c = BY_POLICY[p.name]
        assert p.name.startswith(c.id.lower() + "-") and p.name == p.name.lower()
        assert p.description.startswith(f"[{c.id}]")
        assert p.enforcement_level.value == c.level


CONTROLS_MD = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "CONTROLS.md")


# CI runs with shared/ beside the clone: there a missing CONTROLS.md fails, locally it skips.
@pytest.mark.skipif(not os.path.exists(CONTROLS_MD) and os.environ.get("CI", "").lower() != "true",
                    reason="../shared/CONTROLS.md is not next to the repo")
def test_control_table_matches_controls_md():
    rows = {}
    with open(CONTROLS_MD) as f:
        for line in f:
            m = re.match(r"\|\s*((?:K8S|AWS|STK)-\d{3})\s*\|.*\|\s*(mandatory|advisory)( \(prod\))?\s*\|\s*$", line)
            if m:
                rows[m.group(1)] = (m.group(2), bool(m.group(3)))
    assert len(rows) == 74
    primary = {}
    for c in CONTROLS:
        primary.setdefault(c.id, c)
    # POL-001 guards the exemptions themselves; STK-005 (issue 13 item 4) was added after
    # CONTROLS.md was written, which this project cannot edit.
    assert set(primary) - {"POL-001", "STK-005"} == set(rows)
    for cid, (level, prod) in rows.items():
        assert primary[cid].level == level, cid
        if prod:
            assert primary[cid].prod_only, cid
