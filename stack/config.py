"""The typed stack configuration: one schema for every setting of a stack.

Only the composition (``__main__.py``) reads config, through :func:`load`; components
take typed args. Defaults live here and are production-grade; a stack file holds only
what differs for that stack (dev is smaller, never less safe).

Every error names the stack file, the key path as you would pass it to
``pulumi config set --path``, the bad value and what is allowed, and is raised before
any resource is registered.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Annotated, Any, Literal, Optional

import pulumi
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo,
                      model_validator)
from pydantic.alias_generators import to_camel

from components import app as app_component
from components import certificate_alerts
from components import delivery as delivery_component
from components import common, images, postgres_base, upgrade_snapshot
from components import entry as entry_component
from components import monitoring_config

_R = app_component.DEFAULT_RESOURCES
_A = app_component.DEFAULT_AUTOSCALING
_P = app_component.DEFAULT_POOL

PROJECT = "new-api"

#: Postgres connections kept free for superuser, exporters, backups and migrations
#: tooling when sizing the app's pools (CONTRACT §3 "Pool sizing").
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_SECRETISH = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE|CREDENTIAL|_DSN$|CONN_STRING)", re.I)


class ConfigError(pulumi.RunError):
    """Bad stack configuration. Raised before any resource is registered; the engine
    prints the message without a traceback."""


# --------------------------------------------------------------------------- field types

def _quantity(value: str) -> str:
    common.parse_quantity(value)
    return value


def _image(value: str) -> str:
    common.split_image(value)
    return value


def _dns_label(value: str) -> str:
    if not common.is_dns_label(value):
        raise ValueError("must be a DNS-1123 label: lowercase letters, digits and '-', 1-63 chars")
    return value


def _hostname(value: str) -> str:
    if not _HOSTNAME.match(value):
        raise ValueError("must be a fully qualified lowercase DNS name without wildcard, "
                         "e.g. api.example.com")
    return value


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"must be a CIDR block such as 10.244.0.0/16 ({exc})") from None
    return value


def _egress_cidr(value: str) -> str:
    net = ipaddress.ip_network(_cidr(value))
    for r in map(ipaddress.ip_network, common.LINK_LOCAL_CIDRS):
        if r.version == net.version and net.overlaps(r) and not r.subnet_of(net):
            raise ValueError("overlaps link-local (169.254.0.0/16, fe80::/10: the instance metadata service); "
                             "an egress destination never includes it")
    return value


def _proxy_cidr(value: str) -> str:
    if ipaddress.ip_network(_cidr(value)).prefixlen == 0:
        raise ValueError("must not be a catch-all range: every client could spoof X-Forwarded-For")
    return value


def _email(value: str) -> str:
    if not _EMAIL.match(value) or value.endswith(("example.com", "example.org")):
        raise ValueError("must be a real, reachable e-mail address (ACME expiry notices go there)")
    return value


Quantity = Annotated[str, AfterValidator(_quantity)]
Image = Annotated[str, AfterValidator(_image)]
DnsLabel = Annotated[str, AfterValidator(_dns_label)]
Hostname = Annotated[str, AfterValidator(_hostname)]
Cidr = Annotated[str, AfterValidator(_cidr)]
ProxyCidr = Annotated[str, AfterValidator(_proxy_cidr)]
EgressCidr = Annotated[str, AfterValidator(_egress_cidr)]
Email = Annotated[str, AfterValidator(_email)]
PositiveInt = Annotated[int, Field(ge=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel,
                              populate_by_name=True, frozen=True)


# --------------------------------------------------------------------------- sections

class Resources(_Model):
    """Container requests and limits (seed 000: 250m/256Mi requests, 500m/512Mi limits)."""
    cpu_request: Quantity = _R["cpu_request"]
    memory_request: Quantity = _R["memory_request"]
    cpu_limit: Optional[Quantity] = _R["cpu_limit"]
    memory_limit: Quantity = _R["memory_limit"]

    @model_validator(mode="after")
    def _requests_within_limits(self):
        if common.parse_quantity(self.memory_request) > common.parse_quantity(self.memory_limit):
            raise _field_error("memoryRequest", self.memory_request,
                               f"memoryRequest {self.memory_request} exceeds memoryLimit {self.memory_limit}")
        if self.cpu_limit and common.parse_quantity(self.cpu_request) > common.parse_quantity(self.cpu_limit):
            raise _field_error("cpuRequest", self.cpu_request,
                               f"cpuRequest {self.cpu_request} exceeds cpuLimit {self.cpu_limit}")
        if common.parse_quantity(self.memory_limit) < 64 * 2**20:
            raise _field_error("memoryLimit", self.memory_limit, "is below 64Mi; New API will not start")
        return self


class Autoscaling(_Model):
    """HPA for the serving (slave) workload. Seed 000: min 3, max 10, CPU 80 %, memory 80 %."""
    min_replicas: PositiveInt = _A["min_replicas"]
    max_replicas: PositiveInt = _A["max_replicas"]
    target_cpu_percent: Annotated[int, Field(ge=10, le=100)] = _A["target_cpu_percent"]
    target_memory_percent: Annotated[int, Field(ge=10, le=100)] = _A["target_memory_percent"]
    scale_down_stabilization_seconds: Annotated[int, Field(ge=0, le=3600)] = _A["scale_down_stabilization_seconds"]

    @model_validator(mode="after")
    def _bounds(self):
        if self.max_replicas <= self.min_replicas:
            raise _field_error("maxReplicas", self.max_replicas,
                               f"maxReplicas ({self.max_replicas}) must be greater than minReplicas "
                               f"({self.min_replicas}), or the HPA can never scale")
        return self


class Pool(_Model):
    """Per-pod database pool. New API defaults to 1000 open connections per pod
    (CONTRACT §2a), so it is always set explicitly."""
    max_open_conns: PositiveInt = _P["max_open_conns"]
    max_idle_conns: Annotated[int, Field(ge=0)] = _P["max_idle_conns"]
    max_lifetime_seconds: PositiveInt = _P["max_lifetime_seconds"]

    @model_validator(mode="after")
    def _idle_le_open(self):
        if self.max_idle_conns > self.max_open_conns:
            raise _field_error("maxIdleConns", self.max_idle_conns,
                               f"maxIdleConns ({self.max_idle_conns}) exceeds maxOpenConns ({self.max_open_conns})")
        return self


class Delivery(_Model):
    """Progressive delivery of the serving pods (Argo Rollouts; seed 000 §13.4.4)."""
    strategy: Literal["rolling", "blue-green", "canary"] = "rolling"
    canary_steps: Annotated[list[Annotated[int, Field(ge=1, le=99)]], Field(min_length=1)] = \
        list(delivery_component.DEFAULT_DELIVERY["canary_steps"])
    pause_seconds: Annotated[int, Field(ge=0, le=86400)] = delivery_component.DEFAULT_DELIVERY["pause_seconds"]
    success_rate: Annotated[float, Field(gt=0, le=1)] = delivery_component.DEFAULT_DELIVERY["success_rate"]
    latency_p95_seconds: Annotated[float, Field(gt=0)] = delivery_component.DEFAULT_DELIVERY["latency_p95_seconds"]
    analysis_count: Annotated[int, Field(ge=1, le=100)] = delivery_component.DEFAULT_DELIVERY["analysis_count"]
    analysis_failure_limit: Annotated[int, Field(ge=0)] = \
        delivery_component.DEFAULT_DELIVERY["analysis_failure_limit"]
    rollouts_namespace: DnsLabel = delivery_component.DEFAULT_DELIVERY["rollouts_namespace"]

    @model_validator(mode="after")
    def _can_fail(self):
        if self.analysis_failure_limit >= self.analysis_count:
            raise _field_error("analysisFailureLimit", self.analysis_failure_limit,
                               f"must be below analysisCount ({self.analysis_count}), or the analysis can "
                               "never fail (seed 000's count 3 / failureLimit 3)")
        if self.canary_steps != sorted(set(self.canary_steps)):
            raise _field_error("canarySteps", self.canary_steps, "must be strictly increasing weights")
        return self

    def component_args(self) -> dict:
        """DeliveryArgs for ApiService (everything but the strategy)."""
        return self.model_dump(exclude={"strategy"})


class App(_Model):
    """The New API tier: one migrating master plus autoscaled slaves."""
    image: Image = images.NEW_API
    image_pull_policy: Literal["IfNotPresent", "Always"] = "IfNotPresent"
    resources: Resources = Resources()
    master_resources: Resources = Resources()
    autoscaling: Autoscaling = Autoscaling()
    pool: Pool = Pool()
    #: Idle timeout between upstream stream chunks (New API default 300 s).
    streaming_timeout_seconds: Annotated[int, Field(ge=30, le=3600)] = app_component.DEFAULT_STREAMING_TIMEOUT
    #: Graceful drain after SIGTERM (New API default 120 s).
    shutdown_timeout_seconds: Annotated[int, Field(ge=5, le=900)] = app_component.DEFAULT_SHUTDOWN_TIMEOUT
    #: Sleep before SIGTERM so endpoints are removed before the listener closes.
    pre_stop_seconds: Annotated[int, Field(ge=1, le=60)] = app_component.DEFAULT_PRE_STOP
    #: Gin trusted proxies: the ingress controller's pod range (required).
    trusted_proxies: Annotated[list[ProxyCidr], Field(min_length=1)]
    #: SESSION_COOKIE_SECURE; defaults to on whenever TLS is on.
    session_cookie_secure: Optional[bool] = None
    timezone: str = "UTC"
    admin_username: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{3,12}$")] = "root"
    #: Escape hatch: extra non-secret env for both workloads.
    extra_env: dict[str, str] = {}
    priority_class_name: Optional[DnsLabel] = None
    #: Create priorityClassName with this value (above logging and monitoring, K8S-038).
    priority_class_value: Optional[Annotated[int, Field(ge=1, le=1_000_000_000)]] = None
    delivery: Delivery = Delivery()
    #: The newest New API version this stack has run (its database schema's version): the
    #: deploy workflow advances it after a deploy passes its smoke check. While app.image
    #: differs from it, a copy of the database is taken before the master starts the new
    #: version (components/upgrade_snapshot.py); unset on a stack that never ran New API.
    deployed_version: Optional[Annotated[str, Field(pattern=r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")]] = None
    #: New API's migrations only go forward: an image older than deployedVersion is refused
    #: unless this is set, after the schema was restored (docs/runbook-upgrade.md).
    allow_downgrade: bool = False

    @model_validator(mode="after")
    def _no_silent_downgrade(self):
        if not self.deployed_version:
            return self
        target = upgrade_snapshot.image_version(self.image)
        if target is None:
            raise _field_error("image", self.image, f"needs a version tag (e.g. calciumion/new-api:v1.0.0@sha256:...) "
                               f"to be compared with app.deployedVersion {self.deployed_version}")
        try:
            older = upgrade_snapshot.version_key(target) < upgrade_snapshot.version_key(self.deployed_version)
        except ValueError as exc:
            raise _field_error("image", self.image, f"{exc}: app.deployedVersion is set, so the image tag must be a "
                               "version to tell an upgrade from a downgrade") from None
        if older and not self.allow_downgrade:
            raise _field_error("image", self.image,
                               f"{target} is older than app.deployedVersion {self.deployed_version}, and New API's "
                               "migrations only go forward: restore the pre-upgrade snapshot first, then set "
                               f"new-api:app.allowDowngrade: true ({upgrade_snapshot.RUNBOOK}, \"Roll back the schema\")")
        return self

    @model_validator(mode="after")
    def _extra_env(self):
        for name in self.extra_env:
            if not _ENV_NAME.match(name):
                raise _field_error(f"extraEnv.{name}", self.extra_env[name],
                                   f"{name!r} is not a valid environment variable name")
            if _SECRETISH.search(name):
                raise _field_error(f"extraEnv.{name}", "[redacted]",
                                   f"{name!r} looks like a credential: secrets never go in plain config; "
                                   "they are generated and referenced from Secrets")
        return self


class Tls(_Model):
    enabled: bool = True
    issuer: Literal["self-signed", "letsencrypt-staging", "letsencrypt-prod"] = "letsencrypt-prod"
    acme_email: Optional[Email] = None


class Ingress(_Model):
    class_name: DnsLabel = "nginx"
    #: Namespace of the ingress controller (NetworkPolicy source).
    controller_namespace: DnsLabel = "ingress-nginx"
    tls: Tls = Tls()
    #: Must exceed the app's streaming timeout (read and send timeouts).
    proxy_timeout_seconds: Annotated[int, Field(ge=30, le=3600)] = 360
    #: At least New API's MAX_REQUEST_BODY_MB (128).
    proxy_body_size_mb: Annotated[int, Field(ge=128, le=2048)] = 128


class GatewayRef(_Model):
    """The Gateway API entry's Gateway: created by the stack (default) or an existing,
    shared one a platform team owns (``create: false`` with ``name`` and ``namespace``)."""
    create: bool = True
    name: DnsLabel = "new-api"
    #: Existing Gateway's namespace (required with create false; created: the app's).
    namespace: Optional[DnsLabel] = None
    #: GatewayClass of a created Gateway (Envoy Gateway's quick-start class is ``eg``).
    class_name: DnsLabel = "eg"
    #: Listener of an existing Gateway the routes attach to.
    https_section: DnsLabel = "https"


class GatewayEntry(_Model):
    """Settings of the Gateway API entry (``entry.kind: gateway``)."""
    gateway: GatewayRef = GatewayRef()
    #: Namespace of the proxies (Envoy Gateway runs them in its own namespace by default).
    data_plane_namespace: DnsLabel = "envoy-gateway-system"
    #: Create Envoy Gateway's ClientTrafficPolicy, BackendTrafficPolicy and EnvoyProxy
    #: (timeouts, client IP, drain); false for another conformant implementation.
    envoy_gateway: bool = True
    #: Total time a request may take, streamed completions included (HTTPRoute timeouts.request).
    request_timeout_seconds: Annotated[int, Field(ge=60, le=86400)] = 3600
    #: X-Forwarded-For hops in front of the proxies to trust (0: clients connect through an L4
    #: load balancer; the proxies append the peer and New API trusts only the proxies).
    trusted_hops: Annotated[int, Field(ge=0, le=5)] = 0


class Entry(_Model):
    """The public entry (components/entry.py): ``gateway`` (Gateway API, Envoy Gateway as the
    reference implementation; default) or ``ingress-nginx`` (legacy: archived upstream in
    March 2026). ``ingress.tls``, ``ingress.proxyTimeoutSeconds`` and
    ``ingress.proxyBodySizeMb`` apply to both; ``ingress.className`` and
    ``ingress.controllerNamespace`` to ingress-nginx only."""
    kind: Literal["gateway", "ingress-nginx"] = entry_component.DEFAULT_KIND
    gateway: GatewayEntry = GatewayEntry()
    #: Migration from ingress-nginx (docs/gateway-migration.md): with kind gateway, keep the
    #: app's Ingress, its certificate and ingress-nginx's access to the pods next to the new
    #: Gateway until DNS has moved; the Gateway serves the Ingress's certificate meanwhile.
    keep_ingress_nginx: bool = False


def _private_cidr(value: str) -> str:
    net = ipaddress.ip_network(_cidr(value))
    if net.prefixlen == 0 or not net.is_private:
        raise ValueError("must be a private range (the cluster's node/pod CIDR), never the internet")
    return value


def _s3_bucket(value: str) -> str:
    if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", value) or ".." in value:
        raise ValueError("must be an S3 bucket name (3-63 lowercase letters, digits, '.', '-')")
    return value


def _cron(value: str) -> str:
    fields = value.split()
    if len(fields) != 5 or not all(re.match(r"^[0-9*/,\-]+$", f) for f in fields):
        raise ValueError("must be a 5-field cron expression such as '0 2 * * *'")
    return value


PrivateCidr = Annotated[str, AfterValidator(_private_cidr)]
S3Bucket = Annotated[str, AfterValidator(_s3_bucket)]
Cron = Annotated[str, AfterValidator(_cron)]
SubnetId = Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]
SecurityGroupId = Annotated[str, Field(pattern=r"^sg-[0-9a-f]{8,17}$")]
RoleName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
RoleArn = Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")]


class DatastoreResources(Resources):
    """Requests and limits of a datastore container (Postgres defaults; dev is smaller)."""
    cpu_request: Quantity = "500m"
    memory_request: Quantity = "1Gi"
    cpu_limit: Optional[Quantity] = None
    memory_limit: Quantity = "2Gi"


class RedisResources(Resources):
    """Redis container: memory limit well above maxmemory (AOF rewrite forks)."""
    cpu_request: Quantity = "250m"
    memory_request: Quantity = "1Gi"
    cpu_limit: Optional[Quantity] = None
    memory_limit: Quantity = "1536Mi"


class ConfigMapKey(_Model):
    """A key of an existing ConfigMap."""
    name: DnsLabel
    key: Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]+$")]


def _read_project_file(path: str) -> str:
    from pathlib import Path

    base = Path(__file__).resolve().parent.parent
    return (base / path).read_text()


def _check_pem(path: str) -> None:
    try:
        text = _read_project_file(path)
    except OSError as exc:
        raise _field_error("path", path, f"cannot be read ({exc.strerror}): download AWS's bundle from "
                           "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem into the "
                           "project, or use caBundle.configMap") from None
    if "-----BEGIN CERTIFICATE-----" not in text or "PRIVATE KEY" in text:
        raise _field_error("path", path, "must hold PEM certificates only (BEGIN CERTIFICATE blocks, no key)")


class AwsNetwork(_Model):
    """Where a managed datastore lives: private subnets of the cluster's VPC."""
    vpc_id: Annotated[str, Field(pattern=r"^vpc-[0-9a-f]{8,17}$")]
    #: Private subnets in at least two AZs (Multi-AZ needs two).
    subnet_ids: Annotated[list[SubnetId], Field(min_length=2)]
    #: The VPC's CIDR: the app's NetworkPolicy egress to the managed endpoint.
    vpc_cidr: PrivateCidr
    #: The only sources the datastore's security group admits: the EKS nodes' security
    #: group (the cluster security group), or the pods' own groups with security groups
    #: for pods. Never a CIDR: the VPC holds far more than the cluster.
    source_security_group_ids: Annotated[list[SecurityGroupId], Field(min_length=1)]

    @model_validator(mode="before")
    @classmethod
    def _no_cidr_sources(cls, data):
        if isinstance(data, dict) and "allowedCidrs" in data:
            raise _field_error("allowedCidrs", data["allowedCidrs"],
                               "was replaced by sourceSecurityGroupIds: admit the EKS nodes' (cluster) security "
                               "group or the pods' security groups, e.g. [sg-0123456789abcdef0], not address "
                               "ranges (issue 13 item 6)")
        return data


