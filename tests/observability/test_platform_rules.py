"""Platform alerts (components/platform_alerts.py) under ``promtool test rules``, on the
rules text the stacks render, with series labelled exactly as their exporter and our
scrape config label them: each alert fires on the bad case and stays silent on the
healthy one.

Label sources: the ``postgres-exporter``/``redis-exporter`` jobs' relabelling
(``components/monitoring_config.py`` ``_k8s_pod_job``: ``namespace``, ``kubernetes_pod``,
``node``, ``service``); postgres_exporter's ``pg_stat_activity_count{datname,state}``,
``pg_settings_max_connections``, ``pg_up``; CloudNativePG's instance manager
(``config/manager/default-monitoring.yaml``: ``cnpg_backends_total{datname,usename,
application_name,state}``, ``cnpg_pg_settings_setting{name}``;
``metricserver/pg_collector.go``: ``cnpg_collector_up{cluster}``); redis_exporter's
``redis_up``. Prometheus's ``absent()`` returns one series labelled with the selector's
equality matchers (Prometheus docs, "Functions: absent()")."""

import subprocess

import pytest
import yaml
from conftest import k8s_object, unwrap

from components import monitoring_config as mc
from support import Stack, override
from tools import mockrt

POD = 'job="postgres-exporter",instance="10.0.1.7:9187",namespace="new-api",node="n1",service="postgres"'
PG_POD = POD + ',kubernetes_pod="new-api-postgres-0"'
CNPG_POD = POD + ',kubernetes_pod="new-api-postgres-1"'
REDIS_POD = ('job="redis-exporter",instance="10.0.1.8:9121",namespace="new-api",node="n1",service="redis",'
             'kubernetes_pod="new-api-redis-0"')


def pg_conns(active: int, idle: int, max_conns: int = 100) -> list:
    return [{"series": f'pg_stat_activity_count{{{PG_POD},datname="newapi",state="active"}}', "values": f"{active}x15"},
            {"series": f'pg_stat_activity_count{{{PG_POD},datname="newapi",state="idle"}}', "values": f"{idle}x15"},
            {"series": f'pg_settings_max_connections{{{PG_POD},server="localhost:5432"}}', "values": f"{max_conns}x15"}]


def cnpg_conns(active: int, idle: int, max_conns: int = 100) -> list:
    backend = f'{CNPG_POD},datname="newapi",usename="newapi",application_name=""'
    return [{"series": f'cnpg_backends_total{{{backend},state="active"}}', "values": f"{active}x15"},
            {"series": f'cnpg_backends_total{{{backend},state="idle"}}', "values": f"{idle}x15"},
            {"series": f'cnpg_pg_settings_setting{{{CNPG_POD},name="max_connections"}}', "values": f"{max_conns}x15"},
            {"series": f'cnpg_pg_settings_setting{{{CNPG_POD},name="work_mem"}}', "values": "4096x15"}]


def up(job: str, value: str = "1x30") -> dict:
    return {"series": f'up{{job="{job}",instance="10.0.0.9:1",namespace="x"}}', "values": value}


