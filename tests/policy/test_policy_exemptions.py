"""Exemptions: honoured only for the named, known, waivable ids with a reason AND when the
pack's per-stack config allows that control for that object (issue 13.10); anything else is
ignored and reported (POL-001); every exemption in use is listed in the report."""
import json
from pathlib import Path

import pytest

import policy_fixtures as fx
from newapi_policy import POLICIES, evaluate_stack, pack_config_file, render_markdown, settings_from
from newapi_policy.exemptions import NON_WAIVABLE
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


NODE_EXPORTER = "DaemonSet new-api/node-exporter"
ALLOWED = {"K8S-009": [NODE_EXPORTER], "K8S-010": [NODE_EXPORTER]}


def config(allowed):
    """A --policy-pack-config document, as tools/policy_config.py writes it."""
    return pack_config_file([p.name for p in POLICIES], "prod", allowedExemptions=allowed)


def run(entry, allowed=None):
    return evaluate_stack([entry], policies=RESOURCE_POLICIES, config=config(ALLOWED if allowed is None else allowed))


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
    report = evaluate_stack(stack, config=config({"K8S-017": ["StatefulSet new-api/postgres"]}))
    assert "K8S-017" not in ids(report)
    assert report["exemptions"][0]["suppressed"] == {"K8S-017": 1}


# --------------------------------------------------------------------------- the config's half of a waiver


def test_exemption_the_config_does_not_allow_is_ignored_and_reported():
    """Before issue 13.10 the annotation alone was enough: a resource waived any control itself."""
    report = run(node_exporter({EXEMPT: "K8S-009,K8S-010", REASON: "node-exporter reads host metrics"}), allowed={})
    assert ids(report) == ["K8S-009", "K8S-010", "K8S-030", "POL-001"]
    pol = [v["message"] for v in report["violations"] if v["control"] == "POL-001"]
    assert len(pol) == 2 and all("does not allow waiving" in m and NODE_EXPORTER in m for m in pol)
    [ex] = report["exemptions"]
    assert set(ex["refused"]) == {"K8S-009", "K8S-010"} and ex["suppressed"] == {"K8S-009": 0, "K8S-010": 0}
    assert "K8S-009 (not honoured)" in render_markdown(report)


def test_config_allows_a_control_only_for_the_objects_it_names():
    other = {"K8S-009": ["DaemonSet new-api/other"], "K8S-010": [NODE_EXPORTER]}
    report = run(node_exporter({EXEMPT: "K8S-009,K8S-010", REASON: "node-exporter reads host metrics"}), allowed=other)
    assert ids(report) == ["K8S-009", "POL-001"]


def test_config_allows_only_the_controls_it_names():
    report = run(node_exporter({EXEMPT: "K8S-009,K8S-010", REASON: "node-exporter reads host metrics"}),
                 allowed={"K8S-010": [NODE_EXPORTER]})
    assert ids(report) == ["K8S-009", "POL-001"]


def privileged(annotations):
    dep = fx.workload("Deployment", "gpu", app="gpu", component="app")
    dep["inputs"]["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    dep["inputs"]["metadata"]["annotations"] = annotations
    return dep


def test_privileged_cannot_be_waived_by_annotation_even_if_listed_elsewhere():
    report = run(privileged({EXEMPT: "K8S-008", REASON: "needs the GPU"}), allowed={"K8S-009": ["Deployment app/gpu"]})
    assert "K8S-008" in ids(report)
    assert any("K8S-008 can never be waived" in m for m in messages(report))


@pytest.mark.parametrize("control", sorted(NON_WAIVABLE))
def test_the_config_cannot_allow_a_non_waivable_control(control):
    with pytest.raises(ValueError, match=f"{control} can never be waived"):
        settings_from({"allowedExemptions": {control: ["Deployment app/gpu"]}})


def test_config_naming_an_unknown_control_is_an_error():
    with pytest.raises(ValueError, match="'K8S-999' is not a control id"):
        settings_from({"allowedExemptions": {"K8S-999": ["Deployment app/x"]}})


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_stack_configs_allow_no_non_waivable_control(stack):
    repo = Path(__file__).resolve().parents[2]
    doc = json.loads((repo / "policy" / "config" / f"{stack}.json").read_text())
    for entry in doc.values():
        settings_from(entry)  # raises on an unknown or non-waivable id
        assert not set(entry["allowedExemptions"]) & set(NON_WAIVABLE)