class CaBundle(_Model):
    """Where clients find the CA that signed RDS's server certificate (``sslmode=verify-full``):
    exactly one of ``path`` (a PEM file of the project, e.g. AWS's global bundle from
    https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem, put into a ConfigMap
    by the stack) or ``configMap`` (an existing ConfigMap in the app namespace)."""
    path: Optional[Annotated[str, Field(pattern=r"^[A-Za-z0-9._/-]+\.pem$")]] = None
    config_map: Optional[ConfigMapKey] = None

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.config_map is None):
            raise _field_error("path", self.path, "set exactly one of caBundle.path (a PEM file in the project) "
                               "and caBundle.configMap {name, key} (an existing ConfigMap)")
        if self.path is not None:
            _check_pem(self.path)
        return self

    def pem(self) -> Optional[str]:
        return _read_project_file(self.path) if self.path else None


class DatabaseAws(AwsNetwork):
    """RDS PostgreSQL (prod default)."""
    #: RDS master user: used only by the roles bootstrap Job; the app has its own role.
    master_username: RoleName = "newapi_admin"
    #: The RDS CA every client verifies the server with (sslmode=verify-full).
    ca_bundle: CaBundle
    instance_class: Annotated[str, Field(pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")] = "db.m6g.large"
    engine_version: Annotated[str, Field(pattern=r"^[0-9]{2}(\.[0-9]+)?$")] = "16"
    allocated_storage_gb: Annotated[int, Field(ge=20, le=65536)] = 50
    #: Storage autoscaling ceiling.
    max_allocated_storage_gb: Annotated[int, Field(ge=20, le=65536)] = 200
    #: Automated backups / PITR window. Backup matrix (seed 000): 30 days; RDS max 35.
    backup_retention_days: Annotated[int, Field(ge=1, le=35)] = 30
    #: A read replica for failover drills, reporting and backups (New API never reads it).
    read_replica: bool = True


class CloudNativePg(_Model):
    """CloudNativePG ``Cluster`` (HA on any cluster; the operator must be installed)."""
    instances: Annotated[int, Field(ge=2, le=9)] = 3
    #: Synchronous standbys (quorum ``any``); 0 turns synchronous replication off.
    synchronous_replicas: Annotated[int, Field(ge=0, le=8)] = 1
    image: Image = images.CNPG_POSTGRES
    #: Namespace of the CNPG operator (NetworkPolicy source for the instance manager).
    operator_namespace: DnsLabel = "cnpg-system"


class Restore(_Model):
    """Restore the app database from one dump (a Job is created only when set)."""
    #: Dump to restore: an S3 key under the backup prefix, or a file name on the backup PVC.
    object_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9._/-]{1,1024}$")]


class Database(_Model):
    backend: Literal["kubernetes", "cloudnative-pg", "aws"] = "aws"
    max_connections: Annotated[int, Field(ge=20, le=10000)] = 200
    #: Connections kept free for admins, exporters and backups.
    reserved_connections: Annotated[int, Field(ge=5)] = 20
    name: DnsLabel = "newapi"
    username: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = "newapi"
    storage_size: Quantity = "20Gi"
    storage_class: Optional[DnsLabel] = None
    image: Image = images.POSTGRES
    exporter_image: Image = images.POSTGRES_EXPORTER
    resources: DatastoreResources = DatastoreResources()
    aws: Optional[DatabaseAws] = None
    cloudnative_pg: CloudNativePg = CloudNativePg()
    restore: Optional[Restore] = None


class RedisAws(AwsNetwork):
    """ElastiCache replication group (prod default), cluster mode disabled."""
    node_type: Annotated[str, Field(pattern=r"^cache\.[a-z0-9]+\.[a-z0-9]+$")] = "cache.m7g.large"
    engine_version: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9x]+$")] = "7.1"
    #: Replicas of the primary (automatic failover needs at least one).
    replicas: Annotated[int, Field(ge=1, le=5)] = 1
    snapshot_retention_days: Annotated[int, Field(ge=1, le=35)] = 7


