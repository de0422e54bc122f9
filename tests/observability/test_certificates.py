"""cert-manager's certificates (issue 14): the controller is scraped in both monitoring
modes, Prometheus may reach it, and the certificate alerts fire on the stack's own
Certificates, on series labelled exactly as cert-manager emits them.

cert-manager's side (github.com/cert-manager/cert-manager):

- ``internal/collectors/certificate_collector.go``:
  ``certmanager_certificate_expiration_timestamp_seconds{name, namespace, issuer_name,
  issuer_kind, issuer_group}`` (``status.notAfter``; 0 while never issued) and
  ``certmanager_certificate_ready_status{name, namespace, condition, issuer_name,
  issuer_kind, issuer_group}``, one series per ``condition`` in True/False/Unknown, 1 on
  the Ready condition's status;
- ``internal/apis/config/controller/v1alpha1/defaults.go``: metrics on ``0.0.0.0:9402``,
  ``pkg/metrics/metrics.go``: path ``/metrics``;
- ``deploy/charts/cert-manager/templates/deployment.yaml``: the controller's pod labels;
- ``pkg/controller/certificate-shim/sync.go`` (``buildCertificates``): a Certificate per
  TLS Secret of an annotated Ingress (its namespace) or Gateway listener (the Gateway's
  namespace), named after the Secret.

Prometheus's side: ``honor_labels: true`` keeps the scraped ``namespace``/``name`` when a
target label has the same name (Prometheus docs, configuration, ``scrape_config``); the
Prometheus Operator writes ``namespace`` on every PodMonitor target and honours
``honorLabels`` (prometheus-operator ``pkg/prometheus/promcfg.go``,
``generatePodMonitorConfig``).
"""

import subprocess

import pytest
import yaml
from conftest import k8s_object, k8s_objects, rendered_rules

from support import Stack, override
from tools import mockrt

# Written from cert-manager's source (see the module docstring), not imported from the
# component, so the test checks the component against cert-manager.
EXPIRATION = "certmanager_certificate_expiration_timestamp_seconds"
READY = "certmanager_certificate_ready_status"
PORT = 9402
CONTROLLER_LABELS = {"app.kubernetes.io/name": "cert-manager", "app.kubernetes.io/component": "controller"}
ALERTS = {"NewApiCertificateExpiringSoon", "NewApiCertificateExpiryCritical", "NewApiCertificateNotReady"}
DAY = 86400


# --------------------------------------------------------------------------- stacks

@pytest.fixture(scope="module")
def operator_stack():
    return Stack(mockrt.run_stack("prod", override("prod", ("monitoring.mode", "operator"))))


@pytest.fixture(scope="module")
def nginx_autoscale():
    """The legacy entry (Ingress TLS), the adapter's serving certificate and a cert-manager
    installed in a namespace of its own name."""
    return Stack(mockrt.run_stack("prod", override(
        "prod", ("entry.kind", "ingress-nginx"), ("monitoring.autoscale.enabled", True),
        ("monitoring.certManagerNamespace", "certs"))))


def owned_certificates(stack) -> set:
    """The Certificates the stack makes cert-manager hold, read from the rendered objects the
    way cert-manager reads them: Certificate objects, and the certificate-shim's for every
    TLS Secret of an Ingress or Gateway that carries ``cert-manager.io/cluster-issuer``."""
    out = {(c["metadata"]["namespace"], c["metadata"]["name"]) for c in k8s_objects(stack.result, "Certificate")}
    for ing in k8s_objects(stack.result, "Ingress"):
        if "cert-manager.io/cluster-issuer" in (ing["metadata"].get("annotations") or {}):
            out |= {(ing["metadata"]["namespace"], t["secretName"]) for t in ing["spec"].get("tls", [])}
    for gw in k8s_objects(stack.result, "Gateway"):
        if "cert-manager.io/cluster-issuer" in (gw["metadata"].get("annotations") or {}):
            out |= {(gw["metadata"]["namespace"], ref["name"]) for lst in gw["spec"]["listeners"]
                    for ref in (lst.get("tls") or {}).get("certificateRefs", [])}
    return out


# --------------------------------------------------------------------------- series

#: What the scrape adds (standalone relabelling; the operator adds container/endpoint/pod).
TARGET = ('job="cert-manager",instance="10.0.3.4:9402",kubernetes_namespace="cert-manager",'
          'kubernetes_pod="cert-manager-6d5f8-abcde",node="n1"')


def cert_labels(namespace: str, name: str) -> str:
    return (f'{TARGET},issuer_group="cert-manager.io",issuer_kind="ClusterIssuer",'
            f'issuer_name="new-api-letsencrypt",name="{name}",namespace="{namespace}"')


