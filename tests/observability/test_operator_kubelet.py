"""Operator mode: the container and volume alerts read series that an existing
kube-prometheus-stack serves, as its kubelet ServiceMonitor serves them.

What the chart does (prometheus-community/helm-charts, chart ``kube-prometheus-stack``
88.5.3, commit cf408a2, read for this test):

- ``templates/exporters/kubelet/servicemonitor.yaml``: one ServiceMonitor with
  ``jobLabel: k8s-app`` on the kubelet Service labelled ``k8s-app: kubelet``, and one endpoint
  per path (``/metrics``, ``/metrics/cadvisor``, ``/metrics/probes``). Every kubelet and
  cAdvisor series therefore carries ``job="kubelet"``, where our standalone Prometheus has two
  jobs (``kubelet``, ``cadvisor``). A rule that selects ``job="cadvisor"`` is silent in
  operator mode.
- ``values.yaml`` ``kubelet.serviceMonitor.cAdvisorMetricRelabelings`` drops, at scrape,
  among others ``container_cpu_cfs_throttled_seconds_total``, ``container_cpu_load_average_10s``,
  ``container_cpu_system_seconds_total``, ``container_cpu_user_seconds_total``,
  ``container_memory_mapped_file``, ``container_memory_swap``, every ``container_spec_*``,
  ``container_file_descriptors``, ``container_tasks_state``, ``container_threads_max`` and a
  set of ``container_fs_*`` IO series, and every cgroup series with an ``id`` but no ``pod``.
  ``kubelet.serviceMonitor.metricRelabelings`` drops only storage-operation histogram buckets.
  A rule that reads one of the dropped names is silent in operator mode.
"""

import re

import pytest

from conftest import unwrap
from support import Stack, override
from tools import mockrt

#: The names the chart's default cAdvisor relabelling drops (values.yaml, see above),
#: written as the families the chart names.
DROPPED_BY_KUBE_PROMETHEUS_STACK = re.compile(
    r"container_cpu_(cfs_throttled_seconds_total|load_average_10s|system_seconds_total|user_seconds_total)"
    r"|container_fs_(io_current|io_time_seconds_total|io_time_weighted_seconds_total|reads_merged_total"
    r"|sector_reads_total|sector_writes_total|writes_merged_total)"
    r"|container_memory_(mapped_file|swap)|container_(file_descriptors|tasks_state|threads_max)"
    r"|container_spec.*")
KUBELET_SERIES = re.compile(r"\b((?:container|kubelet|machine)_[a-z0-9_]+)\b")


@pytest.fixture(scope="module")
def operator_rules() -> list[dict]:
    stack = Stack(mockrt.run_stack("prod", override("prod", ("monitoring.mode", "operator"))))
    rules = [r for rule in stack.k8s_all("PrometheusRule") for g in unwrap(rule["spec"])["groups"]
             for r in g["rules"]]
    assert rules, "operator mode renders no PrometheusRule"
    return rules


def _kubelet_rules(rules: list[dict]) -> list[tuple[str, str, set[str]]]:
    out = []
    for r in rules:
        names = set(KUBELET_SERIES.findall(r["expr"]))
        if names:
            out.append((r.get("alert") or r.get("record"), r["expr"], names))
    return out


def test_operator_mode_reads_no_series_kube_prometheus_stack_drops(operator_rules):
    reading = _kubelet_rules(operator_rules)
    read = {n for _, _, names in reading for n in names}
    # The container and volume alerts exist in operator mode and read the kubelet's series.
    assert {"container_cpu_cfs_throttled_periods_total", "container_memory_working_set_bytes",
            "kubelet_volume_stats_available_bytes"} <= read
    dropped = sorted((name, n) for name, _, names in reading for n in names
                     if DROPPED_BY_KUBE_PROMETHEUS_STACK.fullmatch(n))
    assert not dropped, f"kube-prometheus-stack drops these at scrape; the rules would never fire: {dropped}"


def test_operator_mode_kubelet_rules_select_no_standalone_job(operator_rules):
    """Both kubelet paths are ``job="kubelet"`` under kube-prometheus-stack: a ``job`` matcher
    naming our standalone ``cadvisor`` job (or any other) would select nothing."""
    reading = _kubelet_rules(operator_rules)
    assert reading
    for name, expr, _ in reading:
        jobs = set(re.findall(r'job=~?"([^"]*)"', expr))
        assert jobs <= {"kubelet"}, f"{name} selects job {jobs}: {expr}"


def test_the_drop_list_matches_what_it_names():
    """The check above can fail: the chart's dropped names are recognised, the names our
    alerts read are not."""
    assert DROPPED_BY_KUBE_PROMETHEUS_STACK.fullmatch("container_cpu_cfs_throttled_seconds_total")
    assert DROPPED_BY_KUBE_PROMETHEUS_STACK.fullmatch("container_spec_memory_limit_bytes")
    assert not DROPPED_BY_KUBE_PROMETHEUS_STACK.fullmatch("container_cpu_cfs_throttled_periods_total")
    assert not DROPPED_BY_KUBE_PROMETHEUS_STACK.fullmatch("container_oom_events_total")
