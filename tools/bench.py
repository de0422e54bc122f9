"""Benchmark: synth wall time per stack against the floor of a minimal program that
imports the same Pulumi SDKs and runs under the same mock runtime, plus the dev stack's
total requests. Each run is a fresh process (imports included), median of N.

    python -m tools.bench [--runs 3]

Target (issue: stack foundation): prod synth at most 2x the floor. Reported, not asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools import mockrt

FLOOR = """
import importlib, pulumi
for module in {modules!r}:
    importlib.import_module(module)
from tools import mockrt
result = mockrt.run(lambda: pulumi.export("ok", 1), stack="floor")
assert result.error is None
"""


def sdk_modules(stack: str) -> list[str]:
    """The provider SDK modules the real program imports (the floor imports exactly these)."""
    code = ("import sys, json; from tools import mockrt; mockrt.run_stack(%r); "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pulumi_kubernetes', 'pulumi_random', 'pulumi_aws'))))" % stack)
    out = subprocess.run([sys.executable, "-c", code], cwd=mockrt.REPO, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _time(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stacks", nargs="*", default=["dev", "prod"])
    args = parser.parse_args(argv)
    repo = mockrt.REPO
    py = sys.executable
    floor_program = FLOOR.format(modules=sdk_modules("prod"))
    floor = statistics.median(_time([py, "-c", floor_program], repo) for _ in range(args.runs))
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for stack in args.stacks:
            # exit status 1 (policy violations) still measures the full synth
            cmd = [py, "-c", f"import sys; from tools import synth; synth.main(['{stack}', '--out', '{out}'])"]
            t = statistics.median(_time(cmd, repo) for _ in range(args.runs))
            rows.append((stack, t))
        from tools import synth

        dev_objects = [synth.manifest(r.inputs) for r in mockrt.run_stack("dev").registrations
                       if synth.is_kubernetes_object(r)]
        req = synth.requests_total(dev_objects)
    print(f"floor (the program's SDK modules imported + an empty program under mocks): "
          f"{floor:.2f} s (median of {args.runs})")
    print("| stack | synth wall time | x floor | target |")
    print("|---|---|---|---|")
    for stack, t in rows:
        target = "<= 2.0x" if stack == "prod" else ""
        print(f"| {stack} | {t:.2f} s | {t / floor:.2f}x | {target} |")
    print(f"dev requests at minimum scale: CPU {req['cpu_cores']} cores, memory {req['memory_bytes'] / 2**30:.2f} GiB")
    print(json.dumps({"floor_s": round(floor, 3), **{f"{s}_s": round(t, 3) for s, t in rows},
                      "dev_cpu_cores": req["cpu_cores"], "dev_memory_gib": round(req["memory_bytes"] / 2**30, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
