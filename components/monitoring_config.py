"""Prometheus, Alertmanager, blackbox and Prometheus Adapter configuration as code.

Pure functions (no Pulumi): the ``Monitoring`` component writes exactly their output
into its ConfigMaps, Secrets and custom resources, and the tests feed the very same text
to ``promtool`` and ``amtool``. One metric-name table (:data:`EXPORTER_METRICS`) is the
contract between the scrape jobs, the rules and the dashboards.

Where the seeds are wrong the fix is cited (SEED-NOTES.md §4, §5.6):

- New API has no ``/metrics`` endpoint (NEWAPI-CONTRACT.md §5). ``job="new-api"`` is a
  blackbox probe of ``GET /api/status`` through the app's Service, and the RED metrics
  (rate, errors, duration) come from the public entry's proxy: Envoy (Envoy Gateway,
  the default) or the legacy ingress-nginx controller, through one metric source
  (components/entry_metrics.py, chosen by ``entry.kind``).
- HighErrorRate is a ratio (> 5 %), HighResponseTime aggregates ``by (le)``, HighDiskUsage
  filters pseudo filesystems, DatabaseConnectionHigh is a ratio to ``max_connections``,
  RedisMemoryHigh is guarded against ``maxmemory 0`` and ApplicationDown also fires when
  the probe series is absent (#39-#44).
- Alertmanager: ``headers.Subject``/``text`` instead of ``subject``/``body``, ``matchers``
  instead of ``match``, inhibition on ``cluster, namespace, service`` (the seed's
  ``alertname`` equality never matched), ``group_interval`` 5m (#46).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

import yaml

from . import certificate_alerts
from . import entry as entry_mod
from . import entry_metrics as em
from . import logging_alerts
from . import platform_alerts
from . import rds_backup_alerts
from .logging_alerts import LOGSTASH_EXPORTER_PORT

# --------------------------------------------------------------------------- constants

PROMETHEUS_PORT = 9090
#: The app's RED metrics (New API has no /metrics) come from the entry's proxy: the
#: metric source (components/entry_metrics.py) of ``Targets.entry_kind`` gives the names
#: and selectors to rules, dashboards, the RPS autoscaling rule and canary analysis. The
#: relay and playground are routed as their own paths and left out of latency measures.
STREAMING_PATHS = em.STREAMING_PATHS


def prometheus_url(namespace: str) -> str:
    """In-cluster URL of the Prometheus this stack deploys in ``namespace``."""
    return f"http://prometheus.{namespace}.svc:{PROMETHEUS_PORT}"
ALERTMANAGER_PORT = 9093
ALERTMANAGER_CLUSTER_PORT = 9094
BLACKBOX_PORT = 9115
GRAFANA_PORT = 3000
KSM_PORT = 8080
KSM_TELEMETRY_PORT = 8081
NODE_EXPORTER_PORT = 9100
POSTGRES_EXPORTER_PORT = 9187
REDIS_EXPORTER_PORT = 9121
ES_EXPORTER_PORT = 9114
INGRESS_NGINX_METRICS_PORT = entry_mod.INGRESS_NGINX_METRICS_PORT
ADAPTER_PORT = 6443

#: Where the mounted files live inside the pods.
PROMETHEUS_CONFIG_DIR = "/etc/prometheus"
PROMETHEUS_RULES_DIR = "/etc/prometheus/rules"
ALERTMANAGER_CONFIG_DIR = "/etc/alertmanager"
ALERTMANAGER_SECRETS_DIR = "/etc/alertmanager/secrets"

#: Keys of the Alertmanager credentials Secret (mounted as files, referenced by ``*_file``).
SMTP_PASSWORD_KEY = "smtp-password"
SLACK_WEBHOOK_KEY = "slack-webhook-url"
WEBHOOK_URL_KEY = "webhook-url"

BLACKBOX_MODULE = "http_new_api_status"

#: The repository folder of the runbooks: ``docs/runbooks/<Alert>.md`` for every alert
#: (what it means, how to confirm, mitigate, escalate); tests/observability checks that
#: every rendered alert's link resolves to a file there.
RUNBOOK_DIR = "docs/runbooks"

#: SLO of seed 004 (chapter 4): 99.9 % of requests succeed, within 200 ms.
SLO_SUCCESS_TARGET = 0.999
SLO_LATENCY_SECONDS = 0.2

#: Metrics each scrape job produces that rules and dashboards may use. ``up``,
#: ``scrape_*`` are synthetic for every job. Sources: ingress-nginx
#: ``internal/ingress/metric/collectors``, prometheus-community postgres_exporter and
#: redis_exporter, node_exporter, kube-state-metrics docs, blackbox_exporter prober.
EXPORTER_METRICS: dict[str, frozenset] = {
    "new-api": frozenset({"probe_success", "probe_duration_seconds", "probe_http_status_code",
                          "probe_http_duration_seconds"}),
    "new-api-master": frozenset({"probe_success", "probe_duration_seconds", "probe_http_status_code",
                                 "probe_http_duration_seconds"}),
    "envoy-gateway": frozenset({
        "envoy_cluster_upstream_rq_xx", "envoy_cluster_upstream_rq_total",
        "envoy_cluster_upstream_rq_time_bucket", "envoy_cluster_upstream_rq_time_sum",
        "envoy_cluster_upstream_rq_time_count", "envoy_http_downstream_cx_active",
    }),
    "ingress-nginx": frozenset({
        "nginx_ingress_controller_requests",
        "nginx_ingress_controller_request_duration_seconds_bucket",
        "nginx_ingress_controller_request_duration_seconds_sum",
        "nginx_ingress_controller_request_duration_seconds_count",
        "nginx_ingress_controller_response_duration_seconds_bucket",
        "nginx_ingress_controller_header_duration_seconds_bucket",
        "nginx_ingress_controller_nginx_process_connections",
        "nginx_ingress_controller_nginx_process_connections_total",
    }),
    "postgres-exporter": frozenset({
        "pg_up", "pg_stat_activity_count", "pg_settings_max_connections",
        "pg_stat_database_xact_commit", "pg_stat_database_xact_rollback",
        "pg_stat_database_blks_hit", "pg_stat_database_blks_read",
        "pg_stat_database_deadlocks", "pg_database_size_bytes", "pg_locks_count",
    }),
    "redis-exporter": frozenset({
        "redis_up", "redis_memory_used_bytes", "redis_memory_max_bytes", "redis_connected_clients",
        "redis_commands_processed_total", "redis_keyspace_hits_total", "redis_keyspace_misses_total",
        "redis_evicted_keys_total", "redis_db_keys",
    }),
    "elasticsearch-exporter": frozenset({
        "elasticsearch_cluster_health_status", "elasticsearch_cluster_health_number_of_nodes",
        "elasticsearch_cluster_health_unassigned_shards",
    }) | logging_alerts.EXPORTER_METRICS["elasticsearch-exporter"],
    "logstash-exporter": logging_alerts.EXPORTER_METRICS["logstash-exporter"],
    "node-exporter": frozenset({
        "node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes",
        "node_filesystem_avail_bytes", "node_filesystem_size_bytes", "node_load1",
        "node_network_receive_bytes_total", "node_network_transmit_bytes_total",
        # the Nodes dashboard (components/dashboards_platform.py)
        "node_load5", "node_load15", "node_uname_info", "node_boot_time_seconds", "node_time_seconds",
        "node_disk_read_bytes_total", "node_disk_written_bytes_total", "node_disk_reads_completed_total",
        "node_disk_writes_completed_total", "node_disk_io_time_seconds_total",
        "node_network_receive_errs_total", "node_network_transmit_errs_total",
        "node_network_receive_drop_total", "node_network_transmit_drop_total",
    }),
    "kube-state-metrics": frozenset({
        "kube_deployment_status_replicas_available", "kube_deployment_spec_replicas",
        "kube_pod_container_status_restarts_total", "kube_statefulset_status_replicas_ready",
        "kube_horizontalpodautoscaler_status_current_replicas",
        "kube_horizontalpodautoscaler_spec_max_replicas",
        # the capacity dashboard (components/dashboards_platform.py)
        "kube_pod_status_phase", "kube_pod_owner", "kube_replicaset_owner", "kube_pod_container_resource_requests",
        "kube_horizontalpodautoscaler_status_desired_replicas", "kube_horizontalpodautoscaler_spec_min_replicas",
    }),
    "prometheus": frozenset({"prometheus_tsdb_head_series", "prometheus_rule_evaluation_failures_total"}),
    "grafana": frozenset({"grafana_build_info"}),
    "blackbox-exporter": frozenset({"blackbox_exporter_config_last_reload_successful"}),
    "alertmanager": frozenset({"alertmanager_notifications_failed_total", "alertmanager_notifications_total"}),
}
def _platform_metrics() -> None:
    from .platform_alerts import CADVISOR_METRICS, CNPG_METRICS, KSM_METRICS, KUBELET_METRICS  # noqa: F401

    #: CloudNativePG's instance manager (port 9187, scraped under the postgres-exporter job).
    EXPORTER_METRICS["cloudnative-pg"] = CNPG_METRICS
    EXPORTER_METRICS["kube-state-metrics"] = EXPORTER_METRICS["kube-state-metrics"] | KSM_METRICS
    EXPORTER_METRICS["kubelet"] = frozenset(KUBELET_METRICS)
    EXPORTER_METRICS["cadvisor"] = frozenset(CADVISOR_METRICS)
    EXPORTER_METRICS[certificate_alerts.JOB] = certificate_alerts.METRICS
    EXPORTER_METRICS[rds_backup_alerts.JOB] = rds_backup_alerts.METRICS


_platform_metrics()
SYNTHETIC_METRICS = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

#: Pseudo and container filesystems the node alerts and the Nodes dashboard leave out.
FSTYPE_IGNORED = "tmpfs|overlay|squashfs|nsfs|ramfs|devtmpfs|fuse.lxcfs|autofs|proc|sysfs"
#: Seed 000's node alert thresholds (percent), also the Nodes dashboard's thresholds.
NODE_CPU_BUSY_PERCENT = 80
NODE_MEMORY_USED_PERCENT = 85
NODE_DISK_USED_PERCENT = 90


# --------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class Targets:
    """Where things run: the inputs every config below is derived from."""
    app_namespace: str = "new-api"
    app_service: str = "new-api"
    app_service_port: int = 80
    #: The single New API master (migrations, background jobs): probed on its own, as it
    #: serves no public traffic and its failure would otherwise go unnoticed.
    master_service: str = "new-api-master"
    master_port: int = 3000
    health_path: str = "/api/status"
    monitoring_namespace: str = "monitoring"
    agent_namespace: str = "node-agents"
    #: The public entry (components/entry.py): ``gateway`` or ``ingress-nginx``.
    entry_kind: str = "ingress-nginx"
    #: Namespace of the entry's data plane (ingress-nginx's controller or Envoy Gateway's
    #: proxies), scraped for the RED metrics.
    ingress_namespace: str = "ingress-nginx"
    #: Namespace of Elasticsearch (its exporter sidecar), when the stack runs the logging stack.
    logging_namespace: Optional[str] = None
    #: Gateway API entry: the stack's Logstash counts the relay's time to first byte from
    #: the proxies' access log (``entry.EntrySpec.relay_access_log``).
    relay_access_log: bool = False
    cluster: str = "new-api"
    #: ``standalone`` (this stack's Prometheus and scrape jobs) or ``operator`` (monitors
    #: for an existing Prometheus Operator; see :func:`monitored_jobs`).
    mode: str = "standalone"
    #: The database dump CronJob in ``app_namespace`` (none: the backend backs up itself).
    backup_cronjob: Optional[str] = None
    #: Where ``runbook_url`` of every alert points: ``<runbook_base>/<Alert>.md``. The
    #: default is the repository path (``docs/runbooks``); a stack sets the browsable URL
    #: of that folder (``monitoring.runbookBaseUrl``).
    runbook_base: str = RUNBOOK_DIR
    alertmanager_name: str = "alertmanager"
    alertmanager_replicas: int = 1
    blackbox_name: str = "blackbox-exporter"
    ksm_name: str = "kube-state-metrics"
    #: cert-manager's namespace (its controller is scraped there) and the (namespace, name)
    #: of every cert-manager Certificate the stack owns (components/certificate_alerts.py).
    cert_manager_namespace: str = certificate_alerts.DEFAULT_NAMESPACE
    certificates: tuple = ()
    #: (identifier, configured retention days) of each RDS instance whose automated
    #: backups are watched (aws backend; components/rds_backup_alerts.py).
    rds_instances: tuple = ()

    @property
    def probe_url(self) -> str:
        return (f"http://{self.app_service}.{self.app_namespace}.svc:{self.app_service_port}"
                f"{self.health_path}")

    @property
    def master_probe_url(self) -> str:
        return f"http://{self.master_service}.{self.app_namespace}.svc:{self.master_port}{self.health_path}"

    @property
    def probes(self) -> tuple:
        """(job, target URL, service) of each blackbox probe of New API."""
        return (("new-api", self.probe_url, self.app_service),
                ("new-api-master", self.master_probe_url, self.master_service))

    @property
    def stack_namespaces(self) -> list[str]:
        """Namespaces of the stack's workloads (the workload alerts watch these)."""
        return sorted({self.app_namespace, self.monitoring_namespace, self.agent_namespace,
                       *([self.logging_namespace] if self.logging_namespace else [])})

    @property
    def alertmanager_headless(self) -> str:
        return f"{self.alertmanager_name}-headless"

    def alertmanager_peers(self, port: int = ALERTMANAGER_PORT) -> list[str]:
        """Every Alertmanager replica by its stable DNS name: Prometheus must send each alert
        to all replicas (never through a load-balanced Service) for the cluster to dedupe."""
        return [f"{self.alertmanager_name}-{i}.{self.alertmanager_headless}.{self.monitoring_namespace}.svc:{port}"
                for i in range(self.alertmanager_replicas)]

    @property
    def entry(self) -> "entry_mod.EntrySpec":
        return entry_mod.entry_spec(self.entry_kind, self.ingress_namespace,
                                    relay_access_log=self.relay_access_log)

    @property
    def app(self) -> em.App:
        return em.App(namespace=self.app_namespace, service=self.app_service, service_port=self.app_service_port)

    @property
    def red(self) -> em.RedSource:
        """The RED metric source of the entry, for the app's traffic."""
        return self.entry.red_source(self.app)


