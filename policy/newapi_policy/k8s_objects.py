"""Controls on single Kubernetes objects other than pod templates: Namespace, Ingress,
Certificate, Service, HPA, RBAC, PVC/StatefulSet storage, and the checks every object
gets (labels, apiVersion, namespace, exemption annotations)."""
from __future__ import annotations

import re

from .framework import (EXEMPT_CONTROLS, EXEMPT_REASON, STANDARD_LABELS, Res, fmt, get, is_map, items,
                        k8s_kinds, num, resource_policy)

EXPECTED_LABEL_VALUES = {"app.kubernetes.io/part-of": "new-api", "app.kubernetes.io/managed-by": "pulumi"}


# --------------------------------------------------------------------------- every object


@resource_policy("k8s-028-standard-labels", k8s_kinds())
def _labels(ctx, res):
    labels = res.labels
    missing = [k for k in STANDARD_LABELS if get(labels, k) in (None, "")]
    if missing:
        ctx.report(f"{res.display} lacks label(s) {', '.join(missing)}")
    for k, want in EXPECTED_LABEL_VALUES.items():
        v = get(labels, k)
        if v not in (None, "", want):
            ctx.report(f'{res.display} sets {k}: "{v}"', f'set {k}: "{want}"')


BUILTIN_GROUP = re.compile(r"^(v1|[a-z]+/v\w+|[a-z.]+\.k8s\.io/v\w+)$")
REMOVED = {
    "extensions/v1beta1", "apps/v1beta1", "apps/v1beta2", "policy/v1beta1", "batch/v1beta1",
    "autoscaling/v2beta1", "autoscaling/v2beta2", "networking.k8s.io/v1beta1", "rbac.authorization.k8s.io/v1beta1",
    "storage.k8s.io/v1beta1", "scheduling.k8s.io/v1beta1", "apiextensions.k8s.io/v1beta1",
    "admissionregistration.k8s.io/v1beta1", "flowcontrol.apiserver.k8s.io/v1beta3",
    "cert-manager.io/v1alpha2", "cert-manager.io/v1alpha3", "cert-manager.io/v1beta1",
}
#: CRD groups versioned by their own projects. The Gateway API's ends in .k8s.io but is a
#: CRD set with its own channels: ReferenceGrant is v1beta1 in its standard channel.
THIRD_PARTY_GROUPS = ("argoproj.io/", "monitoring.coreos.com/", "cert-manager.io/", "acme.cert-manager.io/",
                      "gateway.networking.k8s.io/")


@resource_policy("k8s-041-no-deprecated-api", k8s_kinds())
def _api_version(ctx, res):
    v = res.api_version
    builtin = not v.startswith(THIRD_PARTY_GROUPS) and (BUILTIN_GROUP.match(v) is not None)
    if v in REMOVED or (builtin and re.search(r"/v\d+(alpha|beta)\d*$", v)):
        ctx.report(f"{res.display} uses apiVersion {v}")


@resource_policy("k8s-046-no-default-namespace", k8s_kinds())
def _namespace(ctx, res):
    if not res.is_namespaced:
        return
    ns = res.namespace
    if ns in (None, "", "default"):
        ctx.report(f"{res.display} lands in the default namespace"
                   + (" (metadata.namespace unset)" if ns in (None, "") else ""))


@resource_policy("pol-001-exemption-annotations", k8s_kinds())
def _exemption_hygiene(ctx, res):
    ex = res.exemption()
    for p in ex.problems:
        ctx.report(f"the {EXEMPT_CONTROLS} annotation on {res.display} {p}",
                   f"name only known ids (e.g. K8S-010) and set {EXEMPT_REASON} to a one-line justification",
                   exemptable=False)
    for control_id in ex.controls:
        why = res.exemption_refusal(control_id, ctx.settings)
        if why:
            ctx.report(f"the {EXEMPT_CONTROLS} annotation on {res.display} is not honoured: {why}",
                       "remove the id from the annotation and fix the finding, or (if it is waivable) allow "
                       f"\"{res.display}\" under allowedExemptions.{control_id} in tools/policy_config.py "
                       "and regenerate policy/config/<stack>.json", exemptable=False)


