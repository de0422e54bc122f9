"""Every long-running workload of the stack rolls without dropping capacity and drains
before it stops (K8S-023, K8S-024); the prod app outranks the platform pods (K8S-038)."""

import pytest

from support import pod_spec


def deployments(stack):
    return [d for d in stack.k8s_all("Deployment") if d["metadata"]["name"] != "new-api-master"]


def test_every_deployment_but_the_master_rolls_with_zero_unavailable(stack):
    names = []
    for dep in deployments(stack):
        strategy = dep["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate", dep["metadata"]["name"]
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0, dep["metadata"]["name"]
        names.append(dep["metadata"]["name"])
    assert {"new-api", "grafana", "kube-state-metrics", "logstash", "kibana"} <= set(names)


def test_the_master_recreate_is_a_declared_exception(stack):
    master = stack.k8s("Deployment", "new-api-master")
    assert master["spec"]["strategy"] == {"type": "Recreate"}
    assert "K8S-023" in master["metadata"]["annotations"]["policy.new-api.io/exempt-controls"]


def test_every_deployment_drains_before_sigterm(stack):
    assert stack.k8s_all("Deployment")
    for dep in stack.k8s_all("Deployment"):
        pod = pod_spec(dep)
        assert pod["terminationGracePeriodSeconds"] >= 30, dep["metadata"]["name"]
        for c in pod["containers"]:
            assert "preStop" in c.get("lifecycle", {}), (dep["metadata"]["name"], c["name"])


def test_platform_pods_drain_with_the_kubelet_sleep_action(stack):
    """No shell or sleep binary is needed in distroless images (kube-state-metrics)."""
    ksm = stack.k8s("Deployment", "kube-state-metrics")
    assert pod_spec(ksm)["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}


def test_prod_app_has_a_priority_above_the_platform(prod):
    pc = prod.k8s("PriorityClass", "new-api-critical")
    assert pc["value"] == 100000 and pc["globalDefault"] is False
    for name in ("new-api", "new-api-master"):
        assert pod_spec(prod.k8s("Deployment", name))["priorityClassName"] == "new-api-critical"
    others = [d for d in prod.k8s_all("Deployment") + prod.k8s_all("StatefulSet")
              if d["metadata"]["namespace"] in ("monitoring", "logging")]
    assert others and all("priorityClassName" not in pod_spec(d) for d in others)
    deps = set(prod.get("kubernetes:apps/v1:Deployment", "new-api").dependencies)
    assert prod.get("kubernetes:scheduling.k8s.io/v1:PriorityClass", "new-api-priority").urn in deps


@pytest.mark.parametrize("value,expected", [
    (0, "greater than or equal to 1"),
    (2_000_000_000, "less than or equal to 1000000000"),
])
def test_priority_value_is_bounded(value, expected):
    from support import override
    from tools import mockrt

    result = mockrt.run_stack("prod", override("prod", ("app.priorityClassValue", value)))
    assert "new-api:app.priorityClassValue" in str(result.error) and expected in str(result.error)
