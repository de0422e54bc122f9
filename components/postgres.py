"""``Postgres``: New API's database with one connection shape and three backends.

- ``kubernetes``: a single-instance StatefulSet of the official image (dev);
- ``cloudnative-pg``: a CloudNativePG ``Cluster`` (HA on any cluster, WAL archiving/PITR);
- ``aws``: RDS PostgreSQL Multi-AZ plus a read replica (prod).

Whatever the backend, the component exposes ``host``, ``port``, ``read_host``,
``database``, ``username``, ``password`` (secret), ``dsn`` (secret, the
``postgresql://`` URL New API needs as ``SQL_DSN``; a keyword DSN would be sent to the
MySQL driver, NEWAPI-CONTRACT §3) and ``egress`` (where the app's NetworkPolicy must
let it connect).
"""


from typing import Optional, Sequence, TypedDict

import pulumi

from . import common, images, postgres_cnpg, postgres_incluster, postgres_rds
from .app import EgressTargetArgs, ResourcesArgs
from .postgres_base import ConfigMapKeyArgs
from .postgres_base import (APP, BACKENDS, BACKUP_USER, COMPONENT, DATA_MOUNT, EXPORTER_PORT,  # noqa: F401
                            CA_FILE, INITDB_ARGS, MONITOR_USER, PGDATA, PORT, RESERVED_USERS, SUPERUSER, dsn,
                            pod_selector, server_parameters, ssl_query)
from .postgres_incluster import postgresql_conf  # noqa: F401
from .secrets import generated_secret

DEFAULT_RESOURCES = {"cpu_request": "500m", "memory_request": "1Gi", "cpu_limit": None, "memory_limit": "2Gi"}
"""Postgres container sizing (memory-derived settings scale with ``memory_limit``)."""

DEFAULT_AWS = {
    "instance_class": "db.m6g.large",
    "engine_version": "16",
    "allocated_storage_gb": 50,
    "max_allocated_storage_gb": 200,
    "backup_retention_days": 30,
    "read_replica": True,
    "backup_window": "01:00-01:45",
    "maintenance_window": "sun:03:00-sun:04:00",
    "performance_insights_retention_days": 7,
}
"""RDS defaults. Backups: the matrix keeps the core database 30 days (seed 000)."""

DEFAULT_CNPG = {
    "instances": 3,
    "synchronous_replicas": 1,
    "image": images.CNPG_POSTGRES,
    "operator_namespace": "cnpg-system",
    "pod_monitor": True,
    "backup_schedule": "0 2 * * *",
    "backup_retention_days": 30,
    "api_server_cidrs": list(common.PRIVATE_CIDRS),
    "object_storage_cidrs": list(common.ANYWHERE),
}
"""CloudNativePG defaults: 3 instances, one synchronous standby, daily base backup; the
instances reach the API server at private addresses and object storage at public ones."""


class RdsExporterArgs(TypedDict, total=False):
    oidc_provider_arn: str
    """ARN of the EKS cluster's IAM OIDC provider (the exporter's role trusts it: IRSA)."""
    oidc_issuer: str
    """Its issuer without scheme (oidc.eks.<region>.amazonaws.com/id/<id>)."""
    api_cidrs: list[str]
    """Where the AWS APIs (RDS, STS) are reached on 443 (default: public addresses; add
    the subnets of interface VPC endpoints)."""
    image: str
    """Exporter image (default public.ecr.aws/qonto/prometheus-rds-exporter:0.18.1)."""