# --------------------------------------------------------------------------- Namespace


@resource_policy("k8s-025-pod-security-labels", k8s_kinds("Namespace"))
def _psa(ctx, res):
    level = get(res.labels, "pod-security.kubernetes.io/enforce")
    if level == "restricted":
        return
    if level == "baseline" and str(get(res.annotations, "policy.new-api.io/pod-security-reason", default="")).strip():
        return
    if level is None:
        ctx.report(f"{res.display} has no pod-security.kubernetes.io/enforce label")
    elif level == "baseline":
        ctx.report(f"{res.display} enforces baseline without a policy.new-api.io/pod-security-reason annotation")
    else:
        ctx.report(f"{res.display} enforces Pod Security level {level}",
                   "enforce restricted; a privileged namespace needs an explicit K8S-025 exemption "
                   "(policy.new-api.io/exempt-controls + exempt-reason on the Namespace)")


# --------------------------------------------------------------------------- Ingress, Certificate


def ingress_hosts(res: Res):
    return [get(r, "host") for r in items(get(res.props, "spec", "rules"))]


def tls_hosts(res: Res):
    return {h for t in items(get(res.props, "spec", "tls")) for h in items(get(t, "hosts"))}


@resource_policy("k8s-020-ingress-tls", k8s_kinds("Ingress"))
def _ingress_tls(ctx, res):
    with ctx.field():
        covered = tls_hosts(res)
        for t in items(get(res.props, "spec", "tls")):
            if get(t, "secretName") in (None, ""):
                ctx.report(f"{res.display} has a tls entry without secretName")
        for h in ingress_hosts(res):
            if h and h not in covered:
                ctx.report(f'{res.display} serves host "{h}" without TLS')
        if not covered:
            ctx.report(f"{res.display} has no spec.tls")
    ann = res.annotations
    for k in ("nginx.ingress.kubernetes.io/ssl-redirect", "nginx.ingress.kubernetes.io/force-ssl-redirect",
              "alb.ingress.kubernetes.io/ssl-redirect"):
        with ctx.field():
            v = get(ann, k)
            if isinstance(v, str) and v.lower() == "false":
                ctx.report(f'{res.display} disables the HTTPS redirect ({k}: "false")', f"remove {k}")
    with ctx.field():
        entry = get(ann, "traefik.ingress.kubernetes.io/router.entrypoints")
        if entry is not None and "web" in [e.strip() for e in str(entry).split(",")]:
            ctx.report(f"{res.display} serves the plain-HTTP Traefik entrypoint 'web'",
                       "route only through websecure and redirect web to websecure")


@resource_policy("k8s-042-ingress-hosts", k8s_kinds("Ingress"))
def _ingress_hosts(ctx, res):
    with ctx.field():
        if is_map(get(res.props, "spec", "defaultBackend")) or is_map(get(res.props, "spec", "backend")):
            ctx.report(f"{res.display} sets a defaultBackend", "remove spec.defaultBackend")
    covered = tls_hosts(res)
    seen = set()
    for r in items(get(res.props, "spec", "rules")):
        with ctx.field():
            h = get(r, "host")
            if h in (None, ""):
                ctx.report(f"{res.display} has a rule without host", "set rules[].host to the public hostname")
                continue
            if "*" in h:
                ctx.report(f'{res.display} uses wildcard host "{h}"', "use the concrete hostname")
            elif h not in covered:
                ctx.report(f'{res.display} host "{h}" is not in spec.tls[].hosts', "add it to spec.tls[].hosts")
            for p in items(get(r, "http", "paths")):
                key = (h, get(p, "path", default="/"))
                if key in seen:
                    ctx.report(f'{res.display} repeats host+path {h}{key[1]}', "merge the duplicate paths")
                seen.add(key)


