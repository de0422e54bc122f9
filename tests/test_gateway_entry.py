"""The Gateway API entry (issue 15): what the stack renders for ``entry.kind: gateway``
(the default of both stacks), read the way its consumers read it:

- Gateway API v1 (gateway-api.sigs.k8s.io/reference/spec): listeners, ``allowedRoutes``,
  ``parentRefs.sectionName``, ``HTTPRouteRule.timeouts.request`` (Extended), backendRef
  ``filters`` (Extended), ``RequestRedirect``;
- Envoy Gateway (gateway.envoyproxy.io/docs/api/extension_types): ClientTrafficPolicy
  ``timeout.http.streamIdleTimeout`` (Envoy's HCM stream idle timeout, 5 min by default,
  exactly New API's STREAMING_TIMEOUT) and ``clientIPDetection.xForwardedFor.numTrustedHops``,
  BackendTrafficPolicy ``timeout.http.streamIdleTimeout``, EnvoyProxy ``shutdown.drainTimeout``
  (envoyproxy/gateway ``resource_provider.go``: pods get drainTimeout + 300 s of grace);
- cert-manager's gateway-shim: a Certificate per HTTPS listener from the Gateway's
  ``cert-manager.io/cluster-issuer`` annotation (cert-manager.io/docs/usage/gateway).
Every object validates against the vendored CRD schemas (tests/schemas/crds/).
"""

import sys

import pytest

from support import Stack, override
from tools import mockrt, synth

GATEWAY_KINDS = ("Gateway", "HTTPRoute", "ClientTrafficPolicy", "BackendTrafficPolicy", "EnvoyProxy")


def _seconds(value: str) -> int:
    assert value.endswith("s"), value
    return int(value[:-1])


def settings(stack: Stack) -> dict:
    return stack.k8s("ConfigMap", "new-api-config")["data"]


def test_both_stacks_default_to_the_gateway_api(stack):
    kinds = {r.type.rsplit(":", 1)[-1] for r in stack.registrations}
    assert {"Gateway", "HTTPRoute"} <= kinds and "Ingress" not in kinds


def test_every_gateway_object_is_schema_valid(stack):
    for kind in GATEWAY_KINDS:
        objs = stack.k8s_all(kind)
        assert objs, kind
        for obj in objs:
            assert synth.validate_manifest(obj) is None, (kind, obj["metadata"]["name"], synth.validate_manifest(obj))


def test_gateway_has_https_per_host_and_http_for_redirects_and_acme(prod):
    gw = prod.k8s("Gateway", "new-api")
    assert gw["spec"]["gatewayClassName"] == "eg"
    assert gw["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "new-api-letsencrypt-prod"
    listeners = {ln["name"]: ln for ln in gw["spec"]["listeners"]}
    assert listeners["http"]["port"] == 80 and listeners["http"]["protocol"] == "HTTP"
    https = listeners["https"]
    assert (https["port"], https["protocol"], https["hostname"]) == (443, "HTTPS", "api.example.net")
    assert https["tls"] == {"mode": "Terminate", "certificateRefs": [
        {"group": "", "kind": "Secret", "name": "new-api-tls"}]}
    assert gw["spec"]["infrastructure"]["parametersRef"] == {"group": "gateway.envoyproxy.io", "kind": "EnvoyProxy",
                                                             "name": "new-api"}


def test_http_redirects_to_https(stack):
    redirect = stack.k8s("HTTPRoute", "new-api-https-redirect")["spec"]
    assert redirect["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "new-api",
                                       "sectionName": "http"}]
    assert redirect["rules"] == [{"filters": [{"type": "RequestRedirect",
                                               "requestRedirect": {"scheme": "https", "statusCode": 301}}]}]
    route = stack.k8s("HTTPRoute", "new-api")["spec"]
    assert route["parentRefs"][0]["sectionName"] == "https"  # the app only on the TLS listener
    assert redirect["hostnames"] == route["hostnames"]


