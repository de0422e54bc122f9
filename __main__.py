"""The new-api stack: composition only. Reads and validates the stack config, then wires
the components together. Every decision about *how* lives in components/."""

import pulumi

from components import ApiService, RestrictedNamespace, StackSecrets, TlsIngress
from stack import config as stack_config

cfg = stack_config.load()  # raises ConfigError before any resource is registered

namespace = RestrictedNamespace("new-api-ns", {
    "name": cfg.namespace,
    "dns_namespace": cfg.network.dns_namespace,
    "protect": cfg.is_prod,
})
secrets = StackSecrets("new-api-secrets", {})

# Datastores: in-cluster services until the data tier lands (issue: data tier).
db_host = f"postgres.{cfg.namespace}.svc"
redis_host = f"redis.{cfg.namespace}.svc"
sql_dsn = secrets.database_password.apply(
    lambda pw: f"postgresql://{cfg.database.username}:{pw}@{db_host}:5432/{cfg.database.name}?sslmode=disable")
redis_url = secrets.redis_password.apply(lambda pw: f"redis://:{pw}@{redis_host}:6379/0")

app = ApiService("new-api", {
    "namespace": namespace.name,
    "image": cfg.app.image,
    "image_pull_policy": cfg.app.image_pull_policy,
    "host": cfg.domain,
    "tls": cfg.ingress.tls.enabled,
    "session_cookie_secure": cfg.cookie_secure,
    "sql_dsn": sql_dsn,
    "redis_url": redis_url,
    "session_secret": secrets.session_secret,
    "crypto_secret": secrets.crypto_secret,
    "admin_username": cfg.app.admin_username,
    "admin_password": secrets.admin_password,
    "trusted_proxies": list(cfg.app.trusted_proxies),
    "resources": cfg.app.resources.model_dump(),
    "master_resources": cfg.app.master_resources.model_dump(),
    "autoscaling": cfg.app.autoscaling.model_dump(),
    "pool": cfg.app.pool.model_dump(),
    "streaming_timeout_seconds": cfg.app.streaming_timeout_seconds,
    "shutdown_timeout_seconds": cfg.app.shutdown_timeout_seconds,
    "pre_stop_seconds": cfg.app.pre_stop_seconds,
    "timezone": cfg.app.timezone,
    "ingress_namespace": cfg.ingress.controller_namespace,
    "monitoring_namespace": cfg.monitoring.namespace if cfg.monitoring.enabled else None,
    "datastore_egress": [
        {"port": 5432, "pod_labels": {"app.kubernetes.io/name": "postgres"}},
        {"port": 6379, "pod_labels": {"app.kubernetes.io/name": "redis"}},
    ],
    "upstream_cidrs": list(cfg.network.upstream_cidrs),
    "priority_class_name": cfg.app.priority_class_name,
    "extra_env": dict(cfg.app.extra_env),
}, opts=pulumi.ResourceOptions(depends_on=[namespace]))

ingress = TlsIngress("new-api", {
    "namespace": namespace.name,
    "host": cfg.domain,
    "service_name": app.service_name,
    "service_port": app.service_port,
    "class_name": cfg.ingress.class_name,
    "tls": cfg.ingress.tls.enabled,
    "issuer": cfg.ingress.tls.issuer,
    "acme_email": cfg.ingress.tls.acme_email,
    "proxy_timeout_seconds": cfg.ingress.proxy_timeout_seconds,
    "proxy_body_size_mb": cfg.ingress.proxy_body_size_mb,
}, opts=pulumi.ResourceOptions(depends_on=[app]))

pulumi.export("url", ingress.url)
pulumi.export("namespace", namespace.name)
pulumi.export("adminUsername", app.admin_username)
pulumi.export("adminPassword", secrets.admin_password)
