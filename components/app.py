"""``ApiService``: the New API app tier, shaped by what New API's code requires
(NEWAPI-CONTRACT.md): one migrating master, autoscaled slaves, a bootstrapped admin."""


import hashlib
import ipaddress
import json
import math
from typing import Any, Optional, Required, Sequence, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from . import common, delivery, entry, entry_metrics, postgres_base, upgrade_snapshot
from .secrets import ROTATION_ANNOTATION, rotation_trigger

APP = "new-api"
#: New API listens on 3000 (``--port``/``PORT``, CONTRACT §1); the Service exposes 80.
APP_PORT = 3000
SERVICE_PORT = 80
#: The only health endpoint (CONTRACT §1): process up, options loaded, Redis reachable.
HEALTH_PATH = "/api/status"
#: Extra seconds past preStop + drain before the kubelet's SIGKILL.
DRAIN_MARGIN_SECONDS = 15

DEFAULT_RESOURCES = {"cpu_request": "250m", "memory_request": "256Mi",
                     "cpu_limit": "500m", "memory_limit": "512Mi"}
"""Seed 000 sizing (requests 250m/256Mi, limits 500m/512Mi)."""
DEFAULT_AUTOSCALING = {"min_replicas": 3, "max_replicas": 10, "target_cpu_percent": 80,
                       "target_memory_percent": 80, "scale_down_stabilization_seconds": 300}
"""Seed 000 HPA (min 3, max 10, 80 %/80 %) plus scale-down stabilization."""
DEFAULT_POOL = {"max_open_conns": 12, "max_idle_conns": 5, "max_lifetime_seconds": 300}
"""Per-pod DB pool: (HPA max 10 + 3 surge pods during a rolling update + master) x 12 + 20
reserved = 188 <= 200 connections (seed notes §4 #41). New API's own default is 1000 open
connections per pod."""
DEFAULT_UPSTREAM_PORTS = (443,)
"""TCP ports the app may open to upstreams: HTTPS. Add 465/587 for New API's e-mail
(password resets, notifications), or a self-hosted model server's port."""
DEFAULT_UPSTREAM_CIDRS = common.ANYWHERE
"""HTTPS upstreams (LLM providers) may be any public address: private, shared (100.64/10)
and link-local ranges are excluded unless listed explicitly (a self-hosted model)."""
DEFAULT_STREAMING_TIMEOUT = 300
DEFAULT_SHUTDOWN_TIMEOUT = 120
DEFAULT_PRE_STOP = 15
#: Bootstrap Job: talks to the master's ClusterIP Service, creates root once.
BOOTSTRAP_SCRIPT = r"""
status_url="$MASTER_URL/api/status"
i=0
until body=$(wget -q -O - -T 5 --no-hsts "$status_url"); do
  i=$((i+1)); [ "$i" -ge 60 ] && { echo "master not answering at $status_url"; exit 1; }
  sleep 5
done
case "$body" in
  *'"setup":true'*) echo "setup already complete: nothing to do"; exit 0 ;;
esac
payload=$(printf '{"username":"%s","password":"%s","confirmPassword":"%s","SelfUseModeEnabled":false,"DemoSiteEnabled":false}' \
  "$ADMIN_USERNAME" "$ADMIN_PASSWORD" "$ADMIN_PASSWORD")
reply=$(wget -q -O - -T 30 --no-hsts --header 'Content-Type: application/json' --post-data "$payload" "$MASTER_URL/api/setup")
case "$reply" in
  *'"success":true'*) echo "root user created" ;;
  *) echo "setup failed: $reply"; exit 1 ;;
esac
""".strip()


class ResourcesArgs(TypedDict, total=False):
    cpu_request: str
    """CPU request (default 250m)."""
    memory_request: str
    """Memory request (default 256Mi)."""
    cpu_limit: str
    """CPU limit (default 500m; empty string for none)."""
    memory_limit: str
    """Memory limit (default 512Mi). GOMEMLIMIT is set to 90 % of it."""


class AutoscalingArgs(TypedDict, total=False):
    min_replicas: int
    """HPA minimum (default 3)."""
    max_replicas: int
    """HPA maximum (default 10)."""
    target_cpu_percent: int
    """Average CPU utilization target (default 80)."""
    target_memory_percent: int
    """Average memory utilization target (default 80)."""
    scale_down_stabilization_seconds: int
    """Scale-down stabilization window (default 300)."""


class PoolArgs(TypedDict, total=False):
    max_open_conns: int
    """SQL_MAX_OPEN_CONNS per pod (default 12)."""
    max_idle_conns: int
    """SQL_MAX_IDLE_CONNS per pod (default 5)."""
    max_lifetime_seconds: int
    """SQL_MAX_LIFETIME in seconds (default 300)."""


class EgressTargetArgs(TypedDict, total=False):
    port: Required[int]
    """TCP port the app connects to."""
    pod_labels: dict[str, str]
    """Labels of the target pods (in-cluster datastore)."""
    namespace: str
    """Namespace of the target pods (default: the app's namespace)."""
    cidr: str
    """CIDR of the target (managed datastore), instead of pod labels."""


