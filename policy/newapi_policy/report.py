"""Render an evaluate_stack report as Markdown (build/<stack>/policy-report.md)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict

from .controls import BY_POLICY, CONTROLS


def _cell(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Dict[str, Any]) -> str:
    env = report.get("environment", "?")
    lines = [f"# Policy report ({env})", "",
             f"- mandatory violations: **{report['mandatory_violations']}**",
             f"- advisory violations: **{report['advisory_violations']}**",
             f"- exemptions in use: **{len(report['exemptions'])}**",
             f"- policies run: {sum(1 for n in report['checks_run'].values() if n)} of {len(report['checks_run'])}"
             f" ({len({c.id for c in CONTROLS})} controls)", ""]
    if report.get("errors"):
        lines += ["## Policy errors", ""] + [f"- `{e['policy']}`: {_cell(e['error'])}" for e in report["errors"]] + [""]
    lines += ["## Violations", ""]
    if not report["violations"]:
        lines += ["None.", ""]
    else:
        by_control = defaultdict(list)
        for v in report["violations"]:
            by_control[v["control"]].append(v)
        for cid in sorted(by_control):
            vs = by_control[cid]
            lines += [f"### {cid} ({vs[0]['level']}): {BY_POLICY[vs[0]['policy']].title}", "",
                      "| level | resource | type | message |", "|---|---|---|---|"]
            lines += [f"| {v['level']} | {_cell(v['resource'])} | {_cell(v['type'])} | {_cell(v['message'])} |"
                      for v in vs]
            lines.append("")
    lines += ["## Exemptions in use", ""]
    if not report["exemptions"]:
        lines += ["None.", ""]
    else:
        lines += ["| object | controls | reason | findings suppressed |", "|---|---|---|---|"]
        lines += [f"| {_cell(e['object'])} | "
                  f"{', '.join(c + (' (not honoured)' if c in e.get('refused', {}) else '') for c in e['controls'])} | "
                  f"{_cell(e['reason'])} | "
                  f"{sum(e['suppressed'].values())} |" for e in report["exemptions"]]
        lines.append("")
    if report.get("unknowns"):
        lines += ["## Skipped on unknown values", ""]
        lines += [f"- `{u['policy']}` on {u['urn']}: {_cell(u['message'])}" for u in report["unknowns"]] + [""]
    lines += ["## Where each check ran", "",
              "Every policy below ran in-process over the synth's resources.json, exactly as "
              "`pulumi preview --policy-pack policy` runs it; these parts run only on the synth output:", "",
              "| control | part | where | why |", "|---|---|---|---|"]
    lines += [f"| {w['control']} | {_cell(w['part'])} | {w['where']} | {_cell(w['why'])} |"
              for w in report["synth_only_checks"]]
    lines += ["", "## Checks run", "", "| policy | resources checked |", "|---|---|"]
    lines += [f"| {name} | {n} |" for name, n in report["checks_run"].items()]
    return "\n".join(lines) + "\n"
