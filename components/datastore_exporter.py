"""One exporter Deployment for a managed datastore endpoint (RDS, ElastiCache, the RDS
API): the same hardening as every workload, one source for all (``postgres_rds_clients``,
``redis_aws``, ``rds_exporter``)."""

from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from . import common
from .secrets import ROTATION_ANNOTATION


def deploy(comp, exporter_name: str, app: str, container: dict, rotation: Optional[pulumi.Output], port: int,
           egress_targets: list, volumes: list | None = None, depends_on: tuple = (), *,
           egress: Optional[list] = None, service_account_annotations: Optional[dict] = None,
           attribute: str = "exporter") -> None:
    """ServiceAccount without a token, one replica (a second would duplicate every series),
    the rotation trigger on the pod template (when the exporter holds a credential), and a
    NetworkPolicy admitting only the scrapers on ``port`` and letting it reach only the
    endpoint (``egress_targets``: ``{cidr, port}``; ``egress``: further NetworkPolicy
    egress rules). ``service_account_annotations``: e.g. the IRSA role. Sets
    ``comp.<attribute>`` and ``comp.<attribute>_network_policy``."""
    a = comp._a
    ns = a["namespace"]
    lbl = common.labels(app, comp._name, "metrics")
    sel = common.selector(app, comp._name, "metrics")
    sa = k8s.core.v1.ServiceAccount(f"{exporter_name}-sa",
                                    metadata=common.meta(exporter_name, ns, lbl, service_account_annotations),
                                    automount_service_account_token=False, opts=comp._child())
    one = common.exemption_annotations(
        ["K8S-034"], "one exporter per managed endpoint: a second replica would duplicate every series it "
                     "exports; a restart loses a scrape, not data")
    template_meta: dict = {"labels": lbl}
    if rotation is not None:
        template_meta["annotations"] = {ROTATION_ANNOTATION: rotation}
    deployment = k8s.apps.v1.Deployment(
        exporter_name, metadata=common.meta(exporter_name, ns, lbl, one),
        spec={"replicas": 1, "strategy": common.ZERO_DOWNTIME_ROLLING, "selector": {"match_labels": sel},
              "template": {
                  "metadata": template_meta,
                  "spec": common.restricted_pod_spec(identity=app, service_account=sa.metadata.name,
                                                     containers=[common.draining(container)],
                                                     termination_grace_seconds=30, volumes=volumes)}},
        opts=comp._child(*depends_on))
    scrapers = ([{"from": [common.namespace_peer(a["monitoring_namespace"])], "ports": common.tcp(port)}]
                if a.get("monitoring_namespace") else [])
    policy = k8s.networking.v1.NetworkPolicy(
        exporter_name, metadata=common.meta(exporter_name, ns, lbl),
        spec={"pod_selector": {"match_labels": sel}, "policy_types": ["Ingress", "Egress"], "ingress": scrapers,
              "egress": [*({"to": [{"ip_block": {"cidr": t["cidr"]}}], "ports": common.tcp(int(t["port"]))}
                           for t in egress_targets), *(egress or [])]},
        opts=comp._child())
    setattr(comp, attribute, deployment)
    setattr(comp, f"{attribute}_network_policy", policy)
