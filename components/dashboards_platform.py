"""Platform dashboards (issue 14): Kubernetes capacity and nodes, built with the same
grafana-foundation-sdk as :mod:`components.dashboards` and provisioned with them.

**Nodes.** Seeds 001:307 and 002:303 say to import Grafana.com dashboard 1860 ("Node
Exporter Full") for CPU, memory and disk. It is not vendored as JSON: the Nodes dashboard
rebuilds the panels an operator uses from it (its "Quick CPU / Mem / Disk" and "Basic CPU /
Mem / Net / Disk" rows: CPU busy, load, RAM used, root filesystem, CPU by mode, memory,
filesystem space and fill, disk throughput/IOPS/utilisation, network traffic and errors)
with its node variable (the ``instance`` label of ``node_uname_info``, as 1860 does), so
every query is checked like the rest and reads only what the node-exporter job keeps.
Series and labels: node_exporter ``collector/`` (``cpu``, ``meminfo``, ``loadavg``,
``filesystem_common.go``: ``device``, ``mountpoint``, ``fstype``; ``diskstats_common.go``:
``device``; ``netdev_common.go``: ``device``, the legacy ``*_errs_total``/``*_drop_total``
names; ``uname.go``; ``stat_linux.go``: ``node_boot_time_seconds``; ``time.go``).

**Kubernetes capacity.** Pods by workload and phase, restarts and OOM kills, HPA
replicas, CPU usage against requests and limits and CFS throttling, memory working set
against limits, PVC usage and time until full, for the stack's namespaces. Series:
kube-state-metrics ``docs/metrics/workload/pod-metrics.md`` (``kube_pod_status_phase``,
``kube_pod_owner``, ``kube_pod_container_resource_requests``/``_limits`` with ``resource``,
``kube_pod_container_status_last_terminated_reason``), ``replicaset-metrics.md``
(``kube_replicaset_owner``), ``horizontalpodautoscaler-metrics.md``; the kubelet's cAdvisor
(``container_*`` with ``namespace``, ``pod``, ``container``) and volume stats
(``kubelet_volume_stats_*`` with ``namespace``, ``persistentvolumeclaim``).

Thresholds are the alerts' (one source): :mod:`components.platform_alerts` for containers
and volumes, :mod:`components.monitoring_config` for the seed's node alerts. "Time until
full" is the alerts' ``predict_linear`` turned into a duration: the same least-squares fit
over the same window reaches zero at ``predict_linear(v[w], 0) / -deriv(v[w])``, so it is
below the horizon exactly when ``predict_linear(v[w], horizon) < 0``.
"""

from __future__ import annotations

from typing import Optional, Sequence

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from . import monitoring_config as mc
from . import platform_alerts as pa
from .dashboards import PROMETHEUS_UID, base_dashboard

_PROM = dm.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
RATE = "$__rate_interval"
#: Template variables (Grafana replaces ``$name`` in every query).
NAMESPACE_VAR = "namespace"
NODE_VAR = "node"
#: Virtual and per-pod interfaces (CNI veth/ENI/bridges): the node's traffic is on the rest.
NET_DEVICES_IGNORED = "lo|veth.+|eni.+|cali.+|cilium.+|lxc.+|cni.+|flannel.+|vxlan.+|tunl.+|docker.+|kube-ipvs.+"
DAY = 86400

Steps = Sequence[tuple[Optional[float], str]]


def _thresholds(steps: Steps) -> dashboard.ThresholdsConfig:
    return (dashboard.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE)
            .steps([dm.Threshold(value=v, color=c) for v, c in steps]))


def high_is_bad(*limits: float) -> Steps:
    """Green, then orange/red from each limit up (Grafana: a step applies from its value)."""
    return [(None, "green"), *zip(limits, ("orange", "red") if len(limits) > 1 else ("red",))]


