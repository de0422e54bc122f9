"""``Monitoring``: Prometheus, Alertmanager, Grafana, exporters and the SLO alerting of
New API (issue 5; seed 000 §13.5, seed 004 chapters 2-4)."""


import hashlib
import ipaddress
import json
from typing import Any, Optional, Sequence, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from . import certificate_alerts, common, dashboards, images, rds_backup_alerts
from . import entry as entry_mod
from . import monitoring_config as mc
from . import platform_alerts
from .base import PlatformComponent
from .secrets import ROTATION_ANNOTATION, generated_secret, rotation_trigger

MODES = ("standalone", "operator")
WORKLOADS = ("prometheus", "alertmanager", "grafana", "node_exporter", "kube_state_metrics", "blackbox",
             "adapter")
DEFAULT_RESOURCES: dict[str, dict] = {
    "prometheus": {"cpu_request": "500m", "memory_request": "2Gi", "memory_limit": "4Gi"},
    "alertmanager": {"cpu_request": "50m", "memory_request": "64Mi", "memory_limit": "256Mi"},
    "grafana": {"cpu_request": "100m", "memory_request": "256Mi", "memory_limit": "512Mi"},
    "node_exporter": {"cpu_request": "50m", "memory_request": "64Mi", "memory_limit": "128Mi"},
    "kube_state_metrics": {"cpu_request": "50m", "memory_request": "128Mi", "memory_limit": "256Mi"},
    "blackbox": {"cpu_request": "20m", "memory_request": "32Mi", "memory_limit": "64Mi"},
    "adapter": {"cpu_request": "50m", "memory_request": "128Mi", "memory_limit": "256Mi"},
}
"""Production sizes; a dev stack shrinks them through config."""
#: Node-exporter needs the host's network and read-only root/proc/sys. Not the host's PID
#: namespace: it reads processes through --path.procfs=/host/proc, the host's procfs, whose
#: PID view is the host's whatever the pod's (node_exporter collector/paths.go procFilePath).
#: It sees every process on the node that way, so it runs as a UID no pod shares (STK-005).
NODE_EXPORTER_EXEMPTION = ("K8S-009", "K8S-010")
API_CLIENT_EXEMPTION = ("K8S-015",)
NODE_EXPORTER_REASON = ("node-exporter reads host metrics: hostNetwork for the node's own network counters, "
                        "read-only hostPath /, /proc and /sys")
#: The checkov checks the same waivers cover (host network; the service account token).
NODE_EXPORTER_CHECKOV = ("CKV_K8S_19",)
API_CLIENT_CHECKOV = ("CKV_K8S_38",)
PROMETHEUS_SD_REASON = "Kubernetes service discovery: get/list/watch pods and endpoints"
KSM_REASON = "kube-state-metrics lists and watches cluster objects"
ADAPTER_REASON = "an aggregated API server: delegated authn/authz and resource lookups"
#: Annotation on the AlertmanagerConfig naming the ``alertmanagerConfigMatcherStrategy``
#: the existing Alertmanager must use for it to route the stack's alerts.
MATCHER_STRATEGY_ANNOTATION = "new-api.io/requires-alertmanager-config-matcher-strategy"
#: Prometheus Adapter's serving certificate (Certificate and Secret name), one of the
#: certificates the stack alerts on.
ADAPTER_CERTIFICATE = "prometheus-adapter-tls"
KSM_RESOURCES = {
    "": ["endpoints", "namespaces", "nodes", "persistentvolumeclaims", "persistentvolumes", "pods", "services"],
    "apps": ["daemonsets", "deployments", "replicasets", "statefulsets"],
    "batch": ["cronjobs", "jobs"],
    "autoscaling": ["horizontalpodautoscalers"],
    "policy": ["poddisruptionbudgets"],
}
"""What kube-state-metrics lists: everything it reports on except Secrets and ConfigMaps
(K8S-048: no cluster-wide read of secrets)."""


class ReceiversArgs(TypedDict, total=False):
    email_to: list[str]
    """Recipients of every alert e-mail (none: no e-mail)."""
    email_from: str
    """Sender address."""
    smarthost: str
    """SMTP server host:port (seed: smtp.gmail.com:587; STARTTLS required)."""
    smtp_username: str
    """SMTP user (its password is ``smtp_password``)."""
    slack_channel: str
    """Slack channel of critical alerts (seed: #alerts)."""


class MonitoringArgs(TypedDict, total=False):
    namespace: str
    """Namespace of Prometheus, Alertmanager, Grafana, kube-state-metrics (restricted; must exist)."""
    agent_namespace: str
    """Namespace of node-exporter (Pod Security ``privileged``; must exist)."""
    app_namespace: str
    """Namespace of New API and its datastores' exporters."""
    app_service: str
    """New API's serving Service (probe target, ingress-nginx ``service`` label); default new-api."""
    app_service_port: int
    """Its port (default 80)."""
    ingress_name: str
    """The app's route object, Ingress or HTTPRoute (RPS metric object); default new-api."""
    ingress_namespace: str
    """Namespace of the entry's data plane (ingress-nginx's controller on :10254, or Envoy
    Gateway's proxies on :19001): its RED metrics are scraped there."""
    entry: str
    """The public entry (components/entry.py): ``gateway`` or ``ingress-nginx`` (default)."""
    relay_access_log: bool
    """Gateway API entry: the stack's Logstash counts the relay's time to first byte from the
    proxies' access log (docs/relay-ttfb-gateway.md), so the relay SLO is rendered on it
    (default false: not measured, not rendered)."""
    cluster_name: str
    """``cluster`` external label (Alertmanager groups and inhibits on it)."""
    mode: str
    """``standalone`` (default: deploy Prometheus and Alertmanager) or ``operator`` (emit
    PodMonitor/ServiceMonitor/PrometheusRule/AlertmanagerConfig for an existing Prometheus Operator)."""
    operator_selector_labels: dict[str, str]
    """Labels the operator's Prometheus selects monitors and rules by (default release=kube-prometheus-stack)."""
    operator_prometheus_url: str
    """Operator mode: the existing Prometheus URL (Grafana datasource)."""
    operator_alertmanager_url: str
    """Operator mode: the existing Alertmanager URL (Grafana datasource)."""
    retention: str
    """TSDB retention time (seed 000: 200h)."""
    retention_size: str
    """TSDB size cap (e.g. 8GB; keep below the volume size); empty for none."""
    storage_size: str
    """Prometheus volume size (default 20Gi)."""
    storage_class: str
    """StorageClass of the volumes (default: the cluster default)."""
    alertmanager_replicas: int
    """Alertmanager replicas (default 2, a gossip cluster with a PDB)."""
    grafana: bool
    """Deploy Grafana (default true)."""
    grafana_ingress_namespace: str
    """Namespace of an ingress controller that publishes Grafana (you add the Ingress); its
    pods are then admitted to Grafana. Default: none (reach it with ``kubectl port-forward``)."""
    receivers: ReceiversArgs
    """Where alerts go (non-secret parts)."""
    smtp_password: pulumi.Input[str]
    """SMTP password (secret)."""
    slack_webhook_url: pulumi.Input[str]
    """Slack incoming-webhook URL (secret)."""
    webhook_url: pulumi.Input[str]
    """Generic webhook URL, e.g. a DingTalk bridge (secret)."""
    elasticsearch_url: str
    """Logs datasource URL (the Logging component's), optional."""
    elasticsearch_namespace: str
    """Namespace of Elasticsearch (Grafana egress)."""
    elasticsearch_user: str
    """Read-only Elasticsearch user of Grafana."""
    elasticsearch_password: pulumi.Input[str]
    """Its password (secret)."""
    node_cidrs: list[str]
    """Node addresses (node-exporter runs on the host network; default the private ranges)."""
    api_server_cidrs: list[str]
    """Kubernetes API server addresses (service discovery egress; default the private ranges)."""
    query_namespaces: list[str]
    """Namespaces whose pods may query Prometheus besides Grafana and the adapter, e.g. the
    Argo Rollouts controller running canary analyses."""
    adapter: bool
    """Deploy Prometheus Adapter serving ``new_api_requests_per_second`` (default false)."""
    rps_per_pod: float
    """Target requests per second per serving pod for the HPA metric (default 20)."""
    resources: dict[str, dict[str, str]]
    """Per-workload overrides of ``DEFAULT_RESOURCES`` (cpu_request, memory_request, memory_limit, cpu_limit)."""
    slo_min_request_rate: float
    """Below this rate (req/s) the ratio alerts stay quiet (default 0.1)."""
    protect: bool
    """Protect the Prometheus StatefulSet and retain its volume (prod)."""
    backup_cronjob: str
    """Name of the database dump CronJob in ``app_namespace`` (its failure and staleness alert);
    none when the backend backs up itself (CloudNativePG)."""
    runbook_base_url: str
    """Base of every alert's ``runbook_url`` (``<base>/<Alert>.md``): the browsable URL of
    the repository's ``docs/runbooks`` (default: that repository path)."""
    require_receiver: bool
    """Fail (instead of warning) when no receiver can notify anyone (prod)."""
    cert_manager_namespace: str
    """Namespace of cert-manager's controller, scraped on :9402 for the certificate alerts
    (default cert-manager)."""
    rds_backups: list[dict[str, Any]]
    """RDS instances whose automated backups are watched (aws backend): ``identifier`` and
    the configured ``retention_days``; the prometheus-rds-exporter in ``app_namespace``
    reports them."""
    certificates: list[dict[str, str]]
    """cert-manager Certificates the stack owns besides the adapter's (``namespace``,
    ``name``): alerted on when they near expiry or are not Ready."""
    alertmanager_config_matcher_strategy: str
    """Operator mode: ``alertmanagerConfigMatcherStrategy.type`` of the existing Alertmanager
    (a prerequisite, see :func:`components.monitoring_config.alertmanager_config_spec`):
    ``None`` (default) or ``OnNamespaceExceptForAlertmanagerNamespace``."""


