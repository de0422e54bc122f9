"""AWS controls: RDS, ElastiCache, security groups, KMS, IAM (resource policies) and S3,
whose settings live on separate resources linked to their bucket (stack policies)."""
from __future__ import annotations

import json
import re
from typing import Any, List, Optional

from .framework import (Res, Stack, aws_types, fmt, get, is_map, items, num, plain,
                        resource_policy, stack_policy, truthy)

RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_CLUSTER = "aws:rds/cluster:Cluster"
RDS_CLUSTER_INSTANCE = "aws:rds/clusterInstance:ClusterInstance"
RDS = (RDS_INSTANCE, RDS_CLUSTER)
EC_RG = "aws:elasticache/replicationGroup:ReplicationGroup"
EC_CLUSTER = "aws:elasticache/cluster:Cluster"
KMS_KEY = "aws:kms/key:Key"
IAM_POLICIES = ("aws:iam/policy:Policy", "aws:iam/rolePolicy:RolePolicy", "aws:iam/userPolicy:UserPolicy",
                "aws:iam/groupPolicy:GroupPolicy")
IAM_ROLE = "aws:iam/role:Role"
SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"

BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
S3_PAB = ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",)
S3_SSE = ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
          "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2")
S3_VERSIONING = ("aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2")
S3_LIFECYCLE = ("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
                "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2")
S3_POLICY = ("aws:s3/bucketPolicy:BucketPolicy",)
S3_OWNERSHIP = ("aws:s3/bucketOwnershipControls:BucketOwnershipControls",)
S3_LOGGING = ("aws:s3/bucketLogging:BucketLogging", "aws:s3/bucketLoggingV2:BucketLoggingV2")
S3_ACL = ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")


def _off(v: Any) -> bool:
    return v is False or (isinstance(v, str) and v.lower() == "false")


# --------------------------------------------------------------------------- RDS


@resource_policy("aws-001-rds-encrypted", aws_types(*RDS))
def _rds_encrypted(ctx, res):
    with ctx.field():
        if not truthy(get(res.props, "storageEncrypted")):
            ctx.report(f"{res.display} stores data unencrypted (storageEncrypted not true)")
    with ctx.field():
        if get(res.props, "kmsKeyId") in (None, ""):
            ctx.report(f"{res.display} uses the AWS-managed key (kmsKeyId unset)",
                       "set kmsKeyId to the stack's customer-managed KMS key")


@resource_policy("aws-002-rds-backup-retention", aws_types(*RDS))
def _rds_retention(ctx, res):
    floor = ctx.settings.backup_retention_floor
    v = num(get(res.props, "backupRetentionPeriod"))
    if v is None or v < floor:
        ctx.report(f"{res.display} keeps backups {fmt(v) if v is not None else 'for the provider default'} day(s), "
                   f"below {floor} ({ctx.settings.environment})", f"set backupRetentionPeriod >= {floor}")


def is_read_replica(res: Res) -> bool:
    """A read replica (replicateSourceDb): RDS takes no final snapshot of it, and it is the
    primary's standby for reads, so the final-snapshot and Multi-AZ parts apply to the primary."""
    return get(res.props, "replicateSourceDb") not in (None, "")


@resource_policy("aws-003-rds-deletion-protection", aws_types(*RDS))
def _rds_deletion(ctx, res):
    with ctx.field():
        if not truthy(get(res.props, "deletionProtection")):
            ctx.report(f"{res.display} has no deletion protection in prod", "set deletionProtection: true")
    if is_read_replica(res):
        return
    with ctx.field():
        if truthy(get(res.props, "skipFinalSnapshot")):
            ctx.report(f"{res.display} skips the final snapshot in prod", "set skipFinalSnapshot: false")
        elif get(res.props, "finalSnapshotIdentifier") in (None, ""):
            ctx.report(f"{res.display} names no finalSnapshotIdentifier", "set finalSnapshotIdentifier")