class Redis(_Model):
    backend: Literal["kubernetes", "aws"] = "aws"
    storage_size: Quantity = "2Gi"
    storage_class: Optional[DnsLabel] = None
    maxmemory_mb: PositiveInt = 800
    #: volatile-lru: New API keeps rate-limit counters and session state next to its
    #: caches; only keys with a TTL (the caches) are evicted (seed notes §4 #26).
    maxmemory_policy: Literal["volatile-lru", "volatile-lfu", "volatile-ttl", "noeviction",
                              "allkeys-lru", "allkeys-lfu"] = "volatile-lru"
    image: Image = images.REDIS
    exporter_image: Image = images.REDIS_EXPORTER
    resources: RedisResources = RedisResources()
    aws: Optional[RedisAws] = None


class BackupS3(_Model):
    """An existing bucket and IRSA role for dumps (and CNPG's WAL archive)."""
    bucket: S3Bucket
    #: IAM role the backup ServiceAccount assumes (IRSA); never static keys.
    role_arn: RoleArn
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")] = "us-east-1"
    #: Key prefix of the dumps (backup matrix: database-backups/).
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9._/-]*/$")] = "database-backups/"


class Irsa(_Model):
    """The EKS cluster's OIDC provider, so the stack can create the backup job's IAM role."""
    oidc_provider_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$")]
    #: Issuer without scheme, e.g. oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE
    oidc_issuer: Annotated[str, Field(pattern=r"^[a-z0-9.-]+(/[A-Za-z0-9._-]+)*$")]


