"""Each workload runs as a UID of its own, and a node agent never shares one (issue 13 item 4).

Linux lets a process read /proc/<pid>/environ of another process when their UIDs and GIDs
match (proc(5): "Permission to access this file is governed by a ptrace access mode
PTRACE_MODE_READ_FSCREDS check"; kernel/ptrace.c ``__ptrace_may_access``). node-exporter
mounts the host's /proc (and /) so it sees every process on its node: with the app's UID it
could read SQL_DSN and SESSION_SECRET from the app's environment."""

import os
import subprocess
import sys
import time

import pytest

from components import common
from support import Stack, pod_spec
from tools import mockrt, synth
from validators import missing, require

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def _workloads(stack: Stack) -> dict:
    """"Kind/namespace/name" -> pod spec, for every workload the stack renders."""
    out = {}
    for kind in WORKLOAD_KINDS:
        for obj in stack.k8s_all(kind):
            spec = obj["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else obj["spec"]
            out[f"{kind}/{obj['metadata']['namespace']}/{obj['metadata']['name']}"] = spec["template"]["spec"]
    assert len(out) > 10, out.keys()
    return out


def _uids(pod: dict) -> set:
    """Effective runAsUser of each container: its own, else the pod's (core/v1 SecurityContext)."""
    default = pod.get("securityContext", {}).get("runAsUser")
    return {c.get("securityContext", {}).get("runAsUser", default)
            for c in pod["containers"] + pod.get("initContainers", [])}


def _host_process_access(pod: dict) -> bool:
    paths = {v["hostPath"]["path"].rstrip("/") or "/" for v in pod.get("volumes", []) if "hostPath" in v}
    return bool(pod.get("hostPID")) or bool(paths & {"/", "/proc"})


def test_every_pod_runs_as_one_uid_from_the_table(stack):
    table = set(common.WORKLOAD_UIDS.values())
    for name, pod in _workloads(stack).items():
        uids = _uids(pod)
        assert len(uids) == 1 and uids <= table, (name, uids)
        assert pod["securityContext"]["runAsGroup"] == pod["securityContext"]["fsGroup"] == uids.pop(), name


def test_no_workload_that_sees_the_nodes_processes_shares_its_uid(stack):
    workloads = _workloads(stack)
    agents = {n: p for n, p in workloads.items() if _host_process_access(p)}
    assert set(agents) == {"DaemonSet/node-agents/node-exporter"}
    for name, pod in agents.items():
        others = {o for o, p in workloads.items() if o != name and _uids(p) & _uids(pod)}
        assert others == set(), (name, others)


def test_applications_do_not_share_uids(prod):
    """The app and its database, cache, backups and the observability tier are apart."""
    by_uid = {}
    for name, pod in _workloads(prod).items():
        by_uid.setdefault(_uids(pod).pop(), set()).add(name.rsplit("/", 1)[-1])
    app = by_uid[common.WORKLOAD_UIDS["new-api"]]
    assert app == {"new-api", "new-api-master", "new-api-bootstrap"}, app


def test_node_exporter_reads_the_hosts_proc_without_the_hosts_pid_namespace(stack):
    """node_exporter reads every procfs file under --path.procfs (collector/paths.go
    procFilePath), e.g. the host's mounts from <procfs>/1/mountinfo (filesystem_linux.go): a
    procfs instance shows the PID namespace that mounted it, so the host's /proc mounted at
    /host/proc is the host's view whatever the pod's PID namespace; hostPID adds nothing."""
    ds = stack.k8s("DaemonSet", "node-exporter")
    pod = pod_spec(ds)
    assert not pod.get("hostPID")
    assert "--path.procfs=/host/proc" in pod["containers"][0]["args"]
    proc = next(v for v in pod["volumes"] if v.get("hostPath", {}).get("path") == "/proc")
    assert {"name": proc["name"], "mountPath": "/host/proc", "readOnly": True} in pod["containers"][0]["volumeMounts"]


def test_stack_policy_refuses_a_node_agent_sharing_a_uid_on_the_synth_output(stack):
    """STK-005 on the rendered stack: as rendered it passes; with node-exporter given the
    app's UID (the old default for every workload) it reports, and no annotation waives it."""
    policy_dir = str(mockrt.REPO / "policy")
    if policy_dir not in sys.path:
        sys.path.insert(0, policy_dir)
    import newapi_policy
    from newapi_policy.framework import CHECKS

    policy = [CHECKS["stk-005-host-access-own-uid"]]
    resources = synth.inventory(stack.result)
    assert newapi_policy.evaluate_stack(resources, policies=policy)["violations"] == []
    agent = next(r for r in resources if r["type"] == "kubernetes:apps/v1:DaemonSet" and r["name"].endswith("node-exporter"))
    pod = agent["inputs"]["spec"]["template"]["spec"]
    app_uid = common.WORKLOAD_UIDS["new-api"]
    pod["securityContext"]["runAsUser"] = app_uid
    for c in pod["containers"]:
        c["securityContext"]["runAsUser"] = app_uid
    agent["inputs"]["metadata"].setdefault("annotations", {}).update(
        common.exemption_annotations(["STK-005"], "trying to waive it"))
    messages = [v["message"] for v in newapi_policy.evaluate_stack(resources, policies=policy)["violations"]]
    assert messages and all(m.startswith("[STK-005] DaemonSet node-agents/node-exporter sees the node's processes "
                                         "(hostPath /proc) and runs as UID 10002 like ") for m in messages), messages


def test_linux_lets_a_process_read_the_environment_of_its_own_uid_only(tmp_path):
    """The fact the table rests on, shown with two unprivileged processes (setpriv drops
    root to the UID/GID given): same UID and GID read the secret, another UID cannot."""
    setpriv = require("setpriv", "util-linux ships it")
    if os.geteuid() != 0:
        missing("root (to start processes as other UIDs)", "run the suite as root, as CI does")

    def as_uid(uid, *cmd):
        return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *cmd]

    owner = common.WORKLOAD_UIDS["new-api"]
    app = subprocess.Popen(as_uid(owner, "sleep", "30"), env={"SESSION_SECRET": "s3cr3t-value", "PATH": os.environ["PATH"]})
    try:
        environ = f"/proc/{app.pid}/environ"
        for _ in range(100):  # until setpriv has exec'd sleep as the owner (no longer root's process)
            if os.stat(f"/proc/{app.pid}").st_uid == owner and os.readlink(f"/proc/{app.pid}/exe").endswith("sleep"):
                break
            time.sleep(0.05)
        same = subprocess.run(as_uid(owner, "cat", environ), capture_output=True)
        assert same.returncode == 0 and b"SESSION_SECRET=s3cr3t-value" in same.stdout
        other = subprocess.run(as_uid(common.WORKLOAD_UIDS["node-exporter"], "cat", environ), capture_output=True,
                               text=True)
        assert other.returncode != 0 and "Permission denied" in other.stderr
    finally:
        app.kill()
        app.wait()
