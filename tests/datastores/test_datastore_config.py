"""Bad data-tier config: a clear error naming the stack file and the key path, and
nothing registered."""

import pytest

from support import DELETE, override
from tools import mockrt

from .conftest import AWS_NET, IRSA, RDS_NET, S3, TEST_CA_PATH

CASES = [
    ("unknown-database-backend", "dev", [("database.backend", "mysql")], "new-api:database.backend"),
    ("unknown-redis-backend", "dev", [("redis.backend", "memcached")], "new-api:redis.backend"),
    ("rds-without-network", "prod", [("database.aws", DELETE)], "new-api:database.aws = null: is required with database.backend 'aws'"),
    ("elasticache-without-network", "prod", [("redis.aws", DELETE)], "new-api:redis.aws = null: is required with redis.backend 'aws'"),
    ("rds-without-irsa", "prod", [("backup.irsa", DELETE)], "new-api:backup.irsa = null: is required with database.backend 'aws'"),
    ("cnpg-without-object-store", "dev", [("database.backend", "cloudnative-pg")], "new-api:backup.s3 = null: is required"),
    ("prod-dump-retention-below-14", "prod", [("backup.retentionDays", 7)], "new-api:backup.retentionDays = 7: prod keeps dumps"),
    ("prod-rds-retention-below-14", "prod", [("database.aws.backupRetentionDays", 7)],
     "new-api:database.aws.backupRetentionDays = 7"),
    ("rds-retention-above-35", "prod", [("database.aws.backupRetentionDays", 40)],
     "new-api:database.aws.backupRetentionDays = 40"),
    ("tiny-database-volume", "dev", [("database.storageSize", "100Mi")], "new-api:database.storageSize = \"100Mi\": must be at least 1Gi"),
    ("bad-storage-quantity", "dev", [("database.storageSize", "lots")], "new-api:database.storageSize"),
    ("redis-volume-below-twice-maxmemory", "dev", [("redis.storageSize", "256Mi")], "new-api:redis.storageSize"),
    ("redis-maxmemory-over-limit", "dev", [("redis.maxmemoryMb", 300)], "new-api:redis.maxmemoryMb = 300"),
    ("cidr-sources-instead-of-security-groups", "prod", [("database.aws.allowedCidrs", ["10.0.0.0/16"])],
     "new-api:database.aws.allowedCidrs = [\"10.0.0.0/16\"]: was replaced by sourceSecurityGroupIds"),
    ("cache-cidr-sources", "prod", [("redis.aws.allowedCidrs", ["10.0.0.0/16"])],
     "new-api:redis.aws.allowedCidrs"),
    ("no-source-security-group", "prod", [("redis.aws.sourceSecurityGroupIds", [])],
     "new-api:redis.aws.sourceSecurityGroupIds"),
    ("security-group-not-an-id", "prod", [("database.aws.sourceSecurityGroupIds", ["10.0.0.0/16"])],
     "new-api:database.aws.sourceSecurityGroupIds[0] = \"10.0.0.0/16\""),
    ("rds-without-ca-bundle", "prod", [("database.aws.caBundle", DELETE)], "new-api:database.aws.caBundle = (unset): is required"),
    ("rds-ca-bundle-two-sources", "prod", [("database.aws.caBundle.path", TEST_CA_PATH)],
     "new-api:database.aws.caBundle.path"),
    ("rds-ca-bundle-missing-file", "prod", [("database.aws.caBundle", {"path": "certs/nowhere.pem"})],
     "new-api:database.aws.caBundle.path = \"certs/nowhere.pem\": cannot be read"),
    ("rds-ca-bundle-not-a-certificate", "prod", [("database.aws.caBundle", {"path": "Pulumi.yaml"})],
     "new-api:database.aws.caBundle.path"),
    ("master-is-the-app-role", "prod", [("database.aws.masterUsername", "newapi")],
     "new-api:database.aws.masterUsername = \"newapi\": must differ from database.username"),
    ("single-subnet", "prod", [("redis.aws.subnetIds", ["subnet-0aaa1111bbb222333"])], "new-api:redis.aws.subnetIds"),
    ("bad-vpc-id", "prod", [("database.aws.vpcId", "vpc-xyz")], "new-api:database.aws.vpcId"),
    ("bad-backup-schedule", "dev", [("backup.schedule", "daily")], "new-api:backup.schedule = \"daily\""),
    ("static-key-instead-of-role", "dev", [("backup.s3", {**S3, "roleArn": "AKIAIOSFODNN7EXAMPLE"})],
     "new-api:backup.s3.roleArn"),
    ("max-allocated-below-allocated", "prod", [("database.aws.maxAllocatedStorageGb", 30)],
     "new-api:database.aws.maxAllocatedStorageGb = 30"),
    ("cnpg-single-instance", "dev", [("database.backend", "cloudnative-pg"), ("backup.s3", S3),
                                      ("database.cloudnativePg.instances", 1)], "new-api:database.cloudnativePg.instances"),
    ("unknown-database-key", "dev", [("database.passwrod", "x")], "new-api:database.passwrod"),
]


@pytest.mark.parametrize("stack,changes,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_datastore_config_names_the_file_and_key_and_creates_nothing(stack, changes, expected):
    result = mockrt.run_stack(stack, overrides=override(stack, *changes))
    message = str(result.error)
    assert f"Pulumi.{stack}.yaml" in message and expected in message, message
    assert result.registrations == []


def test_aws_backends_in_dev_are_valid_with_network_settings():
    result = mockrt.run_stack("dev", overrides=override(
        "dev", ("database.backend", "aws"), ("database.aws", RDS_NET), ("redis.backend", "aws"),
        ("redis.aws", AWS_NET), ("backup.s3", S3), ("backup.irsa", IRSA)))
    assert result.error is None, result.error
    assert {r.type for r in result.registrations} >= {"aws:rds/instance:Instance",
                                                       "aws:elasticache/replicationGroup:ReplicationGroup"}


def test_existing_bucket_replaces_the_stack_bucket_for_rds():
    # (logging off: Elasticsearch's snapshots need the stack's own bucket or a volume; backup.irsa
    # stays: the RDS exporter's role needs the cluster's OIDC provider)
    result = mockrt.run_stack("prod", overrides=override("prod", ("backup.s3", S3), ("logging.enabled", False)))
    assert result.error is None, result.error
    assert result.by_type("aws:s3/bucket:Bucket") == []
