"""``GatewayEntry``: the public entry on the Gateway API (v1), Envoy Gateway as the
reference implementation.

What it creates (docs/gateway-entry.md has the why of each):

- a ``Gateway`` (or attaches to an existing shared one named by the caller): an HTTP
  listener (port 80: redirects and ACME HTTP-01) and one HTTPS listener per site, whose
  certificates cert-manager issues from the Gateway's ``cert-manager.io/cluster-issuer``
  annotation (cert-manager's gateway-shim, ``--enable-gateway-api``);
- an ``HTTPRoute`` per site in the site's namespace with the path groups as rules, in the
  order :data:`components.entry_metrics.PATH_GROUPS` gives (the metric source names Envoy's
  clusters by that rule index), and a redirect route from HTTP to HTTPS;
- every backendRef carries a ``ResponseHeaderModifier`` filter (``X-New-Api-Track:
  stable|canary``): with a filter, Envoy Gateway gives each backendRef a cluster of its own,
  so the canary's statistics are separate from the stable version's
  (docs/gateway-canary-metrics.md);
- a ClusterIssuer whose ACME HTTP-01 solver is a ``gatewayHTTPRoute`` on the HTTP listener,
  and a NetworkPolicy admitting the data plane to the solver pods;
- with Envoy Gateway (``envoy_gateway``), the policy objects the standard API has no field
  for: a ClientTrafficPolicy (stream idle timeout above the app's STREAMING_TIMEOUT, Envoy's
  own default is 5 min; X-Forwarded-For trusted hops), a BackendTrafficPolicy per route
  (route stream idle timeout) and an EnvoyProxy (drain time for in-flight streams; the JSON
  access log the relay's time-to-first-byte SLI is counted from). Other
  conformant implementations get routing, TLS and the request timeout from the standard
  objects alone.

Streaming: Envoy forwards request and response bodies as they arrive (no buffer filter is
configured) and enforces no request-body cap of its own; New API's MAX_REQUEST_BODY_MB
(128) limits bodies. The HTTPRoute ``timeouts.request`` is the total time a request may
take (Envoy's route timeout, 15 s when unset, would cut every stream).
"""


from typing import Optional, Required, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from . import common
from .entry import envoy_access_log, tls_secret_name
from .entry_metrics import PATH_GROUPS
from .ingress import ACME_SERVERS, acme_solver_policy, cluster_issuer, issuer_name, valid_host, validate_issuer

GROUP = "gateway.networking.k8s.io"
EG_GROUP = "gateway.envoyproxy.io"
#: Response header naming the version that answered (also what makes Envoy Gateway give
#: each backendRef its own cluster).
TRACK_HEADER = "X-New-Api-Track"


class SiteArgs(TypedDict, total=False):
    host: Required[str]
    """Public host name (no wildcard)."""
    namespace: Required[pulumi.Input[str]]
    """Namespace of the Service (and of its HTTPRoute)."""
    route_name: Required[str]
    """Name of the HTTPRoute (the app's: its name, which the HPA and Argo Rollouts use)."""
    service_name: Required[pulumi.Input[str]]
    """Backend Service (the stable one)."""
    service_port: pulumi.Input[int]
    """Its port (default 80)."""
    canary_service: str
    """Argo Rollouts' canary Service: a second backendRef (weight 0) in every rule."""
    path_groups: bool
    """Route the app's path groups (relay, playground, rest) as separate rules (default
    false: one rule for ``/``)."""


class GatewayRefArgs(TypedDict, total=False):
    create: bool
    """Create the Gateway (default true); false attaches to an existing, shared one."""
    name: str
    """Its name (default new-api)."""
    namespace: str
    """Its namespace (created: the first site's; existing: required)."""
    class_name: str
    """GatewayClass of a created Gateway (default eg, Envoy Gateway's quick-start name)."""
    https_section: str
    """Listener of an existing Gateway the routes attach to (default https)."""


