"""Credentials are generated, secret end to end, never plaintext; every host has TLS."""

import json

import pytest

from tools import mockrt, synth

RANDOM = "random:index/randomPassword:RandomPassword"


def generated_values(stack) -> list:
    return [mockrt._fake_secret(r.name, int(r.inputs["length"])) for r in stack.of_type(RANDOM)]


def test_every_credential_is_a_random_password(stack):
    names = {r.name.rsplit("-", 2)[-2] + "-" + r.name.rsplit("-", 2)[-1] for r in stack.of_type(RANDOM)}
    assert {"session-secret", "crypto-secret", "admin-password", "database-password", "redis-password"} <= names
    for reg in stack.of_type(RANDOM):
        assert reg.inputs["length"] >= 20 and reg.inputs["special"] is False


def test_random_results_are_secret_outputs_like_the_engine_returns_them():
    """The harness honours additionalSecretOutputs as the engine does; otherwise every
    secrecy test here would prove nothing (VERIFIED.md)."""
    import pulumi
    import pulumi_random

    def program():
        pulumi.export("raw", pulumi_random.RandomPassword("p", length=24, special=False).result)

    result = mockrt.run(program)
    value, secret = result.stack_outputs["raw"]
    assert secret is True and value == mockrt._fake_secret("p", 24)
    assert "result" in result.get(RANDOM, "p").additional_secret_outputs


def test_exported_admin_password_is_secret(stack):
    value, secret = stack.result.stack_outputs["adminPassword"]
    assert secret and value == mockrt._fake_secret("new-api-secrets-admin-password", 20)


def test_kubernetes_secrets_receive_credentials_as_secrets(stack):
    assert stack.of_type("kubernetes:core/v1:Secret")
    for reg in stack.of_type("kubernetes:core/v1:Secret"):
        assert mockrt.is_secret_envelope(reg.inputs["stringData"]), reg.name


def test_no_generated_value_appears_in_plaintext_anywhere(stack):
    inventory = json.dumps(synth.inventory(stack.result))
    manifests = json.dumps([synth.manifest(r.inputs) for r in stack.registrations if synth.is_kubernetes_object(r)])
    outputs = json.dumps({k: (mockrt.REDACTED if s else v) for k, (v, s) in stack.result.stack_outputs.items()})
    assert generated_values(stack)
    for value in generated_values(stack):
        for text in (inventory, manifests, outputs):
            assert value not in text


def test_no_configmap_carries_a_credential(stack):
    assert stack.k8s_all("ConfigMap")
    for cm in stack.k8s_all("ConfigMap"):
        for key, value in (cm.get("data") or {}).items():
            assert not any(s in key.upper() for s in ("PASSWORD", "SECRET", "TOKEN", "DSN", "CONN_STRING")), key
            assert "://" not in value or "@" not in value, f"{key} looks like a URL with credentials"


def test_every_ingress_host_is_covered_by_tls_with_a_redirect(nginx_stack):
    """The legacy entry; the Gateway API entry's HTTPS listeners and redirect route:
    test_gateway_entry.py."""
    stack = nginx_stack
    assert stack.k8s_all("Ingress")
    for ing in stack.k8s_all("Ingress"):
        hosts = {r["host"] for r in ing["spec"]["rules"]}
        tls_hosts = {h for t in ing["spec"]["tls"] for h in t["hosts"]}
        assert hosts and hosts <= tls_hosts
        assert ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
        assert "*" not in "".join(hosts)


def test_dev_certificates_are_self_signed(dev, nginx_dev):
    """cert-manager issues the Ingress's certificate (ingress-shim) or each HTTPS listener's
    (gateway-shim) from the object's cluster-issuer annotation."""
    issuer = dev.k8s("ClusterIssuer", "new-api-self-signed")
    assert issuer["spec"] == {"selfSigned": {}}
    assert dev.k8s("Gateway", "new-api")["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == \
        "new-api-self-signed"
    ann = nginx_dev.k8s("Ingress", "new-api")["metadata"]["annotations"]
    assert ann["cert-manager.io/cluster-issuer"] == "new-api-self-signed"


def test_prod_certificates_come_from_lets_encrypt_over_http01(prod, nginx_prod):
    """Gateway API: cert-manager's gatewayHTTPRoute solver attaches the challenge route to
    the Gateway's HTTP listener (cert-manager docs, "ACME HTTP-01 with Gateway API")."""
    for stack, solver in ((prod, {"gatewayHTTPRoute": {"parentRefs": [{
            "group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "new-api", "namespace": "new-api",
            "sectionName": "http"}]}}),
                          (nginx_prod, {"ingress": {"ingressClassName": "nginx"}})):
        acme = stack.k8s("ClusterIssuer", "new-api-letsencrypt-prod")["spec"]["acme"]
        assert acme["server"] == "https://acme-v02.api.letsencrypt.org/directory"
        assert acme["email"] == "platform-oncall@new-api.net"
        assert acme["solvers"] == [{"http01": solver}]
    assert {ln["name"] for ln in prod.k8s("Gateway", "new-api")["spec"]["listeners"]} == {"http", "https"}
    ann = nginx_prod.k8s("Ingress", "new-api")["metadata"]["annotations"]
    assert ann["cert-manager.io/cluster-issuer"] == "new-api-letsencrypt-prod"


def test_prod_namespace_is_protected_from_deletion(prod, dev):
    assert prod.get("kubernetes:core/v1:Namespace", "new-api-ns").protect is True
    assert prod.get("kubernetes:core/v1:Namespace", "new-api-ns").retain_on_delete is True
    assert dev.get("kubernetes:core/v1:Namespace", "new-api-ns").protect is False


@pytest.mark.parametrize("key", ["database_password", "redis_password", "session_secret"])
def test_stack_secrets_outputs_are_secret(key):
    import pulumi

    from components import StackSecrets

    result = mockrt.run(lambda: pulumi.export(key, getattr(StackSecrets("s", {}), key)))
    value, secret = result.stack_outputs[key]
    assert result.error is None and secret is True and len(value) >= 32


@pytest.mark.parametrize("kind,peer", [
    ("gateway", {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}},
                 "podSelector": {"matchLabels": {"app.kubernetes.io/name": "envoy", "app.kubernetes.io/component": "proxy",
                                                 "app.kubernetes.io/managed-by": "envoy-gateway"}}}),
    ("ingress-nginx", {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}),
])
def test_lets_encrypt_solver_pods_are_reachable_from_the_entry(prod, dev, nginx_prod, kind, peer):
    """The namespace denies ingress by default; HTTP-01 challenges must still get through."""
    stack = prod if kind == "gateway" else nginx_prod
    policy = stack.k8s("NetworkPolicy", "new-api-acme-solver")
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {"acme.cert-manager.io/http01-solver": "true"}}
    assert spec["ingress"] == [{"from": [peer], "ports": [{"protocol": "TCP", "port": 8089}]}]
    assert policy["metadata"]["annotations"]["policy.new-api.io/exempt-controls"] == "K8S-040"
    assert not [p for p in dev.k8s_all("NetworkPolicy") if p["metadata"]["name"].endswith("acme-solver")]


def test_relay_and_playground_are_their_own_ingress_paths(nginx_stack):
    paths = nginx_stack.k8s("Ingress", "new-api")["spec"]["rules"][0]["http"]["paths"]
    assert [p["path"] for p in paths] == ["/v1", "/pg", "/"]
    assert len({(p["backend"]["service"]["name"], p["backend"]["service"]["port"]["number"]) for p in paths}) == 1
