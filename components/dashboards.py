"""Grafana dashboards and datasources as code (grafana-foundation-sdk, pinned to the
Grafana line the stack deploys: ``grafana-foundation-sdk==1769699379!11.6.0`` builds
schema for Grafana 11.6, see ``images.GRAFANA``).

The seed's application dashboard (seed 000: request QPS total/2xx, P50/P95/P99, error %
with thresholds 1/5, active connections; ``now-1h``) is rebuilt on metrics that exist:
the entry's proxy for the RED metrics (New API has no ``/metrics``; ingress-nginx or
Envoy Gateway, :mod:`components.entry_metrics`), the recording rules of
:mod:`components.monitoring_config` for the SLO view, postgres_exporter and
redis_exporter for the datastores. Legacy ``graph``/``singlestat`` panels become
``timeseries``/``stat``; the 5 s refresh becomes 30 s (seed notes §5.6 #47).
"""

from __future__ import annotations

import json
import re

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.common import BigValueColorMode

from .monitoring_config import Slo, Targets, metric_names

PROMETHEUS_UID = "prometheus"
ALERTMANAGER_UID = "alertmanager"
ELASTICSEARCH_UID = "elasticsearch-logs"
LOG_INDEX_PATTERN = "new-api-logs-*"

_PROM = dm.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)


def _target(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)


def _ts(title: str, unit: str, queries: list[tuple[str, str]], pos: tuple[int, int, int, int]) -> timeseries.Panel:
    h, w, x, y = pos
    panel = (timeseries.Panel().title(title).datasource(_PROM).unit(unit).min(0)
             .grid_pos(dm.GridPos(h=h, w=w, x=x, y=y)))
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(_target(expr, legend, chr(ord("A") + i)))
    return panel


def _stat(title: str, unit: str, expr: str, legend: str, pos: tuple[int, int, int, int],
          thresholds: tuple[float, ...] = ()) -> stat.Panel:
    h, w, x, y = pos
    steps = [dm.Threshold(value=None, color="green")]
    steps += [dm.Threshold(value=v, color=c) for v, c in zip(thresholds, ("orange", "red"))]
    return (stat.Panel().title(title).datasource(_PROM).unit(unit)
            .color_mode(BigValueColorMode.BACKGROUND if thresholds else BigValueColorMode.VALUE)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
            .thresholds(dashboard.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps))
            .with_target(_target(expr, legend, "A"))
            .grid_pos(dm.GridPos(h=h, w=w, x=x, y=y)))


def base_dashboard(title: str, uid: str, tags: list[str]) -> dashboard.Dashboard:
    return (dashboard.Dashboard(title).uid(uid).tags(["new-api", *tags]).timezone("browser")
            .time("now-1h", "now").refresh("30s").readonly())


def application_dashboard(t: Targets) -> dashboard.Dashboard:
    """Seed 000 "New-API监控仪表板", on the entry's metrics (``Targets.red``)."""
    red, w = t.red, "$__rate_interval"
    req = red.request_rate(window=w)
    ok = red.request_rate(window=w, status_class="2")
    err = red.request_rate(window=w, errors=True)
    return (base_dashboard("New API", "new-api-app", ["monitoring"])
            .description(f"Request rate, success rate, latency and errors of New API, measured at the "
                         f"entry's proxy ({red.kind}; New API exposes no /metrics). Latency leaves out the "
                         "relay and playground (streamed generation time).")
            .with_panel(_ts("请求QPS (request rate)", "reqps", [(req, "总QPS (total)"), (ok, "成功QPS (2xx)")],
                            (8, 12, 0, 0)))
            .with_panel(_ts("响应时间 (response time, API without relay)", "s",
                            [(red.quantile(p, window=w), f"P{int(p * 100)}") for p in (0.50, 0.95, 0.99)],
                            (8, 12, 12, 0)))
            .with_panel(_stat("错误率 (5xx error rate)", "percent", f"{err} / {req} * 100", "错误率",
                              (4, 6, 0, 8), thresholds=(1, 5)))
            .with_panel(_stat("成功率 (success rate)", "percentunit", f"{ok} / {req}", "success", (4, 6, 6, 8)))
            .with_panel(_stat("活跃连接数 (active connections, entry proxy)", "short", red.connections,
                              "活跃连接", (4, 6, 12, 8)))
            .with_panel(_stat("Health probe (GET /api/status)", "percentunit",
                              'avg(avg_over_time(probe_success{job="new-api"}[$__rate_interval]))', "up",
                              (4, 6, 18, 8))))


