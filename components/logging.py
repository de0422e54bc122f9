"""``Logging``: Elasticsearch, Logstash, Kibana and Filebeat for New API's logs
(issue 5; seed 000 ELK chapter, fixed per SEED-NOTES.md §5.7)."""


import hashlib
import json
import ipaddress
from typing import Any, Optional, Sequence, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from . import common, images
from . import entry_metrics as em
from . import kibana_config as kc
from . import logging_alerts as la
from . import logging_config as lc
from .base import PlatformComponent
from .secrets import ROTATION_ANNOTATION, generated_secret, rotation_trigger

WORKLOADS = ("elasticsearch", "logstash", "kibana", "filebeat", "setup", "exporter")
DEFAULT_RESOURCES: dict[str, dict] = {
    "elasticsearch": {"cpu_request": "1", "memory_request": "", "memory_limit": ""},  # memory = 2 x heap
    "logstash": {"cpu_request": "500m", "memory_request": "1Gi", "memory_limit": "1536Mi"},
    "kibana": {"cpu_request": "250m", "memory_request": "1Gi", "memory_limit": "1536Mi"},
    "filebeat": {"cpu_request": "100m", "memory_request": "128Mi", "memory_limit": "384Mi"},
    "setup": {"cpu_request": "20m", "memory_request": "32Mi", "memory_limit": "128Mi"},
    "exporter": {"cpu_request": "10m", "memory_request": "24Mi", "memory_limit": "64Mi"},
}
"""Production sizes; a dev stack shrinks them through config."""
FILEBEAT_EXEMPTION = ("K8S-010", "K8S-015")
FILEBEAT_REASON = ("Filebeat reads container logs from the node: read-only hostPath /var/log/containers "
                   "and /var/log/pods (files 0640 root:root, read through supplemental group 0); its "
                   "autodiscover watches pods through the API")
ES_HOME = "/usr/share/elasticsearch"


#: ServiceAccount of the Elasticsearch pods (the subject of its snapshot IRSA role).
ELASTICSEARCH_SERVICE_ACCOUNT = "elasticsearch"
#: The cert-manager Certificates of Elasticsearch's transport TLS (the per-stack CA and the
#: nodes' certificate): the monitoring alerts on their expiry and readiness.
CA_CERTIFICATE = "elasticsearch-ca"
TRANSPORT_CERTIFICATE = "elasticsearch-transport"
CERTIFICATES = (CA_CERTIFICATE, TRANSPORT_CERTIFICATE)


class ProxyAccessLogArgs(TypedDict, total=False):
    namespace: str
    """Namespace of the proxy pods (Envoy Gateway's, default envoy-gateway-system)."""
    gateway_name: str
    """The Gateway whose proxies they are (pod label owning-gateway-name)."""
    gateway_namespace: str
    """Its namespace (pod label owning-gateway-namespace)."""
    route: str
    """The app's HTTPRoute (default: app_name); its relay and playground rules are counted."""


class LoggingArgs(TypedDict, total=False):
    namespace: str
    """Namespace of Elasticsearch, Logstash and Kibana (restricted; must exist)."""
    agent_namespace: str
    """Namespace of the Filebeat DaemonSet (Pod Security ``privileged`` for hostPath; must exist)."""
    app_namespace: str
    """Namespace whose containers' logs are collected (New API's)."""
    app_name: str
    """``app.kubernetes.io/name`` of New API's pods (default new-api): their lines are parsed."""
    environment: str
    """``environment`` field of every event (seed: production)."""
    monitoring_namespace: str
    """Namespace of Grafana (allowed to query Elasticsearch), optional."""
    elasticsearch_replicas: int
    """1 (single-node discovery) or 3+ (odd; anti-affinity, PDB). Default 3."""
    heap: str
    """Elasticsearch JVM heap, e.g. 1g (seed dev: 512m). The container memory is twice the heap."""
    storage_size: str
    """Data volume per node (default 50Gi)."""
    storage_class: str
    """StorageClass (default: the cluster default)."""
    allow_mmap: bool
    """``node.store.allow_mmap``: true needs ``vm.max_map_count >= 262144`` on the nodes (a node
    prerequisite, never a privileged init container); false (dev) works anywhere."""
    logstash_replicas: int
    """Logstash replicas (default 2, with a PDB)."""
    logstash_heap: str
    """Logstash JVM heap (default 512m)."""
    kibana: bool
    """Deploy Kibana (default true)."""
    kibana_replicas: int
    """Kibana instances (default 1; 2 with a PDB when it is served publicly in prod)."""
    kibana_host: str
    """Public host Kibana is served on through a TlsIngress (optional; Kibana's own login
    guards it): sets its public base URL and admits the ingress controller."""
    ingress_namespace: str
    """Namespace of the ingress controller (with ``kibana_host``; default ingress-nginx)."""
    retention_days: int
    """ILM delete phase (seed matrix: 180 in prod)."""
    snapshot_bucket: pulumi.Input[str]
    """S3 bucket for nightly snapshots (SLM); needs ``service_account_annotations`` (IRSA)."""
    snapshot_base_path: str
    """Key prefix of the snapshots in that bucket (default elasticsearch-snapshots)."""
    snapshot_volume_size: str
    """Instead of a bucket: a filesystem snapshot repository on a volume of this size
    (single-node clusters only, e.g. dev)."""
    snapshot_retention_days: int
    """Days a nightly snapshot is kept (default 30)."""
    service_account_annotations: dict[str, str]
    """Annotations of Elasticsearch's ServiceAccount (e.g. eks.amazonaws.com/role-arn)."""
    object_storage_cidrs: list[str]
    """Where snapshots to S3 may go on 443 (default: public addresses only)."""
    api_server_cidrs: list[str]
    """Kubernetes API server addresses (Filebeat metadata egress)."""
    resources: dict[str, dict[str, str]]
    """Per-workload overrides of ``DEFAULT_RESOURCES``."""
    protect: bool
    """Protect Elasticsearch and retain its volumes (prod)."""
    proxy_access_log: ProxyAccessLogArgs
    """The Gateway API entry's proxies whose access log (``entry.ACCESS_LOG_FORMAT``) Filebeat
    collects and Logstash counts into the relay's time-to-first-byte SLI, then drops
    (docs/relay-ttfb-gateway.md). Unset: not collected."""




