"""``RestrictedNamespace``: a namespace that is safe before anything runs in it."""


from typing import Optional, Required, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from . import common


class RestrictedNamespaceArgs(TypedDict, total=False):
    name: Required[pulumi.Input[str]]
    """Namespace name (DNS-1123 label)."""
    pod_security: str
    """Pod Security admission level enforced: ``restricted`` (default) or ``baseline``/``privileged``
    with ``pod_security_reason`` (K8S-025)."""
    pod_security_reason: str
    """Why the namespace cannot enforce ``restricted``."""
    dns_namespace: str
    """Namespace of cluster DNS, for the DNS egress allow (default ``kube-system``)."""
    protect: bool
    """Protect the Namespace object (deleting a namespace deletes every volume claim in it)."""
    quota: dict[str, str]
    """Optional ResourceQuota ``hard`` map (e.g. ``{"requests.cpu": "8"}``)."""


class RestrictedNamespace(pulumi.ComponentResource):
    """A Namespace with Pod Security admission labels, a default-deny NetworkPolicy for
    ingress and egress, and an allow for DNS egress (K8S-017, K8S-025). Every workload
    then declares its own allow policy, so nothing talks to anything by accident."""

    name: pulumi.Output[str]
    """The namespace name."""

    def __init__(self, name: str, args: RestrictedNamespaceArgs,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("new-api:index:RestrictedNamespace", name, None, opts)
        ns_name = args.get("name")
        level = args.get("pod_security", "restricted")
        common.require(isinstance(ns_name, str) and common.is_dns_label(ns_name), "name",
                       f"{ns_name!r} must be a DNS-1123 label")
        common.require(level in ("restricted", "baseline", "privileged"), "pod_security",
                       f"{level!r} must be restricted, baseline or privileged")
        common.require(level == "restricted" or bool(args.get("pod_security_reason")), "pod_security_reason",
                       f"pod_security {level!r} needs a one-line justification")
        dns_ns = args.get("dns_namespace", "kube-system")
        lbl = common.labels("namespace", ns_name, "namespace")
        # A relaxed level is an explicit, visible exemption from K8S-025 with its reason.
        annotations = (common.exemption_annotations(["K8S-025"], args["pod_security_reason"])
                       if level != "restricted" else {})
        ns_labels = dict(lbl)
        for mode in ("enforce", "audit", "warn"):
            # audit and warn always at restricted, so a relaxed namespace still reports.
            ns_labels[f"pod-security.kubernetes.io/{mode}"] = level if mode == "enforce" else "restricted"
        self.namespace = k8s.core.v1.Namespace(
            name,
            metadata=common.meta(ns_name, None, ns_labels, annotations),
            opts=pulumi.ResourceOptions(parent=self, protect=bool(args.get("protect", False)),
                                        retain_on_delete=bool(args.get("protect", False))),
        )
        child = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        ns_ref = self.namespace.metadata.name
        self.default_deny = k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny",
            metadata=common.meta("default-deny", ns_ref, common.labels("default-deny", ns_name, "network-policy")),
            spec={"pod_selector": {}, "policy_types": ["Ingress", "Egress"]},
            opts=child,
        )
        self.allow_dns = k8s.networking.v1.NetworkPolicy(
            f"{name}-allow-dns",
            metadata=common.meta("allow-dns-egress", ns_ref, common.labels("allow-dns", ns_name, "network-policy")),
            spec={
                "pod_selector": {},
                "policy_types": ["Egress"],
                "egress": [{
                    "to": [{
                        "namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": dns_ns}},
                        "pod_selector": {"match_labels": {"k8s-app": "kube-dns"}},
                    }],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                }],
            },
            opts=child,
        )
        if args.get("quota"):
            self.quota = k8s.core.v1.ResourceQuota(
                f"{name}-quota",
                metadata=common.meta("quota", ns_ref, common.labels("quota", ns_name, "quota")),
                spec={"hard": dict(args["quota"])},
                opts=child,
            )
        self.limit_range = k8s.core.v1.LimitRange(
            f"{name}-limits",
            metadata=common.meta("defaults", ns_ref, common.labels("limits", ns_name, "limit-range")),
            spec={"limits": [{
                "type": "Container",
                "default_request": {"cpu": "50m", "memory": "64Mi", "ephemeral-storage": "64Mi"},
                "default": {"memory": "256Mi", "ephemeral-storage": "1Gi"},
            }]},
            opts=child,
        )
        self.name = ns_ref
        self.register_outputs({"name": self.name})