@dataclass(frozen=True)
class Receivers:
    """Alert receivers. Credentials are never here: they are files from a Secret
    (``*_file``), except the webhook URL, which Alertmanager 0.25's validator does not
    accept as ``url_file``; it is inlined into the config, which is itself a Secret."""
    email_to: tuple[str, ...] = ()
    email_from: str = ""
    smarthost: str = ""
    smtp_username: str = ""
    smtp_password: bool = False
    slack_channel: str = "#alerts"
    slack: bool = False
    webhook_url: Optional[str] = None

    @property
    def email(self) -> bool:
        return bool(self.email_to)

    @property
    def email_deliverable(self) -> bool:
        """E-mail is configured and Alertmanager can authenticate where the server requires it."""
        return self.email and not email_auth_problems(self.smarthost, self.smtp_username, self.smtp_password)

    @property
    def any(self) -> bool:
        """Some receiver can notify a human."""
        return self.email_deliverable or self.slack or bool(self.webhook_url)


#: SMTP submission ports: a server there accepts mail only from an authenticated sender
#: (RFC 6409 §4.3; Gmail answers ``530 5.7.0 Authentication Required``). 465 is
#: submission over implicit TLS (RFC 8314), which Alertmanager dials for port 465.
SUBMISSION_PORTS = (587, 465)


