"""The Kubernetes capacity and Nodes dashboards (components/dashboards_platform.py), and
every provisioned dashboard's queries (the application, SLO, Postgres and Redis ones too),
checked the way Grafana and Prometheus read them.

What is read: the dashboard JSON in the ``grafana-dashboards`` ConfigMap (the files
Grafana's file provisioner loads), the ``prometheus-config``/``prometheus-rules``
ConfigMaps in standalone mode, and the PodMonitors/ServiceMonitors/PrometheusRule in
operator mode, where kube-prometheus-stack's own jobs are assumed (README "Operator mode";
``monitoring_config.OPERATOR_PREREQUISITE_JOBS``).

The consumers' rules applied here:
- Grafana replaces ``$var`` in a query before sending it (docs "Variable syntax"); a
  multi-value Prometheus variable becomes ``(a|b)`` of regex-escaped values, a custom
  "All" value is used as written (docs "Formatting multi-value variables");
  ``$__rate_interval`` is at least four times the data source's scrape interval (15 s here:
  ``1m``; docs "Prometheus template variables"); a query variable's
  ``label_values(metric, label)`` reads ``metric`` through /api/v1/series.
- Prometheus keeps a scraped series only if the job's ``metric_relabel_configs`` keep it
  (docs "relabel_config"; the regex is fully anchored).
- kube-prometheus-stack (chart 88.5.3, ``values.yaml``): its kubelet ServiceMonitor
  scrapes ``/metrics`` and ``/metrics/cadvisor`` as job ``kubelet`` with honorLabels and
  ``kubelet.serviceMonitor.cAdvisorMetricRelabelings`` (test_operator_kubelet.py lists them);
  node-exporter (job ``node-exporter``) and kube-state-metrics have no metric relabelings.
- Series are labelled as the exporters emit them: kube-state-metrics
  ``docs/metrics/workload/pod-metrics.md`` (``kube_pod_status_phase{namespace,pod,uid,
  phase}``, ``kube_pod_owner{...,owner_kind,owner_name,owner_is_controller}``,
  ``kube_pod_container_resource_requests{...,container,node,resource,unit}``),
  ``replicaset-metrics.md`` (``kube_replicaset_owner{namespace,replicaset,owner_*}``),
  ``horizontalpodautoscaler-metrics.md``; the kubelet's cAdvisor (``namespace``, ``pod``,
  ``container``, ``id``, ``image``, ``name``; the pod cgroup with ``container=""``, the
  node's root cgroup with neither); kubelet volume stats (``namespace``,
  ``persistentvolumeclaim``); node_exporter ``collector/`` (cpu ``cpu``/``mode``;
  filesystem ``device``/``fstype``/``mountpoint``; diskstats and netdev ``device``; the
  legacy ``*_errs_total``/``*_drop_total``; ``uname.go``), then the labels each mode's
  scrape adds (our relabelling, or the operator's ``job``/``instance``/``endpoint``/
  ``service``/``namespace``/``pod``/``container``).
"""

import copy
import json
import re
import subprocess

import pytest
import yaml
from conftest import k8s_object, unwrap

from components import dashboards as dash
from components import monitoring_config as mc
from support import Stack, override, relabel
from test_operator_kubelet import DROPPED_BY_KUBE_PROMETHEUS_STACK
from tools import mockrt

RATE_INTERVAL = "1m"
PLATFORM = ("new-api-capacity.json", "new-api-nodes.json")


# --------------------------------------------------------------------------- the rendered artifacts

def dashboard_models(stack) -> dict:
    cm = k8s_object(stack.result, "ConfigMap", "grafana-dashboards", "monitoring")
    return {name: json.loads(text) for name, text in cm["data"].items()}


def standalone_rules(stack) -> dict:
    return yaml.safe_load(k8s_object(stack.result, "ConfigMap", "prometheus-rules", "monitoring")["data"]["new-api.yml"])


def standalone_prometheus(stack) -> dict:
    return yaml.safe_load(k8s_object(stack.result, "ConfigMap", "prometheus-config", "monitoring")["data"]
                          ["prometheus.yml"])


@pytest.fixture(scope="module")
def operator_stack():
    return Stack(mockrt.run_stack("prod", override("prod", ("monitoring.mode", "operator"))))


#: kube-prometheus-stack's ``cAdvisorMetricRelabelings``: the names it drops (one list, in
#: test_operator_kubelet.py) and cgroup series with an ``id`` but no ``pod``.
KPS_CADVISOR_DROPS = [
    {"source_labels": ["__name__"], "action": "drop", "regex": DROPPED_BY_KUBE_PROMETHEUS_STACK.pattern},
    {"source_labels": ["id", "pod"], "action": "drop", "regex": ".+;"},
]


