"""``Redis``: New API's cache and shared counters, one connection shape, two backends.

- ``kubernetes``: a single-instance StatefulSet of the official image (dev);
- ``aws``: an ElastiCache replication group, cluster mode disabled (prod).

New API's client is single-endpoint only (``redis.NewClient``: no Sentinel, no cluster
mode, NEWAPI-CONTRACT §2a/§3), so both backends expose one host: the StatefulSet's
Service or ElastiCache's primary endpoint. A Redis that is unreachable at start is
fatal to New API, and ``/api/status`` fails while it is down.
"""


import hashlib
import json
from typing import Optional, Sequence, TypedDict
from urllib.parse import quote

import pulumi
import pulumi_kubernetes as k8s

from . import common, images, redis_aws
from .secrets import ROTATION_ANNOTATION, generated_secret, rotation_trigger
from .app import EgressTargetArgs, ResourcesArgs
from .postgres import ClientArgs

BACKENDS = ("kubernetes", "aws")
PORT = 6379
EXPORTER_PORT = 9121
APP = "redis"
COMPONENT = "cache"
EVICTION_POLICIES = ("volatile-lru", "volatile-lfu", "volatile-ttl", "noeviction", "allkeys-lru", "allkeys-lfu")
#: Where the Secret's ``auth.conf`` (``requirepass ...``) is mounted; ``redis.conf`` includes it.
AUTH_DIR = "/etc/redis/auth"
#: RDB snapshot rules of seed 000 (000:3505): 900 s/1 change, 300 s/10, 60 s/10000.
SAVE_RULES = ((900, 1), (300, 10), (60, 10000))

DEFAULT_RESOURCES = {"cpu_request": "250m", "memory_request": "1Gi", "cpu_limit": None, "memory_limit": "1536Mi"}
"""Redis container sizing: the limit leaves room above ``maxmemory`` for the AOF-rewrite fork."""

DEFAULT_AWS = {
    "node_type": "cache.m7g.large",
    "engine_version": "7.1",
    "replicas": 1,
    "snapshot_retention_days": 7,
    "snapshot_window": "00:00-01:00",
    "maintenance_window": "sun:04:00-sun:05:00",
}
"""ElastiCache defaults: one replica for automatic failover across AZs."""


class RedisAwsArgs(TypedDict, total=False):
    vpc_id: str
    """VPC of the cluster."""
    subnet_ids: Sequence[str]
    """Private subnets in at least two AZs (cache subnet group)."""
    vpc_cidr: str
    """The VPC's CIDR: app egress target."""
    source_security_group_ids: Sequence[str]
    """Security groups admitted on 6379 (the EKS nodes' or the pods' groups; nothing else)."""
    node_type: str
    """Node type (default cache.m7g.large)."""
    engine_version: str
    """Redis engine version (default 7.1)."""
    replicas: int
    """Replicas of the primary (default 1; failover needs one)."""
    snapshot_retention_days: int
    """Daily snapshots kept (default 7)."""
    snapshot_window: str
    """Daily snapshot window, UTC (default 00:00-01:00)."""
    maintenance_window: str
    """Weekly maintenance window, UTC (default sun:04:00-sun:05:00)."""