class GatewayEntryArgs(TypedDict, total=False):
    sites: Required[list[SiteArgs]]
    """Hosts served; the first is the app's."""
    gateway: GatewayRefArgs
    """The Gateway to create or attach to."""
    data_plane_namespace: str
    """Namespace of the proxies (default envoy-gateway-system): admitted to the ACME solver."""
    data_plane_labels: dict[str, str]
    """Labels of the proxy pods (default: Envoy Gateway's)."""
    tls: bool
    """Terminate TLS (default true)."""
    issuer: str
    """self-signed | letsencrypt-staging | letsencrypt-prod (default)."""
    acme_email: str
    """ACME account e-mail (Let's Encrypt issuers)."""
    create_issuer: bool
    """Create the ClusterIssuer (default true)."""
    request_timeout_seconds: int
    """Total time a request may take, streamed responses included (default 3600)."""
    stream_idle_timeout_seconds: int
    """Idle time between bytes of a stream, above the app's STREAMING_TIMEOUT (default 360)."""
    trusted_hops: int
    """X-Forwarded-For hops in front of the proxies that are trusted (default 0: the proxies
    take the TCP peer as the client and append it; set to the number of L7 proxies before
    them)."""
    envoy_gateway: bool
    """Create Envoy Gateway's policy objects (default true)."""
    manage_certificates: bool
    """Issue the listeners' certificates with cert-manager (the Gateway's issuer annotation,
    the ClusterIssuer, the solver's NetworkPolicy; default true). False during a migration:
    the legacy Ingress's certificate (same Secret) is served until DNS has moved."""
    adopt_from: list[pulumi.Input[str]]
    """URNs of a legacy TlsIngress whose ClusterIssuer and solver NetworkPolicy (same
    Kubernetes names) this entry takes over when a migration ends: updated in place, never
    deleted after being created."""


def _seconds(value: int) -> str:
    return f"{int(value)}s"


