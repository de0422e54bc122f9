"""The public entry: what every other part of the stack needs to know about the proxy in
front of New API, for each entry kind, in one place.

``gateway`` (default): the Gateway API (v1) with Envoy Gateway as the reference
implementation. ``ingress-nginx``: the legacy Ingress path (ingress-nginx was archived
upstream in March 2026: no releases, no CVE fixes).

:func:`entry_spec` returns an :class:`EntrySpec`; components take it (or its fields)
instead of testing the kind themselves:

- the data plane's namespace and pod labels: NetworkPolicy peers of the app, Kibana,
  the ACME solver and Prometheus's scrape egress;
- the data plane's metrics port and path: the scrape job;
- the RED metric source (:mod:`components.entry_metrics`): rules, alerts, dashboards,
  canary and blue-green analyses, Prometheus Adapter's requests-per-second metric;
- the route object kind the HPA's Object metric describes and the adapter resolves;
- the canary traffic router of an Argo Rollout.

Pure functions, no Pulumi.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from . import entry_metrics as em

KINDS = ("gateway", "ingress-nginx")
DEFAULT_KIND = "gateway"

#: ingress-nginx controller metrics (``--metrics-port`` default).
INGRESS_NGINX_METRICS_PORT = 10254
#: Envoy Gateway's proxies serve Envoy's stats on 19001 at /stats/prometheus
#: (envoyproxy/gateway ``internal/xds/bootstrap/bootstrap.go`` ``EnvoyStatsPort``,
#: ``bootstrap.yaml.tpl``).
ENVOY_METRICS_PORT = 19001
ENVOY_METRICS_PATH = "/stats/prometheus"
#: Labels of every Envoy proxy pod Envoy Gateway runs
#: (``internal/infrastructure/kubernetes/proxy/resource.go`` ``EnvoyAppLabel``).
ENVOY_POD_LABELS = {"app.kubernetes.io/name": "envoy", "app.kubernetes.io/component": "proxy",
                    "app.kubernetes.io/managed-by": "envoy-gateway"}
#: Labels Envoy Gateway puts on the proxy pods of one Gateway, and the proxy's container
#: (``internal/infrastructure/kubernetes/proxy``: ``OwningGatewayNameLabel``,
#: ``OwningGatewayNamespaceLabel``; container ``envoy``, next to ``shutdown-manager``).
OWNING_GATEWAY_NAME_LABEL = "gateway.envoyproxy.io/owning-gateway-name"
OWNING_GATEWAY_NAMESPACE_LABEL = "gateway.envoyproxy.io/owning-gateway-namespace"
ENVOY_CONTAINER = "envoy"
#: The proxies' access log: one JSON object per request on the envoy container's stdout
#: (Envoy writes its own log to stderr). Envoy Gateway renders ``format.json`` as Envoy's
#: ``SubstitutionFormatString.json_format`` (``internal/xds/translator/accesslog.go``), whose
#: values are typed: durations and the status are JSON numbers, an unset value ``null``
#: (Envoy, ``configuration/observability/access_log/usage.rst``: ``%RESPONSE_DURATION%`` is
#: "from the start time to the first byte read from the upstream host", ``%DURATION%`` "to
#: the last byte out", ``%UPSTREAM_CLUSTER%`` the cluster, i.e. the backendRef). The path
#: is logged without its query string: relay keys travel there (``?key=``).
ACCESS_LOG_CLUSTER = "upstream_cluster"
ACCESS_LOG_FIRST_BYTE_MS = "response_duration"
ACCESS_LOG_DURATION_MS = "duration"
ACCESS_LOG_FORMAT = {
    "start_time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ_WITHOUT_QUERY(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    ACCESS_LOG_DURATION_MS: "%DURATION%",
    ACCESS_LOG_FIRST_BYTE_MS: "%RESPONSE_DURATION%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "authority": "%REQ(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%",
    ACCESS_LOG_CLUSTER: "%UPSTREAM_CLUSTER%",
    "route_name": "%ROUTE_NAME%",
}


def envoy_access_log() -> dict:
    """``EnvoyProxy.spec.telemetry.accessLog``: :data:`ACCESS_LOG_FORMAT` as JSON to stdout
    for every route (and the listener when no route matched), in place of Envoy Gateway's
    default text line, which carries the query string."""
    return {"settings": [{"format": {"type": "JSON", "json": dict(ACCESS_LOG_FORMAT)},
                          "sinks": [{"type": "File", "file": {"path": "/dev/stdout"}}]}]}


#: Argo Rollouts' Gateway API traffic-router plugin, as registered in the controller's
#: ``argo-rollouts-config`` ConfigMap (trafficRouterPlugins).
GATEWAY_API_PLUGIN = "argoproj-labs/gatewayAPI"
#: The header route the canary's ``setHeaderRoute`` step manages.
CANARY_HEADER_ROUTE = "canary-header"
#: The custom metric the app's HPA reads (requests per second, averaged over the pods).
RPS_METRIC = "new_api_requests_per_second"
#: Recorded series Prometheus Adapter serves for the Gateway API entry: Envoy's series
#: name no Kubernetes object, so the rule adds ``namespace`` and ``httproute``.
ROUTE_RPS_RECORD = "newapi:route_requests_per_second:rate2m"


@dataclass(frozen=True)
class EntrySpec:
    """What one entry kind means for the rest of the stack (see module docstring)."""
    kind: str
    #: Namespace of the pods that proxy the traffic (ingress-nginx's controller, or
    #: Envoy Gateway's proxies, which run in the controller's namespace by default).
    data_plane_namespace: str
    data_plane_labels: dict = field(default_factory=dict)
    metrics_port: int = INGRESS_NGINX_METRICS_PORT
    metrics_path: str = "/metrics"
    #: ingress-nginx's namespace while a migration keeps it next to the Gateway
    #: (docs/gateway-migration.md): its controller still reaches the app.
    legacy_namespace: Optional[str] = None
    #: Gateway API entry: the proxies write the JSON access log (``ACCESS_LOG_FORMAT``, set
    #: by the stack's EnvoyProxy) and the stack's Logstash counts the relay's time to first
    #: byte from it (docs/relay-ttfb-gateway.md). ingress-nginx measures it itself.
    relay_access_log: bool = False

    @property
    def job(self) -> str:
        return self.metric_source_class.job

    @property
    def metric_source_class(self) -> type:
        return {"ingress-nginx": em.IngressNginx, "gateway": em.EnvoyGateway}[self.kind]

    def red_source(self, app: em.App) -> em.RedSource:
        return self.metric_source_class(app, self.relay_access_log)

    @property
    def measures_relay(self) -> bool:
        """The relay's time to first byte is measured on this entry (its SLO, burn alerts and
        canary gate exist): :attr:`em.RedSource.measures_relay` of its source."""
        return self.red_source(em.App()).measures_relay

    @property
    def route_object(self) -> tuple[str, str, str]:
        """(API group, kind, plural resource) of the object that routes the app's host."""
        return {"ingress-nginx": ("networking.k8s.io", "Ingress", "ingresses"),
                "gateway": ("gateway.networking.k8s.io", "HTTPRoute", "httproutes")}[self.kind]

    def data_plane_peers(self) -> list[dict]:
        """Every data plane that may reach the app: the entry's, plus ingress-nginx's while
        a migration keeps it."""
        legacy = [{"namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": self.legacy_namespace}}}]
        return [self.data_plane_peer(), *(legacy if self.legacy_namespace else [])]

    def data_plane_peer(self) -> dict:
        """NetworkPolicy peer (snake_case, pulumi-kubernetes) of the data plane's pods."""
        peer: dict = {"namespace_selector": {"match_labels": {"kubernetes.io/metadata.name":
                                                               self.data_plane_namespace}}}
        if self.data_plane_labels:
            peer["pod_selector"] = {"match_labels": dict(self.data_plane_labels)}
        return peer

    # ------------------------------------------------------------------ autoscaling
    def hpa_rps_metric(self, route_name: str, rps_per_pod: float) -> dict:
        """The HPA metric (autoscaling/v2, snake_case for pulumi-kubernetes) that scales the
        serving pods on requests per second per pod: an Object metric on the route object
        with an ``AverageValue`` target, which the HPA divides by the current pod count.
        (A ``Pods`` metric would need per-pod series; neither proxy has them per upstream pod.)"""
        group, kind, _ = self.route_object
        return {"type": "Object", "object": {
            "metric": {"name": RPS_METRIC},
            "described_object": {"api_version": f"{group}/v1", "kind": kind, "name": route_name},
            "target": {"type": "AverageValue", "average_value": _quantity(rps_per_pod)},
        }}

    def adapter_rules(self) -> list[dict]:
        """Prometheus Adapter rules serving :data:`RPS_METRIC` on the route object
        (seed 004 §4.3; seed notes §4 #44: custom, not external, metrics)."""
        group, _, resource = self.route_object
        if self.kind == "ingress-nginx":
            return [{
                "seriesQuery": 'nginx_ingress_controller_requests{namespace!="",ingress!=""}',
                "resources": {"overrides": {
                    "namespace": {"resource": "namespace"},
                    "ingress": {"group": group, "resource": "ingress"},
                }},
                "name": {"matches": "^nginx_ingress_controller_requests$", "as": RPS_METRIC},
                "metricsQuery": "sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)",
            }]
        return [{
            "seriesQuery": f'{ROUTE_RPS_RECORD}{{namespace!="",httproute!=""}}',
            "resources": {"overrides": {
                "namespace": {"resource": "namespace"},
                "httproute": {"group": group, "resource": "httproute"},
            }},
            "name": {"matches": f"^{ROUTE_RPS_RECORD}$", "as": RPS_METRIC},
            "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
        }]

    def route_rps_rules(self, app: em.App) -> list[dict]:
        """Recording rules the adapter needs (Gateway API entry: Envoy's request rate per
        HTTPRoute, labelled with the route's namespace and name)."""
        if self.kind == "ingress-nginx":
            return []
        return [{"record": ROUTE_RPS_RECORD,
                 "expr": self.red_source(app).request_rate(window="2m"),
                 "labels": {"namespace": app.namespace, "httproute": app.route}}]