class RedisArgs(TypedDict, total=False):
    backend: str
    """``kubernetes`` | ``aws`` (default ``aws``)."""
    namespace: pulumi.Input[str]
    """Namespace of the kubernetes backend (required there)."""
    password: pulumi.Input[str]
    """AUTH password / ElastiCache auth token, 16-128 characters (secret). Generated only when not given."""
    maxmemory_mb: int
    """maxmemory of the kubernetes backend (default 800, seed 000's 800mb per 1G)."""
    maxmemory_policy: str
    """Eviction policy (default volatile-lru, see the class docstring)."""
    storage_size: str
    """AOF/RDB volume of the kubernetes backend (default 2Gi)."""
    storage_class: str
    """Storage class of that volume (default: the cluster's default)."""
    image: str
    """Redis image (default redis:7.4.2)."""
    exporter_image: str
    """redis_exporter image (default quay.io/oliver006/redis_exporter:v1.67.0)."""
    resources: ResourcesArgs
    """Redis container requests/limits (default 250m/1Gi, memory limit 1536Mi)."""
    clients: Sequence[ClientArgs]
    """Pods allowed to connect: ``{"pod_labels": {...}, "namespace": optional}`` each."""
    monitoring_namespace: str
    """Namespace whose pods may scrape the exporter (optional)."""
    protect: bool
    """Protect the stateful resources (prod)."""
    aws: RedisAwsArgs
    """Settings of the ``aws`` backend."""


def pod_selector(name: str) -> dict:
    """Selector labels of the ``kubernetes`` backend's Redis pod."""
    return common.selector(APP, name, COMPONENT)


def url(password: str, host: str, port: int, tls: bool, db: int = 0) -> str:
    """``REDIS_CONN_STRING``: ``redis://:PASSWORD@host:port/db`` (``rediss://`` with TLS)."""
    return f"{'rediss' if tls else 'redis'}://:{quote(password, safe='')}@{host}:{port}/{db}"


def redis_conf(maxmemory_mb: int, policy: str, data_dir: str = "/data", auth_dir: str = AUTH_DIR,
               port: int = PORT) -> str:
    """``redis.conf`` of the kubernetes backend. No secret in it: the password lives in the
    Secret's ``auth.conf``, pulled in by ``include`` (last, so nothing overrides it).
    Persistence (seed notes §4 #26): AOF ``appendfsync everysec`` (at most a second of
    writes lost) plus the seed's RDB snapshots for fast restarts and copies."""
    lines = [
        "# Rendered by components/redis.py; edit the component, not this file.",
        "bind 0.0.0.0",
        f"port {port}",
        "protected-mode yes",
        "tcp-keepalive 300",
        "timeout 0",
        "loglevel notice",
        'logfile ""',
        f"dir {data_dir}",
        "appendonly yes",
        "appendfsync everysec",
        "aof-use-rdb-preamble yes",
        "save " + " ".join(f"{s} {c}" for s, c in SAVE_RULES),
        "stop-writes-on-bgsave-error yes",
        f"maxmemory {int(maxmemory_mb)}mb",
        f"maxmemory-policy {policy}",
        "latency-monitor-threshold 100",
        f"include {auth_dir}/auth.conf",
    ]
    return "\n".join(lines) + "\n"


