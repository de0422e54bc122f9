"""Every credential of the logging stack rotates end to end with one
``pulumi up --replace <its RandomPassword>`` (issue 13 item 8), and Kibana logs in as a
dedicated user behind a NetworkPolicy that admits only its clients (issue 13 item 12).

Rotation is modelled the way the engine sees it: the replaced ``RandomPassword`` gets a new
``result``; everything else keeps its value. Kubernetes rolls a workload (and a Job is
replaced, its template being immutable) only when its pod template changes, so each
consumer of a credential carries ``new-api.io/credentials-rotation``: the hex of a
``RandomId`` (``secrets.rotation_trigger``) whose ``keepers`` are exactly the credentials
it reads. The engine replaces a RandomId whose keepers changed (new random bytes, never a
digest of a secret); the keepers are secret in state.
"""

import json

import pytest

from support import Stack, container, env_map
from tools import mockrt
from tools.synth import manifest

ANNOTATION = "new-api.io/credentials-rotation"
ARGS = {"namespace": "logging", "agent_namespace": "node-agents", "app_namespace": "new-api",
        "elasticsearch_replicas": 1, "snapshot_volume_size": "1Gi", "allow_mmap": False}
#: consumer -> (kind, name) of the object whose pod template must change
CONSUMERS = {"elasticsearch": ("StatefulSet", "elasticsearch"), "setup": ("Job", "elasticsearch-setup"),
             "logstash": ("Deployment", "logstash"), "kibana": ("Deployment", "kibana"),
             "kibana-setup": ("Job", "kibana-setup")}
#: generated credential (its RandomPassword) -> the consumers that must roll or re-run.
#: The setup Job re-applies every Elasticsearch user with its current password.
ROTATES = {
    "logging-elastic-password": {"elasticsearch", "setup"},          # bootstrap password, setup's login
    "logging-writer-password": {"setup", "logstash"},
    "logging-reader-password": {"setup"},                            # Grafana's (Monitoring rolls it)
    "logging-monitor-password": {"setup", "elasticsearch"},          # the exporter sidecar
    "logging-kibana-password": {"setup", "kibana"},
    "logging-kibana-setup-password": {"setup", "kibana-setup"},
    "logging-viewer-password": {"setup"},                            # humans' login, nothing to roll
    "logging-kibana-security-key": {"kibana"},
    "logging-kibana-saved-objects-key": {"kibana"},
    "logging-kibana-reporting-key": {"kibana"},
}


def run(monkeypatch, replaced: dict[str, str]) -> mockrt.RunResult:
    from components import Logging

    real = mockrt._fake_secret
    monkeypatch.setattr(mockrt, "_fake_secret", lambda name, length=32: replaced.get(name) or real(name, length))
    result = mockrt.run(lambda: Logging("logging", dict(ARGS)))
    monkeypatch.setattr(mockrt, "_fake_secret", real)
    assert result.error is None, result.error
    return result


def obj(result, kind: str, name: str) -> dict:
    for reg in result.registrations:
        if reg.type.endswith(f":{kind}"):
            m = manifest(reg.inputs)
            if m.get("metadata", {}).get("name") == name:
                return m
    raise KeyError((kind, name))


def trigger(result, consumer: str):
    """The consumer's RandomId registration (``logging-<consumer>-rotation``)."""
    return result.get("random:index/randomId:RandomId", f"logging-{consumer}-rotation")


def keepers(result, consumer: str) -> dict:
    raw = trigger(result, consumer).inputs["keepers"]
    raw = raw["value"] if mockrt.is_secret_envelope(raw) else raw
    return {k: v["value"] if mockrt.is_secret_envelope(v) else v for k, v in raw.items()}


@pytest.fixture(scope="module")
def baseline():
    mp = pytest.MonkeyPatch()
    try:
        yield run(mp, {})
    finally:
        mp.undo()


def test_every_generated_credential_of_the_logging_stack_is_covered(baseline):
    names = {r.name for r in baseline.registrations if r.type == "random:index/randomPassword:RandomPassword"}
    assert names == set(ROTATES)


def test_each_consumer_carries_its_own_trigger(baseline):
    """The annotation is the hex of the consumer's RandomId (random bytes in the provider)."""
    for consumer, (kind, name) in CONSUMERS.items():
        annotation = obj(baseline, kind, name)["spec"]["template"]["metadata"]["annotations"][ANNOTATION]
        assert annotation == mockrt._fake_secret(f"logging-{consumer}-rotation-id", 16), consumer


