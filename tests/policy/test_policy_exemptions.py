"""Exemptions: honoured only for the named, known ids with a reason; anything else is
ignored and reported (POL-001); every exemption in use is listed in the report."""
import pytest

import policy_fixtures as fx
from newapi_policy import POLICIES, evaluate_stack, render_markdown
from policy_helpers import messages

EXEMPT = "policy.new-api.io/exempt-controls"
REASON = "policy.new-api.io/exempt-reason"


def node_exporter(annotations, on_template=False, read_only=True):
    ds = fx.workload("DaemonSet", "node-exporter", app="node-exporter", component="monitoring")
    pod = ds["inputs"]["spec"]["template"]["spec"]
    pod["hostNetwork"] = True
    pod["hostPID"] = True
    pod["volumes"].append({"name": "proc", "hostPath": {"path": "/proc"}})
    pod["containers"][0]["volumeMounts"].append({"name": "proc", "mountPath": "/host/proc", "readOnly": read_only})
    meta = ds["inputs"]["spec"]["template"]["metadata"] if on_template else ds["inputs"]["metadata"]
    meta["annotations"] = annotations
    return ds


RESOURCE_POLICIES = [p for p in POLICIES if type(p).__name__ == "ResourceValidationPolicy"]


def run(entry):
    return evaluate_stack([entry], policies=RESOURCE_POLICIES)


def ids(report):
    return sorted({v["control"] for v in report["violations"]})


def test_without_exemption_host_access_is_reported():
    assert ids(run(node_exporter({}))) == ["K8S-009", "K8S-010", "K8S-030"]


@pytest.mark.parametrize("on_template", [False, True], ids=["workload", "pod-template"])
def test_exemption_with_reason_suppresses_only_the_named_ids(on_template):
    report = run(node_exporter({EXEMPT: "K8S-009, K8S-010", REASON: "node-exporter reads host metrics"}, on_template))
    assert ids(report) == []  # K8S-030 accepts hostPath under a K8S-010 exemption
    [ex] = report["exemptions"]
    assert ex["controls"] == ["K8S-009", "K8S-010"] and ex["reason"] == "node-exporter reads host metrics"
    assert ex["suppressed"] == {"K8S-009": 2, "K8S-010": 1}
    assert "node-exporter reads host metrics" in render_markdown(report)


def test_exemption_covers_nothing_it_does_not_name():
    report = run(node_exporter({EXEMPT: "K8S-009", REASON: "host network for metrics"}))
    assert ids(report) == ["K8S-010", "K8S-030"]


def test_exemption_without_reason_is_ignored_and_reported():
    report = run(node_exporter({EXEMPT: "K8S-009,K8S-010"}))
    assert ids(report) == ["K8S-009", "K8S-010", "K8S-030", "POL-001"]
    assert report["exemptions"] == []
    [pol] = [v for v in report["violations"] if v["control"] == "POL-001"]
    assert pol["level"] == "mandatory" and "has no policy.new-api.io/exempt-reason" in pol["message"]


def test_exemption_naming_an_unknown_id_is_reported_and_known_ids_still_apply():
    report = run(node_exporter({EXEMPT: "K8S-009,K8S-010,K8S-999", REASON: "node-exporter"}))
    assert ids(report) == ["POL-001"]
    assert "names unknown control id(s) K8S-999" in messages(report)[0]


def test_host_path_exemption_covers_read_only_mounts_only():
    report = run(node_exporter({EXEMPT: "K8S-009,K8S-010", REASON: "node-exporter"}, read_only=False))
    [v] = report["violations"]
    assert v["control"] == "K8S-010" and "mounted writable by app" in v["message"]
    assert "set readOnly: true" in v["message"]


def test_exemption_in_a_stack_policy_is_honoured_for_that_workload():
    stack = fx.compliant_stack()
    stack = [r for r in stack if r["name"] != "postgres-allow"]
    assert "K8S-017" in ids(evaluate_stack(stack))
    pg = next(r for r in stack if r["name"] == "postgres" and r["type"].endswith("StatefulSet"))
    pg["inputs"]["metadata"]["annotations"] = {EXEMPT: "K8S-017", REASON: "test: policy lives elsewhere"}
    report = evaluate_stack(stack)
    assert "K8S-017" not in ids(report)
    assert report["exemptions"][0]["suppressed"] == {"K8S-017": 1}