@resource_policy("k8s-043-no-ingress-snippets", k8s_kinds("Ingress"))
def _snippets(ctx, res):
    for k in res.annotations:
        if k.startswith("nginx.ingress.kubernetes.io/") and k.endswith("-snippet"):
            ctx.report(f"{res.display} sets annotation {k}")


ISSUER_ANNOTATIONS = ("cert-manager.io/cluster-issuer", "cert-manager.io/issuer")


INTERNAL_NAME = re.compile(r"(\.svc|\.svc\.cluster\.local|\.cluster\.local|^localhost|^[^.]+)$")


def is_internal_certificate(res: Res) -> bool:
    """A CA bootstrap (isCA) or a certificate only for in-cluster names: K8S-045 is about the
    certificates clients on the internet see, not the private CA behind e.g. Elasticsearch TLS."""
    spec = get(res.props, "spec", default={})
    if get(spec, "isCA") is True:
        return True
    names = [str(n) for n in items(get(spec, "dnsNames"))]
    return bool(names) and all(INTERNAL_NAME.search(n) for n in names)


ACME_STAGING = re.compile(r"staging|acme-staging|pebble|localhost", re.I)


@resource_policy("k8s-045-prod-issuer", k8s_kinds("Ingress", "Gateway", "Certificate", "ClusterIssuer", "Issuer"))
def _issuer(ctx, res):
    allowed = ctx.settings.production_issuers
    if res.kind in ("ClusterIssuer", "Issuer"):
        if res.k8s_name not in allowed:
            return
        spec = get(res.props, "spec", default={})
        server = get(spec, "acme", "server")
        if server is not None and ACME_STAGING.search(str(server)):
            ctx.report(f"{res.display} is a production issuer but uses the ACME server {server}",
                       "set spec.acme.server: https://acme-v02.api.letsencrypt.org/directory")
        elif server is None:
            kind = next((k for k in ("selfSigned", "ca", "vault", "venafi") if k in spec), "no ACME server")
            ctx.report(f"{res.display} is a production issuer but issues {kind} certificates",
                       "make the production issuer an ACME issuer against the Let's Encrypt production directory")
        return
    if res.kind == "Certificate":
        if is_internal_certificate(res):
            return
        issuer = get(res.props, "spec", "issuerRef", "name")
        if issuer not in allowed:
            ctx.report(f"{res.display} is issued by {issuer or 'no issuer'}, not {'/'.join(allowed)}",
                       f"set spec.issuerRef.name to {allowed[0] if allowed else 'the production issuer'}")
        return
    for k in ISSUER_ANNOTATIONS:
        with ctx.field():
            issuer = get(res.annotations, k)
            if issuer is not None and issuer not in allowed:
                ctx.report(f'{res.display} requests certificates from {k.split("/")[1]} "{issuer}"',
                           f'set {k}: "{allowed[0] if allowed else "the production issuer"}"')


# --------------------------------------------------------------------------- Service


@resource_policy("k8s-021-no-nodeport-lb", k8s_kinds("Service"))
def _service_type(ctx, res):
    t = get(res.props, "spec", "type", default="ClusterIP")
    if t == "NodePort":
        ctx.report(f"{res.display} is of type NodePort, which opens the port on every node")
    elif t == "LoadBalancer" and not str(get(res.annotations, "policy.new-api.io/allow-load-balancer",
                                             default="")).strip():
        ctx.report(f"{res.display} is of type LoadBalancer without an explicit allow")


@resource_policy("k8s-044-no-external-ips", k8s_kinds("Service"))
def _external_ips(ctx, res):
    ips = items(get(res.props, "spec", "externalIPs"))
    if ips:
        ctx.report(f"{res.display} sets externalIPs {', '.join(map(str, ips))}")


# --------------------------------------------------------------------------- HPA