class Backup(_Model):
    """Logical dumps (seed 000 backup matrix: daily full, kept 30 days) plus WAL/PITR
    where the backend has it (CloudNativePG, RDS)."""
    schedule: Cron = "0 2 * * *"
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    #: Backup PVC (dumps stay in-cluster when no S3 target is configured).
    storage_size: Quantity = "20Gi"
    storage_class: Optional[DnsLabel] = None
    s3: Optional[BackupS3] = None
    irsa: Optional[Irsa] = None
    #: S3 Object Lock on the stack's backup bucket, retention = retentionDays. COMPLIANCE:
    #: no one, root included, deletes or overwrites a dump version before it expires.
    object_lock_mode: Literal["COMPLIANCE", "GOVERNANCE"] = "COMPLIANCE"


class Network(_Model):
    #: Namespace of cluster DNS (egress allow).
    dns_namespace: DnsLabel = "kube-system"
    #: Destinations the app may reach on the upstream ports (LLM providers). Private
    #: (RFC 1918), shared (100.64.0.0/10) and link-local ranges inside a listed CIDR are
    #: excluded; list a private CIDR explicitly to reach a self-hosted model server.
    upstream_cidrs: Annotated[list[EgressCidr], Field(min_length=1)] = list(app_component.DEFAULT_UPSTREAM_CIDRS)
    #: Ports open to them: HTTPS; add 465/587 for New API's e-mail, or a model server's port.
    upstream_ports: Annotated[list[Annotated[int, Field(ge=1, le=65535)]], Field(min_length=1)] = \
        list(app_component.DEFAULT_UPSTREAM_PORTS)
    #: Where the backup upload and Elasticsearch's snapshots may go on 443: S3 (and STS for
    #: IRSA). Default: public addresses only. Tighter: the S3 managed prefix list's CIDRs of
    #: the region (the gateway endpoint's); with an STS interface endpoint, add its subnets.
    object_storage_cidrs: Annotated[list[EgressCidr], Field(min_length=1)] = list(common.ANYWHERE)
    #: Where the RDS exporter reaches the AWS APIs (RDS, STS) on 443 (aws backend).
    #: Default: public addresses only. With interface VPC endpoints, list their subnets.
    aws_api_cidrs: Annotated[list[EgressCidr], Field(min_length=1)] = list(common.ANYWHERE)