class PostgresAwsArgs(TypedDict, total=False):
    vpc_id: str
    """VPC of the cluster."""
    subnet_ids: Sequence[str]
    """Private subnets in at least two AZs (DB subnet group)."""
    vpc_cidr: str
    """The VPC's CIDR: app egress target."""
    source_security_group_ids: Sequence[str]
    """Security groups admitted on 5432 (the EKS nodes' or the pods' groups; nothing else)."""
    master_username: str
    """RDS master user (default newapi_admin): only the roles bootstrap Job logs in as it."""
    ca_bundle_pem: str
    """The RDS CA bundle (PEM): the stack puts it in a ConfigMap every client mounts."""
    ca_bundle_config_map: ConfigMapKeyArgs
    """Or an existing ConfigMap holding it: ``{"name": ..., "key": ...}``."""
    bootstrap_image: str
    """psql image of the roles bootstrap Job (default: ``image``)."""
    instance_class: str
    """RDS instance class (default db.m6g.large)."""
    engine_version: str
    """Major (or major.minor) version; minor upgrades are automatic (default 16)."""
    allocated_storage_gb: int
    """Initial gp3 storage (default 50)."""
    max_allocated_storage_gb: int
    """Storage autoscaling ceiling (default 200)."""
    backup_retention_days: int
    """Automated backups / PITR (default 30, the backup matrix; RDS max 35)."""
    read_replica: bool
    """Create a read replica (default true)."""
    backup_window: str
    """Daily backup window, UTC (default 01:00-01:45)."""
    maintenance_window: str
    """Weekly maintenance window, UTC (default sun:03:00-sun:04:00)."""
    performance_insights_retention_days: int
    """Performance Insights retention (default 7, the free tier)."""
    backup_exporter: RdsExporterArgs
    """prometheus-rds-exporter watching the automated backups (required with
    ``monitoring_namespace``: without it nothing would alert on them)."""


class CloudNativePgArgs(TypedDict, total=False):
    instances: int
    """Postgres instances (default 3: a primary and two standbys)."""
    synchronous_replicas: int
    """Synchronous standbys, quorum ``any`` (default 1; 0 = asynchronous)."""
    image: str
    """Operand image (default ghcr.io/cloudnative-pg/postgresql:16.6)."""
    operator_namespace: str
    """Namespace of the CNPG operator (default cnpg-system)."""
    pod_monitor: bool
    """Let the operator create a PodMonitor (needs the Prometheus Operator CRDs; default true)."""
    backup_bucket: str
    """S3 bucket for base backups and the WAL archive (required)."""
    backup_role_arn: str
    """IAM role (IRSA) the instances use to reach the bucket (required; no static keys)."""
    backup_region: str
    """Region of the bucket."""
    backup_schedule: str
    """5-field cron of the base backup (default 0 2 * * *)."""
    backup_retention_days: int
    """Recovery window kept in the object store (default 30)."""
    api_server_cidrs: Sequence[str]
    """Where the instance managers reach the Kubernetes API (443/6443; default the private ranges)."""
    object_storage_cidrs: Sequence[str]
    """Where barman-cloud reaches S3 on 443 (default anywhere public: private ranges are cut
    out unless listed explicitly, ``common.public_egress_peers``)."""


class ClientArgs(TypedDict, total=False):
    pod_labels: dict[str, str]
    """Labels of the client pods."""
    namespace: str
    """Their namespace (default: the database's)."""


class PostgresArgs(TypedDict, total=False):
    backend: str
    """``kubernetes`` | ``cloudnative-pg`` | ``aws`` (default ``aws``)."""
    namespace: pulumi.Input[str]
    """Namespace of the in-cluster backends (required for kubernetes and cloudnative-pg)."""
    database: str
    """Database name (default newapi)."""
    username: str
    """The app's role (default newapi; never a superuser)."""
    password: pulumi.Input[str]
    """The app role's password (secret). Generated here only when not given."""
    max_connections: int
    """Server max_connections (default 200; size it above pods x pool + reserve)."""
    storage_size: str
    """Volume size of the in-cluster backends (default 20Gi)."""
    storage_class: str
    """Storage class of the in-cluster backends (default: the cluster's default class)."""
    image: str
    """Postgres image of the kubernetes backend (default postgres:16.6)."""
    exporter_image: str
    """postgres_exporter image (default quay.io/prometheuscommunity/postgres-exporter:v0.16.0)."""
    resources: ResourcesArgs
    """Postgres container requests/limits (default 500m/1Gi, memory limit 2Gi)."""
    clients: Sequence[ClientArgs]
    """Pods allowed to connect: ``{"pod_labels": {...}, "namespace": optional}`` each."""
    monitoring_namespace: str
    """Namespace whose pods may scrape the exporter (optional)."""
    protect: bool
    """Protect every stateful resource (prod): ``protect``, retained volumes, deletion protection."""
    aws: PostgresAwsArgs
    """Settings of the ``aws`` backend."""
    cloudnative_pg: CloudNativePgArgs
    """Settings of the ``cloudnative-pg`` backend."""