def email_auth_problems(smarthost: str, username: str, password_set: bool) -> list[tuple[str, str]]:
    """What keeps alert e-mail from being delivered, as (what is missing, why) pairs.

    Alertmanager's e-mail notifier authenticates only when ``auth_username`` is set: with
    no username it sends without SMTP AUTH and ignores any password
    (prometheus/alertmanager ``notify/email/email.go``, ``Email.auth``: "If no username is
    set, keep going without authentication"). A submission port refuses that sender, so
    there a username and a password are both required; elsewhere (a relay on port 25) a
    password without a username is still a mistake (it would be ignored)."""
    port = smarthost.rsplit(":", 1)[-1] if ":" in smarthost else ""
    problems: list[tuple[str, str]] = []
    submission = port.isdigit() and int(port) in SUBMISSION_PORTS
    if submission and not username:
        problems.append(("username", f"{smarthost} is an SMTP submission port, which accepts mail only after "
                                     "SMTP AUTH; Alertmanager sends without AUTH when no username is set "
                                     "(notify/email/email.go)"))
    if submission and not password_set:
        problems.append(("password", f"{smarthost} is an SMTP submission port: Alertmanager needs the "
                                     "SMTP password to authenticate"))
    if not submission and password_set and not username:
        problems.append(("username", "an SMTP password is set but no username: Alertmanager ignores the "
                                     "password and sends without AUTH (notify/email/email.go)"))
    return problems


@dataclass(frozen=True)
class Slo:
    """Seed 004 four-level model (99.9 % / 200 ms) and multi-window burn rates."""
    success_target: float = SLO_SUCCESS_TARGET
    latency_seconds: float = SLO_LATENCY_SECONDS
    #: Below this request rate (req/s over 5m) ratio alerts stay quiet: one failure in
    #: ten requests is not an outage.
    min_request_rate: float = 0.1
    #: Relay SLO (issue 14): 99 % of relay and playground requests get New API's response
    #: headers within 10 s (a streamed completion's first byte; a non-streamed one's whole
    #: answer). 10 s is the largest finite bucket of ingress-nginx's default histogram.
    relay_headers_le: str = em.RELAY_FIRST_BYTE_LE
    relay_target: float = 0.99


class _Dumper(yaml.SafeDumper):
    """Block style; multi-line strings (notification templates) as ``|`` literals."""


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(doc: dict) -> str:
    """YAML as written into ConfigMaps and Secrets (stable key order, block style)."""
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000,
                     allow_unicode=True)


# --------------------------------------------------------------------------- rules

def _alert(name: str, expr: str, for_: str, severity: str, service: str, summary: str,
           description: str, extra_labels: Optional[dict] = None) -> dict:
    labels = {"severity": severity, "service": service}
    labels.update(extra_labels or {})
    return {"alert": name, "expr": expr, "for": for_, "labels": labels,
            "annotations": {"summary": summary, "description": description}}


def _burn(ratio_record: str, budget: float, long: str, short: str, factor: float) -> str:
    """Multi-window burn-rate condition (Google SRE workbook, ch. 5): the bad-event ratio
    recorded as ``<ratio_record><window>`` exceeds ``factor`` times the error budget over
    both the long and the short window."""
    limit = round(factor * budget, 6)
    return f"({ratio_record}{long} > {limit} and {ratio_record}{short} > {limit})"


def _req(t: Targets, errors: bool = False, window: str = "5m") -> str:
    return t.red.request_rate(window=window, errors=errors)


def _quantile(t: Targets, q: float, window: str = "5m") -> str:
    return t.red.quantile(q, window=window)


BURN_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


