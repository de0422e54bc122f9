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
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError,
                      model_validator)
from pydantic.alias_generators import to_camel

from components import app as app_component
from components import common, images

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


class Database(_Model):
    backend: Literal["kubernetes", "cloudnative-pg", "aws"] = "aws"
    max_connections: Annotated[int, Field(ge=20, le=10000)] = 200
    #: Connections kept free for admins, exporters and backups.
    reserved_connections: Annotated[int, Field(ge=5)] = 20
    name: DnsLabel = "newapi"
    username: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = "newapi"
    storage_size: Quantity = "20Gi"
    storage_class: Optional[DnsLabel] = None


class Redis(_Model):
    backend: Literal["kubernetes", "aws"] = "aws"
    storage_size: Quantity = "2Gi"
    storage_class: Optional[DnsLabel] = None
    maxmemory_mb: PositiveInt = 800


class Network(_Model):
    #: Namespace of cluster DNS (egress allow).
    dns_namespace: DnsLabel = "kube-system"
    #: Destinations the app may reach on 443 (LLM upstreams). The node metadata
    #: endpoint is always excluded.
    upstream_cidrs: Annotated[list[Cidr], Field(min_length=1)] = list(app_component.DEFAULT_UPSTREAM_CIDRS)


class Monitoring(_Model):
    enabled: bool = True
    namespace: DnsLabel = "monitoring"


class Logging(_Model):
    enabled: bool = True
    namespace: DnsLabel = "logging"


class StackConfig(_Model):
    """Everything a stack decides. Keys are camelCase under the ``new-api:`` namespace."""
    environment: Literal["dev", "staging", "prod"]
    namespace: DnsLabel = "new-api"
    domain: Hostname
    app: App
    ingress: Ingress = Ingress()
    database: Database = Database()
    redis: Redis = Redis()
    network: Network = Network()
    monitoring: Monitoring = Monitoring()
    logging: Logging = Logging()

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def cookie_secure(self) -> bool:
        secure = self.app.session_cookie_secure
        return self.ingress.tls.enabled if secure is None else secure

    @model_validator(mode="after")
    def _cross_field(self):
        errors: list[tuple[str, Any, str]] = []
        app, ing = self.app, self.ingress
        if self.is_prod and app.autoscaling.min_replicas < 2:
            errors.append(("app.autoscaling.minReplicas", app.autoscaling.min_replicas,
                           "a prod stack needs at least 2 serving replicas (seed 000: 3)"))
        if self.is_prod and not ing.tls.enabled:
            errors.append(("ingress.tls.enabled", False, "prod always terminates TLS"))
        if self.is_prod and ing.tls.issuer != "letsencrypt-prod":
            errors.append(("ingress.tls.issuer", ing.tls.issuer,
                           "prod certificates come from 'letsencrypt-prod' (K8S-045)"))
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
        pods = app.autoscaling.max_replicas + 1  # the serving pods at HPA max plus the master
        demand = pods * app.pool.max_open_conns + self.database.reserved_connections
        if demand > self.database.max_connections:
            errors.append(("app.pool.maxOpenConns", app.pool.max_open_conns,
                           f"(app.autoscaling.maxReplicas {app.autoscaling.max_replicas} + 1 master) x "
                           f"{app.pool.max_open_conns} + database.reservedConnections "
                           f"{self.database.reserved_connections} = {demand} exceeds "
                           f"database.maxConnections ({self.database.max_connections}); lower the pool or "
                           "maxReplicas, or raise database.maxConnections"))
        if errors:
            raise _CrossFieldErrors(errors)
        return self


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


def validate(raw: dict[str, Any], stack: str, project: str = PROJECT) -> StackConfig:
    """Validate a stack's raw config map (short keys) and return the typed config, or raise
    :class:`ConfigError` listing every problem with file, key path, value and what is allowed."""
    stack_file = f"Pulumi.{stack}.yaml"
    lines: list[str] = []
    known = set(_top_level_keys())
    for key in sorted(set(raw) - known):
        lines.append(f"{stack_file}: {project}:{key} = {json.dumps(raw[key])}: unknown key; "
                     f"allowed top-level keys: {', '.join(_top_level_keys())}")
    try:
        cfg = StackConfig.model_validate({k: v for k, v in raw.items() if k in known})
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
    return validate(_all_project_config(project), pulumi.get_stack(), project)
