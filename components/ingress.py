"""``TlsIngress``: the public entry, with a cert-manager issuer and streaming-safe proxying."""


import re
from typing import Optional, Required, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from . import common

ISSUERS = ("self-signed", "letsencrypt-staging", "letsencrypt-prod")
#: cert-manager's HTTP-01 solver pods listen here.
ACME_SOLVER_PORT = 8089
ACME_SERVERS = {
    "letsencrypt-prod": "https://acme-v02.api.letsencrypt.org/directory",
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def valid_host(host) -> bool:
    """A public host name the entries accept: lowercase DNS name, no wildcard."""
    return isinstance(host, str) and bool(_HOST.match(host))


def issuer_name(issuer: str) -> str:
    """Name of the ClusterIssuer for an issuer kind (prefixed: cluster-scoped names collide)."""
    return f"new-api-{issuer}"


def validate_issuer(args: dict) -> tuple:
    """``(tls, issuer, acme_email)`` of an entry's args, checked: the issuer kind is known
    and an ACME issuer has its e-mail. Shared by both entries (TlsIngress, GatewayEntry)."""
    tls = bool(args.get("tls", True))
    issuer = args.get("issuer", "letsencrypt-prod")
    common.require(issuer in ISSUERS, "issuer", f"{issuer!r} must be one of {ISSUERS}")
    email = args.get("acme_email")
    if tls and issuer in ACME_SERVERS:
        common.require(bool(email), "acme_email", f"is required for {issuer}")
    return tls, issuer, email


def cluster_issuer(name: str, issuer: str, email, http01_solver: dict,
                   opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    """The ClusterIssuer of an entry: self-signed, or ACME with the entry's HTTP-01 solver
    (an ``ingress`` or a ``gatewayHTTPRoute`` solver)."""
    if issuer == "self-signed":
        spec: dict = {"selfSigned": {}}
    else:
        spec = {"acme": {
            "server": ACME_SERVERS[issuer],
            "email": email,
            "privateKeySecretRef": {"name": f"{issuer_name(issuer)}-account-key"},
            "solvers": [{"http01": http01_solver}],
        }}
    return k8s.apiextensions.CustomResource(
        f"{name}-issuer", api_version="cert-manager.io/v1", kind="ClusterIssuer",
        metadata=common.meta(issuer_name(issuer), None, common.labels("new-api", name, "issuer")),
        spec=spec, opts=opts)


def acme_solver_policy(name: str, object_name: str, namespace, proxy_peer: dict,
                       opts: pulumi.ResourceOptions) -> k8s.networking.v1.NetworkPolicy:
    """Admits the entry's proxies to cert-manager's HTTP-01 solver pods (port 8089): they run
    in a namespace that denies all ingress by default, so without it no certificate is issued."""
    return k8s.networking.v1.NetworkPolicy(
        f"{name}-acme-solver",
        metadata=common.meta(
            object_name, namespace, common.labels("new-api", name, "acme-solver"),
            common.exemption_annotations(
                ["K8S-040"], "selects cert-manager's HTTP-01 solver pods, which cert-manager "
                             "creates only while a challenge is open")),
        spec={"pod_selector": {"match_labels": {"acme.cert-manager.io/http01-solver": "true"}},
              "policy_types": ["Ingress", "Egress"],
              "ingress": [{"from": [proxy_peer], "ports": common.tcp(ACME_SOLVER_PORT)}],
              "egress": []},
        opts=opts)


class TlsIngressArgs(TypedDict, total=False):
    namespace: Required[pulumi.Input[str]]
    """Namespace of the Ingress (the app's)."""
    host: Required[str]
    """Public host name (no wildcard)."""
    service_name: Required[pulumi.Input[str]]
    """Backend Service."""
    service_port: pulumi.Input[int]
    """Backend Service port (default 80)."""
    class_name: str
    """IngressClass (default nginx; ingress-nginx annotations are applied)."""
    tls: bool
    """Terminate TLS (default true). Without it the policy pack fails the stack (K8S-020)."""
    issuer: str
    """self-signed | letsencrypt-staging | letsencrypt-prod (default)."""
    acme_email: str
    """ACME account e-mail (Let's Encrypt issuers)."""
    create_issuer: bool
    """Create the ClusterIssuer (default true); false when the cluster already has it."""
    proxy_timeout_seconds: int
    """Read/send timeout, above the app's STREAMING_TIMEOUT (default 360)."""
    proxy_body_size_mb: int
    """Max request body (default 128, New API's MAX_REQUEST_BODY_MB)."""
    tls_secret_name: str
    """Secret cert-manager writes the certificate to (default new-api-tls)."""
    ingress_namespace: str
    """Namespace of the ingress controller, admitted to cert-manager's HTTP-01 solver pods
    (default ingress-nginx)."""
    paths: list[str]
    """Path prefixes routed to the backend (default ``/``); separate prefixes show up as
    separate ``path`` labels in ingress-nginx's metrics."""


class TlsIngress(pulumi.ComponentResource):
    """An Ingress for one host with TLS from cert-manager and settings for streamed LLM
    responses: read/send timeouts above ``STREAMING_TIMEOUT`` (300 s), response and
    request buffering off (SSE chunks reach the client as they arrive), body size 128m,
    forced HTTPS redirect. HSTS is sent by ingress-nginx on every TLS response by default
    (controller ConfigMap ``hsts: "true"``, ``hsts-max-age: "31536000"``); per-Ingress
    header injection needs snippet annotations, which the pack forbids (K8S-043).

    The ClusterIssuer: dev ``self-signed``; prod ``letsencrypt-prod`` with HTTP-01 through
    the ingress class and the ACME e-mail from config.
    """

    url: pulumi.Output[str]
    """Public URL."""
    issuer_name: pulumi.Output[str]
    """ClusterIssuer the certificate comes from."""

    def __init__(self, name: str, args: TlsIngressArgs,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("new-api:index:TlsIngress", name, None, opts)
        host = args.get("host")
        common.require(valid_host(host), "host", f"{host!r} must be a lowercase DNS name without wildcard")
        for key in ("namespace", "service_name"):
            common.require(args.get(key) is not None, key, "is required")
        tls, issuer, email = validate_issuer(args)
        timeout = int(args.get("proxy_timeout_seconds", 360))
        body_mb = int(args.get("proxy_body_size_mb", 128))
        common.require(timeout >= 30, "proxy_timeout_seconds", "must be at least 30")
        common.require(body_mb >= 1, "proxy_body_size_mb", "must be positive")
        class_name = args.get("class_name", "nginx")
        paths = list(args.get("paths") or ["/"])
        common.require(all(isinstance(p, str) and p.startswith("/") for p in paths)
                       and len(set(paths)) == len(paths), "paths", f"{paths!r} must be distinct prefixes starting with /")
        ns = args["namespace"]
        lbl = common.labels("new-api", name, "ingress")
        child = pulumi.ResourceOptions(parent=self)

        annotations = {
            "nginx.ingress.kubernetes.io/proxy-read-timeout": str(timeout),
            "nginx.ingress.kubernetes.io/proxy-send-timeout": str(timeout),
            "nginx.ingress.kubernetes.io/proxy-buffering": "off",
            "nginx.ingress.kubernetes.io/proxy-request-buffering": "off",
            "nginx.ingress.kubernetes.io/proxy-body-size": f"{body_mb}m",
            "nginx.ingress.kubernetes.io/proxy-http-version": "1.1",
        }
        spec: dict = {
            "ingress_class_name": class_name,
            "rules": [{"host": host, "http": {"paths": [{
                "path": path, "path_type": "Prefix",
                "backend": {"service": {"name": args["service_name"],
                                        "port": {"number": args.get("service_port", 80)}}},
            } for path in paths]}}],
        }
        self.issuer = None
        if tls:
            issuer_ref = issuer_name(issuer)
            annotations.update({
                "cert-manager.io/cluster-issuer": issuer_ref,
                "nginx.ingress.kubernetes.io/ssl-redirect": "true",
                "nginx.ingress.kubernetes.io/force-ssl-redirect": "true",
            })
            spec["tls"] = [{"hosts": [host], "secret_name": args.get("tls_secret_name", "new-api-tls")}]
            if issuer in ACME_SERVERS:
                # cert-manager answers HTTP-01 challenges from a solver pod in this namespace
                # behind a temporary Ingress: the ingress controller must be let in.
                self.solver_policy = acme_solver_policy(
                    name, f"{name}-acme-solver", ns,
                    common.namespace_peer(args.get("ingress_namespace", "ingress-nginx")), child)
            if args.get("create_issuer", True):
                self.issuer = cluster_issuer(name, issuer, email, {"ingress": {"ingressClassName": class_name}}, child)
        self.ingress = k8s.networking.v1.Ingress(
            name,
            metadata=common.meta(name, ns, lbl, annotations),
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.issuer] if self.issuer else []),
        )
        self.url = pulumi.Output.from_input(f"{'https' if tls else 'http'}://{host}")
        self.issuer_name = pulumi.Output.from_input(issuer_name(issuer) if tls else "")
        self.register_outputs({"url": self.url, "issuer_name": self.issuer_name})
