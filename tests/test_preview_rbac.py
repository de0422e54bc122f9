"""The pull-request preview's Kubernetes identity (docs/preview-rbac.yaml, issue 13.1): it can
read every object the stacks manage, and never a Secret. Checked the way the API server
authorizes a request (RBAC: a rule matches when its apiGroups, resources and verbs all
contain the request's, "*" matching any; https://kubernetes.io/docs/reference/access-authn-authz/rbac/)
against the kinds the real program registers under mocks, dev, prod and a canary stack."""
from pathlib import Path

import pytest
import yaml

from support import Stack, override
from tools import mockrt
from tools.synth import manifest, validate_manifest

REPO = Path(__file__).resolve().parent.parent
DOCS = list(yaml.safe_load_all((REPO / "docs" / "preview-rbac.yaml").read_text()))
ROLE = next(d for d in DOCS if d["kind"] == "ClusterRole")
READ = ("get", "list", "watch")


def plural(kind: str) -> str:
    k = kind.lower()
    if k == "endpoints":
        return k
    if k.endswith("y"):
        return k[:-1] + "ies"
    return k + "es" if k.endswith("s") else k + "s"


def allowed(group: str, resource: str, verb: str) -> bool:
    return any((group in r["apiGroups"] or "*" in r["apiGroups"])
               and (resource in r["resources"] or "*" in r["resources"])
               and (verb in r["verbs"] or "*" in r["verbs"]) for r in ROLE["rules"])


@pytest.fixture(scope="module")
def canary() -> Stack:
    return Stack(mockrt.run_stack("dev", override("dev", ("app.delivery.strategy", "canary"))))


def test_preview_role_and_binding_are_valid_objects():
    for doc in DOCS:
        assert validate_manifest(doc) is None, validate_manifest(doc)
    binding = next(d for d in DOCS if d["kind"] == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == ROLE["metadata"]["name"]
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "new-api-preview"}]


def test_preview_role_only_reads():
    for rule in ROLE["rules"]:
        assert set(rule["verbs"]) <= set(READ), rule


@pytest.mark.parametrize("verb", READ)
def test_preview_role_never_reads_secrets(verb):
    assert not allowed("", "secrets", verb)


def _kinds(stack: Stack):
    for reg in stack.registrations:
        if reg.type.startswith("kubernetes:") and not reg.type.startswith("kubernetes:pulumi"):
            obj = manifest(reg.inputs)
            if "kind" in obj:
                api = obj["apiVersion"]
                yield (api.split("/")[0] if "/" in api else ""), obj["kind"]


@pytest.mark.parametrize("which", ["dev", "prod", "canary"])
def test_preview_role_reads_every_kind_the_stack_manages_but_secrets(which, request):
    stack = request.getfixturevalue(which)
    kinds = set(_kinds(stack))
    assert ("", "Secret") in kinds
    missing = sorted(f"{g or 'core'}/{plural(k)}" for g, k in kinds
                     if k != "Secret" and not all(allowed(g, plural(k), v) for v in READ))
    assert not missing, f"the preview cannot read: {missing}"