class GatewayEntry(pulumi.ComponentResource):
    """The Gateway API entry (see module docstring)."""

    url: pulumi.Output[str]
    """Public URL of the first site."""
    issuer_name: pulumi.Output[str]
    """ClusterIssuer the certificates come from."""

    def __init__(self, name: str, args: GatewayEntryArgs,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("new-api:index:GatewayEntry", name, None, opts)
        sites = list(args.get("sites") or [])
        common.require(bool(sites), "sites", "needs at least one site")
        for site in sites:
            common.require(valid_host(site.get("host")), "sites.host",
                           f"{site.get('host')!r} must be a lowercase DNS name without wildcard")
            for key in ("namespace", "service_name", "route_name"):
                common.require(site.get(key) is not None, f"sites.{key}", "is required")
        tls, issuer, email = validate_issuer(args)
        idle = int(args.get("stream_idle_timeout_seconds", 360))
        total = int(args.get("request_timeout_seconds", 3600))
        common.require(idle >= 30, "stream_idle_timeout_seconds", "must be at least 30")
        common.require(total >= idle, "request_timeout_seconds",
                       f"{total} must be at least stream_idle_timeout_seconds ({idle})")
        hops = int(args.get("trusted_hops", 0))
        common.require(0 <= hops <= 5, "trusted_hops", f"{hops} must be between 0 and 5")
        gw = dict(args.get("gateway") or {})
        create = bool(gw.get("create", True))
        gw_name = gw.get("name", "new-api")
        gw_ns = gw.get("namespace") or (sites[0]["namespace"] if create else None)
        common.require(gw_ns is not None, "gateway.namespace", "is required with an existing Gateway")
        envoy = bool(args.get("envoy_gateway", True))
        dp_ns = args.get("data_plane_namespace", "envoy-gateway-system")
        dp_labels = dict(args.get("data_plane_labels") or {})
        child = pulumi.ResourceOptions(parent=self)
        issuer_ref = issuer_name(issuer)
        certificates = tls and bool(args.get("manage_certificates", True))

        def adopted(suffix: str) -> pulumi.ResourceOptions:
            """Options of an object a legacy TlsIngress created under the same Kubernetes name."""
            legacy = [pulumi.Alias(name=f"{sites[0]['route_name']}-{suffix}", parent=urn)
                      for urn in args.get("adopt_from") or []]
            return pulumi.ResourceOptions(parent=self, aliases=legacy)

        def https_section(i: int) -> str:
            return "https" if i == 0 else f"https-{i}"

        # ---------------------------------------------------------------- issuer
        self.issuer = None
        if certificates and args.get("create_issuer", True):
            # cert-manager creates the challenge's HTTPRoute on the HTTP listener.
            solver = {"gatewayHTTPRoute": {"parentRefs": [
                {"group": GROUP, "kind": "Gateway", "name": gw_name, "namespace": gw_ns, "sectionName": "http"}]}}
            self.issuer = cluster_issuer(name, issuer, email, solver, adopted("issuer"))

        # ---------------------------------------------------------------- gateway
        self.gateway = None
        self.envoy_proxy = None
        deps = [self.issuer] if self.issuer else []
        if create:
            annotations = {"cert-manager.io/cluster-issuer": issuer_ref} if certificates else {}
            listeners = [{"name": "http", "protocol": "HTTP", "port": 80,
                          "allowedRoutes": {"namespaces": {"from": "Same"}}}]
            if not tls:  # plain HTTP (dev without TLS): the sites' routes attach to it
                listeners[0]["allowedRoutes"] = {"namespaces": {"from": "All"}}
            for i, site in enumerate(sites):
                if not tls:
                    break
                listeners.append({
                    "name": https_section(i), "protocol": "HTTPS", "port": 443, "hostname": site["host"],
                    "tls": {"mode": "Terminate", "certificateRefs": [
                        {"group": "", "kind": "Secret", "name": tls_secret_name(site["route_name"])}]},
                    # A site in another namespace (Kibana) may attach to its own listener only.
                    "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {"matchLabels": {
                        "kubernetes.io/metadata.name": site["namespace"]}}}},
                })
            spec: dict = {"gatewayClassName": gw.get("class_name", "eg"), "listeners": listeners}
            if envoy:
                self.envoy_proxy = k8s.apiextensions.CustomResource(
                    f"{name}-proxy", api_version=f"{EG_GROUP}/v1alpha1", kind="EnvoyProxy",
                    metadata=common.meta(gw_name, gw_ns, common.labels("new-api", name, "gateway")),
                    # In-flight streams get the idle timeout to finish when a proxy stops
                    # (Envoy Gateway sets the pods' grace period to drainTimeout + 300 s).
                    spec={"shutdown": {"drainTimeout": _seconds(idle)},
                          # JSON access log: the relay's time to first byte is counted from it
                          # (docs/relay-ttfb-gateway.md); no query string (relay keys).
                          "telemetry": {"accessLog": envoy_access_log()}},
                    opts=child)
                spec["infrastructure"] = {"parametersRef": {"group": EG_GROUP, "kind": "EnvoyProxy",
                                                            "name": gw_name}}
                deps.append(self.envoy_proxy)
            self.gateway = k8s.apiextensions.CustomResource(
                f"{name}-gateway", api_version=f"{GROUP}/v1", kind="Gateway",
                metadata=common.meta(gw_name, gw_ns, common.labels("new-api", name, "gateway"), annotations),
                spec=spec, opts=pulumi.ResourceOptions(parent=self, depends_on=deps))
            if envoy:
                self.client_policy = k8s.apiextensions.CustomResource(
                    f"{name}-client", api_version=f"{EG_GROUP}/v1alpha1", kind="ClientTrafficPolicy",
                    metadata=common.meta(gw_name, gw_ns, common.labels("new-api", name, "gateway")),
                    spec={"targetRefs": [{"group": GROUP, "kind": "Gateway", "name": gw_name}],
                          # Envoy's stream idle timeout defaults to 5 min, the app's STREAMING_TIMEOUT.
                          "timeout": {"http": {"streamIdleTimeout": _seconds(idle)}},
                          "clientIPDetection": {"xForwardedFor": {"numTrustedHops": hops}}},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[self.gateway]))

        # ---------------------------------------------------------------- routes
        def parent(i: int) -> dict:
            ref = {"group": GROUP, "kind": "Gateway", "name": gw_name, "namespace": gw_ns}
            if tls:
                ref["sectionName"] = https_section(i) if create else gw.get("https_section", "https")
            elif create:
                ref["sectionName"] = "http"
            return ref

        def backend(service, port, track: str, weight: int) -> dict:
            return {"group": "", "kind": "Service", "name": service, "port": port, "weight": weight,
                    "filters": [{"type": "ResponseHeaderModifier",
                                 "responseHeaderModifier": {"set": [{"name": TRACK_HEADER, "value": track}]}}]}

        self.routes = []
        for i, site in enumerate(sites):
            port = site.get("service_port", 80)
            backends = [backend(site["service_name"], port, "stable", 100)]
            if site.get("canary_service"):
                backends.append(backend(site["canary_service"], port, "canary", 0))
            groups = PATH_GROUPS if site.get("path_groups") else (("rest", "/"),)
            rules = [{"name": group,
                      "matches": [{"path": {"type": "PathPrefix", "value": path}}],
                      "backendRefs": backends,
                      "timeouts": {"request": _seconds(total)}} for group, path in groups]
            route_deps = [self.gateway] if self.gateway else []
            route = k8s.apiextensions.CustomResource(
                f"{name}-{site['route_name']}-route", api_version=f"{GROUP}/v1", kind="HTTPRoute",
                metadata=common.meta(site["route_name"], site["namespace"],
                                     common.labels("new-api", site["route_name"], "route")),
                spec={"parentRefs": [parent(i)], "hostnames": [site["host"]], "rules": rules},
                # Argo Rollouts' gatewayAPI plugin owns the weights during a canary.
                opts=pulumi.ResourceOptions(parent=self, depends_on=route_deps,
                                            ignore_changes=["spec.rules[*].backendRefs[*].weight"]
                                            if site.get("canary_service") else None))
            self.routes.append(route)
            if envoy:
                k8s.apiextensions.CustomResource(
                    f"{name}-{site['route_name']}-backend", api_version=f"{EG_GROUP}/v1alpha1",
                    kind="BackendTrafficPolicy",
                    metadata=common.meta(site["route_name"], site["namespace"],
                                         common.labels("new-api", site["route_name"], "route")),
                    spec={"targetRefs": [{"group": GROUP, "kind": "HTTPRoute", "name": site["route_name"]}],
                          "timeout": {"http": {"streamIdleTimeout": _seconds(idle)}}},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[route]))

        if create and tls:
            self.redirect = k8s.apiextensions.CustomResource(
                f"{name}-redirect", api_version=f"{GROUP}/v1", kind="HTTPRoute",
                metadata=common.meta(f"{gw_name}-https-redirect", gw_ns, common.labels("new-api", name, "gateway")),
                spec={"parentRefs": [{"group": GROUP, "kind": "Gateway", "name": gw_name, "sectionName": "http"}],
                      "hostnames": [s["host"] for s in sites],
                      "rules": [{"filters": [{"type": "RequestRedirect", "requestRedirect": {
                          "scheme": "https", "statusCode": 301}}]}]},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.gateway]))
            if certificates and issuer in ACME_SERVERS:
                # cert-manager answers HTTP-01 from solver pods in the Gateway's namespace;
                # the namespace denies all ingress by default, so the proxies must be let in.
                self.solver_policy = acme_solver_policy(
                    name, f"{gw_name}-acme-solver", gw_ns, common.namespace_peer(dp_ns, dp_labels or None),
                    adopted("acme-solver"))

        self.url = pulumi.Output.from_input(f"{'https' if tls else 'http'}://{sites[0]['host']}")
        self.issuer_name = pulumi.Output.from_input(issuer_ref if tls else "")
        self.register_outputs({"url": self.url, "issuer_name": self.issuer_name})