def scrape_paths(mode: str, stack) -> list[tuple[str, str, list]]:
    """(job label, exporter, metric relabelling) of every scrape the mode's Prometheus runs
    for the stack. Standalone: the rendered prometheus.yml. Operator: the rendered monitors
    plus kube-prometheus-stack's node-exporter, kube-state-metrics and kubelet (two endpoints)."""
    if mode == "standalone":
        return [(j["job_name"], j["job_name"], j.get("metric_relabel_configs", []))
                for j in standalone_prometheus(stack)["scrape_configs"]]
    jobs = [r["replacement"] for kind in ("PodMonitor", "ServiceMonitor") for m in stack.k8s_all(kind)
            for e in m["spec"].get("podMetricsEndpoints", m["spec"].get("endpoints", []))
            for r in e.get("relabelings", []) if r.get("targetLabel") == "job"]
    kps = [("node-exporter", "node-exporter", []), ("kube-state-metrics", "kube-state-metrics", []),
           ("kubelet", "kubelet", []), ("kubelet", "cadvisor", KPS_CADVISOR_DROPS)]
    assert {job for job, _, _ in kps} == set(mc.OPERATOR_PREREQUISITE_JOBS)
    return [(job, job, []) for job in jobs] + kps


def recorded(mode: str, stack) -> set:
    if mode == "standalone":
        return mc.recorded_metrics(standalone_rules(stack))
    rule = next(iter(stack.k8s_all("PrometheusRule")))
    return mc.recorded_metrics(unwrap(rule["spec"]))


def kept_metrics(paths) -> set:
    """Metric names some scrape both gets from its exporter (``EXPORTER_METRICS``, the
    names each exporter serves that the stack may read) and keeps after relabelling."""
    return {m for _, exporter, relabelling in paths for m in mc.EXPORTER_METRICS.get(exporter, ())
            if relabel({"__name__": m}, relabelling) is not None}


def unscraped(models: dict, paths, records: set) -> dict:
    """Dashboard -> metric names its queries read that no scrape keeps and no rule records."""
    produced = kept_metrics(paths) | mc.SYNTHETIC_METRICS | records
    out = {}
    for name, model in models.items():
        missing = {m for e in dash.dashboard_exprs(model) for m in mc.metric_names(e)} - produced
        if missing:
            out[name] = missing
    return out


# --------------------------------------------------------------------------- Grafana's interpolation

def _regex_escape(value: str) -> str:
    """Grafana's Prometheus data source escape of a multi-value variable's value: a regex
    metacharacter gets a backslash, written as ``\\\\`` inside the PromQL string."""
    return re.sub(r"([$^*{}\[\]'+?.()|])", r"\\\\\1", value.replace("\\", "\\\\\\\\"))


def interpolate(expr: str, model: dict, options: dict) -> str:
    """``expr`` as Grafana sends it with every variable on "All": a custom all value as
    written, otherwise the variable's ``options`` (what its query returns) as ``(a|b)``."""
    for var in model.get("templating", {}).get("list", []):
        if var.get("allValue"):
            value = var["allValue"]
        else:
            values = [_regex_escape(v) for v in options[var["name"]]]
            value = values[0] if len(values) == 1 else "(" + "|".join(values) + ")"
        expr = re.sub(r"\$\{" + var["name"] + r"\}|\$" + var["name"] + r"\b", lambda _: value, expr)
    assert "$" not in expr.replace("$__rate_interval", "").replace('"$1"', ""), expr
    return expr.replace("$__rate_interval", RATE_INTERVAL)


def panels(model: dict) -> dict:
    return {p["title"]: p for p in model["panels"] if p.get("type") != "row"}