#: Credentials of alert receivers: read only with ``pulumi.Config().get_secret`` in
#: ``__main__.py`` (``pulumi config set --secret new-api:alertSlackWebhook ...``), never
#: part of the typed config, and refused when set in plaintext.
ALERT_SECRET_KEYS = ("alertSmtpPassword", "alertSlackWebhook", "alertWebhookUrl")

_Duration = Annotated[str, Field(pattern=r"^([0-9]+[smhdwy])+$")]
_Heap = Annotated[str, Field(pattern=r"^[0-9]+[mg]$")]


class WorkloadResources(_Model):
    """Requests and limits of one observability workload (empty: the component's default)."""
    cpu_request: Optional[Quantity] = None
    memory_request: Optional[Quantity] = None
    memory_limit: Optional[Quantity] = None
    cpu_limit: Optional[Quantity] = None


class EmailReceiver(_Model):
    """Alert e-mail (seed 000: smtp.gmail.com:587). The SMTP password is the secret key
    ``new-api:alertSmtpPassword``."""
    to: Annotated[list[Email], Field(min_length=1)]
    from_: Email = Field(alias="from")
    smarthost: Annotated[str, Field(pattern=r"^[A-Za-z0-9.-]+:[0-9]{2,5}$")] = "smtp.gmail.com:587"
    #: SMTP AUTH user. Required on a submission port (587, 465), with the secret
    #: ``new-api:alertSmtpPassword``: Alertmanager authenticates only when a username is set.
    username: Optional[str] = None


class Alerting(_Model):
    """Receivers (seed 000: default, critical-alerts with Slack #alerts, warning-alerts).
    Slack and webhook URLs are the secret keys ``new-api:alertSlackWebhook`` and
    ``new-api:alertWebhookUrl``."""
    email: Optional[EmailReceiver] = None
    slack_channel: Annotated[str, Field(pattern=r"^#[a-z0-9_-]{1,80}$")] = "#alerts"


class Operator(_Model):
    """Operator mode: an existing Prometheus Operator (kube-prometheus-stack) runs
    Prometheus and Alertmanager; the stack emits monitors, rules and an AlertmanagerConfig."""
    selector_labels: dict[str, str] = {"release": "kube-prometheus-stack"}
    prometheus_url: str = "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
    alertmanager_url: str = "http://kube-prometheus-stack-alertmanager.monitoring.svc:9093"
    #: ``spec.alertmanagerConfigMatcherStrategy.type`` of that Alertmanager (a prerequisite
    #: the stack cannot set: the Alertmanager is not ours). With the operator's default,
    #: ``OnNamespace``, our AlertmanagerConfig would match only alerts labelled with its own
    #: namespace, i.e. none of ours (prometheus-operator pkg/alertmanager/amcfg.go), so it
    #: is refused. ``OnNamespaceExceptForAlertmanagerNamespace`` works when the Alertmanager
    #: runs in monitoring.namespace.
    alertmanager_config_matcher_strategy: Literal["None", "OnNamespaceExceptForAlertmanagerNamespace",
                                                  "OnNamespace"] = "None"


class Autoscale(_Model):
    """Prometheus Adapter serving requests/s per pod to the app's HPA (seed 004 §4.3)."""
    enabled: bool = False
    rps_per_pod_target: Annotated[float, Field(gt=0, le=10000)] = 20.0


class Monitoring(_Model):
    """Prometheus, Alertmanager, Grafana, exporters (components/monitoring.py)."""
    enabled: bool = True
    namespace: DnsLabel = "monitoring"
    #: Privileged namespace of node agents (node-exporter, Filebeat), shared with logging.
    agent_namespace: DnsLabel = "node-agents"
    mode: Literal["standalone", "operator"] = "standalone"
    operator: Operator = Operator()
    #: Seed 000: --storage.tsdb.retention.time=200h.
    retention: _Duration = "200h"
    retention_size: Optional[Annotated[str, Field(pattern=r"^[0-9]+(B|KB|MB|GB|TB)$")]] = "16GB"
    storage_size: Quantity = "20Gi"
    storage_class: Optional[DnsLabel] = None
    alertmanager_replicas: Annotated[int, Field(ge=1, le=5)] = 2
    grafana: bool = True
    alerting: Alerting = Alerting()
    #: Base of every alert's runbook_url (<base>/<Alert>.md): the browsable URL of this
    #: repository's docs/runbooks, e.g. https://github.com/<org>/new-api-infra/blob/main/docs/runbooks.
    runbook_base_url: Optional[Annotated[str, Field(pattern=r"^https://[^\s]+[^/\s]$")]] = None
    autoscale: Autoscale = Autoscale()
    #: Namespace of cert-manager (a cluster prerequisite): its controller is scraped there on
    #: :9402 for the certificate alerts; that namespace must admit it (README, "Alerting").
    cert_manager_namespace: DnsLabel = certificate_alerts.DEFAULT_NAMESPACE
    #: Node and API-server address ranges for the egress policies (host-network exporters,
    #: discovery; the API server also for the CloudNativePG instances).
    node_cidrs: Annotated[list[Cidr], Field(min_length=1)] = list(common.PRIVATE_CIDRS)
    api_server_cidrs: Annotated[list[Cidr], Field(min_length=1)] = list(common.PRIVATE_CIDRS)
    resources: dict[Literal["prometheus", "alertmanager", "grafana", "node_exporter", "kube_state_metrics",
                            "blackbox", "adapter"], WorkloadResources] = {}


