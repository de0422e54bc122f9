"""Exemptions (contract 2): `policy.new-api.io/exempt-controls: "K8S-009,K8S-010"` plus
`policy.new-api.io/exempt-reason: "<one-line justification>"` on an object's metadata or its
pod template's metadata. A resource cannot waive a control on its own word (issue 13.10): an
exemption is honoured only for a known, waivable id, with a non-empty reason, AND when the
pack's per-stack config allows that control for that object (`allowedExemptions`:
`{"K8S-009": ["DaemonSet node-agents/node-exporter"]}`, policy/config/<stack>.json written by
tools/policy_config.py). Anything else is reported by POL-001 and honours nothing."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import List, Tuple

from .controls import CONTROL_IDS

EXEMPT_CONTROLS = "policy.new-api.io/exempt-controls"
#: Controls no annotation and no config can waive: each guards a boundary that, once open,
#: voids the others, and no workload of this stack (node agents included) needs it open.
NON_WAIVABLE = {
    "K8S-001": "root in a container is root on the node after an escape; every workload here, "
               "node agents included, runs as a non-root UID",
    "K8S-005": "privilege escalation (setuid binaries, file capabilities) turns any non-root "
               "process into root",
    "K8S-008": "a privileged container has every capability and every host device: all other "
               "container controls stop meaning anything",
    "K8S-016": "a credential written into a manifest lands in the state, the synth output and Git",
    "K8S-027": "wildcard RBAC or a cluster-admin binding grants every current and future permission",
    "K8S-043": "ingress-nginx snippets run arbitrary configuration in the controller, which can "
               "read every Secret it serves (CVE-2021-25742)",
    "K8S-048": "escalate/bind/impersonate, exec/attach/proxy and cluster-wide Secret reads are "
               "paths to cluster-admin",
    "STK-005": "a workload that sees the node's processes and shares a UID reads other pods' "
               "secrets from /proc/<pid>/environ",
    "POL-001": "the exemption rules themselves: waiving them would make every waiver unchecked",
}
EXEMPT_REASON = "policy.new-api.io/exempt-reason"


def _get(m, k):
    return m[k] if k in m else None


@dataclass
class Exemption:
    controls: Tuple[str, ...]
    reason: str
    problems: Tuple[str, ...]  # why (part of) the annotation is not honoured


def refusal(control_id: str, display: str, allowed: Mapping) -> str:
    """Why an exemption of `control_id` declared on `display` ("Kind ns/name") is not honoured,
    or "" when it is allowed (`allowed`: the config's allowedExemptions)."""
    if control_id in NON_WAIVABLE:
        return f"{control_id} can never be waived ({NON_WAIVABLE[control_id]})"
    if display not in tuple(allowed.get(control_id, ())):
        return (f"the pack config does not allow waiving {control_id} for {display} "
                f"(allowedExemptions[{control_id!r}] in policy/config/<stack>.json, tools/policy_config.py)")
    return ""


def parse_exemption(sources: List[Mapping]) -> Exemption:
    ids: List[str] = []
    reasons: List[str] = []
    declared = False
    for ann in sources:
        if not isinstance(ann, Mapping):
            continue
        raw = _get(ann, EXEMPT_CONTROLS)
        if raw is not None:
            declared = True
            ids.extend(t.strip().upper() for t in re.split(r"[,\s]+", str(raw)) if t.strip())
        r = _get(ann, EXEMPT_REASON)
        if isinstance(r, str) and r.strip():
            reasons.append(r.strip())
    problems: List[str] = []
    if not declared:
        return Exemption((), "", ())
    unknown = sorted({i for i in ids if i not in CONTROL_IDS})
    if unknown:
        problems.append(f"names unknown control id(s) {', '.join(unknown)}")
    if not ids:
        problems.append("names no control id")
    if not reasons:
        problems.append(f"has no {EXEMPT_REASON} justification, so it is ignored")
        return Exemption((), "", tuple(problems))
    known = tuple(sorted({i for i in ids if i in CONTROL_IDS}))
    return Exemption(known, " / ".join(dict.fromkeys(reasons)), tuple(problems))