def certificate(namespace: str, name: str, expires: str, ready: str = "True", steps: int = 300) -> list:
    """The series cert-manager exports for one Certificate: its expiry (a promtool values
    string, seconds since promtool's epoch 0) and its Ready condition (``ready``:
    True/False/Unknown, or ``"False->True@N"``: False for N steps, then True)."""
    labels = cert_labels(namespace, name)
    series = [{"series": f"{EXPIRATION}{{{labels}}}", "values": expires}]
    for cond in ("True", "False", "Unknown"):
        if "->" in ready:
            before, rest = ready.split("->")
            after, n = rest.split("@")
            n = int(n)
            values = f"{int(cond == before)}x{n} {int(cond == after)}x{steps - n}"
        else:
            values = f"{int(cond == ready)}x{steps}"
        series.append({"series": f'{READY}{{{labels},condition="{cond}"}}', "values": values})
    return series


def up(value: str = "1x300") -> dict:
    return {"series": f'up{{{TARGET}}}', "values": value}


def healthy(certs: set, but: tuple = ()) -> list:
    """Every owned certificate valid for 60 days and Ready, except ``but``; cert-manager up."""
    return [up()] + [s for ns, name in sorted(certs) if (ns, name) != but
                     for s in certificate(ns, name, f"{60 * DAY}x300")]


def cases(certs: set) -> list:
    """(name, alert, labels expected on it, eval time, series) for each owned certificate:
    the bad cases must fire, the others must not."""
    out = []
    for ns, name in sorted(certs):
        me, rest = (ns, name), healthy(certs, but=(ns, name))
        who = {"namespace": ns, "name": name}
        out += [
            # renewal failing: 10 days left (a 90-day certificate renews at 30)
            (f"{ns}/{name} 10 days left", "NewApiCertificateExpiringSoon", who, "2h", True,
             rest + certificate(*me, f"{10 * DAY}x300")),
            (f"{ns}/{name} 10 days left is not yet critical", "NewApiCertificateExpiryCritical", who, "2h", False,
             rest + certificate(*me, f"{10 * DAY}x300")),
            (f"{ns}/{name} 2 days left", "NewApiCertificateExpiryCritical", who, "2h", True,
             rest + certificate(*me, f"{2 * DAY}x300")),
            (f"{ns}/{name} healthy", "NewApiCertificateExpiringSoon", who, "2h", False, healthy(certs)),
            (f"{ns}/{name} never issued is no expiry", "NewApiCertificateExpiringSoon", who, "2h", False,
             rest + certificate(*me, "0x300", ready="False")),
            (f"{ns}/{name} not Ready", "NewApiCertificateNotReady", who, "30m", True,
             rest + certificate(*me, f"{60 * DAY}x300", ready="False")),
            (f"{ns}/{name} never reported", "NewApiCertificateNotReady", who, "30m", True, rest),
            # a normal issuance: not Ready for 10 minutes, then Ready
            (f"{ns}/{name} issued within 10 minutes", "NewApiCertificateNotReady", who, "30m", False,
             rest + certificate(*me, f"{60 * DAY}x300", ready="False->True@10")),
        ]
    # Others' certificates are not ours to page on; cert-manager not scraped is ExporterAbsent's.
    some_ns, some_name = sorted(certs)[0]
    foreign = [*certificate("team-b", some_name, f"{1 * DAY}x300", ready="False"),
               *certificate(some_ns, "someone-elses-tls", f"{1 * DAY}x300", ready="False")]
    for alert in sorted(ALERTS):
        out.append((f"foreign certificates: {alert}", alert, {}, "2h", False, healthy(certs) + foreign))
    out.append(("cert-manager not scraped", "NewApiCertificateNotReady", {}, "2h", False, []))
    out.append(("cert-manager not scraped", "ExporterAbsent", {"job": "cert-manager"}, "2h", True, []))
    return out


def promtool_tests(certs: set) -> dict:
    tests = []
    for name, alert, labels, at, fires, series in cases(certs):
        match = "".join(f',{k}="{v}"' for k, v in labels.items())
        tests.append({"name": name, "interval": "1m", "input_series": series, "promql_expr_test": [{
            "expr": f'count(ALERTS{{alertname="{alert}",alertstate="firing"{match}}})', "eval_time": at,
            "exp_samples": [{"labels": "{}", "value": 1}] if fires else []}]})
    return {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}


# --------------------------------------------------------------------------- tests

