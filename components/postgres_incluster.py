"""The ``kubernetes`` backend of ``Postgres`` (dev): one StatefulSet of the official image,
its exporter sidecar, Services and NetworkPolicy. See ``Postgres`` for the whole picture."""

import hashlib
import json

import pulumi
import pulumi_kubernetes as k8s

from . import common, postgres_roles as roles
from .postgres_base import (APP, COMPONENT, DATA_MOUNT, EXPORTER_PORT, INITDB_ARGS, MONITOR_USER, PGDATA, PORT,
                            SUPERUSER, pod_selector, server_parameters)
from .secrets import ROTATION_ANNOTATION, generated_secret, rotation_trigger



def postgresql_conf(memory_limit: str, max_connections: int) -> str:
    """The complete ``postgresql.conf`` of the kubernetes backend (loaded with
    ``-c config_file=``, so it must carry ``listen_addresses`` itself)."""
    params = {
        "listen_addresses": "'*'",
        "port": str(PORT),
        "unix_socket_directories": "'/var/run/postgresql'",
        "superuser_reserved_connections": "3",
        "password_encryption": "scram-sha-256",
        **server_parameters(memory_limit, max_connections),
        "dynamic_shared_memory_type": "posix",
        "max_wal_size": "1GB",
        "min_wal_size": "80MB",
        # Logs to stderr only (collected from the container); UTC like the app (CONTRACT §5).
        "logging_collector": "off",
        "log_timezone": "'UTC'",
        "timezone": "'UTC'",
        "log_line_prefix": "'%m [%p] %q%u@%d '",
        "log_min_duration_statement": "1000",
        "log_lock_waits": "on",
        "log_temp_files": "0",
        "idle_in_transaction_session_timeout": "600000",
        "datestyle": "'iso, mdy'",
        "lc_messages": "'C'",
        "default_text_search_config": "'pg_catalog.english'",
    }
    quoted = {"shared_buffers", "effective_cache_size", "work_mem", "maintenance_work_mem", "wal_buffers",
              "max_wal_size", "min_wal_size", "password_encryption", "dynamic_shared_memory_type"}
    lines = ["# Rendered by components/postgres.py; edit the component, not this file."]
    for key, value in params.items():
        lines.append(f"{key} = '{value}'" if key in quoted else f"{key} = {value}")
    return "\n".join(lines) + "\n"


#: Key of the superuser's password in the credentials Secret.
SUPERUSER_PASSWORD_KEY = "superuser-password"


