"""Run checkov, an independent scanner, over the synthesized Kubernetes objects of a stack
(issue 13.11): `build/checkov/<stack>/manifests/`, the YAML `tools.synth` writes, which is what the
cluster receives.

    python -m tools.checkov_scan dev prod     # synth each stack, scan, exit 1 on any finding

checkov runs from its own virtualenv (`.venv-checkov`, `make checkov`: it conflicts with
Pulumi's pinned packages) with `--skip-download` (offline) and `--framework kubernetes`.
A finding is either fixed or skipped with its reason, in one of two ways:

- per object, by the waiver that also exempts it from the policy pack
  (`components.common.exemption_annotations(..., checkov=[...])`, which writes
  `checkov.io/skip<N>: <CHECK_ID>=<reason>`): node agents' host access, API clients' tokens;
- stack-wide, below (STACK_DECISIONS): checks that restate a control this project decided
  differently for every workload, each with the control it follows.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parent.parent
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
#: Where the scan synthesizes (build/<stack>/ keeps the policy report of `make synth`).
OUT = REPO / "build" / "checkov"

#: Checks skipped for every object, each because a project control decides otherwise
#: (../shared/CONTROLS.md); the policy pack still reports them where they are advisory.
STACK_DECISIONS: Dict[str, str] = {
    "CKV_K8S_11": "CPU limits stay advisory (K8S-003 cpu-limit): a CPU limit throttles New API's "
                  "streamed responses under bursts; requests reserve the capacity",
    "CKV_K8S_15": "imagePullPolicy Always is advisory (K8S-050): every image is pinned to a version "
                  "tag, and by digest per stack where resolved",
    "CKV_K8S_43": "digest pinning is per stack (K8S-013 image-digest, advisory, prod only): the pack "
                  "reports a prod image pinned only by tag",
    "CKV_K8S_35": "credentials reach containers by secretKeyRef (K8S-016 allows env from a Secret): "
                  "New API reads SQL_DSN, REDIS_CONN_STRING and SESSION_SECRET only from its environment",
}


def scan(manifests: Path, checkov: Path = CHECKOV) -> Dict:
    """checkov's JSON report (results.failed_checks / skipped_checks, summary) for one directory."""
    cmd = [str(checkov), "--skip-download", "--framework", "kubernetes", "--directory", str(manifests),
           "--output", "json", "--compact", "--skip-check", ",".join(sorted(STACK_DECISIONS))]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise RuntimeError(f"checkov failed ({proc.returncode}): {proc.stderr[-2000:]}")
    doc = json.loads(proc.stdout)
    if isinstance(doc, list):  # one entry per framework
        (doc,) = [d for d in doc if d.get("check_type") == "kubernetes"]
    return doc


def findings(report: Dict) -> List[str]:
    return [f"{f['check_id']} {f['resource']} ({f['check_name']})" for f in report["results"]["failed_checks"]]


def main(argv: List[str]) -> int:
    from tools import synth

    stacks = argv or ["dev", "prod"]
    if not CHECKOV.exists():
        print(f"{CHECKOV} is missing: `make checkov` installs it", file=sys.stderr)
        return 2
    failed = 0
    for stack in stacks:
        rc, _ = synth.synth(stack, OUT, with_policy=False)
        if rc:
            print(f"synth of {stack} failed", file=sys.stderr)
            return rc
        start = time.monotonic()
        report = scan(OUT / stack / "manifests")
        took = time.monotonic() - start
        s = report["summary"]
        print(f"{stack}: {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped by annotation "
              f"({s['resource_count']} objects, checkov {s['checkov_version']}, {took:.1f} s)")
        for line in findings(report):
            print(f"  {line}")
        failed += s["failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