def rule_groups(t: Targets, slo: Slo = Slo()) -> dict:
    """Every recording and alerting rule (seed 000 alerts fixed, seed 004 SLO levels,
    SRE-workbook multi-window burn rates). Each alert carries ``severity`` and
    ``service`` (Alertmanager routes and inhibits on them); app alerts add ``namespace``."""
    app = {"namespace": t.app_namespace}
    err_budget = round(1 - slo.success_target, 6)
    seed = [
        _alert("ApplicationDown",
               f'probe_success{{job="new-api"}} == 0 or absent(probe_success{{job="new-api"}})',
               "1m", "critical", "new-api", "New API application is down",
               "GET /api/status through Service {{ $labels.instance }} has failed for more than 1 minute "
               "(or the probe itself is gone).", app),
        # Not in the seeds: New API's single master runs migrations and the background jobs
        # (channel tests, quota resets, log cleanup) and serves no public traffic, so
        # nothing else notices when it is down.
        _alert("NewApiMasterDown",
               'probe_success{job="new-api-master"} == 0 or absent(probe_success{job="new-api-master"})',
               "5m", "warning", "new-api", "New API master is down",
               "GET /api/status on the master ({{ $labels.instance }}) has failed for 5 minutes: "
               "public traffic is served, but migrations and background jobs (channel tests, "
               "quota resets, log cleanup) are not running.", app),
        _alert("HighErrorRate",
               f"{_req(t, errors=True)} / {_req(t)} > 0.05",
               "2m", "warning", "new-api", "High error rate detected",
               "{{ $value | humanizePercentage }} of requests through the ingress failed with 5xx "
               "over the last 5 minutes.", app),
        _alert("HighResponseTime", f"{_quantile(t, 0.95)} > 1",
               "2m", "warning", "new-api", "High response time detected",
               "95th percentile response time is {{ $value | humanizeDuration }} (includes streamed "
               "completions; see the SLO dashboard for context).", app),
        _alert("HighCPUUsage",
               f'100 - (avg by (instance) (rate(node_cpu_seconds_total{{mode="idle"}}[5m])) * 100) > {NODE_CPU_BUSY_PERCENT}',
               "5m", "warning", "node", "High CPU usage detected",
               "CPU usage is {{ $value | printf \"%.1f\" }}% on {{ $labels.instance }}."),
        _alert("HighMemoryUsage",
               f"(1 - (node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)) * 100 > {NODE_MEMORY_USED_PERCENT}",
               "5m", "warning", "node", "High memory usage detected",
               "Memory usage is {{ $value | printf \"%.1f\" }}% on {{ $labels.instance }}."),
        _alert("HighDiskUsage",
               f'(1 - (node_filesystem_avail_bytes{{fstype!~"{FSTYPE_IGNORED}"}} / '
               f'node_filesystem_size_bytes{{fstype!~"{FSTYPE_IGNORED}"}})) * 100 > {NODE_DISK_USED_PERCENT}',
               "5m", "critical", "node", "High disk usage detected",
               "Disk usage is {{ $value | printf \"%.1f\" }}% on {{ $labels.instance }} "
               "({{ $labels.mountpoint }})."),
        # newapi:postgres_connections:ratio: postgres_exporter's or CloudNativePG's series
        # (components/platform_alerts.py), so every database backend feeds it.
        _alert("DatabaseConnectionHigh", "newapi:postgres_connections:ratio * 100 > 80",
               "2m", "warning", "postgres", "High database connections",
               "Postgres {{ $labels.instance }} uses {{ $value | printf \"%.0f\" }}% of max_connections."),
        _alert("RedisMemoryHigh",
               "redis_memory_used_bytes / redis_memory_max_bytes * 100 > 90 and redis_memory_max_bytes > 0",
               "2m", "warning", "redis", "Redis memory usage high",
               "Redis memory usage is {{ $value | printf \"%.1f\" }}% of maxmemory on {{ $labels.instance }}."),
        # Not in the seeds: the log pipeline's store (one exporter per node reports the
        # same cluster health, hence max by cluster).
        _alert("ElasticsearchClusterRed",
               'max by (cluster) (elasticsearch_cluster_health_status{color="red"}) == 1',
               "5m", "critical", "elasticsearch", "Elasticsearch cluster is red",
               "A primary shard is unassigned: some log indices cannot be written or searched."),
        _alert("ElasticsearchClusterYellow",
               'max by (cluster) (elasticsearch_cluster_health_status{color="yellow"}) == 1',
               "30m", "warning", "elasticsearch", "Elasticsearch cluster is yellow",
               "Replica shards have been unassigned for 30 minutes: one more node loss risks data."),
        _alert("ScrapeTargetDown", 'up{job!~"new-api|new-api-master"} == 0', "5m", "warning", "{{ $labels.job }}",
               "A monitored target is down",
               "Prometheus cannot scrape {{ $labels.job }} at {{ $labels.instance }}."),
    ]

    recordings = []
    for w in BURN_WINDOWS:
        recordings.append({
            "record": f"newapi:slo_errors_per_request:ratio_rate{w}",
            "expr": f"({_req(t, True, w)} or vector(0)) / {_req(t, window=w)}",
        })
    recordings += [
        {"record": "newapi:requests:rate5m", "expr": _req(t)},
        {"record": "newapi:slo_success:ratio_rate5m", "expr": "1 - newapi:slo_errors_per_request:ratio_rate5m"},
        {"record": "newapi:request_duration_seconds:p50_5m", "expr": _quantile(t, 0.5)},
        {"record": "newapi:request_duration_seconds:p95_5m", "expr": _quantile(t, 0.95)},
        {"record": "newapi:request_duration_seconds:p99_5m", "expr": _quantile(t, 0.99)},
        *t.entry.route_rps_rules(t.app),
    ]
    traffic = f"and on () newapi:requests:rate5m > {slo.min_request_rate}"

    def burn(long: str, short: str, factor: float) -> str:
        return _burn("newapi:slo_errors_per_request:ratio_rate", err_budget, long, short, factor)

    slo_level = lambda level: {**app, "slo_level": level}  # noqa: E731
    l1_low, l3 = round(slo.latency_seconds * 0.5, 3), round(slo.latency_seconds * 0.75, 3)
    l2_floor = round(1 - (1 - slo.success_target) * 10, 6)  # 99.9 % -> 99.0 %
    slo_alerts = [
        _alert("NewApiErrorBudgetBurnFast", f"{burn('1h', '5m', 14.4)} {traffic}", "2m", "critical", "new-api",
               "New API is burning its error budget fast",
               f"At this rate the 30-day error budget of the {slo.success_target:.1%} SLO is gone in about "
               "2 days (burn rate 14.4 over 1h and 5m).", app),
        _alert("NewApiErrorBudgetBurnMedium", f"{burn('6h', '30m', 6)} {traffic}", "15m", "critical", "new-api",
               "New API is burning its error budget",
               "Burn rate above 6 over 6h and 30m: the monthly budget is gone in about 5 days.", app),
        _alert("NewApiErrorBudgetBurnSlow", f"({burn('1d', '2h', 3)} or {burn('3d', '6h', 1)}) {traffic}",
               "1h", "warning", "new-api", "New API error budget is eroding",
               "Burn rate above 3 over 1d/2h or above 1 over 3d/6h.", app),
        _alert("NewApiSLOLevel1Observe",
               f"newapi:request_duration_seconds:p95_5m >= {l1_low} < {l3} {traffic}", "5m", "info", "new-api",
               "SLO L1 (observe): p95 latency is drifting",
               f"p95 is {{{{ $value | humanizeDuration }}}}, between {int(l1_low*1000)} ms and {int(l3*1000)} ms "
               "(seed 004 L1: raise log sampling).", slo_level("L1")),
        _alert("NewApiSLOLevel2EarlyWarning",
               f"newapi:slo_success:ratio_rate5m < {slo.success_target} > {l2_floor} {traffic}", "5m", "warning",
               "new-api", "SLO L2 (early warning): success rate below target",
               f"Success rate is {{{{ $value | humanizePercentage }}}}, below {slo.success_target:.1%} "
               "(seed 004 L2: scale-out pre-check).", slo_level("L2")),
        _alert("NewApiSLOLevel3LatencyAlert",
               f"newapi:request_duration_seconds:p95_5m >= {l3} {traffic}", "2m", "warning", "new-api",
               "SLO L3 (alert): p95 latency above 75 % of the SLO threshold",
               f"p95 is {{{{ $value | humanizeDuration }}}} (>= {int(l3*1000)} ms of the "
               f"{int(slo.latency_seconds*1000)} ms SLO; seed 004 L3: start tracing).", slo_level("L3")),
        _alert("NewApiSLOLevel4CircuitBreak",
               f"newapi:slo_success:ratio_rate5m <= {l2_floor} {traffic}", "2m", "critical", "new-api",
               "SLO L4 (circuit-break): success rate at or below the SLO floor",
               f"Success rate is {{{{ $value | humanizePercentage }}}} (<= {l2_floor:.1%}) for 2 minutes "
               "(seed 004 L4: activate the degrade switch).", slo_level("L4")),
    ]
    relay_recordings, relay_alerts = _relay_slo(t, slo, app)
    recordings += relay_recordings
    slo_alerts += relay_alerts
    return with_runbooks({"groups": [
        {"name": "new-api-alerts", "rules": seed},
        {"name": "new-api-slo-recording", "interval": "30s", "rules": recordings},
        {"name": "new-api-slo-alerts", "rules": slo_alerts},
        # Log-based alerts and Elasticsearch's backups, with the logging stack.
        *([logging_alerts.rule_group()] if t.logging_namespace else []),
        *platform_alerts.groups(_alert, monitored_jobs(t), t.stack_namespaces,
                                (t.app_namespace, t.backup_cronjob) if t.backup_cronjob else None, t.app_namespace),
        *certificate_alerts.rule_group(_alert, t.certificates),
        *rds_backup_alerts.rule_group(_alert, t.rds_instances),
    ]}, t.runbook_base)


