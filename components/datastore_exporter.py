"""One exporter Deployment for a managed datastore endpoint (RDS, ElastiCache): the same
hardening as every workload, one source for both (``postgres_rds_clients``, ``redis_aws``)."""

import pulumi
import pulumi_kubernetes as k8s

from . import common
from .secrets import ROTATION_ANNOTATION


def deploy(comp, exporter_name: str, app: str, container: dict, rotation: pulumi.Output, port: int,
           egress_targets: list, volumes: list | None = None, depends_on: tuple = ()) -> None:
    """ServiceAccount without a token, one replica (a second would duplicate every series),
    the rotation trigger on the pod template, and a NetworkPolicy admitting only the
    scrapers on ``port`` and letting it reach only the endpoint (``egress_targets``:
    ``{cidr, port}``). Sets ``comp.exporter`` and ``comp.exporter_network_policy``."""
    a = comp._a
    ns = a["namespace"]
    lbl = common.labels(app, comp._name, "metrics")
    sel = common.selector(app, comp._name, "metrics")
    sa = k8s.core.v1.ServiceAccount(f"{exporter_name}-sa", metadata=common.meta(exporter_name, ns, lbl),
                                    automount_service_account_token=False, opts=comp._child())
    one = common.exemption_annotations(
        ["K8S-034"], "one exporter per managed endpoint: a second replica would duplicate every series it "
                     "exports; a restart loses a scrape, not data")
    comp.exporter = k8s.apps.v1.Deployment(
        exporter_name, metadata=common.meta(exporter_name, ns, lbl, one),
        spec={"replicas": 1, "strategy": common.ZERO_DOWNTIME_ROLLING, "selector": {"match_labels": sel},
              "template": {
                  "metadata": {"labels": lbl, "annotations": {ROTATION_ANNOTATION: rotation}},
                  "spec": common.restricted_pod_spec(identity=app, service_account=sa.metadata.name,
                                                     containers=[common.draining(container)],
                                                     termination_grace_seconds=30, volumes=volumes)}},
        opts=comp._child(*depends_on))
    scrapers = ([{"from": [common.namespace_peer(a["monitoring_namespace"])], "ports": common.tcp(port)}]
                if a.get("monitoring_namespace") else [])
    comp.exporter_network_policy = k8s.networking.v1.NetworkPolicy(
        exporter_name, metadata=common.meta(exporter_name, ns, lbl),
        spec={"pod_selector": {"match_labels": sel}, "policy_types": ["Ingress", "Egress"], "ingress": scrapers,
              "egress": [{"to": [{"ip_block": {"cidr": t["cidr"]}}], "ports": common.tcp(int(t["port"]))}
                         for t in egress_targets]},
        opts=comp._child())
