"""``PlatformComponent``: the child-resource helpers shared by the platform components
(monitoring, logging): options, labels, ServiceAccount, NetworkPolicy, PDB, API egress.
One definition, so every platform workload gets the same identity and network baseline."""

from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from . import common


class PlatformComponent(pulumi.ComponentResource):
    """Base of components that create many small workloads; subclasses set ``self._name``
    and ``self._a`` (the validated args, with ``api_server_cidrs``)."""

    _name: str
    _a: dict

    def _opts(self, *deps, **kw) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=[d for d in deps if d is not None], **kw)

    def _labels(self, component: str) -> tuple:
        """(labels, selector) of one workload; ``component`` may use ``_`` for ``-``."""
        c = component.replace("_", "-")
        return common.labels(c, self._name, c), common.selector(c, self._name, c)

    def _sa(self, suffix: str, namespace: str, lbl: dict, automount: bool = False,
            annotations: Optional[dict] = None) -> k8s.core.v1.ServiceAccount:
        return k8s.core.v1.ServiceAccount(f"{self._name}-{suffix}",
                                          metadata=common.meta(suffix, namespace, lbl, annotations),
                                          automount_service_account_token=automount, opts=self._opts())

    def _netpol(self, suffix: str, namespace: str, lbl: dict, sel: dict, ingress: list, egress: list):
        return k8s.networking.v1.NetworkPolicy(
            f"{self._name}-{suffix}", metadata=common.meta(suffix, namespace, lbl),
            spec={"pod_selector": {"match_labels": sel}, "policy_types": ["Ingress", "Egress"],
                  "ingress": ingress, "egress": egress}, opts=self._opts())

    def _pdb(self, suffix: str, namespace: str, lbl: dict, sel: dict, after=None):
        return k8s.policy.v1.PodDisruptionBudget(
            f"{self._name}-{suffix}", metadata=common.meta(suffix, namespace, lbl),
            spec={"max_unavailable": 1, "selector": {"match_labels": sel}}, opts=self._opts(after))

    def _api_egress(self) -> dict:
        """Egress to the Kubernetes API server (discovery, metadata enrichment)."""
        return {"to": [{"ip_block": {"cidr": c}} for c in self._a["api_server_cidrs"]],
                "ports": common.tcp(443, 6443)}
