"""checkov (issue 13.11), an independent scanner, over the synthesized objects of both stacks,
as tools/checkov_scan.py runs it: the YAML files tools.synth writes (what the cluster
receives), `checkov --skip-download --framework kubernetes`. Every finding is fixed, or skipped
with its reason: per object through `checkov.io/skip<N>: <CHECK_ID>=<reason>` on the object's
own metadata (checkov/kubernetes/kubernetes_utils.py get_skipped_checks), written only by
components.common.exemption_annotations next to the pack waiver, or stack-wide for the checks
a project control decides otherwise (checkov_scan.STACK_DECISIONS)."""
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tools import checkov_scan, synth
from validators import missing

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def checkov():
    if not checkov_scan.CHECKOV.exists():
        missing("checkov", "`make test` (or make checkov) installs it into .venv-checkov")
    return checkov_scan.CHECKOV


@pytest.fixture(scope="module", params=["dev", "prod"])
def scanned(request, checkov, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"checkov-{request.param}")
    rc, summary = synth.synth(request.param, out, with_policy=False)
    assert rc == 0, summary
    manifests = out / request.param / "manifests"
    return request.param, manifests, checkov_scan.scan(manifests, checkov)


def test_checkov_finds_nothing_in_the_stack(scanned):
    stack, _, report = scanned
    assert report["summary"]["resource_count"] > 100
    assert checkov_scan.findings(report) == [], f"{stack}: fix the object or skip with a reason"


def _objects(manifests: Path):
    for path in sorted(manifests.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path, doc


def test_every_checkov_skip_is_a_reasoned_pack_waiver(scanned):
    """A checkov skip exists only next to the policy exemption of the same object, with its reason."""
    _, manifests, report = scanned
    skips = 0
    for _, obj in _objects(manifests):
        ann = obj["metadata"].get("annotations") or {}
        for key, value in ann.items():
            if key.startswith("checkov.io/skip"):
                skips += 1
                check, _, reason = value.partition("=")
                assert re.fullmatch(r"CKV_K8S_\d+", check) and len(reason) > 20, value
                assert reason == ann["policy.new-api.io/exempt-reason"], obj["metadata"]["name"]
                assert ann["policy.new-api.io/exempt-controls"]
    skipped = report["results"]["skipped_checks"]
    assert skips == len(skipped) > 0
    assert all(s["check_result"]["suppress_comment"] for s in skipped)


def test_every_checkov_skip_is_needed_and_checkov_really_scans(scanned, checkov, tmp_path):
    """Without the skip annotations checkov fails exactly the skipped checks (no stale skip);
    a privileged pod added to the same scan is flagged (the scan sees what it should)."""
    _, manifests, report = scanned
    skipped = {(s["check_id"], s["resource"]) for s in report["results"]["skipped_checks"]}
    bare = tmp_path / "bare"
    shutil.copytree(manifests, bare)
    for path, obj in _objects(manifests):
        ann = obj["metadata"].get("annotations") or {}
        if any(k.startswith("checkov.io/skip") for k in ann):
            obj["metadata"]["annotations"] = {k: v for k, v in ann.items() if not k.startswith("checkov.io/skip")}
            target = bare / path.relative_to(manifests)
            target.write_text(yaml.safe_dump(obj))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad", "namespace": "x"},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "securityContext": {"privileged": True}}]}}
    (bare / "bad-pod.yaml").write_text(yaml.safe_dump(pod))
    failed = {(f["check_id"], f["resource"]) for f in checkov_scan.scan(bare, checkov)["results"]["failed_checks"]}
    assert ("CKV_K8S_16", "Pod.x.bad") in failed  # privileged
    assert {f for f in failed if not f[1].startswith("Pod.x.bad")} == skipped


def test_stack_wide_skips_each_follow_a_project_control():
    assert set(checkov_scan.STACK_DECISIONS) == {"CKV_K8S_11", "CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_43"}
    for reason in checkov_scan.STACK_DECISIONS.values():
        assert re.search(r"K8S-0\d\d", reason), reason


def test_checkov_skip_reason_cannot_break_checkovs_parser():
    from components import common

    with pytest.raises(ValueError, match="splits its skip annotation"):
        common.exemption_annotations(["K8S-015"], "reads a=b", checkov=["CKV_K8S_38"])
    ann = common.exemption_annotations(["K8S-009"], "host metrics", checkov=["CKV_K8S_17", "CKV_K8S_19"])
    assert ann["checkov.io/skip1"] == "CKV_K8S_17=host metrics" and ann["checkov.io/skip2"] == "CKV_K8S_19=host metrics"
