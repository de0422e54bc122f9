"""Backups of the data tier (seed 000 backup matrix: core database daily full, kept 30
days, local + cloud; logs archived 180 days).

- ``BackupBucket``: the S3 bucket for dumps and archives (public access blocked,
  SSE-KMS with a rotated key, versioning, TLS only, no ACLs, access logging, lifecycle
  per the matrix) and, given the cluster's OIDC provider, the IRSA role of the backup
  job (least privilege: its prefix, its key; no static keys anywhere).
- ``PostgresBackup``: a pg_dump CronJob (custom format, verified, pruned) to a PVC or
  to S3, and a restore Job created only when a dump is named in config.

Point-in-time recovery (the matrix's "hourly incremental") is not something pg_dump can
do; it comes from the backend: RDS automated backups, or CloudNativePG's WAL archive.
"""


import hashlib
import json
from typing import Optional, Sequence, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from . import aws_common, common, images, postgres_base, upgrade_snapshot
from .app import EgressTargetArgs

APP = "postgres-backup"
DUMP_PREFIX = "database-backups/"
LOG_PREFIX = "logs/"
SNAPSHOT_PREFIX = "elasticsearch-snapshots/"

#: pg_dump in custom format: compressed already (no extra gzip, seed notes §5.8 #60),
#: restorable selectively, and checked with ``pg_restore --list`` before it counts.
#: On a PVC, dumps older than RETENTION_DAYS are deleted (S3 uses a lifecycle rule).
DUMP_SCRIPT = r"""set -eu
ts=$(date -u +%Y%m%dT%H%M%SZ)
file="${BACKUP_PREFIX}-${ts}.dump"
out="${BACKUP_DIR}/${file}"
pg_dump --format=custom --compress=6 --no-password --file="${out}.partial"
pg_restore --list "${out}.partial" > /dev/null
mv "${out}.partial" "${out}"
echo "${file}" > "${BACKUP_DIR}/.latest"
echo "wrote ${out} ($(du -h "${out}" | cut -f1))"
if [ "${PRUNE}" = "true" ]; then
  find "${BACKUP_DIR}" -maxdepth 1 -type f -name "${BACKUP_PREFIX}-*.dump" \
    -mmin +"$((RETENTION_DAYS * 1440))" -print -delete
  find "${BACKUP_DIR}" -maxdepth 1 -type f -name "*.partial" -mmin +1440 -delete
fi
"""

UPLOAD_SCRIPT = r"""set -eu
file=$(cat /scratch/.latest)
aws s3 cp "/scratch/${file}" "s3://${BUCKET}/${PREFIX}${file}" --checksum-algorithm CRC32 --only-show-errors
echo "uploaded s3://${BUCKET}/${PREFIX}${file}"
"""

DOWNLOAD_SCRIPT = r"""set -eu
aws s3 cp "s3://${BUCKET}/${PREFIX}${OBJECT_KEY}" /scratch/restore.dump --only-show-errors
"""

#: Replaces the objects of the dump in one transaction (all or nothing). Run it with the
#: app scaled to zero (docs/runbook-database-restore.md).
RESTORE_SCRIPT = r"""set -eu
pg_restore --list "${DUMP}" > /dev/null
pg_restore --clean --if-exists --no-owner --no-privileges --single-transaction --exit-on-error \
  --no-password --dbname="${PGDATABASE}" "${DUMP}"
echo "restored ${DUMP} into ${PGDATABASE}"
"""


def pod_selector(name: str) -> dict:
    """Labels of every pod of a ``PostgresBackup`` (dump and restore): the database's
    NetworkPolicy admits these."""
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/instance": name}


# =========================================================================== BackupBucket


class IrsaArgs(TypedDict, total=False):
    oidc_provider_arn: str
    """ARN of the EKS cluster's IAM OIDC provider."""
    oidc_issuer: str
    """Its issuer without scheme (oidc.eks.<region>.amazonaws.com/id/<id>)."""
    namespace: pulumi.Input[str]
    """Namespace of the backup ServiceAccount."""
    service_account: str
    """Name of the backup ServiceAccount (a PostgresBackup's is named like the component)."""


