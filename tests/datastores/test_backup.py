"""Backups: the pg_dump CronJob (PVC in dev, S3 with IRSA in prod), the opt-in restore
Job, the S3 bucket and the job's IAM role; the dump and restore scripts run for real."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from components import backup as bk
from components import postgres as pg
from support import env_map, pod_spec
from tools import mockrt

from .conftest import LIVE_PASSWORDS, PG_BIN, needs_postgres, secret_value


def _cron(stack):
    return stack.k8s("CronJob", "new-api-db-backup")


def _job_pod(stack):
    return _cron(stack)["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _aws(prod, typ, name):
    return prod.get(f"aws:s3/{typ}", name).inputs


# --------------------------------------------------------------------------- CronJob

def test_backup_runs_daily_at_0200_utc_and_never_overlaps(dev):
    spec = _cron(dev)["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["concurrencyPolicy"]) == ("0 2 * * *", "Etc/UTC", "Forbid")


def test_backup_job_is_bounded_in_time_retries_and_history(dev):
    spec = _cron(dev)["spec"]
    job = spec["jobTemplate"]["spec"]
    assert spec["startingDeadlineSeconds"] == 3600 and job["activeDeadlineSeconds"] == 10800
    assert job["backoffLimit"] == 2 and _job_pod(dev)["restartPolicy"] == "Never"
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 5)


def test_dump_is_custom_format_without_extra_gzip(dev):
    script = _job_pod(dev)["containers"][0]["command"][-1]
    assert "pg_dump --format=custom" in script and "gzip" not in script
    assert "pg_restore --list" in script


def test_dump_uses_libpq_env_with_the_password_from_a_secret(dev):
    env = env_map(_job_pod(dev)["containers"][0])
    assert env["PGHOST"]["value"] == "new-api-postgres.new-api.svc" and env["PGUSER"]["value"] == pg.BACKUP_USER
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "new-api-db-backup-pg", "key": "password"}
    assert env["PGSSLMODE"]["value"] == "disable"


def test_dev_dumps_go_to_a_pvc_pruned_after_the_retention(dev):
    pod = _job_pod(dev)
    env = env_map(pod["containers"][0])
    assert (env["PRUNE"]["value"], env["RETENTION_DAYS"]["value"]) == ("true", "7")
    claim = next(v for v in pod["volumes"] if v["name"] == "backups")["persistentVolumeClaim"]["claimName"]
    assert dev.k8s("PersistentVolumeClaim", claim)["spec"]["resources"]["requests"]["storage"] == "2Gi"


def test_backup_job_has_its_own_service_account_without_token(dev):
    pod = _job_pod(dev)
    assert pod["serviceAccountName"] == "new-api-db-backup" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_cronjob_names_the_database_it_backs_up(dev):
    assert _cron(dev)["metadata"]["annotations"]["policy.new-api.io/backup-of"] == "new-api-postgres"


def test_prod_dumps_upload_to_s3_with_the_irsa_role(prod):
    pod = _job_pod(prod)
    assert [c["name"] for c in pod["initContainers"]] == ["dump"] and pod["containers"][0]["name"] == "upload"
    env = env_map(pod["containers"][0])
    assert env["BUCKET"]["value"] == "new-api-backups-0123abcd" and env["PREFIX"]["value"] == "database-backups/"
    sa = prod.k8s("ServiceAccount", "new-api-db-backup")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == "arn:aws:mock:::role/new-api-backups-job"
    assert not any("AWS_SECRET_ACCESS_KEY" in e or "AWS_ACCESS_KEY_ID" in e for e in env)


def test_prod_dump_connects_to_rds_with_tls(prod):
    env = env_map(_job_pod(prod)["initContainers"][0])
    assert env["PGSSLMODE"]["value"] == "verify-full" and env["PGSSLROOTCERT"]["value"] == pg.CA_FILE
    assert env["PGHOST"]["value"] == "new-api-postgres-primary.mock.internal"


def test_backup_network_policy_allows_only_the_database(dev):
    spec = dev.k8s("NetworkPolicy", "new-api-db-backup")["spec"]
    assert spec["podSelector"]["matchLabels"] == bk.pod_selector("new-api-db-backup")
    assert spec["ingress"] == [] and spec["egress"] == [{
        "to": [{"podSelector": {"matchLabels": pg.pod_selector("new-api-postgres")}}],
        "ports": [{"protocol": "TCP", "port": 5432}]}]


def test_prod_backup_network_policy_adds_https_for_s3_but_no_private_range(prod):
    """The addresses themselves are evaluated in test_egress.py."""
    egress = prod.k8s("NetworkPolicy", "new-api-db-backup")["spec"]["egress"]
    assert egress[-1] == {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"]}}],
        "ports": [{"protocol": "TCP", "port": 443}]}


def test_prod_backup_pvc_is_protected_in_cluster(prod_in_cluster):
    assert prod_in_cluster.get("kubernetes:core/v1:PersistentVolumeClaim", "new-api-db-backup-data").protect


# --------------------------------------------------------------------------- restore

def test_no_restore_job_exists_by_default(dev, prod):
    for stack in (dev, prod):
        assert not [j for j in stack.k8s_all("Job") if "restore" in j["metadata"]["name"]]


def test_restore_job_is_created_only_for_a_named_dump(dev_restore):
    job = next(j for j in dev_restore.k8s_all("Job") if "restore" in j["metadata"]["name"])
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert env_map(c)["DUMP"]["value"] == "/backups/newapi-dev-20260101T020000Z.dump"
    assert "--single-transaction" in c["command"][-1] and job["spec"]["backoffLimit"] == 0


def test_restore_pods_are_admitted_by_the_database_policy(dev_restore):
    job = next(j for j in dev_restore.k8s_all("Job") if "restore" in j["metadata"]["name"])
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert bk.pod_selector("new-api-db-backup").items() <= labels.items()


# --------------------------------------------------------------------------- S3 bucket and IAM

def test_backup_bucket_blocks_all_public_access(prod):
    pab = _aws(prod, "bucketPublicAccessBlock:BucketPublicAccessBlock", "new-api-backups-public-access")
    assert all(pab[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                        "restrictPublicBuckets"))


def test_backup_bucket_encrypts_with_its_kms_key_and_versions(prod):
    sse = _aws(prod, "bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
               "new-api-backups-sse")["rules"][0]["applyServerSideEncryptionByDefault"]
    assert sse == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": "arn:aws:mock:::key/new-api-backups-kms"}
    versioning = _aws(prod, "bucketVersioning:BucketVersioning", "new-api-backups-versioning")
    assert versioning["versioningConfiguration"]["status"] == "Enabled"


def test_backup_bucket_ignores_acls_and_denies_plain_http(prod):
    owner = _aws(prod, "bucketOwnershipControls:BucketOwnershipControls", "new-api-backups-ownership")
    assert owner["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    policy = json.loads(_aws(prod, "bucketPolicy:BucketPolicy", "new-api-backups-policy")["policy"])
    deny = policy["Statement"][0]
    assert (deny["Effect"], deny["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})


def test_backup_bucket_lifecycle_follows_the_backup_matrix(prod):
    rules = {r["filter"]["prefix"]: r for r in
             _aws(prod, "bucketLifecycleConfiguration:BucketLifecycleConfiguration", "new-api-backups-lifecycle")["rules"]}
    assert {p: r["expiration"]["days"] for p, r in rules.items() if "expiration" in r} == \
        {"database-backups/": 30, "logs/": 180}
    # Elasticsearch's SLM expires its own snapshots; the bucket only drops old versions.
    snapshots = rules["elasticsearch-snapshots/"]
    assert "expiration" not in snapshots and snapshots["noncurrentVersionExpiration"]["noncurrentDays"] == 30


def test_backup_bucket_access_is_logged(prod):
    logging = _aws(prod, "bucketLogging:BucketLogging", "new-api-backups-logging")
    assert logging["targetBucket"] == "new-api-backups-access-logs-id"


def test_irsa_role_trusts_only_the_backup_service_account(prod):
    trust = json.loads(prod.get("aws:iam/role:Role", "new-api-backups-job").inputs["assumeRolePolicy"])
    cond = trust["Statement"][0]["Condition"]["StringEquals"]
    issuer = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
    assert cond == {f"{issuer}:sub": "system:serviceaccount:new-api:new-api-db-backup", f"{issuer}:aud": "sts.amazonaws.com"}


def test_job_policy_scopes_s3_to_the_prefix_and_kms_to_the_key(prod):
    doc = json.loads(prod.get("aws:iam/rolePolicy:RolePolicy", "new-api-backups-job").inputs["policy"])
    resources = {s["Sid"]: s["Resource"] for s in doc["Statement"]}
    assert resources == {"PutDumps": "arn:aws:s3:::new-api-backups-0123abcd/database-backups/*",
                         "UseBucketKey": "arn:aws:mock:::key/new-api-backups-kms"}
    assert not any(s["Action"] in ("*", "s3:*", "kms:*") for s in doc["Statement"])


@pytest.mark.parametrize("typ,name", [("aws:s3/bucket:Bucket", "new-api-backups"),
                                      ("aws:kms/key:Key", "new-api-backups-kms")])
def test_prod_backup_bucket_and_key_are_protected(prod, typ, name):
    assert prod.get(typ, name).protect


def test_bucket_component_validates_retention_before_registering():
    result = mockrt.run(lambda: bk.BackupBucket("b", {"retention_days": 0}))
    assert "retention_days: must be between 1 and 3650" in str(result.error)
    assert [r for r in result.registrations if r.custom] == []


# --------------------------------------------------------------------------- real scripts

#: Dumps run as the read-only backup role, restores as the owner (the app role), over
#: verify-full like the CronJob's libpq environment (components/backup.py).
BACKUP_ROLE = {"PGUSER": pg.BACKUP_USER, "PGPASSWORD": LIVE_PASSWORDS["BACKUP_PASSWORD"]}
OWNER_ROLE = {"PGUSER": "newapi", "PGPASSWORD": LIVE_PASSWORDS["APP_PASSWORD"]}


def _run_script(live, script: str, role: dict = BACKUP_ROLE, **env) -> subprocess.CompletedProcess:
    from .conftest import _as_postgres

    return subprocess.run(_as_postgres(["/bin/sh", "-c", script]), capture_output=True, text=True, timeout=60,
                          env=live.env(PGHOST="localhost", PGDATABASE="newapi", PGSSLMODE="verify-full",
                                       PGSSLROOTCERT=str(live.tls["ca"]), **role, **env))


@pytest.fixture
def backup_dir(live_postgres):
    d = live_postgres.base / f"backups-{time.time_ns()}"
    d.mkdir()
    os.chmod(d, 0o777)
    return d


@needs_postgres
def test_dump_script_writes_a_verified_custom_archive(live_postgres, backup_dir):
    out = _run_script(live_postgres, bk.DUMP_SCRIPT, BACKUP_DIR=str(backup_dir), BACKUP_PREFIX="newapi-test",
                      RETENTION_DAYS="30", PRUNE="true")
    assert out.returncode == 0, out.stderr
    name = (backup_dir / ".latest").read_text().strip()
    assert name.startswith("newapi-test-") and name.endswith("Z.dump")
    assert (backup_dir / name).read_bytes()[:5] == b"PGDMP"


@needs_postgres
def test_dump_script_prunes_only_dumps_older_than_the_retention(live_postgres, backup_dir):
    old, recent = backup_dir / "newapi-test-20200101T020000Z.dump", backup_dir / "newapi-test-recent.dump"
    for f, age_days in ((old, 31), (recent, 29)):
        f.write_text("x")
        t = time.time() - age_days * 86400
        os.utime(f, (t, t))
    out = _run_script(live_postgres, bk.DUMP_SCRIPT, BACKUP_DIR=str(backup_dir), BACKUP_PREFIX="newapi-test",
                      RETENTION_DAYS="30", PRUNE="true")
    assert out.returncode == 0, out.stderr
    assert not old.exists() and recent.exists()


@needs_postgres
def test_restore_script_brings_back_the_dumped_data(live_postgres, backup_dir):
    app = {"PGHOST": "127.0.0.1", "PGUSER": "newapi", "PGPASSWORD": "app-pass-1234"}
    live_postgres.psql("DROP TABLE IF EXISTS tokens; CREATE TABLE tokens(id int); INSERT INTO tokens VALUES (7)",
                       db="newapi", **app)
    dump = _run_script(live_postgres, bk.DUMP_SCRIPT, BACKUP_DIR=str(backup_dir), BACKUP_PREFIX="newapi-test",
                       RETENTION_DAYS="30", PRUNE="false")
    assert dump.returncode == 0, dump.stderr
    live_postgres.psql("UPDATE tokens SET id = 8; CREATE TABLE junk(id int)", db="newapi", **app)
    name = (backup_dir / ".latest").read_text().strip()
    out = _run_script(live_postgres, bk.RESTORE_SCRIPT, OWNER_ROLE, DUMP=str(backup_dir / name))
    assert out.returncode == 0, out.stderr
    assert live_postgres.psql("SELECT id FROM tokens", db="newapi", **app) == "7"


def test_prod_dump_scratch_is_a_volume_not_node_ephemeral_storage(prod):
    """A 20Gi emptyDir would be evicted at the containers' 1Gi ephemeral limits: the dump's
    scratch space is a generic ephemeral volume of the configured size instead."""
    volumes = {v["name"]: v for v in pod_spec(_cron(prod)["spec"]["jobTemplate"])["volumes"]}
    scratch = volumes["scratch"]
    assert "emptyDir" not in scratch
    assert scratch["ephemeral"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"] == "20Gi"
