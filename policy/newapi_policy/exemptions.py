"""Exemptions (contract 2): `policy.new-api.io/exempt-controls: "K8S-009,K8S-010"` plus
`policy.new-api.io/exempt-reason: "<one-line justification>"` on an object's metadata or its
pod template's metadata. Honoured only for known ids and only with a non-empty reason;
anything else is reported by POL-001 and honours nothing it could not verify."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import List, Tuple

from .controls import CONTROL_IDS

EXEMPT_CONTROLS = "policy.new-api.io/exempt-controls"
EXEMPT_REASON = "policy.new-api.io/exempt-reason"


def _get(m, k):
    return m[k] if k in m else None


@dataclass
class Exemption:
    controls: Tuple[str, ...]
    reason: str
    problems: Tuple[str, ...]  # why (part of) the annotation is not honoured


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