def _validate(args: RedisArgs) -> dict:
    a = dict(args)
    a.setdefault("backend", "aws")
    common.require(a["backend"] in BACKENDS, "backend", f"{a['backend']!r} is not one of {', '.join(BACKENDS)}")
    common.require(a.get("namespace") is not None, "namespace",
                   "is required (the kubernetes backend runs there; on aws its exporter does)")
    a.setdefault("maxmemory_mb", 800)
    common.require(int(a["maxmemory_mb"]) >= 16, "maxmemory_mb", "must be at least 16")
    a.setdefault("maxmemory_policy", "volatile-lru")
    common.require(a["maxmemory_policy"] in EVICTION_POLICIES, "maxmemory_policy",
                   f"{a['maxmemory_policy']!r} is not one of {', '.join(EVICTION_POLICIES)}")
    a.setdefault("storage_size", "2Gi")
    a.setdefault("image", images.REDIS)
    a.setdefault("exporter_image", images.REDIS_EXPORTER)
    for key in ("image", "exporter_image"):
        try:
            common.split_image(a[key])
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    res = {**DEFAULT_RESOURCES, **(a.get("resources") or {})}
    common.require(not sorted(set(res) - set(DEFAULT_RESOURCES)), "resources", "unknown keys")
    a["resources"] = res
    if a["backend"] == "kubernetes":
        limit_mb = common.parse_quantity(res["memory_limit"]) / 2**20
        common.require(int(a["maxmemory_mb"]) <= 0.8 * limit_mb, "maxmemory_mb",
                       f"{a['maxmemory_mb']} exceeds 80 % of memory_limit {res['memory_limit']}")
    a["clients"] = list(a.get("clients") or [])
    a["protect"] = bool(a.get("protect", False))
    if a["backend"] == "aws":
        aws = {**DEFAULT_AWS, **(a.get("aws") or {})}
        common.require("allowed_cidrs" not in aws, "aws.allowed_cidrs",
                       "was replaced by source_security_group_ids (the nodes' or pods' security groups)")
        for key in ("vpc_id", "subnet_ids", "vpc_cidr", "source_security_group_ids"):
            common.require(bool(aws.get(key)), f"aws.{key}", "is required with backend 'aws'")
        common.require(len(aws["subnet_ids"]) >= 2, "aws.subnet_ids", "Multi-AZ needs subnets in two AZs")
        common.require(int(aws["replicas"]) >= 1, "aws.replicas", "automatic failover needs a replica")
        common.require(all(str(g).startswith("sg-") for g in aws["source_security_group_ids"]),
                       "aws.source_security_group_ids", f"{aws['source_security_group_ids']!r} must be sg-... ids")
        a["aws"] = aws
    return a