@resource_policy("aws-004-rds-multi-az-private", aws_types(RDS_INSTANCE, RDS_CLUSTER_INSTANCE))
def _rds_az(ctx, res):
    with ctx.field():
        if truthy(get(res.props, "publiclyAccessible")):
            ctx.report(f"{res.display} is publicly accessible", "set publiclyAccessible: false")
    if res.type == RDS_INSTANCE and ctx.settings.prod and not is_read_replica(res):
        with ctx.field():
            if not truthy(get(res.props, "multiAz")):
                ctx.report(f"{res.display} runs in a single AZ in prod", "set multiAz: true")


@resource_policy("aws-005-rds-operability", aws_types(*RDS))
def _rds_ops(ctx, res):
    with ctx.field():
        if _off(get(res.props, "autoMinorVersionUpgrade")):
            ctx.report(f"{res.display} turns off minor version upgrades", "set autoMinorVersionUpgrade: true")
    if res.type == RDS_INSTANCE:
        with ctx.field():
            if not truthy(get(res.props, "performanceInsightsEnabled")):
                ctx.report(f"{res.display} has Performance Insights off", "set performanceInsightsEnabled: true")
    with ctx.field():
        if not items(get(res.props, "enabledCloudwatchLogsExports")):
            ctx.report(f"{res.display} exports no logs", 'set enabledCloudwatchLogsExports: ["postgresql", "upgrade"]')


DEFAULT_USERNAMES = {"admin", "root", "postgres", "master", "sa", "administrator", "user"}


@resource_policy("aws-016-rds-hygiene", aws_types(*RDS))
def _rds_hygiene(ctx, res):
    with ctx.field():
        if not truthy(get(res.props, "copyTagsToSnapshot")):
            ctx.report(f"{res.display} does not copy tags to snapshots", "set copyTagsToSnapshot: true")
    with ctx.field():
        user = get(res.props, "username" if res.type == RDS_INSTANCE else "masterUsername")
        if isinstance(user, str) and user.lower() in DEFAULT_USERNAMES:
            ctx.report(f'{res.display} uses the default master username "{user}"', "choose an application-specific username")
    with ctx.field():
        if get(res.props, "dbSubnetGroupName") in (None, ""):
            ctx.report(f"{res.display} is in no DB subnet group", "set dbSubnetGroupName to the private subnets' group")
    if res.type == RDS_INSTANCE:
        with ctx.field():
            mi = num(get(res.props, "monitoringInterval"))
            if not mi:
                ctx.report(f"{res.display} has enhanced monitoring off", "set monitoringInterval: 60 and monitoringRoleArn")


@resource_policy("aws-017-rds-pi-kms", aws_types(RDS_INSTANCE, RDS_CLUSTER, RDS_CLUSTER_INSTANCE))
def _rds_pi_kms(ctx, res):
    if truthy(get(res.props, "performanceInsightsEnabled")) and get(res.props, "performanceInsightsKmsKeyId") in (None, ""):
        ctx.report(f"{res.display} keeps Performance Insights data under the AWS-managed key")


# --------------------------------------------------------------------------- ElastiCache


def _redis_cluster(r: Res) -> bool:
    return r.type == EC_RG or (r.type == EC_CLUSTER and get(r.props, "engine") in ("redis", "valkey")
                               and get(r.props, "replicationGroupId") in (None, ""))


@resource_policy("aws-006-elasticache-encryption-auth", _redis_cluster)
def _ec_encryption(ctx, res):
    if res.type == EC_CLUSTER:
        ctx.report(f"{res.display} is a standalone Redis cluster, which supports neither encryption nor AUTH",
                   "use an aws.elasticache.ReplicationGroup")
        return
    for key in ("atRestEncryptionEnabled", "transitEncryptionEnabled"):
        with ctx.field():
            if not truthy(get(res.props, key)):
                ctx.report(f"{res.display} has {key} off", f"set {key}: true")
    with ctx.field():
        if all(get(res.props, k) in (None, "") for k in ("authToken", "authTokenWo")) and not items(get(res.props, "userGroupIds")):
            ctx.report(f"{res.display} accepts clients without AUTH", "set authToken from a generated secret (or userGroupIds)")