def red_step(panel: dict) -> float:
    return next(s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"] if s["color"] == "red")


def steps(panel: dict) -> list:
    return [(s["value"], s["color"]) for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]


# --------------------------------------------------------------------------- a cluster scenario

NODES = {"10.0.1.11": "ip-10-0-1-11.ec2.internal", "10.0.1.12": "ip-10-0-1-12.ec2.internal"}
POD_UIDS = {"new-api-7d9f8-abcde": "u1", "new-api-7d9f8-fghij": "u2", "new-api-7d9f8-klmno": "u3",
            "new-api-postgres-0": "u4"}
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
STEPS = 1700  # 15 s samples: 7 h of history and a little more
EVAL = "7h"


def _series(name: str, labels: dict, values: str) -> tuple:
    return name, labels, values


def kube_state_metrics() -> list:
    ns = "new-api"
    out = []
    pods = {"new-api-7d9f8-abcde": ("ReplicaSet", "new-api-7d9f8", "Running", ["new-api"]),
            "new-api-7d9f8-fghij": ("ReplicaSet", "new-api-7d9f8", "Running", ["new-api"]),
            "new-api-7d9f8-klmno": ("ReplicaSet", "new-api-7d9f8", "Pending", ["new-api"]),
            "new-api-postgres-0": ("StatefulSet", "new-api-postgres", "Running", ["postgres", "postgres-exporter"])}
    for pod, (kind, owner, phase, containers) in pods.items():
        base = {"namespace": ns, "pod": pod, "uid": POD_UIDS[pod]}
        out.append(_series("kube_pod_owner", {**base, "owner_kind": kind, "owner_name": owner,
                                              "owner_is_controller": "true"}, f"1x{STEPS}"))
        for p in PHASES:
            out.append(_series("kube_pod_status_phase", {**base, "phase": p}, f"{int(p == phase)}x{STEPS}"))
        node = "" if phase == "Pending" else "ip-10-0-1-11.ec2.internal"
        for c in containers:
            cb = {**base, "container": c}
            oom = pod == "new-api-7d9f8-abcde"
            out.append(_series("kube_pod_container_status_restarts_total", cb,
                               f"0x1560 1x{STEPS - 1560}" if oom else f"0x{STEPS}"))
            if oom:
                out.append(_series("kube_pod_container_status_last_terminated_reason", {**cb, "reason": "OOMKilled"},
                                   f"_x1560 1x{STEPS - 1560}"))
            for kind_, cpu, mem in (("requests", "0.25", "268435456"), ("limits", "1", "536870912")):
                out.append(_series(f"kube_pod_container_resource_{kind_}",
                                   {**cb, "node": node, "resource": "cpu", "unit": "core"}, f"{cpu}x{STEPS}"))
                out.append(_series(f"kube_pod_container_resource_{kind_}",
                                   {**cb, "node": node, "resource": "memory", "unit": "byte"}, f"{mem}x{STEPS}"))
    out.append(_series("kube_replicaset_owner", {"namespace": ns, "replicaset": "new-api-7d9f8", "owner_kind": "Deployment",
                                                 "owner_name": "new-api", "owner_is_controller": "true"}, f"1x{STEPS}"))
    hpa = {"namespace": ns, "horizontalpodautoscaler": "new-api"}
    for metric, value in (("status_current_replicas", 3), ("status_desired_replicas", 3), ("spec_min_replicas", 2),
                          ("spec_max_replicas", 10)):
        out.append(_series(f"kube_horizontalpodautoscaler_{metric}", hpa, f"{value}x{STEPS}"))
    return out


def cadvisor(ip: str) -> list:
    """The node's cgroups: every pod of the scenario runs on the first node."""
    root = [_series("container_cpu_usage_seconds_total", {"id": "/", "container": "", "pod": "", "namespace": "",
                                                          "image": "", "name": ""}, f"0+30x{STEPS}")]
    if ip != next(iter(NODES)):
        return root
    out = list(root)
    containers = {("new-api-7d9f8-abcde", "new-api"): (3.75, 75, 503316480),
                  ("new-api-7d9f8-fghij", "new-api"): (1.5, 3, 268435456),
                  ("new-api-postgres-0", "postgres"): (0.75, 1, 300000000),
                  ("new-api-postgres-0", "postgres-exporter"): (0.15, 0, 20000000)}
    for (pod, c), (cpu, throttled, mem) in containers.items():
        cid = f"c{POD_UIDS[pod]}{c}"
        labels = {"namespace": "new-api", "pod": pod, "container": c, "id": f"/kubepods/burstable/pod{POD_UIDS[pod]}/{cid}",
                  "image": f"docker.io/library/{c}:1", "name": cid}
        out += [_series("container_cpu_usage_seconds_total", labels, f"0+{cpu}x{STEPS}"),
                _series("container_cpu_cfs_periods_total", labels, f"0+150x{STEPS}"),
                _series("container_cpu_cfs_throttled_periods_total", labels, f"0+{throttled}x{STEPS}"),
                _series("container_memory_working_set_bytes", labels, f"{mem}x{STEPS}"),
                _series("container_memory_rss", labels, f"{mem}x{STEPS}")]
    # the pod's own cgroup (container="") and the node's root cgroup (no pod at all)
    pod_cgroup = {"namespace": "new-api", "pod": "new-api-7d9f8-abcde", "container": "", "id": "/kubepods/burstable/podu1",
                  "image": "", "name": ""}
    out += [_series("container_cpu_usage_seconds_total", pod_cgroup, f"0+3.9x{STEPS}"),
            _series("container_memory_working_set_bytes", pod_cgroup, f"520000000x{STEPS}")]
    return out


def kubelet(ip: str) -> list:
    """Volume stats come from the kubelet of the node the volume is mounted on."""
    out = []
    volumes = {"10.0.1.11": ("new-api", "data-new-api-postgres-0", f"3500000000-500000x{STEPS}"),
               "10.0.1.12": ("monitoring", "data-prometheus-0", f"6000000000x{STEPS}")}
    for ns, pvc, avail in [volumes[ip]]:
        labels = {"namespace": ns, "persistentvolumeclaim": pvc}
        out += [_series("kubelet_volume_stats_available_bytes", labels, avail),
                _series("kubelet_volume_stats_capacity_bytes", labels, f"10000000000x{STEPS}"),
                _series("kubelet_volume_stats_used_bytes", labels, f"4000000000x{STEPS}")]
    out.append(_series("kubelet_running_pods", {}, f"12x{STEPS}"))
    return out


def node_exporter() -> dict:
    """Per node IP: the series node_exporter serves."""
    out = {}
    for ip, name in NODES.items():
        s = []
        for cpu in ("0", "1"):
            for mode, inc in (("idle", 12), ("user", 2), ("system", 0.75), ("iowait", 0.25)):
                s.append(_series("node_cpu_seconds_total", {"cpu": cpu, "mode": mode}, f"0+{inc}x{STEPS}"))
        s += [_series("node_load1", {}, f"1.2x{STEPS}"), _series("node_load5", {}, f"1.1x{STEPS}"),
              _series("node_load15", {}, f"0.9x{STEPS}"),
              _series("node_memory_MemTotal_bytes", {}, f"8000000000x{STEPS}"),
              _series("node_memory_MemAvailable_bytes", {}, f"3000000000x{STEPS}"),
              _series("node_boot_time_seconds", {}, f"0x{STEPS}"), _series("node_time_seconds", {}, f"0+15x{STEPS}"),
              _series("node_uname_info", {"sysname": "Linux", "release": "6.1.112", "version": "#1 SMP",
                                          "machine": "x86_64", "nodename": name, "domainname": "(none)"}, f"1x{STEPS}")]
        for device, fstype, mountpoint, avail in (("/dev/nvme0n1p1", "xfs", "/", f"40000000000-1000000x{STEPS}"),
                                                  ("tmpfs", "tmpfs", "/run", f"400000000x{STEPS}")):
            fs = {"device": device, "fstype": fstype, "mountpoint": mountpoint, "device_error": ""}
            s += [_series("node_filesystem_avail_bytes", fs, avail),
                  _series("node_filesystem_size_bytes", fs, f"80000000000x{STEPS}")]
        disk = {"device": "nvme0n1"}
        for metric, inc in (("read_bytes_total", 1500000), ("written_bytes_total", 3000000), ("reads_completed_total", 150),
                            ("writes_completed_total", 300), ("io_time_seconds_total", 1.5)):
            s.append(_series(f"node_disk_{metric}", disk, f"0+{inc}x{STEPS}"))
        for device in ("ens5", "eni0a1b2c3d4e5", "lo"):
            for metric, inc in (("receive_bytes_total", 15000000), ("transmit_bytes_total", 7500000),
                                ("receive_errs_total", 0), ("transmit_errs_total", 0), ("receive_drop_total", 15),
                                ("transmit_drop_total", 0)):
                s.append(_series(f"node_network_{metric}", {"device": device}, f"0+{inc}x{STEPS}"))
        out[ip] = s
    return out


def scrapes(mode: str, stack) -> list[tuple[str, dict, list]]:
    """(exporter, target labels, metric relabelling) of each scrape in the scenario: the
    labels the mode's scrape config gives a target (standalone: our relabelling, see
    ``monitoring_config._k8s_pod_job`` and ``platform_alerts.kubelet_jobs``; operator:
    prometheus-operator's ServiceMonitor target labels), honour_labels as configured."""
    paths = {(job, exporter): relabelling for job, exporter, relabelling in scrape_paths(mode, stack)}
    out = []
    if mode == "standalone":
        ksm_job, kubelet_job, cadvisor_job, node_job = (("kube-state-metrics", "kube-state-metrics"), ("kubelet", "kubelet"),
                                                        ("cadvisor", "cadvisor"), ("node-exporter", "node-exporter"))
        out.append(("kube-state-metrics", {"job": "kube-state-metrics", "instance": "10.0.2.3:8080",
                                           "kubernetes_namespace": "monitoring",
                                           "kubernetes_pod": "kube-state-metrics-5d9c7-x2x2x",
                                           "node": "ip-10-0-1-12.ec2.internal"}, paths[ksm_job]))
        for ip, name in NODES.items():
            out.append((f"kubelet/{ip}", {"job": "kubelet", "instance": f"{ip}:10250", "node": name}, paths[kubelet_job]))
            out.append((f"cadvisor/{ip}", {"job": "cadvisor", "instance": f"{ip}:10250", "node": name},
                        paths[cadvisor_job]))
            out.append((f"node-exporter/{ip}", {"job": "node-exporter", "instance": f"{ip}:9100", "namespace": "node-agents",
                                                "kubernetes_pod": f"node-exporter-{ip[-2:]}", "node": name},
                        paths[node_job]))
        return out
    out.append(("kube-state-metrics", {"job": "kube-state-metrics", "instance": "10.0.2.3:8080", "endpoint": "http",
                                       "service": "kps-kube-state-metrics", "namespace": "monitoring",
                                       "pod": "kps-kube-state-metrics-6c8d9-q7q7q", "container": "kube-state-metrics"},
                paths[("kube-state-metrics", "kube-state-metrics")]))
    for ip, name in NODES.items():
        kubelet_target = {"job": "kubelet", "instance": f"{ip}:10250", "endpoint": "https-metrics",
                          "service": "kps-kubelet", "namespace": "kube-system", "node": name}
        out.append((f"kubelet/{ip}", {**kubelet_target, "metrics_path": "/metrics"}, paths[("kubelet", "kubelet")]))
        out.append((f"cadvisor/{ip}", {**kubelet_target, "metrics_path": "/metrics/cadvisor"},
                    paths[("kubelet", "cadvisor")]))
        out.append((f"node-exporter/{ip}", {"job": "node-exporter", "instance": f"{ip}:9100", "endpoint": "http-metrics",
                                            "service": "kps-prometheus-node-exporter", "namespace": "monitoring",
                                            "pod": f"kps-prometheus-node-exporter-{ip[-2:]}",
                                            "container": "node-exporter"}, paths[("node-exporter", "node-exporter")]))
    return out


#: Exporters whose scrape honours their labels (standalone: kube-state-metrics; the
#: operator's kube-state-metrics and kubelet ServiceMonitors set honorLabels too).
HONOURED = {"standalone": {"kube-state-metrics"}, "operator": {"kube-state-metrics", "kubelet", "cadvisor"}}


def input_series(mode: str, stack) -> list[dict]:
    """The scenario's series as Prometheus stores them: exporter labels, target labels
    (exporter's first where honoured, else the target's, Prometheus renaming nothing we
    use), then the scrape's metric relabelling (dropped series are not stored)."""
    exposed = {"kube-state-metrics": kube_state_metrics(), **{f"kubelet/{ip}": kubelet(ip) for ip in NODES},
               **{f"cadvisor/{ip}": cadvisor(ip) for ip in NODES},
               **{f"node-exporter/{ip}": s for ip, s in node_exporter().items()}}
    out, seen = [], set()
    for exporter, target, relabelling in scrapes(mode, stack):
        for name, labels, values in exposed[exporter]:
            merged = ({**target, **labels} if exporter.split("/")[0] in HONOURED[mode] else {**labels, **target})
            kept = relabel({"__name__": name, **merged}, relabelling)
            if kept is None:
                continue
            kept = {k: v for k, v in kept.items() if v != "" and k != "__name__"}
            text = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(kept.items())) + "}"
            if text not in seen:
                seen.add(text)
                out.append({"series": text, "values": values})
    return out