class DeliveryArgs(TypedDict, total=False):
    canary_steps: list[int]
    """Canary traffic weights in percent (default 20, 40, 60, 80)."""
    pause_seconds: int
    """Pause after each weight (default 600)."""
    canary_header: str
    """Requests with this header set to ``always`` go to the canary (default X-Canary)."""
    analysis_starting_step: int
    """Canary step index the background analysis starts at (default 2)."""
    scale_down_delay_seconds: int
    """Blue-green: seconds the old pods stay after promotion (default 30)."""
    success_rate: float
    """Minimum share of non-5xx responses (default 0.95)."""
    latency_p95_seconds: float
    """Maximum p95 request duration through the ingress (default 0.5)."""
    analysis_interval: str
    """Time between measurements (default 1m)."""
    analysis_count: int
    """Measurements per analysis (default 5)."""
    analysis_failure_limit: int
    """Failed measurements tolerated; one more fails the rollout (default 1)."""
    analysis_inconclusive_limit: int
    """Inconclusive (no traffic) measurements before the rollout pauses (default 2)."""
    rollouts_namespace: str
    """Namespace of the Argo Rollouts controller (its web check reaches the pods)."""


class ApiServiceArgs(TypedDict, total=False):
    namespace: Required[pulumi.Input[str]]
    """Namespace to run in (created by RestrictedNamespace)."""
    image: Required[str]
    """New API image pinned by tag or digest, e.g. calciumion/new-api:v1.0.0-rc.25 (never latest)."""
    image_pull_policy: str
    """IfNotPresent (default) or Always."""
    host: Required[str]
    """Public host name; SESSION_COOKIE_TRUSTED_URL is https://<host>."""
    tls: bool
    """Whether the public endpoint is HTTPS (default true)."""
    session_cookie_secure: bool
    """SESSION_COOKIE_SECURE (default: same as tls; needs tls)."""
    sql_dsn: Required[pulumi.Input[str]]
    """SQL_DSN, a postgresql:// URL (secret)."""
    redis_url: Required[pulumi.Input[str]]
    """REDIS_CONN_STRING, redis:// or rediss:// (secret)."""
    database_ca: postgres_base.CaBundleArgs
    """The CA bundle the SQL_DSN's ``sslrootcert`` names (``Postgres.ca_bundle``:
    ``{"config_map", "key"}``), mounted read-only where the DSN points (optional)."""
    session_secret: Required[pulumi.Input[str]]
    """SESSION_SECRET shared by every pod (secret)."""
    crypto_secret: Required[pulumi.Input[str]]
    """CRYPTO_SECRET shared by every pod (secret)."""
    admin_username: str
    """Root user created by the bootstrap Job (default root)."""
    admin_password: Required[pulumi.Input[str]]
    """Its password, 8-20 characters (secret)."""
    trusted_proxies: Required[list[str]]
    """TRUSTED_PROXIES: CIDRs of the ingress controller's pods."""
    resources: ResourcesArgs
    """Serving pods' requests and limits."""
    master_resources: ResourcesArgs
    """Master pod's requests and limits."""
    autoscaling: AutoscalingArgs
    """HPA of the serving workload."""
    pool: PoolArgs
    """Database pool per pod."""
    streaming_timeout_seconds: int
    """STREAMING_TIMEOUT (default 300)."""
    shutdown_timeout_seconds: int
    """SHUTDOWN_TIMEOUT_SECONDS (default 120)."""
    pre_stop_seconds: int
    """preStop sleep before SIGTERM (default 15)."""
    timezone: str
    """TZ (default UTC; log parsing assumes it)."""
    ingress_namespace: str
    """Namespace of the entry's data plane allowed to reach the serving pods (default: the
    entry's own, ingress-nginx or envoy-gateway-system)."""
    legacy_ingress_namespace: str
    """ingress-nginx's namespace, also admitted while a migration to the Gateway API keeps
    the old entry next to the new one (docs/gateway-migration.md)."""
    relay_access_log: bool
    """Gateway API entry: the relay's time to first byte is counted from the proxies' access
    log (docs/relay-ttfb-gateway.md), so the canary analysis gates on it (default false)."""
    monitoring_namespace: str
    """Namespace allowed to probe the pods (optional)."""
    datastore_egress: list[EgressTargetArgs]
    """Where the app may connect besides DNS and HTTPS upstreams."""
    upstream_cidrs: list[str]
    """Destinations allowed on the upstream ports (LLM providers); default everywhere but link-local."""
    upstream_ports: list[int]
    """TCP ports allowed to those destinations (default 443)."""
    priority_class_name: str
    """PriorityClass of the app pods (prod: above logging and monitoring, K8S-038)."""
    priority_class_value: int
    """Create that PriorityClass with this value (unset: it must already exist)."""
    extra_env: dict[str, str]
    """Escape hatch: extra non-secret env (ConfigMap) for both workloads."""
    entry: str
    """The public entry (components/entry.py): ``gateway`` (default, Gateway API) or
    ``ingress-nginx`` (legacy). Its data plane may reach the serving pods, its metrics are
    what the canary and blue-green analyses measure, and its traffic router shifts the
    canary's weight."""
    strategy: str
    """How the serving pods are updated: ``rolling`` (default, a Deployment), ``canary`` or
    ``blue-green`` (an Argo Rollouts ``Rollout``; the Argo Rollouts controller is a
    prerequisite)."""
    delivery: "DeliveryArgs"
    """Canary steps, pauses and analysis thresholds (defaults: seed 000)."""
    prometheus_url: str
    """Prometheus the analyses query (required with canary or blue-green)."""
    stable_ingress: str
    """The Ingress or HTTPRoute Argo shifts canary traffic through (default: the component
    name, as the entry names it)."""
    extra_metrics: list[dict[str, Any]]
    """Extra autoscaling/v2 metrics for the serving HPA besides CPU and memory, e.g. requests
    per second per pod through Prometheus Adapter (``EntrySpec.hpa_rps_metric``)."""
    pre_upgrade_snapshot: str
    """Name of the database copy taken for this image (components/upgrade_snapshot.py): the
    master Deployment records it (annotation ``new-api.io/pre-upgrade-snapshot``, not on the
    pods, so it rolls nothing) and, through that input, starts the new version only after it."""