@resource_policy("aws-007-elasticache-ha-snapshots", _redis_cluster)
def _ec_ha(ctx, res):
    with ctx.field():
        n = num(get(res.props, "snapshotRetentionLimit"))
        if not n:
            ctx.report(f"{res.display} keeps no snapshots", "set snapshotRetentionLimit >= 1")
    if ctx.settings.prod:
        for key in ("automaticFailoverEnabled", "multiAzEnabled"):
            with ctx.field():
                if not truthy(get(res.props, key)):
                    ctx.report(f"{res.display} has {key} off in prod", f"set {key}: true (needs a replica)")


@resource_policy("aws-018-elasticache-hygiene", _redis_cluster)
def _ec_hygiene(ctx, res):
    with ctx.field():
        if _off(get(res.props, "autoMinorVersionUpgrade")):
            ctx.report(f"{res.display} turns off minor version upgrades", "set autoMinorVersionUpgrade: true")
    with ctx.field():
        if get(res.props, "subnetGroupName") in (None, ""):
            ctx.report(f"{res.display} uses the default subnet group", "set subnetGroupName")


# --------------------------------------------------------------------------- security groups

DATASTORE_PORTS = (5432, 3306, 6379, 6380, 9200, 9300, 27017, 11211, 5601)
WORLD = ("0.0.0.0/0", "::/0")


def _sg_rules(res: Res):
    """(direction, rule mapping, cidrs) for every rule a resource declares."""
    if res.type == SG:
        for d in ("ingress", "egress"):
            for r in items(get(res.props, d)):
                yield d, r, [*items(get(r, "cidrBlocks")), *items(get(r, "ipv6CidrBlocks"))]
    elif res.type == SG_RULE:
        yield (get(res.props, "type", default="ingress"), res.props,
               [*items(get(res.props, "cidrBlocks")), *items(get(res.props, "ipv6CidrBlocks"))])
    elif res.type in (SG_INGRESS, SG_EGRESS):
        yield ("ingress" if res.type == SG_INGRESS else "egress", res.props,
               [c for c in (get(res.props, "cidrIpv4"), get(res.props, "cidrIpv6")) if c])


def _ports(rule) -> str:
    lo, hi = num(get(rule, "fromPort")), num(get(rule, "toPort"))
    proto = str(get(rule, "protocol", default=get(rule, "ipProtocol", default="tcp")))
    if proto in ("-1", "all") or lo is None:
        return "all"
    return f"{fmt(lo)}-{fmt(hi if hi is not None else lo)}"


def _covers_datastore(rule) -> List[int]:
    proto = str(get(rule, "protocol", default=get(rule, "ipProtocol", default="tcp")))
    lo, hi = num(get(rule, "fromPort")), num(get(rule, "toPort"))
    if proto in ("-1", "all") or lo is None:
        return list(DATASTORE_PORTS)
    hi = lo if hi is None else hi
    return [p for p in DATASTORE_PORTS if lo <= p <= hi or (lo == 0 and hi == 0 and proto in ("-1", "all"))]


@resource_policy("aws-011-sg-no-public-datastore", aws_types(SG, SG_RULE, SG_INGRESS))
def _sg_public(ctx, res):
    for direction, rule, cidrs in _sg_rules(res):
        with ctx.field():
            if direction != "ingress":
                continue
            open_to = [c for c in cidrs if c in WORLD]
            ports = _covers_datastore(rule) if open_to else []
            if ports:
                ctx.report(f"{res.display} admits {', '.join(open_to)} on ports {_ports(rule)} "
                           f"(data store port(s) {', '.join(map(str, ports))})")


