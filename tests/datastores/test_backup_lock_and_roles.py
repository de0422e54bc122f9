"""Issue 13 item 9: backups can be neither deleted nor read by the writer. The registered
AWS resources' inputs are read as IAM and S3 read them:

- IAM policy evaluation (docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
  a request is allowed when an Allow statement matches its action and resource (``Action``
  and ``Resource`` a string or a list; ``*`` and ``?`` wildcards, actions case-insensitive)
  and no Deny does; otherwise it is implicitly denied.
- KMS key policies (docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html):
  the account principal ``arn:aws:iam::<account>:root`` in the key policy is what lets IAM
  policies (and so the account's administrators) manage the key; keeping it is the
  lockout safety check.
- S3 Object Lock (docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-configure.html):
  needs versioning; can be enabled on an existing bucket with PutObjectLockConfiguration.
"""

import fnmatch
import json

import pytest

from components import backup as bk
from support import Stack, override
from tools import mockrt

BUCKET = "arn:aws:s3:::new-api-backups-0123abcd"
DUMP = f"{BUCKET}/database-backups/newapi-prod-20260101T020000Z.dump"


def _list(v) -> list:
    return v if isinstance(v, list) else [v]


def allowed(doc: dict, action: str, resource: str, principal: str | None = None) -> bool:
    """IAM's decision for one request (conditions are not evaluated: a matching Allow counts)."""
    def match(st) -> bool:
        if principal is not None:
            arns = _list((st.get("Principal") or {}).get("AWS", [])) if isinstance(st.get("Principal"), dict) else \
                _list(st.get("Principal"))
            if principal not in arns and "*" not in arns:
                return False
        actions = [a.lower() for a in _list(st.get("Action", []))]
        return any(fnmatch.fnmatchcase(action.lower(), a) for a in actions) and \
            any(fnmatch.fnmatchcase(resource, r) for r in _list(st.get("Resource", [])))
    statements = _list(doc["Statement"])
    if any(st["Effect"] == "Deny" and match(st) for st in statements):
        return False
    return any(st["Effect"] == "Allow" and match(st) for st in statements)


def _role_policy(stack, name: str) -> dict:
    return json.loads(stack.get("aws:iam/rolePolicy:RolePolicy", name).inputs["policy"])


@pytest.mark.parametrize("action,ok", [("s3:PutObject", True), ("s3:GetObject", False),
                                       ("s3:GetObjectVersion", False), ("s3:DeleteObject", False),
                                       ("s3:DeleteObjectVersion", False), ("s3:PutObjectRetention", False),
                                       ("s3:BypassGovernanceRetention", False), ("s3:PutObjectLegalHold", False)])
def test_backup_job_role_only_puts(prod, action, ok):
    """Old code: the job role had s3:GetObject (and ListBucket): a stolen job token read every dump."""
    assert allowed(_role_policy(prod, "new-api-backups-job"), action, DUMP) is ok
    assert not allowed(_role_policy(prod, "new-api-backups-job"), "s3:ListBucket", BUCKET)


@pytest.mark.parametrize("action,ok", [("s3:GetObject", True), ("s3:GetObjectVersion", True),
                                       ("s3:PutObject", False), ("s3:DeleteObject", False),
                                       ("s3:PutObjectRetention", False)])
def test_restore_role_only_reads(prod, action, ok):
    assert allowed(_role_policy(prod, "new-api-backups-restore"), action, DUMP) is ok


def test_restore_role_trusts_only_the_restore_service_account(prod):
    trust = json.loads(prod.get("aws:iam/role:Role", "new-api-backups-restore").inputs["assumeRolePolicy"])
    cond = trust["Statement"][0]["Condition"]["StringEquals"]
    assert [v for k, v in cond.items() if k.endswith(":sub")] == \
        ["system:serviceaccount:new-api:new-api-db-backup-restore"]


def _key_policy(stack) -> dict:
    reg = stack.get("aws:kms/keyPolicy:KeyPolicy", "new-api-backups-kms-policy")
    assert not reg.inputs.get("bypassPolicyLockoutSafetyCheck")
    return json.loads(reg.inputs["policy"])


def test_backup_key_policy_names_the_roles_that_use_it(prod):
    doc = _key_policy(prod)
    role = lambda n: f"arn:aws:mock:::role/new-api-backups-{n}"  # noqa: E731  (the mock's role ARNs)
    assert allowed(doc, "kms:GenerateDataKey", "*", role("job"))
    assert allowed(doc, "kms:Decrypt", "*", role("restore"))
    assert not allowed(doc, "kms:GenerateDataKey", "*", role("restore"))
    assert allowed(doc, "kms:GenerateDataKey", "*", role("es-snapshots"))
    assert not any(p in ("*", {"AWS": "*"}) for p in (st.get("Principal") for st in doc["Statement"]))


def test_backup_key_keeps_the_account_as_administrator_but_not_as_a_user(prod):
    """Lockout safety: the account can always fix the key policy; it cannot decrypt dumps."""
    doc = _key_policy(prod)
    root = "arn:aws:iam::123456789012:root"
    assert allowed(doc, "kms:PutKeyPolicy", "*", root) and allowed(doc, "kms:ScheduleKeyDeletion", "*", root)
    assert not allowed(doc, "kms:Decrypt", "*", root) and not allowed(doc, "kms:GenerateDataKey", "*", root)
    key = prod.get("aws:kms/key:Key", "new-api-backups-kms").inputs
    assert "policy" not in key  # one owner of the policy: the KeyPolicy resource


def test_backup_bucket_has_object_lock_with_the_backup_retention(prod):
    reg = prod.get("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
                   "new-api-backups-object-lock")
    assert reg.inputs["objectLockEnabled"] == "Enabled"
    assert reg.inputs["rule"]["defaultRetention"] == {"mode": "COMPLIANCE", "days": 30}
    versioning = prod.get("aws:s3/bucketVersioning:BucketVersioning", "new-api-backups-versioning")
    assert versioning.urn in reg.dependencies


def test_object_lock_does_not_replace_an_existing_bucket(prod):
    """objectLockEnabled on the Bucket itself forces a new bucket (and a protected one
    cannot be replaced): the lock comes from its own resource instead."""
    assert "objectLockEnabled" not in prod.get("aws:s3/bucket:Bucket", "new-api-backups").inputs


def test_upload_sends_a_checksum_object_lock_requires(prod):
    assert "--checksum-algorithm CRC32" in bk.UPLOAD_SCRIPT


@pytest.fixture(scope="module")
def prod_restore():
    return Stack(mockrt.run_stack("prod", overrides=override(
        "prod", ("database.restore", {"objectKey": "newapi-prod-20260101T020000Z.dump"}))))


def test_restore_job_runs_with_the_read_only_role(prod_restore):
    job = next(j for j in prod_restore.k8s_all("Job") if j["metadata"]["name"].startswith("new-api-db-backup-restore"))
    sa_name = job["spec"]["template"]["spec"]["serviceAccountName"]
    sa = prod_restore.k8s("ServiceAccount", sa_name)
    assert sa_name == "new-api-db-backup-restore"
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == "arn:aws:mock:::role/new-api-backups-restore"
    cron = prod_restore.k8s("CronJob", "new-api-db-backup")
    assert cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"] == "new-api-db-backup"