class Logging(_Model):
    """Elasticsearch, Logstash, Kibana, Filebeat (components/logging.py)."""
    enabled: bool = True
    namespace: DnsLabel = "logging"
    agent_namespace: DnsLabel = "node-agents"
    #: 1 (single node) or an odd number >= 3.
    elasticsearch_replicas: Annotated[int, Field(ge=1, le=9)] = 3
    heap: _Heap = "1g"
    storage_size: Quantity = "50Gi"
    storage_class: Optional[DnsLabel] = None
    #: False needs no vm.max_map_count on the nodes (dev); true is faster (prod nodes set the sysctl).
    allow_mmap: bool = True
    logstash_replicas: Annotated[int, Field(ge=1, le=10)] = 2
    logstash_heap: _Heap = "512m"
    kibana: bool = True
    #: Serve Kibana publicly on this host through the TLS ingress (Kibana's login guards it).
    kibana_host: Optional[Hostname] = None
    #: Seed backup matrix: logs 180 days.
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 180
    #: Nightly snapshots (SLM) kept this long. Where they go: the backup bucket with the
    #: aws database backend (prefix elasticsearch-snapshots/, its own IRSA role), else a
    #: filesystem repository on a volume of snapshotVolumeSize (single node only).
    snapshot_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    snapshot_volume_size: Optional[Quantity] = None
    resources: dict[Literal["elasticsearch", "logstash", "kibana", "filebeat", "setup", "exporter"],
                    WorkloadResources] = {}

    @model_validator(mode="after")
    def _quorum(self):
        n = self.elasticsearch_replicas
        if n != 1 and (n < 3 or n % 2 == 0):
            raise ValueError(f"elasticsearchReplicas {n} must be 1 or an odd number >= 3 (master quorum)")
        if self.snapshot_volume_size and n != 1:
            raise _field_error("snapshotVolumeSize", self.snapshot_volume_size,
                               "a filesystem snapshot repository needs one Elasticsearch node; with "
                               f"{n} nodes snapshots go to the backup bucket (database.backend: aws)")
        return self


class StackConfig(_Model):
    """Everything a stack decides. Keys are camelCase under the ``new-api:`` namespace."""
    environment: Literal["dev", "staging", "prod"]
    namespace: DnsLabel = "new-api"
    domain: Hostname
    app: App
    entry: Entry = Entry()
    ingress: Ingress = Ingress()
    database: Database = Database()
    redis: Redis = Redis()
    backup: Backup = Backup()
    network: Network = Network()
    monitoring: Monitoring = Monitoring()
    logging: Logging = Logging()

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def entry_spec(self) -> "entry_component.EntrySpec":
        """What the rest of the stack needs to know about the entry (data plane, metrics)."""
        ns = (self.ingress.controller_namespace if self.entry.kind == "ingress-nginx"
              else self.entry.gateway.data_plane_namespace)
        legacy = self.ingress.controller_namespace if self.entry.keep_ingress_nginx else None
        return entry_component.entry_spec(self.entry.kind, ns, legacy_namespace=legacy,
                                          relay_access_log=self.relay_access_log)

    @property
    def relay_access_log(self) -> bool:
        """The Gateway API entry's relay time to first byte is counted from the proxies'
        access log (docs/relay-ttfb-gateway.md): the stack renders the EnvoyProxy that sets
        the log's format (its own Gateway, Envoy Gateway's objects) and runs the logging
        stack that collects and counts it. Otherwise the relay SLO and the canary's
        relay-ttfb gate are not rendered (and ``pulumi up`` says so)."""
        gw = self.entry.gateway
        return (self.entry.kind == "gateway" and gw.gateway.create and gw.envoy_gateway
                and self.logging.enabled)

    @property
    def gateway_namespace(self) -> str:
        """Namespace of the Gateway (a created one lives in the app's namespace)."""
        return self.entry.gateway.gateway.namespace or self.namespace

    @property
    def cookie_secure(self) -> bool:
        secure = self.app.session_cookie_secure
        return self.ingress.tls.enabled if secure is None else secure

    @model_validator(mode="after")
    def _cross_field(self, info: ValidationInfo):
        errors: list[tuple[str, Any, str]] = []
        errors += _alerting_errors(self, frozenset((info.context or {}).get("alert_secrets", ())))
        app, ing = self.app, self.ingress
        if self.is_prod and app.autoscaling.min_replicas < 2:
            errors.append(("app.autoscaling.minReplicas", app.autoscaling.min_replicas,
                           "a prod stack needs at least 2 serving replicas (seed 000: 3)"))
        if self.is_prod and not ing.tls.enabled:
            errors.append(("ingress.tls.enabled", False, "prod always terminates TLS"))
        if self.is_prod and ing.tls.issuer != "letsencrypt-prod":
            errors.append(("ingress.tls.issuer", ing.tls.issuer,
                           "prod certificates come from 'letsencrypt-prod' (K8S-045)"))
        if app.delivery.strategy != "rolling" and not self.monitoring.enabled:
            errors.append(("app.delivery.strategy", app.delivery.strategy,
                           "canary and blue-green analyses query Prometheus: needs monitoring.enabled true"))
        if app.delivery.strategy == "canary" and self.entry.kind == "ingress-nginx" \
                and self.ingress.class_name != "nginx":
            errors.append(("app.delivery.strategy", "canary",
                           f"canary traffic routing with entry.kind ingress-nginx uses ingress-nginx; "
                           f"ingress.className is {self.ingress.class_name!r}"))
        gw = self.entry.gateway.gateway
        if self.entry.keep_ingress_nginx and self.entry.kind != "gateway":
            errors.append(("entry.keepIngressNginx", True,
                           "only applies while migrating to entry.kind gateway (docs/gateway-migration.md)"))
        if self.entry.kind == "gateway" and not gw.create and not gw.namespace:
            errors.append(("entry.gateway.gateway.namespace", None,
                           "is required with entry.gateway.gateway.create false (the existing Gateway's "
                           "namespace)"))
        if self.entry.kind == "gateway" and \
                self.entry.gateway.request_timeout_seconds < ing.proxy_timeout_seconds:
            errors.append(("entry.gateway.requestTimeoutSeconds", self.entry.gateway.request_timeout_seconds,
                           f"must be at least ingress.proxyTimeoutSeconds ({ing.proxy_timeout_seconds}): a "
                           "stream may idle that long"))
        if self.logging.kibana_host and not (self.logging.enabled and self.logging.kibana):
            errors.append(("logging.kibanaHost", self.logging.kibana_host,
                           "needs logging.enabled and logging.kibana true"))
        if self.logging.kibana_host and not ing.tls.enabled:
            errors.append(("logging.kibanaHost", self.logging.kibana_host, "is served only over TLS"))
        bucket_snapshots = self.database.backend == "aws" and self.backup.s3 is None
        if self.logging.enabled and not (self.logging.snapshot_volume_size or bucket_snapshots):
            errors.append(("logging.snapshotVolumeSize", None,
                           "Elasticsearch needs a backup (policy STK-003): set a snapshot volume size "
                           "(one node), or use database.backend aws so snapshots go to the backup bucket"))
        if ing.tls.enabled and ing.tls.issuer.startswith("letsencrypt") and not ing.tls.acme_email:
            errors.append(("ingress.tls.acmeEmail", None,
                           f"is required with issuer {ing.tls.issuer!r} (Let's Encrypt account e-mail)"))
        if app.session_cookie_secure and not ing.tls.enabled:
            errors.append(("app.sessionCookieSecure", True,
                           "needs ingress.tls.enabled: true (the cookie's trusted URL is https://<domain>; "
                           "New API exits when one is set without the other)"))
        if ing.tls.enabled and app.session_cookie_secure is False and self.is_prod:
            errors.append(("app.sessionCookieSecure", False, "prod serves HTTPS: refresh cookies must be Secure"))
        if ing.proxy_timeout_seconds <= app.streaming_timeout_seconds:
            errors.append(("ingress.proxyTimeoutSeconds", ing.proxy_timeout_seconds,
                           f"must exceed app.streamingTimeoutSeconds ({app.streaming_timeout_seconds}), "
                           "or the ingress cuts idle streams first"))
        serving, how = app_component.peak_serving_pods(app.autoscaling.max_replicas, app.delivery.strategy)
        demand = (serving + 1) * app.pool.max_open_conns + self.database.reserved_connections
        if demand > self.database.max_connections:
            errors.append(("app.pool.maxOpenConns", app.pool.max_open_conns,
                           f"({serving} serving pods at app.autoscaling.maxReplicas {app.autoscaling.max_replicas} "
                           f"{how} + 1 master) x {app.pool.max_open_conns} + database.reservedConnections "
                           f"{self.database.reserved_connections} = {demand} exceeds "
                           f"database.maxConnections ({self.database.max_connections}); lower the pool or "
                           "maxReplicas, or raise database.maxConnections"))
        errors += _datastore_errors(self)
        if errors:
            raise _CrossFieldErrors(errors)
        return self