class BackupBucketArgs(TypedDict, total=False):
    retention_days: int
    """Days a database dump is kept (default 30, the backup matrix)."""
    log_retention_days: int
    """Days an archived log is kept under logs/ (default 180, the backup matrix)."""
    irsa: IrsaArgs
    """Create the backup job's IAM role for this ServiceAccount (optional)."""
    restore_irsa: IrsaArgs
    """Create the restore Job's IAM role (read-only) for this ServiceAccount (optional)."""
    object_lock_mode: str
    """S3 Object Lock default retention mode, ``COMPLIANCE`` (default: nobody, root included,
    deletes or overwrites a version before ``retention_days``) or ``GOVERNANCE``."""
    snapshot_irsa: IrsaArgs
    """Create Elasticsearch's IAM role for its S3 snapshot repository under
    ``elasticsearch-snapshots/`` for this ServiceAccount (optional)."""
    protect: bool
    """Protect the bucket and key (prod)."""


class BackupBucket(pulumi.ComponentResource):
    """An S3 bucket for database dumps (``database-backups/``, 30 days) and log archives
    (``logs/``, 180 days), per the backup matrix (seed 000), hardened per AWS FSBP: all
    four public-access blocks, SSE-KMS under a rotated customer-managed key (bucket key
    on), versioning (a deleted or overwritten dump stays recoverable until the lifecycle
    expires it), ``BucketOwnerEnforced`` (no ACLs), a bucket policy denying any request
    without TLS, and server access logs in a second, equally locked bucket.

    With ``irsa``, also the IAM role the backup ServiceAccount assumes: put/get under
    ``database-backups/`` only, list that prefix, and ``kms:GenerateDataKey``/``kms:Decrypt``
    on this bucket's key only (never ``*``, AWS-019). Deletion is left to the lifecycle.
    """

    bucket_name: pulumi.Output[str]
    """Name of the backup bucket."""
    bucket_arn: pulumi.Output[str]
    """ARN of the backup bucket."""
    kms_key_arn: pulumi.Output[str]
    """ARN of the key encrypting it."""
    snapshot_role_arn: pulumi.Output[str]
    """ARN of Elasticsearch's snapshot role (IRSA), when ``snapshot_irsa`` is set."""
    role_arn: pulumi.Output[str]
    """IRSA role of the backup job, put only (unset without ``irsa``)."""
    restore_role_arn: pulumi.Output[str]
    """IRSA role of the restore Job, read only (unset without ``restore_irsa``)."""
    region: pulumi.Output[str]
    """Region of the bucket (the provider's)."""

    def __init__(self, name: str, args: BackupBucketArgs,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("new-api:index:BackupBucket", name, None, opts)
        import pulumi_aws as aws

        a = dict(args or {})
        retention = int(a.get("retention_days", 30))
        log_retention = int(a.get("log_retention_days", 180))
        common.require(1 <= retention <= 3650, "retention_days", "must be between 1 and 3650")
        common.require(1 <= log_retention <= 3650, "log_retention_days", "must be between 1 and 3650")
        irsa = a.get("irsa")
        if irsa:
            for key in ("oidc_provider_arn", "oidc_issuer", "namespace", "service_account"):
                common.require(bool(irsa.get(key)), f"irsa.{key}", "is required")
        protect = bool(a.get("protect", False))
        tags = aws_common.tags("purpose", "backups")

        def child(*deps, **kw) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=[d for d in deps if d is not None], **kw)

        lock_mode = a.get("object_lock_mode", "COMPLIANCE")
        common.require(lock_mode in ("COMPLIANCE", "GOVERNANCE"), "object_lock_mode",
                       f"{lock_mode!r} is not COMPLIANCE or GOVERNANCE")
        self.kms_key, self.kms_alias = aws_common.kms_key(
            aws, name, f"Encrypts the New API backup bucket {name} (database dumps, log archives)",
            tags, self, protect, alias=name, users=True)

        # ---------------------------------------------------------------- backup bucket
        self.bucket = aws.s3.Bucket(name, force_destroy=False, tags=tags, opts=child(protect=protect))
        versioning = self._harden(aws, name, self.bucket, child,
                     sse={"sse_algorithm": "aws:kms", "kms_master_key_id": self.kms_key.arn},
                     rules=[
                         {"id": "expire-database-dumps", "status": "Enabled", "filter": {"prefix": DUMP_PREFIX},
                          "expiration": {"days": retention},
                          "noncurrent_version_expiration": {"noncurrent_days": retention},
                          "abort_incomplete_multipart_upload": {"days_after_initiation": 7}},
                         {"id": "expire-log-archives", "status": "Enabled", "filter": {"prefix": LOG_PREFIX},
                          "expiration": {"days": log_retention},
                          "noncurrent_version_expiration": {"noncurrent_days": 30},
                          "abort_incomplete_multipart_upload": {"days_after_initiation": 7}},
                         # Elasticsearch's SLM deletes expired snapshots itself; an expiry
                         # here would break the repository under it. Only old versions go.
                         {"id": "expire-deleted-snapshots", "status": "Enabled",
                          "filter": {"prefix": SNAPSHOT_PREFIX},
                          "noncurrent_version_expiration": {"noncurrent_days": 30},
                          "abort_incomplete_multipart_upload": {"days_after_initiation": 7}},
                     ])

        # Write once, read many: no version is deleted or overwritten before the retention,
        # by the backup job, a stolen credential or an administrator (COMPLIANCE). Set with
        # its own resource (PutObjectLockConfiguration, versioning on), which S3 accepts on an
        # existing bucket too: no bucket replacement. Cannot be turned off afterwards.
        self.object_lock = aws.s3.BucketObjectLockConfiguration(
            f"{name}-object-lock", bucket=self.bucket.id, object_lock_enabled="Enabled",
            rule={"default_retention": {"mode": lock_mode, "days": retention}},
            opts=child(self.bucket, versioning))

        # ---------------------------------------------------------------- access-log bucket
        self.log_bucket = aws.s3.Bucket(f"{name}-access-logs", force_destroy=False,
                                        tags={**tags, "purpose": "backup-access-logs"}, opts=child(protect=protect))
        self._harden(aws, f"{name}-access-logs", self.log_bucket, child,
                     # S3 server access logs can only be delivered to SSE-S3 encrypted buckets.
                     sse={"sse_algorithm": "AES256"},
                     rules=[{"id": "expire-access-logs", "status": "Enabled", "filter": {"prefix": ""},
                             "expiration": {"days": log_retention},
                             "noncurrent_version_expiration": {"noncurrent_days": 30},
                             "abort_incomplete_multipart_upload": {"days_after_initiation": 7}}],
                     log_source=self.bucket.arn)
        self.logging = aws.s3.BucketLogging(
            f"{name}-logging", bucket=self.bucket.id, target_bucket=self.log_bucket.id,
            target_prefix=f"s3-access/{name}/", opts=child(self.bucket, self.log_bucket))

        # ---------------------------------------------------------------- IRSA roles
        def irsa_role(suffix: str, who: IrsaArgs, description: str, policy) -> "aws.iam.Role":
            return aws_common.irsa_role(
                aws, f"{name}-{suffix}", who, description,
                pulumi.Output.all(self.bucket.arn, self.kms_key.arn).apply(lambda v: json.dumps(policy(v[0], v[1]))),
                tags, self)

        # The writer only writes; reading (restore) is a role of its own.
        self.role = irsa_role("job", irsa, f"Backup job of {name}: put only (IRSA)", job_policy) if irsa else None
        restore_irsa = a.get("restore_irsa")
        self.restore_role = irsa_role("restore", restore_irsa, f"Restore job of {name}: read only (IRSA)",
                                      restore_policy) if restore_irsa else None
        snapshot_irsa = a.get("snapshot_irsa")
        self.snapshot_role = irsa_role("es-snapshots", snapshot_irsa,
                                       f"Elasticsearch snapshot repository in {name} (IRSA)",
                                       snapshot_policy) if snapshot_irsa else None
        # The key's policy names the roles that use it, each for its own operations.
        users = [u for u in (
            {"sid": "BackupJobWrites", "role": self.role, "actions": WRITER_KEY_ACTIONS},
            {"sid": "RestoreJobReads", "role": self.restore_role, "actions": READER_KEY_ACTIONS},
            {"sid": "SnapshotRepositoryReadsAndWrites", "role": self.snapshot_role,
             "actions": WRITER_KEY_ACTIONS}) if u["role"] is not None]
        self.kms_key_policy = aws_common.key_user_policy(
            aws, name, self.kms_key, [{"sid": u["sid"], "role_arn": u["role"].arn, "actions": u["actions"]}
                                      for u in users],
            self, depends_on=[self.kms_key, *[u["role"] for u in users]])
        self.bucket_name = self.bucket.bucket
        self.bucket_arn = self.bucket.arn
        self.kms_key_arn = self.kms_key.arn
        self.role_arn = self.role.arn if self.role is not None else pulumi.Output.from_input(None)
        self.restore_role_arn = (self.restore_role.arn if self.restore_role is not None
                                 else pulumi.Output.from_input(None))
        self.snapshot_role_arn = (self.snapshot_role.arn if self.snapshot_role is not None
                                  else pulumi.Output.from_input(None))
        self.region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        self.register_outputs({"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn,
                               "kms_key_arn": self.kms_key_arn, "role_arn": self.role_arn,
                               "snapshot_role_arn": self.snapshot_role_arn,
                               "restore_role_arn": self.restore_role_arn,
                               "region": self.region})

    def _harden(self, aws, name, bucket, child, sse, rules, log_source=None):
        """Public access block, no ACLs, default encryption, versioning, lifecycle and a
        TLS-only policy (plus, for the access-log bucket, S3 log delivery from the source)."""
        pab = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access", bucket=bucket.id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=child(bucket))
        aws.s3.BucketOwnershipControls(f"{name}-ownership", bucket=bucket.id,
                                       rule={"object_ownership": "BucketOwnerEnforced"}, opts=child(bucket))
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-sse", bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": sse, "bucket_key_enabled": True}],
            opts=child(bucket))
        versioning = aws.s3.BucketVersioning(f"{name}-versioning", bucket=bucket.id,
                                             versioning_configuration={"status": "Enabled"}, opts=child(bucket))
        aws.s3.BucketLifecycleConfiguration(f"{name}-lifecycle", bucket=bucket.id, rules=rules,
                                            opts=child(bucket, versioning))
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        aws.s3.BucketPolicy(f"{name}-policy", bucket=bucket.id,
                            policy=pulumi.Output.all(bucket.arn, account.account_id, log_source or "").apply(
                                lambda v: json.dumps(bucket_policy(v[0], v[1], v[2] or None))),
                            # S3 rejects a policy until the public access block is in place.
                            opts=child(bucket, pab))
        return versioning