def peak_serving_pods(max_replicas: int, strategy: str) -> tuple[int, str]:
    """Most serving pods holding database connections at once, and why: a rolling update
    adds its 25 % surge; canary keeps the stable pods at full size while the canary grows to
    80 %, and blue-green runs both colours at full size (count 2x for both)."""
    if strategy == "rolling":
        return max_replicas + math.ceil(max_replicas * 0.25), "plus the rolling update's 25 % surge"
    return 2 * max_replicas, f"x 2 during a {strategy} rollout"


def pod_selector(name: str, role: str) -> dict:
    """Selector labels of an ApiService's pods (``role``: ``serving``, ``master``, ``bootstrap``)."""
    return common.selector(APP, name, role)


def grace_period(pre_stop: int, shutdown: int) -> int:
    """terminationGracePeriodSeconds ≥ preStop + SHUTDOWN_TIMEOUT_SECONDS + margin (CONTRACT §9)."""
    return pre_stop + shutdown + DRAIN_MARGIN_SECONDS


def _gomemlimit(memory_limit: str) -> str:
    """90 % of the memory limit (seed 000: GOMEMLIMIT 1800MiB for 2G)."""
    return f"{int(common.parse_quantity(memory_limit) * 0.9 / 2**20)}MiB"


def _checksum(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _merged(defaults: dict, given: Optional[dict], arg: str) -> dict:
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    common.require(not unknown, arg, f"unknown keys {unknown}; allowed: {sorted(defaults)}")
    return {**defaults, **given}


def _validate(args: ApiServiceArgs) -> dict:
    a = dict(args)
    for key in ("namespace", "image", "host", "sql_dsn", "redis_url", "session_secret",
                "crypto_secret", "admin_password", "trusted_proxies"):
        common.require(a.get(key) is not None, key, "is required")
    try:
        common.split_image(a["image"])
    except ValueError as exc:
        raise ValueError(f"image: {exc}") from None
    a["resources"] = _merged(DEFAULT_RESOURCES, a.get("resources"), "resources")
    a["master_resources"] = _merged(DEFAULT_RESOURCES, a.get("master_resources"), "master_resources")
    for key in ("resources", "master_resources"):
        for field, value in a[key].items():
            if value:
                try:
                    common.parse_quantity(value)
                except ValueError as exc:
                    raise ValueError(f"{key}.{field}: {exc}") from None
    auto = a["autoscaling"] = _merged(DEFAULT_AUTOSCALING, a.get("autoscaling"), "autoscaling")
    common.require(auto["min_replicas"] >= 1, "autoscaling.min_replicas", "must be at least 1")
    common.require(auto["max_replicas"] > auto["min_replicas"], "autoscaling.max_replicas",
                   f"{auto['max_replicas']} must be greater than min_replicas {auto['min_replicas']}")
    pool = a["pool"] = _merged(DEFAULT_POOL, a.get("pool"), "pool")
    common.require(1 <= pool["max_open_conns"], "pool.max_open_conns", "must be at least 1")
    common.require(0 <= pool["max_idle_conns"] <= pool["max_open_conns"], "pool.max_idle_conns",
                   "must be between 0 and max_open_conns")
    a.setdefault("tls", True)
    a.setdefault("session_cookie_secure", a["tls"])
    common.require(not a["session_cookie_secure"] or a["tls"], "session_cookie_secure",
                   "needs tls: New API exits when SESSION_COOKIE_SECURE is set without an https trusted URL")
    for cidr in a["trusted_proxies"]:
        try:
            net = ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            raise ValueError(f"trusted_proxies: {cidr!r} is not a CIDR ({exc})") from None
        common.require(net.prefixlen > 0, "trusted_proxies", f"{cidr} would trust every client's X-Forwarded-For")
    for key, schemes in (("sql_dsn", ("postgresql://", "postgres://")), ("redis_url", ("redis://", "rediss://"))):
        if isinstance(a[key], str):
            common.require(a[key].startswith(schemes), key,
                           f"must start with {' or '.join(schemes)} (a keyword DSN is sent to the MySQL driver)")
    if isinstance(a["session_secret"], str):
        common.require(a["session_secret"] != "random_string", "session_secret",
                       "the literal 'random_string' is fatal in New API; generate one")
    a.setdefault("image_pull_policy", "IfNotPresent")
    common.require(a["image_pull_policy"] in ("IfNotPresent", "Always"), "image_pull_policy",
                   "must be IfNotPresent or Always")
    a.setdefault("admin_username", "root")
    a.setdefault("streaming_timeout_seconds", DEFAULT_STREAMING_TIMEOUT)
    a.setdefault("shutdown_timeout_seconds", DEFAULT_SHUTDOWN_TIMEOUT)
    a.setdefault("pre_stop_seconds", DEFAULT_PRE_STOP)
    a.setdefault("timezone", "UTC")
    a.setdefault("upstream_cidrs", list(DEFAULT_UPSTREAM_CIDRS))
    a["upstream_ports"] = list(a.get("upstream_ports") or DEFAULT_UPSTREAM_PORTS)
    common.require(all(isinstance(p, int) and 0 < p < 65536 for p in a["upstream_ports"]), "upstream_ports",
                   f"{a['upstream_ports']!r} must be TCP port numbers")
    a["extra_env"] = dict(a.get("extra_env") or {})
    a["settings"] = _settings(a)
    if a.get("priority_class_value") is not None:
        common.require(bool(a.get("priority_class_name")), "priority_class_value", "needs priority_class_name")
        common.require(0 < int(a["priority_class_value"]) <= 1_000_000_000, "priority_class_value",
                       "must be between 1 and 1000000000 (higher values are reserved for system pods)")
    a.setdefault("entry", entry.DEFAULT_KIND)
    common.require(a["entry"] in entry.KINDS, "entry", f"{a['entry']!r} must be one of {', '.join(entry.KINDS)}")
    a["entry_spec"] = entry.entry_spec(a["entry"], a.get("ingress_namespace"), a.get("legacy_ingress_namespace"),
                                       bool(a.get("relay_access_log")))
    a.setdefault("strategy", "rolling")
    common.require(a["strategy"] in delivery.STRATEGIES, "strategy",
                   f"{a['strategy']!r} must be one of {', '.join(delivery.STRATEGIES)}")
    a["delivery"] = _merged(delivery.DEFAULT_DELIVERY, a.get("delivery"), "delivery")
    delivery.validate(a["delivery"])
    if a["strategy"] != "rolling":
        common.require(bool(a.get("prometheus_url")), "prometheus_url",
                       f"is required with strategy {a['strategy']!r}: the analyses query it")
    return a


def _settings(a: dict) -> dict:
    """Non-secret env of both workloads (the ConfigMap), extra_env included."""
    settings = {
        "PORT": str(APP_PORT),
        "TZ": a["timezone"],
        "GIN_MODE": "release",
        "ERROR_LOG_ENABLED": "true",
        "STREAMING_TIMEOUT": str(a["streaming_timeout_seconds"]),
        "SHUTDOWN_TIMEOUT_SECONDS": str(a["shutdown_timeout_seconds"]),
        "SQL_MAX_OPEN_CONNS": str(a["pool"]["max_open_conns"]),
        "SQL_MAX_IDLE_CONNS": str(a["pool"]["max_idle_conns"]),
        "SQL_MAX_LIFETIME": str(a["pool"]["max_lifetime_seconds"]),
        "TRUSTED_PROXIES": ",".join(a["trusted_proxies"]),
        "SESSION_COOKIE_SECURE": "true" if a["session_cookie_secure"] else "false",
    }
    if a["session_cookie_secure"]:
        # Required with SECURE=true and fatal without it (CONTRACT §2a).
        settings["SESSION_COOKIE_TRUSTED_URL"] = f"https://{a['host']}"
    managed = set(settings) | {"NODE_TYPE", "NODE_NAME", "GOMEMLIMIT", "SQL_DSN", "REDIS_CONN_STRING",
                               "SESSION_SECRET", "CRYPTO_SECRET"}
    clash = sorted(set(a["extra_env"]) & managed)
    common.require(not clash, "extra_env", f"{clash} are managed by the component")
    settings.update({k: str(v) for k, v in a["extra_env"].items()})
    return settings


class ApiService(pulumi.ComponentResource):
    """The New API app tier (NEWAPI-CONTRACT.md), creating:

    - a ServiceAccount (no token), a ConfigMap of non-secret settings and a Secret with
      ``SQL_DSN``, ``REDIS_CONN_STRING``, ``SESSION_SECRET``, ``CRYPTO_SECRET``;
    - the **master** Deployment: exactly one replica, ``Recreate``, no HPA. Every New API
      process not started with ``NODE_TYPE=slave`` runs GORM migrations with no lock and
      the background loops, so there is one and only one;
    - a bootstrap **Job** that creates the root user through the master's ClusterIP
      Service with a generated password (the first anonymous ``POST /api/setup`` becomes
      root; nothing public can reach it first), idempotent;
    - the **serving** Deployment (``NODE_TYPE=slave``), started after the master is ready
      and the bootstrap done, with the HPA (seed 000: 3-10 at 80 %/80 %), a PDB,
      topology spread and a zero-downtime rolling update (seed 002: maxUnavailable 0);
    - Services for both, and NetworkPolicies: serving pods reachable only from the ingress
      controller (and monitoring); egress only to DNS, the datastores and HTTPS upstreams.

    With ``strategy`` ``canary`` or ``blue-green`` the serving pods come from an Argo
    Rollouts ``Rollout`` that takes its pod template from the same Deployment
    (``workloadRef``), with AnalysisTemplates for success rate and latency
    (components/delivery.py); the HPA, PDB and Services follow it.

    Probes: startup ``GET /api/status`` with a 5-minute budget (migrations run before the
    port opens), readiness ``GET /api/status`` every 10 s (the endpoint is rate-limited per
    client IP), liveness **TCP** (``/api/status`` returns 500 when Redis fails; that must
    not restart every pod). Drain: preStop sleep, then ``SHUTDOWN_TIMEOUT_SECONDS``, inside
    ``terminationGracePeriodSeconds``.
    """

    service_name: pulumi.Output[str]
    """ClusterIP Service of the serving pods (port 80)."""
    service_port: pulumi.Output[int]
    """Port of that Service."""
    canary_service_name: pulumi.Output[str]
    """Argo Rollouts' canary Service (empty unless the strategy is canary): the entry's
    traffic router sends the canary's share to it."""
    master_service_name: pulumi.Output[str]
    """ClusterIP Service of the master (port 3000, in-cluster only)."""
    admin_username: pulumi.Output[str]
    """The bootstrapped root user."""
    strategy: pulumi.Output[str]
    """The update strategy of the serving pods (rolling, canary, blue-green)."""

    def __init__(self, name: str, args: ApiServiceArgs,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("new-api:index:ApiService", name, None, opts)
        a = _validate(args)
        ns = a["namespace"]
        roles = ("serving", "master", "bootstrap")
        sel = {role: pod_selector(name, role) for role in roles}
        lbl = {role: common.labels(APP, name, role) for role in roles}
        app_labels = common.labels(APP, name, "app")

        def opts_(*deps, **kw) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=[d for d in deps if d is not None], **kw)

        # ---------------------------------------------------------------- identity and settings
        self.priority_class = None
        if a.get("priority_class_name") and a.get("priority_class_value") is not None:
            # Under node pressure the gateway outranks logging and monitoring (priority 0).
            self.priority_class = k8s.scheduling.v1.PriorityClass(
                f"{name}-priority", metadata=common.meta(a["priority_class_name"], None, app_labels),
                value=int(a["priority_class_value"]), global_default=False,
                preemption_policy="PreemptLowerPriority",
                description="New API serving and master pods: above logging and monitoring",
                opts=opts_())
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa", metadata=common.meta(name, ns, app_labels),
            automount_service_account_token=False, opts=opts_())
        self.bootstrap_account = k8s.core.v1.ServiceAccount(
            f"{name}-bootstrap-sa", metadata=common.meta(f"{name}-bootstrap", ns, lbl["bootstrap"]),
            automount_service_account_token=False, opts=opts_())

        settings = a["settings"]
        self.config_map = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=common.meta(f"{name}-config", ns, app_labels),
            data=settings, opts=opts_())

        secret_data = {
            "SQL_DSN": a["sql_dsn"],
            "REDIS_CONN_STRING": a["redis_url"],
            "SESSION_SECRET": a["session_secret"],
            "CRYPTO_SECRET": a["crypto_secret"],
        }
        self.env_secret = k8s.core.v1.Secret(
            f"{name}-env", metadata=common.meta(f"{name}-env", ns, app_labels), type="Opaque",
            string_data={k: pulumi.Output.secret(v) for k, v in secret_data.items()}, opts=opts_())
        self.admin_secret = k8s.core.v1.Secret(
            f"{name}-admin", metadata=common.meta(f"{name}-admin", ns, lbl["bootstrap"]), type="Opaque",
            string_data={"username": a["admin_username"], "password": pulumi.Output.secret(a["admin_password"])},
            opts=opts_())
        # Pods roll when their settings or credentials change (names stay stable). The
        # credentials' trigger is no digest of them (issue 13 item 8): the hex of a RandomId
        # whose keepers are the credentials, renewed when one changes (secrets.rotation_trigger);
        # plain, so the pod template stays diffable in previews.
        template_annotations = {
            "new-api.io/config-checksum": _checksum(settings),
            ROTATION_ANNOTATION: rotation_trigger(f"{name}-rotation", secret_data, opts_()),
        }

        # ---------------------------------------------------------------- pod templates
        tmp = common.empty_dir("tmp", "1Gi")
        ca_volumes = [postgres_base.ca_volume(a["database_ca"])] if a.get("database_ca") else []
        ca_mounts = [postgres_base.ca_mount()] if a.get("database_ca") else []
        grace = grace_period(a["pre_stop_seconds"], a["shutdown_timeout_seconds"])

        def container(resources: dict, role_env: list) -> dict:
            res = common.resources_of(resources)
            return {
                "name": APP,
                "image": a["image"],
                "image_pull_policy": a["image_pull_policy"],
                # Logs to stdout only: the default /data/logs is never cleaned (CONTRACT §4).
                "args": ["--log-dir="],
                "ports": [{"name": "http", "container_port": APP_PORT, "protocol": "TCP"}],
                "env_from": [{"config_map_ref": {"name": self.config_map.metadata.name}}],
                "env": [
                    common.field_env("NODE_NAME", "metadata.name"),
                    {"name": "GOMEMLIMIT", "value": _gomemlimit(resources["memory_limit"])},
                    *[common.secret_env(key, self.env_secret.metadata.name, key) for key in secret_data],
                    *role_env,
                ],
                "resources": res,
                "security_context": common.container_security_context(),
                "startup_probe": common.http_probe(HEALTH_PATH, "http", period=10, timeout=5, failures=30),
                "readiness_probe": common.http_probe(HEALTH_PATH, "http", period=10, timeout=3, failures=3),
                "liveness_probe": common.tcp_probe("http", period=10, timeout=5, failures=3),
                "lifecycle": {"pre_stop": {"exec_": {"command": ["/bin/sleep", str(a["pre_stop_seconds"])]}}},
                "volume_mounts": [common.mount("tmp", "/tmp"), *ca_mounts],
            }

        def template(role: str, resources: dict, role_env: list, spread: bool,
                     extra_annotations: Optional[dict] = None) -> dict:
            return {
                "metadata": {"labels": lbl[role], "annotations": {**template_annotations, **(extra_annotations or {})}},
                "spec": common.restricted_pod_spec(identity="new-api",
                    service_account=self.service_account.metadata.name,
                    containers=[container(resources, role_env)],
                    volumes=[tmp, *ca_volumes],
                    spread_labels=sel[role] if spread else None,
                    termination_grace_seconds=grace,
                    priority_class=a.get("priority_class_name"),
                ),
            }

        # ---------------------------------------------------------------- master
        singleton = common.exemption_annotations(
            ["K8S-023", "K8S-034"], "New API master: every master runs unlocked GORM migrations and the "
                                    "background loops, so exactly one runs, replaced with Recreate "
                                    "(NEWAPI-CONTRACT §3)")
        self.master = k8s.apps.v1.Deployment(
            f"{name}-master",
            metadata=common.meta(f"{name}-master", ns, lbl["master"], {
                **singleton, **({upgrade_snapshot.SNAPSHOT_ANNOTATION: a["pre_upgrade_snapshot"]}
                                if a.get("pre_upgrade_snapshot") else {})}),
            spec={
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "revision_history_limit": 5,
                "selector": {"match_labels": sel["master"]},
                "template": template("master", a["master_resources"], [], spread=False),
            },
            opts=opts_(self.config_map, self.env_secret, self.priority_class),
        )
        self.master_service = k8s.core.v1.Service(
            f"{name}-master",
            metadata=common.meta(f"{name}-master", ns, lbl["master"]),
            spec=common.service_spec(sel["master"], [("http", APP_PORT)]),
            opts=opts_(self.master),
        )

        # ---------------------------------------------------------------- bootstrap
        self.bootstrap_job = k8s.batch.v1.Job(
            f"{name}-bootstrap",
            metadata=common.meta(f"{name}-bootstrap", ns, lbl["bootstrap"]),
            spec={
                "backoff_limit": 3,
                "active_deadline_seconds": 900,
                "ttl_seconds_after_finished": 86400,
                "template": {
                    "metadata": {"labels": lbl["bootstrap"]},
                    "spec": common.restricted_pod_spec(identity="new-api",
                        service_account=self.bootstrap_account.metadata.name,
                        restart_policy="Never",
                        volumes=[common.empty_dir("tmp", "16Mi")],
                        containers=[{
                            "name": "bootstrap",
                            "image": a["image"],
                            "image_pull_policy": a["image_pull_policy"],
                            "command": ["/bin/sh", "-ec", BOOTSTRAP_SCRIPT],
                            "env": [
                                {"name": "MASTER_URL",
                                 "value": self.master_service.metadata.name.apply(lambda n: f"http://{n}:{APP_PORT}")},
                                {"name": "HOME", "value": "/tmp"},
                                common.secret_env("ADMIN_USERNAME", self.admin_secret.metadata.name, "username"),
                                common.secret_env("ADMIN_PASSWORD", self.admin_secret.metadata.name, "password"),
                            ],
                            "resources": common.resources("10m", "16Mi", "64Mi", None, "16Mi", "64Mi"),
                            "security_context": common.container_security_context(),
                            "volume_mounts": [common.mount("tmp", "/tmp")],
                        }],
                    ),
                },
            },
            opts=opts_(self.master_service, self.admin_secret, delete_before_replace=True),
        )

        # ---------------------------------------------------------------- serving
        # With a Rollout this Deployment is its pod template (workloadRef): Argo Rollouts
        # scales it down as the Rollout's pods become available, and names stay unchanged,
        # so switching strategy on a live stack replaces nothing.
        template_source = common.exemption_annotations(
            ["K8S-034"], f"pod template of Rollout {name} (workloadRef): Argo Rollouts runs the pods "
                         "and scales this Deployment to zero") if a["strategy"] != "rolling" else None
        self.deployment = k8s.apps.v1.Deployment(
            name,
            metadata=common.meta(name, ns, lbl["serving"], template_source),
            spec={
                # No replicas: the HPA owns the scale (server-side apply would fight it, K8S-033).
                # maxSurge 25 %: counted in the database connection budget (peak_serving_pods).
                "strategy": {"type": "RollingUpdate",
                             "rolling_update": {"max_unavailable": 0, "max_surge": "25%"}},
                "revision_history_limit": 5,
                "progress_deadline_seconds": 600,
                "selector": {"match_labels": sel["serving"]},
                "template": template("serving", a["resources"], [{"name": "NODE_TYPE", "value": "slave"}],
                                     spread=True),
            },
            # The master migrates first; slaves start after setup so they read setup=done.
            opts=opts_(self.master, self.bootstrap_job, self.priority_class),
        )
        self.service = k8s.core.v1.Service(
            name,
            metadata=common.meta(name, ns, lbl["serving"]),
            spec=common.service_spec(sel["serving"], [("http", SERVICE_PORT)]),
            opts=opts_(self.deployment),
        )
        self.rollout, self.second_service = self._rollout(name, ns, a, lbl["serving"], sel["serving"])
        scale_target = ({"api_version": "argoproj.io/v1alpha1", "kind": "Rollout", "name": name}
                        if self.rollout is not None else
                        {"api_version": "apps/v1", "kind": "Deployment", "name": self.deployment.metadata.name})
        auto = a["autoscaling"]
        self.hpa = k8s.autoscaling.v2.HorizontalPodAutoscaler(
            name,
            metadata=common.meta(name, ns, lbl["serving"]),
            spec={
                "scale_target_ref": scale_target,
                "min_replicas": auto["min_replicas"],
                "max_replicas": auto["max_replicas"],
                "metrics": [
                    *[{"type": "Resource", "resource": {"name": res, "target": {
                        "type": "Utilization", "average_utilization": auto[f"target_{res}_percent"]}}}
                      for res in ("cpu", "memory")],
                    *a.get("extra_metrics", []),
                ],
                "behavior": {
                    "scale_down": {"stabilization_window_seconds": auto["scale_down_stabilization_seconds"],
                                   "select_policy": "Min",
                                   "policies": [{"type": "Pods", "value": 1, "period_seconds": 60}]},
                    "scale_up": {"stabilization_window_seconds": 0, "select_policy": "Max",
                                 "policies": [{"type": "Percent", "value": 100, "period_seconds": 60},
                                              {"type": "Pods", "value": 4, "period_seconds": 60}]},
                },
            },
            opts=opts_(self.deployment, self.rollout),
        )
        self.pdb = k8s.policy.v1.PodDisruptionBudget(
            name,
            metadata=common.meta(name, ns, lbl["serving"]),
            # maxUnavailable 1 always allows a drain, whatever the HPA's current scale.
            spec={"max_unavailable": 1, "selector": {"match_labels": sel["serving"]}},
            opts=opts_(self.deployment),
        )

        # ---------------------------------------------------------------- network policies
        app_port = common.tcp(APP_PORT)

        scrapers = [{"from": [common.namespace_peer(a["monitoring_namespace"])], "ports": app_port}] \
            if a.get("monitoring_namespace") else []
        egress = _egress_rules(a["datastore_egress"] if a.get("datastore_egress") else [], a["upstream_cidrs"],
                               a["upstream_ports"])

        def netpol(suffix: str, role: str, ingress: list, egress_rules: list):
            return k8s.networking.v1.NetworkPolicy(
                f"{name}-{suffix}",
                metadata=common.meta(f"{name}-{suffix}", ns, lbl[role]),
                spec={"pod_selector": {"match_labels": sel[role]}, "policy_types": ["Ingress", "Egress"],
                      "ingress": ingress, "egress": egress_rules},
                opts=opts_())

        # Blue-green's pre-promotion check: the Argo Rollouts controller GETs /api/status.
        rollouts = ([{"from": [common.namespace_peer(a["delivery"]["rollouts_namespace"])], "ports": app_port}]
                    if a["strategy"] == "blue-green" else [])
        self.serving_policy = netpol(
            "serving", "serving",
            [{"from": [peer], "ports": app_port} for peer in a["entry_spec"].data_plane_peers()]
            + [*scrapers, *rollouts], egress)
        self.master_policy = netpol(
            "master", "master",
            [{"from": [{"pod_selector": {"match_labels": sel["bootstrap"]}}], "ports": app_port}, *scrapers],
            egress)
        self.bootstrap_policy = netpol(
            "bootstrap", "bootstrap", [],
            [{"to": [{"pod_selector": {"match_labels": sel["master"]}}], "ports": app_port}])

        self.service_name = self.service.metadata.name
        self.canary_service_name = (self.second_service.metadata.name if a["strategy"] == "canary"
                                    else pulumi.Output.from_input(""))
        self.strategy = pulumi.Output.from_input(a["strategy"])
        self.service_port = pulumi.Output.from_input(SERVICE_PORT)
        self.master_service_name = self.master_service.metadata.name
        self.admin_username = pulumi.Output.from_input(a["admin_username"])
        self.register_outputs({
            "service_name": self.service_name,
            "service_port": self.service_port,
            "canary_service_name": self.canary_service_name,
            "strategy": self.strategy,
            "master_service_name": self.master_service_name,
            "admin_username": self.admin_username,
        })


    def _rollout(self, name: str, ns, a: dict, labels: dict, selector: dict):
        """The Argo Rollout, its AnalysisTemplates and its canary/preview Service (none for rolling)."""
        strategy = a["strategy"]
        if strategy == "rolling":
            return None, None
        d = a["delivery"]
        child = lambda *deps: pulumi.ResourceOptions(parent=self, depends_on=list(deps))  # noqa: E731
        second = delivery.second_service_name(name, strategy)
        second_service = k8s.core.v1.Service(
            second, metadata=common.meta(second, ns, labels),
            spec=common.service_spec(selector, [("http", SERVICE_PORT)]),
            # No await: its pods appear only during a rollout.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.deployment]))
        relay = a["entry_spec"].measures_relay
        # The queries name the namespace (the entry's labels carry it): built once it is known.
        specs = pulumi.Output.from_input(ns).apply(lambda namespace: delivery.analysis_templates(
            name, a["prometheus_url"], d, a["entry_spec"].red_source(entry_metrics.App(
                namespace=namespace, service=name, service_port=SERVICE_PORT, canary_service=second)),
            strategy))
        templates = [
            k8s.apiextensions.CustomResource(
                template, api_version="argoproj.io/v1alpha1", kind="AnalysisTemplate",
                metadata=common.meta(template, ns, labels), spec=specs[template], opts=child())
            for template in delivery.template_names(name, relay).values()
        ]
        rollout = k8s.apiextensions.CustomResource(
            name, api_version="argoproj.io/v1alpha1", kind="Rollout",
            metadata=common.meta(name, ns, labels),
            spec={
                # No replicas: the HPA owns the scale (K8S-033).
                "selector": {"matchLabels": selector},
                "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                "scaleDown": "progressively"},
                "revisionHistoryLimit": 5,
                "progressDeadlineSeconds": 600,
                "strategy": delivery.rollout_strategy(
                    strategy, d, name=name, namespace=ns, stable_service=name, second_service=second,
                    stable_route=a.get("stable_ingress") or name, entry_kind=a["entry"], relay=relay),
            },
            opts=child(self.deployment, self.service, second_service, *templates))
        return rollout, second_service


def _egress_rules(targets: Sequence[EgressTargetArgs], upstream_cidrs: Sequence[str],
                  upstream_ports: Sequence[int]) -> list:
    """Egress to each datastore target and to the upstreams: public addresses only unless a
    private range is listed explicitly (``common.public_egress_peers``)."""
    rules = []
    for target in targets:
        common.require("port" in target, "datastore_egress", f"{target!r} needs a port")
        if target.get("cidr"):
            peer = {"ip_block": {"cidr": target["cidr"]}}
        else:
            common.require(bool(target.get("pod_labels")), "datastore_egress",
                           f"{target!r} needs pod_labels or cidr")
            peer = {"pod_selector": {"match_labels": dict(target["pod_labels"])}}
            if target.get("namespace"):
                peer["namespace_selector"] = {
                    "match_labels": {"kubernetes.io/metadata.name": target["namespace"]}}
        rules.append({"to": [peer], "ports": [{"protocol": "TCP", "port": int(target["port"])}]})
    rules.append({"to": common.public_egress_peers(upstream_cidrs), "ports": common.tcp(*upstream_ports)})
    return rules