def node_options() -> dict:
    return {"node": sorted(f"{ip}:9100" for ip in NODES)}


def run_promtool(promtool: str, tmp_path, tests: list, rules_text: str = "groups: []\n", interval: str = "15s"):
    (tmp_path / "rules.yml").write_text(rules_text)
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": interval, "tests": tests}, sort_keys=False))
    return subprocess.run([promtool, "test", "rules", str(tmp_path / "tests.yml")], capture_output=True, text=True,
                          timeout=600)


def non_empty(expr: str) -> str:
    """1 when ``expr`` has a sample that is a number (NaN is not equal to itself)."""
    return f"count(({expr}) == ({expr})) > bool 0"


# --------------------------------------------------------------------------- tests

@pytest.mark.parametrize("mode", ["standalone", "operator"])
def test_every_platform_panel_shows_data_on_the_exporters_series(request, mode, promtool, tmp_path):
    """Old code: neither dashboard existed (KeyError). Every query of both dashboards,
    variables included, interpolated as Grafana sends it, returns numbers on a cluster
    whose series went through the mode's scrape and metric relabelling: a panel reading a
    metric the job drops, or joining on a label the exporter does not set, is empty."""
    stack = request.getfixturevalue("dev") if mode == "standalone" else request.getfixturevalue("operator_stack")
    models = dashboard_models(stack)
    checks = []
    for file in PLATFORM:
        model = models[file]
        for expr in dash.dashboard_exprs(model):
            checks.append({"expr": non_empty(interpolate(expr, model, node_options())), "eval_time": EVAL,
                           "exp_samples": [{"labels": "{}", "value": 1}]})
    assert len(checks) > 40
    out = run_promtool(promtool, tmp_path, [{"name": f"platform dashboards, {mode}", "interval": "15s",
                                             "input_series": input_series(mode, stack), "promql_expr_test": checks}])
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]