def _checksum(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def build(comp, password):
    name, a = comp._name, comp._a
    ns = a["namespace"]
    lbl = common.labels(APP, name, COMPONENT)
    sel = pod_selector(name)
    res = a["resources"]

    superuser_password = generated_secret(f"{name}-superuser-password", 32, comp._child(), mixed=False)
    credentials = {
        roles.APP_PASSWORD_KEY: password,
        roles.MONITOR_PASSWORD_KEY: comp.monitor_password,
        roles.BACKUP_PASSWORD_KEY: comp.backup_password,
        SUPERUSER_PASSWORD_KEY: superuser_password,
    }
    # Passwords for initdb and the exporter; their verifiers for the roles sidecar.
    comp.credentials = k8s.core.v1.Secret(
        f"{name}-credentials", metadata=common.meta(f"{name}-credentials", ns, lbl), type="Opaque",
        string_data=pulumi.Output.secret({"username": a["username"], **credentials,
                                          **roles.verifiers(name, credentials, comp._child())}),
        opts=comp._child())
    # The pod rolls when any credential changes; the roles sidecar re-applies them at start.
    rotation = rotation_trigger(f"{name}-rotation", credentials, comp._child())
    conf = postgresql_conf(res["memory_limit"], int(a["max_connections"]))
    comp.config_map = k8s.core.v1.ConfigMap(
        f"{name}-config", metadata=common.meta(f"{name}-config", ns, lbl),
        data={"postgresql.conf": conf, "roles.sql": roles.ROLES_SQL, "apply-roles.sh": roles.SIDECAR_SCRIPT},
        opts=comp._child())
    comp.service_account = k8s.core.v1.ServiceAccount(
        f"{name}-sa", metadata=common.meta(name, ns, lbl), automount_service_account_token=False,
        opts=comp._child())

    secret_name = comp.credentials.metadata.name
    isready = ["pg_isready", "--host=127.0.0.1", f"--port={PORT}", f"--username={SUPERUSER}",
               f"--dbname={a['database']}"]
    postgres = {
        "name": "postgres",
        "image": a["image"],
        "image_pull_policy": "IfNotPresent",
        "args": ["-c", "config_file=/etc/postgresql/postgresql.conf"],
        "ports": [{"name": "postgres", "container_port": PORT, "protocol": "TCP"}],
        "env": [
            {"name": "PGDATA", "value": PGDATA},
            {"name": "POSTGRES_USER", "value": SUPERUSER},
            # Used by initdb on an empty volume only; the roles sidecar re-applies it at every start.
            common.secret_env("POSTGRES_PASSWORD", secret_name, SUPERUSER_PASSWORD_KEY),
            {"name": "POSTGRES_DB", "value": a["database"]},
            {"name": "POSTGRES_INITDB_ARGS", "value": INITDB_ARGS},
        ],
        "resources": common.resources(res["cpu_request"], res["memory_request"], res["memory_limit"],
                                      res.get("cpu_limit") or None, "64Mi", "1Gi"),
        "security_context": common.container_security_context(),
        # initdb on a fresh volume: up to 5 minutes before the first readiness check.
        "startup_probe": common.exec_probe(isready, period=10, timeout=5, failures=30),
        # 127.0.0.1, not the socket: initdb's temporary server listens on the socket only.
        "readiness_probe": common.exec_probe(isready, period=10, timeout=5, failures=3),
        "liveness_probe": common.tcp_probe("postgres", period=10, timeout=5, failures=6),
        "volume_mounts": [
            common.mount("data", DATA_MOUNT),
            common.mount("run", "/var/run/postgresql"),
            common.mount("tmp", "/tmp"),
            common.mount("config", "/etc/postgresql", read_only=True),
        ],
    }
    applied = ["test", "-f", roles.APPLIED_MARKER]
    roles_sidecar = {
        "name": "roles",
        "image": a["image"],
        "image_pull_policy": "IfNotPresent",
        "command": ["/bin/sh", f"{roles.ROLES_DIR}/apply-roles.sh"],
        "env": [
            {"name": "PGPORT", "value": str(PORT)},
            {"name": "PGUSER", "value": SUPERUSER},
            *roles.role_env(secret_name, a["database"], a["username"]),
            common.secret_env("SUPERUSER_PASSWORD", secret_name, SUPERUSER_PASSWORD_KEY + roles.SCRAM_SUFFIX),
        ],
        "resources": common.resources("10m", "16Mi", "64Mi", None, "16Mi", "64Mi"),
        "security_context": common.container_security_context(),
        # Ready once this start's roles and passwords are applied: the pod (and so the
        # Service) admits clients only then.
        # Applied (file written) within 10 minutes of start, or the container restarts and
        # tries again; the same check keeps it live and ready afterwards.
        "startup_probe": common.exec_probe(applied, period=5, timeout=3, failures=120),
        "readiness_probe": common.exec_probe(applied, period=10, timeout=3, failures=3),
        "liveness_probe": common.exec_probe(applied, period=30, timeout=3, failures=3),
        "volume_mounts": [
            common.mount("run", "/var/run/postgresql"),
            common.mount("roles-tmp", "/tmp"),
            common.mount("roles", roles.ROLES_DIR, read_only=True),
        ],
    }
    exporter = {
        "name": "exporter",
        "image": a["exporter_image"],
        "image_pull_policy": "IfNotPresent",
        "args": [f"--web.listen-address=:{EXPORTER_PORT}"],
        "ports": [{"name": "metrics", "container_port": EXPORTER_PORT, "protocol": "TCP"}],
        "env": [
            {"name": "DATA_SOURCE_URI", "value": f"127.0.0.1:{PORT}/{a['database']}?sslmode=disable"},
            {"name": "DATA_SOURCE_USER", "value": MONITOR_USER},
            common.secret_env("DATA_SOURCE_PASS", secret_name, roles.MONITOR_PASSWORD_KEY),
        ],
        "resources": common.resources("10m", "32Mi", "128Mi", None, "16Mi", "64Mi"),
        "security_context": common.container_security_context(),
        "readiness_probe": common.http_probe("/", "metrics", period=15, timeout=5, failures=3),
        "liveness_probe": common.tcp_probe("metrics", period=20, timeout=5, failures=3),
    }
    config_items = lambda key: {"name": comp.config_map.metadata.name,  # noqa: E731
                                "items": [{"key": key, "path": key}], "default_mode": 0o555}
    pod_annotations = {
        "new-api.io/config-checksum": _checksum(conf + roles.ROLES_SQL + roles.SIDECAR_SCRIPT),
        ROTATION_ANNOTATION: rotation,
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(EXPORTER_PORT),
    }
    single = common.exemption_annotations(
        ["K8S-034"], "in-cluster Postgres is one instance by design (dev); HA is the cloudnative-pg "
                     "or aws backend")
    comp.headless_service = k8s.core.v1.Service(
        f"{name}-headless", metadata=common.meta(f"{name}-headless", ns, lbl),
        spec=common.service_spec(sel, [("postgres", PORT), ("metrics", EXPORTER_PORT)], headless=True),
        opts=comp._child())
    comp.statefulset = k8s.apps.v1.StatefulSet(
        name,
        metadata=common.meta(name, ns, lbl, single),
        spec={
            "replicas": 1,
            "service_name": comp.headless_service.metadata.name,
            "pod_management_policy": "OrderedReady",
            "update_strategy": {"type": "RollingUpdate"},
            # Volumes outlive the StatefulSet: deleting or scaling it never deletes data.
            "persistent_volume_claim_retention_policy": {"when_deleted": "Retain", "when_scaled": "Retain"},
            "selector": {"match_labels": sel},
            "template": {
                "metadata": {"labels": lbl, "annotations": pod_annotations},
                "spec": common.restricted_pod_spec(identity="postgres",
                    service_account=comp.service_account.metadata.name,
                    containers=[postgres, exporter, roles_sidecar],
                    volumes=[
                        common.empty_dir("run", "16Mi"),
                        common.empty_dir("tmp", "256Mi"),
                        common.empty_dir("roles-tmp", "1Mi"),
                        {"name": "config", "config_map": config_items("postgresql.conf")},
                        {"name": "roles", "config_map": {
                            "name": comp.config_map.metadata.name, "default_mode": 0o444,
                            "items": [{"key": k, "path": k} for k in ("roles.sql", "apply-roles.sh")]}},
                    ],
                    # Fast shutdown (the image's STOPSIGNAL is SIGINT) plus a checkpoint.
                    termination_grace_seconds=60,
                ),
            },
            "volume_claim_templates": [common.volume_claim("data", lbl, a["storage_size"], a.get("storage_class"))],
        },
        opts=comp._child(comp.credentials, comp.config_map, protect=a["protect"],
                         retain_on_delete=a["protect"]),
    )
    comp.service = k8s.core.v1.Service(
        name, metadata=common.meta(name, ns, lbl),
        spec=common.service_spec(sel, [("postgres", PORT)]),
        opts=comp._child(comp.statefulset))
    comp.network_policy = k8s.networking.v1.NetworkPolicy(
        name, metadata=common.meta(name, ns, lbl),
        spec={
            "pod_selector": {"match_labels": sel},
            "policy_types": ["Ingress", "Egress"],
            "ingress": ([{"from": comp._client_peers(), "ports": [{"protocol": "TCP", "port": PORT}]}]
                        if a["clients"] else []) + comp._scrapers(EXPORTER_PORT),
            # Postgres initiates nothing.
            "egress": [],
        },
        opts=comp._child())
    host = pulumi.Output.concat(comp.service.metadata.name, ".", ns, ".svc")
    # In-cluster traffic without TLS: see the class docstring.
    egress = [{"port": PORT, "pod_labels": sel}]
    return host, host, "disable", egress

