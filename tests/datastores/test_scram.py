"""The roles script never sends a role's password: it sends the SCRAM-SHA-256 verifier the
stack computed (``postgres_roles.scram_sha_256``), which PostgreSQL stores as is ("If the
presented password string is already in MD5-encrypted or SCRAM-encrypted format, then it
is stored as-is", PostgreSQL docs, CREATE ROLE; ``src/backend/libpq/crypt.c``
``encrypt_password``). Its CREATE ROLE docs warn that a cleartext password "might also be
logged ... in the server log": an error, ``log_min_duration_statement`` (1 s here) or
``log_statement``/pgaudit would print the ALTER ROLE with it.

Tested against a real PostgreSQL: the verifiers taken from the rendered Secrets let the
clients log in with the passwords the rendered client Secrets hold, and with
``log_statement = 'all'`` the server log shows the verifiers, never a password."""

from urllib.parse import unquote, urlsplit

import pytest

from components import postgres_roles as roles

from .conftest import LIVE_PASSWORDS, needs_postgres, secret_value

VERIFIER_KEYS = {k + roles.SCRAM_SUFFIX for k in (roles.APP_PASSWORD_KEY, roles.MONITOR_PASSWORD_KEY,
                                                   roles.BACKUP_PASSWORD_KEY)}


def _secret_data(stack, name: str) -> dict:
    return secret_value(stack.get("kubernetes:core/v1:Secret", name).inputs["stringData"])


def _dsn_password(stack) -> str:
    return unquote(urlsplit(_secret_data(stack, "new-api-env")["SQL_DSN"]).password)


def _env_keys(container: dict) -> dict:
    return {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}


def test_scram_verifier_has_postgresqls_stored_form():
    """RFC 7677 / PostgreSQL ``scram_build_secret``: iterations, salt, StoredKey, ServerKey,
    base64; deterministic for a given salt; a different salt gives a different verifier."""
    v = roles.scram_sha_256("pencil", bytes(16))
    head, _, keys = v.partition("$4096:")
    assert head == "SCRAM-SHA-256" and keys.count("$") == 1 and keys.count(":") == 1
    assert v == roles.scram_sha_256("pencil", bytes(16)) != roles.scram_sha_256("pencil", bytes(15) + b"\x01")
    with pytest.raises(ValueError):
        roles.scram_sha_256("pässword", bytes(16))


def test_rds_roles_secret_holds_only_verifiers(prod):
    """Old code: the roles Job's Secret held every role's password in clear."""
    data = _secret_data(prod, "new-api-postgres-roles")
    assert set(data) == VERIFIER_KEYS
    assert all(v.startswith("SCRAM-SHA-256$4096:") for v in data.values())
    assert _dsn_password(prod) not in "".join(data.values())
    job = next(j for j in prod.k8s_all("Job") if j["metadata"]["name"].startswith("new-api-postgres-roles-"))
    keys = _env_keys(job["spec"]["template"]["spec"]["containers"][0])
    assert {keys[n] for n in ("APP_PASSWORD", "MONITOR_PASSWORD", "BACKUP_PASSWORD")} == VERIFIER_KEYS


def test_in_cluster_sidecar_reads_verifiers_and_the_exporter_the_password(dev):
    data = _secret_data(dev, "new-api-postgres-credentials")
    sts = dev.k8s("StatefulSet", "new-api-postgres")["spec"]["template"]["spec"]
    sidecar = next(c for c in sts["containers"] if c["name"] == "roles")
    keys = _env_keys(sidecar)
    for env in ("APP_PASSWORD", "MONITOR_PASSWORD", "BACKUP_PASSWORD", "SUPERUSER_PASSWORD"):
        assert keys[env].endswith(roles.SCRAM_SUFFIX) and data[keys[env]].startswith("SCRAM-SHA-256$"), env
    exporter = next(c for c in sts["containers"] if c["name"] == "exporter")
    assert _env_keys(exporter)["DATA_SOURCE_PASS"] == roles.MONITOR_PASSWORD_KEY
    assert data[roles.APP_PASSWORD_KEY] == _dsn_password(dev)


@needs_postgres
def test_rendered_verifiers_let_the_rendered_passwords_log_in_and_never_reach_the_log(prod, fresh_postgres):
    """The prod stack's roles Secret applied by the real Job script as the RDS-like
    administrator; the app logs in with the password of its rendered DSN, a wrong one is
    refused; the statement log has the verifiers and none of the passwords."""
    live = fresh_postgres
    live.psql("ALTER SYSTEM SET log_statement = 'all'")
    live.psql("SELECT pg_reload_conf()")
    verifiers = _secret_data(prod, "new-api-postgres-roles")
    env = {"APP_PASSWORD": verifiers[roles.APP_PASSWORD_KEY + roles.SCRAM_SUFFIX],
           "MONITOR_PASSWORD": verifiers[roles.MONITOR_PASSWORD_KEY + roles.SCRAM_SUFFIX],
           "BACKUP_PASSWORD": verifiers[roles.BACKUP_PASSWORD_KEY + roles.SCRAM_SUFFIX]}
    out = live.run_roles_job(**env)
    assert out.returncode == 0, out.stderr
    password = _dsn_password(prod)
    ok = live.login("newapi", password)
    assert ok.returncode == 0 and ok.stdout.strip() == "newapi", ok.stderr
    assert live.login("newapi", password + "x").returncode != 0
    assert live.login("newapi", LIVE_PASSWORDS["APP_PASSWORD"]).returncode != 0  # the old one is gone
    log = (live.base / "server.log").read_text()
    assert env["APP_PASSWORD"] in log, "the statements were not logged: the check below proves nothing"
    assert password not in log


@needs_postgres
def test_a_cleartext_password_would_have_been_logged(fresh_postgres):
    """The failure this prevents, on the same server settings: the old script's cleartext
    password shows up in the log."""
    live = fresh_postgres
    live.psql("ALTER SYSTEM SET log_statement = 'all'")
    live.psql("SELECT pg_reload_conf()")
    out = live.run_roles_job(APP_PASSWORD="cleartext-pass-9876")
    assert out.returncode == 0, out.stderr
    assert "cleartext-pass-9876" in (live.base / "server.log").read_text()