def test_capacity_panels_show_the_scenarios_incidents(dev, promtool, tmp_path):
    """The joins and thresholds give the answers an operator reads: the pending pod under
    its Deployment, running pods per workload, the OOM kill, and only the throttled
    container at or above the throttling panel's red line."""
    model = dashboard_models(dev)["new-api-capacity.json"]
    p = panels(model)

    def q(title: str, i: int = 0) -> str:
        return interpolate(p[title]["targets"][i]["expr"], model, {})

    checks = [
        {"expr": q("Pods not running by workload"), "eval_time": EVAL,
         "exp_samples": [{"labels": '{namespace="new-api",phase="Pending",workload="new-api"}', "value": 1}]},
        {"expr": q("Running pods by workload"), "eval_time": EVAL,
         "exp_samples": [{"labels": '{namespace="new-api",workload="new-api"}', "value": 2},
                         {"labels": '{namespace="new-api",workload="new-api-postgres"}', "value": 1}]},
        {"expr": q("OOM kills (24h)"), "eval_time": EVAL, "exp_samples": [{"labels": "{}", "value": 1}]},
        {"expr": q("Pending pods"), "eval_time": EVAL, "exp_samples": [{"labels": "{}", "value": 1}]},
        {"expr": f'{q("CPU throttling (share of CFS periods)")} >= {red_step(p["CPU throttling (share of CFS periods)"])}',
         "eval_time": EVAL,
         "exp_samples": [{"labels": '{container="new-api",namespace="new-api",pod="new-api-7d9f8-abcde"}', "value": 0.5}]},
        {"expr": f'{q("Memory working set of limit")} >= {red_step(p["Memory working set of limit"])}',
         "eval_time": EVAL,
         "exp_samples": [{"labels": '{container="new-api",namespace="new-api",pod="new-api-7d9f8-abcde"}',
                          "value": 503316480 / 536870912}]},
        {"expr": q("HPA replicas of maximum"), "eval_time": EVAL,
         "exp_samples": [{"labels": '{horizontalpodautoscaler="new-api",namespace="new-api"}', "value": 0.3}]},
    ]
    out = run_promtool(promtool, tmp_path, [{"name": "capacity answers", "interval": "15s",
                                             "input_series": input_series("standalone", dev), "promql_expr_test": checks}])
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]


