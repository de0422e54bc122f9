"""prometheus-rds-exporter for the ``aws`` backend of ``Postgres``: the source of the RDS
automated-backup alerts (:mod:`components.rds_backup_alerts`).

The exporter (qonto/prometheus-rds-exporter, image ``images.RDS_EXPORTER``) calls the
RDS API with an IAM role it assumes through IRSA (the builder shared with the backup
bucket's roles, ``aws_common.irsa_role``). Only the instance collector runs: every
optional collector is turned off (``cmd/root.go`` flags), so the role needs one
read-only action, ``rds:DescribeDBInstances`` (the README's "Minimal required IAM
permissions" lists it for the instance data; CloudWatch, EC2, Service Quotas, logs,
maintenance, clusters and engine support are the optional collectors' and are not
granted). That also keeps CloudWatch ``GetMetricData`` charges off the bill.

Hardening as every managed-endpoint exporter (``datastore_exporter.deploy``): own UID,
restricted context, no Kubernetes API token (the IRSA webhook projects its own token),
one replica, ingress only from the scrapers, egress only to AWS's HTTPS APIs at
``api_cidrs`` (public addresses by default, ``common.public_egress_peers``). The region
is set explicitly: without it the AWS SDK asks the instance metadata service, which no
pod may reach.
"""

import json

import pulumi

from . import aws_common, common, datastore_exporter, images
from .rds_backup_alerts import APP, PORT

SERVICE_ACCOUNT_SUFFIX = "rds-exporter"
#: The optional collectors (``cmd/root.go``), all off: only DescribeDBInstances is called.
DISABLED_COLLECTORS = ("collect-instance-metrics", "collect-instance-tags", "collect-instance-types",
                       "collect-logs-size", "collect-maintenances", "collect-cluster-metrics", "collect-quotas",
                       "collect-usages", "collect-engine-support")
ACTIONS = ("rds:DescribeDBInstances",)


def policy_document(region: str, account_id: str) -> dict:
    """Read-only: describe the DB instances of this account and region."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "DescribeDBInstances", "Effect": "Allow", "Action": list(ACTIONS),
        "Resource": f"arn:aws:rds:{region}:{account_id}:db:*"}]}


def deploy(comp, irsa: dict, api_cidrs: list, image: str = images.RDS_EXPORTER) -> None:
    """The exporter Deployment, its IRSA role and NetworkPolicy, in the Postgres
    component ``comp`` (sets ``comp.rds_exporter``, ``comp.rds_exporter_role``)."""
    import pulumi_aws as aws

    name, ns = comp._name, comp._a["namespace"]
    exporter_name = f"{name}-{SERVICE_ACCOUNT_SUFFIX}"
    region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=comp)).region
    account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=comp)).account_id
    comp.rds_exporter_role = aws_common.irsa_role(
        aws, exporter_name, {**irsa, "namespace": ns, "service_account": exporter_name},
        f"prometheus-rds-exporter of {name}: describe DB instances only (IRSA)",
        pulumi.Output.all(region, account).apply(lambda v: json.dumps(policy_document(v[0], v[1]))),
        aws_common.tags("component", "database-monitoring"), comp)
    container = common.container(
        "exporter", image, common.resources("20m", "48Mi", "128Mi", None, "16Mi", "64Mi"),
        args=[f"--listen-address=:{PORT}", "--log-format=json", *(f"--{flag}=false" for flag in DISABLED_COLLECTORS)],
        ports=[{"name": "metrics", "container_port": PORT, "protocol": "TCP"}],
        env=[{"name": "AWS_REGION", "value": region}, {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"},
             # cmd/root.go initConfig exits when os.UserHomeDir() fails (no $HOME: our UID has
             # no passwd entry in the image); /app is the image's home, holding no config file.
             {"name": "HOME", "value": "/app"}],
        readiness_probe=common.http_probe("/", "metrics", period=15, timeout=5, failures=3),
        liveness_probe=common.tcp_probe("metrics", period=20, timeout=5, failures=3))
    datastore_exporter.deploy(
        comp, exporter_name, APP, container, None, PORT, [],
        egress=[{"to": common.public_egress_peers(api_cidrs), "ports": common.tcp(443)}],
        service_account_annotations={"eks.amazonaws.com/role-arn": comp.rds_exporter_role.arn},
        attribute="rds_exporter", depends_on=(comp.rds_exporter_role,))