def bucket_policy(arn: str, account_id: str, log_source_arn: Optional[str] = None) -> dict:
    """Deny every request without TLS (AWS-013); on a log bucket, let S3 deliver the
    access logs of ``log_source_arn`` (and nothing else)."""
    statements = [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }]
    if log_source_arn:
        statements.append({
            "Sid": "S3ServerAccessLogs", "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": "s3:PutObject", "Resource": f"{arn}/*",
            "Condition": {"ArnLike": {"aws:SourceArn": log_source_arn},
                          "StringEquals": {"aws:SourceAccount": account_id}},
        })
    return {"Version": "2012-10-17", "Statement": statements}


#: KMS operations of a writer: SSE-KMS uploads need GenerateDataKey, and multipart uploads
#: Decrypt too (S3 decrypts the parts' data keys to complete the upload).
WRITER_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
READER_KEY_ACTIONS = ("kms:Decrypt",)


def job_policy(bucket_arn: str, key_arn: str, prefix: str = DUMP_PREFIX) -> dict:
    """The backup job writes dumps and nothing else: no read, no list, no delete, no
    retention change (Object Lock keeps every version), its bucket's key through S3 only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "PutDumps", "Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
             "Resource": f"{bucket_arn}/{prefix}*"},
            {"Sid": "UseBucketKey", "Effect": "Allow", "Action": list(WRITER_KEY_ACTIONS), "Resource": key_arn,
             "Condition": {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}}},
        ],
    }


def restore_policy(bucket_arn: str, key_arn: str, prefix: str = DUMP_PREFIX) -> dict:
    """The restore Job reads dumps (any version) and lists the prefix; it writes nothing."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadDumps", "Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion"],
             "Resource": f"{bucket_arn}/{prefix}*"},
            {"Sid": "ListDumps", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn,
             "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}}},
            {"Sid": "DecryptWithBucketKey", "Effect": "Allow", "Action": list(READER_KEY_ACTIONS),
             "Resource": key_arn, "Condition": {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}}},
        ],
    }


