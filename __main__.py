"""The new-api stack: composition only. Reads and validates the stack config, then wires
the components together. Every decision about *how* lives in components/."""

import pulumi

from components import (ApiService, BackupBucket, Logging, Monitoring, Postgres, PostgresBackup, PublicEntry,
                        Redis, RestrictedNamespace, StackSecrets)
from components import logging as logging_component
from components import common, logging_config, upgrade_snapshot
from components import monitoring_config, postgres_rds, public_entry
from components.app import pod_selector as app_pod_selector
from components.backup import pod_selector as backup_pod_selector
from stack import config as stack_config

cfg = stack_config.load()  # raises ConfigError before any resource is registered
#: The public entry (entry.kind): its data plane, metrics and traffic router, for every component.
entry = cfg.entry_spec
if entry.kind == "gateway" and not entry.measures_relay:
    # Not silent: without the stack's EnvoyProxy and logging, nothing counts the relay's
    # time to first byte, so its SLO, burn alerts and canary gate are not rendered.
    pulumi.log.warn("The relay (/v1, playground) time-to-first-byte SLO, its burn-rate alerts and the "
                    "canary's relay-ttfb gate are not rendered: on the Gateway API entry they are counted "
                    "from the proxies' access log, which needs logging.enabled true and the stack's own "
                    "Gateway with Envoy Gateway objects (entry.gateway.gateway.create, "
                    "entry.gateway.envoyGateway). See docs/relay-ttfb-gateway.md.")

#: The app's component name: its Services, HPA, Ingress and pod labels derive from it, and
#: the datastores' and monitoring's references to them use it too.
APP = "new-api"

namespace = RestrictedNamespace("new-api-ns", {
    "name": cfg.namespace,
    "dns_namespace": cfg.network.dns_namespace,
    "protect": cfg.is_prod,
})
secrets = StackSecrets("new-api-secrets", {})

# Datastores: the backend per stack (database.backend, redis.backend); one connection
# shape whatever the backend. Backups: pg_dump daily (PVC, or S3 with IRSA), plus PITR
# from RDS or CloudNativePG's WAL archive.
db, cache, bk = cfg.database, cfg.redis, cfg.backup
BACKUP_NAME = "new-api-db-backup"
app_clients = [{"pod_labels": app_pod_selector(APP, role)} for role in ("master", "serving")]
scraper_namespace = cfg.monitoring.namespace if cfg.monitoring.enabled else None
after_namespace = pulumi.ResourceOptions(depends_on=[namespace])

backup_bucket = None
backup_s3 = None
if bk.s3 is not None:
    backup_s3 = {"bucket": bk.s3.bucket, "role_arn": bk.s3.role_arn, "region": bk.s3.region, "prefix": bk.s3.prefix}
elif db.backend == "aws":
    backup_bucket = BackupBucket("new-api-backups", {
        "retention_days": bk.retention_days,
        "irsa": {"oidc_provider_arn": bk.irsa.oidc_provider_arn, "oidc_issuer": bk.irsa.oidc_issuer,
                 "namespace": namespace.name, "service_account": BACKUP_NAME},
        # Restores read with a role of their own (the dump job's role only writes).
        "restore_irsa": {"oidc_provider_arn": bk.irsa.oidc_provider_arn, "oidc_issuer": bk.irsa.oidc_issuer,
                         "namespace": namespace.name, "service_account": f"{BACKUP_NAME}-restore"},
        "object_lock_mode": bk.object_lock_mode,
        # Elasticsearch's nightly snapshots (SLM) go to the same bucket, with a role of their own.
        **({"snapshot_irsa": {"oidc_provider_arn": bk.irsa.oidc_provider_arn, "oidc_issuer": bk.irsa.oidc_issuer,
                              "namespace": cfg.logging.namespace,
                              "service_account": logging_component.ELASTICSEARCH_SERVICE_ACCOUNT}}
           if cfg.logging.enabled else {}),
        "protect": cfg.is_prod,
    })
    backup_s3 = {"bucket": backup_bucket.bucket_name, "role_arn": backup_bucket.role_arn,
                 "restore_role_arn": backup_bucket.restore_role_arn,
                 "region": backup_bucket.region, "prefix": "database-backups/"}

postgres_args = {
    "backend": db.backend,
    "namespace": namespace.name,
    "database": db.name,
    "username": db.username,
    "password": secrets.database_password,
    "max_connections": db.max_connections,
    "storage_size": db.storage_size,
    "image": db.image,
    "exporter_image": db.exporter_image,
    "resources": db.resources.model_dump(),
    "clients": [*app_clients, {"pod_labels": backup_pod_selector(BACKUP_NAME)}],
    "monitoring_namespace": scraper_namespace,
    "protect": cfg.is_prod,
}
if db.storage_class:
    postgres_args["storage_class"] = db.storage_class
