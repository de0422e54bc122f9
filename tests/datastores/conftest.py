"""Fixtures of the data-tier tests: stacks per backend under mocks, component-level runs,
and real Postgres/Redis servers on loopback (skipped, with the reason, when absent)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

from support import Stack, override
from validators import IN_CI, missing
from tools import mockrt

PG_BIN = next((p for p in ("/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")
               if Path(p, "initdb").exists()), None)
REDIS_SERVER = shutil.which("redis-server")
# Locally a missing server skips with the reason; under CI=true these skips become failures.
needs_postgres = pytest.mark.skipif(
    PG_BIN is None and not IN_CI, reason="Debian postgresql is not installed (apt-get install -y postgresql)")
needs_redis = pytest.mark.skipif(
    REDIS_SERVER is None and not IN_CI, reason="Debian redis-server is not installed (apt-get install -y redis-server)")

S3 = {"bucket": "new-api-dev-backups", "roleArn": "arn:aws:iam::123456789012:role/new-api-backup"}
#: The EKS cluster's OIDC provider: the aws backend's RDS exporter assumes its role through it.
IRSA = {"oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE",
        "oidcIssuer": "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"}
AWS_NET = {"vpcId": "vpc-0abc1234def567890", "subnetIds": ["subnet-0aaa1111bbb222333", "subnet-0ccc4444ddd555666"],
           "vpcCidr": "10.0.0.0/16", "sourceSecurityGroupIds": ["sg-0123456789abcdef0"]}
#: A test CA (not a trust anchor of anything) for the caBundle.path source.
TEST_CA_PATH = "tests/datastores/fixtures/test-ca.pem"
RDS_NET = {**AWS_NET, "caBundle": {"path": TEST_CA_PATH}}


def run(stack: str, *changes) -> mockrt.RunResult:
    return mockrt.run_stack(stack, overrides=override(stack, *changes))


@pytest.fixture(scope="session")
def cnpg() -> Stack:
    """Dev with the CloudNativePG backend and an S3 archive."""
    return Stack(run("dev", ("database.backend", "cloudnative-pg"), ("backup.s3", S3)))


@pytest.fixture(scope="session")
def cnpg_prod() -> Stack:
    return Stack(run("prod", ("database.backend", "cloudnative-pg"), ("backup.s3", S3),
                     ("logging.elasticsearchReplicas", 1), ("logging.snapshotVolumeSize", "20Gi")))


@pytest.fixture(scope="session")
def prod_in_cluster() -> Stack:
    """Prod with both in-cluster backends (protection must not depend on the backend).
    Without the aws backend there is no backup bucket for Elasticsearch's snapshots, so
    logging runs one node with a snapshot volume."""
    return Stack(run("prod", ("database.backend", "kubernetes"), ("redis.backend", "kubernetes"),
                     ("redis.maxmemoryMb", 800), ("logging.elasticsearchReplicas", 1),
                     ("logging.snapshotVolumeSize", "20Gi")))


@pytest.fixture(scope="session")
def dev_restore() -> Stack:
    return Stack(run("dev", ("database.restore", {"objectKey": "newapi-dev-20260101T020000Z.dump"})))


def secret_value(value):
    """The plain value inside a secret envelope (asserting it is one)."""
    assert mockrt.is_secret_envelope(value), f"not a secret: {value!r}"
    return value["value"]


def outputs_of(component: Callable[[], object], attrs: list[str]) -> dict:
    """Run a component as a program; return {attr: (value, is_secret)} of its outputs."""
    import pulumi

    def program():
        comp = component()
        for attr in attrs:
            pulumi.export(attr, getattr(comp, attr))

    result = mockrt.run(program)
    assert result.error is None, result.error
    return result.stack_outputs


# --------------------------------------------------------------------------- live servers

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list) -> list:
    return (["runuser", "-u", "postgres", "--"] + cmd) if os.geteuid() == 0 else cmd


class LivePostgres:
    def __init__(self, base: Path, port: int, socket_dir: Path):
        self.base, self.port, self.socket_dir = base, port, socket_dir

    def env(self, **extra) -> dict:
        return {**os.environ, "PGHOST": str(self.socket_dir), "PGPORT": str(self.port), "PGUSER": "postgres",
                "PATH": f"{PG_BIN}:{os.environ['PATH']}", **extra}

    def roles_dir(self) -> Path:
        from components import postgres_roles as roles

        d = self.base / "roles"
        if not d.exists():
            d.mkdir()
            for name, text in (("roles.sql", roles.ROLES_SQL), ("apply-roles.sh", roles.JOB_SCRIPT),
                               ("sidecar.sh", roles.SIDECAR_SCRIPT)):
                (d / name).write_text(text)
                os.chmod(d / name, 0o755)
        return d

    def role_env(self, **overrides) -> dict:
        from components import postgres as pg

        from components import postgres_roles as roles

        # As the stack sends them: each password as its SCRAM verifier (roles.verifiers).
        verifiers = {k: roles.scram_sha_256(v, os.urandom(16)) for k, v in LIVE_PASSWORDS.items()}
        return {"PGDATABASE": "newapi", "APP_USER": "newapi", "MONITOR_USER": pg.MONITOR_USER,
                "BACKUP_USER": pg.BACKUP_USER, **verifiers, **overrides}

    def run_roles_job(self, ca: Optional[Path] = None, **overrides) -> subprocess.CompletedProcess:
        """The RDS Job's script, run as the administrator over TCP with verify-full, its
        environment as the Job sets it (PGHOST... from postgres_rds_clients)."""
        env = self.env(PGHOST="localhost", PGUSER=MASTER, PGPASSWORD=MASTER_PASSWORD, PGSSLMODE="verify-full",
                       PGSSLROOTCERT=str(ca or self.tls["ca"]), ROLES_DIR=str(self.roles_dir()),
                       **self.role_env(**overrides))
        return subprocess.run(["/bin/sh", str(self.roles_dir() / "apply-roles.sh")], env=env,
                              capture_output=True, text=True, timeout=60)

    def login(self, user: str, password: str, sql: str = "SELECT current_user", db: str = "newapi",
              sslmode: str = "verify-full") -> subprocess.CompletedProcess:
        """Log in over TCP as a client pod does (verify-full against the test CA)."""
        env = self.env(PGHOST="localhost", PGUSER=user, PGPASSWORD=password, PGSSLMODE=sslmode,
                       PGSSLROOTCERT=str(self.tls["ca"]))
        return subprocess.run([f"{PG_BIN}/psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
                              env=env, capture_output=True, text=True, timeout=30)

    def psql(self, sql: str, db: str = "postgres", **env) -> str:
        out = subprocess.run(_as_postgres([f"{PG_BIN}/psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql]),
                             env=self.env(**env), capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()


#: Passwords the live server's roles get from the roles script (as the stack applies them).
LIVE_PASSWORDS = {"APP_PASSWORD": "app-pass-1234", "MONITOR_PASSWORD": "monitor-pass-1234",
                  "BACKUP_PASSWORD": "backup-pass-1234"}
#: The RDS-like administrator: LOGIN CREATEROLE CREATEDB, no superuser (the RDS master's
#: attributes, docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Appendix.PostgreSQL.CommonDBATasks.Roles.rds_superuser.html).
MASTER, MASTER_PASSWORD = "newapi_admin", "master-pass-1234"


def _tls_files(base: Path) -> dict:
    """A test CA and a server certificate for ``localhost`` signed by it (openssl)."""
    ssl = shutil.which("openssl")
    assert ssl, "openssl is needed for the TLS tests"
    run_ = lambda *a: subprocess.run([ssl, *a], check=True, capture_output=True, cwd=base, timeout=60)  # noqa: E731
    run_("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=new-api-infra test CA")
    run_("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=localhost")
    (base / "ext.cnf").write_text("subjectAltName=DNS:localhost\n")
    run_("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    run_("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other-ca.pem",
         "-days", "2", "-subj", "/CN=some other CA")
    for name in ("server.key", "server.pem"):
        if os.geteuid() == 0:
            shutil.chown(base / name, "postgres", "postgres")
        os.chmod(base / name, 0o600)
    for name in ("ca.pem", "other-ca.pem"):
        os.chmod(base / name, 0o644)
    return {"ca": base / "ca.pem", "other_ca": base / "other-ca.pem", "cert": base / "server.pem",
            "key": base / "server.key"}


def start_postgres(stack: list):
    """A real Postgres with the component's postgresql.conf (dev sizing) and TLS on, set up
    like RDS: the database owned by a CREATEROLE/CREATEDB administrator, then the roles
    Job's script run as that administrator over ``sslmode=verify-full``."""
    if PG_BIN is None:
        missing("Debian postgresql", "apt-get install -y postgresql")
    from components import postgres as pg

    # Not under pytest's basetemp: that is private to root, and initdb runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="newapi-pg-"))
    os.chmod(base, 0o777)
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    os.chmod(sock, 0o777)
    tls = _tls_files(base)
    conf = base / "postgresql.conf"
    conf.write_text(pg.postgresql_conf("512Mi", 100))
    os.chmod(conf, 0o644)
    subprocess.run(_as_postgres([f"{PG_BIN}/initdb", "-D", str(data), "-U", "postgres", "--auth-local=trust",
                                 "--auth-host=scram-sha-256", *pg.INITDB_ARGS.split()]),
                   check=True, capture_output=True, timeout=60)
    port = _free_port()
    # Started directly as postgres (no runuser in between), so terminate() reaches the postmaster.
    proc = subprocess.Popen([f"{PG_BIN}/postgres", "-D", str(data), "-c", f"config_file={conf}",
                             "-c", f"port={port}", "-c", "listen_addresses=127.0.0.1",
                             "-c", f"unix_socket_directories={sock}", "-c", "ssl=on",
                             "-c", f"ssl_cert_file={tls['cert']}", "-c", f"ssl_key_file={tls['key']}"],
                            user="postgres" if os.geteuid() == 0 else None,
                            stdout=subprocess.DEVNULL, stderr=open(base / "server.log", "w"))
    stack.append((proc, base))
    live = LivePostgres(base, port, sock)
    live.tls = tls
    deadline = time.time() + 30
    while subprocess.run([f"{PG_BIN}/pg_isready", "-h", "127.0.0.1", "-p", str(port)],
                         capture_output=True).returncode != 0:
        assert proc.poll() is None and time.time() < deadline, (base / "server.log").read_text()
        time.sleep(0.1)
    live.psql(f"CREATE ROLE {MASTER} LOGIN CREATEROLE CREATEDB PASSWORD '{MASTER_PASSWORD}'")
    live.psql(f"CREATE DATABASE newapi OWNER {MASTER}")
    out = live.run_roles_job()
    assert out.returncode == 0, out.stderr
    return live