# name -> (alert, interval, eval_time, firing series, silent series, labels the firing alert carries)
CASES = {
    "connections high on postgres_exporter": (
        "DatabaseConnectionHigh", "1m", "6m", pg_conns(50, 40), pg_conns(50, 20), {"instance": "10.0.1.7:9187"}),
    "connections high on CloudNativePG": (
        "DatabaseConnectionHigh", "1m", "6m", cnpg_conns(60, 30), cnpg_conns(30, 20), {"instance": "10.0.1.7:9187"}),
    "postgres down on postgres_exporter": (
        "PostgresDown", "1m", "5m", [{"series": f"pg_up{{{PG_POD}}}", "values": "0x10"}],
        [{"series": f"pg_up{{{PG_POD}}}", "values": "1x10"}], {"job": "postgres-exporter"}),
    "postgres down on CloudNativePG": (
        "PostgresDown", "1m", "5m", [{"series": f'cnpg_collector_up{{{CNPG_POD},cluster="new-api-postgres"}}',
                                      "values": "0x10"}],
        [{"series": f'cnpg_collector_up{{{CNPG_POD},cluster="new-api-postgres"}}', "values": "1x10"}],
        {"job": "postgres-exporter"}),
    "redis down": (
        "RedisDown", "1m", "5m", [{"series": f"redis_up{{{REDIS_POD}}}", "values": "0x10"}],
        [{"series": f"redis_up{{{REDIS_POD}}}", "values": "1x10"}], {"instance": "10.0.1.8:9121"}),
    # The aws backend before its exporters exist: no target at all, so no `up` to be 0.
    "postgres exporter has no target": (
        "ExporterAbsent", "1m", "15m", [up("redis-exporter"), up("node-exporter")],
        [up("postgres-exporter"), up("redis-exporter"), up("node-exporter")],
        {"job": "postgres-exporter", "severity": "critical"}),
    "redis exporter has no target": (
        "ExporterAbsent", "1m", "15m", [up("postgres-exporter")], [up("redis-exporter"), up("postgres-exporter")],
        {"job": "redis-exporter", "severity": "critical"}),
}

# kube-state-metrics, scraped with honor_labels: its own namespace/pod labels are the
# object's; the scrape target's go to kubernetes_namespace/kubernetes_pod.
KSM = 'job="kube-state-metrics",instance="10.0.2.3:8080",kubernetes_namespace="monitoring",node="n1"'
APP_POD = KSM + ',namespace="new-api",pod="new-api-7d9f8-abcde",container="new-api",uid="u1"'
BACKUP_JOB = KSM + ',namespace="new-api",job_name="new-api-db-backup-29400000"'
CRONJOB = KSM + ',namespace="new-api",cronjob="new-api-db-backup"'


def ksm(metric: str, labels: str, values: str) -> dict:
    return {"series": f"{metric}{{{labels}}}", "values": values}