@resource_policy("aws-020-sg-rule-descriptions", aws_types(SG, SG_RULE, SG_INGRESS, SG_EGRESS))
def _sg_desc(ctx, res):
    for direction, rule, _ in _sg_rules(res):
        with ctx.field():
            if get(rule, "description") in (None, ""):
                ctx.report(f"{res.display} has an {direction} rule on ports {_ports(rule)} without description",
                           "set description to why the rule exists")


# --------------------------------------------------------------------------- KMS, IAM


@resource_policy("aws-012-kms-rotation", aws_types(KMS_KEY))
def _kms_rotation(ctx, res):
    if not truthy(get(res.props, "enableKeyRotation")):
        ctx.report(f"{res.display} does not rotate", "set enableKeyRotation: true")


def policy_document(v: Any) -> Optional[Any]:
    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return None
    return plain(v) if is_map(v) else None


def _as_list(v) -> list:
    return list(v) if isinstance(v, list) else ([] if v is None else [v])


def decrypt_on_star(doc: Any) -> bool:
    for st in _as_list(doc.get("Statement") if isinstance(doc, dict) else None):
        if not isinstance(st, dict) or st.get("Effect") != "Allow":
            continue
        actions = [str(a).lower() for a in _as_list(st.get("Action"))]
        if not any(a in ("*", "kms:*", "kms:decrypt", "kms:decrypt*") for a in actions):
            continue
        if "*" in _as_list(st.get("Resource")):
            return True
    return False


@resource_policy("aws-019-kms-iam-safety", aws_types(KMS_KEY, IAM_ROLE, *IAM_POLICIES))
def _kms_iam(ctx, res):
    if res.type == KMS_KEY:
        with ctx.field():
            if truthy(get(res.props, "bypassPolicyLockoutSafetyCheck")):
                ctx.report(f"{res.display} bypasses the policy lockout safety check",
                           "remove bypassPolicyLockoutSafetyCheck")
        with ctx.field():
            if get(res.props, "description") in (None, ""):
                ctx.report(f"{res.display} has no description", "describe what the key protects")
        with ctx.field():
            w = num(get(res.props, "deletionWindowInDays", default=30))
            if w != 30:
                ctx.report(f"{res.display} has a {fmt(w)}-day deletion window", "set deletionWindowInDays: 30")
        return
    docs = [get(res.props, "policy")] if res.type != IAM_ROLE else [
        get(p, "policy") for p in items(get(res.props, "inlinePolicies"))]
    for raw in docs:
        with ctx.field():
            doc = policy_document(raw)
            if doc is not None and decrypt_on_star(doc):
                ctx.report(f"{res.display} allows kms:Decrypt on Resource \"*\"",
                           "scope kms:Decrypt to the ARNs of the keys the principal needs")


# --------------------------------------------------------------------------- S3 (stack: buckets + their resources)


def is_backup_bucket(b: Res) -> bool:
    tags = get(b.props, "tags", default={})
    text = " ".join(str(x) for x in (b.name, get(b.props, "bucket", default=""), get(b.props, "bucketPrefix", default=""),
                                     get(tags, "purpose", default=""), get(tags, "Purpose", default="")))
    return bool(re.search(r"backup", text, re.I))


def _refers_to(ref: Any, bucket: Res) -> bool:
    ids = {x for x in (get(bucket.props, "bucket"), get(bucket.props, "id"), bucket.name) if isinstance(x, str) and x}
    return isinstance(ref, str) and ref in ids


def _pick(candidates: List[Res], ref: Any, owner_name: str) -> Optional[Res]:
    """The bucket a reference means: by name/id, the only candidate, or the longest name prefix."""
    named = [b for b in candidates if _refers_to(ref, b)]
    if named:
        return named[0]
    if len(candidates) == 1:
        return candidates[0]
    prefixed = [b for b in candidates if owner_name.startswith(b.name)]
    return max(prefixed, key=lambda b: len(b.name)) if prefixed else None


