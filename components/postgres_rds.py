"""The ``aws`` backend of ``Postgres`` (prod): RDS PostgreSQL Multi-AZ, its KMS key,
subnet, parameter and security groups, enhanced monitoring and a read replica. See
``Postgres`` for the whole picture."""

import json

import pulumi

from . import aws_common, images, postgres_rds_clients, rds_exporter
from .postgres_base import PORT, server_parameters
from .secrets import generated_secret


def primary_identifier(name: str) -> str:
    """The RDS identifier of the primary of the Postgres component ``name`` (the instance
    whose automated backups the monitoring watches)."""
    return f"{name}-primary"


def build(comp, password):
    import pulumi_aws as aws

    name, a = comp._name, comp._a
    cfg = a["aws"]
    protect = a["protect"]
    tags = aws_common.tags("component", "database")
    master_password = generated_secret(f"{name}-master-password", 32, comp._child(), mixed=False)
    comp.kms_key, comp.kms_alias = aws_common.kms_key(
        aws, name, f"Encrypts the New API RDS database {name}, its snapshots and Performance Insights",
        tags, comp, protect, alias=f"{name}-rds")
    comp.subnet_group = aws.rds.SubnetGroup(
        f"{name}-subnets", description=f"Private subnets of {name}", subnet_ids=list(cfg["subnet_ids"]),
        tags=tags, opts=comp._child())
    comp.security_group = aws_common.datastore_security_group(
        aws, name, "Postgres", PORT, cfg["vpc_id"], cfg["source_security_group_ids"], tags,
        comp._child())
    major = str(cfg["engine_version"]).split(".")[0]
    params = server_parameters("4Gi", int(a["max_connections"]))
    comp.parameter_group = aws.rds.ParameterGroup(
        f"{name}-params",
        family=f"postgres{major}",
        description=f"New API Postgres {major}: TLS only, pool-sized max_connections",
        parameters=[
            {"name": "rds.force_ssl", "value": "1", "apply_method": "pending-reboot"},
            {"name": "max_connections", "value": str(a["max_connections"]), "apply_method": "pending-reboot"},
            {"name": "random_page_cost", "value": params["random_page_cost"]},
            {"name": "effective_io_concurrency", "value": params["effective_io_concurrency"]},
            {"name": "default_statistics_target", "value": params["default_statistics_target"]},
            {"name": "work_mem", "value": str(64 * 1024)},  # kB: seed 000 64MB
            {"name": "maintenance_work_mem", "value": str(256 * 1024)},  # kB: seed 000 256MB
            {"name": "log_min_duration_statement", "value": "1000"},
            {"name": "log_lock_waits", "value": "1"},
            {"name": "idle_in_transaction_session_timeout", "value": "600000"},
            {"name": "timezone", "value": "UTC"},
        ],
        tags=tags, opts=comp._child())
    monitoring_role = aws.iam.Role(
        f"{name}-monitoring",
        description=f"RDS enhanced monitoring of {name}",
        assume_role_policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "monitoring.rds.amazonaws.com"},
                           "Action": "sts:AssumeRole"}],
        }),
        tags=tags, opts=comp._child())
    attachment = aws.iam.RolePolicyAttachment(
        f"{name}-monitoring",
        role=monitoring_role.name,
        policy_arn="arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole",
        opts=comp._child())
    comp.monitoring_role = monitoring_role
    common_args = dict(
        instance_class=cfg["instance_class"],
        storage_encrypted=True,
        kms_key_id=comp.kms_key.arn,
        publicly_accessible=False,
        vpc_security_group_ids=[comp.security_group.id],
        parameter_group_name=comp.parameter_group.name,
        auto_minor_version_upgrade=True,
        performance_insights_enabled=True,
        performance_insights_kms_key_id=comp.kms_key.arn,
        performance_insights_retention_period=int(cfg["performance_insights_retention_days"]),
        enabled_cloudwatch_logs_exports=["postgresql", "upgrade"],
        monitoring_interval=60,
        monitoring_role_arn=monitoring_role.arn,
        copy_tags_to_snapshot=True,
        deletion_protection=True,
        backup_retention_period=int(cfg["backup_retention_days"]),
        ca_cert_identifier="rds-ca-rsa2048-g1",
        apply_immediately=False,
        tags=tags,
    )
    comp.instance = aws.rds.Instance(
        f"{name}-primary",
        identifier=primary_identifier(name),
        engine="postgres",
        engine_version=str(cfg["engine_version"]),
        db_name=a["database"],
        # The administrator, not the app: only the roles Job logs in as it. Changing it
        # replaces the instance (README "Data tier": existing stacks keep theirs).
        username=cfg["master_username"],
        password=master_password,
        port=PORT,
        multi_az=True,
        storage_type="gp3",
        allocated_storage=int(cfg["allocated_storage_gb"]),
        max_allocated_storage=int(cfg["max_allocated_storage_gb"]),
        db_subnet_group_name=comp.subnet_group.name,
        backup_window=cfg["backup_window"],
        maintenance_window=cfg["maintenance_window"],
        skip_final_snapshot=False,
        final_snapshot_identifier=f"{name}-primary-final",
        delete_automated_backups=False,
        **common_args,
        opts=comp._child(attachment, protect=protect))
    read_host = comp.instance.address
    comp.replica = None
    if cfg["read_replica"]:
        comp.replica = aws.rds.Instance(
            f"{name}-replica",
            identifier=f"{name}-replica",
            replicate_source_db=comp.instance.identifier,
            # Single-AZ: the primary is Multi-AZ already; the replica serves reads and drills.
            multi_az=False,
            db_subnet_group_name=comp.subnet_group.name,
            # RDS rejects a final snapshot of a read replica (InvalidParameterCombination:
            # "FinalDBSnapshotIdentifier can not be specified when deleting a replica
            # instance"); the primary's final snapshot and backups hold the data.
            skip_final_snapshot=True,
            **common_args,
            opts=comp._child(attachment, protect=protect))
        read_host = comp.replica.address
    egress = [{"port": PORT, "cidr": cfg["vpc_cidr"]}]
    postgres_rds_clients.build(comp, password, master_password, egress)
    comp.rds_exporter = comp.rds_exporter_role = None
    if cfg.get("backup_exporter"):
        exporter = cfg["backup_exporter"]
        rds_exporter.deploy(comp, {k: exporter[k] for k in ("oidc_provider_arn", "oidc_issuer")},
                            list(exporter["api_cidrs"]), exporter.get("image") or images.RDS_EXPORTER)
    return comp.instance.address, read_host, "verify-full", egress