CASES.update({
    "crash loop": ("NewApiPodCrashLooping", "1m", "25m",
                   [ksm("kube_pod_container_status_waiting_reason", APP_POD + ',reason="CrashLoopBackOff"', "1x30")],
                   [ksm("kube_pod_container_status_waiting_reason", APP_POD + ',reason="CrashLoopBackOff"', "1x5")],
                   {"pod": "new-api-7d9f8-abcde"}),
    "OOM kill": ("NewApiContainerOOMKilled", "1m", "6m",
                 [ksm("kube_pod_container_status_last_terminated_reason", APP_POD + ',reason="OOMKilled"', "1x20"),
                  ksm("kube_pod_container_status_restarts_total", APP_POD, "0 0 0 1 1 1 1 1 1 1")],
                 [ksm("kube_pod_container_status_last_terminated_reason", APP_POD + ',reason="Error"', "1x20"),
                  ksm("kube_pod_container_status_restarts_total", APP_POD, "0 0 0 1 1 1 1 1 1 1")],
                 {"container": "new-api"}),
    "deployment unavailable": ("NewApiDeploymentReplicasUnavailable", "1m", "20m",
                               [ksm("kube_deployment_status_replicas_unavailable", KSM + ',namespace="new-api",deployment="new-api"', "1x30")],
                               [ksm("kube_deployment_status_replicas_unavailable", KSM + ',namespace="new-api",deployment="new-api"', "0x30")],
                               {"deployment": "new-api"}),
    "statefulset unready": ("NewApiStatefulSetReplicasUnavailable", "1m", "20m",
                            [ksm("kube_statefulset_replicas", KSM + ',namespace="logging",statefulset="elasticsearch"', "3x30"),
                             ksm("kube_statefulset_status_replicas_ready", KSM + ',namespace="logging",statefulset="elasticsearch"', "2x30")],
                            [ksm("kube_statefulset_replicas", KSM + ',namespace="logging",statefulset="elasticsearch"', "3x30"),
                             ksm("kube_statefulset_status_replicas_ready", KSM + ',namespace="logging",statefulset="elasticsearch"', "3x30")],
                            {"statefulset": "elasticsearch"}),
    "HPA at maximum": ("NewApiHpaMaxedOut", "1m", "20m",
                       [ksm("kube_horizontalpodautoscaler_status_current_replicas", KSM + ',namespace="new-api",horizontalpodautoscaler="new-api"', "10x30"),
                        ksm("kube_horizontalpodautoscaler_spec_max_replicas", KSM + ',namespace="new-api",horizontalpodautoscaler="new-api"', "10x30")],
                       [ksm("kube_horizontalpodautoscaler_status_current_replicas", KSM + ',namespace="new-api",horizontalpodautoscaler="new-api"', "10x10 6x20"),
                        ksm("kube_horizontalpodautoscaler_spec_max_replicas", KSM + ',namespace="new-api",horizontalpodautoscaler="new-api"', "10x30")],
                       {"horizontalpodautoscaler": "new-api"}),
    "backup job failed": ("DatabaseBackupFailed", "1m", "3m",
                          [ksm("kube_job_status_failed", BACKUP_JOB + ',reason="BackoffLimitExceeded"', "0 1 1 1 1"),
                           ksm("kube_job_owner", BACKUP_JOB + ',owner_kind="CronJob",owner_name="new-api-db-backup",owner_is_controller="true"', "1x5")],
                          [ksm("kube_job_status_failed", BACKUP_JOB, "0x5"),
                           ksm("kube_job_owner", BACKUP_JOB + ',owner_kind="CronJob",owner_name="new-api-db-backup",owner_is_controller="true"', "1x5"),
                           # another CronJob's failure is not the backup's
                           ksm("kube_job_status_failed", KSM + ',namespace="new-api",job_name="other-1"', "1x5"),
                           ksm("kube_job_owner", KSM + ',namespace="new-api",job_name="other-1",owner_kind="CronJob",owner_name="other",owner_is_controller="true"', "1x5")],
                          {"job_name": "new-api-db-backup-29400000"}),
    # promtool's clock starts at 0: a success at t=0 is 28 h old at 28 h; silent: one every hour
    "backup stale": ("DatabaseBackupStale", "5m", "28h",
                     [ksm("kube_cronjob_status_last_successful_time", CRONJOB, "0x340"),
                      ksm("kube_cronjob_created", CRONJOB, "0x340")],
                     [ksm("kube_cronjob_status_last_successful_time", CRONJOB, "0x11 3600x12 7200x12 10800x12 "
                          "14400x12 18000x12 21600x12 25200x12 28800x12 32400x12 36000x12 39600x12 43200x12 "
                          "46800x12 50400x12 54000x12 57600x12 61200x12 64800x12 68400x12 72000x12 75600x12 "
                          "79200x12 82800x12 86400x12 90000x12 93600x12 97200x12 100800x12"),
                      ksm("kube_cronjob_created", CRONJOB, "0x340")],
                     {"cronjob": "new-api-db-backup"}),
    "backup never succeeded": ("DatabaseBackupStale", "5m", "28h",
                               [ksm("kube_cronjob_created", CRONJOB, "0x340")],
                               [ksm("kube_cronjob_created", CRONJOB, "86400x340")],
                               {"cronjob": "new-api-db-backup"}),
})

# cAdvisor through the "cadvisor" job (node label from relabelling); kubelet volume stats
# through "kubelet"; the memory limit from kube-state-metrics.
CADVISOR = ('job="cadvisor",instance="10.0.0.11:10250",node="n1",namespace="new-api",pod="new-api-7d9f8-abcde",'
            'container="new-api",id="/kubepods/burstable/podu1/c1",image="calciumion/new-api:v0.9.0",name="c1"')
PVC = 'job="kubelet",instance="10.0.0.11:10250",node="n1",namespace="new-api",persistentvolumeclaim="data-new-api-postgres-0"'
LIMIT = ksm("kube_pod_container_resource_limits", APP_POD + ',resource="memory",unit="byte"', "536870912x30")

