"""RDS automated backups (the ``aws`` backend): what Prometheus scrapes and alerts on.

Pure functions, like :mod:`components.platform_alerts`; the exporter itself is deployed
by :mod:`components.rds_exporter`.

**Source.** qonto/prometheus-rds-exporter (``internal/app/exporter/exporter.go``) reads
``DescribeDBInstances`` on every scrape and exports, per DB instance,
``rds_backup_retention_period_seconds{aws_account_id, aws_region, dbidentifier}`` (the
instance's ``BackupRetentionPeriod`` in days, converted to seconds by
``internal/app/rds/rds.go``; **0 means automated backups are off**: RDS docs,
"Enabling automated backups"), ``rds_instance_status`` and ``rds_instance_info``. When
the AWS call fails it exports none of them, only its own ``up`` = 0 (``Collect``).

That ``up`` is unlabelled and collides with the ``up`` Prometheus writes for every
target (same name, same target labels after the scrape: Prometheus keeps one sample and
drops the other, so ScrapeTargetDown and ExporterAbsent would read the exporter's value,
not the scrape's). The scrape renames it ``rds_exporter_up`` in
``metric_relabel_configs``, which Prometheus applies to scraped samples only, never to
its own ``up`` (Prometheus docs, configuration, ``metric_relabel_configs``).

**Alerts** on the stack's primary instance only (point-in-time recovery restores from
its automated backups; the read replica is a drill and reporting copy):

- ``NewApiRdsBackupRetentionTooShort`` (critical): the retention is below what the stack
  configured (``database.aws.backupRetentionDays``), 0 included (backups off): someone
  changed the instance outside the stack, and the restore window is shorter than
  promised (backup matrix, seed 000: 30 days).
- ``NewApiRdsBackupsUnobserved`` (warning): for 15 minutes the exporter has not reported
  the instance: it cannot call AWS (IRSA, IAM, egress), the instance is gone or renamed,
  or the exporter is down. The backups may be fine; nobody can tell.
"""

from __future__ import annotations

from typing import Sequence

APP = "rds-exporter"
JOB = "rds-exporter"
#: The exporter's listen address (``cmd/root.go``: ``--listen-address`` default ``:9043``).
PORT = 9043
RETENTION = "rds_backup_retention_period_seconds"
#: The exporter's own ``up``, renamed at scrape (see the module docstring).
EXPORTER_UP = "rds_exporter_up"
METRICS = frozenset({RETENTION, "rds_instance_status", "rds_instance_info", EXPORTER_UP})
#: Every scrape is a DescribeDBInstances call; RDS settings change rarely.
SCRAPE_INTERVAL = "60s"
DAY = 86400


def scrape_job(namespace: str, k8s_pod_job) -> dict:
    """The scrape job (``k8s_pod_job``: monitoring_config's pod-role job builder), with the
    exporter's ``up`` renamed."""
    job = k8s_pod_job(JOB, namespace, PORT, interval=SCRAPE_INTERVAL, keep_labels={"app.kubernetes.io/name": APP},
                      static_labels={"service": "postgres"})
    job["metric_relabel_configs"] = [{"source_labels": ["__name__"], "regex": "up", "target_label": "__name__",
                                      "replacement": EXPORTER_UP}]
    return job


def alerts(alert, instances: Sequence[tuple[str, int]]) -> list[dict]:
    """``instances``: (DB instance identifier, configured retention in days) of each
    instance whose automated backups the stack relies on."""
    rules = []
    for identifier, days in sorted(set(instances)):
        series = f'{RETENTION}{{dbidentifier="{identifier}"}}'
        rules += [
            alert("NewApiRdsBackupRetentionTooShort", f"max by (dbidentifier) ({series}) < {int(days)} * {DAY}",
                  "10m", "critical", "postgres", "RDS automated backups are off or kept too briefly",
                  f"RDS instance {identifier} keeps automated backups for {{{{ $value | humanizeDuration }}}} "
                  f"(0: automated backups are off); the stack configures {int(days)} days "
                  "(database.aws.backupRetentionDays): point-in-time recovery reaches back less far than promised."),
            alert("NewApiRdsBackupsUnobserved", f"absent({series})", "15m", "warning", "postgres",
                  "Nobody can see RDS's automated backups",
                  f"prometheus-rds-exporter has not reported RDS instance {identifier} for 15 minutes (AWS API "
                  "unreachable or denied, instance renamed, or the exporter down): backup settings go unwatched."),
        ]
    return rules


def rule_group(alert, instances: Sequence[tuple[str, int]]) -> list[dict]:
    rules = alerts(alert, instances)
    return [{"name": "new-api-rds-backups", "rules": rules}] if rules else []