if db.aws is not None:
    rds = db.aws.model_dump(exclude={"ca_bundle"})
    # The RDS CA every client verifies the server with: a PEM of the project (read and
    # checked by stack/config.py) or an existing ConfigMap.
    if db.aws.ca_bundle.path:
        rds["ca_bundle_pem"] = db.aws.ca_bundle.pem()
    else:
        rds["ca_bundle_config_map"] = db.aws.ca_bundle.config_map.model_dump()
    if cfg.monitoring.enabled:
        # prometheus-rds-exporter behind the automated-backup alerts (its role: IRSA).
        rds["backup_exporter"] = {"oidc_provider_arn": bk.irsa.oidc_provider_arn, "oidc_issuer": bk.irsa.oidc_issuer,
                                  "api_cidrs": list(cfg.network.aws_api_cidrs)}
    postgres_args["aws"] = rds
if db.backend == "cloudnative-pg":
    postgres_args["cloudnative_pg"] = {
        **db.cloudnative_pg.model_dump(),
        # Never the operator's own PodMonitor: the stack's postgres-exporter job (standalone)
        # or PodMonitor (operator mode) already scrapes the instances on 9187; a second
        # scrape under CNPG's job would double every sum the alerts take, and in standalone
        # mode it needs the Prometheus Operator's CRDs.
        "pod_monitor": False,
        "backup_bucket": bk.s3.bucket, "backup_role_arn": bk.s3.role_arn, "backup_region": bk.s3.region,
        "backup_schedule": bk.schedule, "backup_retention_days": bk.retention_days,
        "api_server_cidrs": list(cfg.monitoring.api_server_cidrs),
        "object_storage_cidrs": list(cfg.network.object_storage_cidrs),
    }
POSTGRES = "new-api-postgres"
postgres = Postgres(POSTGRES, postgres_args, opts=after_namespace)

redis_args = {
    "backend": cache.backend,
    "namespace": namespace.name,
    "password": secrets.redis_password,
    "maxmemory_mb": cache.maxmemory_mb,
    "maxmemory_policy": cache.maxmemory_policy,
    "storage_size": cache.storage_size,
    "image": cache.image,
    "exporter_image": cache.exporter_image,
    "resources": cache.resources.model_dump(),
    "clients": app_clients,
    "monitoring_namespace": scraper_namespace,
    "protect": cfg.is_prod,
}
if cache.storage_class:
    redis_args["storage_class"] = cache.storage_class
if cache.aws is not None:
    redis_args["aws"] = cache.aws.model_dump()
redis = Redis("new-api-redis", redis_args, opts=after_namespace)

# Before the master migrates to a new New API version: a restorable copy of the database,
# by the backend's own means (components/upgrade_snapshot.py, docs/runbook-upgrade.md).
upgrade_to = upgrade_snapshot.needed(cfg.app.image, cfg.app.deployed_version)
pre_upgrade_snapshot = None
if upgrade_to and db.backend == "aws":
    pre_upgrade_snapshot = upgrade_snapshot.rds_snapshot(
        POSTGRES, postgres.instance, upgrade_to).db_snapshot_identifier
elif upgrade_to and db.backend == "cloudnative-pg":
    pre_upgrade_snapshot = upgrade_snapshot.cnpg_backup(
        POSTGRES, namespace.name, upgrade_snapshot.object_name(postgres.cluster), upgrade_to,
        common.labels("postgres", POSTGRES, "backup"), opts=pulumi.ResourceOptions(depends_on=[postgres]))
    pre_upgrade_snapshot = upgrade_snapshot.object_name(pre_upgrade_snapshot)

