"""Helpers shared by the tests: a stack run under mocks, manifest lookups, config overrides.
(A module of its own, not conftest: several conftest.py files exist under tests/.)"""

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools import mockrt  # noqa: E402
from tools.synth import manifest  # noqa: E402


class Stack:
    """A stack run under mocks, with helpers to find what it declared."""

    def __init__(self, result: mockrt.RunResult):
        assert result.error is None, f"stack {result.stack} failed: {result.error}"
        self.result = result
        self.registrations = result.registrations

    def of_type(self, typ: str) -> list:
        return [r for r in self.registrations if r.type == typ]

    def get(self, typ: str, name: str) -> mockrt.Registration:
        return self.result.get(typ, name)

    def k8s(self, kind: str, name: str) -> dict:
        """The manifest of a Kubernetes object (by kind and metadata.name), as the synth writes it."""
        for reg in self.registrations:
            if reg.type.startswith("kubernetes:") and reg.type.endswith(f":{kind}"):
                obj = manifest(reg.inputs)
                if obj.get("metadata", {}).get("name") == name:
                    return obj
        raise KeyError(f"no {kind} named {name}")

    def k8s_all(self, kind: str) -> list:
        return [manifest(r.inputs) for r in self.registrations
                if r.type.startswith("kubernetes:") and r.type.endswith(f":{kind}")]





def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def container(obj: dict, name: str = "new-api") -> dict:
    return next(c for c in pod_spec(obj)["containers"] if c["name"] == name)


def env_map(c: dict) -> dict:
    return {e["name"]: e for e in c.get("env", [])}


DELETE = object()


def override(stack: str, *changes) -> dict:
    """Overrides for ``mockrt.run_stack``: each change is ("a.b.c", value) applied on top of
    the stack file's own value of the top-level key; ``DELETE`` removes the key."""
    import copy
    import json

    config, _ = mockrt.load_stack_config(stack)
    project = mockrt.project_name()
    out: dict = {}
    for dotted, value in changes:
        top, *rest = dotted.split(".")
        if top not in out:
            raw = config.get(f"{project}:{top}")
            try:
                out[top] = copy.deepcopy(json.loads(raw)) if raw is not None else {}
            except ValueError:
                out[top] = raw
        if not rest:
            out[top] = None if value is DELETE else value
            continue
        node = out[top]
        for part in rest[:-1]:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(rest[-1], None)
        else:
            node[rest[-1]] = value
    return out


def relabel(labels: dict, configs: list) -> dict | None:
    """Prometheus relabelling (``relabel_configs``/``metric_relabel_configs``, snake_case
    keys) of one label set: ``keep``/``drop``/``replace``, source labels joined by
    ``separator`` (default ``;``), the regex fully anchored, default action ``replace``
    with replacement ``$1`` (prometheus.io/docs/prometheus/latest/configuration/
    configuration/#relabel_config). None when the set is dropped."""
    labels = dict(labels)
    for rc in configs:
        action = rc.get("action", "replace")
        value = rc.get("separator", ";").join(labels.get(s, "") for s in rc.get("source_labels", []))
        regex = re.compile(f"^(?:{rc.get('regex', '(.*)')})$")
        m = regex.match(value)
        if action == "keep" and not m:
            return None
        if action == "drop" and m:
            return None
        if action == "replace" and m:
            labels[rc["target_label"]] = m.expand(rc.get("replacement", "$1").replace("$", "\\"))
    return labels
