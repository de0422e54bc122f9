"""The in-cluster clients the ``aws`` backend of ``Postgres`` brings along:

- the CA bundle ConfigMap every client mounts (``sslmode=verify-full``), unless an
  existing one is named;
- the roles bootstrap Job (``postgres_roles``), the only user of the master password,
  re-created (new name) whenever a credential changes;
- a postgres_exporter Deployment reading RDS's statistics as the ``pg_monitor`` role over
  verified TLS, so the ``postgres-exporter`` scrape job, DatabaseConnectionHigh and the
  dashboard have data in prod (issue 12 defect 4).

Each gets its own ServiceAccount without a token, the restricted security context, limits,
probes where it serves, and a NetworkPolicy: ingress only from the scrapers (exporter),
egress only to RDS (DNS comes from the namespace's allow-dns policy).
"""

import hashlib

import pulumi
import pulumi_kubernetes as k8s

from . import common, datastore_exporter, postgres_roles as roles
from .postgres_base import (EXPORTER_PORT, MONITOR_USER, PORT, ca_mount, ca_volume, libpq_tls_env, ssl_query)
from .secrets import rotation_trigger

EXPORTER_APP = "postgres-exporter"
ROLES_APP = "postgres-roles"
MASTER_PASSWORD_KEY = "master-password"


def _egress(targets: list) -> list:
    return [{"to": [{"ip_block": {"cidr": t["cidr"]}}], "ports": common.tcp(int(t["port"]))} for t in targets]