def test_time_until_full_is_below_the_horizon_exactly_when_the_prediction_alert_fires(dev, promtool, tmp_path):
    """The "Time until volume full" panel and NewApiPersistentVolumeFillingUpPredicted, both
    from the rendered artifacts, on volumes full in 0.9 days, 3.9 days (alert fires, panel
    below its green line) and 4.1 days, or steady (neither)."""
    model = dashboard_models(dev)["new-api-capacity.json"]
    panel = next(p for t, p in panels(model).items() if t.startswith("Time until volume full"))
    horizon = next(v for v, c in steps(panel) if c == "green")
    expr = interpolate(panel["targets"][0]["expr"], model, {})
    pvc = 'job="kubelet",instance="10.0.1.11:10250",node="n1",namespace="new-api",persistentvolumeclaim="{}"'
    series = []
    # 5-minute samples; at 8 h: available / (per-second fall) = 0.9, 3.9 and 4.1 days
    for name, values in (("fast", "35-0.1x100"), ("edge-in", "24.384-0.02x100"), ("edge-out", "25.536-0.02x100"),
                         ("steady", "30x100")):
        series += [{"series": "kubelet_volume_stats_available_bytes{" + pvc.format(name) + "}", "values": values},
                   {"series": "kubelet_volume_stats_capacity_bytes{" + pvc.format(name) + "}", "values": "100x100"}]
    firing = [{"labels": f'{{persistentvolumeclaim="{n}"}}', "value": 1} for n in ("edge-in", "fast")]
    checks = [
        {"expr": 'count by (persistentvolumeclaim) (ALERTS{alertname="NewApiPersistentVolumeFillingUpPredicted",'
                 'alertstate="firing"})', "eval_time": "8h", "exp_samples": firing},
        {"expr": f"count by (persistentvolumeclaim) ({expr} < {horizon})", "eval_time": "8h", "exp_samples": firing},
    ]
    rules = yaml.safe_dump(standalone_rules(dev), sort_keys=False)
    out = run_promtool(promtool, tmp_path, [{"name": "time until full", "interval": "5m", "input_series": series,
                                             "promql_expr_test": checks}], rules_text=rules, interval="5m")
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]


def _alert_expr(rules: dict, name: str) -> str:
    return next(r["expr"] for g in rules["groups"] for r in g["rules"] if r.get("alert") == name)


def _limit(expr: str, op: str, index: int = -1) -> float:
    """The number after the ``index``-th ``op`` comparison of a rendered alert expression."""
    return float(re.findall(rf"{re.escape(op)} ([\d.]+)", expr)[index])


def test_thresholds_are_the_alerts_thresholds(dev):
    """Each coloured panel turns red where its alert fires, read from the rendered rules."""
    rules = standalone_rules(dev)
    models = dashboard_models(dev)
    cap, nodes = panels(models["new-api-capacity.json"]), panels(models["new-api-nodes.json"])
    throttled = _alert_expr(rules, "NewApiContainerCPUThrottled")
    assert red_step(cap["CPU throttling (share of CFS periods)"]) == _limit(throttled, ">")
    assert red_step(cap["Memory working set of limit"]) == _limit(_alert_expr(rules, "NewApiContainerMemoryNearLimit"), ">")
    full = _limit(_alert_expr(rules, "NewApiPersistentVolumeFillingUp"), "<")
    predicted = _alert_expr(rules, "NewApiPersistentVolumeFillingUpPredicted")
    assert steps(cap["Volume used"]) == [(None, "green"), (round(1 - _limit(predicted, "<", 0), 6), "orange"),
                                         (round(1 - full, 6), "red")]
    window, days = re.search(r"\[(\w+)\], (\d+) \* 24 \* 3600\) < 0", predicted).groups()
    until_full = cap[f"Time until volume full ({window} trend)"]
    assert steps(until_full) == [(None, "red"), (int(days) * 86400, "green")]
    assert f"[{window}]" in until_full["targets"][0]["expr"]
    for alert, titles in (("HighCPUUsage", ("CPU busy", "CPU busy by mode")),
                          ("HighMemoryUsage", ("RAM used", "Memory used")),
                          ("HighDiskUsage", ("Root filesystem used", "Filesystem used"))):
        for title in titles:
            assert red_step(nodes[title]) == _limit(_alert_expr(rules, alert), ">"), title


SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")