def _relay_slo(t: Targets, slo: Slo, app: dict) -> tuple[list, list]:
    """The relay's time-to-first-byte SLO (issue 14): recording rules of the share of slow
    relay requests per burn window, and the SRE workbook's multi-window burn-rate pair
    (page at 14.4x over 1h/5m, ticket at 6x over 6h/30m). Only where the entry's proxy
    measures the time to the response headers (``RedSource.measures_relay``)."""
    red = t.red
    if not red.measures_relay:
        return [], []
    records = [{"record": f"newapi:relay_slow_requests:ratio_rate{w}",
                "expr": f"1 - ({red.relay_fast_ratio(slo.relay_headers_le, window=w)})"} for w in BURN_WINDOWS]
    records.append({"record": "newapi:relay_requests:rate5m", "expr": red.relay_rate()})
    budget = round(1 - slo.relay_target, 6)
    traffic = f"and on () newapi:relay_requests:rate5m > {slo.min_request_rate}"

    def burn(long: str, short: str, factor: float) -> str:
        return _burn("newapi:relay_slow_requests:ratio_rate", budget, long, short, factor)

    what = f"{slo.relay_target:.0%} of relay requests get response headers within {slo.relay_headers_le} s"
    alerts = [
        _alert("NewApiRelayLatencyBudgetBurnFast", f"{burn('1h', '5m', 14.4)} {traffic}", "2m", "critical", "new-api",
               "Relay (/v1, playground) answers slowly: latency budget burning fast",
               f"SLO: {what}. Over 1h and 5m more than {14.4 * budget:.1%} were slower: the 30-day "
               "budget is gone in about 2 days.", app),
        _alert("NewApiRelayLatencyBudgetBurnSlow", f"{burn('6h', '30m', 6)} {traffic}", "15m", "warning", "new-api",
               "Relay (/v1, playground) latency budget is eroding",
               f"SLO: {what}. Over 6h and 30m more than {6 * budget:.1%} were slower.", app),
    ]
    return records, alerts


def runbook_url(alert: str, base: str = RUNBOOK_DIR) -> str:
    return f"{base.rstrip('/')}/{alert}.md"