def build(comp, app_password, master_password, egress_targets: list) -> None:
    name, a = comp._name, comp._a
    cfg, ns = a["aws"], a["namespace"]
    host = comp.instance.address
    sslmode = "verify-full"

    # ---------------------------------------------------------------- CA bundle
    if cfg.get("ca_bundle_pem"):
        ca_name = f"{name}-ca"
        comp.ca_config_map = k8s.core.v1.ConfigMap(
            ca_name, metadata=common.meta(ca_name, ns, common.labels("postgres", name, "ca-bundle")),
            data={"ca.pem": cfg["ca_bundle_pem"]}, opts=comp._child())
        comp.ca_bundle = {"config_map": comp.ca_config_map.metadata.name, "key": "ca.pem"}
    else:
        comp.ca_config_map = None
        comp.ca_bundle = {"config_map": cfg["ca_bundle_config_map"]["name"], "key": cfg["ca_bundle_config_map"]["key"]}

    # ---------------------------------------------------------------- roles bootstrap Job
    lbl = common.labels(ROLES_APP, name, "bootstrap")
    sel = common.selector(ROLES_APP, name, "bootstrap")
    credentials = {
        roles.APP_PASSWORD_KEY: app_password,
        roles.MONITOR_PASSWORD_KEY: comp.monitor_password,
        roles.BACKUP_PASSWORD_KEY: comp.backup_password,
    }
    # The Job needs only the verifiers: no password of a role is in its Secret.
    comp.roles_secret = k8s.core.v1.Secret(
        f"{name}-roles", metadata=common.meta(f"{name}-roles", ns, lbl), type="Opaque",
        string_data=pulumi.Output.secret(roles.verifiers(f"{name}-roles", credentials, comp._child())),
        opts=comp._child())
    comp.master_secret = k8s.core.v1.Secret(
        f"{name}-master", metadata=common.meta(f"{name}-master", ns, lbl), type="Opaque",
        string_data=pulumi.Output.secret({"username": cfg["master_username"], MASTER_PASSWORD_KEY: master_password}),
        opts=comp._child())
    script = {"roles.sql": roles.ROLES_SQL, "apply-roles.sh": roles.JOB_SCRIPT}
    comp.roles_config_map = k8s.core.v1.ConfigMap(
        f"{name}-roles", metadata=common.meta(f"{name}-roles", ns, lbl), data=script, opts=comp._child())
    sa = k8s.core.v1.ServiceAccount(f"{name}-roles-sa", metadata=common.meta(f"{name}-roles", ns, lbl),
                                    automount_service_account_token=False, opts=comp._child())
    rotation = rotation_trigger(f"{name}-roles-rotation", {**credentials, MASTER_PASSWORD_KEY: master_password},
                                comp._child())
    script_digest = hashlib.sha256("".join(script.values()).encode()).hexdigest()[:8]
    container = common.container(
        "roles", a.get("aws", {}).get("bootstrap_image") or a["image"],
        common.resources("20m", "32Mi", "128Mi", None, "16Mi", "64Mi"),
        command=["/bin/sh", f"{roles.ROLES_DIR}/apply-roles.sh"],
        env=[
            {"name": "PGHOST", "value": host},
            {"name": "PGPORT", "value": str(PORT)},
            {"name": "PGUSER", "value": cfg["master_username"]},
            common.secret_env("PGPASSWORD", comp.master_secret.metadata.name, MASTER_PASSWORD_KEY),
            *libpq_tls_env(sslmode),
            {"name": "PGCONNECT_TIMEOUT", "value": "30"},
            {"name": "PGAPPNAME", "value": f"{name}-roles"},
            {"name": "HOME", "value": "/tmp"},
            *roles.role_env(comp.roles_secret.metadata.name, a["database"], a["username"]),
        ],
        volume_mounts=[common.mount("tmp", "/tmp"), common.mount("roles", roles.ROLES_DIR, read_only=True),
                       ca_mount()])
    comp.roles_job = k8s.batch.v1.Job(
        f"{name}-roles",
        # A new name per credential set (and script): the Job re-runs on rotation.
        metadata=common.meta(pulumi.Output.concat(f"{name}-roles-{script_digest}-", rotation.apply(lambda h: h[:8])),
                             ns, lbl),
        spec={
            "backoff_limit": 6,
            "active_deadline_seconds": 900,
            # Its name changes with every credential set: a deleted finished Job is not
            # re-run until something it applies changes (or a refresh forgets it: harmless,
            # the script is idempotent).
            "ttl_seconds_after_finished": 7 * 86400,
            "template": {
                "metadata": {"labels": lbl},
                "spec": common.restricted_pod_spec(identity="postgres-roles",
                    service_account=sa.metadata.name, restart_policy="OnFailure", containers=[container],
                    volumes=[common.empty_dir("tmp", "16Mi"),
                             {"name": "roles", "config_map": {"name": comp.roles_config_map.metadata.name,
                                                              "default_mode": 0o444}},
                             ca_volume(comp.ca_bundle)]),
            },
        },
        opts=comp._child(comp.instance, comp.roles_secret, comp.master_secret, comp.roles_config_map,
                         comp.ca_config_map, delete_before_replace=True,
                         custom_timeouts=pulumi.CustomTimeouts(create="20m", update="20m")))
    comp.roles_network_policy = k8s.networking.v1.NetworkPolicy(
        f"{name}-roles", metadata=common.meta(f"{name}-roles", ns, lbl),
        spec={"pod_selector": {"match_labels": sel}, "policy_types": ["Ingress", "Egress"],
              "ingress": [], "egress": _egress(egress_targets)},
        opts=comp._child())

    # ---------------------------------------------------------------- exporter
    lbl = common.labels(EXPORTER_APP, name, "metrics")
    exporter_name = f"{name}-exporter"
    comp.exporter_secret = k8s.core.v1.Secret(
        exporter_name, metadata=common.meta(exporter_name, ns, lbl), type="Opaque",
        string_data=pulumi.Output.secret({roles.MONITOR_PASSWORD_KEY: comp.monitor_password}), opts=comp._child())
    exporter = common.container(
        "exporter", a["exporter_image"], common.resources("20m", "32Mi", "128Mi", None, "16Mi", "64Mi"),
        args=[f"--web.listen-address=:{EXPORTER_PORT}"],
        ports=[{"name": "metrics", "container_port": EXPORTER_PORT, "protocol": "TCP"}],
        env=[
            # lib/pq reads sslrootcert from the URI: the server is verified against the RDS CA.
            {"name": "DATA_SOURCE_URI",
             "value": pulumi.Output.concat(host, f":{PORT}/{a['database']}?{ssl_query(sslmode)}")},
            {"name": "DATA_SOURCE_USER", "value": MONITOR_USER},
            common.secret_env("DATA_SOURCE_PASS", comp.exporter_secret.metadata.name, roles.MONITOR_PASSWORD_KEY),
        ],
        readiness_probe=common.http_probe("/", "metrics", period=15, timeout=5, failures=3),
        liveness_probe=common.tcp_probe("metrics", period=20, timeout=5, failures=3),
        volume_mounts=[ca_mount()])
    rotation = rotation_trigger(f"{exporter_name}-rotation", {roles.MONITOR_PASSWORD_KEY: comp.monitor_password},
                                comp._child())
    datastore_exporter.deploy(comp, exporter_name, EXPORTER_APP, exporter, rotation, EXPORTER_PORT, egress_targets,
                              volumes=[ca_volume(comp.ca_bundle)],
                              depends_on=(comp.roles_job, comp.exporter_secret, comp.ca_config_map))