def _ts(title: str, unit: str, queries: Sequence[tuple[str, str]], *, w: int = 12, h: int = 8,
        steps: Steps = (), stack: bool = False, description: str = "") -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).datasource(_PROM).unit(unit).span(w).height(h)
             .legend(common_builders.VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE)
                     .placement(cm.LegendPlacement.BOTTOM).show_legend(True).calcs(["lastNotNull", "max"])))
    if description:
        panel = panel.description(description)
    if unit != "s":
        panel = panel.min(0)
    if steps:
        panel = (panel.thresholds(_thresholds(steps))
                 .thresholds_style(common_builders.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED)))
    if stack:
        panel = panel.stacking(common_builders.StackingConfig().mode(cm.StackingMode.NORMAL)).fill_opacity(30)
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i)))
    return panel


def _stat(title: str, unit: str, expr: str, legend: str, *, steps: Steps = (), w: int = 4) -> stat.Panel:
    return (stat.Panel().title(title).datasource(_PROM).unit(unit).span(w).height(4)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
            .thresholds(_thresholds(steps or [(None, "blue")]))
            .color_mode(cm.BigValueColorMode.BACKGROUND if steps else cm.BigValueColorMode.VALUE)
            .with_target(prometheus.Dataquery().expr(expr).legend_format(legend).ref_id("A")))


def seconds_until_empty(selector: str, window: str = pa.VOLUME_TREND_WINDOW) -> str:
    """Seconds until the gauge ``selector`` reaches zero on its ``window`` trend (only
    falling series): the ``predict_linear`` of the volume alerts as a duration."""
    return f"predict_linear({selector}[{window}], 0) / -(deriv({selector}[{window}]) < 0)"


# --------------------------------------------------------------------------- capacity

def pod_workload(ns: str) -> str:
    """One series per pod naming its ``workload``: a ReplicaSet's pods belong to the
    ReplicaSet's owner (the Deployment, via ``kube_replicaset_owner``), other pods to
    their owner (StatefulSet, DaemonSet, Job)."""
    via_rs = (f'label_replace(kube_pod_owner{{{ns},owner_kind="ReplicaSet"}}, "replicaset", "$1", "owner_name", "(.*)")'
              f' * on (namespace, replicaset) group_left (workload) '
              f'label_replace(kube_replicaset_owner{{{ns}}}, "workload", "$1", "owner_name", "(.*)")')
    direct = f'label_replace(kube_pod_owner{{{ns},owner_kind!="ReplicaSet"}}, "workload", "$1", "owner_name", "(.*)")'
    return f"max by (namespace, pod, workload) ({via_rs} or {direct})"