if db.backend != "cloudnative-pg":  # CNPG backs up itself (ScheduledBackup + WAL archive)
    backup_args = {
        "namespace": namespace.name,
        # Dumps as the read-only backup role; a restore as the owner (the app role).
        "connection": {"host": postgres.host, "port": postgres.port, "database": postgres.database,
                       "username": postgres.backup_username, "password": postgres.backup_password,
                       "restore_username": postgres.username, "restore_password": postgres.password,
                       "sslmode": postgres.client_sslmode, "ca_bundle": postgres.ca_bundle},
        "database_egress": postgres.egress_targets,
        "file_prefix": f"newapi-{pulumi.get_stack()}",
        "schedule": bk.schedule,
        "retention_days": bk.retention_days,
        "storage_size": bk.storage_size,
        "image": db.image,
        "object_storage_cidrs": list(cfg.network.object_storage_cidrs),
        "protect": cfg.is_prod,
    }
    if db.backend == "kubernetes":
        backup_args["backup_of"] = POSTGRES
    if bk.storage_class:
        backup_args["storage_class"] = bk.storage_class
    if backup_s3 is not None:
        backup_args["s3"] = backup_s3
    if db.restore is not None:
        backup_args["restore_object_key"] = db.restore.object_key
    if upgrade_to and db.backend == "kubernetes":
        backup_args["pre_upgrade_version"] = upgrade_to
    db_backup = PostgresBackup(BACKUP_NAME, backup_args, opts=pulumi.ResourceOptions(depends_on=[namespace, postgres]))
    if db_backup.pre_upgrade_job is not None:
        pre_upgrade_snapshot = upgrade_snapshot.object_name(db_backup.pre_upgrade_job)
sql_dsn = postgres.dsn
redis_url = redis.url

app = ApiService(APP, {
    "namespace": namespace.name,
    "image": cfg.app.image,
    **({"pre_upgrade_snapshot": pre_upgrade_snapshot} if pre_upgrade_snapshot is not None else {}),
    "image_pull_policy": cfg.app.image_pull_policy,
    "host": cfg.domain,
    "tls": cfg.ingress.tls.enabled,
    "session_cookie_secure": cfg.cookie_secure,
    "sql_dsn": sql_dsn,
    "redis_url": redis_url,
    "database_ca": postgres.ca_bundle,
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
    "entry": entry.kind,
    "ingress_namespace": entry.data_plane_namespace,
    **({"legacy_ingress_namespace": entry.legacy_namespace} if entry.legacy_namespace else {}),
    "relay_access_log": entry.relay_access_log,
    "monitoring_namespace": cfg.monitoring.namespace if cfg.monitoring.enabled else None,
    "datastore_egress": [*postgres.egress_targets, *redis.egress_targets],
    "upstream_cidrs": list(cfg.network.upstream_cidrs),
    "upstream_ports": list(cfg.network.upstream_ports),
    "priority_class_name": cfg.app.priority_class_name,
    "priority_class_value": cfg.app.priority_class_value,
    "extra_env": dict(cfg.app.extra_env),
    "strategy": cfg.app.delivery.strategy,
    "delivery": cfg.app.delivery.component_args(),
    "prometheus_url": (cfg.monitoring.operator.prometheus_url if cfg.monitoring.mode == "operator"
                       else monitoring_config.prometheus_url(cfg.monitoring.namespace))
    if cfg.monitoring.enabled else None,
    # Scale on load, not only CPU (seed 004 §4.3): requests/s per pod via Prometheus Adapter.
    "extra_metrics": [entry.hpa_rps_metric(APP, cfg.monitoring.autoscale.rps_per_pod_target)]
    if cfg.monitoring.enabled and cfg.monitoring.autoscale.enabled else [],
}, opts=pulumi.ResourceOptions(depends_on=[namespace, postgres, redis]))

pulumi.export("namespace", namespace.name)
pulumi.export("adminUsername", app.admin_username)
pulumi.export("adminPassword", secrets.admin_password)
# The version New API reports in GET /api/status: its release build sets it from the tag, so the
# image tag is the version (NEWAPI-CONTRACT.md §8). deploy.yml's smoke check waits for it.
pulumi.export("appVersion", cfg.app.image.split("@", 1)[0].rsplit(":", 1)[1])

# --------------------------------------------------------------------------- observability
# Node agents (node-exporter, Filebeat) need host access: one privileged namespace for
# them only, so monitoring and logging themselves stay `restricted`.
obs_cfg = pulumi.Config()
agent_namespaces = sorted({c.agent_namespace for c in (cfg.monitoring, cfg.logging) if c.enabled})
agent_ns = {
    ns_name: RestrictedNamespace(f"{ns_name}-ns", {
        "name": ns_name,
        "pod_security": "privileged",
        "pod_security_reason": "node agents only (node-exporter, Filebeat): host network/PID and "
                               "read-only hostPath by explicit, per-workload policy exemption",
        "dns_namespace": cfg.network.dns_namespace,
    })
    for ns_name in agent_namespaces
}

