"""Issue 13 item 7: egress no wider than a workload needs. The rendered NetworkPolicies of
the app (serving, master), the backup job and Elasticsearch are evaluated the way the
cluster's network plugin does (kubernetes.io/docs/concepts/services-networking/network-policies:
a pod selected by policies with Egress may open a connection when any rule of any of
them admits the destination and port; an ``ipBlock`` admits addresses in ``cidr`` and
not in ``except``), with Python's ``ipaddress`` for the address arithmetic."""

import ipaddress

import pytest

from support import Stack, override
from tools import mockrt

#: Must never be reachable on the upstream/S3 port: the API server and nodes (RFC 1918),
#: shared address space (100.64/10), the instance metadata service (link-local).
DENIED = ["10.0.0.1", "172.20.0.1", "192.168.1.10", "100.64.0.1", "169.254.169.254"]
ALLOWED = ["52.216.8.1", "104.18.6.192"]  # an S3 address, an LLM provider's


def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _pod_labels(stack, kind: str, name: str) -> tuple[str, dict]:
    obj = stack.k8s(kind, name)
    spec = obj["spec"]
    template = spec["jobTemplate"]["spec"]["template"] if kind == "CronJob" else spec["template"]
    return obj["metadata"]["namespace"], template["metadata"]["labels"]


def egress_allowed(stack, namespace: str, labels: dict, ip: str, port: int) -> bool:
    """Whether a pod (namespace, labels) may open ``ip:port`` over TCP (ipBlock peers only:
    pod and namespace selectors never match an address outside the cluster)."""
    addr = ipaddress.ip_address(ip)
    selecting = [p for p in stack.k8s_all("NetworkPolicy") if p["metadata"]["namespace"] == namespace
                 and _matches(p["spec"]["podSelector"], labels) and "Egress" in p["spec"].get("policyTypes", [])]
    assert selecting, "no egress policy selects the pod: default-deny would be missing"
    for policy in selecting:
        for rule in policy["spec"].get("egress", []):
            ports = [p["port"] for p in rule.get("ports", []) if p.get("protocol", "TCP") == "TCP"]
            if rule.get("ports") and port not in ports:
                continue
            peers = rule.get("to")
            if not peers:  # no `to`: every destination
                return True
            for peer in peers:
                block = peer.get("ipBlock")
                if block and addr in ipaddress.ip_network(block["cidr"]) and \
                        not any(addr in ipaddress.ip_network(e) for e in block.get("except", [])):
                    return True
    return False


WORKLOADS = [("Deployment", "new-api", 443), ("Deployment", "new-api-master", 443),
             ("CronJob", "new-api-db-backup", 443), ("StatefulSet", "elasticsearch", 443)]


@pytest.mark.parametrize("kind,name,port", WORKLOADS, ids=[w[1] for w in WORKLOADS])
@pytest.mark.parametrize("ip", DENIED)
def test_private_shared_and_link_local_addresses_are_denied(prod, kind, name, port, ip):
    """Old code: the app's 0.0.0.0/0:443 excluded only link-local, and so did the backup's
    and Elasticsearch's S3 rules: 10.0.0.1:443 (the API server's range) was open."""
    ns, labels = _pod_labels(prod, kind, name)
    assert not egress_allowed(prod, ns, labels, ip, port)


@pytest.mark.parametrize("kind,name,port", WORKLOADS, ids=[w[1] for w in WORKLOADS])
@pytest.mark.parametrize("ip", ALLOWED)
def test_public_addresses_stay_reachable(prod, kind, name, port, ip):
    ns, labels = _pod_labels(prod, kind, name)
    assert egress_allowed(prod, ns, labels, ip, port)


def test_s3_workloads_reach_nothing_but_https(prod):
    for kind, name in (("CronJob", "new-api-db-backup"), ("StatefulSet", "elasticsearch")):
        ns, labels = _pod_labels(prod, kind, name)
        assert not egress_allowed(prod, ns, labels, "52.216.8.1", 80)


@pytest.fixture(scope="module")
def self_hosted():
    """A self-hosted model server at 10.20.0.0/16:8000 listed explicitly."""
    return Stack(mockrt.run_stack("prod", overrides=override(
        "prod", ("network.upstreamCidrs", ["0.0.0.0/0", "10.20.0.0/16"]), ("network.upstreamPorts", [443, 8000]))))


def test_an_explicit_private_upstream_is_reachable_and_nothing_else_private(self_hosted):
    ns, labels = _pod_labels(self_hosted, "Deployment", "new-api")
    assert egress_allowed(self_hosted, ns, labels, "10.20.3.4", 8000)
    assert not egress_allowed(self_hosted, ns, labels, "10.21.0.1", 8000)
    assert not egress_allowed(self_hosted, ns, labels, "169.254.169.254", 8000)


@pytest.fixture(scope="module")
def s3_prefix_list():
    return Stack(mockrt.run_stack("prod", overrides=override(
        "prod", ("network.objectStorageCidrs", ["52.216.0.0/15", "3.5.0.0/19"]))))


def test_object_storage_can_be_narrowed_to_the_s3_prefix_list(s3_prefix_list):
    for kind, name in (("CronJob", "new-api-db-backup"), ("StatefulSet", "elasticsearch")):
        ns, labels = _pod_labels(s3_prefix_list, kind, name)
        assert egress_allowed(s3_prefix_list, ns, labels, "52.217.1.1", 443)
        assert not egress_allowed(s3_prefix_list, ns, labels, "104.18.6.192", 443)


@pytest.mark.parametrize("key,value", [("network.upstreamCidrs", ["169.254.169.254/32"]),
                                       ("network.objectStorageCidrs", ["169.254.0.0/17"])])
def test_link_local_destinations_are_refused_by_config(key, value):
    result = mockrt.run_stack("prod", overrides=override("prod", (key, value)))
    message = str(result.error)
    assert f"new-api:{key}[0]" in message and "link-local" in message, message
    assert result.registrations == []