class Redis(pulumi.ComponentResource):
    """New API's Redis, one connection shape whatever the backend.

    Eviction: **volatile-lru**, not the seed's ``allkeys-lru``. New API keeps more than
    cache in Redis: rate-limit counters and session-revocation state shared by all pods
    (CONTRACT §3 "What Redis adds"). Its caches carry TTLs (``SYNC_FREQUENCY``), so
    ``volatile-lru`` still evicts them under pressure, but never a key without a TTL; if
    only such keys remain, writes fail loudly (OOM) instead of silently dropping state.
    Size ``maxmemory`` generously and alert at 90 % (seed 000's rule).

    ``kubernetes`` (dev): a StatefulSet of the official image as its own UID (common.WORKLOAD_UIDS) with a
    read-only root filesystem; ``redis.conf`` from a ConfigMap (AOF ``everysec`` + the
    seed's RDB saves, ``maxmemory``, the eviction policy) that ``include``\\s the password
    from a Secret, so it is never in a ConfigMap, an argument or the process list; probes
    through ``redis-cli`` with the password from ``REDISCLI_AUTH`` (readiness/startup:
    PING answers PONG, which also fails while the AOF loads; liveness: TCP); a
    redis_exporter sidecar on 9121; a retained PVC; a headless and a client Service; a
    NetworkPolicy admitting only the clients and the scraper.

    ``aws`` (prod): an ElastiCache replication group, cluster mode disabled (New API
    cannot talk to a cluster), a primary and a replica in different AZs with automatic
    failover, encryption at rest (customer-managed, rotated KMS key) and in transit (so
    the URL is ``rediss://``), the generated password as AUTH token, daily snapshots,
    its own subnet, parameter and security groups (admitting only the nodes' or pods'
    security groups), automatic minor upgrades, and a redis_exporter Deployment on the
    primary endpoint over TLS (``redis_aws``).
    """

    host: pulumi.Output[str]
    """The single endpoint (ElastiCache: the primary endpoint)."""
    port: pulumi.Output[int]
    """Port (6379)."""
    password: pulumi.Output[str]
    """AUTH password (secret)."""
    tls: pulumi.Output[bool]
    """Whether clients must use TLS (``rediss://``)."""
    url: pulumi.Output[str]
    """``redis://:password@host:6379/0`` or ``rediss://...`` for REDIS_CONN_STRING (secret)."""
    egress: pulumi.Output[list[EgressTargetArgs]]
    """Where clients must be allowed to connect (``EgressTargetArgs`` of ApiService); as
    plain values in ``egress_targets`` for composition-time wiring."""

    def __init__(self, name: str, args: RedisArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("new-api:index:Redis", name, None, opts)
        a = _validate(args)
        self._name, self._a = name, a
        password = a.get("password")
        if password is None:
            password = generated_secret(f"{name}-password", 32, pulumi.ResourceOptions(parent=self), mixed=False)
        password = pulumi.Output.secret(password)
        if a["backend"] == "kubernetes":
            host, tls, egress = self._kubernetes(password)
        else:
            host, tls, egress = redis_aws.build(self, password)
        self.host = pulumi.Output.from_input(host)
        self.port = pulumi.Output.from_input(PORT)
        self.password = password
        self.tls = pulumi.Output.from_input(tls)
        self.url = pulumi.Output.secret(pulumi.Output.all(self.host, password).apply(
            lambda v: url(v[1], v[0], PORT, tls)))
        self.egress_targets = egress
        self.egress = pulumi.Output.from_input(egress)
        self.register_outputs({"host": self.host, "port": self.port, "password": self.password,
                               "tls": self.tls, "url": self.url, "egress": self.egress})

    def _child(self, *deps, protect: bool = False, **kw) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=[d for d in deps if d is not None],
                                      protect=protect, **kw)

    # ------------------------------------------------------------------ kubernetes

    def _kubernetes(self, password):
        name, a = self._name, self._a
        ns = a["namespace"]
        lbl = common.labels(APP, name, COMPONENT)
        sel = pod_selector(name)
        res = a["resources"]
        conf = redis_conf(int(a["maxmemory_mb"]), a["maxmemory_policy"])
        self.auth_secret = k8s.core.v1.Secret(
            f"{name}-auth", metadata=common.meta(f"{name}-auth", ns, lbl), type="Opaque",
            string_data=pulumi.Output.secret(password.apply(
                lambda pw: {"password": pw, "auth.conf": f"requirepass {pw}\n"})),
            opts=self._child())
        self.config_map = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=common.meta(f"{name}-config", ns, lbl), data={"redis.conf": conf},
            opts=self._child())
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa", metadata=common.meta(name, ns, lbl), automount_service_account_token=False,
            opts=self._child())
        secret_name = self.auth_secret.metadata.name
        ping = ["sh", "-c", 'test "$(redis-cli --no-auth-warning -h 127.0.0.1 -p 6379 ping)" = PONG']
        redis = {
            "name": "redis",
            "image": a["image"],
            "image_pull_policy": "IfNotPresent",
            "command": ["redis-server", "/etc/redis/redis.conf"],
            "ports": [{"name": "redis", "container_port": PORT, "protocol": "TCP"}],
            # redis-cli reads the password from REDISCLI_AUTH: never on a command line.
            "env": [common.secret_env("REDISCLI_AUTH", secret_name, "password")],
            "resources": common.resources(res["cpu_request"], res["memory_request"], res["memory_limit"],
                                          res.get("cpu_limit") or None, "32Mi", "256Mi"),
            "security_context": common.container_security_context(),
            # Loading a large AOF can take minutes: PING answers LOADING until done.
            "startup_probe": common.exec_probe(ping, period=10, timeout=5, failures=30),
            "readiness_probe": common.exec_probe(ping, period=10, timeout=5, failures=3),
            "liveness_probe": common.tcp_probe("redis", period=10, timeout=5, failures=6),
            "volume_mounts": [
                common.mount("data", "/data"),
                common.mount("config", "/etc/redis/redis.conf", read_only=True, sub_path="redis.conf"),
                common.mount("auth", AUTH_DIR, read_only=True),
            ],
        }
        exporter = {
            "name": "exporter",
            "image": a["exporter_image"],
            "image_pull_policy": "IfNotPresent",
            "ports": [{"name": "metrics", "container_port": EXPORTER_PORT, "protocol": "TCP"}],
            "env": [
                {"name": "REDIS_ADDR", "value": f"redis://127.0.0.1:{PORT}"},
                common.secret_env("REDIS_PASSWORD", secret_name, "password"),
                {"name": "REDIS_EXPORTER_WEB_LISTEN_ADDRESS", "value": f":{EXPORTER_PORT}"},
            ],
            "resources": common.resources("10m", "32Mi", "128Mi", None, "16Mi", "64Mi"),
            "security_context": common.container_security_context(),
            "readiness_probe": common.http_probe("/health", "metrics", period=15, timeout=5, failures=3),
            "liveness_probe": common.tcp_probe("metrics", period=20, timeout=5, failures=3),
        }
        single = common.exemption_annotations(
            ["K8S-034"], "in-cluster Redis is one instance by design (dev): New API cannot use Sentinel or "
                         "cluster mode; HA is the aws backend")
        self.headless_service = k8s.core.v1.Service(
            f"{name}-headless", metadata=common.meta(f"{name}-headless", ns, lbl),
            spec=common.service_spec(sel, [("redis", PORT), ("metrics", EXPORTER_PORT)], headless=True),
            opts=self._child())
        self.statefulset = k8s.apps.v1.StatefulSet(
            name,
            metadata=common.meta(name, ns, lbl, single),
            spec={
                "replicas": 1,
                "service_name": self.headless_service.metadata.name,
                "update_strategy": {"type": "RollingUpdate"},
                "persistent_volume_claim_retention_policy": {"when_deleted": "Retain", "when_scaled": "Retain"},
                "selector": {"match_labels": sel},
                "template": {
                    "metadata": {"labels": lbl, "annotations": {
                        "new-api.io/config-checksum": hashlib.sha256(conf.encode()).hexdigest()[:16],
                        # A new password rolls the pod: redis-server reads requirepass (the
                        # Secret's auth.conf) at start, the exporter sidecar its env.
                        ROTATION_ANNOTATION: rotation_trigger(f"{name}-rotation", {"password": password},
                                                              self._child()),
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(EXPORTER_PORT),
                    }},
                    "spec": common.restricted_pod_spec(identity="redis",
                        service_account=self.service_account.metadata.name,
                        containers=[redis, exporter],
                        volumes=[
                            {"name": "config", "config_map": {"name": self.config_map.metadata.name}},
                            {"name": "auth", "secret": {"secret_name": secret_name, "default_mode": 0o440,
                                                        "items": [{"key": "auth.conf", "path": "auth.conf"}]}},
                        ],
                        termination_grace_seconds=30,
                    ),
                },
                "volume_claim_templates": [common.volume_claim("data", lbl, a["storage_size"], a.get("storage_class"))],
            },
            opts=self._child(self.auth_secret, self.config_map, protect=a["protect"],
                             retain_on_delete=a["protect"]),
        )
        self.service = k8s.core.v1.Service(
            name, metadata=common.meta(name, ns, lbl),
            spec=common.service_spec(sel, [("redis", PORT)]),
            opts=self._child(self.statefulset))
        peers = common.client_peers(a["clients"])
        ingress = [{"from": peers, "ports": common.tcp(PORT)}] if peers else []
        if a.get("monitoring_namespace"):
            ingress.append({"from": [common.namespace_peer(a["monitoring_namespace"])],
                            "ports": common.tcp(EXPORTER_PORT)})
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            name, metadata=common.meta(name, ns, lbl),
            spec={"pod_selector": {"match_labels": sel}, "policy_types": ["Ingress", "Egress"],
                  "ingress": ingress, "egress": []},
            opts=self._child())
        host = pulumi.Output.concat(self.service.metadata.name, ".", ns, ".svc")
        # No TLS in-cluster (the official image has no certificates to serve); the
        # NetworkPolicy admits only the app. The aws backend encrypts in transit.
        return host, False, [{"port": PORT, "pod_labels": sel}]