def bucket_of(stack: Stack, r: Res) -> Optional[Res]:
    """The bucket a companion resource (PAB, SSE, versioning, ...) configures."""
    buckets = _buckets(stack)
    deps = [b for b in buckets if b.urn in r.dependencies or b.urn == r.parent]
    ref = get(r.props, "bucket")
    if not deps:
        return next((b for b in buckets if _refers_to(ref, b)), None)
    return _pick(deps, ref, r.name)


def companions(stack: Stack, bucket: Res, types) -> List[Res]:
    """Resources of `types` configuring `bucket`."""
    return [r for r in stack.of_type(*types) if bucket_of(stack, r) is bucket]


def log_buckets(stack: Stack) -> List[Res]:
    """Buckets that receive server access logs (they are not themselves logged)."""
    out = []
    for lg in stack.of_type(*S3_LOGGING):
        own = bucket_of(stack, lg)
        others = [b for b in _buckets(stack) if b is not own and b.urn in lg.dependencies]
        target = _pick(others, get(lg.props, "targetBucket"), "") if others else \
            next((b for b in _buckets(stack) if _refers_to(get(lg.props, "targetBucket"), b)), None)
        if target is not None:
            out.append(target)
    return out


def _buckets(stack: Stack, backup_only: bool = False) -> List[Res]:
    return [b for b in stack.of_type(*BUCKETS) if not backup_only or is_backup_bucket(b)]


@stack_policy("aws-008-s3-public-access-block")
def _s3_pab(ctx, stack):
    keys = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    for b in _buckets(stack):
        with ctx.field():
            pabs = companions(stack, b, S3_PAB)
            if not pabs:
                ctx.report(f"{b.display} has no BucketPublicAccessBlock", res=b)
            for p in pabs:
                off = [k for k in keys if not truthy(get(p.props, k))]
                if off:
                    ctx.report(f"{p.display} for {b.display} leaves {', '.join(off)} off",
                               f"set {', '.join(off)}: true", res=p)


def _sse_ok(b: Res, stack: Stack) -> bool:
    inline = get(b.props, "serverSideEncryptionConfiguration", "rule", "applyServerSideEncryptionByDefault", "sseAlgorithm")
    if inline:
        return True
    for c in companions(stack, b, S3_SSE):
        for r in items(get(c.props, "rules")):
            if get(r, "applyServerSideEncryptionByDefault", "sseAlgorithm") not in (None, ""):
                return True
    return False


def _versioning_ok(b: Res, stack: Stack) -> bool:
    if truthy(get(b.props, "versioning", "enabled")):
        return True
    return any(get(c.props, "versioningConfiguration", "status") == "Enabled"
               for c in companions(stack, b, S3_VERSIONING))


@stack_policy("aws-009-s3-encryption-versioning")
def _s3_sse(ctx, stack):
    for b in _buckets(stack):
        with ctx.field():
            if not _sse_ok(b, stack):
                ctx.report(f"{b.display} has no server-side encryption configuration",
                           "add a BucketServerSideEncryptionConfiguration with sseAlgorithm aws:kms", res=b)
        with ctx.field():
            if is_backup_bucket(b) and not _versioning_ok(b, stack):
                ctx.report(f"backup {b.display} is not versioned",
                           'add a BucketVersioning with versioningConfiguration.status: "Enabled"', res=b)


@stack_policy("aws-010-s3-backup-lifecycle")
def _s3_lifecycle(ctx, stack):
    floor = ctx.settings.backup_retention_floor
    for b in _buckets(stack, backup_only=True):
        with ctx.field():
            rules = [r for c in companions(stack, b, S3_LIFECYCLE) for r in items(get(c.props, "rules"))
                     if get(r, "status", default="Enabled") == "Enabled"]
            rules += [r for r in items(get(b.props, "lifecycleRules")) if truthy(get(r, "enabled"))]
            days = [num(get(r, "expiration", "days")) for r in rules] + \
                   [num(get(r, "noncurrentVersionExpiration", "noncurrentDays")) for r in rules] + \
                   [num(get(r, "noncurrentVersionExpiration", "days")) for r in rules]
            days = [d for d in days if d is not None]
            if not days:
                ctx.report(f"backup {b.display} never expires old backups", res=b)
            elif min(days) < floor:
                ctx.report(f"backup {b.display} expires backups after {fmt(min(days))} day(s), below {floor}",
                           f"expire after at least {floor} days", res=b)


