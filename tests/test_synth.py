"""The offline synth: deterministic, schema-valid, and a diff a pull request can carry."""

import filecmp
import json
from pathlib import Path

import pytest
import yaml

from tools import synth


@pytest.fixture(scope="module")
def twice(tmp_path_factory):
    """Each stack synthesized twice into separate directories."""
    roots = [tmp_path_factory.mktemp("synth-a"), tmp_path_factory.mktemp("synth-b")]
    statuses = {}
    for root in roots:
        for stack in ("dev", "prod"):
            statuses[(root, stack)], _ = synth.synth(stack, root, with_policy=False)
    return roots, statuses


def _files(root: Path) -> list:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_synth_is_byte_identical_across_runs(twice, stack):
    (a, b), _ = twice
    files = _files(a / stack)
    assert files == _files(b / stack) and len(files) > 20
    _, mismatch, errors = filecmp.cmpfiles(a / stack, b / stack, [str(f) for f in files], shallow=False)
    assert mismatch == [] and errors == []


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_manifest_is_valid_against_the_strict_kubernetes_schema(twice, stack):
    (a, _), statuses = twice
    manifests = sorted((a / stack / "manifests").rglob("*.yaml"))
    assert manifests
    for path in manifests:
        obj = yaml.safe_load(path.read_text())
        assert synth.validate_manifest(obj) is None, path
    assert statuses[(a, stack)] == 0


def test_schema_validation_catches_an_unknown_field():
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"selector": {}, "template": {}, "replica": 3}}
    assert "replica" in synth.validate_manifest(bad)


def test_crd_validation_catches_a_bad_custom_resource():
    bad = {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "x"},
           "spec": {"acme": {"server": "https://x", "solvers": [{"http01": {"ingres": {}}}]}}}
    assert synth.validate_manifest(bad) is not None


def test_integers_stay_integers_in_manifests(twice):
    (a, _), _ = twice
    hpa = yaml.safe_load((a / "prod" / "manifests" / "new-api" / "HorizontalPodAutoscaler-new-api.yaml").read_text())
    assert isinstance(hpa["spec"]["minReplicas"], int) and hpa["spec"]["minReplicas"] == 3


def test_inventory_records_parent_dependencies_and_protect(twice):
    (a, _), _ = twice
    inventory = json.loads((a / "prod" / "resources.json").read_text())
    by_name = {(r["type"], r["name"]): r for r in inventory}
    ns = by_name[("kubernetes:core/v1:Namespace", "new-api-ns")]
    assert ns["protect"] is True and ns["parent"].endswith("RestrictedNamespace::new-api-ns")
    serving = by_name[("kubernetes:apps/v1:Deployment", "new-api")]
    assert any(d.endswith("Deployment::new-api-master") for d in serving["dependencies"])
    secret = by_name[("kubernetes:core/v1:Secret", "new-api-env")]
    assert secret["secretPaths"] == ["stringData"]
    assert set(secret["inputs"]["stringData"].values()) == {"[secret]"}


def test_summary_reports_counts_and_requests(twice):
    (a, _), _ = twice
    text = (a / "dev" / "summary.md").read_text()
    assert "requests at minimum scale: CPU" in text and "| `kubernetes:apps/v1:Deployment` |" in text


def test_diff_lists_added_removed_and_changed_fields(twice):
    (a, _), _ = twice
    inventory = json.loads((a / "dev" / "resources.json").read_text())
    changed = json.loads(json.dumps(inventory))
    hpa = next(r for r in changed if r["type"].endswith("HorizontalPodAutoscaler"))
    hpa["inputs"]["spec"]["maxReplicas"] = 5
    removed = changed.pop(0)
    text = synth.diff(inventory, changed)
    assert "1 to change" in text and "1 to delete" in text
    assert "`inputs.spec.maxReplicas`: 2 => 5" in text
    assert removed["name"] in text
    assert synth.diff(inventory, inventory).endswith("No changes.\n")


def test_a_bad_config_writes_nothing_and_exits_2(tmp_path, monkeypatch):
    from tools import mockrt

    real = mockrt.run_stack
    monkeypatch.setattr(mockrt, "run_stack", lambda s: real(s, {"domain": "bad domain"}))
    status, text = synth.synth("dev", tmp_path)
    assert status == 2 and "new-api:domain" in text
    assert not (tmp_path / "dev").exists()


def test_the_readme_command_renders_dev_and_diffs_cleanly(tmp_path):
    """`python -m tools.synth dev` (what `make synth` runs) as a user runs it."""
    import subprocess
    import sys

    from tools.mockrt import REPO

    first = subprocess.run([sys.executable, "-m", "tools.synth", "dev", "--out", str(tmp_path / "a")],
                           cwd=REPO, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "policy: 0 mandatory" in first.stdout
    again = subprocess.run([sys.executable, "-m", "tools.synth", "dev", "--out", str(tmp_path / "b"),
                            "--diff", str(tmp_path / "a" / "dev")], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0 and "No changes." in again.stdout
    assert (tmp_path / "b" / "dev" / "policy-report.md").exists()