def slo_dashboard(t: Targets, slo: Slo = Slo()) -> dashboard.Dashboard:
    """Seed 004 SLO view: success ratio and p95 against the L1-L4 lines, burn rates."""
    budget = 1 - slo.success_target
    return (base_dashboard("New API SLO", "new-api-slo", ["slo"])
            .description(f"SLO {slo.success_target:.1%} success within {int(slo.latency_seconds * 1000)} ms "
                         "(seed 004): L1 p95 >= 100 ms, L2 success < 99.9 %, L3 p95 >= 150 ms, "
                         "L4 success <= 99.0 % for 2m.")
            .with_panel(_ts("Success ratio (5m)", "percentunit",
                            [("newapi:slo_success:ratio_rate5m", "success")], (8, 12, 0, 0)))
            .with_panel(_ts("Latency percentiles", "s",
                            [("newapi:request_duration_seconds:p50_5m", "p50"),
                             ("newapi:request_duration_seconds:p95_5m", "p95"),
                             ("newapi:request_duration_seconds:p99_5m", "p99")], (8, 12, 12, 0)))
            .with_panel(_ts("Error-budget burn rate", "short",
                            [(f"newapi:slo_errors_per_request:ratio_rate{w} / {budget:g}", w)
                             for w in ("5m", "1h", "6h", "1d", "3d")], (8, 24, 0, 8)))
            .with_panel(_stat("Request rate", "reqps", "newapi:requests:rate5m", "req/s", (4, 8, 0, 16))))


def postgres_dashboard() -> dashboard.Dashboard:
    """Postgres on every backend: the ``newapi:postgres_*`` recording rules take
    postgres_exporter's ``pg_*`` or CloudNativePG's ``cnpg_*`` (components/platform_alerts.py)."""
    return (base_dashboard("New API Postgres", "new-api-postgres", ["postgres"])
            .with_panel(_stat("Postgres up", "short", "min(newapi:postgres_up)", "up", (4, 6, 0, 0), thresholds=()))
            .with_panel(_stat("Connections used", "percentunit", "max(newapi:postgres_connections:ratio)", "used",
                              (4, 6, 6, 0), thresholds=(0.7, 0.8)))
            .with_panel(_ts("Connections", "short",
                            [("newapi:postgres_connections:count", "{{instance}}"),
                             ("newapi:postgres_max_connections", "max {{instance}}")], (8, 12, 0, 4)))
            .with_panel(_ts("Transactions", "ops",
                            [("sum(newapi:postgres_xact_commit:rate5m)", "commit"),
                             ("sum(newapi:postgres_xact_rollback:rate5m)", "rollback"),
                             ("sum(newapi:postgres_deadlocks:rate5m)", "deadlocks")], (8, 12, 12, 4)))
            .with_panel(_ts("Cache hit ratio", "percentunit",
                            [("sum(newapi:postgres_blks_hit:rate5m) / (sum(newapi:postgres_blks_hit:rate5m) + "
                              "sum(newapi:postgres_blks_read:rate5m))", "hit ratio")], (8, 12, 0, 12)))
            .with_panel(_ts("Database size", "bytes",
                            [("sum by (datname) (newapi:postgres_database_size_bytes)", "{{datname}}")],
                            (8, 12, 12, 12))))


def redis_dashboard() -> dashboard.Dashboard:
    return (base_dashboard("New API Redis", "new-api-redis", ["redis"])
            .with_panel(_stat("Exporter up", "short", "min(redis_up)", "redis_up", (4, 6, 0, 0)))
            .with_panel(_stat("Memory used of maxmemory", "percentunit",
                              "max(redis_memory_used_bytes / (redis_memory_max_bytes > 0))", "used",
                              (4, 6, 6, 0), thresholds=(0.8, 0.9)))
            .with_panel(_ts("Memory", "bytes", [("sum(redis_memory_used_bytes)", "used"),
                                                ("sum(redis_memory_max_bytes)", "maxmemory")], (8, 12, 0, 4)))
            .with_panel(_ts("Commands", "ops",
                            [("sum(rate(redis_commands_processed_total[$__rate_interval]))", "commands")],
                            (8, 12, 12, 4)))
            .with_panel(_ts("Hit ratio", "percentunit",
                            [("sum(rate(redis_keyspace_hits_total[$__rate_interval])) / (sum(rate("
                              "redis_keyspace_hits_total[$__rate_interval])) + sum(rate("
                              "redis_keyspace_misses_total[$__rate_interval])))", "hits")], (8, 12, 0, 12)))
            .with_panel(_ts("Clients and evictions", "short",
                            [("sum(redis_connected_clients)", "clients"),
                             ("sum(rate(redis_evicted_keys_total[$__rate_interval]))", "evictions/s")],
                            (8, 12, 12, 12))))


