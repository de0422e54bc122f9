"""A restorable copy of the database before the master runs a new New API version, and no
silent downgrade (issue 16, upgrades; components/upgrade_snapshot.py, docs/runbook-upgrade.md).

The engine orders a resource after every resource whose outputs feed its inputs (Pulumi
docs, "Inputs and outputs": dependencies are tracked through outputs); the master's
``new-api.io/pre-upgrade-snapshot`` annotation is such an input, so the registrations'
dependencies below are the order `pulumi up` follows."""

import pytest

from components import upgrade_snapshot
from support import Stack, override
from tools import mockrt, synth

CURRENT = "v1.0.0-rc.25"  # images.NEW_API, what both stack files run
NEXT = "v1.0.0"
MASTER = "kubernetes:apps/v1:Deployment"
SNAPSHOT_TYPES = ("aws:rds/snapshot:Snapshot", "kubernetes:postgresql.cnpg.io/v1:Backup", "kubernetes:batch/v1:Job")


def run(stack: str, image_tag: str, deployed: str = CURRENT, *changes) -> mockrt.RunResult:
    return mockrt.run_stack(stack, override(stack, ("app.image", f"calciumion/new-api:{image_tag}"),
                                            ("app.deployedVersion", deployed), *changes))


def pre_upgrade(result: mockrt.RunResult) -> list:
    assert result.error is None, result.error
    return [r for r in result.registrations if r.type in SNAPSHOT_TYPES and "pre-upgrade" in r.name]


def master(result: mockrt.RunResult) -> mockrt.Registration:
    return next(r for r in result.registrations if r.type == MASTER and r.name == "new-api-master")


CNPG = [("database.backend", "cloudnative-pg"),
        ("backup.s3", {"bucket": "new-api-dev-backups", "roleArn": "arn:aws:iam::123456789012:role/new-api-backup"})]


@pytest.mark.parametrize("stack,changes,typ,name", [
    ("prod", [], "aws:rds/snapshot:Snapshot", "new-api-postgres-pre-upgrade-v1-0-0"),
    ("dev", CNPG, "kubernetes:postgresql.cnpg.io/v1:Backup", "new-api-postgres-pre-upgrade-v1-0-0"),
    ("dev", [], "kubernetes:batch/v1:Job", "new-api-db-backup-pre-upgrade-v1-0-0"),
], ids=["aws", "cloudnative-pg", "kubernetes"])
def test_an_image_bump_takes_a_copy_and_the_master_waits_for_it(stack, changes, typ, name):
    result = run(stack, NEXT, CURRENT, *changes)
    copies = pre_upgrade(result)
    assert [(r.type, r.name) for r in copies] == [(typ, name)]
    assert copies[0].urn in master(result).dependencies
    annotations = master(result).inputs["metadata"]["annotations"]
    assert upgrade_snapshot.SNAPSHOT_ANNOTATION in annotations
    if typ != "kubernetes:batch/v1:Job":
        assert copies[0].retain_on_delete, "the copy outlives its place in the program"


@pytest.mark.parametrize("stack,changes", [("prod", []), ("dev", CNPG), ("dev", [])],
                         ids=["aws", "cloudnative-pg", "kubernetes"])
def test_an_unchanged_image_adds_nothing(stack, changes):
    result = run(stack, CURRENT, CURRENT, *changes)
    assert pre_upgrade(result) == []
    baseline = mockrt.run_stack(stack, override(stack, *changes))
    assert sorted(r.urn for r in result.registrations) == sorted(r.urn for r in baseline.registrations)
    assert sorted(master(result).dependencies) == sorted(master(baseline).dependencies)


def test_a_stack_that_never_ran_new_api_takes_no_copy():
    result = mockrt.run_stack("prod", override("prod", ("app.image", f"calciumion/new-api:{NEXT}")))
    assert pre_upgrade(result) == []


def test_the_rds_snapshot_is_named_after_the_version_and_the_instance():
    snap = pre_upgrade(run("prod", NEXT))[0]
    assert snap.inputs["dbSnapshotIdentifier"].endswith("-pre-upgrade-v1-0-0")
    assert snap.inputs["tags"] == {"purpose": "pre-upgrade", "new-api-version": NEXT}


