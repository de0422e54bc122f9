"""Issue 13 #8 (Alertmanager) and #12 (Grafana).

Alertmanager reads its config and credential files only at start (and on SIGHUP or
``/-/reload``, which nothing here sends), so its pods must roll when a receiver credential
is rotated; the trigger on the pod template is read by anyone who can read the
StatefulSet and is kept in Pulumi's state in clear, so it must not be a plain digest of a
secret (an unsalted SHA-256 of a low-entropy password is brute-forced offline).

A Kubernetes NetworkPolicy admits exactly the peers its ingress rules list (Kubernetes
docs, "Network Policies": traffic is allowed only if some rule allows it): Grafana is not
published by the stack, so the ingress controller must not be among them."""

import hashlib
import itertools

import pulumi
from conftest import k8s_object, k8s_objects, run_monitoring

from components import monitoring_config as mc
from components.secrets import ROTATION_ANNOTATION
from tools import mockrt

SMTP, SLACK, WEBHOOK = ("smtp-password-value", "https://hooks.slack.com/services/T000/B000/XXXX",
                        "https://oapi.dingtalk.com/robot/send?access_token=abc")


def am_annotations(result) -> dict:
    return k8s_object(result, "StatefulSet", "alertmanager")["spec"]["template"]["metadata"]["annotations"]


def am_annotation(result) -> str:
    return am_annotations(result)[ROTATION_ANNOTATION]


def plain_digests(*values: str) -> set[str]:
    """SHA-256 (full and as 16-character prefixes) of each value and of every '\\n'-joined
    ordered combination of them: what an unsalted checksum over them could look like."""
    out = set()
    for n in range(1, len(values) + 1):
        for combo in itertools.permutations(values, n):
            h = hashlib.sha256("\n".join(combo).encode()).hexdigest()
            out |= {h, h[:16]}
    return out


def strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value


def test_no_object_carries_a_plain_digest_of_alertmanagers_secrets(full_monitoring):
    config = k8s_object(full_monitoring, "Secret", "alertmanager-config", "monitoring")["stringData"]["alertmanager.yml"]
    forbidden = plain_digests(config, SMTP, SLACK, WEBHOOK)
    annotation = am_annotation(full_monitoring)
    assert annotation not in forbidden
    for reg in full_monitoring.registrations:
        leaked = forbidden & set(strings(mockrt._strip_secrets(reg.inputs)))
        assert not leaked, f"{reg.type} {reg.name} carries a plain digest of a secret"


def rotation_id(result):
    ids = [r for r in result.registrations
           if r.type == "random:index/randomId:RandomId" and r.name.endswith("alertmanager-rotation")]
    assert len(ids) == 1
    return ids[0]


def test_the_trigger_is_random_bytes_renewed_by_the_config_and_every_credential(full_monitoring):
    """pulumi-random: changing a ``keepers`` value replaces the RandomId ("Arbitrary map of
    values that, when changed, will trigger recreation of resource"), so its hex on the pod
    template changes and the pods roll; the mock runtime does not replace resources, so the
    test reads the keepers the real provider compares. The keepers are secret inputs."""
    reg = rotation_id(full_monitoring)
    keepers = reg.inputs["keepers"]
    assert mockrt.is_secret_envelope(keepers) or all(mockrt.is_secret_envelope(v) for v in keepers.values())
    keepers = mockrt._strip_secrets(keepers)
    config = k8s_object(full_monitoring, "Secret", "alertmanager-config", "monitoring")["stringData"]["alertmanager.yml"]
    assert keepers == {
        "alertmanager.yml": config, mc.SMTP_PASSWORD_KEY: SMTP, mc.SLACK_WEBHOOK_KEY: SLACK, mc.WEBHOOK_URL_KEY: WEBHOOK}
    annotation = am_annotation(full_monitoring)
    assert len(annotation) == 16 and annotation != "[secret]"
    assert "checksum/config" not in am_annotations(full_monitoring)


def test_rotating_a_receiver_credential_renews_the_trigger():
    def keepers(**creds):
        result = run_monitoring(**{k: pulumi.Output.secret(v) for k, v in creds.items()})
        assert result.error is None, result.error
        return mockrt._strip_secrets(rotation_id(result).inputs["keepers"])

    base = keepers(smtp_password=SMTP, slack_webhook_url=SLACK, webhook_url=WEBHOOK)
    assert keepers(smtp_password=SMTP, slack_webhook_url=SLACK, webhook_url=WEBHOOK) == base
    for changed in ({"smtp_password": "rotated"}, {"slack_webhook_url": SLACK + "Y"}, {"webhook_url": WEBHOOK + "d"}):
        assert keepers(**{"smtp_password": SMTP, "slack_webhook_url": SLACK, "webhook_url": WEBHOOK,
                          **changed}) != base, changed


def grafana_ingress_peers(result) -> list:
    policy = next(p for p in k8s_objects(result, "NetworkPolicy") if p["metadata"]["name"] == "grafana")
    return [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]


def namespaces_admitted(peers: list) -> set:
    return {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in peers
            if "namespaceSelector" in p}


def test_grafana_admits_only_prometheus_when_not_published(dev, prod):
    for stack in (dev, prod):
        peers = grafana_ingress_peers(stack.result)
        assert namespaces_admitted(peers) == set(), peers
        assert [p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in peers] == ["prometheus"]


def test_grafana_admits_the_ingress_controller_that_publishes_it():
    result = run_monitoring(grafana_ingress_namespace="ingress-nginx")
    assert result.error is None, result.error
    assert namespaces_admitted(grafana_ingress_peers(result)) == {"ingress-nginx"}
    assert mc.GRAFANA_PORT == 3000
