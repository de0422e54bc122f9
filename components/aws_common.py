"""Shared building blocks of the AWS resources (one source, like common.py for Kubernetes)."""

import json

import pulumi


def kms_key(aws, name: str, description: str, tags: dict, parent: pulumi.Resource, protect: bool,
            alias: str) -> tuple:
    """A customer-managed key with yearly rotation (AWS-012), a description and the maximum
    30-day deletion window (AWS-019), administered by the account (the policy keeps the
    lockout safety check: the account root stays a principal), plus its alias.
    Protected with the data it encrypts: deleting the key makes every snapshot unreadable."""
    account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=parent))
    key = aws.kms.Key(
        f"{name}-kms",
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=account.account_id.apply(lambda acct: json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Sid": "AccountAdministersKey", "Effect": "Allow",
                           "Principal": {"AWS": f"arn:aws:iam::{acct}:root"},
                           "Action": "kms:*", "Resource": "*"}],
        })),
        tags=tags, opts=pulumi.ResourceOptions(parent=parent, protect=protect))
    key_alias = aws.kms.Alias(f"{name}-kms", name=f"alias/{alias}", target_key_id=key.key_id,
                              opts=pulumi.ResourceOptions(parent=parent))
    return key, key_alias


def datastore_security_group(aws, name: str, engine: str, port: int, vpc_id: str, source_groups, tags: dict,
                             opts: pulumi.ResourceOptions, transport: str = ""):
    """A security group admitting only the given source security groups (the EKS nodes'
    or the pods' own groups) on the datastore's port, never an address range: the VPC
    holds far more than the cluster (issue 13 item 6). Every rule described (AWS-011,
    AWS-020); no egress: a datastore initiates nothing."""
    return aws.ec2.SecurityGroup(
        f"{name}-sg",
        description=f"{engine} {name}: only the cluster's security groups on {port}",
        vpc_id=vpc_id,
        ingress=[{"protocol": "tcp", "from_port": port, "to_port": port, "security_groups": [group],
                  "description": f"{engine}{transport} from the Kubernetes cluster ({group})"}
                 for group in source_groups],
        egress=[],
        tags=tags, opts=opts)