def with_runbooks(groups: dict, base: str = RUNBOOK_DIR) -> dict:
    """Every alerting rule of ``groups`` annotated with its ``runbook_url`` (the one place
    the convention is applied: any group added to the rules passes through here)."""
    for group in groups["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule.setdefault("annotations", {})["runbook_url"] = runbook_url(rule["alert"], base)
    return groups


def rules_yaml(t: Targets, slo: Slo = Slo()) -> str:
    return dump(rule_groups(t, slo))


def alert_names(groups: dict) -> list[str]:
    return [r["alert"] for g in groups["groups"] for r in g["rules"] if "alert" in r]


def recorded_metrics(groups: dict) -> set[str]:
    return {r["record"] for g in groups["groups"] for r in g["rules"] if "record" in r}


# --------------------------------------------------------------------------- prometheus.yml

def _k8s_pod_job(name: str, namespace: str, port: int, *, interval: Optional[str] = None,
                 keep_labels: Optional[dict] = None, target_namespace_label: str = "namespace",
                 honor_labels: bool = False, static_labels: Optional[dict] = None,
                 metrics_path: Optional[str] = None) -> dict:
    """A pod-role job restricted to one namespace, keeping only the container port ``port``."""
    relabel = [
        {"source_labels": ["__meta_kubernetes_pod_container_port_number"], "regex": str(port), "action": "keep"},
        {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Pending|Succeeded|Failed", "action": "drop"},
    ]
    for key, value in (keep_labels or {}).items():
        meta = "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)
        relabel.append({"source_labels": [meta], "regex": value, "action": "keep"})
    relabel += [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": target_namespace_label},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "kubernetes_pod"},
        {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
    ]
    for key, value in (static_labels or {}).items():
        relabel.append({"target_label": key, "replacement": value})
    job: dict = {"job_name": name}
    if interval:
        job["scrape_interval"] = interval
    if metrics_path:
        job["metrics_path"] = metrics_path
    if honor_labels:
        job["honor_labels"] = True
    job["kubernetes_sd_configs"] = [{"role": "pod", "namespaces": {"names": [namespace]}}]
    job["relabel_configs"] = relabel
    return job


def _probe_job(t: Targets, job: str, url: str, service: str) -> dict:
    """A blackbox probe of a New API health endpoint (seed 000: the app job 10s/5s)."""
    return {
        "job_name": job,
        "scrape_interval": "10s",
        "scrape_timeout": "5s",
        "metrics_path": "/probe",
        "params": {"module": [BLACKBOX_MODULE]},
        "static_configs": [{"targets": [url], "labels": {"namespace": t.app_namespace, "service": service}}],
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"target_label": "__address__",
             "replacement": f"{t.blackbox_name}.{t.monitoring_namespace}.svc:{BLACKBOX_PORT}"},
        ],
    }


def _entry_job(t: Targets) -> dict:
    """The entry's data plane: ingress-nginx's controller, whose metrics carry the Ingress's
    namespace/service labels (the scrape target's namespace goes to controller_namespace so
    nothing is renamed exported_*), or Envoy Gateway's proxies (Envoy's stats on
    :19001/stats/prometheus; the pods' namespace goes to kubernetes_namespace)."""
    e = t.entry
    if e.kind == "ingress-nginx":
        return _k8s_pod_job(e.job, e.data_plane_namespace, e.metrics_port, target_namespace_label="controller_namespace")
    return _k8s_pod_job(e.job, e.data_plane_namespace, e.metrics_port, keep_labels=e.data_plane_labels,
                        target_namespace_label="kubernetes_namespace", metrics_path=e.metrics_path)


def scrape_jobs(t: Targets) -> list[dict]:
    """The scrape jobs: seed 000 intervals (global 15s; the app job 10s/5s)."""
    return [
        # job="new-api": the app has no /metrics; probe its health endpoint instead (seed
        # notes §4 #42), through the public Service and, separately, the master's.
        *[_probe_job(t, job, url, service) for job, url, service in t.probes],
        _entry_job(t),
        _k8s_pod_job("postgres-exporter", t.app_namespace, POSTGRES_EXPORTER_PORT,
                     static_labels={"service": "postgres"}),
        _k8s_pod_job("redis-exporter", t.app_namespace, REDIS_EXPORTER_PORT,
                     static_labels={"service": "redis"}),
        _k8s_pod_job("node-exporter", t.agent_namespace, NODE_EXPORTER_PORT,
                     keep_labels={"app.kubernetes.io/name": "node-exporter"}),
        # kube-state-metrics reports other objects' namespace/pod: honour them (kube-prometheus does).
        _k8s_pod_job("kube-state-metrics", t.monitoring_namespace, KSM_PORT, honor_labels=True,
                     keep_labels={"app.kubernetes.io/name": "kube-state-metrics"},
                     target_namespace_label="kubernetes_namespace"),
        # The Elasticsearch pods' exporter sidecar (cluster health), with the logging stack.
        *([_k8s_pod_job("elasticsearch-exporter", t.logging_namespace, ES_EXPORTER_PORT,
                        keep_labels={"app.kubernetes.io/name": "elasticsearch"},
                        static_labels={"service": "elasticsearch"})] if t.logging_namespace else []),
        # The Logstash pods' exporter sidecar (per-plugin counts of New API's log lines).
        *([_k8s_pod_job("logstash-exporter", t.logging_namespace, LOGSTASH_EXPORTER_PORT,
                        keep_labels={"app.kubernetes.io/name": "logstash"},
                        static_labels={"service": "logstash"})] if t.logging_namespace else []),
        # The platform's own metrics endpoints (Grafana and the blackbox exporter serve /metrics).
        _k8s_pod_job("grafana", t.monitoring_namespace, GRAFANA_PORT,
                     keep_labels={"app.kubernetes.io/name": "grafana"}),
        _k8s_pod_job("blackbox-exporter", t.monitoring_namespace, BLACKBOX_PORT,
                     keep_labels={"app.kubernetes.io/name": "blackbox-exporter"}),
        {"job_name": "prometheus", "static_configs": [{"targets": [f"localhost:{PROMETHEUS_PORT}"]}]},
        {"job_name": "alertmanager", "static_configs": [{"targets": t.alertmanager_peers()}]},
        # Every node's kubelet and cAdvisor (container CPU, throttling, memory; volume stats).
        *platform_alerts.kubelet_jobs(),
        *_cert_manager_jobs(t),
        *([rds_backup_alerts.scrape_job(t.app_namespace, _k8s_pod_job)] if t.rds_instances else []),
    ]


def _cert_manager_jobs(t: Targets) -> list[dict]:
    """cert-manager's controller, when the stack owns certificates: its labels are kept
    (``namespace``/``name`` are the Certificate's), the target's namespace goes to
    ``kubernetes_namespace`` (see components/certificate_alerts.py)."""
    if not t.certificates:
        return []
    return [_k8s_pod_job(certificate_alerts.JOB, t.cert_manager_namespace, certificate_alerts.PORT,
                         honor_labels=True, keep_labels=certificate_alerts.CONTROLLER_LABELS,
                         target_namespace_label="kubernetes_namespace")]


#: Jobs an existing kube-prometheus-stack scrapes in operator mode (a prerequisite, README
#: "Operator mode"): its node-exporter, kube-state-metrics and kubelet ServiceMonitors set
#: these job names.
OPERATOR_PREREQUISITE_JOBS = ("node-exporter", "kube-state-metrics", "kubelet")


def operator_pod_monitors(t: Targets) -> list[tuple[str, int, str]]:
    """(job, port, namespace) of each PodMonitor operator mode emits."""
    logging = [("elasticsearch-exporter", ES_EXPORTER_PORT, t.logging_namespace),
               ("logstash-exporter", LOGSTASH_EXPORTER_PORT, t.logging_namespace)] if t.logging_namespace else []
    entry = t.entry
    certs = [(certificate_alerts.JOB, certificate_alerts.PORT, t.cert_manager_namespace)] if t.certificates else []
    rds = [(rds_backup_alerts.JOB, rds_backup_alerts.PORT, t.app_namespace)] if t.rds_instances else []
    return [(entry.job, entry.metrics_port, entry.data_plane_namespace),
            ("postgres-exporter", POSTGRES_EXPORTER_PORT, t.app_namespace),
            ("redis-exporter", REDIS_EXPORTER_PORT, t.app_namespace), *logging, *certs, *rds]


def monitored_jobs(t: Targets) -> list[str]:
    """Every ``job`` the mode's Prometheus scrapes for this stack."""
    if t.mode == "operator":
        return [*(job for job, _, _ in t.probes), *(job for job, _, _ in operator_pod_monitors(t)),
                *OPERATOR_PREREQUISITE_JOBS]
    return [j["job_name"] for j in scrape_jobs(t)]


def prometheus_config(t: Targets, scrape_interval: str = "15s", evaluation_interval: str = "15s") -> dict:
    """prometheus.yml (seed 000: 15s/15s; rule files; Alertmanager targets), with
    Kubernetes service discovery instead of the seed's undefined compose hostnames."""
    return {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": "10s",
            "evaluation_interval": evaluation_interval,
            "external_labels": {"cluster": t.cluster},
        },
        "rule_files": [f"{PROMETHEUS_RULES_DIR}/*.yml"],
        "alerting": {"alertmanagers": [{"api_version": "v2",
                                        "static_configs": [{"targets": t.alertmanager_peers()}]}]},
        "scrape_configs": scrape_jobs(t),
    }