@pytest.mark.parametrize("credential", sorted(ROTATES))
def test_replacing_a_credential_replaces_exactly_its_consumers_triggers(monkeypatch, baseline, credential):
    rotated = run(monkeypatch, {credential: "R0tated" + "x" * 41})
    changed = {c for c in CONSUMERS if keepers(baseline, c) != keepers(rotated, c)}
    assert changed == ROTATES[credential]


def test_the_keepers_are_secret_and_the_trigger_is_not(baseline):
    """Keepers hold the credentials: secret in state. The annotation is plain, so a pod
    template stays diffable in previews."""
    for consumer in CONSUMERS:
        raw = trigger(baseline, consumer).inputs["keepers"]
        assert mockrt.is_secret_envelope(raw) or all(mockrt.is_secret_envelope(v) for v in raw.values()), consumer
        assert keepers(baseline, consumer), consumer
    reg = next(r for r in baseline.registrations if r.type.endswith(":StatefulSet"))
    value = reg.inputs["spec"]["template"]["metadata"]["annotations"][ANNOTATION]
    assert isinstance(value, str) and not mockrt.is_secret_envelope(value)


def test_setup_applies_every_user_with_its_password_from_the_secret(baseline):
    """users.tsv (read by setup.sh) names each user, its roles and the variable the Job
    fills from the Secret; elastic is not set through the API (its bootstrap password)."""
    files = obj(baseline, "ConfigMap", "elasticsearch-setup")["data"]
    rows = [line.split("\t") for line in files["users.tsv"].splitlines()]
    env = env_map(container(obj(baseline, "Job", "elasticsearch-setup"), "setup"))
    secret_keys = set(json.loads(json.dumps(obj(baseline, "Secret", "elasticsearch-credentials")["stringData"])))
    for user, roles, variable in rows:
        ref = env[variable]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "elasticsearch-credentials" and ref["key"] in secret_keys, user
        assert json.loads(roles)
    assert "elastic" not in {r[0] for r in rows} and "/_password" not in files["setup.sh"]


# --------------------------------------------------------------------------- Kibana (issue 13 item 12)

def test_kibana_connects_as_a_dedicated_kibana_system_user_not_a_superuser(stack: Stack):
    kibana = env_map(container(stack.k8s("Deployment", "kibana"), "kibana"))
    user = kibana["ELASTICSEARCH_USERNAME"]["value"]
    assert user not in ("elastic", "kibana_system")
    rows = {r.split("\t")[0]: json.loads(r.split("\t")[1])
            for r in stack.k8s("ConfigMap", "elasticsearch-setup")["data"]["users.tsv"].splitlines()}
    assert rows[user] == ["kibana_system"]
    assert kibana["ELASTICSEARCH_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "kibana-password"


def test_humans_have_a_read_only_kibana_login(stack: Stack):
    data = stack.k8s("ConfigMap", "elasticsearch-setup")["data"]
    rows = {r.split("\t")[0]: json.loads(r.split("\t")[1]) for r in data["users.tsv"].splitlines()}
    viewer = rows["new_api_logs_viewer"]
    assert "superuser" not in viewer and "kibana_admin" not in viewer
    role = json.loads(data["role-new_api_logs_kibana_viewer.json"])
    privileges = role["applications"][0]["privileges"]
    assert privileges and all(p.endswith(".read") for p in privileges)
    reader = json.loads(data["role-new_api_logs_reader.json"])
    assert reader["indices"] == [{"names": ["new-api-logs-*"], "privileges": ["read", "view_index_metadata"]}]


def test_kibana_admits_only_its_clients(stack: Stack):
    """NetworkPolicy: the kibana-setup Job's pods, plus the ingress controller's namespace
    only when Kibana is published (logging.kibanaHost)."""
    policy = stack.k8s("NetworkPolicy", "kibana")["spec"]
    peers = [peer for rule in policy["ingress"] for peer in rule["from"]]
    setup = stack.k8s("Job", "kibana-setup")["spec"]["template"]["metadata"]["labels"]
    for peer in peers:
        if "namespaceSelector" in peer:
            assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress-nginx"}
            continue
        selected = peer["podSelector"].get("matchLabels") or {}
        assert selected and all(setup.get(k) == v for k, v in selected.items()), peer
    assert all(p["port"] == 5601 for rule in policy["ingress"] for p in rule["ports"])
