"""Offline synth: run the real program for a stack under Pulumi's mock runtime and write
what it declares to ``build/<stack>/``, with no cluster, no credentials and no network.

    python -m tools.synth dev                 # writes build/dev/
    python -m tools.synth prod --diff build-base/prod   # plus a PR-ready diff

Output (byte-identical across runs):
- ``manifests/<namespace>/<Kind>-<name>.yaml``: one file per Kubernetes object, exactly
  the inputs the program declares (integers as integers, secrets as ``[secret]``),
  validated against the official Kubernetes JSON schemas (strict) and, for custom
  resources, the vendored CRD schemas in ``tests/schemas/crds/``;
- ``resources.json``: every resource with type, name, parent, dependencies, protect,
  retainOnDelete, aliases and inputs (secrets redacted, their paths listed);
- ``outputs.json``: stack exports (secrets redacted);
- ``policy-report.json`` / ``policy-report.md``: every CrossGuard policy of ``policy/``
  run over every resource, plus the checks only the synth can make;
- ``summary.md``: counts per type, total CPU and memory requests.

Exit status: 0 ok; 1 a mandatory policy violation or an invalid manifest; 2 the stack
config or the program failed (nothing is written).
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import yaml

from tools import mockrt

REPO = mockrt.REPO
CRD_SCHEMAS = REPO / "tests" / "schemas" / "crds"
KUBERNETES_VERSION = "1.33"
_TOP_ORDER = ("apiVersion", "kind", "metadata")


# --------------------------------------------------------------------------- normalisation

def clean(value: Any, path: str = "", secret_paths: Optional[list] = None) -> Any:
    """Redact secrets (recording their paths), turn whole floats back into ints (the mock
    runtime's wire format has only doubles) and drop unknowns."""
    if mockrt.is_secret_envelope(value):
        if secret_paths is not None:
            secret_paths.append(path or ".")
        inner = value.get("value")
        # A secret map keeps its keys (names such as SQL_DSN are not secret), so the
        # manifest stays schema-valid and reviewable; every value is redacted.
        if isinstance(inner, dict):
            return {k: mockrt.REDACTED for k in inner}
        return mockrt.REDACTED
    if isinstance(value, dict):
        return {k: clean(v, f"{path}.{k}" if path else k, secret_paths) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v, f"{path}[{i}]", secret_paths) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def manifest(inputs: dict) -> dict:
    body = _sorted(clean(inputs))
    ordered = {k: body[k] for k in _TOP_ORDER if k in body}
    ordered.update({k: v for k, v in body.items() if k not in ordered})
    return ordered


def is_kubernetes_object(reg: mockrt.Registration) -> bool:
    return reg.custom and reg.type.startswith("kubernetes:") and not reg.type.startswith("pulumi:providers")


def inventory(result: mockrt.RunResult) -> list[dict]:
    out = []
    for reg in result.registrations:
        secret_paths: list = []
        inputs = _sorted(clean(reg.inputs, "", secret_paths))
        out.append({
            "urn": reg.urn,
            "type": reg.type,
            "name": reg.name,
            "custom": reg.custom,
            "parent": reg.parent,
            "dependencies": reg.dependencies,
            "protect": reg.protect,
            "retainOnDelete": reg.retain_on_delete,
            "deleteBeforeReplace": reg.delete_before_replace,
            "aliases": reg.aliases,
            "additionalSecretOutputs": reg.additional_secret_outputs,
            "ignoreChanges": reg.ignore_changes,
            "inputs": inputs,
            "secretPaths": sorted(secret_paths),
        })
    return out


# --------------------------------------------------------------------------- validation

@functools.lru_cache(maxsize=None)
def _crd_validator(group: str, kind: str, version: str):
    import jsonschema

    schema_path = CRD_SCHEMAS / group / f"{kind.lower()}_{version}.json"
    if not schema_path.exists():
        return None
    return jsonschema.Draft7Validator(json.loads(schema_path.read_text()))


@functools.lru_cache(maxsize=None)
def _k8s_validator(api_version: str, kind: str):
    """The strict schema of one kind from kubernetes-validate's bundled files, loaded once
    (its ``validate()`` re-reads the shared definitions on every call)."""
    import jsonschema
    import referencing
    from kubernetes_validate import utils

    version = [v for v in utils.all_versions()
               if utils.major_minor(v) <= utils.major_minor(KUBERNETES_VERSION)][-1]
    schema_dir = f"kubernetes-json-schema/v{version}-local-strict"
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(f"{schema_dir}/{kind.lower()}-{api}.json", KUBERNETES_VERSION)
    except FileNotFoundError:
        return None
    definitions = utils.schema_contents(f"{schema_dir}/_definitions.json", KUBERNETES_VERSION)
    registry = referencing.Resource.from_contents(schema) @ referencing.Registry()
    registry = referencing.Resource.from_contents(definitions) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _first_error(validator, obj: dict) -> Optional[str]:
    errors = sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.path])
    if not errors:
        return None
    err = errors[0]
    return f"{'.'.join(str(p) for p in err.path) or '(root)'}: {err.message}"


