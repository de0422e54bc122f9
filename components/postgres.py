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


import hashlib
import json
from typing import Optional, Sequence, TypedDict
from urllib.parse import quote

import pulumi
import pulumi_kubernetes as k8s

from . import aws_common, common, images
from .secrets import generated_secret
from .app import EgressTargetArgs, ResourcesArgs

BACKENDS = ("kubernetes", "cloudnative-pg", "aws")
PORT = 5432
EXPORTER_PORT = 9187
APP = "postgres"
COMPONENT = "database"
#: The superuser of the in-cluster backend; the app never uses it (seed notes §4 #28).
SUPERUSER = "postgres"
#: Read-only role of the exporter (``pg_monitor``).
MONITOR_USER = "postgres_exporter"
#: PGDATA is a subdirectory of the volume: the volume root may hold ``lost+found``.
DATA_MOUNT = "/var/lib/postgresql/data"
PGDATA = f"{DATA_MOUNT}/pgdata"
#: Seed 000 initdb arguments (C collation: byte order, stable across glibc upgrades).
INITDB_ARGS = "--encoding=UTF-8 --lc-collate=C --lc-ctype=C --data-checksums"

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
}
"""CloudNativePG defaults: 3 instances, one synchronous standby, daily base backup."""

#: Initialises the roles once, on an empty data directory (docker-entrypoint-initdb.d).
#: The app role owns the database (and so, on Postgres 15+, the ``public`` schema) but is
#: no superuser; the exporter's role only reads statistics (``pg_monitor``). Passwords
#: come from the environment (secretKeyRef), never from this ConfigMap. A rotated
#: password is applied with ``ALTER ROLE``, see the component docstring.
INIT_ROLES_SCRIPT = r"""#!/bin/sh
set -eu
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=db="$POSTGRES_DB" \
  --set=app_user="$APP_USER" --set=app_password="$APP_PASSWORD" \
  --set=monitor_user="$MONITOR_USER" --set=monitor_password="$MONITOR_PASSWORD" <<'SQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
ALTER DATABASE :"db" OWNER TO :"app_user";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"app_user";
CREATE ROLE :"monitor_user" LOGIN PASSWORD :'monitor_password' CONNECTION LIMIT 3;
GRANT pg_monitor TO :"monitor_user";
GRANT CONNECT ON DATABASE :"db" TO :"monitor_user";
SQL
"""


class PostgresAwsArgs(TypedDict, total=False):
    vpc_id: str
    """VPC of the cluster."""
    subnet_ids: Sequence[str]
    """Private subnets in at least two AZs (DB subnet group)."""
    vpc_cidr: str
    """The VPC's CIDR: app egress target."""
    allowed_cidrs: Sequence[str]
    """Cluster node/pod CIDRs admitted by the security group on 5432 (nothing else)."""
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


def pod_selector(name: str) -> dict:
    """Selector labels of the ``kubernetes`` backend's Postgres pod."""
    return common.selector(APP, name, COMPONENT)


def dsn(username: str, password: str, host: str, port: int, database: str, sslmode: str) -> str:
    """The URL form New API requires (``postgresql://``; CONTRACT §3), credentials escaped."""
    return (f"postgresql://{quote(username, safe='')}:{quote(password, safe='')}@{host}:{port}/"
            f"{quote(database, safe='')}?sslmode={sslmode}")