def snapshot_policy(bucket_arn: str, key_arn: str, prefix: str = SNAPSHOT_PREFIX) -> dict:
    """Least privilege of Elasticsearch's S3 repository: read, write, list and delete (SLM
    retention deletes old snapshots) under its prefix, multipart uploads, its bucket's key."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "SnapshotObjects", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts"],
         "Resource": f"{bucket_arn}/{prefix}*"},
        {"Sid": "ListSnapshotPrefix", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn,
         "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*", prefix]}}},
        {"Sid": "BucketUploads", "Effect": "Allow",
         "Action": ["s3:ListBucketMultipartUploads", "s3:GetBucketLocation"], "Resource": bucket_arn},
        {"Sid": "BucketKey", "Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
         "Resource": key_arn},
    ]}


# =========================================================================== PostgresBackup


class ConnectionArgs(TypedDict, total=False):
    host: pulumi.Input[str]
    """Database host (Postgres.host)."""
    port: pulumi.Input[int]
    """Port (default 5432)."""
    database: pulumi.Input[str]
    """Database name."""
    username: pulumi.Input[str]
    """Role the dump runs as: read-only (``Postgres.backup_username``, ``pg_read_all_data``)."""
    password: pulumi.Input[str]
    """Its password (secret)."""
    restore_username: pulumi.Input[str]
    """Role a restore runs as: the database owner (``Postgres.username``; default: ``username``)."""
    restore_password: pulumi.Input[str]
    """Its password (secret)."""
    sslmode: str
    """libpq sslmode (Postgres.sslmode); ``verify-full`` needs ``ca_bundle``."""
    ca_bundle: postgres_base.CaBundleArgs
    """The CA bundle to verify the server with (``Postgres.ca_bundle``: ``{"config_map", "key"}``)."""


class S3TargetArgs(TypedDict, total=False):
    bucket: pulumi.Input[str]
    """Bucket name."""
    prefix: str
    """Key prefix (default database-backups/)."""
    region: str
    """Bucket region."""
    role_arn: pulumi.Input[str]
    """IAM role the job's ServiceAccount assumes (IRSA): put only."""
    restore_role_arn: pulumi.Input[str]
    """IAM role of the restore Job's own ServiceAccount (``<name>-restore``): read only
    (default: ``role_arn``, for a bucket and role managed elsewhere)."""