CASES.update({
    "app throttled": ("NewApiContainerCPUThrottled", "1m", "25m",
                      [{"series": f"container_cpu_cfs_periods_total{{{CADVISOR}}}", "values": "0+100x30"},
                       {"series": f"container_cpu_cfs_throttled_periods_total{{{CADVISOR}}}", "values": "0+50x30"}],
                      [{"series": f"container_cpu_cfs_periods_total{{{CADVISOR}}}", "values": "0+100x30"},
                       {"series": f"container_cpu_cfs_throttled_periods_total{{{CADVISOR}}}", "values": "0+5x30"}],
                      {"pod": "new-api-7d9f8-abcde"}),
    "memory near limit": ("NewApiContainerMemoryNearLimit", "1m", "20m",
                          [{"series": f"container_memory_working_set_bytes{{{CADVISOR}}}", "values": "503316480x30"},
                           LIMIT],
                          [{"series": f"container_memory_working_set_bytes{{{CADVISOR}}}", "values": "268435456x30"},
                           LIMIT],
                          {"container": "new-api"}),
    "volume almost full": ("NewApiPersistentVolumeFillingUp", "1m", "10m",
                           [{"series": f"kubelet_volume_stats_available_bytes{{{PVC}}}", "values": "5x30"},
                            {"series": f"kubelet_volume_stats_capacity_bytes{{{PVC}}}", "values": "100x30"}],
                           [{"series": f"kubelet_volume_stats_available_bytes{{{PVC}}}", "values": "50x30"},
                            {"series": f"kubelet_volume_stats_capacity_bytes{{{PVC}}}", "values": "100x30"}],
                           {"persistentvolumeclaim": "data-new-api-postgres-0"}),
    # 35 % free, losing 0.1 % of capacity every 5 minutes: empty in about 29 hours; silent: steady
    "volume full within 4 days": ("NewApiPersistentVolumeFillingUpPredicted", "5m", "8h",
                                  [{"series": f"kubelet_volume_stats_available_bytes{{{PVC}}}", "values": "35-0.1x120"},
                                   {"series": f"kubelet_volume_stats_capacity_bytes{{{PVC}}}", "values": "100x120"}],
                                  [{"series": f"kubelet_volume_stats_available_bytes{{{PVC}}}", "values": "35x120"},
                                   {"series": f"kubelet_volume_stats_capacity_bytes{{{PVC}}}", "values": "100x120"}],
                                  {"persistentvolumeclaim": "data-new-api-postgres-0"}),
})

#: Alerts of this module, each with its cases above.
ALERTS = {"DatabaseConnectionHigh", "PostgresDown", "RedisDown", "ExporterAbsent", "NewApiPodCrashLooping",
          "NewApiContainerOOMKilled", "NewApiDeploymentReplicasUnavailable", "NewApiStatefulSetReplicasUnavailable",
          "NewApiHpaMaxedOut", "DatabaseBackupFailed", "DatabaseBackupStale", "NewApiContainerCPUThrottled",
          "NewApiContainerMemoryNearLimit", "NewApiPersistentVolumeFillingUp", "NewApiPersistentVolumeFillingUpPredicted"}


def rules_text(stack) -> str:
    return k8s_object(stack.result, "ConfigMap", "prometheus-rules", "monitoring")["data"]["new-api.yml"]


def unit_tests(alerts: set, evaluation_interval: str = "1m") -> dict:
    """The cases whose series interval is ``evaluation_interval`` (day-long scenarios run
    on a 5m evaluation step: promtool evaluates every rule at every step)."""
    tests = []
    for name, (alert, interval, at, fire, silent, labels) in CASES.items():
        if alert not in alerts or interval != evaluation_interval:
            continue
        fired = {"expr": f'ALERTS{{alertname="{alert}",alertstate="firing"}}', "eval_time": at}
        query = "count(" + fired["expr"][:-1] + "".join(f',{k}="{v}"' for k, v in labels.items()) + "})"
        tests.append({"name": f"{name}: fires", "interval": interval, "input_series": fire,
                      "promql_expr_test": [{"expr": query, "eval_time": at, "exp_samples": [{"labels": "{}", "value": 1}]}]})
        tests.append({"name": f"{name}: silent", "interval": interval, "input_series": silent,
                      "promql_expr_test": [{"expr": query, "eval_time": at, "exp_samples": []}]})
    return {"rule_files": ["rules.yml"], "evaluation_interval": evaluation_interval, "tests": tests}