def _stop(stack: list) -> None:
    for proc, base in stack:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def live_postgres():
    """One server for the session (the roles as the RDS Job leaves them)."""
    stack: list = []
    yield start_postgres(stack)
    _stop(stack)


@pytest.fixture
def fresh_postgres():
    """A server of its own, for tests that change role passwords."""
    stack: list = []
    yield start_postgres(stack)
    _stop(stack)


@pytest.fixture
def live_redis(tmp_path):
    """Start redis-server with the component's redis.conf; return (port, password, conf text)."""
    if REDIS_SERVER is None:
        missing("Debian redis-server", "apt-get install -y redis-server")
    from components import redis as rc

    def start(maxmemory_mb: int = 200, policy: str = "volatile-lru", password: str = "s3cretPassw0rd1234"):
        port = _free_port()
        (tmp_path / "auth").mkdir()
        (tmp_path / "auth" / "auth.conf").write_text(f"requirepass {password}\n")
        (tmp_path / "data").mkdir()
        text = rc.redis_conf(maxmemory_mb, policy, data_dir=str(tmp_path / "data"),
                             auth_dir=str(tmp_path / "auth"), port=port).replace("bind 0.0.0.0", "bind 127.0.0.1")
        conf = tmp_path / "redis.conf"
        conf.write_text(text)
        proc = subprocess.Popen([REDIS_SERVER, str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        procs.append(proc)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.time() < deadline, "redis-server did not start"
                time.sleep(0.05)
        return port, password

    procs: list = []
    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def redis_cli(port: int, *args: str, password: Optional[str] = None) -> str:
    env = {**os.environ}
    env.pop("REDISCLI_AUTH", None)
    if password:
        env["REDISCLI_AUTH"] = password
    out = subprocess.run(["redis-cli", "--no-auth-warning", "-h", "127.0.0.1", "-p", str(port), *args],
                         capture_output=True, text=True, env=env, timeout=10)
    return out.stdout.strip()
