"""Issue 13 item 8, Postgres and Redis: ``pulumi up --replace`` of one generated credential
rotates it end to end. Per credential: the consumer that must re-apply or re-read it
carries a rotation trigger whose keepers hold that credential, so the real pulumi-random
provider replaces the RandomId (new random hex) when it changes ("keepers: arbitrary map
of values that, when changed, will trigger recreation of resource", pulumi-random docs),
and the pod template (or the Job's name) changes with it. The trigger is never a digest of
a secret. The re-application itself runs against a real PostgreSQL."""

import hashlib
import os
import signal
import subprocess
import time

import pytest

from components import postgres as pg
from components import postgres_roles as roles
from components.secrets import ROTATION_ANNOTATION
from tools import mockrt

from .conftest import LIVE_PASSWORDS, needs_postgres

RANDOM_ID = "random:index/randomId:RandomId"


def _trigger(stack, name: str):
    reg = stack.get(RANDOM_ID, name)
    keepers = reg.inputs["keepers"]
    # The engine receives the whole map as one secret (state keeps it encrypted).
    assert mockrt.is_secret_envelope(keepers), "keepers must be stored as secrets"
    return reg, keepers["value"]


def _template_annotation(stack, kind: str, name: str) -> str:
    obj = stack.k8s(kind, name)
    return obj["spec"]["template"]["metadata"]["annotations"][ROTATION_ANNOTATION]


def _no_digest(value: str, secrets: dict) -> None:
    for secret in secrets.values():
        digest = hashlib.sha256(secret.encode()).hexdigest()
        assert value not in digest and secret not in value


# (stack fixture, workload kind, workload name, trigger name, keeper holding the credential)
CASES = [
    ("dev", "StatefulSet", "new-api-postgres", "new-api-postgres-rotation", "app-password"),
    ("dev", "StatefulSet", "new-api-postgres", "new-api-postgres-rotation", "monitor-password"),
    ("dev", "StatefulSet", "new-api-postgres", "new-api-postgres-rotation", "backup-password"),
    ("dev", "StatefulSet", "new-api-postgres", "new-api-postgres-rotation", "superuser-password"),
    ("dev", "StatefulSet", "new-api-redis", "new-api-redis-rotation", "password"),
    ("dev", "Deployment", "new-api", "new-api-rotation", "SQL_DSN"),
    ("dev", "Deployment", "new-api-master", "new-api-rotation", "REDIS_CONN_STRING"),
    ("prod", "Deployment", "new-api-postgres-exporter", "new-api-postgres-exporter-rotation", "monitor-password"),
    ("prod", "Deployment", "new-api-redis-exporter", "new-api-redis-exporter-rotation", "password"),
    # Grafana reads both from its environment at start only (old code: neither rolled it).
    ("dev", "Deployment", "grafana", "monitoring-grafana-rotation", "admin-password"),
    ("prod", "Deployment", "grafana", "monitoring-grafana-rotation", "elasticsearch-password"),
]


@pytest.mark.parametrize("stack_name,kind,workload,trigger,keeper", CASES,
                         ids=[f"{c[2]}:{c[4]}" for c in CASES])
def test_a_changed_credential_rolls_its_consumer_without_a_digest(request, stack_name, kind, workload, trigger,
                                                                   keeper):
    """Old code: the in-cluster Postgres, Redis and the exporters had no trigger (the
    Postgres roles were set at initdb only); the app's was a SHA-256 of its secrets."""
    stack = request.getfixturevalue(stack_name)
    reg, keepers = _trigger(stack, trigger)
    assert keeper in keepers and keepers[keeper]
    annotation = _template_annotation(stack, kind, workload)
    assert annotation == reg.outputs.get("hex") or annotation == mockrt._fake_secret(trigger + "-id", 16)
    _no_digest(annotation, keepers)


def test_rds_roles_job_is_renamed_when_any_credential_changes(prod):
    reg, keepers = _trigger(prod, "new-api-postgres-roles-rotation")
    assert set(keepers) == {"app-password", "monitor-password", "backup-password", "master-password"}
    job = next(j for j in prod.k8s_all("Job") if j["metadata"]["name"].startswith("new-api-postgres-roles-"))
    assert job["metadata"]["name"].endswith(mockrt._fake_secret("new-api-postgres-roles-rotation-id", 16)[:8])


def test_keepers_follow_the_credential():
    """Two runs that differ only in the app password: the keepers differ (the real provider
    replaces the RandomId), the other triggers' keepers do not."""
    def run(password):
        result = mockrt.run(lambda: pg.Postgres("db", {"backend": "kubernetes", "namespace": "ns",
                                                       "password": password}))
        assert result.error is None, result.error
        reg = result.get(RANDOM_ID, "db-rotation")
        return reg.inputs["keepers"]["value"]
    one, two = run("first-password-0123"), run("second-password-456")
    assert one["app-password"] != two["app-password"]
    assert {k: v for k, v in one.items() if k != "app-password"} == \
        {k: v for k, v in two.items() if k != "app-password"}


# --------------------------------------------------------------------------- re-applied for real

ROLES = [("newapi", "APP_PASSWORD"), (pg.MONITOR_USER, "MONITOR_PASSWORD"), (pg.BACKUP_USER, "BACKUP_PASSWORD")]


@needs_postgres
@pytest.mark.parametrize("role,env", ROLES, ids=[r for r, _ in ROLES])
def test_roles_job_rotates_each_password_on_a_real_server(fresh_postgres, role, env):
    old = LIVE_PASSWORDS[env]
    new = f"rotated-{env.lower()}-9876"
    assert fresh_postgres.login(role, old, db="newapi" if role != pg.MONITOR_USER else "newapi").returncode == 0
    out = fresh_postgres.run_roles_job(**{env: roles.scram_sha_256(new, os.urandom(16))})
    assert out.returncode == 0, out.stderr
    assert fresh_postgres.login(role, new).returncode == 0
    refused = fresh_postgres.login(role, old)
    assert refused.returncode != 0 and "password authentication failed" in refused.stderr


@needs_postgres
def test_in_cluster_sidecar_reapplies_every_password_at_start_and_stops_on_sigterm(fresh_postgres):
    """The in-cluster pod's `roles` sidecar: as the superuser over the local socket (trusted,
    as the official image's pg_hba has it), waits for TCP, applies, reports, idles."""
    live = fresh_postgres
    marker = live.base / "roles-applied"
    env = live.env(PGUSER="postgres", PGSOCKET=str(live.socket_dir), ROLES_DIR=str(live.roles_dir()),
                   APPLIED_MARKER=str(marker),
                   SUPERUSER_PASSWORD=roles.scram_sha_256("new-superuser-pass-1", os.urandom(16)),
                   **live.role_env(APP_PASSWORD=roles.scram_sha_256("new-app-pass-1234", os.urandom(16))))
    proc = subprocess.Popen(["/bin/sh", str(live.roles_dir() / "sidecar.sh")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            user="postgres" if os.geteuid() == 0 else None)
    try:
        deadline = time.time() + 30
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() < deadline, "the sidecar did not apply the roles"
            time.sleep(0.2)
        assert live.login("newapi", "new-app-pass-1234").returncode == 0
        assert live.login("newapi", LIVE_PASSWORDS["APP_PASSWORD"]).returncode != 0
        assert live.login("postgres", "new-superuser-pass-1", db="postgres").returncode == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