@pytest.fixture(scope="module")
def cnpg_stack():
    changes = override("dev", ("database.backend", "cloudnative-pg"),
                       ("backup.s3", {"bucket": "new-api-backups-dev", "roleArn": "arn:aws:iam::123456789012:role/r"}))
    return Stack(mockrt.run_stack("dev", changes))


@pytest.mark.parametrize("name", ["dev", "prod", "cnpg"])
def test_platform_alerts_fire_and_stay_silent(request, name, promtool, tmp_path):
    stack = request.getfixturevalue({"cnpg": "cnpg_stack"}.get(name, name))
    (tmp_path / "rules.yml").write_text(rules_text(stack))
    alerts = set(mc.alert_names(yaml.safe_load(rules_text(stack))))
    assert ALERTS - alerts == ({"DatabaseBackupFailed", "DatabaseBackupStale"} if name == "cnpg" else set())
    for step in ("1m", "5m"):
        (tmp_path / "tests.yml").write_text(yaml.safe_dump(unit_tests(alerts, step), sort_keys=False))
        out = subprocess.run([promtool, "test", "rules", str(tmp_path / "tests.yml")], capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]


def test_every_platform_alert_has_cases(dev):
    names = set(mc.alert_names(yaml.safe_load(rules_text(dev))))
    assert ALERTS <= names
    assert {c[0] for c in CASES.values()} == ALERTS


def test_every_rendered_alert_has_promtool_cases_somewhere(dev, prod):
    """No alert without a scenario: this module's, test_rules.py's, test_rules_relay.py's,
    test_certificates.py's or test_rds_backups.py's."""
    from test_certificates import ALERTS as CERTIFICATE_ALERTS
    from test_rds_backups import ALERTS as RDS_ALERTS
    from test_rules import CASES as APP_CASES
    from test_rules_relay import GATEWAY_CASES as RELAY_CASES

    known = ALERTS | set(APP_CASES) | set(RELAY_CASES) | CERTIFICATE_ALERTS | RDS_ALERTS
    for stack in (dev, prod):
        names = set(mc.alert_names(yaml.safe_load(rules_text(stack))))
        assert names <= known, names - known


def absent_jobs(groups: dict) -> set:
    return {r["expr"].split('job="')[1].split('"')[0] for g in groups["groups"] for r in g["rules"]
            if r.get("alert") == "ExporterAbsent"}


@pytest.fixture(scope="module")
def operator_stack():
    return Stack(mockrt.run_stack("prod", override("prod", ("monitoring.mode", "operator"))))


def test_absent_alerts_cover_every_scrape_job_the_stack_relies_on(dev, prod, operator_stack):
    """Standalone: the jobs of the rendered prometheus.yml; operator: the jobs our monitors
    set plus kube-prometheus-stack's. The datastore exporters are covered on every backend."""
    for stack in (dev, prod):
        prom = yaml.safe_load(k8s_object(stack.result, "ConfigMap", "prometheus-config", "monitoring")["data"]
                              ["prometheus.yml"])
        jobs = {j["job_name"] for j in prom["scrape_configs"]} - {"new-api", "new-api-master", "prometheus"}
        assert absent_jobs(yaml.safe_load(rules_text(stack))) == jobs
    rule = next(o for o in operator_stack.k8s_all("PrometheusRule"))
    covered = absent_jobs(unwrap(rule["spec"]))
    monitors = {r["targetLabel"] and r["replacement"] for m in operator_stack.k8s_all("PodMonitor")
                for e in m["spec"]["podMetricsEndpoints"] for r in e.get("relabelings", [])
                if r.get("targetLabel") == "job"}
    assert monitors <= covered and {"postgres-exporter", "redis-exporter", "node-exporter",
                                    "kube-state-metrics"} <= covered
