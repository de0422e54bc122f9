"""The ``cloudnative-pg`` backend of ``Postgres``: a CloudNativePG ``Cluster``, its
``ScheduledBackup`` and NetworkPolicy. See ``Postgres`` for the whole picture."""

import pulumi
import pulumi_kubernetes as k8s

from . import common
from .postgres_base import APP, COMPONENT, EXPORTER_PORT, PORT, server_parameters

#: The operator's server CA Secret is "<cluster>" + this suffix; the certificate is this key.
CNPG_CA_SECRET_SUFFIX = "-ca"
CNPG_CA_KEY = "ca.crt"


def build(comp, password):
    name, a = comp._name, comp._a
    ns = a["namespace"]
    c = a["cloudnative_pg"]
    lbl = common.labels(APP, name, COMPONENT)
    res = a["resources"]
    comp.credentials = k8s.core.v1.Secret(
        f"{name}-app", metadata=common.meta(f"{name}-app", ns, lbl), type="kubernetes.io/basic-auth",
        string_data=pulumi.Output.secret({"username": a["username"], "password": password}),
        opts=comp._child())
    params = server_parameters(res["memory_limit"], int(a["max_connections"]))
    params.update({"log_min_duration_statement": "1000", "log_timezone": "UTC", "timezone": "UTC",
                   "idle_in_transaction_session_timeout": "600000"})
    postgresql: dict = {"parameters": params}
    if int(c["synchronous_replicas"]) > 0:
        # A commit waits for one standby: no committed transaction is lost on failover.
        postgresql["synchronous"] = {"method": "any", "number": int(c["synchronous_replicas"]),
                                     "dataDurability": "required"}
    region = c.get("backup_region")
    destination = f"s3://{c['backup_bucket']}/cnpg/{name}/"
    resources = common.resources(res["cpu_request"], res["memory_request"], res["memory_limit"],
                                 res.get("cpu_limit") or None, "64Mi", "1Gi")
    spec = {
        "description": "New API database",
        "instances": int(c["instances"]),
        "imageName": c["image"],
        "imagePullPolicy": "IfNotPresent",
        "enableSuperuserAccess": False,
        "postgresql": postgresql,
        "bootstrap": {"initdb": {
            "database": a["database"], "owner": a["username"],
            "secret": {"name": comp.credentials.metadata.name},
            "encoding": "UTF8", "localeCollate": "C", "localeCType": "C", "dataChecksums": True,
        }},
        "storage": {"size": a["storage_size"],
                    **({"storageClass": a["storage_class"]} if a.get("storage_class") else {})},
        "resources": resources,
        "affinity": {"enablePodAntiAffinity": True, "topologyKey": "kubernetes.io/hostname",
                     "podAntiAffinityType": "preferred"},
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"cnpg.io/cluster": name}},
        }],
        "primaryUpdateStrategy": "unsupervised",
        "monitoring": {"enablePodMonitor": bool(c["pod_monitor"])},
        "serviceAccountTemplate": {"metadata": {"annotations": {
            "eks.amazonaws.com/role-arn": c["backup_role_arn"]}}},
        "backup": {
            "retentionPolicy": f"{int(c['backup_retention_days'])}d",
            "barmanObjectStore": {
                "destinationPath": destination,
                "s3Credentials": {"inheritFromIAMRole": True},
                "wal": {"compression": "gzip", "maxParallel": 2},
                "data": {"compression": "gzip", "jobs": 2},
            },
        },
    }
    if region:
        spec["env"] = [{"name": "AWS_REGION", "value": region}]
    comp.cluster = k8s.apiextensions.CustomResource(
        name,
        api_version="postgresql.cnpg.io/v1",
        kind="Cluster",
        metadata=common.meta(name, ns, lbl, {
            # The operator reports readiness as a condition; without this the provider
            # would not wait for it.
            "pulumi.com/waitFor": "condition=Ready",
        }),
        spec=spec,
        # Deleting the Cluster deletes its PVCs (owner references): protected and
        # retained in prod.
        opts=comp._child(comp.credentials, protect=a["protect"], retain_on_delete=a["protect"],
                         custom_timeouts=pulumi.CustomTimeouts(create="30m", update="30m")),
    )
    comp.scheduled_backup = k8s.apiextensions.CustomResource(
        f"{name}-daily",
        api_version="postgresql.cnpg.io/v1",
        kind="ScheduledBackup",
        metadata=common.meta(f"{name}-daily", ns, common.labels(APP, name, "backup")),
        spec={
            # CNPG cron has a leading seconds field.
            "schedule": f"0 {c['backup_schedule']}",
            "cluster": {"name": name},
            "method": "barmanObjectStore",
            "backupOwnerReference": "self",
            "immediate": True,
        },
        opts=comp._child(comp.cluster))
    cluster_sel = {"cnpg.io/cluster": name}
    peers_self = [{"pod_selector": {"match_labels": cluster_sel}}]
    operator = [{"namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": c["operator_namespace"]}}}]
    ingress = [
        # Replication between instances and the instance manager's status port.
        {"from": peers_self, "ports": [{"protocol": "TCP", "port": PORT}, {"protocol": "TCP", "port": 8000}]},
        {"from": operator, "ports": [{"protocol": "TCP", "port": PORT}, {"protocol": "TCP", "port": 8000}]},
    ]
    if a["clients"]:
        ingress.append({"from": comp._client_peers(), "ports": [{"protocol": "TCP", "port": PORT}]})
    ingress += comp._scrapers(EXPORTER_PORT)
    operator_pods = common.exemption_annotations(
        ["K8S-040"], f"selects the CloudNativePG instance pods the operator creates for Cluster {name}; "
                     "no workload object of this stack carries their labels")
    comp.network_policy = k8s.networking.v1.NetworkPolicy(
        name, metadata=common.meta(name, ns, lbl, operator_pods),
        spec={
            "pod_selector": {"match_labels": cluster_sel},
            "policy_types": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": [
                {"to": peers_self, "ports": [{"protocol": "TCP", "port": PORT},
                                             {"protocol": "TCP", "port": 8000}]},
                # The instance manager talks to the Kubernetes API; barman-cloud to S3 (HTTPS).
                {"to": [{"ip_block": {"cidr": cidr}} for cidr in c["api_server_cidrs"]],
                 "ports": common.tcp(443, 6443)},
                {"to": common.public_egress_peers(c["object_storage_cidrs"]), "ports": common.tcp(443)},
            ],
        },
        opts=comp._child())
    host = pulumi.Output.concat(name, "-rw.", ns, ".svc")
    read_host = pulumi.Output.concat(name, "-ro.", ns, ".svc")
    # The operator issues the server certificate from its own CA, in the Secret
    # "<cluster>-ca" (key ca.crt; api/v1/cluster_funcs.go GetServerCASecretName,
    # pkg/certs/certs.go CACertKey), for "<cluster>-rw.<ns>.svc" among its names
    # (GetClusterAltDNSNames): clients verify both, as on RDS.
    comp.ca_bundle = {"secret": f"{name}{CNPG_CA_SECRET_SUFFIX}", "key": CNPG_CA_KEY}
    return host, read_host, "verify-full", [{"port": PORT, "pod_labels": cluster_sel}]