def dashboards(t: Targets, slo: Slo = Slo()) -> dict[str, dict]:
    """File name -> dashboard JSON model (what the provisioning ConfigMap holds): the
    application's, and the platform's (:mod:`components.dashboards_platform`)."""
    from .dashboards_platform import platform_dashboards  # it builds on this module's helpers

    built = {
        "new-api.json": application_dashboard(t),
        "new-api-slo.json": slo_dashboard(t, slo),
        "new-api-postgres.json": postgres_dashboard(),
        "new-api-redis.json": redis_dashboard(),
        **platform_dashboards(t.stack_namespaces),
    }
    return {name: json.loads(json.dumps(b.build(), cls=JSONEncoder)) for name, b in built.items()}


def dashboards_json(t: Targets, slo: Slo = Slo()) -> dict[str, str]:
    return {name: json.dumps(model, indent=1, sort_keys=True) for name, model in dashboards(t, slo).items()}


#: A Prometheus query variable's classic functions (Grafana's Prometheus data source,
#: "Query variable"): the PromQL selector or expression inside them.
_VARIABLE_QUERY = re.compile(r"^\s*(?:label_values\((.+),\s*\w+\s*\)|query_result\((.+)\))\s*$", re.S)


def variable_exprs(model: dict) -> list[str]:
    """PromQL inside the dashboard's query variables (``label_values(node_uname_info,
    instance)`` reads ``node_uname_info``); ``label_values(label)`` reads no metric."""
    out = []
    for var in (model.get("templating") or {}).get("list", []) or []:
        if var.get("type") != "query":
            continue
        query = var.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query or ""
        m = _VARIABLE_QUERY.match(query)
        if m:
            out.append(m.group(1) or m.group(2))
        elif query and not query.lstrip().startswith(("label_values(", "label_names(", "metrics(")):
            out.append(query)
    return out


def dashboard_exprs(model: dict) -> list[str]:
    """Every PromQL expression Grafana runs for the dashboard: panel targets (rows'
    nested panels included) and query variables."""
    out = variable_exprs(model)
    for panel in model.get("panels", []):
        for target in panel.get("targets", []) or []:
            if target.get("expr"):
                out.append(target["expr"])
        for inner in panel.get("panels", []) or []:
            out.extend(t["expr"] for t in inner.get("targets", []) or [] if t.get("expr"))
    return out


def dashboard_metric_names(models: dict[str, dict]) -> set[str]:
    return {m for model in models.values() for e in dashboard_exprs(model) for m in metric_names(e)}


def provider_yaml() -> dict:
    """Dashboard provisioning provider (file-based, read-only in the UI)."""
    return {"apiVersion": 1, "providers": [{
        "name": "new-api", "orgId": 1, "folder": "New API", "type": "file",
        "disableDeletion": True, "allowUiUpdates": False, "updateIntervalSeconds": 60,
        "options": {"path": "/var/lib/grafana/dashboards/new-api", "foldersFromFilesStructure": False},
    }]}


def datasources(prometheus_url: str, alertmanager_url: str, elasticsearch_url: str | None,
                elasticsearch_user: str | None = None) -> dict:
    """Datasource provisioning (seed notes §5.6 #49: Prometheus default, Alertmanager,
    Elasticsearch ``new-api-logs-*``). The Elasticsearch password is read from the pod's
    environment (``$__env{...}``), which comes from a Secret; it is never in this file."""
    sources = [
        {"name": "Prometheus", "uid": PROMETHEUS_UID, "type": "prometheus", "access": "proxy",
         "url": prometheus_url, "isDefault": True, "editable": False,
         "jsonData": {"httpMethod": "POST", "timeInterval": "15s"}},
        {"name": "Alertmanager", "uid": ALERTMANAGER_UID, "type": "alertmanager", "access": "proxy",
         "url": alertmanager_url, "editable": False,
         "jsonData": {"implementation": "prometheus", "handleGrafanaManagedAlerts": False}},
    ]
    if elasticsearch_url:
        es = {"name": "New API logs", "uid": ELASTICSEARCH_UID, "type": "elasticsearch", "access": "proxy",
              "url": elasticsearch_url, "editable": False,
              "jsonData": {"index": LOG_INDEX_PATTERN, "timeField": "@timestamp", "logMessageField": "message",
                           "logLevelField": "level", "maxConcurrentShardRequests": 5}}
        if elasticsearch_user:
            es.update({"basicAuth": True, "basicAuthUser": elasticsearch_user,
                       "secureJsonData": {"basicAuthPassword": "$__env{GF_ELASTICSEARCH_PASSWORD}"}})
        sources.append(es)
    return {"apiVersion": 1, "datasources": sources}