def capacity_dashboard(namespaces: Sequence[str]) -> dashboard.Dashboard:
    """Kubernetes capacity of the stack's ``namespaces``: the view behind the container,
    workload and volume alerts of :mod:`components.platform_alerts`."""
    ns = f'namespace=~"${NAMESPACE_VAR}"'
    by_workload = f"on (namespace, pod) group_left (workload) {pod_workload(ns)}"
    per_c = "by (namespace, pod, container)"
    c_legend = "{{namespace}}/{{pod}} {{container}}"
    w_legend = "{{namespace}}/{{workload}}"
    cpu = f'rate(container_cpu_usage_seconds_total{{{ns},container!=""}}[{RATE}])'
    working_set = f'max {per_c} (container_memory_working_set_bytes{{{ns},container!=""}})'

    def resource(kind: str, res: str) -> str:
        return f'kube_pod_container_resource_{kind}{{{ns},resource="{res}"}}'

    def per_workload(expr: str) -> str:
        return f"sum by (namespace, workload) ({expr} * {by_workload})"

    def against_resources(title: str, unit: str, used: str, used_legend: str, res: str) -> timeseries.Panel:
        return _ts(title, unit, [(per_workload(used), f"{w_legend} {used_legend}"),
                                 (per_workload(resource("requests", res)), w_legend + " requested"),
                                 (per_workload(resource("limits", res)), w_legend + " limit")], w=8)

    def oom_kills(window: str) -> str:
        return (f"increase(kube_pod_container_status_restarts_total{{{ns}}}[{window}]) * on (namespace, pod, container) "
                f'group_left () (kube_pod_container_status_last_terminated_reason{{{ns},reason="OOMKilled"}} == 1)')

    hpa = "kube_horizontalpodautoscaler"
    hpa_on = "on (namespace, horizontalpodautoscaler)"
    avail = f"kubelet_volume_stats_available_bytes{{{ns}}}"
    horizon = pa.VOLUME_FULL_HORIZON_DAYS
    all_ns = sorted(set(namespaces))
    variable = (dashboard.CustomVariable(NAMESPACE_VAR).label("Namespace").values(",".join(all_ns))
                .multi(True).include_all(True).all_value("|".join(all_ns))
                .current(dm.VariableOption(text="All", value="$__all", selected=True)))
    return (base_dashboard("New API capacity", "new-api-capacity", ["kubernetes", "capacity"])
            .time("now-6h", "now")
            .description("Pods, autoscaling, CPU, memory and volumes of the stack's namespaces "
                         f"({', '.join(all_ns)}); thresholds are the alerts'.")
            .with_variable(variable)
            .with_row(dashboard.Row("Pods"))
            .with_panel(_stat("Running pods", "short", f'sum(kube_pod_status_phase{{{ns},phase="Running"}})', "running"))
            .with_panel(_stat("Pending pods", "short", f'sum(kube_pod_status_phase{{{ns},phase="Pending"}})', "pending",
                              steps=high_is_bad(1)))
            .with_panel(_stat("Container restarts (1h)", "short",
                              f"round(sum(increase(kube_pod_container_status_restarts_total{{{ns}}}[1h])))", "restarts",
                              steps=high_is_bad(1)))
            .with_panel(_stat("OOM kills (24h)", "short", f"round(sum({oom_kills('24h')}) or vector(0))", "OOM kills",
                              steps=high_is_bad(1)))
            .with_panel(_stat("HPA replicas of maximum", "percentunit",
                              f"{hpa}_status_current_replicas{{{ns}}} / {hpa_on} {hpa}_spec_max_replicas{{{ns}}}",
                              "{{horizontalpodautoscaler}}", steps=high_is_bad(1), w=8))
            .with_panel(_ts("Running pods by workload", "short",
                            [(per_workload(f'kube_pod_status_phase{{{ns},phase="Running"}}'), w_legend)], w=8))
            .with_panel(_ts("Pods not running by workload", "short",
                            [(f"sum by (namespace, workload, phase) (kube_pod_status_phase{{{ns},phase=~\"Pending|Failed|Unknown\"}}"
                              f" * {by_workload}) > 0", w_legend + " {{phase}}")], w=8,
                            description="Pending: not schedulable (no node has the requested CPU/memory) or "
                                        "waiting for a volume or an image."))
            .with_panel(_ts("Container restarts by workload", "short",
                            [(per_workload(f"increase(kube_pod_container_status_restarts_total{{{ns}}}[{RATE}])"),
                              w_legend)], w=8))
            .with_row(dashboard.Row("Autoscaling"))
            .with_panel(_ts("HPA replicas", "short",
                            [(f"{hpa}_status_current_replicas{{{ns}}}", "{{horizontalpodautoscaler}} current"),
                             (f"{hpa}_status_desired_replicas{{{ns}}}", "{{horizontalpodautoscaler}} desired"),
                             (f"{hpa}_spec_min_replicas{{{ns}}}", "{{horizontalpodautoscaler}} min"),
                             (f"{hpa}_spec_max_replicas{{{ns}}}", "{{horizontalpodautoscaler}} max")], w=24,
                            description="At max for 15 minutes pages (NewApiHpaMaxedOut): the HPA cannot add capacity."))
            .with_row(dashboard.Row("CPU"))
            .with_panel(against_resources("CPU by workload: usage, requests, limits", "short", cpu, "used", "cpu"))
            .with_panel(_ts("CPU usage of request", "percentunit",
                            [(f"sum {per_c} ({cpu}) / sum {per_c} ({resource('requests', 'cpu')})", c_legend)], w=8,
                            description="Above 100 %: the container uses CPU the scheduler did not reserve for it."))
            .with_panel(_ts("CPU throttling (share of CFS periods)", "percentunit",
                            [(f'sum {per_c} (rate(container_cpu_cfs_throttled_periods_total{{{ns},container!=""}}[{RATE}]))'
                              f' / sum {per_c} (rate(container_cpu_cfs_periods_total{{{ns},container!=""}}[{RATE}]))',
                              c_legend)], w=8, steps=high_is_bad(pa.CPU_THROTTLED_RATIO),
                            description="The CPU limit stops the container in this share of its 100 ms periods "
                                        "(NewApiContainerCPUThrottled on the app)."))
            .with_row(dashboard.Row("Memory"))
            .with_panel(against_resources("Memory by workload: working set, requests, limits", "bytes", working_set,
                                          "working set", "memory"))
            .with_panel(_ts("Memory working set of limit", "percentunit",
                            [(f"{working_set} / on (namespace, pod, container) max {per_c} "
                              f"({resource('limits', 'memory')})", c_legend)], w=8,
                            steps=high_is_bad(pa.MEMORY_NEAR_LIMIT_RATIO),
                            description="At 100 % the kernel kills the container (OOMKilled)."))
            .with_panel(_ts("OOM kills", "short", [(f"sum {per_c} ({oom_kills(RATE)})", c_legend)], w=8))
            .with_row(dashboard.Row("Volumes"))
            .with_panel(_ts("Volume used", "percentunit",
                            [(f"1 - {pa.volume_free_ratio(ns)}", "{{namespace}}/{{persistentvolumeclaim}}")], w=12,
                            steps=high_is_bad(round(1 - pa.VOLUME_FREE_PREDICTED_RATIO, 6),
                                              round(1 - pa.VOLUME_FREE_CRITICAL_RATIO, 6))))
            .with_panel(_ts(f"Time until volume full ({pa.VOLUME_TREND_WINDOW} trend)", "s",
                            [(seconds_until_empty(avail), "{{namespace}}/{{persistentvolumeclaim}}")], w=12,
                            steps=[(None, "red"), (horizon * DAY, "green")],
                            description=f"Only falling volumes. Below {horizon} days (and under "
                                        f"{1 - pa.VOLUME_FREE_PREDICTED_RATIO:.0%} used) NewApiPersistentVolumeFillingUpPredicted "
                                        "fires.")))