def test_the_cnpg_backup_is_awaited_until_completed_and_schema_valid():
    backup = pre_upgrade(run("dev", NEXT, CURRENT, *CNPG))[0]
    obj = synth.manifest(backup.inputs)
    assert obj["spec"]["cluster"] == {"name": "new-api-postgres"}
    assert obj["metadata"]["annotations"]["pulumi.com/waitFor"] == "jsonpath={.status.phase}=completed"
    assert synth.validate_manifest(obj) is None


def test_the_dump_job_is_the_backup_cronjob_run_once_without_pruning():
    result = run("dev", NEXT)
    stack = Stack(result)
    job = stack.k8s("Job", "new-api-db-backup-pre-upgrade-v1-0-0")
    cron = stack.k8s("CronJob", "new-api-db-backup")["spec"]["jobTemplate"]["spec"]
    dump = job["spec"]["template"]["spec"]["containers"][0]
    assert dump["command"] == cron["template"]["spec"]["containers"][0]["command"]
    env = {e["name"]: e.get("value") for e in dump["env"]}
    assert env["BACKUP_PREFIX"] == "newapi-dev-pre-upgrade-v1-0-0" and env["PRUNE"] == "false"
    assert job["spec"]["template"]["spec"]["volumes"] == cron["template"]["spec"]["volumes"]
    assert synth.validate_manifest(job) is None


def test_the_synth_diff_of_an_image_bump_shows_the_copy():
    before = synth.inventory(mockrt.run_stack("prod", override("prod", ("app.deployedVersion", CURRENT))))
    after = synth.inventory(run("prod", NEXT))
    text = synth.diff(before, after)
    assert "new-api-postgres-pre-upgrade-v1-0-0" in text and "new-api.io/pre-upgrade-snapshot" in text, text


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_a_downgrade_is_refused_naming_the_key_and_the_runbook(stack):
    result = run(stack, "v0.9.0", CURRENT)
    message = str(result.error)
    assert f"Pulumi.{stack}.yaml" in message and 'new-api:app.image = "calciumion/new-api:v0.9.0"' in message
    assert "older than app.deployedVersion v1.0.0-rc.25" in message
    assert "new-api:app.allowDowngrade: true" in message and "docs/runbook-upgrade.md" in message
    assert result.registrations == []


def test_a_release_candidate_is_older_than_its_release():
    result = run("prod", "v1.0.0-rc.24", CURRENT)
    assert "older than app.deployedVersion" in str(result.error)
    assert run("prod", "v1.0.0-rc.26", CURRENT).error is None


def test_an_allowed_downgrade_deploys_and_takes_a_copy_of_the_newer_schema():
    result = run("prod", "v0.9.0", CURRENT, ("app.allowDowngrade", True))
    assert [r.name for r in pre_upgrade(result)] == ["new-api-postgres-pre-upgrade-v0-9-0"]


@pytest.mark.parametrize("a,b", [("v0.9.0", "v0.10.0"), ("v1.0.0-rc.9", "v1.0.0-rc.25"), ("v1.0.0-rc.25", "v1.0.0"),
                                 ("1.2.3", "v1.2.4"), ("v1.0.0-alpha", "v1.0.0-alpha.1"), ("v1.0.0-alpha.1", "v1.0.0-beta")])
def test_versions_order_as_semver(a, b):
    """semver.org §11: numeric parts numerically, a pre-release before its release."""
    assert upgrade_snapshot.version_key(a) < upgrade_snapshot.version_key(b)


def test_a_bad_deployed_version_is_refused():
    result = run("prod", NEXT, "latest")
    assert "new-api:app.deployedVersion" in str(result.error)


def test_numeric_pre_release_parts_sort_before_alphanumeric_ones():
    """semver.org §11.4.3: numeric identifiers have lower precedence than alphanumeric ones."""
    assert upgrade_snapshot.version_key("v1.0.0-1") < upgrade_snapshot.version_key("v1.0.0-alpha")
    assert upgrade_snapshot.version_key("v1.0.0-rc.1") < upgrade_snapshot.version_key("v1.0.0-rc.a")


@pytest.mark.parametrize("bad", ["latest", "v1.0", "sha256:abc", ""])
def test_a_tag_that_is_not_a_version_cannot_be_ordered(bad):
    with pytest.raises(ValueError, match="is not a version"):
        upgrade_snapshot.version_key(bad)
