"""Checks CrossGuard's Python SDK cannot decide, run on the synth's resources.json:

- STK-002: the SDK hands a policy the plain value of a secret, so whether a credential is
  still a Pulumi secret is only visible in resources.json (`secretPaths`, values masked as
  "[secret]", `additionalSecretOutputs`).
- STK-001, retain half: the SDK exposes `protect` but not `retainOnDelete`; evaluate_stack
  passes retainOnDelete to the STK-001 policy from resources.json, and
  `unprotected_stateful` states the same check directly over the JSON for the synth.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List

from .controls import BY_POLICY
from .settings import Settings

SECRET = "[secret]"
STK002 = BY_POLICY["stk-002-credentials-secret"]
SECRET_KEY = re.compile(r"(password|passwd|passphrase|secret|token|api_?key|auth_?key|private_?key|credential)", re.I)
# keys that name, size or point at a secret rather than hold one
NOT_A_VALUE = re.compile(r"(name|ref|arn|id|ids|version|length|ttl|type|enabled|strategy|file|path|mode|"
                         r"selector|keyref|policy|rotation\w*|manage\w*|kmskeyid)$", re.I)


def _v(r: Dict[str, Any], what: str, fix: str) -> Dict[str, Any]:
    return {"control": STK002.id, "policy": STK002.policy_name, "level": STK002.level, "urn": r["urn"],
            "resource": r.get("name", ""), "type": r.get("type", ""),
            "message": f"[{STK002.id}] {what}: {fix}"}


def _covered(path: str, secret_paths: List[str]) -> bool:
    return any(path == p or path.startswith(p + ".") or path.startswith(p + "[") for p in secret_paths)


def _plaintext_leaves(value: Any, path: str):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _plaintext_leaves(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _plaintext_leaves(v, f"{path}[{i}]")
    else:
        yield path, value


def credentials_not_secret(resources: List[Dict[str, Any]],
                           outputs: Dict[str, Any] | None = None) -> List[Dict[str, Any]]:
    """STK-002 over resources.json (and outputs.json: exports, secrets masked as "[secret]")."""
    out = []
    if outputs is not None:
        stack = next((r for r in resources if r.get("type") == "pulumi:pulumi:Stack"), None)
        resources = [*resources, {"urn": stack["urn"] if stack else "", "type": "pulumi:pulumi:Stack",
                                  "name": stack["name"] if stack else "stack", "outputs": outputs}]
    for r in resources:
        inputs = r.get("inputs") or {}
        spaths = list(r.get("secretPaths") or [])
        typ = r.get("type", "")
        if typ == "pulumi:pulumi:Stack":
            for k, v in sorted((r.get("outputs") or {}).items()):
                if SECRET_KEY.search(k) and not NOT_A_VALUE.search(k) and v not in (SECRET, None, ""):
                    out.append(_v(r, f'stack output "{k}" exports a credential in plaintext',
                                  "export it with pulumi.Output.secret(...) or drop the export"))
            continue
        if typ.startswith("random:") and typ.endswith(":RandomString") and \
                SECRET_KEY.search(r.get("name", "")) and "result" not in (r.get("additionalSecretOutputs") or []):
            out.append(_v(r, f'RandomString "{r.get("name")}" generates a credential whose result is plaintext',
                          "use random.RandomPassword (its result is a secret) or additional_secret_outputs=['result']"))
        if typ == "kubernetes:core/v1:Secret":
            for section in ("data", "stringData"):
                val = inputs.get(section)
                if not val or val == SECRET or _covered(section, spaths):
                    continue
                for path, leaf in _plaintext_leaves(val, section):
                    if leaf != SECRET and not _covered(path, spaths):
                        out.append(_v(r, f"Secret {r.get('name')} carries {path} as a plaintext value in the state",
                                      "build the Secret's data from Output.secret values (e.g. RandomPassword.result)"))
            continue
        for path, leaf in _plaintext_leaves(inputs, ""):
            key = re.split(r"[.\[]", path)[-1] if path else ""
            if isinstance(leaf, str) and leaf and leaf != SECRET and SECRET_KEY.search(key) and \
                    not NOT_A_VALUE.search(key) and not _covered(path, spaths) and \
                    not path.startswith(("metadata.", "spec.template.metadata.")):
                out.append(_v(r, f"{typ.split(':')[-1]} {r.get('name')} input {path} holds a credential in plaintext",
                              "pass a secret Output (pulumi.Output.secret / RandomPassword.result)"))
    return sorted(out, key=lambda v: (v["urn"], v["message"]))


def unprotected_stateful(resources: List[Dict[str, Any]], settings: Settings) -> List[str]:
    """STK-001 over resources.json (protect, retainOnDelete or native deletion protection): URNs failing it."""
    from .evaluate import to_res  # local: evaluate imports this module
    from .stack import protection, stateful
    if not settings.prod:
        return []
    views = [to_res(r) for r in resources]
    return sorted(v.urn for v in stateful(views) if protection(v) is None)


#: what ran where, for the report
WHERE = [
    {"control": "STK-002", "part": "credentials are still Pulumi secrets (secretPaths, masked values, outputs)",
     "where": "synth (resources.json)", "why": "CrossGuard receives plain secret values"},
    {"control": "STK-001", "part": "retainOnDelete counts as protection",
     "where": "synth (resources.json)", "why": "CrossGuard exposes protect but not retainOnDelete"},
    {"control": "STK-001", "part": "protect / deletionProtection / StatefulSet PVC retention",
     "where": "CrossGuard and synth", "why": ""},
]