# --------------------------------------------------------------------------- nodes

def nodes_dashboard() -> dashboard.Dashboard:
    """The panels of Node Exporter Full an operator uses, per node (``instance``)."""
    n = f'instance=~"${NODE_VAR}"'
    idle = f'node_cpu_seconds_total{{{n},mode="idle"}}'
    cores = f"count by (instance) ({idle})"
    fs = f'{n},fstype!~"{mc.FSTYPE_IGNORED}"'
    fs_used = f"100 * (1 - node_filesystem_avail_bytes{{{fs}}} / node_filesystem_size_bytes{{{fs}}})"
    mem_used = f"100 * (1 - node_memory_MemAvailable_bytes{{{n}}} / node_memory_MemTotal_bytes{{{n}}})"
    busy = f"100 - avg by (instance) (rate({idle}[{RATE}])) * 100"
    net = f'{n},device!~"{NET_DEVICES_IGNORED}"'

    def per_device(metric: str, what: str, labels: str = n) -> tuple[str, str]:
        return f"rate({metric}{{{labels}}}[{RATE}])", "{{instance}} {{device}} " + what

    variable = (dashboard.QueryVariable(NODE_VAR).label("Node").datasource(_PROM)
                .query("label_values(node_uname_info, instance)")
                .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
                .multi(True).include_all(True))
    return (base_dashboard("New API nodes", "new-api-nodes", ["nodes"])
            .description("Node Exporter Full's everyday panels (seeds 001/002: dashboard 1860) for the cluster's "
                         "nodes; thresholds are the seed's node alerts'.")
            .with_variable(variable)
            .with_row(dashboard.Row("Overview"))
            .with_panel(_stat("CPU busy", "percent", busy, "{{instance}}", steps=high_is_bad(mc.NODE_CPU_BUSY_PERCENT)))
            .with_panel(_stat("Load (5m) per core", "percentunit",
                              f"node_load5{{{n}}} / on (instance) {cores}", "{{instance}}"))
            .with_panel(_stat("RAM used", "percent", mem_used, "{{instance}}",
                              steps=high_is_bad(mc.NODE_MEMORY_USED_PERCENT)))
            .with_panel(_stat("Root filesystem used", "percent",
                              f'100 * (1 - node_filesystem_avail_bytes{{{fs},mountpoint="/"}} / '
                              f'node_filesystem_size_bytes{{{fs},mountpoint="/"}})', "{{instance}}",
                              steps=high_is_bad(mc.NODE_DISK_USED_PERCENT)))
            .with_panel(_stat("CPU cores", "short", cores, "{{instance}}", w=2))
            .with_panel(_stat("RAM", "bytes", f"node_memory_MemTotal_bytes{{{n}}}", "{{instance}}", w=3))
            .with_panel(_stat("Uptime", "s", f"node_time_seconds{{{n}}} - node_boot_time_seconds{{{n}}}",
                              "{{instance}}", w=3))
            .with_row(dashboard.Row("CPU and memory"))
            .with_panel(_ts("CPU busy by mode", "percent",
                            [(f'100 * sum by (instance, mode) (rate(node_cpu_seconds_total{{{n},mode!="idle"}}[{RATE}]))'
                              f" / on (instance) group_left () {cores}", "{{instance}} {{mode}}")],
                            stack=True, steps=high_is_bad(mc.NODE_CPU_BUSY_PERCENT), w=8))
            .with_panel(_ts("Load average", "short",
                            [(f"node_load1{{{n}}}", "{{instance}} 1m"), (f"node_load5{{{n}}}", "{{instance}} 5m"),
                             (f"node_load15{{{n}}}", "{{instance}} 15m"), (cores, "{{instance}} cores")], w=8))
            .with_panel(_ts("Memory", "bytes",
                            [(f"node_memory_MemTotal_bytes{{{n}}}", "{{instance}} total"),
                             (f"node_memory_MemTotal_bytes{{{n}}} - node_memory_MemAvailable_bytes{{{n}}}",
                              "{{instance}} used"),
                             (f"node_memory_MemAvailable_bytes{{{n}}}", "{{instance}} available")], w=8))
            .with_panel(_ts("Memory used", "percent", [(mem_used, "{{instance}}")], w=24, h=6,
                            steps=high_is_bad(mc.NODE_MEMORY_USED_PERCENT)))
            .with_row(dashboard.Row("Disk"))
            .with_panel(_ts("Filesystem used", "percent", [(fs_used, "{{instance}} {{mountpoint}}")],
                            steps=high_is_bad(mc.NODE_DISK_USED_PERCENT)))
            .with_panel(_ts(f"Time until filesystem full ({pa.VOLUME_TREND_WINDOW} trend)", "s",
                            [(seconds_until_empty(f"node_filesystem_avail_bytes{{{fs}}}"), "{{instance}} {{mountpoint}}")],
                            steps=[(None, "red"), (pa.VOLUME_FULL_HORIZON_DAYS * DAY, "green")],
                            description="Only filesystems that are filling; the horizon is the volume alerts'."))
            .with_panel(_ts("Disk throughput", "Bps",
                            [per_device("node_disk_read_bytes_total", "read"),
                             per_device("node_disk_written_bytes_total", "written")], w=8))
            .with_panel(_ts("Disk IOPS", "iops",
                            [per_device("node_disk_reads_completed_total", "reads"),
                             per_device("node_disk_writes_completed_total", "writes")], w=8))
            .with_panel(_ts("Disk busy (I/O time)", "percentunit",
                            [per_device("node_disk_io_time_seconds_total", "busy")], w=8))
            .with_row(dashboard.Row("Network"))
            .with_panel(_ts("Network traffic", "Bps",
                            [per_device("node_network_receive_bytes_total", "received", net),
                             per_device("node_network_transmit_bytes_total", "sent", net)]))
            .with_panel(_ts("Network errors and drops", "pps",
                            [per_device("node_network_receive_errs_total", "receive errors", net),
                             per_device("node_network_transmit_errs_total", "transmit errors", net),
                             per_device("node_network_receive_drop_total", "receive drops", net),
                             per_device("node_network_transmit_drop_total", "transmit drops", net)])))


def platform_dashboards(namespaces: Sequence[str]) -> dict[str, dashboard.Dashboard]:
    """File name -> builder, added to the provisioning ConfigMap by :func:`dashboards.dashboards`."""
    return {"new-api-capacity.json": capacity_dashboard(namespaces), "new-api-nodes.json": nodes_dashboard()}