def _alerting_errors(cfg: "StackConfig", alert_secrets: frozenset) -> list:
    """Alerts must reach someone: e-mail that the server will accept, and in prod at least
    one receiver that can notify. ``alert_secrets``: the ``ALERT_SECRET_KEYS`` set (as secrets)."""
    errors: list = []
    mon = cfg.monitoring
    if not mon.enabled:
        return errors
    email = mon.alerting.email
    password = "alertSmtpPassword" in alert_secrets
    if email is not None:
        keys = {"username": ("monitoring.alerting.email.username", email.username),
                "password": ("alertSmtpPassword", None)}
        for what, why in monitoring_config.email_auth_problems(email.smarthost, email.username or "", password):
            key, value = keys[what]
            fix = ("set monitoring.alerting.email.username and the secret new-api:alertSmtpPassword "
                   "(pulumi config set --secret new-api:alertSmtpPassword <password>)")
            errors.append((key, value, f"{why}: {fix}"))
    elif password:
        errors.append(("alertSmtpPassword", "[secret]", "is set but monitoring.alerting.email is not: "
                       "configure the e-mail receiver or remove the secret"))
    receivers = monitoring_config.Receivers(
        email_to=tuple(email.to) if email else (), smarthost=email.smarthost if email else "",
        smtp_username=(email.username or "") if email else "", smtp_password=password,
        slack="alertSlackWebhook" in alert_secrets,
        webhook_url="set" if "alertWebhookUrl" in alert_secrets else None)
    if cfg.is_prod and not receivers.any and not errors:
        errors.append(("monitoring.alerting", None,
                       "prod has no receiver that can notify anyone: set monitoring.alerting.email (with "
                       "username and the secret new-api:alertSmtpPassword on a submission port), or the secret "
                       "new-api:alertSlackWebhook or new-api:alertWebhookUrl"))
    strategy = mon.operator.alertmanager_config_matcher_strategy
    if mon.mode == "operator" and strategy == "OnNamespace":
        errors.append(("monitoring.operator.alertmanagerConfigMatcherStrategy", strategy,
                       "with OnNamespace the operator adds namespace=\"<the AlertmanagerConfig's namespace>\" to "
                       "its route (prometheus-operator pkg/alertmanager/amcfg.go), so none of the stack's alerts "
                       "(namespace new-api, other namespaces or none) would be routed: set the existing "
                       "Alertmanager's spec.alertmanagerConfigMatcherStrategy.type to None (or "
                       "OnNamespaceExceptForAlertmanagerNamespace, with the Alertmanager in monitoring.namespace) "
                       "and say so here"))
    return errors


#: Smallest sensible volumes (Postgres WAL alone wants 1Gi; Redis AOF + RDB twice maxmemory).
_MIN_DB_STORAGE = 1 * 2**30
_RESERVED_ROLES = postgres_base.RESERVED_USERS
_PROD_RETENTION_FLOOR = 14


