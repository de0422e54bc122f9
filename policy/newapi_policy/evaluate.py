"""Run the pack's very POLICIES over a resources.json list, building the same SDK
argument objects the analyzer servicer builds, and collect a deterministic report."""
from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Optional

from pulumi_policy import (EnforcementLevel, PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions,
                           ResourceValidationArgs, ResourceValidationPolicy, StackValidationArgs,
                           StackValidationPolicy)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from .controls import BY_POLICY
from .framework import COLLECTOR, POLICIES, Collector, Res
from .settings import settings_from
from .synth_checks import WHERE, credentials_not_secret


def _opts(r: Dict[str, Any]) -> PolicyResourceOptions:
    o = PolicyResourceOptions(bool(r.get("protect")), [], r.get("deleteBeforeReplace"), list(r.get("aliases") or []),
                              PolicyCustomTimeouts(0, 0, 0), list(r.get("additionalSecretOutputs") or []),
                              r.get("parent"))
    # Not part of the SDK's options: resources.json knows retainOnDelete, the engine never tells CrossGuard.
    o.retain_on_delete = bool(r.get("retainOnDelete"))
    return o


def _props(r: Dict[str, Any]):
    return unknown_checking_proxy(deserialize_properties(r.get("inputs") or {}))


def to_res(r: Dict[str, Any]) -> Res:
    return Res(r["type"], _props(r), r["urn"], r.get("name", ""), protect=bool(r.get("protect")),
               retain_on_delete=bool(r.get("retainOnDelete")), parent=r.get("parent"),
               dependencies=r.get("dependencies") or [])


def _split_config(config: Optional[Dict[str, Any]], environment: str):
    """Shared settings vs. per-policy entries (standard pulumi-policy config: "all" or a policy name)."""
    shared: Dict[str, Any] = {}
    levels: Dict[str, str] = {}
    per_policy: Dict[str, Dict[str, Any]] = {}
    names = {p.name for p in POLICIES}
    for k, v in (config or {}).items():
        if k == "all" or k in names:
            if isinstance(v, str):
                levels[k] = v
            elif isinstance(v, dict):
                if "enforcementLevel" in v:
                    levels[k] = v["enforcementLevel"]
                per_policy[k] = {kk: vv for kk, vv in v.items() if kk != "enforcementLevel"}
        else:
            shared[k] = v
    shared["environment"] = environment
    return shared, levels, per_policy


def _level(policy, levels: Dict[str, str]) -> str:
    if policy.name in levels:
        return levels[policy.name]
    if "all" in levels:
        return levels["all"]
    return (policy.enforcement_level or EnforcementLevel.ADVISORY).value


