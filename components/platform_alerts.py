"""Rules of the platform under New API: datastores on every backend, exporter health.

Pure functions, like :mod:`components.monitoring_config` (which adds these groups to the
rules it renders, so standalone Prometheus and the PrometheusRule of operator mode get
the same ones, each with its runbook link).

**One set of datastore alerts for every backend.** postgres_exporter (the in-cluster
sidecar and, on the aws backend, the exporter pointed at RDS) names its series ``pg_*``;
CloudNativePG's instance manager serves its own on the same port 9187, all ``cnpg_*``
(``pkg/management/postgres/webserver/metricserver/pg_collector.go``: namespace ``cnpg``,
``cnpg_collector_up``; its default queries, ``config/manager/default-monitoring.yaml``:
``cnpg_backends_total`` per datname/usename/application_name/state,
``cnpg_pg_settings_setting{name=...}``, ``cnpg_pg_stat_database_*``,
``cnpg_pg_database_size_bytes``). Recording rules ``newapi:postgres_*`` take whichever
exists, so alerts and dashboards read one name. redis_exporter serves the same
``redis_*`` for the in-cluster Redis and ElastiCache.

**A silent gap pages someone.** ``absent(up{job=...})`` for every scrape job the stack
relies on (a job with no target at all has no ``up`` series, so ``up == 0`` never fires),
next to ``ScrapeTargetDown`` (``up == 0``) for a target that exists but fails.
"""

from __future__ import annotations

from typing import Optional, Sequence

#: Recording rules: backend-neutral Postgres series (``job``, ``instance`` kept).
POSTGRES_RECORDS: dict[str, tuple[str, str]] = {
    # name: (postgres_exporter expression, CloudNativePG expression)
    "newapi:postgres_up": ("max by (job, instance) (pg_up)", "max by (job, instance) (cnpg_collector_up)"),
    "newapi:postgres_connections:count": ("sum by (job, instance) (pg_stat_activity_count)",
                                          "sum by (job, instance) (cnpg_backends_total)"),
    "newapi:postgres_max_connections": (
        "max by (job, instance) (pg_settings_max_connections)",
        'max by (job, instance) (cnpg_pg_settings_setting{name="max_connections"})'),
    "newapi:postgres_xact_commit:rate5m": (
        "sum by (job, instance) (rate(pg_stat_database_xact_commit[5m]))",
        "sum by (job, instance) (rate(cnpg_pg_stat_database_xact_commit[5m]))"),
    "newapi:postgres_xact_rollback:rate5m": (
        "sum by (job, instance) (rate(pg_stat_database_xact_rollback[5m]))",
        "sum by (job, instance) (rate(cnpg_pg_stat_database_xact_rollback[5m]))"),
    "newapi:postgres_blks_hit:rate5m": (
        "sum by (job, instance) (rate(pg_stat_database_blks_hit[5m]))",
        "sum by (job, instance) (rate(cnpg_pg_stat_database_blks_hit[5m]))"),
    "newapi:postgres_blks_read:rate5m": (
        "sum by (job, instance) (rate(pg_stat_database_blks_read[5m]))",
        "sum by (job, instance) (rate(cnpg_pg_stat_database_blks_read[5m]))"),
    "newapi:postgres_deadlocks:rate5m": (
        "sum by (job, instance) (rate(pg_stat_database_deadlocks[5m]))",
        "sum by (job, instance) (rate(cnpg_pg_stat_database_deadlocks[5m]))"),
    "newapi:postgres_database_size_bytes": (
        "sum by (job, instance, datname) (pg_database_size_bytes)",
        "sum by (job, instance, datname) (cnpg_pg_database_size_bytes)"),
}

#: Metrics CloudNativePG's instance manager serves (on 9187, scraped as postgres-exporter).
CNPG_METRICS = frozenset({
    "cnpg_collector_up", "cnpg_backends_total", "cnpg_pg_settings_setting", "cnpg_pg_stat_database_xact_commit",
    "cnpg_pg_stat_database_xact_rollback", "cnpg_pg_stat_database_blks_hit", "cnpg_pg_stat_database_blks_read",
    "cnpg_pg_stat_database_deadlocks", "cnpg_pg_database_size_bytes",
})

#: kube-state-metrics series the workload and backup alerts read (besides those already
#: listed for it in monitoring_config.EXPORTER_METRICS).
KSM_METRICS = frozenset({
    "kube_pod_container_status_waiting_reason", "kube_pod_container_status_last_terminated_reason",
    "kube_pod_container_status_restarts_total", "kube_deployment_status_replicas_unavailable",
    "kube_statefulset_replicas", "kube_statefulset_status_replicas_ready",
    "kube_horizontalpodautoscaler_status_current_replicas", "kube_horizontalpodautoscaler_spec_max_replicas",
    "kube_job_status_failed", "kube_job_owner", "kube_cronjob_status_last_successful_time", "kube_cronjob_created",
    "kube_pod_container_resource_limits",
})