logging_stack = None
if cfg.logging.enabled:
    log_ns = RestrictedNamespace("logging-ns", {"name": cfg.logging.namespace,
                                                "dns_namespace": cfg.network.dns_namespace,
                                                "protect": cfg.is_prod})
    logging_stack = Logging("logging", {
        "namespace": cfg.logging.namespace,
        "agent_namespace": cfg.logging.agent_namespace,
        "app_namespace": cfg.namespace,
        "app_name": APP,
        "environment": cfg.environment,
        "monitoring_namespace": cfg.monitoring.namespace if cfg.monitoring.enabled else None,
        "elasticsearch_replicas": cfg.logging.elasticsearch_replicas,
        "heap": cfg.logging.heap,
        "storage_size": cfg.logging.storage_size,
        "storage_class": cfg.logging.storage_class,
        "allow_mmap": cfg.logging.allow_mmap,
        "logstash_replicas": cfg.logging.logstash_replicas,
        "logstash_heap": cfg.logging.logstash_heap,
        "kibana": cfg.logging.kibana,
        "kibana_host": cfg.logging.kibana_host,
        # Served publicly in prod: two instances behind a PDB (K8S-034).
        "kibana_replicas": 2 if cfg.is_prod and cfg.logging.kibana_host else 1,
        "ingress_namespace": entry.data_plane_namespace,
        "retention_days": cfg.logging.retention_days,
        "snapshot_retention_days": cfg.logging.snapshot_retention_days,
        # Snapshots: the backup bucket (IRSA) when there is one, else a volume (single node).
        **({"snapshot_bucket": backup_bucket.bucket_name,
            "service_account_annotations": {"eks.amazonaws.com/role-arn": backup_bucket.snapshot_role_arn}}
           if backup_bucket is not None else
           {"snapshot_volume_size": cfg.logging.snapshot_volume_size} if cfg.logging.snapshot_volume_size else {}),
        "api_server_cidrs": list(cfg.monitoring.api_server_cidrs),
        "object_storage_cidrs": list(cfg.network.object_storage_cidrs),
        "resources": {k: v.model_dump(exclude_none=True) for k, v in cfg.logging.resources.items()},
        "protect": cfg.is_prod,
        # The relay's time to first byte on the Gateway API entry (docs/relay-ttfb-gateway.md).
        **({"proxy_access_log": {"namespace": entry.data_plane_namespace,
                                 "gateway_name": cfg.entry.gateway.gateway.name,
                                 "gateway_namespace": cfg.gateway_namespace, "route": APP}}
           if entry.relay_access_log else {}),
    }, opts=pulumi.ResourceOptions(depends_on=[log_ns, *agent_ns.values()]))

# The public entry's sites and settings (built here: monitoring alerts on its certificates).
sites = [{"host": cfg.domain, "namespace": cfg.namespace, "route_name": APP, "service_name": app.service_name,
          "service_port": app.service_port,
          **({"canary_service": app.canary_service_name} if cfg.app.delivery.strategy == "canary" else {})}]
if logging_stack is not None and cfg.logging.kibana_host:
    sites.append({"host": cfg.logging.kibana_host, "namespace": cfg.logging.namespace, "route_name": "kibana",
                  "service_name": "kibana", "service_port": logging_config.KIBANA_PORT})
gateway_cfg = cfg.entry.gateway
entry_args = {
    "kind": entry.kind,
    "sites": sites,
    "data_plane_namespace": entry.data_plane_namespace,
    "tls": cfg.ingress.tls.enabled,
    "issuer": cfg.ingress.tls.issuer,
    "acme_email": cfg.ingress.tls.acme_email,
    "proxy_timeout_seconds": cfg.ingress.proxy_timeout_seconds,
    "proxy_body_size_mb": cfg.ingress.proxy_body_size_mb,
    "class_name": cfg.ingress.class_name,
    "gateway": {"create": gateway_cfg.gateway.create, "name": gateway_cfg.gateway.name,
                "namespace": gateway_cfg.gateway.namespace, "class_name": gateway_cfg.gateway.class_name,
                "https_section": gateway_cfg.gateway.https_section},
    "request_timeout_seconds": gateway_cfg.request_timeout_seconds,
    "trusted_hops": gateway_cfg.trusted_hops,
    "envoy_gateway": gateway_cfg.envoy_gateway,
    "keep_ingress_nginx": cfg.entry.keep_ingress_nginx,
    "legacy_namespace": cfg.ingress.controller_namespace,
}
#: The cert-manager Certificates the stack owns: the entry's and Elasticsearch's transport TLS.
owned_certificates = [*public_entry.certificates(entry_args),
                      *([{"namespace": cfg.logging.namespace, "name": n} for n in logging_component.CERTIFICATES]
                        if logging_stack is not None else [])]

