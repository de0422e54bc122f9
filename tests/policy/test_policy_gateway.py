"""Gateway API controls beyond the one-mutation bad cases (policy_cases.py): a reference
across namespaces is fine with a ReferenceGrant in the target namespace (Gateway API spec,
ReferenceGrant: ``from`` group/kind/namespace, ``to`` group/kind and optional name), and
the grant itself (v1beta1, the version of the Gateway API's standard channel) is not a
deprecated API."""
import copy

import policy_fixtures as fx
from policy_helpers import messages, run_isolated


def _cross_namespace_stack(grant: bool) -> list:
    stack = fx.compliant_stack()
    route = next(r for r in stack if r["type"].endswith(":HTTPRoute") and r["inputs"]["metadata"]["name"] == "new-api")
    route["inputs"]["spec"]["rules"][0]["backendRefs"][0]["namespace"] = "shared"
    svc = copy.deepcopy(next(r for r in stack if r["type"].endswith(":Service")
                             and r["inputs"]["metadata"]["name"] == "new-api"))
    svc["inputs"]["metadata"]["namespace"] = "shared"
    svc["urn"] = svc["urn"].replace("::new-api", "::shared-new-api")
    stack.append(svc)
    if grant:
        stack.append(fx.k8s("ReferenceGrant", "allow-new-api-routes", {"spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": fx.NS}],
            "to": [{"group": "", "kind": "Service", "name": "new-api"}]}}, component="route"))
        stack[-1]["inputs"]["metadata"]["namespace"] = "shared"
    return stack


def test_cross_namespace_backend_needs_a_reference_grant():
    without = run_isolated("k8s-040-gateway-references", _cross_namespace_stack(False))
    assert any("without a ReferenceGrant there" in m for m in messages(without)), messages(without)
    granted = run_isolated("k8s-040-gateway-references", _cross_namespace_stack(True))
    assert not [m for m in messages(granted) if "ReferenceGrant" in m], messages(granted)


def test_a_reference_grant_is_not_a_deprecated_api():
    report = run_isolated("k8s-041-no-deprecated-api", _cross_namespace_stack(True))
    assert not [m for m in messages(report) if "ReferenceGrant" in m], messages(report)
