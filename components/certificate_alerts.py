"""cert-manager's certificates: the scrape of its controller and the alerts on the
certificates this stack owns.

Pure functions, like :mod:`components.platform_alerts` (``monitoring_config`` adds the
scrape job and the rule group, so standalone Prometheus and operator mode get the same).

**Source.** cert-manager's controller serves its certificate metrics on ``:9402/metrics``
(``internal/apis/config/controller/v1alpha1/defaults.go``,
``defaultPrometheusMetricsServerAddress = "0.0.0.0:9402"``; ``pkg/metrics/metrics.go``
serves ``/metrics``). Its Helm chart labels the controller's pods
``app.kubernetes.io/name: cert-manager`` and ``app.kubernetes.io/component: controller``
(``deploy/charts/cert-manager/templates/deployment.yaml``); the webhook and cainjector also
listen on 9402 but export no certificate series, so only the controller is scraped. The
certificate collector (``internal/collectors/certificate_collector.go``) exports, per
Certificate:

- ``certmanager_certificate_expiration_timestamp_seconds{name, namespace, issuer_name,
  issuer_kind, issuer_group}``: ``status.notAfter`` as Unix time, **0 while the
  certificate has never been issued** (so 0 is "unknown", not "expired");
- ``certmanager_certificate_ready_status{name, namespace, condition, issuer_name,
  issuer_kind, issuer_group}``: one series per condition value ``True``, ``False``,
  ``Unknown``, 1 on the Ready condition's current status (``Unknown`` when there is none).

``namespace`` and ``name`` are the Certificate's own, so the scrape keeps them
(``honor_labels``; the target's namespace goes to ``kubernetes_namespace``): in operator
mode the operator writes the pod's namespace into ``namespace`` for every PodMonitor
target (prometheus-operator ``pkg/prometheus/promcfg.go`` ``generatePodMonitorConfig``),
which without ``honorLabels`` would rename cert-manager's label to ``exported_namespace``.

**Thresholds.** cert-manager renews at two thirds of a certificate's lifetime unless
``renewBefore`` says otherwise (Let's Encrypt's 90-day certificates: 30 days before
expiry; the Elasticsearch transport certificate: 30 days; Prometheus Adapter's: 15 days).
Under 14 days left therefore means renewal has been failing for days (warning); under 3
days, the certificate expires before a normal working week ends (critical). A Certificate
whose Ready condition is not ``True`` for 15 minutes (an ACME HTTP-01 issuance takes a
minute or two; cert-manager keeps Ready ``True`` while it renews a still-valid
certificate) has no valid certificate in its Secret, or does not match its spec.

**Scope.** Only the stack's own Certificates, by namespace and name: the entry's (the
ones cert-manager's certificate-shim creates from the Gateway listeners' or the
Ingress's TLS Secrets), Elasticsearch's transport CA and node certificate, Prometheus
Adapter's serving certificate. A Certificate the stack expects but cert-manager does not
report (never created: a wrong issuer annotation, cert-manager without Gateway API
support) counts as not Ready.
"""

from __future__ import annotations

from typing import Sequence

#: cert-manager's default namespace (its Helm chart's install instructions).
DEFAULT_NAMESPACE = "cert-manager"
#: The controller's metrics port (``defaultPrometheusMetricsServerAddress``).
PORT = 9402
METRICS_PATH = "/metrics"
JOB = "cert-manager"
#: Labels of the controller's pods (the chart's deployment.yaml), scrape and egress selector.
CONTROLLER_LABELS = {"app.kubernetes.io/name": "cert-manager", "app.kubernetes.io/component": "controller"}
EXPIRATION = "certmanager_certificate_expiration_timestamp_seconds"
READY = "certmanager_certificate_ready_status"
METRICS = frozenset({EXPIRATION, READY})

DAY = 86400
WARNING_DAYS = 14
CRITICAL_DAYS = 3
#: How long a Certificate may be not Ready before anyone is told.
NOT_READY_FOR = "15m"


def _by_namespace(certificates: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for namespace, name in sorted(set(certificates)):
        out.setdefault(namespace, []).append(name)
    return out


def selector(metric: str, certificates: Sequence[tuple[str, str]], extra: str = "") -> str:
    """``metric`` restricted to ``certificates`` ((namespace, name) pairs): one selector per
    namespace, joined by ``or``."""
    parts = [f'{metric}{{namespace="{ns}",name=~"{"|".join(names)}"{extra}}}'
             for ns, names in _by_namespace(certificates).items()]
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


def alerts(alert, certificates: Sequence[tuple[str, str]]) -> list[dict]:
    """The certificate alerts (``alert`` is monitoring_config's rule builder). ``max by``
    drops the scrape target's labels, so an alert keeps its identity when cert-manager's
    pod is replaced, and de-duplicates replicas that all serve the metrics."""
    if not certificates:
        return []
    expiry = f"max by (namespace, name) ({selector(EXPIRATION, certificates)} > 0) - time()"
    ready_true = selector(READY, certificates, ',condition="True"')
    ready = f"max by (namespace, name) ({ready_true}) == 0"
    # Expected but not reported, while cert-manager itself is scraped (its absence is
    # ExporterAbsent's, not one alert per certificate).
    missing = " or ".join(f'absent({READY}{{namespace="{ns}",name="{name}",condition="True"}})'
                          for ns, name in sorted(set(certificates)))
    missing = f'max by (namespace, name) (({missing}) and on () (max(up{{job="{JOB}"}}) == 1))'
    what = "Certificate {{ $labels.namespace }}/{{ $labels.name }}"
    return [
        alert("NewApiCertificateExpiringSoon", f"{expiry} < {WARNING_DAYS} * {DAY}", "1h", "warning",
              "cert-manager", "A certificate expires in less than 14 days",
              f"{what} expires in {{{{ $value | humanizeDuration }}}}: cert-manager should have renewed it "
              "(at 2/3 of its lifetime, 30 days before for Let's Encrypt), so renewal has been failing."),
        alert("NewApiCertificateExpiryCritical", f"{expiry} < {CRITICAL_DAYS} * {DAY}", "10m", "critical",
              "cert-manager", "A certificate expires in less than 3 days",
              f"{what} expires in {{{{ $value | humanizeDuration }}}}: clients will refuse it when it does."),
        alert("NewApiCertificateNotReady", f"({ready}) or {missing}", NOT_READY_FOR, "critical", "cert-manager",
              "A certificate is not Ready",
              f"{what} has not been Ready for {NOT_READY_FOR} (or cert-manager does not report it at all): its "
              "Secret holds no valid certificate for its spec."),
    ]


def rule_group(alert, certificates: Sequence[tuple[str, str]]) -> list[dict]:
    rules = alerts(alert, certificates)
    return [{"name": "new-api-certificates", "rules": rules}] if rules else []