def prometheus_yaml(t: Targets, **kw) -> str:
    return dump(prometheus_config(t, **kw))


def kubernetes_sd_namespaces(config: dict) -> set[str]:
    """Every namespace a kubernetes_sd block watches (RBAC must cover exactly these)."""
    out: set[str] = set()
    for job in config["scrape_configs"]:
        for sd in job.get("kubernetes_sd_configs", []):
            out.update(sd.get("namespaces", {}).get("names", []))
    return out


def without_kubernetes_sd(config: dict) -> dict:
    """A copy of ``config`` whose ``kubernetes_sd_configs`` blocks are replaced by one static
    placeholder target each, so Debian's promtool (built without Kubernetes discovery,
    VERIFIED.md) can still check everything else, relabel rules included."""
    import copy

    out = copy.deepcopy(config)
    for job in out["scrape_configs"]:
        if job.pop("kubernetes_sd_configs", None) is not None:
            job["static_configs"] = [{"targets": ["sd-placeholder.invalid:80"]}]
    return out


# --------------------------------------------------------------------------- alertmanager.yml

_EMAIL_TEXT = ("{{ range .Alerts }}\nAlert: {{ .Annotations.summary }}\nDescription: {{ .Annotations.description }}\n"
               "{{ end }}")
_EMAIL_TEXT_SEVERITY = ("{{ range .Alerts }}\nAlert: {{ .Annotations.summary }}\nSeverity: {{ .Labels.severity }}\n"
                        "Description: {{ .Annotations.description }}\n{{ end }}")


def _email(r: Receivers, prefix: str, text: str) -> dict:
    cfg: dict = {"to": ", ".join(r.email_to), "send_resolved": True,
                 "headers": {"Subject": f"[{prefix}] {{{{ .GroupLabels.alertname }}}}"}, "text": text}
    if r.smtp_username:
        cfg["auth_username"] = r.smtp_username
    if r.smtp_password:
        cfg["auth_password_file"] = f"{ALERTMANAGER_SECRETS_DIR}/{SMTP_PASSWORD_KEY}"
    return cfg


def alertmanager_config(r: Receivers) -> dict:
    """alertmanager.yml: seed 000 routes, receivers and inhibition, made valid (§5.6 #46)."""
    glob: dict = {"resolve_timeout": "5m"}
    if r.email:
        glob.update({"smtp_smarthost": r.smarthost, "smtp_from": r.email_from, "smtp_require_tls": True})

    def receiver(name: str, prefix: str, text: str, slack: bool, webhook: bool) -> dict:
        rec: dict = {"name": name}
        if r.email:
            rec["email_configs"] = [_email(r, prefix, text)]
        if slack and r.slack:
            rec["slack_configs"] = [{
                "api_url_file": f"{ALERTMANAGER_SECRETS_DIR}/{SLACK_WEBHOOK_KEY}",
                "channel": r.slack_channel, "send_resolved": True, "title": "Critical Alert",
                "text": "{{ range .Alerts }}\n*{{ .Annotations.summary }}*\n{{ .Annotations.description }}\n{{ end }}",
            }]
        if webhook and r.webhook_url:
            rec["webhook_configs"] = [{"url": r.webhook_url, "send_resolved": True, "max_alerts": 20}]
        return rec

    return {
        "global": glob,
        "route": {
            "receiver": "default",
            # seed: [alertname, cluster, service]; namespace added, cluster comes from
            # Prometheus external_labels.
            "group_by": ["alertname", "cluster", "namespace", "service"],
            "group_wait": "10s",
            # seed 10s re-notified a group on every new member; 5m is Alertmanager's default
            # and still far below repeat_interval.
            "group_interval": "5m",
            "repeat_interval": "1h",
            "routes": [
                {"receiver": "critical-alerts", "matchers": ['severity="critical"']},
                {"receiver": "warning-alerts", "matchers": ['severity="warning"']},
                {"receiver": "default", "matchers": ['severity="info"'], "repeat_interval": "12h"},
            ],
        },
        "inhibit_rules": [{
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity=~"warning|info"'],
            "equal": ["cluster", "namespace", "service"],
        }],
        "receivers": [
            receiver("default", "ALERT", _EMAIL_TEXT, slack=False, webhook=False),
            receiver("critical-alerts", "CRITICAL", _EMAIL_TEXT_SEVERITY, slack=True, webhook=True),
            receiver("warning-alerts", "WARNING", _EMAIL_TEXT_SEVERITY, slack=False, webhook=True),
        ],
    }


def alertmanager_yaml(r: Receivers) -> str:
    return dump(alertmanager_config(r))


# --------------------------------------------------------------------------- blackbox, adapter

def blackbox_config() -> dict:
    """One module: GET /api/status must answer 200 with ``"success": true`` (CONTRACT §1).
    /api/status is rate-limited per client IP (360 per 180 s); the 10 s probe uses 18."""
    return {"modules": {BLACKBOX_MODULE: {
        "prober": "http",
        "timeout": "4s",
        "http": {
            "method": "GET",
            "valid_status_codes": [200],
            "fail_if_body_not_matches_regexp": ['"success":\\s*true'],
            "preferred_ip_protocol": "ip4",
            "follow_redirects": False,
        },
    }}}