#: Jobs whose absence blinds user-facing alerts (the datastores', the entry's RED metrics
#: whichever entry kind serves them): critical.
CRITICAL_JOBS = frozenset({"postgres-exporter", "redis-exporter", "ingress-nginx", "envoy-gateway"})
#: Jobs not covered by ExporterAbsent: the app probes (ApplicationDown and NewApiMasterDown
#: fire on their absence) and Prometheus itself (nothing alerts when it is gone).
NOT_ABSENT_CHECKED = frozenset({"new-api", "new-api-master", "prometheus"})


def postgres_recording_rules() -> list[dict]:
    rules = [{"record": name, "expr": f"{pg} or {cnpg}"} for name, (pg, cnpg) in POSTGRES_RECORDS.items()]
    rules.append({"record": "newapi:postgres_connections:ratio",
                  "expr": "newapi:postgres_connections:count / newapi:postgres_max_connections"})
    return rules


def datastore_alerts(alert) -> list[dict]:
    """Datastores down, on whichever exporter feeds them (``alert`` builds one rule)."""
    return [
        alert("PostgresDown", "newapi:postgres_up == 0", "2m", "critical", "postgres",
              "Postgres is unreachable",
              "The exporter at {{ $labels.instance }} cannot query Postgres: New API cannot read or write "
              "accounts, tokens or quotas."),
        alert("RedisDown", "redis_up == 0", "2m", "critical", "redis", "Redis is unreachable",
              "redis_exporter at {{ $labels.instance }} cannot reach Redis: sessions, rate limits and caches fail."),
    ]


def exporter_absent_alerts(alert, jobs: Sequence[str]) -> list[dict]:
    """One ``ExporterAbsent`` rule per job: ``absent(up{job="..."})`` carries ``job`` from the
    equality matcher, so the alert names the missing job."""
    out = []
    for job in sorted(set(jobs) - NOT_ABSENT_CHECKED):
        out.append(alert(
            "ExporterAbsent", f'absent(up{{job="{job}"}})', "10m",
            "critical" if job in CRITICAL_JOBS else "warning", job,
            "A scrape job has no target",
            f"Prometheus has had no target for job {job} for 10 minutes: every alert and panel fed by it "
            "is silent (exporter not deployed, not discovered, or not admitted by a NetworkPolicy)."))
    return out


#: The database dump must succeed daily (schedule 02:00 UTC): 26 h leaves two hours of
#: slack for a slow run before the missing day pages.
BACKUP_MAX_AGE_SECONDS = 26 * 3600


