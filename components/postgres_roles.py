"""The roles of New API's database, applied the same way on every backend that has them.

One idempotent psql script (``ROLES_SQL``) creates or updates, on every run:

- the app role (``database.username``): LOGIN, no CREATEDB/CREATEROLE (never a superuser),
  owner of New API's database and of nothing else; objects the administrator still owns
  in that database (a stack whose app logged in as the RDS master) are handed over;
- the monitoring role (``postgres_exporter``): ``pg_monitor``, 3 connections;
- the backup role (``newapi_backup``): ``pg_read_all_data``, read-only, 2 connections;
- every password, re-applied each run: a rotated Secret is what the server accepts next;
  sent as its SCRAM verifier (``scram_sha_256``), never in cleartext.

Who runs it: on RDS a Job as the master user (the only place the master password is
used), re-created whenever a credential changes; in-cluster a sidecar of the Postgres pod
as the superuser over the local socket, at every start of the pod, which rolls when a
credential changes. The passwords' verifiers reach psql through the environment
(``\\getenv``), never on a command line. The script needs psql 15+ (``\\getenv``) and a server 14+
(``pg_read_all_data``); the ``\\if :pg16`` branch follows PostgreSQL 16's membership rules
(a CREATEROLE user must be granted SET on a role before giving it a database).
"""

import base64
import hashlib
import hmac
from typing import Mapping

import pulumi
import pulumi_random as random

#: psql script; variables come from the environment (see ``role_env``).
ROLES_SQL = r"""\set ON_ERROR_STOP on
\getenv db PGDATABASE
\getenv app_user APP_USER
\getenv app_password APP_PASSWORD
\getenv monitor_user MONITOR_USER
\getenv monitor_password MONITOR_PASSWORD
\getenv backup_user BACKUP_USER
\getenv backup_password BACKUP_PASSWORD
\getenv superuser_password SUPERUSER_PASSWORD
SELECT current_setting('server_version_num')::int >= 160000 AS pg16,
       rolsuper AS is_superuser
  FROM pg_roles WHERE rolname = current_user \gset

SELECT format('CREATE ROLE %I', r)
  FROM unnest(ARRAY[:'app_user', :'monitor_user', :'backup_user']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec
ALTER ROLE :"app_user" WITH LOGIN NOCREATEDB NOCREATEROLE INHERIT CONNECTION LIMIT -1 PASSWORD :'app_password';
ALTER ROLE :"monitor_user" WITH LOGIN NOCREATEDB NOCREATEROLE CONNECTION LIMIT 3 PASSWORD :'monitor_password';
ALTER ROLE :"backup_user" WITH LOGIN NOCREATEDB NOCREATEROLE CONNECTION LIMIT 2 PASSWORD :'backup_password';
\if :{?superuser_password}
ALTER ROLE CURRENT_USER PASSWORD :'superuser_password';
\endif

\if :is_superuser
\elif :pg16
GRANT :"app_user" TO CURRENT_USER WITH INHERIT FALSE, SET TRUE;
\else
GRANT :"app_user" TO CURRENT_USER;
\endif
ALTER DATABASE :"db" OWNER TO :"app_user";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"app_user";
GRANT CONNECT ON DATABASE :"db" TO :"monitor_user", :"backup_user";
GRANT pg_monitor TO :"monitor_user";
GRANT pg_read_all_data TO :"backup_user";

SELECT format('ALTER SCHEMA %I OWNER TO %I', nspname, :'app_user')
  FROM pg_namespace
 WHERE nspowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
   AND nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema' \gexec
SELECT format('ALTER %s %I.%I OWNER TO %I',
              CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                             WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
              n.nspname, c.relname, :'app_user')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
   AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
   AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
   AND NOT (c.relkind = 'S' AND EXISTS (
         SELECT 1 FROM pg_depend d
          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i'))) \gexec
SELECT format('ALTER FUNCTION %s OWNER TO %I', p.oid::regprocedure, :'app_user')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.proowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
   AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema' \gexec
"""

#: The RDS Job: psql as the master user over TLS (libpq environment: PGHOST, PGSSLMODE...).
JOB_SCRIPT = r"""#!/bin/sh
set -eu
psql --no-psqlrc --quiet --file="${ROLES_DIR:-/etc/new-api/roles}/roles.sql"
echo "roles of ${PGDATABASE} applied"
"""