def blackbox_yaml() -> str:
    return dump(blackbox_config())


#: The custom metric the app's HPA reads (an Object metric on the app's route object,
#: averaged over the serving pods; see ``EntrySpec.hpa_rps_metric``).
RPS_METRIC = entry_mod.RPS_METRIC


def adapter_config(t: Targets) -> dict:
    """Prometheus Adapter rules: the entry's request rate per route object, served by
    ``custom.metrics.k8s.io`` as ``new_api_requests_per_second`` (``EntrySpec.adapter_rules``)."""
    return {"rules": t.entry.adapter_rules()}


def adapter_yaml(t: Targets) -> str:
    return dump(adapter_config(t))


# --------------------------------------------------------------------------- operator-mode specs

def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p.title() for p in rest)


def prometheus_rule_spec(t: Targets, slo: Slo = Slo()) -> dict:
    """``PrometheusRule.spec``: the very same groups."""
    return rule_groups(t, slo)


def relabelings(relabel_configs: Sequence[dict]) -> list[dict]:
    """prometheus.yml ``relabel_configs`` -> Prometheus Operator ``RelabelConfig`` objects."""
    out = []
    for rc in relabel_configs:
        item = {}
        for k, v in rc.items():
            key = {"source_labels": "sourceLabels", "target_label": "targetLabel"}.get(k, _camel(k))
            item[key] = v
        out.append(item)
    return out


#: Values of ``alertmanagerConfigMatcherStrategy.type`` under which our AlertmanagerConfig
#: routes the stack's alerts (see :func:`alertmanager_config_spec`).
ROUTING_MATCHER_STRATEGIES = ("None", "OnNamespaceExceptForAlertmanagerNamespace")


def alertmanager_config_spec(r: Receivers, secret_name: str, alerts: Sequence[str]) -> dict:
    """``AlertmanagerConfig.spec`` (monitoring.coreos.com/v1alpha1) for the same routing:
    credentials are SecretKeySelectors the operator resolves.

    The operator nests this route under the Alertmanager's root route with ``continue:
    true`` and, by default (``alertmanagerConfigMatcherStrategy: OnNamespace``), adds the
    matcher ``namespace="<this object's namespace>"`` to it and to each inhibit rule
    (prometheus-operator ``pkg/alertmanager/amcfg.go``, ``namespaceEnforcer``). Our alerts
    carry ``namespace="new-api"``, another namespace or none, so under that default this
    route matches nothing. Prerequisite (README, "Operator mode"): the Alertmanager's
    strategy is ``None``, or ``OnNamespaceExceptForAlertmanagerNamespace`` with this
    object in the Alertmanager's namespace; neither adds a matcher. Without the namespace
    scope the route would catch every alert of the cluster, so it and the inhibit rule
    match the stack's own alert names (``alerts``) instead."""
    def matcher(sev_regex: str, regex: bool = False) -> dict:
        return {"name": "severity", "value": sev_regex, "matchType": "=~" if regex else "="}

    ours = {"name": "alertname", "value": "|".join(sorted(set(alerts))), "matchType": "=~"}

    def receiver(name: str, prefix: str, text: str, slack: bool, webhook: bool) -> dict:
        rec: dict = {"name": name}
        if r.email:
            email = {"to": ", ".join(r.email_to), "from": r.email_from, "smarthost": r.smarthost,
                     "requireTLS": True, "sendResolved": True,
                     "headers": [{"key": "Subject", "value": f"[{prefix}] {{{{ .GroupLabels.alertname }}}}"}],
                     "text": text}
            if r.smtp_username:
                email["authUsername"] = r.smtp_username
            if r.smtp_password:
                email["authPassword"] = {"name": secret_name, "key": SMTP_PASSWORD_KEY}
            rec["emailConfigs"] = [email]
        if slack and r.slack:
            rec["slackConfigs"] = [{"apiURL": {"name": secret_name, "key": SLACK_WEBHOOK_KEY},
                                    "channel": r.slack_channel, "sendResolved": True, "title": "Critical Alert",
                                    "text": "{{ range .Alerts }}\n*{{ .Annotations.summary }}*\n"
                                            "{{ .Annotations.description }}\n{{ end }}"}]
        if webhook and r.webhook_url:
            rec["webhookConfigs"] = [{"urlSecret": {"name": secret_name, "key": WEBHOOK_URL_KEY},
                                      "sendResolved": True, "maxAlerts": 20}]
        return rec

    return {
        "route": {
            "receiver": "default",
            "matchers": [ours],
            "groupBy": ["alertname", "cluster", "namespace", "service"],
            "groupWait": "10s", "groupInterval": "5m", "repeatInterval": "1h",
            "routes": [
                {"receiver": "critical-alerts", "matchers": [matcher("critical")]},
                {"receiver": "warning-alerts", "matchers": [matcher("warning")]},
                {"receiver": "default", "matchers": [matcher("info")], "repeatInterval": "12h"},
            ],
        },
        "inhibitRules": [{
            "sourceMatch": [matcher("critical"), ours],
            "targetMatch": [matcher("warning|info", regex=True), ours],
            "equal": ["cluster", "namespace", "service"],
        }],
        "receivers": [
            receiver("default", "ALERT", _EMAIL_TEXT, False, False),
            receiver("critical-alerts", "CRITICAL", _EMAIL_TEXT_SEVERITY, True, True),
            receiver("warning-alerts", "WARNING", _EMAIL_TEXT_SEVERITY, False, True),
        ],
    }


# --------------------------------------------------------------------------- PromQL metric names

_PROMQL_WORDS = frozenset({
    "sum", "avg", "min", "max", "count", "rate", "irate", "increase", "histogram_quantile", "by", "without",
    "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "absent", "vector", "offset",
    "bool", "le", "topk", "bottomk", "label_replace", "clamp_min", "clamp_max", "time", "delta", "deriv",
    "predict_linear", "avg_over_time", "max_over_time", "min_over_time", "sum_over_time", "quantile",
    "stddev", "count_values", "abs", "round", "scalar", "inf", "nan",
})


def metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (strings, label matchers, durations,
    grouping clauses and functions removed). Good enough for the dashboards' own queries."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", "{}", s)
    s = re.sub(r"\[[^\]]*\]", "[]", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = s.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    names = set()
    for m in re.finditer(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)", s):
        word = m.group(1)
        if s[m.end():].lstrip().startswith("("):  # a function call
            continue
        if word.lower() in _PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names
