"""Shared building blocks of the AWS resources (one source, like common.py for Kubernetes)."""

import json

import pulumi


#: What the account (through IAM) may do with a key whose use is reserved to named roles:
#: administer it, never encrypt or decrypt with it.
KEY_ADMIN_ACTIONS = ("kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
                     "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource",
                     "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion")


def tags(key: str, value: str) -> dict:
    """The AWS tags of the stack's resources: ``app``, what they are (``component`` or
    ``purpose``), and that Pulumi manages them."""
    return {"app": "new-api", key: value, "managed-by": "pulumi"}


def kms_key(aws, name: str, description: str, tags: dict, parent: pulumi.Resource, protect: bool,
            alias: str, users: bool = False) -> tuple:
    """A customer-managed key with yearly rotation (AWS-012), a description and the maximum
    30-day deletion window (AWS-019), administered by the account (the policy keeps the
    lockout safety check: the account root stays a principal), plus its alias.
    Protected with the data it encrypts: deleting the key makes every snapshot unreadable.

    ``users``: the key's policy is set by ``key_user_policy`` once the roles that use it
    exist (a key policy may name only existing principals); until then AWS's default
    policy (the account administers it) applies."""
    account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=parent))
    policy = None if users else account.account_id.apply(lambda acct: json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Sid": "AccountAdministersKey", "Effect": "Allow",
                       "Principal": {"AWS": f"arn:aws:iam::{acct}:root"},
                       "Action": "kms:*", "Resource": "*"}],
    }))
    key = aws.kms.Key(
        f"{name}-kms",
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=policy,
        tags=tags, opts=pulumi.ResourceOptions(parent=parent, protect=protect))
    key_alias = aws.kms.Alias(f"{name}-kms", name=f"alias/{alias}", target_key_id=key.key_id,
                              opts=pulumi.ResourceOptions(parent=parent))
    return key, key_alias


def key_user_policy_document(account_id: str, users: list) -> dict:
    """The key policy of a key reserved to named roles: the account administers it
    (``KEY_ADMIN_ACTIONS``: it can always fix the policy, so the lockout safety check
    holds) and only the listed roles use it, each for its own actions, and only through
    S3 (``kms:ViaService``). ``users``: ``[{"sid", "role_arn", "actions"}]``."""
    statements = [{"Sid": "AccountAdministersKey", "Effect": "Allow",
                   "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                   "Action": list(KEY_ADMIN_ACTIONS), "Resource": "*"}]
    for user in users:
        statements.append({"Sid": user["sid"], "Effect": "Allow", "Principal": {"AWS": user["role_arn"]},
                           "Action": list(user["actions"]), "Resource": "*",
                           "Condition": {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}}})
    return {"Version": "2012-10-17", "Statement": statements}


def key_user_policy(aws, name: str, key, users: list, parent: pulumi.Resource, depends_on: list):
    """Attach ``key_user_policy_document`` to ``key`` (users' ``role_arn`` may be Outputs)."""
    account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=parent))
    arns = [u["role_arn"] for u in users]
    doc = pulumi.Output.all(account.account_id, *arns).apply(lambda v: json.dumps(key_user_policy_document(
        v[0], [{**u, "role_arn": arn} for u, arn in zip(users, v[1:])])))
    return aws.kms.KeyPolicy(f"{name}-kms-policy", key_id=key.key_id, policy=doc,
                             bypass_policy_lockout_safety_check=False,
                             opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on))


def irsa_role(aws, name: str, who: dict, description: str, policy: pulumi.Input[str], tags: dict,
              parent: pulumi.Resource):
    """An IAM role a Kubernetes ServiceAccount assumes through IRSA, and its inline policy
    (``policy``: the JSON document). ``who``: ``oidc_provider_arn``, ``oidc_issuer`` (the
    EKS cluster's OIDC provider; with or without ``https://``), ``namespace`` and
    ``service_account``. The trust policy admits only that ServiceAccount, for the STS
    audience (EKS docs, "IAM roles for service accounts": ``<issuer>:sub`` and ``:aud``),
    and sessions last at most an hour."""
    issuer = who["oidc_issuer"].removeprefix("https://")
    trust = pulumi.Output.from_input(who["namespace"]).apply(lambda ns: json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": who["oidc_provider_arn"]},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                f"{issuer}:sub": f"system:serviceaccount:{ns}:{who['service_account']}",
                f"{issuer}:aud": "sts.amazonaws.com",
            }},
        }],
    }))
    role = aws.iam.Role(name, description=description, assume_role_policy=trust, max_session_duration=3600,
                        tags=tags, opts=pulumi.ResourceOptions(parent=parent))
    aws.iam.RolePolicy(name, role=role.id, policy=policy, opts=pulumi.ResourceOptions(parent=parent, depends_on=[role]))
    return role


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