def evaluate_stack(resources: List[Dict[str, Any]], *, environment: str = "prod",
                   config: Optional[Dict[str, Any]] = None, policies: Optional[list] = None,
                   outputs: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Run every policy (resource policies per custom resource, stack policies once) over resources.json.

    `outputs` (outputs.json, secrets masked) lets STK-002 check the stack exports; `policies`
    restricts the run (tests run one policy in isolation)."""
    shared, levels, per_policy = _split_config(config, environment)
    settings_from(shared)  # fail fast on a bad config
    policies = POLICIES if policies is None else policies
    by_urn = {r["urn"]: r for r in resources}
    collector = Collector()
    token = COLLECTOR.set(collector)
    violations: List[Dict[str, Any]] = []
    errors: List[Dict[str, Any]] = []
    # Built once per run (the engine builds one per policy; the policies never write to them).
    props = {r["urn"]: _props(r) for r in resources}
    opts = {r["urn"]: _opts(r) for r in resources}
    try:
        for policy in policies:
            level = _level(policy, levels)
            if level == "disabled":
                continue
            level = "mandatory" if level == "remediate" else level
            cfg = {**shared, **per_policy.get(policy.name, {})}
            current: List[Optional[str]] = [None]

            def report(message: str, urn: Optional[str] = None, _p=policy, _lvl=level, _cur=current):
                target = urn or _cur[0] or ""
                r = by_urn.get(target, {})
                violations.append({"control": BY_POLICY[_p.name].id, "policy": _p.name, "level": _lvl,
                                   "urn": target, "resource": r.get("name", ""), "type": r.get("type", ""),
                                   "message": message})

            try:
                if isinstance(policy, ResourceValidationPolicy):
                    for r in resources:
                        if not r.get("custom", True) or r["type"].startswith("pulumi:"):
                            continue
                        current[0] = r["urn"]
                        args = ResourceValidationArgs(r["type"], props[r["urn"]], r["urn"], r.get("name", ""),
                                                      opts[r["urn"]], None, cfg)
                        try:
                            policy.validate(args, report)
                        except (UnknownValueError, _NotApplicableError):
                            pass
                elif isinstance(policy, StackValidationPolicy):
                    current[0] = None
                    prs = {r["urn"]: PolicyResource(r["type"], props[r["urn"]], r["urn"], r.get("name", ""),
                                                    opts[r["urn"]], None, None, [], {}) for r in resources}
                    for r in resources:
                        pr = prs[r["urn"]]
                        pr.parent = prs.get(r.get("parent"))
                        pr.dependencies = [prs[d] for d in r.get("dependencies") or [] if d in prs]
                    try:
                        policy.validate(StackValidationArgs(list(prs.values()), cfg), report)
                    except (UnknownValueError, _NotApplicableError):
                        pass
            except Exception as e:  # a crashing policy is itself a finding, never a silent pass
                errors.append({"policy": policy.name, "error": f"{type(e).__name__}: {e}"})
        if policies is POLICIES and _level_of("stk-002-credentials-secret", levels) != "disabled":
            for v in credentials_not_secret(resources, outputs):
                v["level"] = _level_of("stk-002-credentials-secret", levels)
                violations.append(v)
            collector.ran["stk-002-credentials-secret"] += 1
    finally:
        COLLECTOR.reset(token)

    violations.sort(key=lambda v: (v["control"], v["urn"], v["policy"], v["message"]))
    exemptions = _exemptions(resources, collector,
                             settings_from({**shared, **per_policy.get("pol-001-exemption-annotations", {})}))
    checks = {p.name: collector.ran.get(p.name, 0) for p in policies}
    if policies is POLICIES:
        checks["stk-002-credentials-secret"] = collector.ran.get("stk-002-credentials-secret", 0)
    return {
        "environment": environment,
        "violations": violations,
        "exemptions": exemptions,
        "suppressed": sorted(collector.suppressed, key=lambda s: (s["control"], s["urn"], s["message"])),
        "unknowns": sorted(collector.unknowns, key=lambda u: (u["policy"], u["urn"], u["message"])),
        "errors": sorted(errors, key=lambda e: e["policy"]),
        "checks_run": dict(sorted(checks.items())),
        "mandatory_violations": sum(1 for v in violations if v["level"] == "mandatory"),
        "advisory_violations": sum(1 for v in violations if v["level"] == "advisory"),
        "synth_only_checks": WHERE,
    }


def _level_of(name: str, levels: Dict[str, str]) -> str:
    return levels.get(name, levels.get("all", BY_POLICY[name].level))


def _exemptions(resources: List[Dict[str, Any]], collector: Collector, settings) -> List[Dict[str, Any]]:
    """Every declared exemption: what it suppressed, and which ids are not honoured and why."""
    used = Counter((s["urn"], s["control"]) for s in collector.suppressed)
    out = []
    for r in resources:
        if not r["type"].startswith("kubernetes:"):
            continue
        res = to_res(r)
        if not res.is_k8s:
            continue
        try:
            ex = res.exemption()
        except UnknownValueError:
            continue
        if ex.controls:
            out.append({"urn": r["urn"], "resource": r.get("name", ""), "object": res.display,
                        "controls": list(ex.controls), "reason": ex.reason,
                        "suppressed": {c: used.get((r["urn"], c), 0) for c in ex.controls},
                        "refused": {c: why for c in ex.controls if (why := res.exemption_refusal(c, settings))}})
    return sorted(out, key=lambda e: e["urn"])