def test_capacity_covers_the_stacks_namespaces_and_nodes_filter_by_node(dev):
    """The namespace variable offers the namespaces the workload alerts watch, "All" by
    default; every selector of the capacity dashboard is limited to it, every selector of
    the Nodes dashboard to the node variable (``instance``, as Node Exporter Full)."""
    models = dashboard_models(dev)
    watched = re.search(r'namespace=~"([^"]+)"', _alert_expr(standalone_rules(dev), "NewApiPodCrashLooping")).group(1)
    cap = models["new-api-capacity.json"]
    (var,) = cap["templating"]["list"]
    assert (var["name"], var["type"], var["multi"], var["includeAll"]) == ("namespace", "custom", True, True)
    assert sorted(var["query"].split(",")) == sorted(watched.split("|")) and var["allValue"] == watched
    assert var["current"]["value"] == "$__all"
    nodes = models["new-api-nodes.json"]
    (node,) = nodes["templating"]["list"]
    assert (node["name"], node["type"], node["query"]) == ("node", "query", "label_values(node_uname_info, instance)")
    for model, matcher in ((cap, 'namespace=~"$namespace"'), (nodes, 'instance=~"$node"')):
        exprs = [t["expr"] for p in model["panels"] for t in p.get("targets", [])]
        assert exprs
        for expr in exprs:
            found = SELECTOR.findall(expr)
            assert {n for n, _ in found} == mc.metric_names(expr), expr
            assert all(matcher in m for _, m in found), expr


@pytest.mark.parametrize("mode", ["standalone", "operator"])
def test_dashboards_read_only_what_a_scrape_keeps_or_a_rule_records(request, mode):
    """Every provisioned dashboard (all six), panels and variables: each metric name is
    served by a scraped exporter and kept by that scrape's metric relabelling, or recorded
    by a rendered rule. Standalone: dev and prod; operator: prod in operator mode."""
    stacks = ([request.getfixturevalue("dev"), request.getfixturevalue("prod")] if mode == "standalone"
              else [request.getfixturevalue("operator_stack")])
    for stack in stacks:
        models = dashboard_models(stack)
        assert set(PLATFORM) <= set(models)
        assert unscraped(models, scrape_paths(mode, stack), recorded(mode, stack)) == {}


def test_a_panel_on_a_metric_no_scrape_keeps_fails_the_check(dev):
    """The check above is not vacuous: a panel on a cAdvisor series the cadvisor job drops
    (container_memory_rss), and the capacity dashboard once the rendered cadvisor keep list
    loses container_memory_working_set_bytes, are both reported."""
    models = dashboard_models(dev)
    paths = scrape_paths("standalone", dev)
    records = recorded("standalone", dev)
    bad = copy.deepcopy(models["new-api-capacity.json"])
    bad["panels"].append({"type": "timeseries", "title": "RSS", "targets": [
        {"expr": 'sum by (pod) (container_memory_rss{namespace=~"$namespace"})'}]})
    assert unscraped({"bad": bad}, paths, records) == {"bad": {"container_memory_rss"}}
    narrowed = []
    for job, exporter, relabelling in paths:
        if job == "cadvisor":
            regex = "|".join(n for n in relabelling[0]["regex"].split("|") if n != "container_memory_working_set_bytes")
            relabelling = [{**relabelling[0], "regex": regex}]
        narrowed.append((job, exporter, relabelling))
    assert unscraped({"capacity": models["new-api-capacity.json"]}, narrowed, records) == {
        "capacity": {"container_memory_working_set_bytes"}}


# --------------------------------------------------------------------------- the application dashboards

APP_STEPS = 130  # 15 s samples: 32 minutes
APP_EVAL = "30m"
APP_DASHBOARDS = ("new-api.json", "new-api-slo.json", "new-api-postgres.json", "new-api-redis.json")


def _entry_series(kind: str) -> list[dict]:
    """The entry proxy's RED series, labelled as the rule tests label them (Envoy through
    Envoy Gateway: test_rules_gateway.py; ingress-nginx: test_rules.py), plus its
    connection gauge (Envoy ``http.<prefix>.downstream_cx_active``; ingress-nginx
    ``nginx_process_connections{state}``, ``internal/ingress/metric/collectors/nginx_status.go``)."""
    n = APP_STEPS
    if kind == "gateway":
        import test_rules_gateway as g

        pod = ('job="envoy-gateway",kubernetes_namespace="envoy-gateway-system",'
               'kubernetes_pod="envoy-new-api-5c7d9-abcde",node="node-1"')
        return [g.req("2", f"0+900x{n}"), g.req("5", f"0+9x{n}"),
                *g.buckets({le: f"0+{0 if le < 100 else 800 if le < 250 else 900 if le < 1000 else 909}x{n}"
                            for le in g.ENVOY_BUCKETS_MS}, f"0+909x{n}"),
                {"series": f'envoy_http_downstream_cx_active{{{pod},envoy_http_conn_manager_prefix="http-10080"}}',
                 "values": f"12x{n}"}]
    import test_rules as r

    controller = ('job="ingress-nginx",controller_class="k8s.io/ingress-nginx",controller_namespace="ingress-nginx",'
                  'controller_pod="ingress-nginx-controller-7c9f-abcde"')
    return [r.req("200", f"0+900x{n}"), r.req("500", f"0+9x{n}"),
            *r.buckets({"0.1": f"0+800x{n}", "0.25": f"0+900x{n}"}, f"0+909x{n}"),
            {"series": f'nginx_ingress_controller_nginx_process_connections{{{controller},state="active"}}',
             "values": f"12x{n}"}]