def _covers_bucket_and_objects(resources: list, bucket: Any) -> bool:
    """Both the bucket ARN and its objects (``arn:...:s3:::name`` and ``.../*``): a Deny on
    only one of them leaves the other reachable over HTTP. With the name unknown (auto-named
    bucket) any such pair counts."""
    arns = {str(r) for r in resources if ":s3:::" in str(r)}
    if isinstance(bucket, str) and bucket:
        arns = {a for a in arns if a.split(":s3:::", 1)[1].split("/", 1)[0] == bucket}
    return any(f"{a}/*" in arns for a in arns if "/" not in a.split(":s3:::", 1)[1])


def _denies_plain_http(doc: Any, bucket: Any = None) -> bool:
    """A statement that denies every principal every S3 action on the bucket and its objects
    when ``aws:SecureTransport`` is false (AWS: "Enforce encryption of data in transit", S3
    user guide, security-best-practices; IAM condition operators: ``Bool``/``BoolIfExists``)."""
    for st in _as_list(doc.get("Statement") if isinstance(doc, dict) else None):
        if not isinstance(st, dict) or st.get("Effect") != "Deny":
            continue
        principal = st.get("Principal")
        everyone = principal == "*" or (is_map(principal) and "*" in _as_list(principal.get("AWS")))
        actions = {str(a).lower() for a in _as_list(st.get("Action"))}
        if not everyone or not actions & {"*", "s3:*"} or \
                not _covers_bucket_and_objects(_as_list(st.get("Resource")), bucket):
            continue
        cond = st.get("Condition") or {}
        for op in ("Bool", "BoolIfExists"):
            v = (cond.get(op) or {}).get("aws:SecureTransport") if isinstance(cond, dict) else None
            if any(str(x).lower() == "false" for x in _as_list(v)):
                return True
    return False


@stack_policy("aws-013-s3-tls-only")
def _s3_tls(ctx, stack):
    for b in _buckets(stack, backup_only=True):
        with ctx.field():
            docs = [policy_document(get(p.props, "policy")) for p in companions(stack, b, S3_POLICY)]
            docs.append(policy_document(get(b.props, "policy")))
            if not any(d is not None and _denies_plain_http(d, get(b.props, "bucket")) for d in docs):
                ctx.report(f"backup {b.display} accepts requests without TLS", res=b)


@stack_policy("aws-014-s3-no-acls")
def _s3_acls(ctx, stack):
    for b in _buckets(stack):
        with ctx.field():
            owners = [get(c.props, "rule", "objectOwnership") for c in companions(stack, b, S3_OWNERSHIP)]
            if "BucketOwnerEnforced" not in owners:
                ctx.report(f"{b.display} still honours ACLs (objectOwnership {owners[0] if owners else 'unset'})", res=b)
        with ctx.field():
            acl = get(b.props, "acl")
            for a in companions(stack, b, S3_ACL):
                ctx.report(f"{a.display} sets an ACL on {b.display}", "delete the BucketAcl", res=a)
            if acl not in (None, "", "private"):
                ctx.report(f'{b.display} sets acl "{acl}"', "remove acl", res=b)


@stack_policy("aws-015-s3-access-logging")
def _s3_logging(ctx, stack):
    targets = log_buckets(stack)
    for b in _buckets(stack, backup_only=True):
        with ctx.field():
            if b in targets:
                continue
            if not companions(stack, b, S3_LOGGING) and not is_map(get(b.props, "logging")):
                ctx.report(f"backup {b.display} has no server access logging", res=b)