class PostgresBackupArgs(TypedDict, total=False):
    namespace: pulumi.Input[str]
    """Namespace of the jobs."""
    connection: ConnectionArgs
    """How to reach the database (Postgres outputs)."""
    database_egress: Sequence[EgressTargetArgs]
    """Where the database is (Postgres.egress: ``{port, pod_labels}`` or ``{port, cidr}``)."""
    backup_of: str
    """Name of the database workload (annotation read by the STK-003 policy)."""
    file_prefix: str
    """Dump file prefix, e.g. newapi-prod (files are <prefix>-<UTC timestamp>.dump)."""
    schedule: str
    """5-field cron, UTC (default 0 2 * * *, seed 000)."""
    retention_days: int
    """Days dumps are kept on the PVC (default 30; S3: the bucket's lifecycle)."""
    storage_size: str
    """Backup PVC size, or scratch space when uploading to S3 (default 20Gi)."""
    storage_class: str
    """Storage class of the backup PVC."""
    s3: S3TargetArgs
    """Upload to S3 instead of keeping dumps on a PVC."""
    image: str
    """pg_dump image; its major must be >= the server's (default postgres:16.6)."""
    aws_cli_image: str
    """AWS CLI image for S3 transfers (default public.ecr.aws/aws-cli/aws-cli:2.22.35)."""
    restore_object_key: str
    """Create a restore Job for this dump (file name under the prefix/PVC). Unset: no Job."""
    pre_upgrade_version: str
    """Dump once, with a Job named after this New API version, before it is deployed
    (``<file_prefix>-pre-upgrade-<version>-<time>.dump``; components/upgrade_snapshot.py)."""
    protect: bool
    """Protect the backup PVC (prod)."""
    object_storage_cidrs: Sequence[str]
    """Where the S3 upload may go on 443 (default: any public address; private ranges,
    100.64/10 and link-local are excluded unless listed, e.g. an STS interface endpoint)."""


