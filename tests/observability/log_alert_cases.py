"""promtool cases of the log and Elasticsearch-snapshot alerts (components/logging_alerts.py),
on series labelled exactly as their exporters emit them plus the scrape job's target
labels: kuskoman/logstash-exporter v1.9.1 (``collectors/nodestats/pipeline_subcollector.go``:
``logstash_stats_pipeline_plugin_events_out{pipeline, plugin_type, plugin, plugin_id}``,
counters; ``logstash_stats_pipeline_up{pipeline}``) and prometheus-community
elasticsearch_exporter v1.9.0 ``--collector.snapshots`` (``collector/snapshots.go``:
``..._latest_snapshot_timestamp_seconds{repository}``, 0 without a successful snapshot;
``..._snapshot_end_time_timestamp{repository, state, version}`` of the last snapshot)."""

TARGET = 'job="logstash-exporter",namespace="logging",service="logstash",node="n1"'


def plugin(plugin_id: str, values: str, pod: str = "logstash-7d9f-abcde") -> dict:
    return {"series": f'logstash_stats_pipeline_plugin_events_out{{pipeline="new-api",plugin_type="filter",'
                      f'plugin="mutate",plugin_id="{plugin_id}",{TARGET},kubernetes_pod="{pod}",'
                      f'instance="10.42.0.7:9198"}}', "values": values}


def up(values: str, pod: str = "logstash-7d9f-abcde") -> dict:
    return {"series": f'logstash_stats_pipeline_up{{pipeline="new-api",{TARGET},kubernetes_pod="{pod}",'
                      f'instance="10.42.0.7:9198"}}', "values": values}


ES = 'job="elasticsearch-exporter",namespace="logging",service="elasticsearch",cluster="new-api-logs"'


def latest(pod: int, values: str) -> dict:
    return {"series": f'elasticsearch_snapshot_stats_latest_snapshot_timestamp_seconds{{repository="backups",{ES},'
                      f'kubernetes_pod="elasticsearch-{pod}"}}', "values": values}


def last(state: str, values: str, pod: int = 0) -> dict:
    return {"series": f'elasticsearch_snapshot_stats_snapshot_end_time_timestamp{{repository="backups",'
                      f'state="{state}",version="8.17.4",{ES},kubernetes_pod="elasticsearch-{pod}"}}',
            "values": values}


# Two Logstash replicas share the lines. Per minute: 600 lines a pod.
CASES = {
    # 8 % of the lines are errors; silent: 2 % (and a stable pipeline)
    "HighErrorLogRate": ("1m", "10m",
                         [plugin("new_api_log_lines", "0+600x15"), plugin("new_api_log_errors", "0+48x15"),
                          plugin("new_api_log_lines", "0+600x15", "logstash-7d9f-fghij"),
                          plugin("new_api_log_errors", "0+48x15", "logstash-7d9f-fghij")],
                         [plugin("new_api_log_lines", "0+600x15"), plugin("new_api_log_errors", "0+12x15"),
                          plugin("new_api_log_lines", "0+600x15", "logstash-7d9f-fghij"),
                          plugin("new_api_log_errors", "0+12x15", "logstash-7d9f-fghij")]),
    # 30 errors in a minute across the pods; silent: 8 a minute (16 % would page only as a ratio)
    "CriticalErrorSpike": ("1m", "6m",
                           [plugin("new_api_log_lines", "0+600x10"), plugin("new_api_log_errors", "0+15x10"),
                            plugin("new_api_log_errors", "0+15x10", "logstash-7d9f-fghij")],
                           [plugin("new_api_log_lines", "0+600x10"), plugin("new_api_log_errors", "0+4x10"),
                            plugin("new_api_log_errors", "0+4x10", "logstash-7d9f-fghij")]),
    # 2 x 36 000 lines a minute = 1 200/s; silent: 2 x 24 000 = 800/s
    "LogVolumeHigh": ("1m", "15m",
                      [plugin("new_api_log_lines", "0+36000x20"),
                       plugin("new_api_log_lines", "0+36000x20", "logstash-7d9f-fghij")],
                      [plugin("new_api_log_lines", "0+24000x20"),
                       plugin("new_api_log_lines", "0+24000x20", "logstash-7d9f-fghij")]),
    # the exporter answers but no pipeline "new-api" (it failed to start: issue 12 defect 1);
    # silent: the pipeline runs and counts
    "LogPipelineDown": ("1m", "15m",
                        [{"series": f'up{{{TARGET},kubernetes_pod="logstash-7d9f-abcde",instance="10.42.0.7:9198"}}',
                          "values": "1x20"}],
                        [plugin("new_api_log_lines", "0+600x20"), up("1x20")]),
    # the last snapshot (three exporters report it) failed; silent: it succeeded
    "ElasticsearchSnapshotFailed": ("1m", "30m",
                                    [last("FAILED", "1764466200x40", i) for i in range(3)],
                                    [last("SUCCESS", "1764466200x40", i) for i in range(3)]),
    # evaluated 1 650 minutes (27.5 h) after the epoch: no successful snapshot at all (the
    # exporter reports 0) or one from minute 1 (27.5 h old) is stale; silent: the nightly
    # snapshot of 25 h after the epoch (2.5 h old), reported by two exporters
    "ElasticsearchSnapshotStale": ("2m", "1650m",
                                   [latest(0, "0x830"), latest(1, "60x830")],
                                   [latest(0, "90000x830"), latest(1, "90000x830")]),
}
