"""Write the policy pack's per-stack config files, `policy/config/<stack>.json`, which the
workflows pass as `--policy-pack-config` (every policy gets the stack's environment).

    python -m tools.policy_config          # (re)generate
The test suite fails when a committed file is out of date.
"""

import json
import sys

from tools import mockrt, synth

STACKS = ("dev", "prod")


def render(stack: str) -> str:
    sys.path.insert(0, str(mockrt.REPO / "policy"))
    import newapi_policy

    names = sorted(p.name for p in newapi_policy.POLICIES)
    doc = newapi_policy.pack_config_file(names, environment=synth.stack_environment(stack))
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def main() -> int:
    out = mockrt.REPO / "policy" / "config"
    out.mkdir(exist_ok=True)
    for stack in STACKS:
        (out / f"{stack}.json").write_text(render(stack))
        print(f"wrote policy/config/{stack}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
