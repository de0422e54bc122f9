"""Elasticsearch is backed up (STK-003): nightly SLM snapshots to the S3 backup bucket in
prod (own IRSA role, own prefix), to a filesystem repository on a volume in dev."""

import json

import pytest

from support import override
from tools import mockrt

SETUP = "elasticsearch-setup"


def setup_files(stack) -> dict:
    return stack.k8s("ConfigMap", SETUP)["data"]


def test_dev_snapshots_go_to_a_volume_repository(dev):
    sts = dev.k8s("StatefulSet", "elasticsearch")
    claims = {c["metadata"]["name"]: c["spec"]["resources"]["requests"]["storage"]
              for c in sts["spec"]["volumeClaimTemplates"]}
    assert claims["snapshots"] == "2Gi"
    es = next(c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == "elasticsearch")
    assert {"name": "snapshots", "mountPath": "/usr/share/elasticsearch/snapshots"} in es["volumeMounts"]
    assert "/usr/share/elasticsearch/snapshots" in dev.k8s("ConfigMap", "elasticsearch-config")["data"]["elasticsearch.yml"]
    repo = json.loads(setup_files(dev)["snapshot-repository.json"])
    assert repo == {"type": "fs", "settings": {"location": "/usr/share/elasticsearch/snapshots", "compress": True}}
    slm = json.loads(setup_files(dev)["slm-policy.json"])
    assert slm["retention"]["expire_after"] == "7d" and slm["repository"] == "backups"


def test_prod_snapshots_go_to_the_backup_bucket_with_their_own_role(prod):
    repo = json.loads(setup_files(prod)["snapshot-repository.json"])
    assert repo["type"] == "s3" and repo["settings"]["base_path"] == "elasticsearch-snapshots"
    # the backup bucket's physical (auto-)name, as the mock provider assigns it
    assert repo["settings"]["bucket"].startswith("new-api-backups-")
    sa = prod.k8s("ServiceAccount", "elasticsearch")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("new-api-backups-es-snapshots")
    assert "snapshots" not in {c["metadata"]["name"] for c in
                              prod.k8s("StatefulSet", "elasticsearch")["spec"]["volumeClaimTemplates"]}


def test_snapshot_role_trusts_only_elasticsearch_and_touches_only_its_prefix(prod):
    role = prod.get("aws:iam/role:Role", "new-api-backups-es-snapshots")
    condition = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
    assert [v for k, v in condition.items() if k.endswith(":sub")] == ["system:serviceaccount:logging:elasticsearch"]
    policy = json.loads(prod.get("aws:iam/rolePolicy:RolePolicy", "new-api-backups-es-snapshots").inputs["policy"])
    objects = next(s for s in policy["Statement"] if s["Sid"] == "SnapshotObjects")
    assert objects["Resource"].endswith("/elasticsearch-snapshots/*") and "s3:DeleteObject" in objects["Action"]
    key = next(s for s in policy["Statement"] if s["Sid"] == "BucketKey")
    assert key["Resource"] != "*"


def test_the_setup_job_is_declared_as_elasticsearchs_backup(stack):
    ann = stack.k8s("Job", SETUP)["metadata"]["annotations"]
    assert ann["policy.new-api.io/backup-of"] == "logging/elasticsearch"


@pytest.mark.parametrize("stack_name,changes,expected", [
    ("dev", [("logging.snapshotVolumeSize", None)], "new-api:logging.snapshotVolumeSize = null"),
    ("dev", [("logging.elasticsearchReplicas", 3)], "a filesystem snapshot repository needs one Elasticsearch node"),
])
def test_logging_without_a_backup_is_refused(stack_name, changes, expected):
    from support import DELETE

    changes = [(k, DELETE if v is None else v) for k, v in changes]
    result = mockrt.run_stack(stack_name, override(stack_name, *changes))
    assert expected in str(result.error) and result.registrations == []


@pytest.mark.parametrize("args,expected", [
    ({"snapshot_bucket": "b", "service_account_annotations": {"a": "b"}, "snapshot_volume_size": "1Gi"},
     "snapshot_volume_size: set either snapshot_bucket or snapshot_volume_size"),
    ({"snapshot_volume_size": "1Gi", "elasticsearch_replicas": 3}, "snapshot_volume_size: a filesystem repository"),
    ({"snapshot_bucket": "b"}, "service_account_annotations: snapshot_bucket needs an IRSA role"),
])
def test_logging_component_rejects_bad_snapshot_args(args, expected):
    from components import Logging

    base = {"namespace": "logging", "agent_namespace": "node-agents", "app_namespace": "new-api"}
    result = mockrt.run(lambda: Logging("logging", {**base, **args}))
    assert expected in str(result.error)
    assert [r for r in result.registrations if r.custom] == []


def test_prod_snapshots_are_encrypted_with_the_backup_buckets_kms_key(prod):
    """Elasticsearch's S3 repository settings (elastic.co/docs/reference/elasticsearch/
    configuration-reference/s3-repository-settings): ``server_side_encryption: true`` makes
    every snapshot object SSE-S3 (AES256), which overrides the bucket's default encryption.
    The rendered repository (the body the setup Job PUTs) must leave it unset, so the objects
    get the bucket's default: SSE-KMS with the backup key."""
    repo = json.loads(setup_files(prod)["snapshot-repository.json"])
    assert repo["settings"].get("server_side_encryption", False) is False, repo["settings"]
    bucket = repo["settings"]["bucket"]
    sse = next(r for r in prod.of_type("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
               if r.name == "new-api-backups-sse")
    default = sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
    assert bucket.startswith("new-api-backups-") and default["sseAlgorithm"] == "aws:kms"
    assert default["kmsMasterKeyId"]