#: The in-cluster sidecar: waits for the real server (TCP: initdb's temporary server
#: listens on the socket only), applies the roles as the superuser over the local socket
#: (the image's pg_hba trusts local connections), reports ready, then idles until stopped.
SIDECAR_SCRIPT = r"""#!/bin/sh
set -eu
until pg_isready --quiet --host=127.0.0.1 --port="${PGPORT}"; do
  sleep 2
done
psql --no-psqlrc --quiet --host="${PGSOCKET:-/var/run/postgresql}" \
  --file="${ROLES_DIR:-/etc/new-api/roles}/roles.sql"
touch "${APPLIED_MARKER:-/tmp/roles-applied}"
echo "roles of ${PGDATABASE} applied"
trap 'exit 0' TERM INT
while :; do
  sleep 3600 &
  wait $!
done
"""

ROLES_DIR = "/etc/new-api/roles"
#: The sidecar's readiness: the roles (and passwords) of this start are applied.
APPLIED_MARKER = "/tmp/roles-applied"

#: Keys of the roles Secret.
APP_PASSWORD_KEY = "app-password"
MONITOR_PASSWORD_KEY = "monitor-password"
BACKUP_PASSWORD_KEY = "backup-password"


#: PostgreSQL's default ``scram_iterations`` (what the server itself would use).
SCRAM_ITERATIONS = 4096
#: Suffix of the Secret key holding a password's SCRAM verifier (``verifiers``).
SCRAM_SUFFIX = "-scram"


def scram_sha_256(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> str:
    """The form in which PostgreSQL stores a SCRAM-SHA-256 password, which ``ALTER ROLE ...
    PASSWORD`` accepts as is ("If the presented password string is already in MD5-encrypted
    or SCRAM-encrypted format, then it is stored as-is", PostgreSQL docs, CREATE ROLE):
    ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``, base64
    (``src/common/scram-common.c`` ``scram_build_secret``; RFC 5802 section 3, RFC 7677).
    The statement then carries no password, so a logged statement (an error,
    ``log_min_duration_statement``, ``log_statement``, pgaudit) reveals none; PostgreSQL's
    CREATE ROLE docs warn that a cleartext one "might also be logged ... in the server log".
    SASLprep leaves printable ASCII unchanged, so only such passwords are accepted here (every
    generated one is)."""
    if not (password.isascii() and password.isprintable()):
        raise ValueError("a database password must be printable ASCII to be sent pre-hashed")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def verifiers(name: str, credentials: Mapping[str, pulumi.Input[str]],
              opts: pulumi.ResourceOptions) -> dict[str, pulumi.Output[str]]:
    """For each ``key: password``, ``key + SCRAM_SUFFIX``: its SCRAM verifier (secret),
    salted with 16 random bytes that are renewed with the password (``RandomBytes``
    keepers), so a rotated password gets a new salt and an unchanged one a stable verifier."""
    out = {}
    for key, password in credentials.items():
        password = pulumi.Output.secret(password)
        salt = random.RandomBytes(f"{name}-{key}-salt", length=16, keepers={"password": password}, opts=opts)
        out[key + SCRAM_SUFFIX] = pulumi.Output.secret(pulumi.Output.all(password, salt.hex).apply(
            lambda v: scram_sha_256(v[0], bytes.fromhex(v[1]))))
    return out


def role_env(secret_name, database: str, app_user: str) -> list:
    """Environment of the script: role names as values, the passwords' SCRAM verifiers
    (``verifiers``) from the roles Secret: the script never holds a password."""
    from . import common
    from .postgres_base import BACKUP_USER, MONITOR_USER

    return [
        {"name": "PGDATABASE", "value": database},
        {"name": "APP_USER", "value": app_user},
        common.secret_env("APP_PASSWORD", secret_name, APP_PASSWORD_KEY + SCRAM_SUFFIX),
        {"name": "MONITOR_USER", "value": MONITOR_USER},
        common.secret_env("MONITOR_PASSWORD", secret_name, MONITOR_PASSWORD_KEY + SCRAM_SUFFIX),
        {"name": "BACKUP_USER", "value": BACKUP_USER},
        common.secret_env("BACKUP_PASSWORD", secret_name, BACKUP_PASSWORD_KEY + SCRAM_SUFFIX),
    ]