def validate_manifest(obj: dict) -> Optional[str]:
    """None when valid; otherwise the first schema error (official strict schema, or the
    vendored CRD schema for a custom resource)."""
    api, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    group = api.split("/")[0] if "/" in api else ""
    # A vendored CRD schema first: some CRD groups end in .k8s.io too (the Gateway API's
    # gateway.networking.k8s.io is a CRD, not part of Kubernetes' own schema).
    crd = _crd_validator(group, kind, api.split("/")[1]) if group and "." in group else None
    if crd is not None:
        validator = crd
    elif group and "." in group and not group.endswith(".k8s.io"):
        return f"no CRD schema for {api} {kind} under {CRD_SCHEMAS.relative_to(REPO)}"
    else:
        validator = _k8s_validator(api, kind)
        if validator is None:
            return f"no Kubernetes {KUBERNETES_VERSION} schema for {api} {kind}"
    return _first_error(validator, obj)


# --------------------------------------------------------------------------- summary

def _qty(value: Any) -> float:
    from components.common import parse_quantity

    return parse_quantity(str(value)) if value not in (None, "") else 0.0


def _pod_spec(obj: dict) -> Optional[dict]:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "CronJob":
        return (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")
    if kind == "Pod":
        return spec
    return (spec.get("template") or {}).get("spec")


def requests_total(objects: list[dict]) -> dict:
    """Total CPU/memory requests of the long-running workloads at their minimum scale
    (HPA min where an HPA owns the scale; one pod per DaemonSet, i.e. per node)."""
    hpa_min = {}
    for obj in objects:
        if obj.get("kind") == "HorizontalPodAutoscaler":
            ref = obj["spec"]["scaleTargetRef"]
            hpa_min[(obj["metadata"].get("namespace"), ref["kind"], ref["name"])] = obj["spec"].get("minReplicas", 1)
    cpu = mem = 0.0
    rows = []
    for obj in objects:
        kind = obj.get("kind")
        if kind not in ("Deployment", "StatefulSet", "DaemonSet", "Rollout"):
            continue
        md = obj["metadata"]
        key = (md.get("namespace"), kind, md.get("name"))
        replicas = hpa_min.get(key, (obj.get("spec") or {}).get("replicas", 1))
        if kind == "DaemonSet":
            replicas = 1
        pod = _pod_spec(obj) or {}
        pod_cpu = sum(_qty(((c.get("resources") or {}).get("requests") or {}).get("cpu")) for c in pod.get("containers", []))
        pod_mem = sum(_qty(((c.get("resources") or {}).get("requests") or {}).get("memory")) for c in pod.get("containers", []))
        cpu += replicas * pod_cpu
        mem += replicas * pod_mem
        rows.append((f"{kind}/{md.get('namespace')}/{md.get('name')}", replicas, pod_cpu, pod_mem))
    return {"cpu_cores": round(cpu, 3), "memory_bytes": int(mem), "rows": rows}


def summary_text(stack: str, inv: list[dict], objects: list[dict], invalid: dict, report: Optional[dict]) -> str:
    counts = Counter(r["type"] for r in inv)
    req = requests_total(objects)
    lines = [f"# Synth of stack `{stack}`", "",
             f"- resources: {len(inv)} ({sum(1 for r in inv if r['custom'])} custom, "
             f"{sum(1 for r in inv if not r['custom'])} components)",
             f"- Kubernetes objects: {len(objects)}; schema-invalid: {len(invalid)}",
             f"- requests at minimum scale: CPU {req['cpu_cores']} cores, "
             f"memory {req['memory_bytes'] / 2**30:.2f} GiB",
             f"- protected resources: {sum(1 for r in inv if r['protect'])}"]
    if report is not None:
        lines.append(f"- policy: {report.get('mandatory_violations', 0)} mandatory, "
                     f"{report.get('advisory_violations', 0)} advisory violations, "
                     f"{len(report.get('exemptions', []))} exemptions in use")
    lines += ["", "## Resources by type", "", "| type | count |", "|---|---|"]
    lines += [f"| `{t}` | {n} |" for t, n in sorted(counts.items())]
    lines += ["", "## Requests by workload (minimum scale)", "",
              "| workload | pods | CPU/pod | memory/pod |", "|---|---|---|---|"]
    lines += [f"| {w} | {n} | {c:g} | {m / 2**20:.0f}Mi |" for w, n, c, m in req["rows"]]
    if invalid:
        lines += ["", "## Schema errors", ""] + [f"- `{f}`: {e}" for f, e in sorted(invalid.items())]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- policy

def pack_config(stack: str) -> dict:
    """``policy/config/<stack>.json``: the pack config the workflows pass as
    ``--policy-pack-config`` (environment, allowed exemptions); {} for a stack without one."""
    path = REPO / "policy" / "config" / f"{stack}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def run_policies(inv: list[dict], environment: str, outputs: Optional[dict] = None,
                 config: Optional[dict] = None) -> Optional[dict]:
    """Run the CrossGuard pack of ``policy/`` over the inventory (None if the pack is absent)."""
    pack_dir = REPO / "policy"
    if not (pack_dir / "newapi_policy" / "__init__.py").exists():
        return None
    if str(pack_dir) not in sys.path:
        sys.path.insert(0, str(pack_dir))
    import newapi_policy

    return newapi_policy.evaluate_stack(inv, environment=environment, outputs=outputs, config=config)