@resource_policy("k8s-022-hpa-bounds", k8s_kinds("HorizontalPodAutoscaler"))
def _hpa(ctx, res):
    spec = get(res.props, "spec", default={})
    lo = num(get(spec, "minReplicas", default=1))
    with ctx.field():
        if ctx.settings.prod and lo < ctx.settings.min_prod_replicas:
            ctx.report(f"{res.display} allows {fmt(lo)} replica(s) in prod",
                       f"set minReplicas >= {ctx.settings.min_prod_replicas}")
    with ctx.field():
        hi = num(get(spec, "maxReplicas"))
        if hi is None or hi <= lo:
            ctx.report(f"{res.display} has maxReplicas {fmt(hi) if hi is not None else 'unset'} <= minReplicas {fmt(lo)}",
                       "set maxReplicas above minReplicas")
    with ctx.field():
        if get(spec, "behavior", "scaleDown", "stabilizationWindowSeconds") is None:
            ctx.report(f"{res.display} sets no scale-down stabilization window",
                       "set behavior.scaleDown.stabilizationWindowSeconds (e.g. 300)")


# --------------------------------------------------------------------------- storage


@resource_policy("k8s-026-storage-requests-retained", k8s_kinds("StatefulSet", "PersistentVolumeClaim"))
def _storage(ctx, res):
    if res.kind == "PersistentVolumeClaim":
        if get(res.props, "spec", "resources", "requests", "storage") in (None, ""):
            ctx.report(f"{res.display} requests no storage size")
        return
    for t in items(get(res.props, "spec", "volumeClaimTemplates")):
        with ctx.field():
            if get(t, "spec", "resources", "requests", "storage") in (None, ""):
                ctx.report(f'volumeClaimTemplate "{get(t, "metadata", "name", default="?")}" of {res.display} '
                           "requests no storage size")
    with ctx.field():
        when = get(res.props, "spec", "persistentVolumeClaimRetentionPolicy", "whenDeleted", default="Retain")
        if ctx.settings.prod and when != "Retain":
            ctx.report(f"{res.display} deletes its PVCs with the StatefulSet in prod (whenDeleted: {when})",
                       "set persistentVolumeClaimRetentionPolicy.whenDeleted: Retain")


# --------------------------------------------------------------------------- RBAC

ROLE_KINDS = ("Role", "ClusterRole")


@resource_policy("k8s-027-rbac-no-wildcards", k8s_kinds("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"))
def _rbac_wildcards(ctx, res):
    if res.kind.endswith("Binding"):
        if get(res.props, "roleRef", "name") == "cluster-admin":
            ctx.report(f"{res.display} binds cluster-admin")
        return
    for i, rule in enumerate(items(get(res.props, "rules"))):
        for key in ("verbs", "resources", "apiGroups"):
            with ctx.field():
                if "*" in [str(x) for x in items(get(rule, key))]:
                    ctx.report(f"{res.display} rule {i} grants {key}: ['*']")


DANGEROUS_VERBS = ("escalate", "bind", "impersonate")
EXEC_RESOURCES = ("pods/exec", "pods/attach", "nodes/proxy")


@resource_policy("k8s-048-rbac-no-escalation", k8s_kinds(*ROLE_KINDS))
def _rbac_escalation(ctx, res):
    for i, rule in enumerate(items(get(res.props, "rules"))):
        with ctx.field():
            verbs = {str(v) for v in items(get(rule, "verbs"))}
            resources = {str(r) for r in items(get(rule, "resources"))}
            for v in sorted(verbs & set(DANGEROUS_VERBS)):
                ctx.report(f"{res.display} rule {i} grants the {v} verb")
            if verbs & {"create", "*"}:
                for r in sorted(resources & set(EXEC_RESOURCES)):
                    ctx.report(f"{res.display} rule {i} grants create on {r}")
            if res.kind == "ClusterRole" and resources & {"secrets", "*"} and verbs & {"get", "list", "watch", "*"}:
                ctx.report(f"{res.display} rule {i} reads secrets cluster-wide",
                           "read secrets through a namespaced Role for the one namespace that needs them")