def tls_secret_name(route_name: str) -> str:
    """The TLS Secret of a site's host, on either entry (the Gateway listener's
    ``certificateRefs``, the Ingress's ``tls.secretName``): cert-manager's certificate-shim
    names the Certificate it creates after it, in the Gateway's or Ingress's namespace
    (cert-manager ``pkg/controller/certificate-shim/sync.go``, ``buildCertificates``)."""
    return f"{route_name}-tls"


def entry_spec(kind: str, data_plane_namespace: Optional[str] = None,
               legacy_namespace: Optional[str] = None, relay_access_log: bool = False) -> EntrySpec:
    """The spec of an entry kind (default data plane namespaces: the projects' own);
    ``legacy_namespace``: ingress-nginx's, kept during a migration to the Gateway API;
    ``relay_access_log``: see :attr:`EntrySpec.relay_access_log`."""
    if kind == "ingress-nginx":
        return EntrySpec(kind, data_plane_namespace or "ingress-nginx")
    if kind == "gateway":
        return EntrySpec(kind, data_plane_namespace or "envoy-gateway-system", dict(ENVOY_POD_LABELS),
                         ENVOY_METRICS_PORT, ENVOY_METRICS_PATH, legacy_namespace, relay_access_log)
    raise ValueError(f"entry kind {kind!r} must be one of {', '.join(KINDS)}")


def _quantity(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{int(round(value * 1000))}m"
