"""Issue 13 item 6: the app never logs in as the RDS master; every client verifies RDS's
certificate. The roles script runs for real, twice, against a real PostgreSQL set up like
RDS (a CREATEROLE/CREATEDB administrator owning the database, TLS on); the rendered
objects are read from the prod stack as the engine registers them."""

import subprocess

import pytest

from components import postgres as pg
from components import postgres_rds_clients as clients
from components import postgres_base as pgb
from components import postgres_roles as roles
from support import env_map, pod_spec
from validators import require

from .conftest import LIVE_PASSWORDS, MASTER, MASTER_PASSWORD, needs_postgres, secret_value


# --------------------------------------------------------------------------- the scripts


@pytest.mark.parametrize("script", ["JOB_SCRIPT", "SIDECAR_SCRIPT"])
def test_role_scripts_pass_shellcheck(script, tmp_path):
    path = tmp_path / "script.sh"
    path.write_text(getattr(roles, script))
    out = subprocess.run([require("shellcheck"), "-s", "sh", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def _state(live) -> str:
    """Everything the script decides: attributes, memberships, owners, privileges."""
    return live.psql(
        "SELECT string_agg(x, ';' ORDER BY x) FROM ("
        " SELECT format('%s super=%s createdb=%s createrole=%s login=%s limit=%s', rolname, rolsuper, rolcreatedb,"
        "  rolcreaterole, rolcanlogin, rolconnlimit) AS x FROM pg_roles"
        "  WHERE rolname IN ('newapi', 'postgres_exporter', 'newapi_backup')"
        " UNION ALL SELECT format('%s member of %s', m.rolname, r.rolname) FROM pg_auth_members a"
        "  JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member"
        "  WHERE m.rolname IN ('newapi', 'postgres_exporter', 'newapi_backup')"
        " UNION ALL SELECT format('db %s owner %s acl %s', datname, pg_get_userbyid(datdba), datacl)"
        "  FROM pg_database) s")


@needs_postgres
def test_roles_job_is_idempotent_on_a_real_server(live_postgres):
    """The fixture ran the Job's script once; twice more must succeed and change nothing."""
    before = _state(live_postgres)
    for _ in range(2):
        out = live_postgres.run_roles_job()
        assert out.returncode == 0, out.stderr
    assert _state(live_postgres) == before


@needs_postgres
def test_app_role_owns_only_new_apis_database_and_is_no_administrator(live_postgres):
    owned = live_postgres.psql("SELECT string_agg(datname, ',') FROM pg_database WHERE pg_get_userbyid(datdba) = 'newapi'")
    attrs = live_postgres.psql("SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls "
                               "FROM pg_roles WHERE rolname = 'newapi'")
    assert (owned, attrs) == ("newapi", "f|f|f|f|f")


@needs_postgres
def test_app_role_logs_in_with_verify_full_and_creates_tables(live_postgres):
    out = live_postgres.login("newapi", LIVE_PASSWORDS["APP_PASSWORD"],
                              "CREATE TABLE probe_tls(id int); DROP TABLE probe_tls; "
                              "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert (out.returncode, out.stdout.strip()) == (0, "t"), out.stderr


@needs_postgres
def test_monitor_role_reads_statistics_but_no_table(live_postgres):
    live_postgres.login("newapi", LIVE_PASSWORDS["APP_PASSWORD"], "CREATE TABLE IF NOT EXISTS secrets_probe(k text)")
    stats = live_postgres.login(pg.MONITOR_USER, LIVE_PASSWORDS["MONITOR_PASSWORD"],
                                "SELECT count(*) > 0 FROM pg_stat_activity WHERE query <> ''")
    table = live_postgres.login(pg.MONITOR_USER, LIVE_PASSWORDS["MONITOR_PASSWORD"], "SELECT * FROM secrets_probe")
    assert stats.stdout.strip() == "t", stats.stderr
    assert table.returncode != 0 and "permission denied" in table.stderr


@needs_postgres
def test_backup_role_reads_everything_and_writes_nothing(live_postgres):
    app = ("newapi", LIVE_PASSWORDS["APP_PASSWORD"])
    assert live_postgres.login(*app, "CREATE TABLE IF NOT EXISTS tokens_probe(id int); "
                                     "INSERT INTO tokens_probe VALUES (1)").returncode == 0
    backup = (pg.BACKUP_USER, LIVE_PASSWORDS["BACKUP_PASSWORD"])
    read = live_postgres.login(*backup, "SELECT count(*) >= 1 FROM tokens_probe")
    write = live_postgres.login(*backup, "INSERT INTO tokens_probe VALUES (2)")
    create = live_postgres.login(*backup, "CREATE TABLE backup_probe(id int)")
    assert read.stdout.strip() == "t", read.stderr
    assert write.returncode != 0 and create.returncode != 0


@needs_postgres
def test_objects_the_master_created_are_handed_to_the_app_role(fresh_postgres):
    """A stack whose app logged in as the master: its tables, sequences and views become the
    app role's, or the app could no longer migrate them."""
    master = (MASTER, MASTER_PASSWORD)
    out = fresh_postgres.login(*master, "CREATE TABLE legacy(id serial PRIMARY KEY); CREATE SEQUENCE legacy_free; "
                                        "CREATE VIEW legacy_v AS SELECT id FROM legacy")
    assert out.returncode == 0, out.stderr
    assert fresh_postgres.run_roles_job().returncode == 0
    owners = fresh_postgres.psql("SELECT string_agg(DISTINCT pg_get_userbyid(relowner), ',') FROM pg_class "
                                 "WHERE relnamespace = 'public'::regnamespace", db="newapi")
    assert owners == "newapi"
    migrate = fresh_postgres.login("newapi", LIVE_PASSWORDS["APP_PASSWORD"], "ALTER TABLE legacy ADD COLUMN n int")
    assert migrate.returncode == 0, migrate.stderr


@needs_postgres
def test_roles_job_refuses_a_server_its_ca_did_not_sign(live_postgres):
    """verify-full: a certificate from another CA (a man in the middle) stops the Job."""
    out = live_postgres.run_roles_job(ca=live_postgres.tls["other_ca"])
    assert out.returncode != 0 and "certificate verify failed" in out.stderr


# --------------------------------------------------------------------------- rendered objects


def _all_k8s(stack):
    return [o for kind in ("Deployment", "StatefulSet", "Job", "CronJob", "DaemonSet") for o in stack.k8s_all(kind)]


def _pod(obj) -> dict:
    spec = obj["spec"]
    if "jobTemplate" in spec:
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def _secret_refs(obj) -> set:
    pod = _pod(obj)
    return {(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for c in [*pod.get("initContainers", []), *pod["containers"]] for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})}


def test_rds_master_is_not_the_app_role(prod):
    rds = prod.get("aws:rds/instance:Instance", "new-api-postgres-primary").inputs
    app_dsn = secret_value(prod.get("kubernetes:core/v1:Secret", "new-api-env").inputs["stringData"])["SQL_DSN"]
    assert rds["username"] == "newapi_admin" and app_dsn.startswith("postgresql://newapi:")
    master = secret_value(rds["password"])
    assert master not in app_dsn


def test_master_password_is_used_only_by_the_roles_job(prod):
    users = {o["metadata"]["name"] for o in _all_k8s(prod)
             if ("new-api-postgres-master", clients.MASTER_PASSWORD_KEY) in _secret_refs(o)}
    assert len(users) == 1 and next(iter(users)).startswith("new-api-postgres-roles-")
    master = secret_value(prod.get("aws:rds/instance:Instance", "new-api-postgres-primary").inputs["password"])
    for reg in prod.of_type("kubernetes:core/v1:Secret"):
        data = reg.inputs.get("stringData")
        text = str(secret_value(data) if isinstance(data, dict) and "value" in data else data)
        assert master not in text or reg.name == "new-api-postgres-master", reg.name


def test_roles_job_runs_the_roles_script_as_master_with_verify_full(prod):
    job = next(o for o in prod.k8s_all("Job") if o["metadata"]["name"].startswith("new-api-postgres-roles-"))
    c = _pod(job)["containers"][0]
    env = env_map(c)
    assert (env["PGUSER"]["value"], env["PGSSLMODE"]["value"], env["PGSSLROOTCERT"]["value"]) == \
        ("newapi_admin", "verify-full", pg.CA_FILE)
    cm = prod.k8s("ConfigMap", "new-api-postgres-roles")["data"]
    assert cm["roles.sql"] == roles.ROLES_SQL and c["command"] == ["/bin/sh", f"{roles.ROLES_DIR}/apply-roles.sh"]


@pytest.mark.parametrize("workload", ["new-api", "new-api-master", "new-api-postgres-exporter", "new-api-db-backup"])
def test_every_rds_client_verifies_the_server_against_the_mounted_ca(prod, workload):
    """libpq and pgx read sslrootcert (URL or PGSSLROOTCERT): the file must be where they
    look, from the CA bundle named in config (Pulumi.prod.yaml: ConfigMap rds-ca-bundle)."""
    obj = next(o for o in _all_k8s(prod) if o["metadata"]["name"] == workload)
    pod = _pod(obj)
    ca = next(v for v in pod["volumes"] if v["name"] == pgb.CA_VOLUME)
    assert ca["configMap"]["name"] == "rds-ca-bundle"
    assert ca["configMap"]["items"] == [{"key": "global-bundle.pem", "path": "ca.pem"}]
    for c in [*pod.get("initContainers", []), *pod["containers"]]:
        env = env_map(c)
        uses_db = {"PGHOST", "DATA_SOURCE_URI", "SQL_DSN"} & set(env)
        if not uses_db:
            continue
        assert {"name": pgb.CA_VOLUME, "mountPath": pgb.CA_DIR, "readOnly": True} \
            in c["volumeMounts"], c["name"]
        if "PGSSLMODE" in env:
            assert (env["PGSSLMODE"]["value"], env["PGSSLROOTCERT"]["value"]) == ("verify-full", pg.CA_FILE)
        if "DATA_SOURCE_URI" in env:
            assert env["DATA_SOURCE_URI"]["value"].endswith(f"?sslmode=verify-full&sslrootcert={pg.CA_FILE}")


def test_ca_bundle_from_a_project_file_becomes_a_configmap():
    from tools import mockrt

    from support import Stack, override
    from .conftest import RDS_NET

    stack = Stack(mockrt.run_stack("prod", overrides=override("prod", ("database.aws", RDS_NET))))
    cm = stack.k8s("ConfigMap", "new-api-postgres-ca")
    assert cm["data"]["ca.pem"] == open("tests/datastores/fixtures/test-ca.pem").read()
    volume = next(v for v in _pod(stack.k8s("Deployment", "new-api"))["volumes"] if v["name"] == "db-ca")
    assert volume["configMap"]["name"] == "new-api-postgres-ca"
