"""evaluate_stack's report: deterministic, complete, rendered; synth-only checks."""
import json

import policy_fixtures as fx
from newapi_policy import POLICIES, credentials_not_secret, evaluate_stack, render_markdown, unprotected_stateful
from newapi_policy.settings import Settings


def test_compliant_stack_report_is_clean_and_lists_where_checks_ran():
    report = evaluate_stack(fx.compliant_stack())
    assert report["violations"] == [] and report["mandatory_violations"] == 0 == report["advisory_violations"]
    assert report["errors"] == [] and report["unknowns"] == []
    assert set(report["checks_run"]) == {p.name for p in POLICIES} | {"stk-002-credentials-secret"}
    assert all(n > 0 for n in report["checks_run"].values()), report["checks_run"]
    assert {w["control"] for w in report["synth_only_checks"]} == {"STK-001", "STK-002"}
    md = render_markdown(report)
    assert md.startswith("# Policy report (prod)") and "mandatory violations: **0**" in md
    assert "Where each check ran" in md


def test_report_is_deterministic_and_sorted():
    stack = fx.compliant_stack()
    for r in stack:
        if r["type"].endswith((":Deployment", ":StatefulSet")):
            r["inputs"]["spec"]["template"]["spec"]["hostNetwork"] = True
    a = evaluate_stack(stack)
    b = evaluate_stack(list(reversed(stack)))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    keys = [(v["control"], v["urn"], v["policy"], v["message"]) for v in a["violations"]]
    assert keys == sorted(keys) and a["mandatory_violations"] == 3  # app, postgres, redis
    v = a["violations"][0]
    assert set(v) == {"control", "policy", "level", "urn", "resource", "type", "message"}
    assert "| mandatory |" in render_markdown(a)


def test_stk002_flags_plaintext_credentials_and_outputs():
    stack = fx.compliant_stack() + [
        fx.entry("pulumi:pulumi:Stack", "new-api-test", {}, custom=False,
                 outputs={"url": "https://api.example.com", "adminPassword": "hunter2", "dbPassword": "[secret]"}),
        fx.entry("random:index/randomString:RandomString", "session-secret", {"length": 32}),
        fx.entry("random:index/randomPassword:RandomPassword", "db-password", {"length": 32}),
    ]
    msgs = [v["message"] for v in credentials_not_secret(stack)]
    assert any('stack output "adminPassword" exports a credential in plaintext' in m for m in msgs)
    assert any('RandomString "session-secret"' in m for m in msgs)
    assert len(msgs) == 2, msgs


def test_stk001_retain_on_delete_counts_on_the_synth_side():
    stack = fx.compliant_stack()
    cache = next(r for r in stack if r["name"] == "cache")
    cache["protect"] = False
    assert unprotected_stateful(stack, Settings()) == [cache["urn"]]
    assert [v["urn"] for v in evaluate_stack(stack)["violations"]] == [cache["urn"]]
    cache["retainOnDelete"] = True
    assert unprotected_stateful(stack, Settings()) == []
    assert evaluate_stack(stack)["violations"] == []
    assert unprotected_stateful(stack, Settings(environment="dev")) == []