def policy_markdown(report: dict) -> str:
    import newapi_policy.report as policy_report  # noqa: F401 (resolved via sys.path)

    return policy_report.render_markdown(report)


# --------------------------------------------------------------------------- diff

def _flatten(value: Any, prefix: str = "") -> dict:
    if isinstance(value, dict) and value:
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else k))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def diff(old: list[dict], new: list[dict]) -> str:
    """Markdown diff of two inventories: added, removed and changed resources with fields."""
    before = {r["urn"]: r for r in old}
    after = {r["urn"]: r for r in new}
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = []
    for urn in sorted(set(before) & set(after)):
        a = _flatten({k: v for k, v in before[urn].items() if k != "urn"})
        b = _flatten({k: v for k, v in after[urn].items() if k != "urn"})
        fields = [(k, a.get(k, "(unset)"), b.get(k, "(unset)")) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        if fields:
            changed.append((urn, fields))

    def short(urn: str) -> str:
        parts = urn.split("::")
        return f"{parts[2].split('$')[-1]} {parts[3]}"

    lines = [f"### Synth diff: {len(added)} to add, {len(changed)} to change, {len(removed)} to delete", ""]
    if not (added or removed or changed):
        return lines[0] + "\n\nNo changes.\n"
    for urn in added:
        lines.append(f"+ **{short(urn)}**")
    for urn in removed:
        extra = " (protected)" if before[urn].get("protect") else ""
        lines.append(f"- **{short(urn)}**{extra}")
    for urn, fields in changed:
        lines.append(f"~ **{short(urn)}**")
        for key, a, b in fields:
            lines.append(f"    ~ `{key}`: {json.dumps(a)} => {json.dumps(b)}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main

def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)


def stack_environment(stack: str) -> str:
    config, _ = mockrt.load_stack_config(stack)
    return config.get(f"{mockrt.project_name()}:environment", stack)


def synth(stack: str, out_root: Path, with_policy: bool = True) -> tuple[int, str]:
    """Synthesize ``stack`` into ``out_root/<stack>``. Returns (exit status, summary)."""
    result = mockrt.run_stack(stack)
    if result.error is not None:
        return 2, f"synth of {stack} failed:\n{result.error}"
    out = out_root / stack
    if out.exists():
        shutil.rmtree(out)
    inv = inventory(result)
    objects, invalid = [], {}
    for reg in result.registrations:
        if not is_kubernetes_object(reg):
            continue
        obj = manifest(reg.inputs)
        objects.append(obj)
        md = obj.get("metadata") or {}
        rel = f"manifests/{md.get('namespace') or '_cluster'}/{obj.get('kind')}-{md.get('name') or reg.name}.yaml"
        _write(out / rel, _dump_yaml(obj))
        error = validate_manifest(obj)
        if error:
            invalid[rel] = error
    _write(out / "resources.json", json.dumps(inv, indent=2, sort_keys=True) + "\n")
    outputs = {k: (mockrt.REDACTED if secret else clean(v)) for k, (v, secret) in sorted(result.stack_outputs.items())}
    _write(out / "outputs.json", json.dumps(outputs, indent=2, sort_keys=True) + "\n")
    report = run_policies(inv, stack_environment(stack), outputs, pack_config(stack)) if with_policy else None
    if report is not None:
        _write(out / "policy-report.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
        _write(out / "policy-report.md", policy_markdown(report))
    text = summary_text(stack, inv, objects, invalid, report)
    _write(out / "summary.md", text)
    failed = bool(invalid) or bool(report and report.get("mandatory_violations"))
    return (1 if failed else 0), text


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.synth", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--out", default=str(REPO / "build"), help="output root (default build/)")
    parser.add_argument("--diff", metavar="DIR", help="another synth directory of the same stack to diff against")
    parser.add_argument("--no-policy", action="store_true", help="skip the policy pack")
    args = parser.parse_args(argv)
    status, text = synth(args.stack, Path(args.out), with_policy=not args.no_policy)
    print(text, end="" if text.endswith("\n") else "\n")
    if status == 2:
        return status
    if args.diff:
        other = Path(args.diff) / "resources.json"
        if not other.exists():
            print(f"--diff: {other} does not exist (run the synth there first)", file=sys.stderr)
            return 2
        new = json.loads((Path(args.out) / args.stack / "resources.json").read_text())
        diff_text = diff(json.loads(other.read_text()), new)
        _write(Path(args.out) / args.stack / "diff.md", diff_text)
        print(diff_text)
    return status


if __name__ == "__main__":
    sys.exit(main())