def _datastore_errors(cfg: "StackConfig") -> list:
    """Cross-field rules of the data tier (database, redis, backup)."""
    errors: list = []
    db, rd, bk = cfg.database, cfg.redis, cfg.backup
    if db.backend == "aws" and db.aws is None:
        errors.append(("database.aws", None, "is required with database.backend 'aws': set vpcId, subnetIds, "
                       "vpcCidr, sourceSecurityGroupIds (the nodes' or pods' security groups) and caBundle"))
    if rd.backend == "aws" and rd.aws is None:
        errors.append(("redis.aws", None, "is required with redis.backend 'aws': set vpcId, subnetIds, "
                       "vpcCidr and sourceSecurityGroupIds (the nodes' or pods' security groups)"))
    if db.backend == "aws" and bk.s3 is None and bk.irsa is None:
        errors.append(("backup.irsa", None, "is required with database.backend 'aws' (the stack creates the "
                       "backup bucket and the dump job's IRSA role: set oidcProviderArn and oidcIssuer), "
                       "or set backup.s3 to use an existing bucket and role"))
    elif db.backend == "aws" and cfg.monitoring.enabled and bk.irsa is None:
        errors.append(("backup.irsa", None, "is required with database.backend 'aws' and monitoring enabled: "
                       "the RDS exporter behind the automated-backup alerts assumes an IAM role through IRSA; "
                       "set oidcProviderArn and oidcIssuer (the EKS cluster's OIDC provider)"))
    if db.backend == "cloudnative-pg" and bk.s3 is None:
        errors.append(("backup.s3", None, "is required with database.backend 'cloudnative-pg': WAL archiving "
                       "and base backups go to object storage (set bucket and roleArn)"))
    if db.backend != "aws" and common.parse_quantity(db.storage_size) < _MIN_DB_STORAGE:
        errors.append(("database.storageSize", db.storage_size, "must be at least 1Gi"))
    if db.backend == "kubernetes" and common.parse_quantity(db.resources.memory_limit) < 256 * 2**20:
        errors.append(("database.resources.memoryLimit", db.resources.memory_limit,
                       "must be at least 256Mi for Postgres"))
    if common.parse_quantity(bk.storage_size) < 2**30:
        errors.append(("backup.storageSize", bk.storage_size, "must be at least 1Gi"))
    if db.aws is not None and db.aws.master_username == db.username:
        errors.append(("database.aws.masterUsername", db.aws.master_username,
                       "must differ from database.username: the app logs in as its own role, never as the "
                       "RDS master (issue 13 item 6)"))
    for key, role in (("database.username", db.username),
                      ("database.aws.masterUsername", db.aws.master_username if db.aws else None)):
        if role in _RESERVED_ROLES:
            errors.append((key, role, f"the roles {', '.join(_RESERVED_ROLES)} are reserved "
                           "(superuser, exporter, backup and RDS roles)"))
    if db.aws is not None and db.aws.max_allocated_storage_gb < db.aws.allocated_storage_gb:
        errors.append(("database.aws.maxAllocatedStorageGb", db.aws.max_allocated_storage_gb,
                       f"must be at least database.aws.allocatedStorageGb ({db.aws.allocated_storage_gb})"))
    if rd.backend == "kubernetes":
        need = 2 * rd.maxmemory_mb * 2**20
        if common.parse_quantity(rd.storage_size) < need:
            errors.append(("redis.storageSize", rd.storage_size,
                           f"must hold the AOF and RDB files: at least twice redis.maxmemoryMb ({2 * rd.maxmemory_mb}Mi)"))
        limit_mb = common.parse_quantity(rd.resources.memory_limit) / 2**20
        if rd.maxmemory_mb > 0.8 * limit_mb:
            errors.append(("redis.maxmemoryMb", rd.maxmemory_mb,
                           f"must stay under 80 % of redis.resources.memoryLimit ({rd.resources.memory_limit}): "
                           "replication buffers and the AOF-rewrite fork need headroom, or the pod is OOM-killed"))
    if cfg.is_prod:
        if bk.retention_days < _PROD_RETENTION_FLOOR:
            errors.append(("backup.retentionDays", bk.retention_days,
                           f"prod keeps dumps at least {_PROD_RETENTION_FLOOR} days (backup matrix: 30)"))
        if db.aws is not None and db.aws.backup_retention_days < _PROD_RETENTION_FLOOR:
            errors.append(("database.aws.backupRetentionDays", db.aws.backup_retention_days,
                           f"prod keeps RDS backups at least {_PROD_RETENTION_FLOOR} days (backup matrix: 30)"))
    return errors


class _CrossFieldErrors(ValueError):
    """Errors that name their own keys: absolute paths from StackConfig, or paths relative
    to the model that raised them (``relative=True``)."""

    def __init__(self, errors, relative: bool = False):
        super().__init__("; ".join(f"{k}: {m}" for k, _, m in errors))
        self.errors = errors
        self.relative = relative


def _field_error(key: str, value: Any, message: str) -> _CrossFieldErrors:
    return _CrossFieldErrors([(key, value, message)], relative=True)


# --------------------------------------------------------------------------- loading

def _top_level_keys() -> list[str]:
    return sorted(f.alias or n for n, f in StackConfig.model_fields.items())


def _all_project_config(project: str) -> dict[str, Any]:
    """Every ``<project>:<key>`` the engine handed the program, parsed."""
    from pulumi.runtime import config as runtime_config

    merged: dict[str, Any] = {}
    merged.update(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    prefix = f"{project}:"
    out: dict[str, Any] = {}
    for key, raw in merged.items():
        if not key.startswith(prefix):
            continue
        short = key[len(prefix):]
        if short in ALERT_SECRET_KEYS:
            if not runtime_config.is_config_secret(key):
                raise ConfigError(f"Pulumi.{pulumi.get_stack()}.yaml: {key} is a credential stored in plaintext: "
                                  f"run 'pulumi config set --secret {key} <value>'")
            continue
        value: Any = raw
        if isinstance(raw, str) and short not in _SCALAR_STRING_KEYS:
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw
        out[short] = value
    return out


#: Top-level keys that are plain strings (never JSON-decoded, so "123" stays a string error).
_SCALAR_STRING_KEYS = {"environment", "namespace", "domain"}


def _fmt_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _describe(err: dict) -> str:
    kind = err.get("type", "")
    msg = err.get("msg", "")
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; allowed keys are listed in Pulumi.yaml and stack/config.py)"
    if kind == "missing":
        return "is required"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if msg.startswith("Assertion failed, "):
        msg = msg[len("Assertion failed, "):]
    return msg


def validate(raw: dict[str, Any], stack: str, project: str = PROJECT,
             alert_secrets: frozenset = frozenset()) -> StackConfig:
    """Validate a stack's raw config map (short keys) and return the typed config, or raise
    :class:`ConfigError` listing every problem with file, key path, value and what is allowed.
    ``alert_secrets``: which of ``ALERT_SECRET_KEYS`` the stack sets (their values never
    enter the typed config)."""
    stack_file = f"Pulumi.{stack}.yaml"
    lines: list[str] = []
    known = set(_top_level_keys())
    for key in sorted(set(raw) - known):
        lines.append(f"{stack_file}: {project}:{key} = {json.dumps(raw[key])}: unknown key; "
                     f"allowed top-level keys: {', '.join(_top_level_keys())}")
    try:
        cfg = StackConfig.model_validate({k: v for k, v in raw.items() if k in known},
                                         context={"alert_secrets": alert_secrets})
        if not lines:
            return cfg
    except ValidationError as exc:
        for err in exc.errors():
            ctx_err = (err.get("ctx") or {}).get("error")
            if isinstance(ctx_err, _CrossFieldErrors):
                base = _fmt_path(err.get("loc", ())) if ctx_err.relative else ""
                for key, value, message in ctx_err.errors:
                    path = f"{base}.{key}" if base else key
                    lines.append(f"{stack_file}: {project}:{path} = {json.dumps(value)}: {message}")
                continue
            path = _fmt_path(err.get("loc", ()))
            shown = json.dumps(err.get("input"), default=str) if err.get("type") != "missing" else "(unset)"
            where = f"{project}:{path}" if path else f"{project} (whole stack)"
            lines.append(f"{stack_file}: {where} = {shown}: {_describe(err)}")
    raise ConfigError("invalid stack configuration:\n  " + "\n  ".join(lines))


def load(project: str = PROJECT) -> StackConfig:
    """Read and validate this stack's config (call before registering any resource)."""
    from pulumi.runtime import config as runtime_config

    present = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    alert_secrets = frozenset(k for k in ALERT_SECRET_KEYS if f"{project}:{k}" in present)
    return validate(_all_project_config(project), pulumi.get_stack(), project, alert_secrets)