def kubernetes_alerts(alert, namespaces: Sequence[str], backup_cronjob: Optional[tuple[str, str]]) -> list[dict]:
    """Workload and backup alerts on kube-state-metrics' series (its docs,
    ``docs/metrics/workload/*.md``: ``kube_cronjob_status_last_successful_time{namespace,
    cronjob}``, ``kube_job_status_failed{namespace,job_name}``, ``kube_job_owner{owner_kind,
    owner_name}``, ``kube_pod_container_status_waiting_reason{reason}``,
    ``kube_pod_container_status_last_terminated_reason{reason}``,
    ``kube_deployment_status_replicas_unavailable``, ``kube_statefulset_status_replicas_ready``,
    ``kube_horizontalpodautoscaler_*``), limited to the stack's ``namespaces``.
    ``backup_cronjob``: (namespace, name) of the database dump CronJob, if the backend has one.

    Names start with ``NewApi``: in operator mode the AlertmanagerConfig routes by alert
    name, and kube-prometheus-stack's own rules (KubePodCrashLooping, KubeHpaMaxedOut...)
    fire for every namespace of the cluster; a shared name would e-mail other teams' alerts."""
    ns = "namespace=~\"" + "|".join(sorted(set(namespaces))) + "\""
    rules = [
        alert("NewApiPodCrashLooping",
              f'max_over_time(kube_pod_container_status_waiting_reason{{{ns},reason="CrashLoopBackOff"}}[5m]) >= 1',
              "15m", "warning", "kubernetes", "A container is crash-looping",
              "{{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.container }}) has been in CrashLoopBackOff "
              "for 15 minutes."),
        alert("NewApiContainerOOMKilled",
              f'(kube_pod_container_status_last_terminated_reason{{{ns},reason="OOMKilled"}} == 1) and on '
              f'(namespace, pod, container) (increase(kube_pod_container_status_restarts_total{{{ns}}}[15m]) > 0)',
              "0m", "warning", "kubernetes", "A container was OOM-killed",
              "{{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.container }}) restarted after the kernel "
              "killed it at its memory limit."),
        alert("NewApiDeploymentReplicasUnavailable",
              f"kube_deployment_status_replicas_unavailable{{{ns}}} > 0", "15m", "warning", "kubernetes",
              "A Deployment has unavailable replicas",
              "{{ $labels.namespace }}/{{ $labels.deployment }} has had {{ $value }} unavailable replicas for 15 minutes."),
        alert("NewApiStatefulSetReplicasUnavailable",
              f"kube_statefulset_replicas{{{ns}}} - on (namespace, statefulset) "
              f"kube_statefulset_status_replicas_ready{{{ns}}} > 0", "15m", "warning", "kubernetes",
              "A StatefulSet has unready replicas",
              "{{ $labels.namespace }}/{{ $labels.statefulset }} has had {{ $value }} unready replicas for 15 minutes."),
        alert("NewApiHpaMaxedOut",
              f"kube_horizontalpodautoscaler_status_current_replicas{{{ns}}} >= on (namespace, "
              f"horizontalpodautoscaler) kube_horizontalpodautoscaler_spec_max_replicas{{{ns}}}",
              "15m", "warning", "kubernetes", "An HPA is pinned at its maximum",
              "{{ $labels.namespace }}/{{ $labels.horizontalpodautoscaler }} has run at its maximum replicas for "
              "15 minutes: it cannot absorb more load."),
    ]
    if backup_cronjob:
        bns, name = backup_cronjob
        cj = f'namespace="{bns}",cronjob="{name}"'
        rules += [
            alert("DatabaseBackupFailed",
                  f'(kube_job_status_failed{{namespace="{bns}"}} > 0) and on (namespace, job_name) '
                  f'kube_job_owner{{namespace="{bns}",owner_kind="CronJob",owner_name="{name}"}}',
                  "0m", "critical", "backup", "The database dump failed",
                  "Job {{ $labels.namespace }}/{{ $labels.job_name }} of CronJob " + name + " failed."),
            alert("DatabaseBackupStale",
                  f"(time() - max by (namespace, cronjob) (kube_cronjob_status_last_successful_time{{{cj}}}) "
                  f"> {BACKUP_MAX_AGE_SECONDS}) or (time() - max by (namespace, cronjob) "
                  f"(kube_cronjob_created{{{cj}}}) > {BACKUP_MAX_AGE_SECONDS} unless on (namespace, cronjob) "
                  f"kube_cronjob_status_last_successful_time{{{cj}}})",
                  "15m", "critical", "backup", "No database dump has succeeded for more than 26 hours",
                  f"CronJob {bns}/{name} has not completed a dump for more than 26 hours (daily schedule)."),
        ]
    return rules


# --------------------------------------------------------------------------- kubelet, cAdvisor

KUBELET_PORT = 10250
_SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
#: What the container and volume alerts and the capacity dashboard read; everything else
#: the kubelet and cAdvisor serve (thousands of series per node) is dropped at scrape.
KUBELET_METRICS = ("kubelet_volume_stats_available_bytes", "kubelet_volume_stats_capacity_bytes",
                   "kubelet_volume_stats_used_bytes", "kubelet_running_pods")
CADVISOR_METRICS = ("container_cpu_usage_seconds_total", "container_cpu_cfs_periods_total",
                    "container_cpu_cfs_throttled_periods_total", "container_memory_working_set_bytes",
                    "container_oom_events_total")


def kubelet_jobs() -> list[dict]:
    """The kubelet's own metrics (volume stats) and its embedded cAdvisor (container CPU,
    throttling, memory), scraped from every node on :10250 with the ServiceAccount token
    (the ClusterRole grants ``nodes/metrics``; Kubernetes docs, "Kubelet authentication/
    authorization"). The kubelet's serving certificate is usually self-signed by the node,
    hence ``insecure_skip_verify`` (kube-prometheus does the same); the token still
    authenticates Prometheus to the kubelet."""
    def job(name: str, path: str, keep: Sequence[str]) -> dict:
        return {
            "job_name": name, "scheme": "https", "metrics_path": path,
            "authorization": {"credentials_file": f"{_SA_DIR}/token"},
            "tls_config": {"ca_file": f"{_SA_DIR}/ca.crt", "insecure_skip_verify": True},
            "kubernetes_sd_configs": [{"role": "node"}],
            "relabel_configs": [{"source_labels": ["__meta_kubernetes_node_name"], "target_label": "node"}],
            "metric_relabel_configs": [{"source_labels": ["__name__"], "regex": "|".join(keep), "action": "keep"}],
        }
    return [job("kubelet", "/metrics", KUBELET_METRICS), job("cadvisor", "/metrics/cadvisor", CADVISOR_METRICS)]