def _checksum(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _heap_bytes(heap: str) -> float:
    import re
    m = re.fullmatch(r"(\d+)([mg])", heap)
    if not m:
        raise ValueError(f"heap: {heap!r} must look like 512m or 2g")
    return int(m.group(1)) * (2**20 if m.group(2) == "m" else 2**30)


def _validate(args: LoggingArgs) -> dict:
    a = dict(args)
    for key in ("namespace", "agent_namespace", "app_namespace"):
        common.require(isinstance(a.get(key), str) and common.is_dns_label(a[key]), key,
                       f"{a.get(key)!r} must be a DNS-1123 label")
    a.setdefault("app_name", "new-api")
    a.setdefault("environment", "production")
    a.setdefault("elasticsearch_replicas", 3)
    n = int(a["elasticsearch_replicas"])
    common.require(n == 1 or (n >= 3 and n % 2 == 1), "elasticsearch_replicas",
                   f"{n} must be 1 (single node) or an odd number >= 3 (master quorum)")
    a.setdefault("heap", "1g")
    a.setdefault("logstash_heap", "512m")
    for key in ("heap", "logstash_heap"):
        try:
            _heap_bytes(a[key])
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    common.require(_heap_bytes(a["heap"]) >= 256 * 2**20, "heap", "must be at least 256m")
    a.setdefault("storage_size", "50Gi")
    common.parse_quantity(a["storage_size"])
    a.setdefault("allow_mmap", True)
    a.setdefault("logstash_replicas", 2)
    common.require(int(a["logstash_replicas"]) >= 1, "logstash_replicas", "must be at least 1")
    a.setdefault("kibana", True)
    a.setdefault("retention_days", 180)
    common.require(1 <= int(a["retention_days"]) <= 3650, "retention_days", "must be 1 to 3650")
    if a.get("snapshot_bucket"):
        common.require(bool(a.get("service_account_annotations")), "service_account_annotations",
                       "snapshot_bucket needs an IRSA role annotation (no static AWS keys)")
        common.require(not a.get("snapshot_volume_size"), "snapshot_volume_size",
                       "set either snapshot_bucket or snapshot_volume_size, not both")
    if a.get("snapshot_volume_size"):
        common.parse_quantity(a["snapshot_volume_size"])
        common.require(int(a.get("elasticsearch_replicas", 1)) == 1, "snapshot_volume_size",
                       "a filesystem repository needs storage shared by every node: with several "
                       "Elasticsearch nodes use snapshot_bucket")
    a.setdefault("snapshot_base_path", "elasticsearch-snapshots")
    a.setdefault("snapshot_retention_days", 30)
    common.require(1 <= int(a["snapshot_retention_days"]) <= 3650, "snapshot_retention_days", "must be 1 to 3650")
    a["api_server_cidrs"] = list(a.get("api_server_cidrs") or common.PRIVATE_CIDRS)
    for cidr in a["api_server_cidrs"]:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            raise ValueError(f"api_server_cidrs: {cidr!r} is not a CIDR ({exc})") from None
    given = dict(a.get("resources") or {})
    unknown = sorted(set(given) - set(WORKLOADS))
    common.require(not unknown, "resources", f"unknown workloads {unknown}; allowed: {list(WORKLOADS)}")
    res = {w: {**DEFAULT_RESOURCES[w], **{k: v for k, v in (given.get(w) or {}).items() if v}}
           for w in WORKLOADS}
    es_mem = f"{int(_heap_bytes(a['heap']) * 2 / 2**20)}Mi"
    res["elasticsearch"]["memory_request"] = res["elasticsearch"]["memory_request"] or es_mem
    res["elasticsearch"]["memory_limit"] = res["elasticsearch"]["memory_limit"] or es_mem
    for w, spec in res.items():
        for field, value in spec.items():
            if value:
                try:
                    common.parse_quantity(value)
                except ValueError as exc:
                    raise ValueError(f"resources.{w}.{field}: {exc}") from None
    a["resources"] = res
    proxies = a.get("proxy_access_log")
    if proxies:
        for key in ("namespace", "gateway_name", "gateway_namespace"):
            common.require(isinstance(proxies.get(key), str) and common.is_dns_label(proxies[key]),
                           f"proxy_access_log.{key}", f"{proxies.get(key)!r} must be a DNS-1123 label")
        a["proxy_access_log"] = {**proxies, "route": proxies.get("route") or a["app_name"]}
    return a


def relay_source(a: dict) -> Optional[em.EnvoyGateway]:
    """The metric source whose relay counters the pipeline renders (None: not counted)."""
    proxies = a.get("proxy_access_log")
    if not proxies:
        return None
    return em.EnvoyGateway(em.App(namespace=a["app_namespace"], service=proxies["route"]), relay_counted=True)






class Logging(PlatformComponent):
    """Log pipeline for New API (Filebeat -> Logstash -> Elasticsearch <- Kibana/Grafana):

    - **Elasticsearch** StatefulSet: one node (dev, single-node discovery) or three
      master-eligible nodes (prod: seed hosts, required anti-affinity, PDB), security on
      with a generated ``elastic`` password, transport TLS from cert-manager certificates
      (a self-signed CA per stack; no privileged init containers: the config directory
      is copied to an emptyDir so the root filesystem stays read-only), heap from args,
      a volume per node, ``node.store.allow_mmap`` from args;
    - a **setup Job** that applies, idempotently, the ILM policy (delete after
      ``retention_days``), the index template, the writer/reader roles and users, the
      ``kibana_system`` password and, with a bucket (S3) or a snapshot volume
      (filesystem), nightly snapshots (SLM), Elasticsearch's backup;
    - **Logstash**: beats on 5044, New API's plain-text lines parsed with grok (JSON only
      for lines that are JSON), UTC dates, daily ``new-api-logs-*`` indices, as the
      ``logstash_writer`` user from a Secret;
    - **Kibana** with generated encryption keys;
    - **Filebeat** DaemonSet in ``agent_namespace``: Kubernetes autodiscover of the app
      namespace's containers (and, with ``proxy_access_log``, of the Gateway's proxies'
      access log, counted by Logstash and not indexed), New API's multiline rule, read-only host log access by an
      explicit K8S-010 exemption, non-root (supplemental group 0 reads the 0640 logs);
    - a NetworkPolicy per workload (ES <- Logstash, Kibana, Grafana, setup; Logstash <- Filebeat).
    """

    elasticsearch_url: pulumi.Output[str]
    """In-cluster URL of Elasticsearch (HTTP, basic auth)."""
    kibana_url: pulumi.Output[str]
    """In-cluster URL of Kibana."""
    elastic_password: pulumi.Output[str]
    """Password of the ``elastic`` superuser (secret)."""
    reader_user: pulumi.Output[str]
    """Read-only user for dashboards (Grafana)."""
    reader_password: pulumi.Output[str]
    """Its password (secret)."""

    def __init__(self, name: str, args: LoggingArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("new-api:index:Logging", name, None, opts)
        a = _validate(args)
        self._name, self._a = name, a
        ns = a["namespace"]
        self.es_url = f"http://elasticsearch.{ns}.svc:{lc.ES_HTTP_PORT}"

        def password(suffix: str, length: int = 32) -> pulumi.Output[str]:
            return generated_secret(f"{name}-{suffix}", length, self._opts())

        self.elastic_password = password("elastic-password")
        #: Every user's password by its Secret key (``lc.USERS``); rotate one with
        #: ``pulumi up --replace <urn of its RandomPassword>``.
        self.passwords = {key: password(key) for _, _, key in lc.USERS.values()}
        self.writer_password = self.passwords["writer-password"]
        self.reader_password = self.passwords["reader-password"]
        lbl, _ = self._labels("elasticsearch")
        self.credentials = k8s.core.v1.Secret(
            f"{name}-es-credentials", metadata=common.meta("elasticsearch-credentials", ns, lbl), type="Opaque",
            string_data=pulumi.Output.secret(pulumi.Output.all(**{
                "elastic-password": self.elastic_password, "writer-user": lc.WRITER_USER, **self.passwords})),
            opts=self._opts())
        self.elasticsearch = self._elasticsearch()
        self.setup_job = self._setup()
        self.logstash = self._logstash()
        if a["kibana"]:
            self._kibana()
        self.filebeat = self._filebeat()
        self.elasticsearch_url = pulumi.Output.from_input(self.es_url)
        self.kibana_url = pulumi.Output.from_input(f"http://kibana.{ns}.svc:{lc.KIBANA_PORT}" if a["kibana"] else "")
        self.reader_user = pulumi.Output.from_input(lc.READER_USER)
        self.register_outputs({
            "elasticsearch_url": self.elasticsearch_url, "kibana_url": self.kibana_url,
            "elastic_password": self.elastic_password, "reader_user": self.reader_user,
            "reader_password": self.reader_password,
        })

    # ------------------------------------------------------------------ helpers
    def _rotation(self, consumer: str, *secret_keys: str, extra: Optional[dict] = None) -> dict:
        """The pod-template annotation that rolls a workload (or replaces a Job) when one of
        the credentials it reads (by their key in ``elasticsearch-credentials``) changes:
        ``secrets.rotation_trigger``, a RandomId keyed on exactly those credentials."""
        values = {"elastic-password": self.elastic_password, **self.passwords}
        credentials = {**{k: values[k] for k in secret_keys}, **(extra or {})}
        return {ROTATION_ANNOTATION: rotation_trigger(f"{self._name}-{consumer}-rotation", credentials, self._opts())}

    def _container(self, name: str, image: str, res: dict, **kw) -> dict:
        return common.container(name, image, common.resources_of(res, kw.pop("ephemeral", "64Mi")), **kw)

    # ------------------------------------------------------------------ elasticsearch
    def _tls(self, ns: str, lbl: dict):
        """Per-stack CA and transport certificate (cert-manager): self-signed Issuer ->
        CA Certificate -> CA Issuer -> node certificate for every pod of the headless Service."""
        cr = k8s.apiextensions.CustomResource
        selfsigned = cr(f"{self._name}-es-selfsigned", api_version="cert-manager.io/v1", kind="Issuer",
                        metadata=common.meta("elasticsearch-selfsigned", ns, lbl), spec={"selfSigned": {}},
                        opts=self._opts())
        ca = cr(f"{self._name}-es-ca", api_version="cert-manager.io/v1", kind="Certificate",
                metadata=common.meta(CA_CERTIFICATE, ns, lbl),
                spec={"isCA": True, "commonName": "new-api-logs-ca", "secretName": "elasticsearch-ca",
                      "duration": "87600h", "privateKey": {"algorithm": "ECDSA", "size": 256},
                      "issuerRef": {"name": "elasticsearch-selfsigned", "kind": "Issuer", "group": "cert-manager.io"}},
                opts=self._opts(selfsigned))
        issuer = cr(f"{self._name}-es-ca-issuer", api_version="cert-manager.io/v1", kind="Issuer",
                    metadata=common.meta("elasticsearch-ca", ns, lbl), spec={"ca": {"secretName": "elasticsearch-ca"}},
                    opts=self._opts(ca))
        cert = cr(f"{self._name}-es-transport", api_version="cert-manager.io/v1", kind="Certificate",
                  metadata=common.meta(TRANSPORT_CERTIFICATE, ns, lbl),
                  spec={"secretName": "elasticsearch-transport-tls", "duration": "8760h", "renewBefore": "720h",
                        "commonName": f"elasticsearch-headless.{ns}.svc",
                        "dnsNames": [f"elasticsearch-headless.{ns}.svc", f"*.elasticsearch-headless.{ns}.svc",
                                     f"*.elasticsearch-headless.{ns}.svc.cluster.local"],
                        "privateKey": {"algorithm": "RSA", "size": 2048, "encoding": "PKCS8",
                                       "rotationPolicy": "Always"},
                        "usages": ["server auth", "client auth", "digital signature", "key encipherment"],
                        "issuerRef": {"name": "elasticsearch-ca", "kind": "Issuer", "group": "cert-manager.io"}},
                  opts=self._opts(issuer))
        self.certificates = [selfsigned, ca, issuer, cert]
        return cert

    def _elasticsearch(self):
        a, ns = self._a, self._a["namespace"]
        lbl, sel = self._labels("elasticsearch")
        n = int(a["elasticsearch_replicas"])
        cert = self._tls(ns, lbl)
        fs_snapshots = bool(a.get("snapshot_volume_size"))
        text = lc.elasticsearch_yml(replicas=n, statefulset="elasticsearch", headless="elasticsearch-headless",
                                    allow_mmap=bool(a["allow_mmap"]),
                                    snapshot_path=lc.SNAPSHOT_PATH if fs_snapshots else None)
        cm = k8s.core.v1.ConfigMap(f"{self._name}-es-config", metadata=common.meta("elasticsearch-config", ns, lbl),
                                   data={"elasticsearch.yml": text}, opts=self._opts())
        sa = self._sa(ELASTICSEARCH_SERVICE_ACCOUNT, ns, lbl, annotations=a.get("service_account_annotations"))
        secret = self.credentials.metadata.name
        copy = ("cp -R /usr/share/elasticsearch/config/. /mnt/config/ && "
                "cp /mnt/es-config/elasticsearch.yml /mnt/config/elasticsearch.yml")
        if a.get("snapshot_bucket"):
            # IRSA for the S3 repository: ES reads the web-identity token from its config dir.
            copy += (" && mkdir -p /mnt/config/repository-s3 && "
                     "ln -sf \"$AWS_WEB_IDENTITY_TOKEN_FILE\" /mnt/config/repository-s3/aws-web-identity-token-file")
        init = self._container(
            "config", images.ELASTICSEARCH, a["resources"]["setup"], command=["bash", "-c", copy],
            volume_mounts=[common.mount("config", "/mnt/config"),
                           common.mount("es-config", "/mnt/es-config", read_only=True)])
        health = ('curl -s -o /dev/null -w "%{http_code}" -u "elastic:${ELASTIC_PASSWORD}" '
                  '"http://127.0.0.1:9200/_cluster/health?local=true" | grep -q 200')
        container = self._container(
            "elasticsearch", images.ELASTICSEARCH, a["resources"]["elasticsearch"], ephemeral="256Mi",
            env=[common.field_env("POD_NAME", "metadata.name"),
                 common.secret_env("ELASTIC_PASSWORD", secret, "elastic-password"),
                 {"name": "ES_JAVA_OPTS", "value": f"-Xms{a['heap']} -Xmx{a['heap']}"},
                 {"name": "ES_TMPDIR", "value": "/tmp"}],
            ports=[{"name": "http", "container_port": lc.ES_HTTP_PORT, "protocol": "TCP"},
                   {"name": "transport", "container_port": lc.ES_TRANSPORT_PORT, "protocol": "TCP"}],
            volume_mounts=[common.mount("config", f"{ES_HOME}/config"),
                           common.mount("transport-tls", f"{ES_HOME}/config/certs", read_only=True),
                           common.mount("data", f"{ES_HOME}/data"), common.mount("logs", f"{ES_HOME}/logs"),
                           *([common.mount("snapshots", lc.SNAPSHOT_PATH)] if fs_snapshots else []),
                           common.mount("tmp", "/tmp")],
            startup_probe=common.tcp_probe("http", period=10, timeout=5, failures=60),
            readiness_probe=common.exec_probe(["bash", "-c", health], period=10, timeout=5, failures=3),
            liveness_probe=common.tcp_probe("transport", period=20, timeout=5, failures=5))
        # Cluster health for Prometheus (ElasticsearchClusterRed/Yellow), through localhost.
        exporter = self._container(
            "exporter", images.ELASTICSEARCH_EXPORTER, a["resources"]["exporter"],
            # --collector.snapshots: snapshot age and state (ElasticsearchSnapshot* alerts).
            args=[f"--es.uri=http://127.0.0.1:{lc.ES_HTTP_PORT}", "--es.timeout=10s", "--collector.snapshots",
                  f"--web.listen-address=:{lc.ES_EXPORTER_PORT}"],
            env=[{"name": "ES_USERNAME", "value": lc.MONITOR_USER},
                 common.secret_env("ES_PASSWORD", secret, "monitor-password")],
            ports=[{"name": "metrics", "container_port": lc.ES_EXPORTER_PORT, "protocol": "TCP"}],
            readiness_probe=common.http_probe("/healthz", "metrics", period=15, timeout=5, failures=3),
            liveness_probe=common.tcp_probe("metrics", period=20, timeout=5, failures=3))
        pod = common.restricted_pod_spec(identity="elasticsearch",
            service_account=sa.metadata.name, containers=[container, exporter], init_containers=[init],
            termination_grace_seconds=120,
            volumes=[common.empty_dir("config", "64Mi"), common.empty_dir("logs", "512Mi"),
                     common.empty_dir("tmp", "512Mi"),
                     {"name": "es-config", "config_map": {"name": cm.metadata.name}},
                     {"name": "transport-tls", "secret": {"secret_name": "elasticsearch-transport-tls",
                                                          "default_mode": 0o440}}])
        if n > 1:
            pod["affinity"] = {"pod_anti_affinity": {"required_during_scheduling_ignored_during_execution": [
                {"label_selector": {"match_labels": sel}, "topology_key": "kubernetes.io/hostname"}]}}
            pod["topology_spread_constraints"] = common.topology_spread(sel)[:1]
        headless = k8s.core.v1.Service(
            f"{self._name}-es-headless", metadata=common.meta("elasticsearch-headless", ns, lbl),
            spec={"cluster_ip": "None", "publish_not_ready_addresses": True, "selector": sel,
                  "ports": [{"name": "http", "port": lc.ES_HTTP_PORT, "target_port": "http"},
                            {"name": "transport", "port": lc.ES_TRANSPORT_PORT, "target_port": "transport"}]},
            opts=self._opts())
        k8s.core.v1.Service(
            f"{self._name}-es", metadata=common.meta("elasticsearch", ns, lbl),
            spec={"type": "ClusterIP", "selector": sel,
                  "ports": [{"name": "http", "port": lc.ES_HTTP_PORT, "target_port": "http"}]},
            opts=self._opts())
        protect = bool(a.get("protect"))
        sts = k8s.apps.v1.StatefulSet(
            f"{self._name}-elasticsearch", metadata=common.meta("elasticsearch", ns, lbl),
            spec={"replicas": n, "service_name": "elasticsearch-headless", "selector": {"match_labels": sel},
                  # all masters must start together to elect one (OrderedReady would wait forever)
                  "pod_management_policy": "Parallel",
                  "update_strategy": {"type": "RollingUpdate"},
                  "persistent_volume_claim_retention_policy": {"when_deleted": "Retain" if protect else "Delete",
                                                                "when_scaled": "Retain"},
                  # elastic's password is the bootstrap password of each node's keystore,
                  # written from ELASTIC_PASSWORD at start (the config dir is rebuilt from
                  # the image every start) and active as long as nothing stores another
                  # through the API: a new password takes effect as the nodes roll. The
                  # exporter sidecar reads the monitor password.
                  "template": {"metadata": {"labels": lbl, "annotations": {
                      "checksum/config": _checksum(text), **self._rotation("elasticsearch", "elastic-password", "monitor-password")}},
                      "spec": pod},
                  "volume_claim_templates": [
                      common.volume_claim("data", lbl, a["storage_size"], a.get("storage_class")),
                      *([common.volume_claim("snapshots", lbl, a["snapshot_volume_size"], a.get("storage_class"))]
                        if fs_snapshots else []),
                  ]},
            opts=self._opts(cm, cert, headless, self.credentials, protect=protect, retain_on_delete=protect))
        if n > 1:
            self._pdb("elasticsearch", ns, lbl, sel, sts)
        clients = [{"pod_selector": {"match_labels": self._labels(c)[1]}} for c in ("logstash", "kibana", "setup")]
        if a.get("monitoring_namespace"):
            clients.append(common.namespace_peer(a["monitoring_namespace"], {"app.kubernetes.io/name": "grafana"}))
        egress = [{"to": [{"pod_selector": {"match_labels": sel}}], "ports": common.tcp(lc.ES_TRANSPORT_PORT)}]
        if a.get("snapshot_bucket"):
            egress.append({"to": common.public_egress_peers(a.get("object_storage_cidrs") or common.ANYWHERE),
                           "ports": common.tcp(443)})
        scrapers = ([{"from": [common.namespace_peer(a["monitoring_namespace"])],
                      "ports": common.tcp(lc.ES_EXPORTER_PORT)}] if a.get("monitoring_namespace") else [])
        self._netpol("elasticsearch", ns, lbl, sel,
                     [{"from": clients, "ports": common.tcp(lc.ES_HTTP_PORT)},
                      {"from": [{"pod_selector": {"match_labels": sel}}], "ports": common.tcp(lc.ES_TRANSPORT_PORT)},
                      *scrapers],
                     egress)
        return sts

    def _es_egress(self) -> dict:
        return {"to": [{"pod_selector": {"match_labels": self._labels("elasticsearch")[1]}}],
                "ports": common.tcp(lc.ES_HTTP_PORT)}

    # ------------------------------------------------------------------ setup job
    def _setup(self):
        a, ns = self._a, self._a["namespace"]
        lbl, sel = self._labels("setup")
        snapshots = bool(a.get("snapshot_bucket") or a.get("snapshot_volume_size"))

        def render(bucket) -> dict:
            repository = (lc.s3_repository(bucket, a["snapshot_base_path"]) if bucket
                          else lc.fs_repository() if a.get("snapshot_volume_size") else None)
            return lc.setup_files(int(a["retention_days"]), int(a["elasticsearch_replicas"]), repository,
                                  int(a["snapshot_retention_days"]))

        files = pulumi.Output.from_input(a.get("snapshot_bucket")).apply(render)
        cm = k8s.core.v1.ConfigMap(f"{self._name}-es-setup", metadata=common.meta("elasticsearch-setup", ns, lbl),
                                   data=files, opts=self._opts())
        sa = self._sa("elasticsearch-setup", ns, lbl)
        secret = self.credentials.metadata.name
        env = [{"name": "ES_URL", "value": self.es_url}, {"name": "HOME", "value": "/tmp"},
               {"name": "ILM_POLICY", "value": lc.ILM_POLICY},
               common.secret_env("ELASTIC_PASSWORD", secret, "elastic-password"),
               *(common.secret_env(variable, secret, key) for _, variable, key in lc.USERS.values())]
        container = self._container(
            "setup", images.ELASTICSEARCH, a["resources"]["setup"], command=["bash", "/setup/setup.sh"], env=env,
            volume_mounts=[common.mount("setup", "/setup", read_only=True), common.mount("tmp", "/tmp")])
        # The nightly SLM snapshots this Job installs are Elasticsearch's backup (STK-003).
        backup_of = {common.BACKUP_OF_ANNOTATION: f"{ns}/elasticsearch"} if snapshots else None
        job = k8s.batch.v1.Job(
            f"{self._name}-es-setup", metadata=common.meta("elasticsearch-setup", ns, lbl, backup_of),
            spec={"backoff_limit": 6, "active_deadline_seconds": 1200, "ttl_seconds_after_finished": 86400,
                  # a changed file or password changes the template: the Job is replaced and
                  # re-applies everything (users with their current passwords).
                  "template": {"metadata": {"labels": lbl, "annotations": {
                      "checksum/setup": files.apply(lambda f: _checksum(*(f[k] for k in sorted(f)))),
                      **self._rotation("setup", "elastic-password", *(k for _, _, k in lc.USERS.values()))}},
                      "spec": common.restricted_pod_spec(identity="elasticsearch-setup",
                          service_account=sa.metadata.name, containers=[container], restart_policy="Never",
                          volumes=[{"name": "setup", "config_map": {"name": cm.metadata.name}},
                                   common.empty_dir("tmp", "16Mi")])}},
            # a Job's template is immutable: a changed setup replaces (and re-runs) the Job.
            opts=self._opts(self.elasticsearch, cm, delete_before_replace=True))
        self._netpol("elasticsearch-setup", ns, lbl, sel, [], [self._es_egress()])
        return job

    # ------------------------------------------------------------------ logstash
    def _logstash(self):
        a, ns = self._a, self._a["namespace"]
        lbl, sel = self._labels("logstash")
        n = int(a["logstash_replicas"])
        files = {"logstash.yml": lc.logstash_yml(), "pipelines.yml": lc.pipelines_yml(),
                 "new-api.conf": lc.logstash_pipeline(a["environment"], relay_source(a))}
        cm = k8s.core.v1.ConfigMap(f"{self._name}-logstash", metadata=common.meta("logstash", ns, lbl),
                                   data=files, opts=self._opts())
        sa = self._sa("logstash", ns, lbl)
        secret = self.credentials.metadata.name
        settings = "/usr/share/logstash/config"
        container = self._container(
            "logstash", images.LOGSTASH, a["resources"]["logstash"], ephemeral="256Mi",
            # Run logstash directly: the image's entrypoint rewrites logstash.yml from the
            # environment, which a read-only root filesystem does not allow.
            command=["/usr/share/logstash/bin/logstash"],
            env=[{"name": "LS_JAVA_OPTS", "value": f"-Xms{a['logstash_heap']} -Xmx{a['logstash_heap']}"},
                 {"name": "ES_HOSTS", "value": self.es_url},
                 common.secret_env("ES_USER", secret, "writer-user"),
                 common.secret_env("ES_PASSWORD", secret, "writer-password")],
            ports=[{"name": "beats", "container_port": lc.BEATS_PORT, "protocol": "TCP"},
                   {"name": "api", "container_port": lc.LOGSTASH_API_PORT, "protocol": "TCP"}],
            volume_mounts=[common.mount("config", f"{settings}/logstash.yml", read_only=True, sub_path="logstash.yml"),
                           common.mount("config", f"{settings}/pipelines.yml", read_only=True,
                                        sub_path="pipelines.yml"),
                           common.mount("config", "/usr/share/logstash/pipeline/new-api.conf", read_only=True,
                                        sub_path="new-api.conf"),
                           common.mount("data", "/usr/share/logstash/data"), common.mount("tmp", "/tmp")],
            startup_probe=common.http_probe("/", "api", period=10, timeout=5, failures=30),
            readiness_probe=common.http_probe("/_node/pipelines/new-api", "api", period=10, timeout=5, failures=3),
            liveness_probe=common.tcp_probe("api", period=20, timeout=5, failures=3))
        # Logstash's node stats (per-plugin counts of New API's lines) for Prometheus: the
        # log alerts (logging_alerts). Probes on its own port only: /healthcheck asks
        # Logstash, and the sidecar must not hold a starting Logstash pod out of the Service.
        exporter = self._container(
            "exporter", images.LOGSTASH_EXPORTER, a["resources"]["exporter"],
            env=[{"name": "LOGSTASH_URL", "value": f"http://127.0.0.1:{lc.LOGSTASH_API_PORT}"},
                 {"name": "PORT", "value": str(la.LOGSTASH_EXPORTER_PORT)}],
            ports=[{"name": "metrics", "container_port": la.LOGSTASH_EXPORTER_PORT, "protocol": "TCP"}],
            readiness_probe=common.tcp_probe("metrics", period=15, timeout=5, failures=3),
            liveness_probe=common.tcp_probe("metrics", period=20, timeout=5, failures=3))
        pod = common.restricted_pod_spec(identity="logstash",
            service_account=sa.metadata.name, containers=[common.draining(container), common.draining(exporter)],
            termination_grace_seconds=60,
            spread_labels=sel if n > 1 else None,
            volumes=[{"name": "config", "config_map": {"name": cm.metadata.name}},
                     common.empty_dir("data", "1Gi"), common.empty_dir("tmp", "256Mi")])
        dep = k8s.apps.v1.Deployment(
            f"{self._name}-logstash", metadata=common.meta("logstash", ns, lbl),
            spec={"replicas": n, "selector": {"match_labels": sel},
                  "strategy": common.ZERO_DOWNTIME_ROLLING,
                  "template": {"metadata": {"labels": lbl, "annotations": {
                      "checksum/config": _checksum(*files.values()), **self._rotation("logstash", "writer-password")}},
                      "spec": pod}},
            opts=self._opts(cm, self.setup_job))
        k8s.core.v1.Service(f"{self._name}-logstash", metadata=common.meta("logstash", ns, lbl),
                            spec={"type": "ClusterIP", "selector": sel, "ports": [
                                {"name": "beats", "port": lc.BEATS_PORT, "target_port": "beats"}]},
                            opts=self._opts())
        if n > 1:
            self._pdb("logstash", ns, lbl, sel, dep)
        scrapers = ([{"from": [common.namespace_peer(a["monitoring_namespace"])],
                      "ports": common.tcp(la.LOGSTASH_EXPORTER_PORT)}] if a.get("monitoring_namespace") else [])
        self._netpol("logstash", ns, lbl, sel,
                     [{"from": [common.namespace_peer(a["agent_namespace"], self._labels("filebeat")[1])],
                       "ports": common.tcp(lc.BEATS_PORT)}, *scrapers],
                     [self._es_egress()])
        return dep

    # ------------------------------------------------------------------ kibana
    def _kibana(self):
        a, ns = self._a, self._a["namespace"]
        lbl, sel = self._labels("kibana")
        keys = {}
        for key in ("security", "saved-objects", "reporting"):
            keys[key] = generated_secret(f"{self._name}-kibana-{key}-key", 48, self._opts(), mixed=False)
        secret = k8s.core.v1.Secret(f"{self._name}-kibana", metadata=common.meta("kibana-encryption-keys", ns, lbl),
                                    type="Opaque", string_data=pulumi.Output.secret(pulumi.Output.all(**keys)),
                                    opts=self._opts())
        sa = self._sa("kibana", ns, lbl)
        # Instances share the encryption keys, so sessions and saved objects survive either.
        replicas = int(a.get("kibana_replicas") or 1)
        heap_mb = max(256, int(common.parse_quantity(a["resources"]["kibana"]["memory_limit"]) / 2**20 * 0.6))
        container = self._container(
            "kibana", images.KIBANA, a["resources"]["kibana"],
            env=[{"name": "ELASTICSEARCH_HOSTS", "value": f'["{self.es_url}"]'},
                 {"name": "ELASTICSEARCH_USERNAME", "value": lc.KIBANA_USER},
                 common.secret_env("ELASTICSEARCH_PASSWORD", self.credentials.metadata.name, "kibana-password"),
                 common.secret_env("XPACK_SECURITY_ENCRYPTIONKEY", secret.metadata.name, "security"),
                 common.secret_env("XPACK_ENCRYPTEDSAVEDOBJECTS_ENCRYPTIONKEY", secret.metadata.name, "saved-objects"),
                 common.secret_env("XPACK_REPORTING_ENCRYPTIONKEY", secret.metadata.name, "reporting"),
                 {"name": "SERVER_HOST", "value": "0.0.0.0"},
                 {"name": "PATH_DATA", "value": "/usr/share/kibana/data"},
                 {"name": "TELEMETRY_OPTIN", "value": "false"},
                 {"name": "TELEMETRY_ALLOWCHANGINGOPTINSTATUS", "value": "false"},
                 {"name": "NODE_OPTIONS", "value": f"--max-old-space-size={heap_mb}"},
                 *([{"name": "SERVER_PUBLICBASEURL", "value": f"https://{a['kibana_host']}"}]
                   if a.get("kibana_host") else [])],
            ports=[{"name": "http", "container_port": lc.KIBANA_PORT, "protocol": "TCP"}],
            volume_mounts=[common.mount("data", "/usr/share/kibana/data"), common.mount("tmp", "/tmp")],
            startup_probe=common.http_probe("/login", "http", period=10, timeout=5, failures=60),
            readiness_probe=common.http_probe("/login", "http", period=10, timeout=5, failures=3),
            liveness_probe=common.tcp_probe("http", period=20, timeout=5, failures=3))
        dep = k8s.apps.v1.Deployment(
            f"{self._name}-kibana", metadata=common.meta("kibana", ns, lbl),
            spec={"replicas": replicas, "strategy": common.ZERO_DOWNTIME_ROLLING,
                  "selector": {"match_labels": sel},
                  "template": {"metadata": {"labels": lbl, "annotations": self._rotation(
                      "kibana", "kibana-password", extra={f"{k}-key": v for k, v in keys.items()})},
                  "spec": common.restricted_pod_spec(identity="kibana",
                      service_account=sa.metadata.name, containers=[common.draining(container)],
                      termination_grace_seconds=30, spread_labels=sel if replicas > 1 else None,
                      volumes=[common.empty_dir("data", "1Gi"), common.empty_dir("tmp", "256Mi")])}},
            opts=self._opts(secret, self.setup_job))
        k8s.core.v1.Service(f"{self._name}-kibana", metadata=common.meta("kibana", ns, lbl),
                            spec={"type": "ClusterIP", "selector": sel,
                                  "ports": [{"name": "http", "port": lc.KIBANA_PORT, "target_port": "http"}]},
                            opts=self._opts())
        # Kibana's clients only: the kibana-setup Job and, when it is published, the ingress
        # controller. Humans without a public host use `kubectl port-forward`, which reaches
        # the pod from inside its own network namespace (no NetworkPolicy applies).
        public = ([{"from": [common.namespace_peer(a.get("ingress_namespace") or "ingress-nginx")],
                    "ports": common.tcp(lc.KIBANA_PORT)}] if a.get("kibana_host") else [])
        self._netpol("kibana", ns, lbl, sel,
                     [{"from": [{"pod_selector": {"match_labels": self._labels("kibana-setup")[1]}}],
                       "ports": common.tcp(lc.KIBANA_PORT)}, *public],
                     [self._es_egress()])
        if replicas > 1:
            self._pdb("kibana", ns, lbl, sel, dep)
        self.kibana = dep
        self._kibana_setup(dep)

    def _kibana_setup(self, kibana):
        """A Job that creates the ``new-api-logs-*`` data view and seed 000's dashboard with
        its visualizations once Kibana is up (idempotent: overwrite on every run; a changed
        object changes the template, so the Job is replaced and re-runs)."""
        a, ns = self._a, self._a["namespace"]
        lbl, sel = self._labels("kibana-setup")
        sa = self._sa("kibana-setup", ns, lbl)
        objects = kc.saved_objects()
        cm = k8s.core.v1.ConfigMap(f"{self._name}-kibana-setup", metadata=common.meta("kibana-setup", ns, lbl),
                                   data=objects, opts=self._opts())
        container = self._container(
            "kibana-setup", images.ELASTICSEARCH, a["resources"]["setup"],
            command=["bash", "-c", kc.KIBANA_SETUP_SCRIPT],
            env=[{"name": "KIBANA_URL", "value": f"http://kibana.{ns}.svc:{lc.KIBANA_PORT}"},
                 {"name": "DATA_VIEW", "value": json.dumps(kc.data_view(), sort_keys=True)},
                 {"name": "DATA_VIEW_ID", "value": kc.DATA_VIEW_ID},
                 {"name": "OBJECTS_DIR", "value": "/kibana-setup"},
                 {"name": "HOME", "value": "/tmp"},
                 {"name": "KIBANA_SETUP_USER", "value": lc.KIBANA_SETUP_USER},
                 common.secret_env("KIBANA_SETUP_PASSWORD", self.credentials.metadata.name,
                                   lc.USERS[lc.KIBANA_SETUP_USER][2])],
            volume_mounts=[common.mount("objects", "/kibana-setup", read_only=True), common.mount("tmp", "/tmp")])
        k8s.batch.v1.Job(
            f"{self._name}-kibana-setup", metadata=common.meta("kibana-setup", ns, lbl),
            spec={"backoff_limit": 6, "active_deadline_seconds": 1200, "ttl_seconds_after_finished": 86400,
                  "template": {"metadata": {"labels": lbl, "annotations": {
                                   "checksum/objects": _checksum(*(objects[k] for k in sorted(objects))),
                                   **self._rotation("kibana-setup", lc.USERS[lc.KIBANA_SETUP_USER][2])}},
                               "spec": common.restricted_pod_spec(identity="kibana-setup",
                                   service_account=sa.metadata.name, containers=[container],
                                   restart_policy="Never",
                                   volumes=[{"name": "objects", "config_map": {"name": cm.metadata.name}},
                                            common.empty_dir("tmp", "16Mi")])}},
            opts=self._opts(kibana, cm, delete_before_replace=True))
        self._netpol("kibana-setup", ns, lbl, sel, [],
                     [{"to": [{"pod_selector": {"match_labels": self._labels("kibana")[1]}}],
                       "ports": common.tcp(lc.KIBANA_PORT)}])

    # ------------------------------------------------------------------ filebeat
    def _filebeat(self):
        a, ns = self._a, self._a["agent_namespace"]
        lbl, sel = self._labels("filebeat")
        text = lc.filebeat_yml(app_namespace=a["app_namespace"], app_name=a["app_name"],
                               environment=a["environment"], proxies=a.get("proxy_access_log"),
                               logstash_host=f"logstash.{a['namespace']}.svc:{lc.BEATS_PORT}")
        cm = k8s.core.v1.ConfigMap(f"{self._name}-filebeat", metadata=common.meta("filebeat", ns, lbl),
                                   data={"filebeat.yml": text}, opts=self._opts())
        sa = self._sa("filebeat", ns, lbl)
        role_name = f"{ns}-filebeat"
        role = k8s.rbac.v1.ClusterRole(
            f"{self._name}-filebeat", metadata=common.meta(role_name, None, lbl),
            rules=[{"api_groups": [""], "resources": ["pods", "namespaces", "nodes"], "verbs": ["get", "list", "watch"]},
                   {"api_groups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list", "watch"]},
                   {"api_groups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]}],
            opts=self._opts())
        k8s.rbac.v1.ClusterRoleBinding(
            f"{self._name}-filebeat", metadata=common.meta(role_name, None, lbl),
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
            subjects=[{"kind": "ServiceAccount", "name": "filebeat", "namespace": ns}], opts=self._opts(role))
        container = self._container(
            "filebeat", images.FILEBEAT, a["resources"]["filebeat"],
            args=["-c", "/etc/filebeat/filebeat.yml", "-e"],
            env=[common.field_env("NODE_NAME", "spec.nodeName")],
            ports=[{"name": "http", "container_port": lc.FILEBEAT_HTTP_PORT, "protocol": "TCP"}],
            volume_mounts=[common.mount("config", "/etc/filebeat", read_only=True),
                           common.mount("data", "/usr/share/filebeat/data"),
                           common.mount("varlogcontainers", "/var/log/containers", read_only=True),
                           common.mount("varlogpods", "/var/log/pods", read_only=True)],
            readiness_probe=common.http_probe("/stats", "http", period=15, timeout=5, failures=3),
            liveness_probe=common.http_probe("/", "http", period=30, timeout=5, failures=3))
        pod = common.restricted_pod_spec(identity="filebeat",
            service_account=sa.metadata.name, containers=[container], automount_token=True,
            termination_grace_seconds=30,
            volumes=[{"name": "config", "config_map": {"name": cm.metadata.name, "default_mode": 0o444}},
                     # Registry on an emptyDir: a restart re-reads recent files, and
                     # Logstash's fingerprint ids turn the re-sends into overwrites.
                     common.empty_dir("data", "256Mi"),
                     {"name": "varlogcontainers", "host_path": {"path": "/var/log/containers", "type": "Directory"}},
                     {"name": "varlogpods", "host_path": {"path": "/var/log/pods", "type": "Directory"}}])
        # Container logs are 0640 root:root; group 0 as a supplemental group reads them
        # without running as root.
        pod["security_context"]["supplemental_groups"] = [0]
        pod["tolerations"] = [{"operator": "Exists", "effect": "NoSchedule"}]
        exemption = common.exemption_annotations(FILEBEAT_EXEMPTION, FILEBEAT_REASON)
        ds = k8s.apps.v1.DaemonSet(
            f"{self._name}-filebeat", metadata=common.meta("filebeat", ns, lbl, common.exemption_annotations(
                FILEBEAT_EXEMPTION, FILEBEAT_REASON, checkov=("CKV_K8S_38",))),
            spec={"selector": {"match_labels": sel},
                  "update_strategy": {"type": "RollingUpdate", "rolling_update": {"max_unavailable": "10%"}},
                  "template": {"metadata": {"labels": lbl, "annotations": {
                      **exemption, "checksum/config": _checksum(text)}}, "spec": pod}},
            opts=self._opts(cm, self.logstash))
        self._netpol("filebeat", ns, lbl, sel, [],
                     [{"to": [common.namespace_peer(a["namespace"], self._labels("logstash")[1])], "ports": common.tcp(lc.BEATS_PORT)},
                      {"to": [{"ip_block": {"cidr": c}} for c in a["api_server_cidrs"]], "ports": common.tcp(443, 6443)}])
        return ds