def _mb(quantity: str) -> int:
    return int(common.parse_quantity(quantity) // 2**20)


def server_parameters(memory_limit: str, max_connections: int) -> dict:
    """Seed 000's ten server parameters (000:3478-3489), memory-derived ones scaled to the
    container's memory limit: at 4Gi they are exactly the seed's 1GB/3GB/64MB/256MB."""
    mem = _mb(memory_limit)
    return {
        "max_connections": str(max_connections),
        "shared_buffers": f"{max(32, mem // 4)}MB",
        "effective_cache_size": f"{max(64, mem * 3 // 4)}MB",
        "work_mem": f"{min(64, max(4, mem // 64))}MB",
        "maintenance_work_mem": f"{min(1024, max(16, mem // 16))}MB",
        "random_page_cost": "1.1",
        "effective_io_concurrency": "200",
        "checkpoint_completion_target": "0.9",
        "wal_buffers": "16MB",
        "default_statistics_target": "100",
    }


def postgresql_conf(memory_limit: str, max_connections: int) -> str:
    """The complete ``postgresql.conf`` of the kubernetes backend (loaded with
    ``-c config_file=``, so it must carry ``listen_addresses`` itself)."""
    params = {
        "listen_addresses": "'*'",
        "port": str(PORT),
        "unix_socket_directories": "'/var/run/postgresql'",
        "superuser_reserved_connections": "3",
        "password_encryption": "scram-sha-256",
        **server_parameters(memory_limit, max_connections),
        "dynamic_shared_memory_type": "posix",
        "max_wal_size": "1GB",
        "min_wal_size": "80MB",
        # Logs to stderr only (collected from the container); UTC like the app (CONTRACT §5).
        "logging_collector": "off",
        "log_timezone": "'UTC'",
        "timezone": "'UTC'",
        "log_line_prefix": "'%m [%p] %q%u@%d '",
        "log_min_duration_statement": "1000",
        "log_lock_waits": "on",
        "log_temp_files": "0",
        "idle_in_transaction_session_timeout": "600000",
        "datestyle": "'iso, mdy'",
        "lc_messages": "'C'",
        "default_text_search_config": "'pg_catalog.english'",
    }
    quoted = {"shared_buffers", "effective_cache_size", "work_mem", "maintenance_work_mem", "wal_buffers",
              "max_wal_size", "min_wal_size", "password_encryption", "dynamic_shared_memory_type"}
    lines = ["# Rendered by components/postgres.py; edit the component, not this file."]
    for key, value in params.items():
        lines.append(f"{key} = '{value}'" if key in quoted else f"{key} = {value}")
    return "\n".join(lines) + "\n"


def _checksum(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _validate(args: PostgresArgs) -> dict:
    a = dict(args)
    a.setdefault("backend", "aws")
    common.require(a["backend"] in BACKENDS, "backend", f"{a['backend']!r} is not one of {', '.join(BACKENDS)}")
    if a["backend"] != "aws":
        common.require(a.get("namespace") is not None, "namespace", f"is required with backend {a['backend']!r}")
    a.setdefault("database", "newapi")
    a.setdefault("username", "newapi")
    common.require(a["username"] not in (SUPERUSER, MONITOR_USER, "rdsadmin", "admin", "root"), "username",
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
        for key in ("vpc_id", "subnet_ids", "vpc_cidr", "allowed_cidrs"):
            common.require(bool(aws.get(key)), f"aws.{key}", "is required with backend 'aws'")
        common.require(len(aws["subnet_ids"]) >= 2, "aws.subnet_ids", "Multi-AZ needs subnets in two AZs")
        common.require(not any(c in ("0.0.0.0/0", "::/0") for c in aws["allowed_cidrs"]), "aws.allowed_cidrs",
                       "must name the cluster's CIDRs, never the internet")
        common.require(1 <= int(aws["backup_retention_days"]) <= 35, "aws.backup_retention_days",
                       "must be between 1 and 35 (RDS limit)")
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
    uses ``sslmode=disable``; use ``cloudnative-pg`` or ``aws`` for TLS. The role
    passwords are set once, at initdb: after rotating one, run
    ``ALTER ROLE newapi PASSWORD '...'`` through ``kubectl exec``.

    ``cloudnative-pg``: a CNPG ``Cluster`` (3 instances, one synchronous standby, TLS by
    the operator so ``sslmode=require``, PodMonitor), base backups and WAL archiving to S3
    through IRSA (point-in-time recovery, the matrix's "hourly incremental"), a
    ``ScheduledBackup`` and the operator's ``-rw``/``-ro`` Services.

    ``aws``: RDS PostgreSQL Multi-AZ encrypted with a rotated customer-managed KMS key,
    30-day automated backups (PITR), deletion protection and a final snapshot,
    Performance Insights (KMS), log exports, enhanced monitoring, ``rds.force_ssl`` (so
    ``sslmode=require``), a subnet group and a security group admitting only the
    cluster's CIDRs, never public. A read replica serves failover drills, reporting and
    backups: New API has one DSN and no read/write split (CONTRACT §3), so ``read_host``
    is never used by the app.
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
    """libpq sslmode the backend supports (disable in-cluster, require with TLS)."""
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
        if backend == "kubernetes":
            host, read_host, sslmode, egress = self._kubernetes(password)
        elif backend == "cloudnative-pg":
            host, read_host, sslmode, egress = self._cloudnative_pg(password)
        else:
            host, read_host, sslmode, egress = self._aws(password)

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
        self.register_outputs({
            "host": self.host, "port": self.port, "read_host": self.read_host, "database": self.database,
            "username": self.username, "password": self.password, "sslmode": self.sslmode,
            "dsn": self.dsn, "egress": self.egress,
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

    # ------------------------------------------------------------------ kubernetes

    def _kubernetes(self, password):
        name, a = self._name, self._a
        ns = a["namespace"]
        lbl = common.labels(APP, name, COMPONENT)
        sel = pod_selector(name)
        res = a["resources"]

        def internal(suffix: str) -> pulumi.Output:
            return generated_secret(f"{name}-{suffix}", 32, self._child(), mixed=False)

        self.credentials = k8s.core.v1.Secret(
            f"{name}-credentials", metadata=common.meta(f"{name}-credentials", ns, lbl), type="Opaque",
            string_data=pulumi.Output.secret({
                "username": a["username"],
                "password": password,
                "superuser-password": internal("superuser-password"),
                "monitor-password": internal("monitor-password"),
            }),
            opts=self._child())
        conf = postgresql_conf(res["memory_limit"], int(a["max_connections"]))
        self.config_map = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=common.meta(f"{name}-config", ns, lbl),
            data={"postgresql.conf": conf, "10-roles.sh": INIT_ROLES_SCRIPT}, opts=self._child())
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa", metadata=common.meta(name, ns, lbl), automount_service_account_token=False,
            opts=self._child())

        secret_name = self.credentials.metadata.name
        isready = ["pg_isready", "--host=127.0.0.1", f"--port={PORT}", f"--username={SUPERUSER}",
                   f"--dbname={a['database']}"]
        postgres = {
            "name": "postgres",
            "image": a["image"],
            "image_pull_policy": "IfNotPresent",
            "args": ["-c", "config_file=/etc/postgresql/postgresql.conf"],
            "ports": [{"name": "postgres", "container_port": PORT, "protocol": "TCP"}],
            "env": [
                {"name": "PGDATA", "value": PGDATA},
                {"name": "POSTGRES_USER", "value": SUPERUSER},
                common.secret_env("POSTGRES_PASSWORD", secret_name, "superuser-password"),
                {"name": "POSTGRES_DB", "value": a["database"]},
                {"name": "POSTGRES_INITDB_ARGS", "value": INITDB_ARGS},
                {"name": "APP_USER", "value": a["username"]},
                common.secret_env("APP_PASSWORD", secret_name, "password"),
                {"name": "MONITOR_USER", "value": MONITOR_USER},
                common.secret_env("MONITOR_PASSWORD", secret_name, "monitor-password"),
            ],
            "resources": common.resources(res["cpu_request"], res["memory_request"], res["memory_limit"],
                                          res.get("cpu_limit") or None, "64Mi", "1Gi"),
            "security_context": common.container_security_context(),
            # initdb on a fresh volume: up to 5 minutes before the first readiness check.
            "startup_probe": common.exec_probe(isready, period=10, timeout=5, failures=30),
            # 127.0.0.1, not the socket: initdb's temporary server listens on the socket only.
            "readiness_probe": common.exec_probe(isready, period=10, timeout=5, failures=3),
            "liveness_probe": common.tcp_probe("postgres", period=10, timeout=5, failures=6),
            "volume_mounts": [
                common.mount("data", DATA_MOUNT),
                common.mount("run", "/var/run/postgresql"),
                common.mount("tmp", "/tmp"),
                common.mount("config", "/etc/postgresql", read_only=True),
                common.mount("initdb", "/docker-entrypoint-initdb.d", read_only=True),
            ],
        }
        exporter = {
            "name": "exporter",
            "image": a["exporter_image"],
            "image_pull_policy": "IfNotPresent",
            "args": [f"--web.listen-address=:{EXPORTER_PORT}"],
            "ports": [{"name": "metrics", "container_port": EXPORTER_PORT, "protocol": "TCP"}],
            "env": [
                {"name": "DATA_SOURCE_URI", "value": f"127.0.0.1:{PORT}/{a['database']}?sslmode=disable"},
                {"name": "DATA_SOURCE_USER", "value": MONITOR_USER},
                common.secret_env("DATA_SOURCE_PASS", secret_name, "monitor-password"),
            ],
            "resources": common.resources("10m", "32Mi", "128Mi", None, "16Mi", "64Mi"),
            "security_context": common.container_security_context(),
            "readiness_probe": common.http_probe("/", "metrics", period=15, timeout=5, failures=3),
            "liveness_probe": common.tcp_probe("metrics", period=20, timeout=5, failures=3),
        }
        config_items = lambda key: {"name": self.config_map.metadata.name,  # noqa: E731
                                    "items": [{"key": key, "path": key}], "default_mode": 0o555}
        pod_annotations = {
            "new-api.io/config-checksum": _checksum(conf + INIT_ROLES_SCRIPT),
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(EXPORTER_PORT),
        }
        single = common.exemption_annotations(
            ["K8S-034"], "in-cluster Postgres is one instance by design (dev); HA is the cloudnative-pg "
                         "or aws backend")
        self.headless_service = k8s.core.v1.Service(
            f"{name}-headless", metadata=common.meta(f"{name}-headless", ns, lbl),
            spec=common.service_spec(sel, [("postgres", PORT), ("metrics", EXPORTER_PORT)], headless=True),
            opts=self._child())
        self.statefulset = k8s.apps.v1.StatefulSet(
            name,
            metadata=common.meta(name, ns, lbl, single),
            spec={
                "replicas": 1,
                "service_name": self.headless_service.metadata.name,
                "pod_management_policy": "OrderedReady",
                "update_strategy": {"type": "RollingUpdate"},
                # Volumes outlive the StatefulSet: deleting or scaling it never deletes data.
                "persistent_volume_claim_retention_policy": {"when_deleted": "Retain", "when_scaled": "Retain"},
                "selector": {"match_labels": sel},
                "template": {
                    "metadata": {"labels": lbl, "annotations": pod_annotations},
                    "spec": common.restricted_pod_spec(
                        service_account=self.service_account.metadata.name,
                        containers=[postgres, exporter],
                        volumes=[
                            common.empty_dir("run", "16Mi"),
                            common.empty_dir("tmp", "256Mi"),
                            {"name": "config", "config_map": config_items("postgresql.conf")},
                            {"name": "initdb", "config_map": config_items("10-roles.sh")},
                        ],
                        # Fast shutdown (the image's STOPSIGNAL is SIGINT) plus a checkpoint.
                        termination_grace_seconds=60,
                    ),
                },
                "volume_claim_templates": [common.volume_claim("data", lbl, a["storage_size"], a.get("storage_class"))],
            },
            opts=self._child(self.credentials, self.config_map, protect=a["protect"],
                             retain_on_delete=a["protect"]),
        )
        self.service = k8s.core.v1.Service(
            name, metadata=common.meta(name, ns, lbl),
            spec=common.service_spec(sel, [("postgres", PORT)]),
            opts=self._child(self.statefulset))
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            name, metadata=common.meta(name, ns, lbl),
            spec={
                "pod_selector": {"match_labels": sel},
                "policy_types": ["Ingress", "Egress"],
                "ingress": ([{"from": self._client_peers(), "ports": [{"protocol": "TCP", "port": PORT}]}]
                            if a["clients"] else []) + self._scrapers(EXPORTER_PORT),
                # Postgres initiates nothing.
                "egress": [],
            },
            opts=self._child())
        host = pulumi.Output.concat(self.service.metadata.name, ".", ns, ".svc")
        # In-cluster traffic without TLS: see the class docstring.
        egress = [{"port": PORT, "pod_labels": sel}]
        return host, host, "disable", egress

    # ------------------------------------------------------------------ cloudnative-pg

    def _cloudnative_pg(self, password):
        name, a = self._name, self._a
        ns = a["namespace"]
        c = a["cloudnative_pg"]
        lbl = common.labels(APP, name, COMPONENT)
        res = a["resources"]
        self.credentials = k8s.core.v1.Secret(
            f"{name}-app", metadata=common.meta(f"{name}-app", ns, lbl), type="kubernetes.io/basic-auth",
            string_data=pulumi.Output.secret({"username": a["username"], "password": password}),
            opts=self._child())
        params = server_parameters(res["memory_limit"], int(a["max_connections"]))
        params.update({"log_min_duration_statement": "1000", "log_timezone": "UTC", "timezone": "UTC",
                       "idle_in_transaction_session_timeout": "600000"})
        postgresql: dict = {"parameters": params}
        if int(c["synchronous_replicas"]) > 0:
            # A commit waits for one standby: no committed transaction is lost on failover.
            postgresql["synchronous"] = {"method": "any", "number": int(c["synchronous_replicas"]),
                                         "dataDurability": "required"}
        region = c.get("backup_region")
        destination = f"s3://{c['backup_bucket']}/cnpg/{name}/"
        resources = common.resources(res["cpu_request"], res["memory_request"], res["memory_limit"],
                                     res.get("cpu_limit") or None, "64Mi", "1Gi")
        spec = {
            "description": "New API database",
            "instances": int(c["instances"]),
            "imageName": c["image"],
            "imagePullPolicy": "IfNotPresent",
            "enableSuperuserAccess": False,
            "postgresql": postgresql,
            "bootstrap": {"initdb": {
                "database": a["database"], "owner": a["username"],
                "secret": {"name": self.credentials.metadata.name},
                "encoding": "UTF8", "localeCollate": "C", "localeCType": "C", "dataChecksums": True,
            }},
            "storage": {"size": a["storage_size"],
                        **({"storageClass": a["storage_class"]} if a.get("storage_class") else {})},
            "resources": resources,
            "affinity": {"enablePodAntiAffinity": True, "topologyKey": "kubernetes.io/hostname",
                         "podAntiAffinityType": "preferred"},
            "topologySpreadConstraints": [{
                "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"cnpg.io/cluster": name}},
            }],
            "primaryUpdateStrategy": "unsupervised",
            "monitoring": {"enablePodMonitor": bool(c["pod_monitor"])},
            "serviceAccountTemplate": {"metadata": {"annotations": {
                "eks.amazonaws.com/role-arn": c["backup_role_arn"]}}},
            "backup": {
                "retentionPolicy": f"{int(c['backup_retention_days'])}d",
                "barmanObjectStore": {
                    "destinationPath": destination,
                    "s3Credentials": {"inheritFromIAMRole": True},
                    "wal": {"compression": "gzip", "maxParallel": 2},
                    "data": {"compression": "gzip", "jobs": 2},
                },
            },
        }
        if region:
            spec["env"] = [{"name": "AWS_REGION", "value": region}]
        self.cluster = k8s.apiextensions.CustomResource(
            name,
            api_version="postgresql.cnpg.io/v1",
            kind="Cluster",
            metadata=common.meta(name, ns, lbl, {
                # The operator reports readiness as a condition; without this the provider
                # would not wait for it.
                "pulumi.com/waitFor": "condition=Ready",
            }),
            spec=spec,
            # Deleting the Cluster deletes its PVCs (owner references): protected and
            # retained in prod.
            opts=self._child(self.credentials, protect=a["protect"], retain_on_delete=a["protect"],
                             custom_timeouts=pulumi.CustomTimeouts(create="30m", update="30m")),
        )
        self.scheduled_backup = k8s.apiextensions.CustomResource(
            f"{name}-daily",
            api_version="postgresql.cnpg.io/v1",
            kind="ScheduledBackup",
            metadata=common.meta(f"{name}-daily", ns, common.labels(APP, name, "backup")),
            spec={
                # CNPG cron has a leading seconds field.
                "schedule": f"0 {c['backup_schedule']}",
                "cluster": {"name": name},
                "method": "barmanObjectStore",
                "backupOwnerReference": "self",
                "immediate": True,
            },
            opts=self._child(self.cluster))
        cluster_sel = {"cnpg.io/cluster": name}
        peers_self = [{"pod_selector": {"match_labels": cluster_sel}}]
        operator = [{"namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": c["operator_namespace"]}}}]
        outside = [{"ip_block": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}}]
        ingress = [
            # Replication between instances and the instance manager's status port.
            {"from": peers_self, "ports": [{"protocol": "TCP", "port": PORT}, {"protocol": "TCP", "port": 8000}]},
            {"from": operator, "ports": [{"protocol": "TCP", "port": PORT}, {"protocol": "TCP", "port": 8000}]},
        ]
        if a["clients"]:
            ingress.append({"from": self._client_peers(), "ports": [{"protocol": "TCP", "port": PORT}]})
        ingress += self._scrapers(EXPORTER_PORT)
        operator_pods = common.exemption_annotations(
            ["K8S-040"], f"selects the CloudNativePG instance pods the operator creates for Cluster {name}; "
                         "no workload object of this stack carries their labels")
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            name, metadata=common.meta(name, ns, lbl, operator_pods),
            spec={
                "pod_selector": {"match_labels": cluster_sel},
                "policy_types": ["Ingress", "Egress"],
                "ingress": ingress,
                "egress": [
                    {"to": peers_self, "ports": [{"protocol": "TCP", "port": PORT},
                                                 {"protocol": "TCP", "port": 8000}]},
                    # The instance manager talks to the Kubernetes API; barman-cloud to S3 (HTTPS).
                    {"to": outside, "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]},
                ],
            },
            opts=self._child())
        host = pulumi.Output.concat(name, "-rw.", ns, ".svc")
        read_host = pulumi.Output.concat(name, "-ro.", ns, ".svc")
        # The operator issues server certificates: TLS is always on.
        return host, read_host, "require", [{"port": PORT, "pod_labels": cluster_sel}]

    # ------------------------------------------------------------------ aws

    def _aws(self, password):
        import pulumi_aws as aws

        name, a = self._name, self._a
        cfg = a["aws"]
        protect = a["protect"]
        tags = {"app": "new-api", "component": "database", "managed-by": "pulumi"}
        self.kms_key, self.kms_alias = aws_common.kms_key(
            aws, name, f"Encrypts the New API RDS database {name}, its snapshots and Performance Insights",
            tags, self, protect, alias=f"{name}-rds")
        self.subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets", description=f"Private subnets of {name}", subnet_ids=list(cfg["subnet_ids"]),
            tags=tags, opts=self._child())
        self.security_group = aws_common.datastore_security_group(
            aws, name, "Postgres", PORT, cfg["vpc_id"], cfg["allowed_cidrs"], tags, self._child())
        major = str(cfg["engine_version"]).split(".")[0]
        params = server_parameters("4Gi", int(a["max_connections"]))
        self.parameter_group = aws.rds.ParameterGroup(
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
            tags=tags, opts=self._child())
        monitoring_role = aws.iam.Role(
            f"{name}-monitoring",
            description=f"RDS enhanced monitoring of {name}",
            assume_role_policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "monitoring.rds.amazonaws.com"},
                               "Action": "sts:AssumeRole"}],
            }),
            tags=tags, opts=self._child())
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-monitoring",
            role=monitoring_role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole",
            opts=self._child())
        self.monitoring_role = monitoring_role
        common_args = dict(
            instance_class=cfg["instance_class"],
            storage_encrypted=True,
            kms_key_id=self.kms_key.arn,
            publicly_accessible=False,
            vpc_security_group_ids=[self.security_group.id],
            parameter_group_name=self.parameter_group.name,
            auto_minor_version_upgrade=True,
            performance_insights_enabled=True,
            performance_insights_kms_key_id=self.kms_key.arn,
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
        self.instance = aws.rds.Instance(
            f"{name}-primary",
            identifier=f"{name}-primary",
            engine="postgres",
            engine_version=str(cfg["engine_version"]),
            db_name=a["database"],
            username=a["username"],
            password=password,
            port=PORT,
            multi_az=True,
            storage_type="gp3",
            allocated_storage=int(cfg["allocated_storage_gb"]),
            max_allocated_storage=int(cfg["max_allocated_storage_gb"]),
            db_subnet_group_name=self.subnet_group.name,
            backup_window=cfg["backup_window"],
            maintenance_window=cfg["maintenance_window"],
            skip_final_snapshot=False,
            final_snapshot_identifier=f"{name}-primary-final",
            delete_automated_backups=False,
            **common_args,
            opts=self._child(attachment, protect=protect))
        read_host = self.instance.address
        self.replica = None
        if cfg["read_replica"]:
            self.replica = aws.rds.Instance(
                f"{name}-replica",
                identifier=f"{name}-replica",
                replicate_source_db=self.instance.identifier,
                # Single-AZ: the primary is Multi-AZ already; the replica serves reads and drills.
                multi_az=False,
                db_subnet_group_name=self.subnet_group.name,
                # RDS rejects a final snapshot of a read replica (InvalidParameterCombination:
                # "FinalDBSnapshotIdentifier can not be specified when deleting a replica
                # instance"); the primary's final snapshot and backups hold the data.
                skip_final_snapshot=True,
                **common_args,
                opts=self._child(attachment, protect=protect))
            read_host = self.replica.address
        return self.instance.address, read_host, "require", [{"port": PORT, "cidr": cfg["vpc_cidr"]}]