#: Thresholds of the container and volume alerts; the capacity dashboard
#: (components/dashboards_platform.py) colours its panels by the same values.
CPU_THROTTLED_RATIO = 0.25
MEMORY_NEAR_LIMIT_RATIO = 0.9
VOLUME_FREE_CRITICAL_RATIO = 0.1
VOLUME_FREE_PREDICTED_RATIO = 0.4
#: ``predict_linear`` of a volume's free bytes: the trend of this window, this far ahead.
VOLUME_TREND_WINDOW = "6h"
VOLUME_FULL_HORIZON_DAYS = 4


def volume_free_ratio(ns_matcher: str) -> str:
    """Free share of each PVC (kubelet volume stats), as the volume alerts and the
    capacity dashboard read it; ``ns_matcher`` is a ``namespace`` label matcher."""
    return (f"kubelet_volume_stats_available_bytes{{{ns_matcher}}} / on (namespace, persistentvolumeclaim) "
            f"kubelet_volume_stats_capacity_bytes{{{ns_matcher}}}")


def container_alerts(alert, app_namespace: str, namespaces: Sequence[str]) -> list[dict]:
    """cAdvisor and kubelet volume alerts (cAdvisor labels its series ``namespace``, ``pod``,
    ``container``; the pod-level cgroup has ``container=""``; kubelet volume stats carry
    ``namespace`` and ``persistentvolumeclaim``). Volumes: every PVC of the stack
    (Postgres, Redis, Elasticsearch, Prometheus, Alertmanager, the dump volume)."""
    ns = "namespace=~\"" + "|".join(sorted(set(namespaces))) + "\""
    app = f'namespace="{app_namespace}",container!=""'
    free = volume_free_ratio(ns)
    by = "by (namespace, pod, container)"
    return [
        alert("NewApiContainerCPUThrottled",
              f"sum {by} (increase(container_cpu_cfs_throttled_periods_total{{{app}}}[5m])) / sum {by} "
              f"(increase(container_cpu_cfs_periods_total{{{app}}}[5m])) > {CPU_THROTTLED_RATIO}",
              "15m", "warning", "new-api", "New API is CPU-throttled",
              "{{ $labels.pod }} ({{ $labels.container }}) was throttled in {{ $value | humanizePercentage }} of "
              "its CPU periods for 15 minutes: latency grows before CPU usage looks high."),
        alert("NewApiContainerMemoryNearLimit",
              f'max {by} (container_memory_working_set_bytes{{{ns},container!=""}}) / on (namespace, pod, container) '
              f'max {by} (kube_pod_container_resource_limits{{{ns},resource="memory"}}) > {MEMORY_NEAR_LIMIT_RATIO}',
              "15m", "warning", "kubernetes", "A container's memory is near its limit",
              "{{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.container }}) uses "
              "{{ $value | humanizePercentage }} of its memory limit: the next spike is an OOM kill."),
        alert("NewApiPersistentVolumeFillingUp", f"{free} < {VOLUME_FREE_CRITICAL_RATIO:.2f}", "5m", "critical", "kubernetes",
              "A persistent volume is almost full",
              "{{ $labels.namespace }}/{{ $labels.persistentvolumeclaim }} has {{ $value | humanizePercentage }} free."),
        alert("NewApiPersistentVolumeFillingUpPredicted",
              f"({free} < {VOLUME_FREE_PREDICTED_RATIO:.2f}) and on (namespace, persistentvolumeclaim) "
              f"predict_linear(kubelet_volume_stats_available_bytes{{{ns}}}[{VOLUME_TREND_WINDOW}], "
              f"{VOLUME_FULL_HORIZON_DAYS} * 24 * 3600) < 0",
              "1h", "warning", "kubernetes", "A persistent volume fills within 4 days",
              "At the last 6 hours' rate {{ $labels.namespace }}/{{ $labels.persistentvolumeclaim }} is full "
              "within 4 days."),
    ]


def groups(alert, jobs: Sequence[str], namespaces: Sequence[str] = (),
           backup_cronjob: Optional[tuple[str, str]] = None, app_namespace: str = "new-api") -> list[dict]:
    """Rule groups to add to the stack's rules. ``alert`` is the rule builder of
    :mod:`components.monitoring_config`; ``jobs`` every scrape job name the mode provides;
    ``namespaces`` the stack's namespaces (workload alerts); ``backup_cronjob`` the dump CronJob."""
    return [
        {"name": "new-api-datastores-recording", "rules": postgres_recording_rules()},
        {"name": "new-api-datastores", "rules": datastore_alerts(alert)},
        {"name": "new-api-exporters", "rules": exporter_absent_alerts(alert, jobs)},
        {"name": "new-api-kubernetes", "rules": kubernetes_alerts(alert, namespaces, backup_cronjob)},
        {"name": "new-api-containers", "rules": container_alerts(alert, app_namespace, namespaces)},
    ]