@pytest.mark.parametrize("name", ["dev", "prod", "operator", "nginx_autoscale"])
def test_certificate_alerts_fire_on_the_stacks_own_certificates_only(request, name, promtool, tmp_path):
    """The rules as each mode deploys them (standalone: the rules ConfigMap; operator: the
    PrometheusRule), under ``promtool test rules``: for every Certificate the rendered
    objects make cert-manager hold, expiring (14 d, 3 d) and not Ready (or not reported)
    fire, a healthy one and a normal issuance stay silent, and so do certificates of other
    namespaces or names."""
    stack = request.getfixturevalue({"operator": "operator_stack"}.get(name, name))
    certs = owned_certificates(stack)
    assert certs, "the stack owns no certificate"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rendered_rules(stack.result), sort_keys=False))
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(promtool_tests(certs), sort_keys=False))
    out = subprocess.run([promtool, "test", "rules", str(tmp_path / "tests.yml")], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]


def test_the_stacks_own_certificates_are_the_entrys_elasticsearchs_and_the_adapters(dev, nginx_autoscale):
    assert owned_certificates(dev) == {("new-api", "new-api-tls"), ("logging", "elasticsearch-ca"),
                                       ("logging", "elasticsearch-transport")}
    assert ("monitoring", "prometheus-adapter-tls") in owned_certificates(nginx_autoscale)
    assert ("new-api", "new-api-tls") in owned_certificates(nginx_autoscale)


def prom(stack) -> dict:
    return yaml.safe_load(k8s_object(stack.result, "ConfigMap", "prometheus-config", "monitoring")["data"]
                          ["prometheus.yml"])


@pytest.mark.parametrize("name,namespace", [("dev", "cert-manager"), ("prod", "cert-manager"),
                                            ("nginx_autoscale", "certs")])
def test_standalone_prometheus_scrapes_cert_managers_controller_keeping_its_labels(request, name, namespace):
    stack = request.getfixturevalue(name)
    job = next(j for j in prom(stack)["scrape_configs"] if j["job_name"] == "cert-manager")
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": [namespace]}}]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    keeps = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert keeps == {("__meta_kubernetes_pod_container_port_number",): "9402",
                     ("__meta_kubernetes_pod_label_app_kubernetes_io_name",): "cert-manager",
                     ("__meta_kubernetes_pod_label_app_kubernetes_io_component",): "controller"}
    # the Certificate's namespace and name survive the scrape as cert-manager wrote them
    assert job["honor_labels"] is True
    assert not {"namespace", "name"} & {r.get("target_label") for r in job["relabel_configs"]}
    # and Prometheus may discover the pods there
    bindings = [b for b in k8s_objects(stack.result, "RoleBinding") if b["metadata"]["namespace"] == namespace]
    assert [b["roleRef"]["name"] for b in bindings] == ["monitoring-prometheus-discovery"]


@pytest.mark.parametrize("name,namespace", [("dev", "cert-manager"), ("nginx_autoscale", "certs")])
def test_prometheus_egress_reaches_cert_managers_controller_only(request, name, namespace):
    stack = request.getfixturevalue(name)
    egress = k8s_object(stack.result, "NetworkPolicy", "prometheus", "monitoring")["spec"]["egress"]
    rules = [r for r in egress if {"protocol": "TCP", "port": PORT} in r["ports"]]
    assert rules == [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                              "podSelector": {"matchLabels": CONTROLLER_LABELS}}],
                      "ports": [{"protocol": "TCP", "port": PORT}]}]


def test_operator_mode_pod_monitor_scrapes_the_controller_with_its_labels(operator_stack):
    monitor = next(m for m in k8s_objects(operator_stack.result, "PodMonitor")
                   if m["metadata"]["name"] == "cert-manager")
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"matchNames": ["cert-manager"]}
    [endpoint] = spec["podMetricsEndpoints"]
    assert endpoint["portNumber"] == PORT and endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True
    relabel = endpoint["relabelings"]
    assert {"targetLabel": "job", "replacement": "cert-manager"} in relabel
    keeps = {r["sourceLabels"][0]: r["regex"] for r in relabel if r.get("action") == "keep"}
    assert keeps == {"__meta_kubernetes_pod_label_app_kubernetes_io_name": "cert-manager",
                     "__meta_kubernetes_pod_label_app_kubernetes_io_component": "controller"}


def test_bad_cert_manager_namespace_is_refused_naming_the_key():
    result = mockrt.run_stack("dev", override("dev", ("monitoring.certManagerNamespace", "Cert_Manager")))
    assert result.error is not None and result.registrations == []
    message = str(result.error)
    assert 'new-api:monitoring.certManagerNamespace = "Cert_Manager"' in message, message
    assert "must be a DNS-1123 label" in message, message