def _checksum(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _receivers(a: dict) -> mc.Receivers:
    """The receivers as configured (credentials only as "is set": they stay Outputs)."""
    rec = a.get("receivers") or {}
    return mc.Receivers(
        email_to=tuple(rec.get("email_to") or ()), email_from=rec.get("email_from", ""),
        smarthost=rec.get("smarthost", ""), smtp_username=rec.get("smtp_username", ""),
        smtp_password=a.get("smtp_password") is not None, slack_channel=rec.get("slack_channel", "#alerts"),
        slack=a.get("slack_webhook_url") is not None,
        webhook_url="" if a.get("webhook_url") is None else "set",
    )


def _validate(args: MonitoringArgs) -> dict:
    a = dict(args)
    for key in ("namespace", "agent_namespace", "app_namespace", "ingress_namespace"):
        common.require(isinstance(a.get(key), str) and common.is_dns_label(a[key]), key,
                       f"{a.get(key)!r} must be a DNS-1123 label")
    a.setdefault("mode", "standalone")
    common.require(a["mode"] in MODES, "mode", f"{a['mode']!r} must be one of {', '.join(MODES)}")
    a.setdefault("alertmanager_config_matcher_strategy", "None")
    common.require(a["alertmanager_config_matcher_strategy"] in mc.ROUTING_MATCHER_STRATEGIES,
                   "alertmanager_config_matcher_strategy",
                   f"{a['alertmanager_config_matcher_strategy']!r}: the AlertmanagerConfig routes the stack's alerts "
                   f"only under {' or '.join(mc.ROUTING_MATCHER_STRATEGIES)} (OnNamespace matches none of them)")
    if a["mode"] == "operator":
        for key in ("operator_prometheus_url", "operator_alertmanager_url"):
            common.require(bool(a.get(key)), key, "is required in operator mode (Grafana's datasources)")
    a.setdefault("app_service", "new-api")
    a.setdefault("app_service_port", 80)
    a.setdefault("ingress_name", "new-api")
    a.setdefault("entry", "ingress-nginx")
    common.require(a["entry"] in entry_mod.KINDS, "entry", f"{a['entry']!r} must be one of {', '.join(entry_mod.KINDS)}")
    a.setdefault("cluster_name", a["app_namespace"])
    a.setdefault("operator_selector_labels", {"release": "kube-prometheus-stack"})
    a.setdefault("retention", "200h")
    common.require(bool(__import__("re").fullmatch(r"(\d+[smhdwy])+", a["retention"])), "retention",
                   f"{a['retention']!r} must be a Prometheus duration such as 200h or 15d")
    a.setdefault("storage_size", "20Gi")
    common.parse_quantity(a["storage_size"])
    a.setdefault("alertmanager_replicas", 2)
    common.require(1 <= int(a["alertmanager_replicas"]) <= 5, "alertmanager_replicas", "must be 1 to 5")
    a.setdefault("grafana", True)
    a.setdefault("cert_manager_namespace", certificate_alerts.DEFAULT_NAMESPACE)
    common.require(isinstance(a["cert_manager_namespace"], str) and common.is_dns_label(a["cert_manager_namespace"]),
                   "cert_manager_namespace", f"{a['cert_manager_namespace']!r} must be a DNS-1123 label")
    certs = [dict(c) for c in a.get("certificates") or []]
    bad = [c for c in certs if set(c) != {"namespace", "name"} or not common.is_dns_label(str(c["namespace"]))
           or not common.is_dns_label(str(c["name"]), 253)]
    common.require(not bad, "certificates", f"{bad!r}: each entry is {{namespace: <DNS-1123 label>, name: <name>}}")
    a["certificates"] = certs
    rds = [dict(r) for r in a.get("rds_backups") or []]
    bad = [r for r in rds if set(r) != {"identifier", "retention_days"} or not str(r["identifier"])
           or not 1 <= int(r["retention_days"]) <= 35]
    common.require(not bad, "rds_backups", f"{bad!r}: each entry is {{identifier: <RDS identifier>, "
                                           "retention_days: 1..35}")
    a["rds_backups"] = rds
    a.setdefault("adapter", False)
    a.setdefault("rps_per_pod", 20.0)
    common.require(float(a["rps_per_pod"]) > 0, "rps_per_pod", "must be positive")
    a.setdefault("slo_min_request_rate", 0.1)
    for key in ("node_cidrs", "api_server_cidrs"):
        a[key] = list(a.get(key) or common.PRIVATE_CIDRS)
        for cidr in a[key]:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(f"{key}: {cidr!r} is not a CIDR ({exc})") from None
    given = dict(a.get("resources") or {})
    unknown = sorted(set(given) - set(WORKLOADS))
    common.require(not unknown, "resources", f"unknown workloads {unknown}; allowed: {list(WORKLOADS)}")
    a["resources"] = {w: {**DEFAULT_RESOURCES[w], **(given.get(w) or {})} for w in WORKLOADS}
    for w, res in a["resources"].items():
        for field, value in res.items():
            if value:
                try:
                    common.parse_quantity(value)
                except ValueError as exc:
                    raise ValueError(f"resources.{w}.{field}: {exc}") from None
    rec = dict(a.get("receivers") or {})
    if rec.get("email_to"):
        for key in ("email_from", "smarthost"):
            common.require(bool(rec.get(key)), f"receivers.{key}", "is required when receivers.email_to is set")
        problems = mc.email_auth_problems(rec["smarthost"], rec.get("smtp_username") or "",
                                          a.get("smtp_password") is not None)
        arg = {"username": "receivers.smtp_username", "password": "smtp_password"}
        common.require(not problems, "; ".join(arg[what] for what, _ in problems),
                       "; ".join(why for _, why in problems))
    if a.get("require_receiver"):
        common.require(_receivers(a).any, "receivers", "no receiver can notify anyone (require_receiver): set "
                       "an authenticated e-mail receiver, slack_webhook_url or webhook_url")
    a["receivers"] = rec
    if a.get("elasticsearch_url"):
        common.require(bool(a.get("elasticsearch_namespace")), "elasticsearch_namespace",
                       "is required with elasticsearch_url (Grafana's egress policy)")
    return a




def _container(name: str, image: str, res: dict, *, args: Sequence[str] = (), ports: Sequence[tuple] = (),
               readiness: Optional[dict] = None, liveness: Optional[dict] = None,
               startup: Optional[dict] = None, mounts: Sequence[dict] = (), env: Sequence[dict] = (),
               lifecycle: Optional[dict] = None) -> dict:
    return common.container(
        name, image, common.resources_of(res), args=list(args), env=list(env), volume_mounts=list(mounts),
        ports=[{"name": n, "container_port": p, "protocol": "TCP"} for n, p in ports],
        readiness_probe=readiness, liveness_probe=liveness, startup_probe=startup, lifecycle=lifecycle)




class Monitoring(PlatformComponent):
    """Metrics and alerting for New API, creating in ``namespace``:

    - **Prometheus** (standalone mode): a StatefulSet with a volume, retention from args
      (seed 000: 200h), Kubernetes pod discovery limited to the namespaces it scrapes
      (a ClusterRole of get/list/watch bound by RoleBindings in those namespaces only),
      the config and rules as ConfigMaps (:mod:`components.monitoring_config`);
    - **Alertmanager** (standalone mode): a StatefulSet gossip cluster with a PDB; its
      config is a Secret (the webhook URL is inline), SMTP and Slack credentials are
      files from a second Secret (``*_file``); receivers per seed 000;
    - **blackbox exporter** probing ``GET /api/status`` through the app's Service
      (``job="new-api"``: New API has no /metrics);
    - **kube-state-metrics** (no Secret/ConfigMap access) and, in ``agent_namespace``,
      **node-exporter** (host access by explicit, narrow exemption);
    - **Grafana** with a generated admin password, sign-up off, provisioned datasources
      and dashboards (:mod:`components.dashboards`);
    - optionally **Prometheus Adapter** serving ``new_api_requests_per_second`` through
      ``custom.metrics.k8s.io`` (its serving certificate from cert-manager);
    - in ``operator`` mode, PodMonitor/ServiceMonitor/PrometheusRule/AlertmanagerConfig
      for an existing Prometheus Operator instead of Prometheus and Alertmanager;
    - a NetworkPolicy per workload.
    """

    prometheus_url: pulumi.Output[str]
    """In-cluster URL of Prometheus."""
    alertmanager_url: pulumi.Output[str]
    """In-cluster URL of Alertmanager."""
    grafana_url: pulumi.Output[str]
    """In-cluster URL of Grafana (``kubectl port-forward svc/grafana 3000``)."""
    grafana_admin_password: pulumi.Output[str]
    """Grafana's generated admin password (secret)."""
    hpa_metric: pulumi.Output[dict[str, Any]]
    """The autoscaling/v2 metric to add to the serving HPA when the adapter is on ({} otherwise)."""

    def __init__(self, name: str, args: MonitoringArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("new-api:index:Monitoring", name, None, opts)
        a = _validate(args)
        self._name = name
        self._a = a
        ns = a["namespace"]
        operator = a["mode"] == "operator"
        self.targets = mc.Targets(
            app_namespace=a["app_namespace"], app_service=a["app_service"],
            app_service_port=int(a["app_service_port"]), monitoring_namespace=ns,
            agent_namespace=a["agent_namespace"], ingress_namespace=a["ingress_namespace"], entry_kind=a["entry"],
            cluster=a["cluster_name"], alertmanager_replicas=int(a["alertmanager_replicas"]),
            logging_namespace=a.get("elasticsearch_namespace") or None,
            relay_access_log=bool(a.get("relay_access_log")) and bool(a.get("elasticsearch_namespace")),
            runbook_base=a.get("runbook_base_url") or mc.RUNBOOK_DIR, mode=a["mode"],
            backup_cronjob=a.get("backup_cronjob") or None,
            cert_manager_namespace=a["cert_manager_namespace"],
            certificates=tuple(sorted({(c["namespace"], c["name"]) for c in a["certificates"]}
                                      | ({(ns, ADAPTER_CERTIFICATE)} if a["adapter"] else set()))),
            rds_instances=tuple(sorted({(r["identifier"], int(r["retention_days"])) for r in a["rds_backups"]})),
        )
        self.slo = mc.Slo(min_request_rate=float(a["slo_min_request_rate"]))
        self.receivers = _receivers(a)
        if not self.receivers.any:
            pulumi.log.warn("Monitoring: no alert receiver configured (receivers.email_to, "
                            "new-api:alertSlackWebhook or new-api:alertWebhookUrl): alerts reach nobody",
                            resource=self)
        self.rules_text = mc.rules_yaml(self.targets, self.slo)
        self.prometheus_text = mc.prometheus_yaml(self.targets)
        self.dashboards = dashboards.dashboards_json(self.targets, self.slo)

        self._credentials_secret_name = "alertmanager-credentials"
        self.credentials = self._credentials_secret()
        self.blackbox = self._blackbox()
        if operator:
            self._operator_resources()
            prom_url = a["operator_prometheus_url"]
            am_url = a["operator_alertmanager_url"]
        else:
            self.prometheus = self._prometheus()
            self.alertmanager = self._alertmanager()
            self.kube_state_metrics = self._kube_state_metrics()
            self.node_exporter = self._node_exporter()
            prom_url = mc.prometheus_url(ns)
            am_url = f"http://{self.targets.alertmanager_name}.{ns}.svc:{mc.ALERTMANAGER_PORT}"
        self.grafana_admin_password = pulumi.Output.secret("")
        if a["grafana"]:
            self._grafana(prom_url, am_url)
        hpa_metric: dict = {}
        if a["adapter"]:
            self._adapter(prom_url)
            hpa_metric = self.targets.entry.hpa_rps_metric(a["ingress_name"], float(a["rps_per_pod"]))
        self.prometheus_url = pulumi.Output.from_input(prom_url)
        self.alertmanager_url = pulumi.Output.from_input(am_url)
        self.grafana_url = pulumi.Output.from_input(f"http://grafana.{ns}.svc:{mc.GRAFANA_PORT}" if a["grafana"] else "")
        self.hpa_metric = pulumi.Output.from_input(hpa_metric)
        self.register_outputs({
            "prometheus_url": self.prometheus_url, "alertmanager_url": self.alertmanager_url,
            "grafana_url": self.grafana_url, "grafana_admin_password": self.grafana_admin_password,
            "hpa_metric": self.hpa_metric,
        })

    # ------------------------------------------------------------------ helpers
    def _service(self, suffix: str, namespace: str, lbl: dict, sel: dict, ports: Sequence[tuple],
                 headless: bool = False):
        spec: dict = {"selector": sel, "ports": [{"name": n, "port": p, "target_port": n, "protocol": "TCP"}
                                                 for n, p in ports]}
        if headless:
            spec.update({"cluster_ip": "None", "publish_not_ready_addresses": True})
        else:
            spec["type"] = "ClusterIP"
        return k8s.core.v1.Service(f"{self._name}-{suffix}", metadata=common.meta(suffix, namespace, lbl),
                                   spec=spec, opts=self._opts())

    def _bind_cluster_role(self, suffix: str, lbl: dict, rules: list, sa_name: str, namespace: str,
                           namespaces: Optional[Sequence[str]] = None):
        """A ClusterRole of ``rules`` bound to the ServiceAccount: cluster-wide, or by a
        RoleBinding in each of ``namespaces`` only."""
        role_name = f"{namespace}-{suffix}"
        role = k8s.rbac.v1.ClusterRole(f"{self._name}-{suffix}", metadata=common.meta(role_name, None, lbl),
                                       rules=rules, opts=self._opts())
        subject = [{"kind": "ServiceAccount", "name": sa_name, "namespace": namespace}]
        ref = {"api_group": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name}
        if namespaces is None:
            k8s.rbac.v1.ClusterRoleBinding(f"{self._name}-{suffix}", metadata=common.meta(role_name, None, lbl),
                                           role_ref=ref, subjects=subject, opts=self._opts(role))
        else:
            for target in sorted(set(namespaces)):
                k8s.rbac.v1.RoleBinding(f"{self._name}-{suffix}-{target}",
                                        metadata=common.meta(role_name, target, lbl),
                                        role_ref=ref, subjects=subject, opts=self._opts(role))
        return role

    # ------------------------------------------------------------------ credentials
    def _credentials_secret(self):
        a = self._a
        data = {}
        for key, value in ((mc.SMTP_PASSWORD_KEY, a.get("smtp_password")),
                           (mc.SLACK_WEBHOOK_KEY, a.get("slack_webhook_url")),
                           (mc.WEBHOOK_URL_KEY, a.get("webhook_url"))):
            if value is not None:
                data[key] = value
        if not data:
            return None
        lbl, _ = self._labels("alertmanager")
        return k8s.core.v1.Secret(
            f"{self._name}-alertmanager-credentials",
            metadata=common.meta(self._credentials_secret_name, a["namespace"], lbl),
            type="Opaque", string_data=pulumi.Output.secret(pulumi.Output.all(**data)), opts=self._opts())

    # ------------------------------------------------------------------ blackbox
    def _blackbox(self):
        a, ns = self._a, self._a["namespace"]
        lbl, sel = self._labels("blackbox_exporter")
        text = mc.blackbox_yaml()
        cm = k8s.core.v1.ConfigMap(f"{self._name}-blackbox", metadata=common.meta("blackbox-exporter", ns, lbl),
                                   data={"blackbox.yml": text}, opts=self._opts())
        sa = self._sa("blackbox-exporter", ns, lbl)
        probe = common.http_probe("/-/healthy", "http", period=15, timeout=5, failures=3)
        container = _container(
            "blackbox-exporter", images.BLACKBOX_EXPORTER, a["resources"]["blackbox"],
            args=["--config.file=/etc/blackbox/blackbox.yml", f"--web.listen-address=:{mc.BLACKBOX_PORT}"],
            ports=[("http", mc.BLACKBOX_PORT)], readiness=probe,
            liveness=common.tcp_probe("http", period=20, timeout=5, failures=3),
            mounts=[common.mount("config", "/etc/blackbox", read_only=True)])
        dep = k8s.apps.v1.Deployment(
            f"{self._name}-blackbox",
            metadata=common.meta("blackbox-exporter", ns, lbl),
            spec={"replicas": 1, "strategy": common.ZERO_DOWNTIME_ROLLING, "selector": {"match_labels": sel},
                  "template": {
                "metadata": {"labels": lbl, "annotations": {"checksum/config": _checksum(text)}},
                "spec": common.restricted_pod_spec(identity="blackbox-exporter",
                                                   service_account=sa.metadata.name, containers=[common.draining(container)],
                                                   termination_grace_seconds=30,
                                                   volumes=[{"name": "config", "config_map": {"name": cm.metadata.name}}])}},
            opts=self._opts(cm))
        self._service("blackbox-exporter", ns, lbl, sel, [("http", mc.BLACKBOX_PORT)])
        self._netpol("blackbox-exporter", ns, lbl, sel,
                     [{"from": [{"pod_selector": {"match_labels": self._labels("prometheus")[1]}},
                                *self._operator_prometheus_peers()],
                       "ports": common.tcp(mc.BLACKBOX_PORT)}],
                     # the Service DNATs to the app pods' port 3000 (admitted by ApiService's policy)
                     [{"to": [common.namespace_peer(a["app_namespace"])], "ports": common.tcp(3000, int(a["app_service_port"]))}])
        return dep

    def _operator_prometheus_peers(self) -> list:
        if self._a["mode"] != "operator":
            return []
        return [common.namespace_peer(self._a["namespace"], {"app.kubernetes.io/name": "prometheus"})]

    # ------------------------------------------------------------------ prometheus
    def _prometheus(self):
        a, ns, t = self._a, self._a["namespace"], self.targets
        lbl, sel = self._labels("prometheus")
        config = mc.prometheus_config(t)
        self.prometheus_config = config
        cm = k8s.core.v1.ConfigMap(f"{self._name}-prometheus-config",
                                   metadata=common.meta("prometheus-config", ns, lbl),
                                   data={"prometheus.yml": self.prometheus_text}, opts=self._opts())
        rules = k8s.core.v1.ConfigMap(f"{self._name}-prometheus-rules",
                                      metadata=common.meta("prometheus-rules", ns, lbl),
                                      data={"new-api.yml": self.rules_text}, opts=self._opts())
        sa = k8s.core.v1.ServiceAccount(f"{self._name}-prometheus", metadata=common.meta("prometheus", ns, lbl),
                                        automount_service_account_token=False, opts=self._opts())
        self._bind_cluster_role(
            "prometheus-discovery", lbl,
            [{"api_groups": [""], "resources": ["pods", "endpoints", "services"], "verbs": ["get", "list", "watch"]},
             {"api_groups": ["discovery.k8s.io"], "resources": ["endpointslices"],
              "verbs": ["get", "list", "watch"]}],
            "prometheus", ns, namespaces=mc.kubernetes_sd_namespaces(config))
        # Node discovery and the kubelet's /metrics and /metrics/cadvisor (nodes/metrics):
        # cluster-wide by nature, read-only, no Secrets.
        self._bind_cluster_role(
            "prometheus-kubelet", lbl,
            [{"api_groups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
             {"api_groups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]}],
            "prometheus", ns)
        args = [f"--config.file=/etc/prometheus/config/prometheus.yml", "--storage.tsdb.path=/prometheus",
                f"--storage.tsdb.retention.time={a['retention']}", f"--web.listen-address=:{mc.PROMETHEUS_PORT}"]
        if a.get("retention_size"):
            args.append(f"--storage.tsdb.retention.size={a['retention_size']}")
        container = _container(
            "prometheus", images.PROMETHEUS, a["resources"]["prometheus"], args=args,
            ports=[("http", mc.PROMETHEUS_PORT)],
            readiness=common.http_probe("/-/ready", "http", period=10, timeout=5, failures=3),
            liveness=common.http_probe("/-/healthy", "http", period=15, timeout=5, failures=4),
            # WAL replay after a restart can take minutes on a full head block.
            startup=common.http_probe("/-/ready", "http", period=10, timeout=5, failures=60),
            mounts=[common.mount("config", "/etc/prometheus/config", read_only=True),
                    common.mount("rules", mc.PROMETHEUS_RULES_DIR, read_only=True),
                    common.mount("data", "/prometheus")])
        pod = common.restricted_pod_spec(identity="prometheus",
            service_account=sa.metadata.name, containers=[container], automount_token=True,
            termination_grace_seconds=300,
            volumes=[{"name": "config", "config_map": {"name": cm.metadata.name}},
                     {"name": "rules", "config_map": {"name": rules.metadata.name}}])
        self._service("prometheus-headless", ns, lbl, sel, [("http", mc.PROMETHEUS_PORT)], headless=True)
        self._service("prometheus", ns, lbl, sel, [("http", mc.PROMETHEUS_PORT)])
        protect = bool(a.get("protect"))
        sts = k8s.apps.v1.StatefulSet(
            f"{self._name}-prometheus",
            metadata=common.meta("prometheus", ns, lbl, common.exemption_annotations(
                API_CLIENT_EXEMPTION, PROMETHEUS_SD_REASON, checkov=API_CLIENT_CHECKOV)),
            spec={"replicas": 1, "service_name": "prometheus-headless", "selector": {"match_labels": sel},
                  "persistent_volume_claim_retention_policy": {"when_deleted": "Retain" if protect else "Delete",
                                                                "when_scaled": "Retain"},
                  "template": {"metadata": {"labels": lbl, "annotations": {
                      "checksum/config": _checksum(self.prometheus_text, self.rules_text),
                      **common.exemption_annotations(API_CLIENT_EXEMPTION, PROMETHEUS_SD_REASON)}}, "spec": pod},
                  "volume_claim_templates": [common.volume_claim("data", lbl, a["storage_size"], a.get("storage_class"))]},
            opts=self._opts(cm, rules, protect=protect, retain_on_delete=protect))
        sd_ns = sorted(mc.kubernetes_sd_namespaces(config) - {ns})
        egress = [
            self._api_egress(),
            {"to": [{"pod_selector": {}}],
             "ports": common.tcp(mc.ALERTMANAGER_PORT, mc.BLACKBOX_PORT, mc.KSM_PORT, mc.PROMETHEUS_PORT,
                                 mc.GRAFANA_PORT)},
            {"to": [common.namespace_peer(a["app_namespace"])],
             "ports": common.tcp(mc.POSTGRES_EXPORTER_PORT, mc.REDIS_EXPORTER_PORT,
                                 *([rds_backup_alerts.PORT] if t.rds_instances else []))},
            {"to": [self.targets.entry.data_plane_peer()], "ports": common.tcp(self.targets.entry.metrics_port)},
            *([{"to": [common.namespace_peer(self.targets.logging_namespace)],
                "ports": common.tcp(mc.ES_EXPORTER_PORT, mc.LOGSTASH_EXPORTER_PORT)}]
              if self.targets.logging_namespace else []),
            # cert-manager's controller (a namespace the stack does not own; README, "Alerting").
            *([{"to": [common.namespace_peer(t.cert_manager_namespace, certificate_alerts.CONTROLLER_LABELS)],
                "ports": common.tcp(certificate_alerts.PORT)}] if t.certificates else []),
            # node-exporter listens on the host network: node addresses, not pod selectors.
            {"to": [common.namespace_peer(a["agent_namespace"]), *({"ip_block": {"cidr": c}} for c in a["node_cidrs"])],
             "ports": common.tcp(mc.NODE_EXPORTER_PORT)},
            # every node's kubelet (its metrics and cAdvisor's)
            {"to": [{"ip_block": {"cidr": c}} for c in a["node_cidrs"]],
             "ports": common.tcp(platform_alerts.KUBELET_PORT)},
        ]
        assert set(sd_ns) <= {a["app_namespace"], a["ingress_namespace"], a["agent_namespace"],
                              self.targets.logging_namespace, t.cert_manager_namespace}
        clients = [{"pod_selector": {"match_labels": self._labels(c)[1]}} for c in ("grafana", "adapter")]
        clients += [common.namespace_peer(n) for n in a.get("query_namespaces") or []]
        self._netpol("prometheus", ns, lbl, sel, [{"from": clients, "ports": common.tcp(mc.PROMETHEUS_PORT)}], egress)
        return sts

    # ------------------------------------------------------------------ alertmanager
    def _alertmanager(self):
        a, ns, t = self._a, self._a["namespace"], self.targets
        lbl, sel = self._labels("alertmanager")
        replicas = int(a["alertmanager_replicas"])
        webhook = a.get("webhook_url")
        receivers = self.receivers

        def render(url: Optional[str]) -> str:
            from dataclasses import replace
            return mc.alertmanager_yaml(replace(receivers, webhook_url=url or None))

        text = pulumi.Output.secret(pulumi.Output.from_input(webhook if webhook is not None else "").apply(render))
        config = k8s.core.v1.Secret(f"{self._name}-alertmanager-config",
                                    metadata=common.meta("alertmanager-config", ns, lbl), type="Opaque",
                                    string_data={"alertmanager.yml": text}, opts=self._opts())
        sa = self._sa("alertmanager", ns, lbl)
        headless = t.alertmanager_headless
        args = ["--config.file=/etc/alertmanager/config/alertmanager.yml", "--storage.path=/alertmanager",
                f"--web.listen-address=:{mc.ALERTMANAGER_PORT}"]
        if replicas > 1:
            args += [f"--cluster.listen-address=0.0.0.0:{mc.ALERTMANAGER_CLUSTER_PORT}",
                     f"--cluster.advertise-address=$(POD_IP):{mc.ALERTMANAGER_CLUSTER_PORT}"]
            args += [f"--cluster.peer={p}" for p in t.alertmanager_peers(mc.ALERTMANAGER_CLUSTER_PORT)]
        else:
            args.append("--cluster.listen-address=")
        mounts = [common.mount("config", "/etc/alertmanager/config", read_only=True),
                  common.mount("data", "/alertmanager")]
        volumes = [{"name": "config", "secret": {"secret_name": config.metadata.name, "default_mode": 0o440}}]
        if self.credentials is not None:
            mounts.append(common.mount("credentials", mc.ALERTMANAGER_SECRETS_DIR, read_only=True))
            volumes.append({"name": "credentials", "secret": {"secret_name": self.credentials.metadata.name,
                                                              "default_mode": 0o440}})
        container = _container(
            "alertmanager", images.ALERTMANAGER, a["resources"]["alertmanager"], args=args,
            ports=[("http", mc.ALERTMANAGER_PORT), ("cluster", mc.ALERTMANAGER_CLUSTER_PORT)],
            env=[common.field_env("POD_IP", "status.podIP")],
            readiness=common.http_probe("/-/ready", "http", period=10, timeout=3, failures=3),
            liveness=common.http_probe("/-/healthy", "http", period=15, timeout=5, failures=4),
            mounts=mounts)
        pod = common.restricted_pod_spec(identity="alertmanager",
                                         service_account=sa.metadata.name, containers=[container], volumes=volumes,
                                         spread_labels=sel if replicas > 1 else None)
        self._service(headless, ns, lbl, sel, [("http", mc.ALERTMANAGER_PORT),
                                               ("cluster", mc.ALERTMANAGER_CLUSTER_PORT)], headless=True)
        self._service(t.alertmanager_name, ns, lbl, sel, [("http", mc.ALERTMANAGER_PORT)])
        # Alertmanager does not watch its files: pods roll when the config or a receiver
        # credential changes (a rotation included), through a trigger that is random
        # bytes, never a digest of a secret (issue 13 #8; secrets.rotation_trigger).
        credentials = {"alertmanager.yml": text, **{key: a[arg] for key, arg in (
            (mc.SMTP_PASSWORD_KEY, "smtp_password"), (mc.SLACK_WEBHOOK_KEY, "slack_webhook_url"),
            (mc.WEBHOOK_URL_KEY, "webhook_url")) if a.get(arg) is not None}}
        trigger = rotation_trigger(f"{self._name}-alertmanager-rotation", credentials, self._opts())
        sts = k8s.apps.v1.StatefulSet(
            f"{self._name}-alertmanager", metadata=common.meta(t.alertmanager_name, ns, lbl),
            spec={"replicas": replicas, "service_name": headless, "selector": {"match_labels": sel},
                  "pod_management_policy": "Parallel",
                  "template": {"metadata": {"labels": lbl, "annotations": {ROTATION_ANNOTATION: trigger}},
                               "spec": pod},
                  "volume_claim_templates": [common.volume_claim("data", lbl, "1Gi", a.get("storage_class"))]},
            opts=self._opts(config, self.credentials))
        if replicas > 1:
            self._pdb(t.alertmanager_name, ns, lbl, sel, sts)
        peers = [{"pod_selector": {"match_labels": sel}}]
        self._netpol(
            "alertmanager", ns, lbl, sel,
            [{"from": [{"pod_selector": {"match_labels": self._labels(c)[1]}} for c in ("prometheus", "grafana")],
              "ports": common.tcp(mc.ALERTMANAGER_PORT)},
             {"from": peers, "ports": [*common.tcp(mc.ALERTMANAGER_CLUSTER_PORT),
                                       {"protocol": "UDP", "port": mc.ALERTMANAGER_CLUSTER_PORT}]}],
            [{"to": peers, "ports": [*common.tcp(mc.ALERTMANAGER_CLUSTER_PORT),
                                     {"protocol": "UDP", "port": mc.ALERTMANAGER_CLUSTER_PORT}]},
             # SMTP submission and HTTPS (Slack, webhooks) anywhere but link-local metadata.
             {"to": [{"ip_block": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}}],
              "ports": common.tcp(443, 465, 587)}])
        return sts

    # ------------------------------------------------------------------ kube-state-metrics
    def _kube_state_metrics(self):
        a, ns = self._a, self._a["namespace"]
        lbl, sel = self._labels("kube_state_metrics")
        sa = k8s.core.v1.ServiceAccount(f"{self._name}-kube-state-metrics",
                                        metadata=common.meta("kube-state-metrics", ns, lbl),
                                        automount_service_account_token=False, opts=self._opts())
        self._bind_cluster_role("kube-state-metrics", lbl,
                                [{"api_groups": [g], "resources": r, "verbs": ["list", "watch"]}
                                 for g, r in KSM_RESOURCES.items()], "kube-state-metrics", ns)
        resources = sorted(r for rs in KSM_RESOURCES.values() for r in rs)
        container = _container(
            "kube-state-metrics", images.KUBE_STATE_METRICS, a["resources"]["kube_state_metrics"],
            args=[f"--port={mc.KSM_PORT}", f"--telemetry-port={mc.KSM_TELEMETRY_PORT}",
                  f"--resources={','.join(resources)}"],
            ports=[("http-metrics", mc.KSM_PORT), ("telemetry", mc.KSM_TELEMETRY_PORT)],
            readiness=common.http_probe("/readyz", "telemetry", period=10, timeout=5, failures=3),
            liveness=common.http_probe("/livez", "http-metrics", period=15, timeout=5, failures=3))
        dep = k8s.apps.v1.Deployment(
            f"{self._name}-kube-state-metrics",
            metadata=common.meta("kube-state-metrics", ns, lbl, common.exemption_annotations(
                API_CLIENT_EXEMPTION, KSM_REASON, checkov=API_CLIENT_CHECKOV)),
            spec={"replicas": 1, "strategy": common.ZERO_DOWNTIME_ROLLING, "selector": {"match_labels": sel},
                  "template": {
                "metadata": {"labels": lbl, "annotations": common.exemption_annotations(API_CLIENT_EXEMPTION, KSM_REASON)},
                "spec": common.restricted_pod_spec(identity="kube-state-metrics",
                                                   service_account=sa.metadata.name, containers=[common.draining(container)],
                                                   termination_grace_seconds=30,
                                                   automount_token=True)}},
            opts=self._opts())
        self._netpol("kube-state-metrics", ns, lbl, sel,
                     [{"from": [{"pod_selector": {"match_labels": self._labels("prometheus")[1]}}],
                       "ports": common.tcp(mc.KSM_PORT)}], [self._api_egress()])
        return dep

    # ------------------------------------------------------------------ node-exporter
    def _node_exporter(self):
        a, ns = self._a, self._a["agent_namespace"]
        lbl, sel = self._labels("node_exporter")
        sa = self._sa("node-exporter", ns, lbl)
        container = _container(
            "node-exporter", images.NODE_EXPORTER, a["resources"]["node_exporter"],
            args=["--path.procfs=/host/proc", "--path.sysfs=/host/sys", "--path.rootfs=/host/root",
                  f"--web.listen-address=:{mc.NODE_EXPORTER_PORT}",
                  "--collector.filesystem.mount-points-exclude=^/(dev|proc|sys|run/containerd/.+|"
                  "var/lib/docker/.+|var/lib/kubelet/.+)($|/)"],
            ports=[("metrics", mc.NODE_EXPORTER_PORT)],
            readiness=common.http_probe("/", "metrics", period=15, timeout=5, failures=3),
            liveness=common.tcp_probe("metrics", period=20, timeout=5, failures=3),
            mounts=[common.mount("proc", "/host/proc", read_only=True),
                    common.mount("sys", "/host/sys", read_only=True),
                    {**common.mount("root", "/host/root", read_only=True), "mount_propagation": "HostToContainer"}])
        pod = common.restricted_pod_spec(identity="node-exporter",
            service_account=sa.metadata.name, containers=[container],
            volumes=[{"name": n, "host_path": {"path": p, "type": "Directory"}}
                     for n, p in (("proc", "/proc"), ("sys", "/sys"), ("root", "/"))])
        pod.update({"host_network": True, "dns_policy": "ClusterFirstWithHostNet",
                    "tolerations": [{"operator": "Exists"}]})
        ds = k8s.apps.v1.DaemonSet(
            f"{self._name}-node-exporter",
            metadata=common.meta("node-exporter", ns, lbl, common.exemption_annotations(
                NODE_EXPORTER_EXEMPTION, NODE_EXPORTER_REASON, checkov=NODE_EXPORTER_CHECKOV)),
            spec={"selector": {"match_labels": sel},
                  "update_strategy": {"type": "RollingUpdate", "rolling_update": {"max_unavailable": "10%"}},
                  "template": {"metadata": {"labels": lbl, "annotations": common.exemption_annotations(
                      NODE_EXPORTER_EXEMPTION, NODE_EXPORTER_REASON)}, "spec": pod}},
            opts=self._opts())
        # Host-network pods bypass most CNIs' policies; declared anyway (K8S-017), and
        # exact where the CNI does enforce them.
        self._netpol("node-exporter", ns, lbl, sel,
                     [{"from": [common.namespace_peer(a["namespace"], self._labels("prometheus")[1])],
                       "ports": common.tcp(mc.NODE_EXPORTER_PORT)}], [])
        return ds

    # ------------------------------------------------------------------ grafana
    def _grafana(self, prom_url: str, am_url: str):
        a, ns = self._a, self._a["namespace"]
        lbl, sel = self._labels("grafana")
        self.grafana_admin_password = generated_secret(f"{self._name}-grafana-admin", 32, self._opts())
        secret_data: dict = {"admin-user": "admin", "admin-password": self.grafana_admin_password}
        es_user = a.get("elasticsearch_user") if a.get("elasticsearch_password") is not None else None
        if es_user:
            secret_data["elasticsearch-password"] = a["elasticsearch_password"]
        # Datasources live in the Secret: they name the logs user and its password variable.
        ds_text = mc.dump(dashboards.datasources(prom_url, am_url, a.get("elasticsearch_url"), es_user))
        secret_data["datasources.yaml"] = ds_text
        secret = k8s.core.v1.Secret(f"{self._name}-grafana", metadata=common.meta("grafana", ns, lbl),
                                    type="Opaque", string_data=pulumi.Output.secret(pulumi.Output.all(**secret_data)),
                                    opts=self._opts())
        provider_text = mc.dump(dashboards.provider_yaml())
        provisioning = k8s.core.v1.ConfigMap(
            f"{self._name}-grafana-provisioning", metadata=common.meta("grafana-provisioning", ns, lbl),
            data={"dashboards.yaml": provider_text}, opts=self._opts())
        boards = k8s.core.v1.ConfigMap(
            f"{self._name}-grafana-dashboards", metadata=common.meta("grafana-dashboards", ns, lbl),
            data=self.dashboards, opts=self._opts())
        sa = self._sa("grafana", ns, lbl)
        env = [
            common.secret_env("GF_SECURITY_ADMIN_USER", secret.metadata.name, "admin-user"),
            common.secret_env("GF_SECURITY_ADMIN_PASSWORD", secret.metadata.name, "admin-password"),
            {"name": "GF_USERS_ALLOW_SIGN_UP", "value": "false"},
            {"name": "GF_AUTH_ANONYMOUS_ENABLED", "value": "false"},
            {"name": "GF_ANALYTICS_REPORTING_ENABLED", "value": "false"},
            {"name": "GF_ANALYTICS_CHECK_FOR_UPDATES", "value": "false"},
            {"name": "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES", "value": "false"},
            {"name": "GF_SECURITY_DISABLE_GRAVATAR", "value": "true"},
            {"name": "GF_SECURITY_COOKIE_SECURE", "value": "true"},
            {"name": "GF_PATHS_PROVISIONING", "value": "/etc/grafana/provisioning"},
            {"name": "GF_PATHS_DATA", "value": "/var/lib/grafana"},
            {"name": "GF_LOG_MODE", "value": "console"},
        ]
        if es_user:
            env.append(common.secret_env("GF_ELASTICSEARCH_PASSWORD", secret.metadata.name, "elasticsearch-password"))
        container = _container(
            "grafana", images.GRAFANA, a["resources"]["grafana"], ports=[("http", mc.GRAFANA_PORT)], env=env,
            readiness=common.http_probe("/api/health", "http", period=10, timeout=3, failures=3),
            liveness=common.tcp_probe("http", period=15, timeout=5, failures=4),
            startup=common.http_probe("/api/health", "http", period=5, timeout=3, failures=60),
            mounts=[common.mount("data", "/var/lib/grafana"), common.mount("tmp", "/tmp"),
                    common.mount("provisioning", "/etc/grafana/provisioning/datasources", read_only=True,
                                 sub_path=None),
                    common.mount("provider", "/etc/grafana/provisioning/dashboards", read_only=True),
                    common.mount("dashboards", "/var/lib/grafana/dashboards/new-api", read_only=True)])
        cm = provisioning.metadata.name
        pod = common.restricted_pod_spec(identity="grafana",
                                         service_account=sa.metadata.name, containers=[common.draining(container)],
                                         termination_grace_seconds=30, volumes=[
            # Stateless by design: everything is provisioned, so the SQLite DB is scratch.
            common.empty_dir("data", "1Gi"), common.empty_dir("tmp", "256Mi"),
            {"name": "provisioning", "secret": {"secret_name": secret.metadata.name, "default_mode": 0o440,
                                                "items": [{"key": "datasources.yaml", "path": "datasources.yaml"}]}},
            {"name": "provider", "config_map": {"name": cm, "items": [
                {"key": "dashboards.yaml", "path": "dashboards.yaml"}]}},
            {"name": "dashboards", "config_map": {"name": boards.metadata.name}}])
        checksum = _checksum(ds_text, provider_text, *self.dashboards.values())
        # Grafana reads its credentials from the environment at start only: the admin
        # password (its database is scratch, so a new pod creates the admin with the new
        # one) and the logs reader's password. A new one must roll the pods
        # (secrets.rotation_trigger: random bytes keyed by them, never a digest).
        credentials = {k: v for k, v in secret_data.items() if k.endswith("password")}
        rotation = rotation_trigger(f"{self._name}-grafana-rotation", credentials, self._opts())
        dep = k8s.apps.v1.Deployment(
            f"{self._name}-grafana", metadata=common.meta("grafana", ns, lbl),
            # Grafana keeps no state (everything is provisioned): it can roll like the rest.
            spec={"replicas": 1, "strategy": common.ZERO_DOWNTIME_ROLLING, "selector": {"match_labels": sel},
                  "template": {"metadata": {"labels": lbl, "annotations": {"checksum/provisioning": checksum,
                                                                           ROTATION_ANNOTATION: rotation}},
                               "spec": pod}},
            opts=self._opts(secret, provisioning, boards))
        self._service("grafana", ns, lbl, sel, [("http", mc.GRAFANA_PORT)])
        egress = [{"to": [{"pod_selector": {"match_labels": self._labels(c)[1]}} for c in ("prometheus",
                                                                                        "alertmanager")],
                   "ports": common.tcp(mc.PROMETHEUS_PORT, mc.ALERTMANAGER_PORT)}]
        if a["mode"] == "operator":
            egress.append({"to": [common.namespace_peer(ns)], "ports": common.tcp(mc.PROMETHEUS_PORT, mc.ALERTMANAGER_PORT)})
        if a.get("elasticsearch_url"):
            egress.append({"to": [common.namespace_peer(a["elasticsearch_namespace"],
                                           {"app.kubernetes.io/name": "elasticsearch"})], "ports": common.tcp(9200)})
        # Who may reach Grafana: Prometheus (its /metrics) and, only when Grafana is
        # published through it, the ingress controller (issue 13 #12). Operators use
        # `kubectl port-forward`, which enters the pod's own network namespace.
        ingress = [{"from": [{"pod_selector": {"match_labels": self._labels("prometheus")[1]}}],
                    "ports": common.tcp(mc.GRAFANA_PORT)}]
        if a.get("grafana_ingress_namespace"):
            ingress.append({"from": [common.namespace_peer(a["grafana_ingress_namespace"])],
                            "ports": common.tcp(mc.GRAFANA_PORT)})
        self._netpol("grafana", ns, lbl, sel, ingress, egress)
        self.grafana = dep
        return dep

    # ------------------------------------------------------------------ prometheus adapter
    def _adapter(self, prom_url: str):
        a, ns = self._a, self._a["namespace"]
        lbl, sel = self._labels("adapter")
        text = mc.adapter_yaml(self.targets)
        cm = k8s.core.v1.ConfigMap(f"{self._name}-adapter", metadata=common.meta("prometheus-adapter", ns, lbl),
                                   data={"config.yaml": text}, opts=self._opts())
        sa = k8s.core.v1.ServiceAccount(f"{self._name}-adapter", metadata=common.meta("prometheus-adapter", ns, lbl),
                                        automount_service_account_token=False, opts=self._opts())
        self._bind_cluster_role(
            "prometheus-adapter", lbl,
            [{"api_groups": [""], "resources": ["namespaces", "pods", "services", "nodes"],
              "verbs": ["get", "list", "watch"]},
             {"api_groups": [self.targets.entry.route_object[0]], "resources": [self.targets.entry.route_object[2]],
              "verbs": ["get", "list", "watch"]}],
            "prometheus-adapter", ns)
        subject = [{"kind": "ServiceAccount", "name": "prometheus-adapter", "namespace": ns}]
        k8s.rbac.v1.ClusterRoleBinding(
            f"{self._name}-adapter-auth-delegator", metadata=common.meta(f"{ns}-prometheus-adapter-auth", None, lbl),
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
            subjects=subject, opts=self._opts())
        k8s.rbac.v1.RoleBinding(
            f"{self._name}-adapter-auth-reader", metadata=common.meta(f"{ns}-prometheus-adapter", "kube-system", lbl),
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "Role",
                      "name": "extension-apiserver-authentication-reader"},
            subjects=subject, opts=self._opts())
        # Serving certificate from cert-manager; cainjector writes its CA into the APIService.
        issuer = k8s.apiextensions.CustomResource(
            f"{self._name}-adapter-issuer", api_version="cert-manager.io/v1", kind="Issuer",
            metadata=common.meta("prometheus-adapter-selfsigned", ns, lbl), spec={"selfSigned": {}},
            opts=self._opts())
        cert = k8s.apiextensions.CustomResource(
            f"{self._name}-adapter-cert", api_version="cert-manager.io/v1", kind="Certificate",
            metadata=common.meta(ADAPTER_CERTIFICATE, ns, lbl),
            spec={"secretName": ADAPTER_CERTIFICATE, "duration": "2160h", "renewBefore": "360h",
                  "dnsNames": [f"prometheus-adapter.{ns}.svc", f"prometheus-adapter.{ns}.svc.cluster.local"],
                  "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
                  "usages": ["server auth", "digital signature", "key encipherment"],
                  "issuerRef": {"name": "prometheus-adapter-selfsigned", "kind": "Issuer",
                                "group": "cert-manager.io"}},
            opts=self._opts(issuer))
        https = lambda path, period, failures: {  # noqa: E731
            **common.http_probe(path, "https", period=period, timeout=5, failures=failures),
            "http_get": {"path": path, "port": "https", "scheme": "HTTPS"}}
        container = _container(
            "prometheus-adapter", images.PROMETHEUS_ADAPTER, a["resources"]["adapter"],
            args=[f"--prometheus-url={prom_url}", "--config=/etc/adapter/config.yaml",
                  f"--secure-port={mc.ADAPTER_PORT}", "--tls-cert-file=/var/run/serving-cert/tls.crt",
                  "--tls-private-key-file=/var/run/serving-cert/tls.key", "--metrics-relist-interval=1m"],
            ports=[("https", mc.ADAPTER_PORT)], readiness=https("/readyz", 10, 3), liveness=https("/livez", 20, 3),
            mounts=[common.mount("config", "/etc/adapter", read_only=True),
                    common.mount("serving-cert", "/var/run/serving-cert", read_only=True),
                    common.mount("tmp", "/tmp")])
        dep = k8s.apps.v1.Deployment(
            f"{self._name}-adapter",
            metadata=common.meta("prometheus-adapter", ns, lbl, common.exemption_annotations(
                API_CLIENT_EXEMPTION, ADAPTER_REASON, checkov=API_CLIENT_CHECKOV)),
            spec={"replicas": 1, "strategy": common.ZERO_DOWNTIME_ROLLING, "selector": {"match_labels": sel},
                  "template": {
                "metadata": {"labels": lbl, "annotations": {
                    "checksum/config": _checksum(text),
                    **common.exemption_annotations(API_CLIENT_EXEMPTION, ADAPTER_REASON)}},
                "spec": common.restricted_pod_spec(identity="prometheus-adapter",
                    service_account=sa.metadata.name, containers=[common.draining(container)],
                    termination_grace_seconds=30, automount_token=True,
                    volumes=[{"name": "config", "config_map": {"name": cm.metadata.name}},
                             {"name": "serving-cert", "secret": {"secret_name": ADAPTER_CERTIFICATE}},
                             common.empty_dir("tmp", "64Mi")])}},
            opts=self._opts(cm, cert))
        svc = k8s.core.v1.Service(
            f"{self._name}-adapter", metadata=common.meta("prometheus-adapter", ns, lbl),
            spec={"type": "ClusterIP", "selector": sel,
                  "ports": [{"name": "https", "port": 443, "target_port": "https", "protocol": "TCP"}]},
            opts=self._opts())
        k8s.apiregistration.v1.APIService(
            f"{self._name}-adapter-apiservice",
            metadata=common.meta("v1beta1.custom.metrics.k8s.io", None, lbl,
                                 {"cert-manager.io/inject-ca-from": f"{ns}/{ADAPTER_CERTIFICATE}"}),
            spec={"group": "custom.metrics.k8s.io", "version": "v1beta1", "group_priority_minimum": 100,
                  "version_priority": 100, "service": {"name": "prometheus-adapter", "namespace": ns, "port": 443}},
            opts=self._opts(svc, dep, cert))
        self._netpol("prometheus-adapter", ns, lbl, sel,
                     [{"from": [{"ip_block": {"cidr": c}} for c in a["api_server_cidrs"]],
                       "ports": common.tcp(mc.ADAPTER_PORT)}],
                     [self._api_egress(),
                      {"to": [{"pod_selector": {"match_labels": self._labels("prometheus")[1]}},
                              *([common.namespace_peer(ns)] if a["mode"] == "operator" else [])],
                       "ports": common.tcp(mc.PROMETHEUS_PORT)}])
        self.adapter = dep

    # ------------------------------------------------------------------ operator mode
    def _operator_resources(self):
        a, ns, t = self._a, self._a["namespace"], self.targets
        lbl, _ = self._labels("operator")
        lbl = {**lbl, **a["operator_selector_labels"]}
        jobs = {j["job_name"]: j for j in mc.scrape_jobs(t)}
        self.monitors = []
        for job, port, namespace in mc.operator_pod_monitors(t):
            relabel = [r for r in jobs[job]["relabel_configs"]
                       if r.get("source_labels") != ["__meta_kubernetes_pod_container_port_number"]]
            relabel.append({"target_label": "job", "replacement": job})
            self.monitors.append(k8s.apiextensions.CustomResource(
                f"{self._name}-{job}", api_version="monitoring.coreos.com/v1", kind="PodMonitor",
                metadata=common.meta(job, ns, lbl),
                spec={"namespaceSelector": {"matchNames": [namespace]}, "selector": {},
                      "podMetricsEndpoints": [{"portNumber": port, "path": jobs[job].get("metrics_path", "/metrics"),
                                               "interval": jobs[job].get("scrape_interval", "15s"),
                                               **({"metricRelabelings": mc.relabelings(jobs[job]["metric_relabel_configs"])}
                                                  if jobs[job].get("metric_relabel_configs") else {}),
                                               # the exporter's own namespace/name labels win over
                                               # the target's (the operator sets namespace)
                                               **({"honorLabels": True} if jobs[job].get("honor_labels") else {}),
                                               "relabelings": mc.relabelings(relabel)}]},
                opts=self._opts()))
        _, bb_sel = self._labels("blackbox_exporter")
        for job, url, service in t.probes:
            probe = jobs[job]
            self.monitors.append(k8s.apiextensions.CustomResource(
                f"{self._name}-{job}-probe", api_version="monitoring.coreos.com/v1", kind="ServiceMonitor",
                metadata=common.meta(f"{job}-probe", ns, lbl),
                spec={"selector": {"matchLabels": bb_sel}, "namespaceSelector": {"matchNames": [ns]},
                      "endpoints": [{"port": "http", "path": "/probe", "interval": probe["scrape_interval"],
                                     "scrapeTimeout": probe["scrape_timeout"],
                                     "params": {"module": [mc.BLACKBOX_MODULE], "target": [url]},
                                     "relabelings": mc.relabelings([
                                         {"target_label": "job", "replacement": job},
                                         {"target_label": "instance", "replacement": url},
                                         {"target_label": "namespace", "replacement": t.app_namespace},
                                         {"target_label": "service", "replacement": service}])}]},
                opts=self._opts()))
        self.prometheus_rule = k8s.apiextensions.CustomResource(
            f"{self._name}-rules", api_version="monitoring.coreos.com/v1", kind="PrometheusRule",
            metadata=common.meta("new-api", ns, lbl), spec=mc.prometheus_rule_spec(t, self.slo), opts=self._opts())
        self.alertmanager_config = k8s.apiextensions.CustomResource(
            f"{self._name}-alertmanager-config", api_version="monitoring.coreos.com/v1alpha1",
            kind="AlertmanagerConfig", metadata=common.meta("new-api", ns, lbl, {
                # The prerequisite this object routes under (see mc.alertmanager_config_spec).
                MATCHER_STRATEGY_ANNOTATION: a["alertmanager_config_matcher_strategy"]}),
            spec=mc.alertmanager_config_spec(self.receivers, self._credentials_secret_name,
                                             mc.alert_names(mc.rule_groups(t, self.slo))),
            opts=self._opts(self.credentials))
