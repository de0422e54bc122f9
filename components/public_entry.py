"""``PublicEntry``: the stack's public entry, whichever kind (components/entry.py) carries it.

The one place that chooses between the two implementations: ``gateway`` builds a
:class:`~components.gateway.GatewayEntry` (Gateway, HTTPRoutes, Envoy Gateway policies),
``ingress-nginx`` one :class:`~components.ingress.TlsIngress` per site (the legacy path, its
objects and URNs unchanged: aliased to where they were before this component existed).
"""


from typing import Optional, Required, TypedDict

import pulumi

from . import entry as entry_mod
from .entry_metrics import PATH_GROUPS
from .gateway import GatewayEntry, GatewayRefArgs, SiteArgs
from .ingress import TlsIngress


class PublicEntryArgs(TypedDict, total=False):
    kind: Required[str]
    """``gateway`` (Gateway API) or ``ingress-nginx`` (legacy)."""
    sites: Required[list[SiteArgs]]
    """Hosts served; the first is the app's (its path groups are separate routes)."""
    data_plane_namespace: str
    """Namespace of the proxies (default: the kind's own)."""
    tls: bool
    """Terminate TLS (default true)."""
    issuer: str
    """self-signed | letsencrypt-staging | letsencrypt-prod (default)."""
    acme_email: str
    """ACME account e-mail (Let's Encrypt issuers)."""
    proxy_timeout_seconds: int
    """Idle time a stream may take between bytes, above STREAMING_TIMEOUT (default 360)."""
    proxy_body_size_mb: int
    """Max request body for ingress-nginx (default 128)."""
    class_name: str
    """IngressClass (ingress-nginx; default nginx)."""
    gateway: GatewayRefArgs
    """The Gateway to create or attach to (gateway)."""
    request_timeout_seconds: int
    """Total time a request may take (gateway; default 3600)."""
    trusted_hops: int
    """X-Forwarded-For hops trusted in front of the proxies (gateway; default 0)."""
    envoy_gateway: bool
    """Create Envoy Gateway's policy objects (gateway; default true)."""
    keep_ingress_nginx: bool
    """Migration (gateway): keep the app's legacy Ingress, issuer and certificate next to the
    Gateway, which serves the Ingress's certificate until DNS has moved (default false)."""
    legacy_namespace: str
    """ingress-nginx's namespace (its Ingress's ACME solver admits it; default ingress-nginx)."""


def certificates(args: PublicEntryArgs) -> list[dict[str, str]]:
    """The cert-manager Certificates (``namespace``, ``name``) that the entry built from
    ``args`` makes cert-manager's certificate-shim create: one per TLS Secret of the
    Ingresses (their namespace) or of the stack's Gateway's HTTPS listeners (the
    Gateway's namespace). None without TLS, or with a Gateway the stack does not create
    (its owner issues its certificates); during a migration the legacy Ingress owns the
    app's."""
    if not args.get("tls", True):
        return []
    sites = list(args["sites"])
    if args["kind"] == "gateway":
        if args.get("keep_ingress_nginx"):
            sites = sites[:1]
        else:
            gw = dict(args.get("gateway") or {})
            if not gw.get("create", True):
                return []
            ns = gw.get("namespace") or sites[0]["namespace"]
            return [{"namespace": ns, "name": entry_mod.tls_secret_name(s["route_name"])} for s in sites]
    return [{"namespace": s["namespace"], "name": entry_mod.tls_secret_name(s["route_name"])} for s in sites]


class PublicEntry(pulumi.ComponentResource):
    """The public entry of every site (see module docstring)."""

    url: pulumi.Output[str]
    """Public URL of the first site (the app)."""
    urls: pulumi.Output[list[str]]
    """Public URL of every site, in order."""

    def __init__(self, name: str, args: PublicEntryArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("new-api:index:PublicEntry", name, None, opts)
        kind = args.get("kind")
        if kind not in entry_mod.KINDS:
            raise ValueError(f"kind: {kind!r} must be one of {', '.join(entry_mod.KINDS)}")
        spec = entry_mod.entry_spec(kind, args.get("data_plane_namespace"))
        sites = list(args["sites"])
        tls = {k: args[k] for k in ("tls", "issuer", "acme_email") if k in args}
        legacy: list = []
        if kind == "gateway" and args.get("keep_ingress_nginx"):
            # The app's Ingress exactly as the legacy entry renders it (same URNs), next to the
            # Gateway while DNS moves; the Gateway serves its certificate meanwhile.
            legacy = self._ingresses(sites[:1], args, entry_mod.entry_spec(
                "ingress-nginx", args.get("legacy_namespace")).data_plane_namespace, tls)
        if kind == "gateway":
            self.legacy = legacy
            self.implementation = GatewayEntry(name, {
                "manage_certificates": not legacy,
                "adopt_from": [pulumi.create_urn(sites[0]["route_name"], "new-api:index:TlsIngress", parent=self),
                               pulumi.create_urn(sites[0]["route_name"], "new-api:index:TlsIngress")],
                "sites": [{**s, "path_groups": i == 0} for i, s in enumerate(sites)],
                "gateway": dict(args.get("gateway") or {}),
                "data_plane_namespace": spec.data_plane_namespace,
                "data_plane_labels": spec.data_plane_labels,
                "stream_idle_timeout_seconds": args.get("proxy_timeout_seconds", 360),
                **{k: args[k] for k in ("request_timeout_seconds", "trusted_hops", "envoy_gateway") if k in args},
                **tls,
            }, opts=pulumi.ResourceOptions(parent=self, depends_on=legacy))
            urls = [pulumi.Output.from_input(f"{'https' if args.get('tls', True) else 'http'}://{s['host']}")
                    for s in sites]
        else:
            ingresses = self._ingresses(sites, args, spec.data_plane_namespace, tls)
            self.implementation = ingresses
            urls = [i.url for i in ingresses]
        self.url = urls[0]
        self.urls = pulumi.Output.all(*urls)
        self.register_outputs({"url": self.url, "urls": self.urls})

    def _ingresses(self, sites: list, args: dict, data_plane_namespace: str, tls: dict) -> list:
        """One TlsIngress per site (the first creates the ClusterIssuer), aliased to the URNs
        they had before this component existed."""
        ingresses: list = []
        if True:
            for i, site in enumerate(sites):
                ingress_args = {
                    "namespace": site["namespace"], "host": site["host"],
                    "service_name": site["service_name"], "service_port": site.get("service_port", 80),
                    "class_name": args.get("class_name", "nginx"),
                    "ingress_namespace": data_plane_namespace,
                    **tls,
                }
                if i == 0:
                    ingress_args.update({
                        # The relay and playground as their own paths: latency measures leave them out.
                        "paths": [p for _, p in PATH_GROUPS],
                        "proxy_timeout_seconds": args.get("proxy_timeout_seconds", 360),
                        "proxy_body_size_mb": args.get("proxy_body_size_mb", 128),
                    })
                else:
                    ingress_args["create_issuer"] = False
                ingress_args["tls_secret_name"] = entry_mod.tls_secret_name(site["route_name"])
                ingresses.append(TlsIngress(site["route_name"], ingress_args, opts=pulumi.ResourceOptions(
                    parent=self, depends_on=ingresses[:1],
                    aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)])))
        return ingresses