def _datastore_series() -> list[dict]:
    """postgres_exporter (``pg_stat_database_*{datid,datname}``, ``pg_database_size_bytes
    {datname}``, ``pg_stat_activity_count{datname,state}``) and redis_exporter series
    under our scrape labels (test_platform_rules.py), and the blackbox probe."""
    from test_platform_rules import PG_POD, REDIS_POD

    n = APP_STEPS
    db = f'{PG_POD},datid="16384",datname="newapi"'
    return [
        {"series": f"pg_up{{{PG_POD}}}", "values": f"1x{n}"},
        {"series": f'pg_stat_activity_count{{{PG_POD},datname="newapi",state="active"}}', "values": f"12x{n}"},
        {"series": f'pg_settings_max_connections{{{PG_POD},server="localhost:5432"}}', "values": f"100x{n}"},
        *({"series": f"pg_stat_database_{m}{{{db}}}", "values": f"0+{inc}x{n}"}
          for m, inc in (("xact_commit", 300), ("xact_rollback", 3), ("blks_hit", 9000), ("blks_read", 90),
                         ("deadlocks", 0))),
        {"series": f'pg_database_size_bytes{{{PG_POD},datname="newapi"}}', "values": f"800000000x{n}"},
        {"series": f"redis_up{{{REDIS_POD}}}", "values": f"1x{n}"},
        {"series": f"redis_memory_used_bytes{{{REDIS_POD}}}", "values": f"100000000x{n}"},
        {"series": f"redis_memory_max_bytes{{{REDIS_POD}}}", "values": f"268435456x{n}"},
        {"series": f"redis_connected_clients{{{REDIS_POD}}}", "values": f"20x{n}"},
        *({"series": f"redis_{m}{{{REDIS_POD}}}", "values": f"0+{inc}x{n}"}
          for m, inc in (("commands_processed_total", 1500), ("keyspace_hits_total", 900),
                         ("keyspace_misses_total", 100), ("evicted_keys_total", 0))),
        {"series": 'probe_success{job="new-api",instance="http://new-api.new-api.svc:80/api/status",'
                   'namespace="new-api",service="new-api"}', "values": f"1x{n}"},
    ]


@pytest.mark.parametrize("kind", ["gateway", "ingress-nginx"])
def test_every_application_panel_shows_data_on_the_exporters_series(request, kind, promtool, tmp_path):
    """The four application dashboards on each entry: every query returns numbers on the
    entry proxy's, the datastore exporters' and the probe's series, with the rendered rules
    file evaluated (the SLO and Postgres panels read its recording rules)."""
    stack = request.getfixturevalue("dev" if kind == "gateway" else "nginx_dev")
    models = dashboard_models(stack)
    checks = [{"expr": non_empty(interpolate(e, models[f], {})), "eval_time": APP_EVAL,
               "exp_samples": [{"labels": "{}", "value": 1}]} for f in APP_DASHBOARDS for e in dash.dashboard_exprs(models[f])]
    assert len(checks) > 25
    rules = yaml.safe_dump(standalone_rules(stack), sort_keys=False)
    out = run_promtool(promtool, tmp_path, [{"name": f"application dashboards, {kind}", "interval": "15s",
                                             "input_series": _entry_series(kind) + _datastore_series(),
                                             "promql_expr_test": checks}], rules_text=rules)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]


def test_gateway_connections_panel_counts_client_listeners_only(dev, promtool, tmp_path):
    """Envoy Gateway's proxies have HTTP connection managers of their own besides the
    Gateway's listeners: ``admin``, ``eg-stats-http`` (the Prometheus stats this job scrapes;
    envoyproxy/gateway ``internal/xds/bootstrap/bootstrap.yaml.tpl``) and ``eg-ready-http``
    (readiness; ``internal/xds/translator/listener_ready.go``), read at d32f282. Old code
    summed them too: every scrape and probe counted as a client connection."""
    models = dashboard_models(dev)
    exprs = [e for e in dash.dashboard_exprs(models["new-api.json"]) if "downstream_cx_active" in e]
    assert exprs
    pod = ('job="envoy-gateway",kubernetes_namespace="envoy-gateway-system",'
           'kubernetes_pod="envoy-new-api-5c7d9-abcde",node="node-1"')
    series = [{"series": f'envoy_http_downstream_cx_active{{{pod},envoy_http_conn_manager_prefix="{prefix}"}}',
               "values": f"{value}x20"}
              for prefix, value in (("https-10443", 12), ("http-10080", 3), ("admin", 1), ("eg-ready-http", 4),
                                    ("eg-stats-http", 2))]
    checks = [{"expr": interpolate(e, models["new-api.json"], {}), "eval_time": "4m",
               "exp_samples": [{"labels": "{}", "value": 15}]} for e in exprs]
    out = run_promtool(promtool, tmp_path, [{"name": "gateway connections", "interval": "15s",
                                             "input_series": series, "promql_expr_test": checks}])
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