def _validate(args: PostgresArgs) -> dict:
    a = dict(args)
    a.setdefault("backend", "aws")
    common.require(a["backend"] in BACKENDS, "backend", f"{a['backend']!r} is not one of {', '.join(BACKENDS)}")
    common.require(a.get("namespace") is not None, "namespace",
                   "is required (in-cluster backends run there; on aws the roles Job and the exporter do)")
    a.setdefault("database", "newapi")
    a.setdefault("username", "newapi")
    common.require(a["username"] not in RESERVED_USERS, "username",
                   f"{a['username']!r} is reserved: the app gets its own role, never a superuser")
    a.setdefault("max_connections", 200)
    common.require(20 <= int(a["max_connections"]) <= 10000, "max_connections", "must be between 20 and 10000")
    a.setdefault("storage_size", "20Gi")
    try:
        common.parse_quantity(a["storage_size"])
    except ValueError as exc:
        raise ValueError(f"storage_size: {exc}") from None
    a.setdefault("image", images.POSTGRES)
    a.setdefault("exporter_image", images.POSTGRES_EXPORTER)
    for key in ("image", "exporter_image"):
        try:
            common.split_image(a[key])
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    res = {**DEFAULT_RESOURCES, **{k: v for k, v in (a.get("resources") or {}).items()}}
    unknown = sorted(set(res) - set(DEFAULT_RESOURCES))
    common.require(not unknown, "resources", f"unknown keys {unknown}")
    a["resources"] = res
    a["clients"] = list(a.get("clients") or [])
    for client in a["clients"]:
        common.require(bool(client.get("pod_labels")), "clients", f"{client!r} needs pod_labels")
    a["protect"] = bool(a.get("protect", False))
    if a["backend"] == "aws":
        aws = {**DEFAULT_AWS, **(a.get("aws") or {})}
        common.require("allowed_cidrs" not in aws, "aws.allowed_cidrs",
                       "was replaced by source_security_group_ids (the nodes' or pods' security groups)")
        for key in ("vpc_id", "subnet_ids", "vpc_cidr", "source_security_group_ids"):
            common.require(bool(aws.get(key)), f"aws.{key}", "is required with backend 'aws'")
        common.require(len(aws["subnet_ids"]) >= 2, "aws.subnet_ids", "Multi-AZ needs subnets in two AZs")
        common.require(all(str(g).startswith("sg-") for g in aws["source_security_group_ids"]),
                       "aws.source_security_group_ids", f"{aws['source_security_group_ids']!r} must be sg-... ids")
        aws.setdefault("master_username", "newapi_admin")
        common.require(aws["master_username"] not in (a["username"], *RESERVED_USERS), "aws.master_username",
                       f"{aws['master_username']!r} must differ from the app role and the reserved roles")
        common.require(bool(aws.get("ca_bundle_pem")) != bool(aws.get("ca_bundle_config_map")), "aws.ca_bundle_pem",
                       "set exactly one of ca_bundle_pem and ca_bundle_config_map (the RDS CA for verify-full)")
        common.require(1 <= int(aws["backup_retention_days"]) <= 35, "aws.backup_retention_days",
                       "must be between 1 and 35 (RDS limit)")
        if a.get("monitoring_namespace"):
            exporter = dict(aws.get("backup_exporter") or {})
            for key in ("oidc_provider_arn", "oidc_issuer"):
                common.require(bool(exporter.get(key)), f"aws.backup_exporter.{key}",
                               "is required with monitoring: prometheus-rds-exporter reads the automated-backup "
                               "settings with an IAM role it assumes through IRSA (the EKS cluster's OIDC provider)")
            exporter.setdefault("api_cidrs", list(common.ANYWHERE))
            aws["backup_exporter"] = exporter
        a["aws"] = aws
    if a["backend"] == "cloudnative-pg":
        cnpg = {**DEFAULT_CNPG, **(a.get("cloudnative_pg") or {})}
        for key in ("backup_bucket", "backup_role_arn"):
            common.require(bool(cnpg.get(key)), f"cloudnative_pg.{key}",
                           "is required: WAL archiving and base backups go to object storage")
        common.require(int(cnpg["instances"]) >= 2, "cloudnative_pg.instances", "HA needs at least 2 instances")
        common.require(0 <= int(cnpg["synchronous_replicas"]) < int(cnpg["instances"]),
                       "cloudnative_pg.synchronous_replicas", "must be below instances")
        common.require(len(cnpg["backup_schedule"].split()) == 5, "cloudnative_pg.backup_schedule",
                       "must be a 5-field cron expression")
        a["cloudnative_pg"] = cnpg
    return a


