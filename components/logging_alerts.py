"""Alerts on New API's logs and on Elasticsearch's backups (issue 14; seed 000 rules 9-11).

**Design: Logstash counts, Prometheus alerts.** Seed 000's log rules read a
``log_entries_total{level}`` that nothing produces (SEED-NOTES §5.6 #45). Here Logstash
itself counts New API's lines as it parses them: after grok and the level mapping, every
New API event passes a no-op ``mutate`` with a fixed ``id`` (``LOG_LINES_ID``), and every
error or fatal line a second one (``LOG_ERRORS_ID``). Logstash's node-stats API reports
each plugin's ``events.out`` by that id, and the Logstash exporter sidecar
(kuskoman/logstash-exporter, ``images.LOGSTASH_EXPORTER``, maintained) exports it as
``logstash_stats_pipeline_plugin_events_out{pipeline, plugin_type, plugin, plugin_id}``
(``collectors/nodestats/pipeline_subcollector.go``). Prometheus scrapes it and the rules
below route through the stack's Alertmanager like every other alert. No query load on
Elasticsearch, no unmaintained ES-query exporter, and the count is taken before indexing,
so an Elasticsearch outage does not hide an error spike.

**Snapshots.** The Elasticsearch exporter sidecar runs with ``--collector.snapshots``
(prometheus-community/elasticsearch_exporter ``collector/snapshots.go``): the start time
of the latest SUCCESS/PARTIAL snapshot per repository (0 when there is none) and, for the
repository's last snapshot, gauges labelled with its ``state``. Its user needs only the
``monitor_snapshot`` cluster privilege (``logging_config.roles``).
"""

from __future__ import annotations

#: Logstash's monitoring API (``api.http.port``) and the exporter sidecar's port.
LOGSTASH_EXPORTER_PORT = 9198
PIPELINE_ID = "new-api"
#: ``id`` of the counting no-op filters in the pipeline (``logging_config.logstash_pipeline``).
LOG_LINES_ID = "new_api_log_lines"
LOG_ERRORS_ID = "new_api_log_errors"
#: Levels counted as errors (``[ERR]`` and ``[FATAL]`` lines, lowercased by the pipeline).
ERROR_LEVELS = ("error", "fatal")
SNAPSHOT_REPOSITORY = "backups"

PLUGIN_EVENTS = "logstash_stats_pipeline_plugin_events_out"
EXPORTER_METRICS = {
    "logstash-exporter": frozenset({PLUGIN_EVENTS, "logstash_stats_pipeline_up"}),
    "elasticsearch-exporter": frozenset({
        "elasticsearch_snapshot_stats_latest_snapshot_timestamp_seconds",
        "elasticsearch_snapshot_stats_snapshot_end_time_timestamp",
    }),
}

#: Seed 000 values (SEED-NOTES §2 rules 9-11; §4 #19: the log-based HighErrorRate renamed).
ERROR_RATIO_PERCENT = 5
ERROR_SPIKE_PER_MINUTE = 10
LOG_VOLUME_PER_SECOND = 1000
#: A nightly snapshot (SLM at 01:30) older than this is missed (one day plus slack).
SNAPSHOT_MAX_AGE_HOURS = 26


def _counter(plugin_id: str) -> str:
    return f'{PLUGIN_EVENTS}{{pipeline="{PIPELINE_ID}",plugin_type="filter",plugin_id="{plugin_id}"}}'


def _alert(name: str, expr: str, for_: str, severity: str, service: str, summary: str, description: str) -> dict:
    from .monitoring_config import _alert as alert  # one rule shape for every alert

    return alert(name, expr, for_, severity, service, summary, description)


def log_alerts() -> list[dict]:
    """Seed 000 rules 9-11 on Logstash's counts (summed over the Logstash replicas), plus
    the pipeline itself: a pipeline that does not run counts nothing."""
    errors, lines = _counter(LOG_ERRORS_ID), _counter(LOG_LINES_ID)
    return [
        _alert("HighErrorLogRate",
               f"sum(rate({errors}[5m])) / sum(rate({lines}[5m])) * 100 > {ERROR_RATIO_PERCENT}",
               "2m", "warning", "new-api", "Application error rate too high (logs)",
               "{{ $value | printf \"%.1f\" }}% of New API's log lines over the last 5 minutes are "
               "[ERR] or [FATAL] lines."),
        _alert("CriticalErrorSpike",
               f"sum(increase({errors}[1m])) > {ERROR_SPIKE_PER_MINUTE}",
               "1m", "critical", "new-api", "Error log spike",
               "New API wrote {{ $value | printf \"%.0f\" }} [ERR]/[FATAL] lines within one minute."),
        _alert("LogVolumeHigh",
               f"sum(rate({lines}[5m])) > {LOG_VOLUME_PER_SECOND}",
               "5m", "warning", "new-api", "Log volume too high",
               "New API writes {{ $value | printf \"%.0f\" }} log lines per second."),
        _alert("LogPipelineDown",
               f'absent({PLUGIN_EVENTS}{{pipeline="{PIPELINE_ID}",plugin_id="{LOG_LINES_ID}"}}) '
               f'or min(logstash_stats_pipeline_up{{pipeline="{PIPELINE_ID}"}}) == 0',
               "10m", "warning", "logstash", "New API's log pipeline is not running",
               f"No Logstash reports the {PIPELINE_ID} pipeline (or its last reload failed): logs are "
               "not parsed or indexed and the log alerts above cannot fire."),
    ]


def snapshot_alerts() -> list[dict]:
    """Elasticsearch's backups: the last snapshot failed, or none succeeded for a day."""
    latest = f'elasticsearch_snapshot_stats_latest_snapshot_timestamp_seconds{{repository="{SNAPSHOT_REPOSITORY}"}}'
    last = f'elasticsearch_snapshot_stats_snapshot_end_time_timestamp{{repository="{SNAPSHOT_REPOSITORY}"}}'
    return [
        _alert("ElasticsearchSnapshotFailed",
               f'count by (repository) ({last[:-1]},state=~"FAILED|PARTIAL|INCOMPATIBLE"}}) > 0',
               "15m", "warning", "elasticsearch", "The last Elasticsearch snapshot failed",
               "The last snapshot in repository {{ $labels.repository }} did not complete "
               "(FAILED or PARTIAL): the nightly log backup is missing or incomplete."),
        _alert("ElasticsearchSnapshotStale",
               f"time() - max by (repository) ({latest}) > {SNAPSHOT_MAX_AGE_HOURS} * 3600",
               "30m", "warning", "elasticsearch", "No recent Elasticsearch snapshot",
               f"No snapshot of repository {{{{ $labels.repository }}}} has succeeded for more than "
               f"{SNAPSHOT_MAX_AGE_HOURS} hours."),
    ]


def rule_group() -> dict:
    return {"name": "new-api-logs", "rules": log_alerts() + snapshot_alerts()}