def test_route_splits_relay_playground_and_rest_to_the_serving_service(stack):
    route = stack.k8s("HTTPRoute", "new-api")
    service = stack.k8s("Service", "new-api")
    assert [r["matches"] for r in route["spec"]["rules"]] == [
        [{"path": {"type": "PathPrefix", "value": p}}] for p in ("/v1", "/pg", "/")]
    for rule in route["spec"]["rules"]:
        assert [(b["kind"], b["name"], b["port"]) for b in rule["backendRefs"]] == [
            ("Service", "new-api", service["spec"]["ports"][0]["port"])]
    reg = stack.get("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", "entry-new-api-route")
    assert stack.get("kubernetes:core/v1:Service", "new-api").urn in reg.dependencies


def test_streams_outlast_the_streaming_timeout(stack):
    streaming = int(settings(stack)["STREAMING_TIMEOUT"])
    for rule in stack.k8s("HTTPRoute", "new-api")["spec"]["rules"]:
        assert _seconds(rule["timeouts"]["request"]) > streaming
    ctp = stack.k8s("ClientTrafficPolicy", "new-api")["spec"]
    assert ctp["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "new-api"}]
    assert _seconds(ctp["timeout"]["http"]["streamIdleTimeout"]) > streaming
    btp = stack.k8s("BackendTrafficPolicy", "new-api")["spec"]
    assert btp["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "new-api"}]
    assert _seconds(btp["timeout"]["http"]["streamIdleTimeout"]) > streaming
    assert _seconds(stack.k8s("EnvoyProxy", "new-api")["spec"]["shutdown"]["drainTimeout"]) > streaming


def test_nothing_buffers_or_caps_request_bodies_below_128_mb(stack):
    """Envoy streams bodies unless a buffer filter is configured (BackendTrafficPolicy
    ``requestBuffer``); none is, so 128 MB uploads reach New API, whose own
    MAX_REQUEST_BODY_MB caps them."""
    for kind in ("ClientTrafficPolicy", "BackendTrafficPolicy"):
        for obj in stack.k8s_all(kind):
            assert "requestBuffer" not in obj["spec"] and "bufferLimit" not in str(obj["spec"])


def test_client_ip_comes_from_x_forwarded_for_with_the_configured_hops():
    for hops in (0, 2):
        stack = Stack(mockrt.run_stack("dev", override("dev", ("entry.gateway.trustedHops", hops))))
        xff = stack.k8s("ClientTrafficPolicy", "new-api")["spec"]["clientIPDetection"]["xForwardedFor"]
        assert xff == {"numTrustedHops": hops}


def test_an_existing_shared_gateway_is_attached_to_not_created():
    stack = Stack(mockrt.run_stack("prod", override(
        "prod", ("entry.gateway.gateway", {"create": False, "name": "shared", "namespace": "gateway-system",
                                           "httpsSection": "https-api"}))))
    kinds = {r.type.rsplit(":", 1)[-1] for r in stack.registrations}
    assert not {"Gateway", "ClientTrafficPolicy", "EnvoyProxy"} & kinds
    route = stack.k8s("HTTPRoute", "new-api")["spec"]
    assert route["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "shared",
                                    "namespace": "gateway-system", "sectionName": "https-api"}]
    assert stack.k8s_all("BackendTrafficPolicy")  # the route's own policy stays the stack's


def test_other_implementations_get_only_standard_objects():
    stack = Stack(mockrt.run_stack("dev", override("dev", ("entry.gateway.envoyGateway", False),
                                                   ("entry.gateway.gateway.className", "istio"))))
    kinds = {r.type.rsplit(":", 1)[-1] for r in stack.registrations}
    assert not {"ClientTrafficPolicy", "BackendTrafficPolicy", "EnvoyProxy"} & kinds
    assert "infrastructure" not in stack.k8s("Gateway", "new-api")["spec"]
    assert stack.k8s("Gateway", "new-api")["spec"]["gatewayClassName"] == "istio"


def test_ingress_nginx_stays_available_as_the_legacy_entry(nginx_stack):
    kinds = {r.type.rsplit(":", 1)[-1] for r in nginx_stack.registrations}
    assert "Ingress" in kinds and not {"Gateway", "HTTPRoute"} & kinds
    ingress = nginx_stack.get("kubernetes:networking.k8s.io/v1:Ingress", "new-api")
    assert ingress.aliases, "the Ingress keeps its URN from before the entry component"


@pytest.mark.parametrize("kind", ["gateway", "ingress-nginx"])
def test_each_entry_passes_the_policy_pack(kind):
    sys.path.insert(0, str(mockrt.REPO / "policy"))
    import newapi_policy

    for name in ("dev", "prod"):
        stack = Stack(mockrt.run_stack(name, override(name, ("entry.kind", kind))))
        report = newapi_policy.evaluate_stack(synth.inventory(stack.result), environment=name,
                                              config=synth.pack_config(name))
        assert [v["message"] for v in report["violations"] if v["level"] == "mandatory"] == []


@pytest.mark.parametrize("changes,expected", [
    ([("entry.gateway.requestTimeoutSeconds", 120)],
     "new-api:entry.gateway.requestTimeoutSeconds = 120: must be at least ingress.proxyTimeoutSeconds (360)"),
    ([("entry.gateway.trustedHops", 9)], "new-api:entry.gateway.trustedHops = 9"),
    ([("entry.gateway.dataPlaneNamespace", "Envoy")], "new-api:entry.gateway.dataPlaneNamespace = \"Envoy\""),
])
def test_bad_entry_config_is_refused(changes, expected):
    result = mockrt.run_stack("dev", override("dev", *changes))
    assert expected in str(result.error), result.error
    assert result.registrations == []


# ----------------------------------------------------------------------------- migration (docs/gateway-migration.md)

@pytest.fixture(scope="module")
def side_by_side() -> Stack:
    return Stack(mockrt.run_stack("prod", override("prod", ("entry.keepIngressNginx", True))))


def test_migration_keeps_the_ingress_next_to_the_gateway(side_by_side, nginx_prod):
    """Phase 1: the app's Ingress, its issuer and solver policy exactly as the legacy entry
    renders them (same URNs), plus the Gateway serving the Ingress's certificate."""
    legacy = {r.urn for r in nginx_prod.registrations if "TlsIngress" in r.urn and "kibana" not in r.urn}
    now = {r.urn for r in side_by_side.registrations}
    assert legacy and legacy <= now
    assert side_by_side.k8s("Ingress", "new-api") == nginx_prod.k8s("Ingress", "new-api")
    gw = side_by_side.k8s("Gateway", "new-api")
    assert "cert-manager.io/cluster-issuer" not in gw["metadata"].get("annotations", {})  # no competing Certificate
    https = next(ln for ln in gw["spec"]["listeners"] if ln["name"] == "https")
    assert https["tls"]["certificateRefs"][0]["name"] == nginx_prod.k8s("Ingress", "new-api")["spec"]["tls"][0]["secretName"]
    assert [i["metadata"]["name"] for i in side_by_side.k8s_all("ClusterIssuer")] == ["new-api-letsencrypt-prod"]
    assert side_by_side.k8s("ClusterIssuer", "new-api-letsencrypt-prod") == \
        nginx_prod.k8s("ClusterIssuer", "new-api-letsencrypt-prod")


def test_migration_admits_both_data_planes_to_the_app(side_by_side):
    rules = side_by_side.k8s("NetworkPolicy", "new-api-serving")["spec"]["ingress"]
    sources = {r["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for r in rules}
    assert {"envoy-gateway-system", "ingress-nginx"} <= sources


def test_ending_the_migration_updates_the_issuer_and_solver_policy_in_place(prod, nginx_prod):
    """Phase 3: the Gateway entry's ClusterIssuer and solver NetworkPolicy (same Kubernetes
    names as the Ingress's) alias the legacy URNs, so the engine updates them instead of
    creating the new one and then deleting the old, which would delete the object."""
    for typ, legacy_name in (("kubernetes:cert-manager.io/v1:ClusterIssuer", "new-api-issuer"),
                             ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "new-api-acme-solver")):
        legacy_urn = nginx_prod.get(typ, legacy_name).urn
        reg = next(r for r in prod.registrations if r.type == typ and r.urn.endswith(
            "entry-issuer" if "Issuer" in typ else "entry-acme-solver"))
        assert any(legacy_name in str(a) and "TlsIngress" in str(a) for a in reg.aliases), reg.aliases
        assert legacy_urn.rsplit("::", 1)[-1] == legacy_name


def test_keep_ingress_nginx_only_while_migrating_to_the_gateway():
    result = mockrt.run_stack("dev", override("dev", ("entry.kind", "ingress-nginx"), ("entry.keepIngressNginx", True)))
    assert "new-api:entry.keepIngressNginx = true: only applies while migrating" in str(result.error)
    assert result.registrations == []