if cfg.monitoring.enabled:
    mon = cfg.monitoring
    mon_ns = RestrictedNamespace("monitoring-ns", {"name": mon.namespace,
                                                   "dns_namespace": cfg.network.dns_namespace,
                                                   "protect": cfg.is_prod})
    email = mon.alerting.email
    monitoring = Monitoring("monitoring", {
        "namespace": mon.namespace,
        "agent_namespace": mon.agent_namespace,
        "app_namespace": cfg.namespace,
        "app_service": APP,
        "entry": entry.kind,
        "relay_access_log": entry.relay_access_log,
        "ingress_namespace": entry.data_plane_namespace,
        "ingress_name": APP,
        "cluster_name": f"new-api-{cfg.environment}",
        "mode": mon.mode,
        "operator_selector_labels": dict(mon.operator.selector_labels),
        "operator_prometheus_url": mon.operator.prometheus_url,
        "operator_alertmanager_url": mon.operator.alertmanager_url,
        "alertmanager_config_matcher_strategy": mon.operator.alertmanager_config_matcher_strategy,
        "retention": mon.retention,
        "retention_size": mon.retention_size,
        "storage_size": mon.storage_size,
        "storage_class": mon.storage_class,
        "alertmanager_replicas": mon.alertmanager_replicas,
        "grafana": mon.grafana,
        "receivers": {"email_to": list(email.to), "email_from": email.from_, "smarthost": email.smarthost,
                      "smtp_username": email.username or "", "slack_channel": mon.alerting.slack_channel}
        if email else {"slack_channel": mon.alerting.slack_channel},
        # Receiver credentials: secret config only (stack/config.py refuses them in plaintext).
        "smtp_password": obs_cfg.get_secret("alertSmtpPassword"),
        "slack_webhook_url": obs_cfg.get_secret("alertSlackWebhook"),
        "webhook_url": obs_cfg.get_secret("alertWebhookUrl"),
        "elasticsearch_url": logging_stack.es_url if logging_stack else None,
        "elasticsearch_namespace": cfg.logging.namespace if logging_stack else None,
        "elasticsearch_user": "new_api_logs_reader" if logging_stack else None,
        "elasticsearch_password": logging_stack.reader_password if logging_stack else None,
        "node_cidrs": list(mon.node_cidrs),
        "api_server_cidrs": list(mon.api_server_cidrs),
        # Canary and blue-green analyses query Prometheus from the Argo Rollouts controller.
        "query_namespaces": [cfg.app.delivery.rollouts_namespace] if cfg.app.delivery.strategy != "rolling" else [],
        "adapter": mon.autoscale.enabled,
        "rps_per_pod": mon.autoscale.rps_per_pod_target,
        "resources": {k: v.model_dump(exclude_none=True) for k, v in mon.resources.items()},
        "protect": cfg.is_prod,
        # Prod fails rather than warns when no alert can reach anyone (issue 12 #3).
        "require_receiver": cfg.is_prod,
        "runbook_base_url": mon.runbook_base_url,
        "backup_cronjob": BACKUP_NAME if db.backend != "cloudnative-pg" else None,
        "cert_manager_namespace": mon.cert_manager_namespace,
        "certificates": owned_certificates,
        "rds_backups": [{"identifier": postgres_rds.primary_identifier(POSTGRES),
                         "retention_days": db.aws.backup_retention_days}] if db.backend == "aws" else [],
    }, opts=pulumi.ResourceOptions(depends_on=[mon_ns, *agent_ns.values(), app]))
    pulumi.export("grafanaUrl", monitoring.grafana_url)
    pulumi.export("grafanaAdminPassword", monitoring.grafana_admin_password)
# --------------------------------------------------------------------------- public entry
# One entry for every public host: the app (its relay, playground and API as separate
# routes) and, optionally, Kibana (its login guards it).
public = PublicEntry("entry", entry_args,
                     opts=pulumi.ResourceOptions(depends_on=[namespace, app,
                                                             *([logging_stack] if logging_stack is not None else [])]))
pulumi.export("url", public.url)
if logging_stack is not None and cfg.logging.kibana_host:
    pulumi.export("kibanaPublicUrl", public.urls.apply(lambda urls: urls[1]))
if logging_stack is not None:
    pulumi.export("kibanaUrl", logging_stack.kibana_url)
    pulumi.export("elasticPassword", logging_stack.elastic_password)