class Postgres(pulumi.ComponentResource):
    """New API's Postgres, one connection shape whatever the backend.

    ``kubernetes`` (dev): a StatefulSet of the official image (one instance; HA is what
    the other backends are for), run as UID 10001 with a read-only root filesystem, PGDATA
    on a retained PVC, the seed's server parameters scaled to the memory limit, probes
    with ``pg_isready`` (startup and readiness; liveness is TCP so a slow query never
    restarts the database), a postgres_exporter sidecar on 9187 with a ``pg_monitor``-only
    role, a headless and a client Service and a NetworkPolicy admitting only the listed
    clients (and the monitoring namespace on the exporter port). The app role owns the
    database but is no superuser. No TLS in-cluster: the traffic never leaves the
    namespace and the NetworkPolicy admits only the app and the backup job, so the DSN
    uses ``sslmode=disable``; use ``cloudnative-pg`` or ``aws`` for TLS. A ``roles``
    sidecar applies the roles and every password (``postgres_roles``) at each start of
    the pod, and the pod template carries a rotation trigger, so a replaced credential
    rolls the pod and is live once it is Ready again.

    ``cloudnative-pg``: a CNPG ``Cluster`` (3 instances, one synchronous standby, TLS by
    the operator; every client verifies the server against the operator's CA, Secret
    ``<name>-ca``, with ``sslmode=verify-full``; PodMonitor), base backups and WAL archiving to S3
    through IRSA (point-in-time recovery, the matrix's "hourly incremental"), a
    ``ScheduledBackup`` and the operator's ``-rw``/``-ro`` Services.

    ``aws``: RDS PostgreSQL Multi-AZ encrypted with a rotated customer-managed KMS key,
    30-day automated backups (PITR), deletion protection and a final snapshot,
    Performance Insights (KMS), log exports, enhanced monitoring, ``rds.force_ssl`` (so
    ``sslmode=require``), a subnet group and a security group admitting only the
    nodes' or pods' security groups, never public. A read replica serves failover drills,
    reporting and backups: New API has one DSN and no read/write split (CONTRACT §3), so
    ``read_host`` is never used by the app. The master user is not the app's: a Job
    (``postgres_rds_clients``) creates the app, monitoring and backup roles as the master
    and is re-created whenever a credential changes; every client (app, exporter, backup,
    that Job) verifies the server against the RDS CA bundle (``sslmode=verify-full``). A
    postgres_exporter Deployment reads RDS's statistics as the monitoring role.
    """

    host: pulumi.Output[str]
    """Read-write endpoint host name."""
    port: pulumi.Output[int]
    """Port (5432)."""
    read_host: pulumi.Output[str]
    """Read-only endpoint (replica; the primary where there is none). Unused by New API."""
    database: pulumi.Output[str]
    """Database name."""
    username: pulumi.Output[str]
    """The app's role."""
    password: pulumi.Output[str]
    """The app role's password (secret)."""
    sslmode: pulumi.Output[str]
    """libpq sslmode clients use (disable in-cluster, verify-full on CNPG and RDS)."""
    backup_username: pulumi.Output[str]
    """Read-only role of the dump job (unset on cloudnative-pg, which backs up itself)."""
    backup_password: pulumi.Output[str]
    """Its password (secret)."""
    dsn: pulumi.Output[str]
    """``postgresql://user:password@host:port/db?sslmode=...`` for SQL_DSN (secret)."""
    egress: pulumi.Output[list[EgressTargetArgs]]
    """Where clients must be allowed to connect (``EgressTargetArgs`` of ApiService). The
    same list is available as plain values in ``egress_targets`` for composition-time
    wiring (ApiService and PostgresBackup build NetworkPolicies from it)."""

    def __init__(self, name: str, args: PostgresArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("new-api:index:Postgres", name, None, opts)
        a = _validate(args)
        self._name = name
        self._a = a
        password = a.get("password")
        if password is None:
            password = generated_secret(f"{name}-password", 32, pulumi.ResourceOptions(parent=self), mixed=False)
        password = pulumi.Output.secret(password)
        backend = a["backend"]
        #: Plain ``{"config_map" or "secret", "key"}`` of the CA bundle clients mount
        #: (``postgres_base.ca_volume``), set by a TLS backend whose clients verify the
        #: server (RDS, CloudNativePG); None otherwise.
        self.ca_bundle = None
        self.monitor_password = self.backup_password = None
        if backend != "cloudnative-pg":  # CNPG manages its roles and backs up itself
            child = pulumi.ResourceOptions(parent=self)
            self.monitor_password = generated_secret(f"{name}-monitor-password", 32, child, mixed=False)
            self.backup_password = generated_secret(f"{name}-backup-password", 32, child, mixed=False)
        build = {"kubernetes": postgres_incluster.build, "cloudnative-pg": postgres_cnpg.build,
                 "aws": postgres_rds.build}[backend]
        host, read_host, sslmode, egress = build(self, password)
        #: The sslmode as a plain value, for composition-time wiring (PostgresBackup).
        self.client_sslmode = sslmode

        self.host = pulumi.Output.from_input(host)
        self.read_host = pulumi.Output.from_input(read_host)
        self.port = pulumi.Output.from_input(PORT)
        self.database = pulumi.Output.from_input(a["database"])
        self.username = pulumi.Output.from_input(a["username"])
        self.password = password
        self.sslmode = pulumi.Output.from_input(sslmode)
        self.dsn = pulumi.Output.secret(pulumi.Output.all(self.host, password).apply(
            lambda v: dsn(a["username"], v[1], v[0], PORT, a["database"], sslmode)))
        self.egress_targets = egress
        self.egress = pulumi.Output.from_input(egress)
        self.backup_username = pulumi.Output.from_input(BACKUP_USER if self.backup_password is not None else None)
        self.backup_password = (pulumi.Output.secret(self.backup_password) if self.backup_password is not None
                                else pulumi.Output.from_input(None))
        self.register_outputs({
            "host": self.host, "port": self.port, "read_host": self.read_host, "database": self.database,
            "username": self.username, "password": self.password, "sslmode": self.sslmode,
            "dsn": self.dsn, "egress": self.egress, "backup_username": self.backup_username,
            "backup_password": self.backup_password,
        })

    # ------------------------------------------------------------------ helpers

    def _child(self, *deps, protect: bool = False, **kw) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=[d for d in deps if d is not None],
                                      protect=protect, **kw)

    def _client_peers(self) -> list:
        return common.client_peers(self._a["clients"])

    def _scrapers(self, port: int) -> list:
        ns = self._a.get("monitoring_namespace")
        return [{"from": [common.namespace_peer(ns)], "ports": common.tcp(port)}] if ns else []
