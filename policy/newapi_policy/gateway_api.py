"""Gateway API equivalents of the Ingress controls (issue 15), as policies of the same
controls: K8S-020 (TLS and the HTTPS redirect: ``k8s-020-gateway-tls``), K8S-040
(references resolve, including the Gateway API's rule for references across namespaces:
``k8s-040-gateway-references``); K8S-045 (prod issuer) reads the Gateway's cert-manager
annotation like an Ingress's (k8s_objects.py).

Rules read from the Gateway API v1 spec (gateway-api.sigs.k8s.io/reference/spec):
- a ``parentRef`` without ``sectionName`` attaches a route to every listener of the Gateway
  (that admits it); with one, to that listener only;
- a listener's ``protocol`` HTTPS terminates TLS with ``tls.certificateRefs`` (mode
  ``Terminate`` is the default);
- a backendRef's ``kind`` defaults to Service (group ""), its ``namespace`` to the route's;
  a reference to another namespace is valid only when a ReferenceGrant in the target
  namespace allows it (``from`` group/kind/namespace, ``to`` group/kind and optional name);
  a listener's certificateRefs likewise (from Gateway to Secret).
"""
from __future__ import annotations

from typing import Iterator, Optional, Tuple

from .framework import Res, Stack, fmt, get, items, stack_policy

GROUP = "gateway.networking.k8s.io"


def _gateways(stack: Stack) -> dict:
    return {(g.namespace, g.k8s_name): g for g in stack.k8s("Gateway") if str(g.api_version).startswith(GROUP)}


def _routes(stack: Stack) -> list:
    return [r for r in stack.k8s("HTTPRoute") if str(r.api_version).startswith(GROUP)]


def parent_gateways(route: Res, gateways: dict) -> Iterator[Tuple[dict, Optional[Res]]]:
    """(parentRef, the stack's Gateway or None) for each Gateway parentRef of a route."""
    for ref in items(get(route.props, "spec", "parentRefs")):
        if get(ref, "kind", default="Gateway") != "Gateway" or get(ref, "group", default=GROUP) != GROUP:
            continue
        yield ref, gateways.get((get(ref, "namespace", default=route.namespace), get(ref, "name")))


def attached_listeners(ref: dict, gateway: Res) -> list:
    listeners = items(get(gateway.props, "spec", "listeners"))
    section = get(ref, "sectionName")
    return [ln for ln in listeners if section is None or get(ln, "name") == section]


def redirects_to_https_only(route: Res) -> bool:
    """Every rule only redirects to https (the HTTP listener's one legitimate use)."""
    rules = items(get(route.props, "spec", "rules"))
    return bool(rules) and all(
        not items(get(r, "backendRefs")) and any(
            get(f, "type") == "RequestRedirect" and get(f, "requestRedirect", "scheme") == "https"
            for f in items(get(r, "filters"))) for r in rules)


@stack_policy("k8s-020-gateway-tls")
def _gateway_tls(ctx, stack):
    gateways = _gateways(stack)
    for gw in gateways.values():
        for ln in items(get(gw.props, "spec", "listeners")):
            with ctx.field():
                if get(ln, "protocol") != "HTTPS":
                    continue
                mode = get(ln, "tls", "mode", default="Terminate")
                if mode != "Terminate" or not items(get(ln, "tls", "certificateRefs")):
                    ctx.report(f"{gw.display} listener {get(ln, 'name')} is HTTPS without a certificate it "
                               "terminates TLS with", "set tls.mode Terminate and tls.certificateRefs", res=gw)
    for route in _routes(stack):
        for ref, gw in parent_gateways(route, gateways):
            with ctx.field():
                if gw is None:
                    continue  # a shared Gateway outside the stack: its owner checks its listeners
                listeners = attached_listeners(ref, gw)
                if not listeners:
                    ctx.report(f"{route.display} attaches to listener {get(ref, 'sectionName')} of {gw.display}, "
                               "which has no such listener", "set parentRefs[].sectionName to a listener name",
                               res=route)
                    continue
                plain = [get(ln, "name") for ln in listeners if get(ln, "protocol") in ("HTTP", "TCP")]
                if plain and not redirects_to_https_only(route):
                    ctx.report(f"{route.display} is served on plain-HTTP listener {', '.join(map(str, plain))} "
                               f"of {gw.display}", res=route)


def _service_ports(svc: Res) -> set:
    return {fmt(get(p, "port")) for p in items(get(svc.props, "spec", "ports"))}


def _route_backend_refs(ctx, stack: Stack) -> None:
    """Every Service backendRef names a Service of the stack and one of its ports."""
    services = {(s.namespace, s.k8s_name): s for s in stack.k8s("Service")}
    for route in _routes(stack):
        for rule in items(get(route.props, "spec", "rules")):
            for b in items(get(rule, "backendRefs")):
                with ctx.field():
                    if get(b, "kind", default="Service") != "Service" or get(b, "group", default="") != "":
                        continue
                    ns = get(b, "namespace", default=route.namespace)
                    svc = services.get((ns, get(b, "name")))
                    if svc is None:
                        ctx.report(f"{route.display} routes to Service {ns}/{get(b, 'name')}, which the stack does "
                                   "not define", res=route)
                    elif get(b, "port") is None or fmt(get(b, "port")) not in _service_ports(svc):
                        ctx.report(f"{route.display} routes to port {fmt(get(b, 'port'))} of {svc.display}, which "
                                   f"exposes {', '.join(sorted(_service_ports(svc)))}", res=route)


def _granted(stack: Stack, from_kind: str, from_ns: str, to_group: str, to_kind: str, to_ns: str, to_name: str) -> bool:
    for grant in stack.k8s("ReferenceGrant"):
        if grant.namespace != to_ns:
            continue
        froms = items(get(grant.props, "spec", "from"))
        tos = items(get(grant.props, "spec", "to"))
        if any(get(f, "group") == GROUP and get(f, "kind") == from_kind and get(f, "namespace") == from_ns
               for f in froms) and any(
                get(t, "group", default="") == to_group and get(t, "kind") == to_kind
                and get(t, "name") in (None, to_name) for t in tos):
            return True
    return False


@stack_policy("k8s-040-gateway-references")
def _gateway_references(ctx, stack):
    _route_backend_refs(ctx, stack)
    for route in _routes(stack):
        for rule in items(get(route.props, "spec", "rules")):
            for b in items(get(rule, "backendRefs")):
                with ctx.field():
                    ns = get(b, "namespace")
                    if ns is None or ns == route.namespace:
                        continue
                    group, kind = get(b, "group", default=""), get(b, "kind", default="Service")
                    if not _granted(stack, "HTTPRoute", route.namespace, group, kind, ns, get(b, "name")):
                        ctx.report(f"{route.display} routes to {kind} {ns}/{get(b, 'name')} in another namespace "
                                   "without a ReferenceGrant there", res=route)
    for gw in _gateways(stack).values():
        for ln in items(get(gw.props, "spec", "listeners")):
            for c in items(get(ln, "tls", "certificateRefs")):
                with ctx.field():
                    ns = get(c, "namespace")
                    if ns is None or ns == gw.namespace:
                        continue
                    if not _granted(stack, "Gateway", gw.namespace, get(c, "group", default=""),
                                    get(c, "kind", default="Secret"), ns, get(c, "name")):
                        ctx.report(f"{gw.display} listener {get(ln, 'name')} uses certificate {ns}/{get(c, 'name')} "
                                   "from another namespace without a ReferenceGrant there", res=gw)
