"""Facts shared by every backend of ``Postgres``: ports, role names, the seed's server
parameters and the connection URL New API needs."""

from typing import TypedDict
from urllib.parse import quote

import pulumi

from . import common


class CaBundleArgs(TypedDict, total=False):
    config_map: pulumi.Input[str]
    """Name of the ConfigMap holding the CA bundle (set this or ``secret``)."""
    secret: pulumi.Input[str]
    """Name of the Secret holding it (a CA Secret that also holds the CA's private key, like
    CloudNativePG's: only ``key`` is projected into the pod)."""
    key: str
    """Its key (mounted as ``CA_FILE``)."""


class ConfigMapKeyArgs(TypedDict, total=False):
    name: str
    """Name of an existing ConfigMap."""
    key: str
    """The key holding the PEM."""

BACKENDS = ("kubernetes", "cloudnative-pg", "aws")
PORT = 5432
EXPORTER_PORT = 9187
APP = "postgres"
COMPONENT = "database"
#: The superuser of the in-cluster backend; the app never uses it (seed notes §4 #28).
SUPERUSER = "postgres"
#: Read-only role of the exporter (``pg_monitor``).
MONITOR_USER = "postgres_exporter"
#: Read-only role of the dump job (``pg_read_all_data``); restores run as the app role.
BACKUP_USER = "newapi_backup"
#: Role names the app role may not take.
RESERVED_USERS = (SUPERUSER, MONITOR_USER, BACKUP_USER, "rdsadmin", "rds_superuser", "admin", "root")
#: Where every client of a TLS backend finds the CA bundle (a ConfigMap key mounted as one file).
CA_DIR = "/etc/new-api/db-ca"
CA_FILE = f"{CA_DIR}/ca.pem"
CA_VOLUME = "db-ca"
#: PGDATA is a subdirectory of the volume: the volume root may hold ``lost+found``.
DATA_MOUNT = "/var/lib/postgresql/data"
PGDATA = f"{DATA_MOUNT}/pgdata"
#: Seed 000 initdb arguments (C collation: byte order, stable across glibc upgrades).
INITDB_ARGS = "--encoding=UTF-8 --lc-collate=C --lc-ctype=C --data-checksums"


def pod_selector(name: str) -> dict:
    """Selector labels of the ``kubernetes`` backend's Postgres pod."""
    return common.selector(APP, name, COMPONENT)


def dsn(username: str, password: str, host: str, port: int, database: str, sslmode: str) -> str:
    """The URL form New API requires (``postgresql://``; CONTRACT §3), credentials escaped.
    With ``verify-full`` the server certificate is checked against the mounted CA bundle
    (``sslrootcert``, read by pgx and libpq alike)."""
    return (f"postgresql://{quote(username, safe='')}:{quote(password, safe='')}@{host}:{port}/"
            f"{quote(database, safe='')}?{ssl_query(sslmode)}")


def ssl_query(sslmode: str) -> str:
    """``sslmode=...`` plus, for ``verify-full``, the CA bundle's path."""
    return f"sslmode={sslmode}" + (f"&sslrootcert={CA_FILE}" if sslmode == "verify-full" else "")


def ca_volume(ca: dict) -> dict:
    """The CA bundle volume for a pod: ``ca`` is ``{"config_map": name, "key": key}`` or
    ``{"secret": name, "key": key}`` (``Postgres.ca_bundle``); only that key is projected,
    always as ``CA_FILE``."""
    items = [{"key": ca["key"], "path": "ca.pem"}]
    if ca.get("secret") is not None:
        return {"name": CA_VOLUME, "secret": {"secret_name": ca["secret"], "items": items, "default_mode": 0o444}}
    return {"name": CA_VOLUME, "config_map": {"name": ca["config_map"], "items": items, "default_mode": 0o444}}


def ca_mount() -> dict:
    return common.mount(CA_VOLUME, CA_DIR, read_only=True)


def libpq_tls_env(sslmode: str) -> list:
    """libpq environment of a client (psql, pg_dump, the exporter's lib/pq)."""
    env = [{"name": "PGSSLMODE", "value": sslmode}]
    if sslmode == "verify-full":
        env.append({"name": "PGSSLROOTCERT", "value": CA_FILE})
    return env


def _mb(quantity: str) -> int:
    return int(common.parse_quantity(quantity) // 2**20)


def server_parameters(memory_limit: str, max_connections: int) -> dict:
    """Seed 000's ten server parameters (000:3478-3489), memory-derived ones scaled to the
    container's memory limit: at 4Gi they are exactly the seed's 1GB/3GB/64MB/256MB."""
    mem = _mb(memory_limit)
    return {
        "max_connections": str(max_connections),
        "shared_buffers": f"{max(32, mem // 4)}MB",
        "effective_cache_size": f"{max(64, mem * 3 // 4)}MB",
        "work_mem": f"{min(64, max(4, mem // 64))}MB",
        "maintenance_work_mem": f"{min(1024, max(16, mem // 16))}MB",
        "random_page_cost": "1.1",
        "effective_io_concurrency": "200",
        "checkpoint_completion_target": "0.9",
        "wal_buffers": "16MB",
        "default_statistics_target": "100",
    }

