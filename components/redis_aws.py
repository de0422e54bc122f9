"""The ``aws`` backend of ``Redis`` (prod): an ElastiCache replication group (cluster mode
off), its KMS key, subnet, parameter and security groups, and a redis_exporter Deployment
pointed at the primary endpoint over TLS, so the ``redis-exporter`` scrape job,
RedisMemoryHigh and the dashboard have data in prod (issue 12 defect 4). See ``Redis``."""

import pulumi
import pulumi_kubernetes as k8s

from . import aws_common, common, datastore_exporter
from .secrets import rotation_trigger

EXPORTER_APP = "redis-exporter"


def build(comp, password):
    from .redis import PORT
    import pulumi_aws as aws

    name, a = comp._name, comp._a
    cfg = a["aws"]
    protect = a["protect"]
    tags = aws_common.tags("component", "cache")
    comp.kms_key, comp.kms_alias = aws_common.kms_key(
        aws, name, f"Encrypts the New API ElastiCache replication group {name} and its snapshots",
        tags, comp, protect, alias=f"{name}-elasticache")
    comp.subnet_group = aws.elasticache.SubnetGroup(
        f"{name}-subnets", description=f"Private subnets of {name}", subnet_ids=list(cfg["subnet_ids"]),
        tags=tags, opts=comp._child())
    comp.security_group = aws_common.datastore_security_group(
        aws, name, "Redis", PORT, cfg["vpc_id"], cfg["source_security_group_ids"], tags, comp._child(),
        transport=" (TLS)")
    major = str(cfg["engine_version"]).split(".")[0]
    comp.parameter_group = aws.elasticache.ParameterGroup(
        f"{name}-params",
        family=f"redis{major}",
        description=f"New API Redis {major}: cluster mode off, {a['maxmemory_policy']}",
        parameters=[
            {"name": "cluster-enabled", "value": "no"},
            {"name": "maxmemory-policy", "value": a["maxmemory_policy"]},
        ],
        tags=tags, opts=comp._child())
    comp.replication_group = aws.elasticache.ReplicationGroup(
        f"{name}",
        replication_group_id=name[:40],
        description="New API cache, rate limits and session state (single endpoint, cluster mode off)",
        engine="redis",
        engine_version=str(cfg["engine_version"]),
        node_type=cfg["node_type"],
        port=PORT,
        num_cache_clusters=1 + int(cfg["replicas"]),
        automatic_failover_enabled=True,
        multi_az_enabled=True,
        at_rest_encryption_enabled=True,
        kms_key_id=comp.kms_key.arn,
        transit_encryption_enabled=True,
        auth_token=password,
        auth_token_update_strategy="ROTATE",
        parameter_group_name=comp.parameter_group.name,
        subnet_group_name=comp.subnet_group.name,
        security_group_ids=[comp.security_group.id],
        snapshot_retention_limit=int(cfg["snapshot_retention_days"]),
        snapshot_window=cfg["snapshot_window"],
        maintenance_window=cfg["maintenance_window"],
        final_snapshot_identifier=f"{name}-final",
        auto_minor_version_upgrade=True,
        apply_immediately=False,
        tags=tags,
        opts=comp._child(protect=protect, additional_secret_outputs=["auth_token"]))
    host = comp.replication_group.primary_endpoint_address
    egress = [{"port": PORT, "cidr": cfg["vpc_cidr"]}]
    _exporter(comp, host, password, egress)
    return host, True, egress


def _exporter(comp, host, password, egress_targets: list) -> None:
    """redis_exporter against the primary endpoint: ``rediss://`` (TLS verified against the
    image's system roots, which hold the Amazon CA ElastiCache's certificates chain to),
    AUTH with the token from a Secret. One replica: two would duplicate every series."""
    from .redis import EXPORTER_PORT, PORT

    name, a = comp._name, comp._a
    ns = a["namespace"]
    lbl = common.labels(EXPORTER_APP, name, "metrics")
    exporter_name = f"{name}-exporter"
    comp.exporter_secret = k8s.core.v1.Secret(
        exporter_name, metadata=common.meta(exporter_name, ns, lbl), type="Opaque",
        string_data=pulumi.Output.secret({"password": password}), opts=comp._child())
    container = common.container(
        "exporter", a["exporter_image"], common.resources("20m", "32Mi", "128Mi", None, "16Mi", "64Mi"),
        ports=[{"name": "metrics", "container_port": EXPORTER_PORT, "protocol": "TCP"}],
        env=[
            {"name": "REDIS_ADDR", "value": pulumi.Output.concat("rediss://", host, f":{PORT}")},
            common.secret_env("REDIS_PASSWORD", comp.exporter_secret.metadata.name, "password"),
            {"name": "REDIS_EXPORTER_WEB_LISTEN_ADDRESS", "value": f":{EXPORTER_PORT}"},
        ],
        readiness_probe=common.http_probe("/health", "metrics", period=15, timeout=5, failures=3),
        liveness_probe=common.tcp_probe("metrics", period=20, timeout=5, failures=3))
    rotation = rotation_trigger(f"{exporter_name}-rotation", {"password": password}, comp._child())
    datastore_exporter.deploy(comp, exporter_name, EXPORTER_APP, container, rotation, EXPORTER_PORT, egress_targets,
                              depends_on=(comp.replication_group, comp.exporter_secret))