class PostgresBackup(pulumi.ComponentResource):
    """Daily logical backups of New API's database, and an opt-in restore.

    The CronJob (seed 000: ``0 2 * * *``, UTC) runs ``pg_dump --format=custom`` with libpq
    environment (``PGHOST``, ``PGUSER``, ``PGPASSWORD`` from a Secret, ``PGSSLMODE``...),
    checks the archive with ``pg_restore --list`` and then either keeps it on a PVC and
    deletes dumps older than ``retention_days``, or uploads it to S3 with the IRSA role of
    its own ServiceAccount (retention: the bucket's lifecycle). ``concurrencyPolicy:
    Forbid``, a starting deadline, an active deadline, a bounded backoff and history
    limits; the restricted security context; a NetworkPolicy allowing only the database
    (and HTTPS for S3).

    Restore is the dangerous direction, so nothing restores by default: a restore Job
    exists only while ``restore_object_key`` names a dump. It runs ``pg_restore --clean
    --if-exists --single-transaction`` (all or nothing); scale the app to zero first
    (runbook: docs/runbook-database-restore.md).
    """

    cron_job_name: pulumi.Output[str]
    """Name of the CronJob (``kubectl create job --from=cronjob/<name>`` runs it now)."""
    service_account_name: pulumi.Output[str]
    """ServiceAccount of the jobs (the IRSA subject)."""
    target: pulumi.Output[str]
    """Where dumps go: ``pvc://<claim>`` or ``s3://<bucket>/<prefix>``."""

    def __init__(self, name: str, args: PostgresBackupArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("new-api:index:PostgresBackup", name, None, opts)
        a = dict(args)
        for key in ("namespace", "connection", "file_prefix"):
            common.require(a.get(key) is not None, key, "is required")
        conn = dict(a["connection"])
        for key in ("host", "database", "username", "password"):
            common.require(conn.get(key) is not None, f"connection.{key}", "is required")
        schedule = a.get("schedule", "0 2 * * *")
        common.require(len(str(schedule).split()) == 5, "schedule", f"{schedule!r} is not a 5-field cron")
        retention = int(a.get("retention_days", 30))
        common.require(retention >= 1, "retention_days", "must be at least 1")
        common.require(common.is_dns_label(a["file_prefix"]), "file_prefix", "must be a DNS label")
        image = a.get("image", images.POSTGRES)
        cli_image = a.get("aws_cli_image", images.AWS_CLI)
        for key, ref in (("image", image), ("aws_cli_image", cli_image)):
            try:
                common.split_image(ref)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        size = a.get("storage_size", "20Gi")
        common.parse_quantity(size)
        s3 = dict(a["s3"]) if a.get("s3") else None
        if s3:
            for key in ("bucket", "role_arn"):
                common.require(s3.get(key) is not None, f"s3.{key}", "is required")
            s3.setdefault("prefix", DUMP_PREFIX)
            common.require(s3["prefix"].endswith("/"), "s3.prefix", "must end with /")
        restore_key = a.get("restore_object_key")
        if restore_key is not None:
            common.require(bool(restore_key) and ".." not in restore_key and not restore_key.startswith("/"),
                           "restore_object_key", "must be a file name under the backup prefix")
        protect = bool(a.get("protect", False))
        ns = a["namespace"]
        sel = pod_selector(name)
        lbl = {role: common.labels(APP, name, role) for role in ("backup", "restore")}
        obj_lbl = common.labels(APP, name, "backup")

        def child(*deps, **kw) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=[d for d in deps if d is not None], **kw)

        sa_annotations = {"eks.amazonaws.com/role-arn": s3["role_arn"]} if s3 else None
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa", metadata=common.meta(name, ns, obj_lbl, sa_annotations),
            automount_service_account_token=False, opts=child())
        # Dumps read as the backup role; only a restore (opt-in) writes, as the owner.
        self.secret = k8s.core.v1.Secret(
            f"{name}-pg", metadata=common.meta(f"{name}-pg", ns, obj_lbl), type="Opaque",
            string_data=pulumi.Output.secret({
                "password": conn["password"],
                **({"restore-password": conn.get("restore_password") or conn["password"]}
                   if restore_key is not None else {}),
            }), opts=child())
        sslmode = conn.get("sslmode", "require")
        ca = conn.get("ca_bundle")
        common.require(sslmode != "verify-full" or bool(ca), "connection.ca_bundle",
                       "is required with sslmode verify-full (the CA the server is verified against)")
        pg_env = [
            {"name": "PGHOST", "value": conn["host"]},
            {"name": "PGPORT", "value": pulumi.Output.from_input(conn.get("port", 5432)).apply(lambda p: str(int(p)))},
            {"name": "PGDATABASE", "value": conn["database"]},
            *postgres_base.libpq_tls_env(sslmode),
            {"name": "PGCONNECT_TIMEOUT", "value": "30"},
            {"name": "PGAPPNAME", "value": name},
        ]
        role_env = {
            "dump": [{"name": "PGUSER", "value": conn["username"]},
                     common.secret_env("PGPASSWORD", self.secret.metadata.name, "password")],
            "restore": [{"name": "PGUSER", "value": conn.get("restore_username") or conn["username"]},
                        common.secret_env("PGPASSWORD", self.secret.metadata.name, "restore-password")],
        }
        ca_volumes = [postgres_base.ca_volume(ca)] if ca else []
        ca_mounts = [postgres_base.ca_mount()] if ca else []
        sc = common.container_security_context()

        def pg_container(cname: str, script: str, env: list, mounts: list, role: str = "dump") -> dict:
            return {
                "name": cname, "image": image, "image_pull_policy": "IfNotPresent",
                "command": ["/bin/sh", "-c", script],
                "env": [*pg_env, *role_env[role], *env, {"name": "HOME", "value": "/tmp"}],
                "resources": common.resources("50m", "128Mi", "512Mi", None, "64Mi", "1Gi"),
                "security_context": sc, "volume_mounts": [common.mount("tmp", "/tmp"), *ca_mounts, *mounts],
            }

        def cli_container(cname: str, script: str, env: list) -> dict:
            return {
                "name": cname, "image": cli_image, "image_pull_policy": "IfNotPresent",
                "command": ["/bin/sh", "-c", script],
                "env": [{"name": "BUCKET", "value": s3["bucket"]}, {"name": "PREFIX", "value": s3["prefix"]},
                        *([{"name": "AWS_REGION", "value": s3["region"]}] if s3.get("region") else []),
                        {"name": "HOME", "value": "/tmp"}, *env],
                "resources": common.resources("50m", "128Mi", "512Mi", None, "64Mi", "1Gi"),
                "security_context": sc,
                "volume_mounts": [common.mount("tmp", "/tmp"), common.mount("scratch", "/scratch")],
            }

        tmp = common.empty_dir("tmp", "256Mi")

        def dump_env(prefix: str) -> list:
            return [{"name": "BACKUP_PREFIX", "value": prefix}, {"name": "RETENTION_DAYS", "value": str(retention)}]

        self.pvc = None
        if s3:
            volumes = [tmp, *ca_volumes, common.ephemeral_volume("scratch", size, a.get("storage_class"))]

            def dump_containers(prefix: str, prune: bool) -> tuple:
                init = [pg_container("dump", DUMP_SCRIPT,
                                     [*dump_env(prefix), {"name": "BACKUP_DIR", "value": "/scratch"},
                                      {"name": "PRUNE", "value": "false"}],
                                     [common.mount("scratch", "/scratch")])]
                return init, [cli_container("upload", UPLOAD_SCRIPT, [])]
            self.target = pulumi.Output.concat("s3://", s3["bucket"], "/", s3["prefix"])
        else:
            self.pvc = k8s.core.v1.PersistentVolumeClaim(
                f"{name}-data", metadata=common.meta(name, ns, obj_lbl),
                spec={"access_modes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                      **({"storage_class_name": a["storage_class"]} if a.get("storage_class") else {})},
                opts=child(protect=protect, retain_on_delete=protect))
            volumes = [tmp, *ca_volumes,
                       {"name": "backups", "persistent_volume_claim": {"claim_name": self.pvc.metadata.name}}]

            def dump_containers(prefix: str, prune: bool) -> tuple:
                return None, [pg_container("dump", DUMP_SCRIPT,
                                           [*dump_env(prefix), {"name": "BACKUP_DIR", "value": "/backups"},
                                            {"name": "PRUNE", "value": "true" if prune else "false"}],
                                           [common.mount("backups", "/backups")])]
            self.target = pulumi.Output.concat("pvc://", self.pvc.metadata.name)

        def dump_job_spec(prefix: str, prune: bool) -> dict:
            """One dump run: the CronJob's job template, and the pre-upgrade Job's spec."""
            init, containers = dump_containers(prefix, prune)
            return {
                "backoff_limit": 2,
                "active_deadline_seconds": 3 * 3600,
                "template": {
                    "metadata": {"labels": lbl["backup"]},
                    "spec": common.restricted_pod_spec(identity="postgres-backup",
                        service_account=self.service_account.metadata.name,
                        restart_policy="Never", volumes=volumes, init_containers=init,
                        containers=containers),
                },
            }

        annotations = {common.BACKUP_OF_ANNOTATION: a["backup_of"]} if a.get("backup_of") else None
        self.cron_job = k8s.batch.v1.CronJob(
            name,
            metadata=common.meta(name, ns, obj_lbl, annotations),
            spec={
                "schedule": schedule,
                "time_zone": "Etc/UTC",
                "concurrency_policy": "Forbid",
                # A missed run (controller down) still starts within an hour, never piles up.
                "starting_deadline_seconds": 3600,
                "successful_jobs_history_limit": 3,
                "failed_jobs_history_limit": 5,
                "job_template": {
                    "metadata": {"labels": lbl["backup"]},
                    "spec": dump_job_spec(a["file_prefix"], True),
                },
            },
            opts=child(self.secret))

        egress = []
        for target in a.get("database_egress") or []:
            if target.get("cidr"):
                peer = {"ip_block": {"cidr": target["cidr"]}}
            else:
                peer = {"pod_selector": {"match_labels": dict(target["pod_labels"])}}
                if target.get("namespace"):
                    peer["namespace_selector"] = {"match_labels": {"kubernetes.io/metadata.name": target["namespace"]}}
            egress.append({"to": [peer], "ports": [{"protocol": "TCP", "port": int(target["port"])}]})
        if s3:
            # S3 (and STS for IRSA) on HTTPS: public addresses only, or the configured ranges.
            egress.append({"to": common.public_egress_peers(a.get("object_storage_cidrs") or common.ANYWHERE),
                           "ports": common.tcp(443)})
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            name, metadata=common.meta(name, ns, obj_lbl),
            spec={"pod_selector": {"match_labels": sel}, "policy_types": ["Ingress", "Egress"],
                  "ingress": [], "egress": egress},
            opts=child())

        # A dump before New API's master migrates to a new version (upgrade_snapshot.py): one
        # Job per version, awaited to completion by the engine; the master waits for it.
        self.pre_upgrade_job = None
        version = a.get("pre_upgrade_version")
        if version:
            job_name = f"{name}-pre-upgrade-{upgrade_snapshot.slug(version)}"
            self.pre_upgrade_job = k8s.batch.v1.Job(
                job_name, metadata=common.meta(job_name, ns, obj_lbl, {"new-api.io/version": version}),
                spec=dump_job_spec(f"{a['file_prefix']}-pre-upgrade-{upgrade_snapshot.slug(version)}", False),
                opts=child(self.secret, self.network_policy))

        self.restore_job = None
        if restore_key is not None:
            # Its own identity: the dump job's role cannot read, the restore role cannot write.
            restore_sa_annotations = ({"eks.amazonaws.com/role-arn": s3.get("restore_role_arn") or s3["role_arn"]}
                                      if s3 else None)
            self.restore_service_account = k8s.core.v1.ServiceAccount(
                f"{name}-restore-sa", metadata=common.meta(f"{name}-restore", ns, lbl["restore"],
                                                           restore_sa_annotations),
                automount_service_account_token=False, opts=child())
            digest = hashlib.sha256(restore_key.encode()).hexdigest()[:8]
            if s3:
                r_volumes = [tmp, *ca_volumes, common.ephemeral_volume("scratch", size, a.get("storage_class"))]
                r_init = [cli_container("download", DOWNLOAD_SCRIPT, [{"name": "OBJECT_KEY", "value": restore_key}])]
                dump_path, r_mounts = "/scratch/restore.dump", [common.mount("scratch", "/scratch", read_only=True)]
            else:
                r_volumes = [tmp, *ca_volumes, {"name": "backups", "persistent_volume_claim": {
                    "claim_name": self.pvc.metadata.name, "read_only": True}}]
                r_init = None
                dump_path, r_mounts = f"/backups/{restore_key}", [common.mount("backups", "/backups", read_only=True)]
            self.restore_job = k8s.batch.v1.Job(
                f"{name}-restore",
                metadata=common.meta(f"{name}-restore-{digest}", ns, lbl["restore"],
                                     {"new-api.io/restore-object-key": restore_key}),
                spec={
                    # No retries: a failed restore is looked at by a human, not repeated.
                    "backoff_limit": 0,
                    "active_deadline_seconds": 6 * 3600,
                    "ttl_seconds_after_finished": 7 * 86400,
                    "template": {
                        "metadata": {"labels": lbl["restore"]},
                        "spec": common.restricted_pod_spec(identity="postgres-backup",
                            service_account=self.restore_service_account.metadata.name, restart_policy="Never",
                            volumes=r_volumes, init_containers=r_init,
                            containers=[pg_container("restore", RESTORE_SCRIPT,
                                                     [{"name": "DUMP", "value": dump_path}], r_mounts,
                                                     role="restore")]),
                    },
                },
                opts=child(self.secret, self.network_policy, delete_before_replace=True))

        self.cron_job_name = self.cron_job.metadata.name
        self.service_account_name = self.service_account.metadata.name
        self.register_outputs({"cron_job_name": self.cron_job_name,
                               "service_account_name": self.service_account_name, "target": self.target})
