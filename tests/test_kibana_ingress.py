"""Kibana optionally behind the TLS entry (issue: observability, "Kibana optionally behind
the TLS ingress"): its own host and certificate, the prod issuer, Kibana's login in front."""

import sys

import pytest

from support import Stack, container, override
from tools import mockrt, synth

HOST = "kibana.example.net"


@pytest.fixture(scope="module")
def exposed() -> Stack:
    return Stack(mockrt.run_stack("prod", override("prod", ("logging.kibanaHost", HOST))))


@pytest.fixture(scope="module")
def exposed_nginx() -> Stack:
    return Stack(mockrt.run_stack("prod", override("prod", ("logging.kibanaHost", HOST),
                                                   ("entry.kind", "ingress-nginx"))))


def test_kibana_gets_its_own_tls_listener_and_route(exposed):
    """Gateway API: its own HTTPS listener (own certificate from the Gateway's issuer
    annotation) that only routes from the logging namespace may attach to."""
    listener = next(ln for ln in exposed.k8s("Gateway", "new-api")["spec"]["listeners"] if ln.get("hostname") == HOST)
    assert listener["tls"]["certificateRefs"] == [{"group": "", "kind": "Secret", "name": "kibana-tls"}]
    assert listener["allowedRoutes"]["namespaces"]["selector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "logging"}
    route = exposed.k8s("HTTPRoute", "kibana")
    assert route["metadata"]["namespace"] == "logging" and route["spec"]["hostnames"] == [HOST]
    assert route["spec"]["parentRefs"][0]["sectionName"] == listener["name"]
    assert [(b["name"], b["port"]) for r in route["spec"]["rules"] for b in r["backendRefs"]] == [("kibana", 5601)]
    assert len(exposed.k8s_all("ClusterIssuer")) == 1


def test_kibana_gets_its_own_tls_ingress(exposed_nginx):
    exposed = exposed_nginx
    ing = exposed.k8s("Ingress", "kibana")
    assert ing["metadata"]["namespace"] == "logging"
    assert ing["spec"]["tls"] == [{"hosts": [HOST], "secretName": "kibana-tls"}]
    backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "kibana", "port": {"number": 5601}}
    assert ing["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "new-api-letsencrypt-prod"
    assert len(exposed.k8s_all("ClusterIssuer")) == 1  # reuses the app's issuer


@pytest.mark.parametrize("kind,entry_ns", [("gateway", "envoy-gateway-system"), ("ingress-nginx", "ingress-nginx")])
def test_kibana_knows_its_public_url_and_admits_the_entry(exposed, exposed_nginx, prod, kind, entry_ns):
    stack = exposed if kind == "gateway" else exposed_nginx
    env = {e["name"]: e for e in container(stack.k8s("Deployment", "kibana"), "kibana")["env"]}
    assert env["SERVER_PUBLICBASEURL"]["value"] == f"https://{HOST}"
    sources = [p for r in stack.k8s("NetworkPolicy", "kibana")["spec"]["ingress"] for p in r["from"]]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": entry_ns}}} in sources
    assert [r["metadata"]["name"] for r in prod.k8s_all("HTTPRoute")] == ["new-api", "new-api-https-redirect"]
    assert stack.result.stack_outputs["kibanaPublicUrl"][0] == f"https://{HOST}"


def test_exposed_kibana_passes_the_policy_pack(exposed, exposed_nginx):
    sys.path.insert(0, str(mockrt.REPO / "policy"))
    import newapi_policy

    for stack in (exposed, exposed_nginx):
        report = newapi_policy.evaluate_stack(synth.inventory(stack.result), environment="prod",
                                              config=synth.pack_config("prod"))
        assert [v["message"] for v in report["violations"] if v["level"] == "mandatory"] == []


@pytest.mark.parametrize("changes,expected", [
    ([("logging.kibanaHost", HOST), ("logging.kibana", False)], "needs logging.enabled and logging.kibana true"),
    ([("logging.kibanaHost", "*.example.net")], "new-api:logging.kibanaHost"),
])
def test_bad_kibana_exposure_is_refused(changes, expected):
    result = mockrt.run_stack("prod", override("prod", *changes))
    assert expected in str(result.error) and result.registrations == []


def test_public_kibana_in_prod_runs_two_instances_behind_a_pdb(exposed, prod):
    assert exposed.k8s("Deployment", "kibana")["spec"]["replicas"] == 2
    assert exposed.k8s("PodDisruptionBudget", "kibana")["spec"]["maxUnavailable"] == 1
    assert prod.k8s("Deployment", "kibana")["spec"]["replicas"] == 1
