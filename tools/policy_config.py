"""Write the policy pack's per-stack config files, `policy/config/<stack>.json`, which the
workflows pass as `--policy-pack-config` and the offline synth uses too: every policy gets the
stack's environment and the stack's allowed exemptions.

    python -m tools.policy_config          # (re)generate
The test suite fails when a committed file is out of date.

ALLOWED_EXEMPTIONS is the second key of every waiver (issue 13.10): a workload's
`policy.new-api.io/exempt-controls` annotation is honoured only for the (control, object)
pairs listed here, so a change that makes a resource exempt itself needs a reviewed change to
this table too. Objects are named as the pack names them, "Kind namespace/name". Some pairs
exist only with a configuration (canary/blue-green, CloudNativePG, autoscaling on custom
metrics, ACME); listing them allows nothing more than the control for that object.
"""

import json
import sys

from tools import mockrt, synth

STACKS = ("dev", "prod")

#: Waivers every stack allows; the component that declares each gives the reason in its annotation.
_COMMON = {
    # node agents read the host (host PID/network, read-only hostPath): components/monitoring.py, logging.py
    "K8S-009": ["DaemonSet node-agents/node-exporter"],
    "K8S-010": ["DaemonSet node-agents/node-exporter", "DaemonSet node-agents/filebeat"],
    # the one namespace that admits them
    "K8S-025": ["Namespace node-agents"],
    # Kubernetes API clients need their service account token
    "K8S-015": ["DaemonSet node-agents/filebeat", "Deployment monitoring/kube-state-metrics",
                "StatefulSet monitoring/prometheus", "Deployment monitoring/prometheus-adapter"],
    # New API's master: exactly one replica, replaced with Recreate (NEWAPI-CONTRACT §3)
    "K8S-023": ["Deployment new-api/new-api-master"],
    "K8S-034": ["Deployment new-api/new-api-master",
                # the Rollout's pod template when delivery is canary or blue-green
                "Deployment new-api/new-api",
                # one exporter per managed endpoint (RDS, ElastiCache, the RDS API): two would duplicate every series
                "Deployment new-api/new-api-postgres-exporter", "Deployment new-api/new-api-redis-exporter",
                "Deployment new-api/new-api-postgres-rds-exporter"],
    # NetworkPolicies selecting pods that controllers create later (ACME solver, CloudNativePG)
    "K8S-040": ["NetworkPolicy new-api/new-api-acme-solver", "NetworkPolicy logging/kibana-acme-solver",
                "NetworkPolicy new-api/new-api-postgres"],
}
#: dev runs Postgres and Redis in the cluster, one instance each by design.
ALLOWED_EXEMPTIONS = {
    "dev": {**_COMMON, "K8S-034": _COMMON["K8S-034"] + ["StatefulSet new-api/new-api-postgres",
                                                       "StatefulSet new-api/new-api-redis"]},
    "prod": _COMMON,
}


def render(stack: str) -> str:
    sys.path.insert(0, str(mockrt.REPO / "policy"))
    import newapi_policy

    names = sorted(p.name for p in newapi_policy.POLICIES)
    doc = newapi_policy.pack_config_file(names, environment=synth.stack_environment(stack),
                                         allowedExemptions=ALLOWED_EXEMPTIONS.get(stack, {}))
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
