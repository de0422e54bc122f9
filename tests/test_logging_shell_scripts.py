"""Every shell script the logging components embed passes ShellCheck for the shell that
runs it (issue 12: "shellcheck on every embedded shell script"). The scripts are taken
from the rendered objects as the kubelet runs them: a container's or exec probe's
``[<shell>, "-c", script]``, or ``[<shell>, <file>]`` with the file from the ConfigMap
mounted there. Every logging image that runs a script is Elasticsearch's (bash and curl;
VERIFIED.md), so ShellCheck checks for the shell named in the command (``-s bash``)."""

import subprocess

import pytest
import validators

SHELLS = {"bash", "sh"}
NAMESPACES = {"logging", "node-agents"}
KINDS = ("Job", "CronJob", "Deployment", "StatefulSet", "DaemonSet")


def pod_spec(obj: dict) -> dict:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def scripts(stack) -> list[tuple[str, str, str]]:
    """(where, shell, script) for every embedded script of the logging namespaces."""
    found = []
    for kind in KINDS:
        for obj in stack.k8s_all(kind):
            if obj["metadata"].get("namespace") not in NAMESPACES:
                continue
            spec = pod_spec(obj)
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            for c in spec.get("initContainers", []) + spec.get("containers", []):
                where = f"{kind}/{obj['metadata']['name']}/{c['name']}"
                commands = [c.get("command", []) + c.get("args", [])]
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    commands.append(((c.get(probe) or {}).get("exec") or {}).get("command", []))
                for cmd in commands:
                    if not cmd or cmd[0].rsplit("/", 1)[-1] not in SHELLS:
                        continue
                    shell = cmd[0].rsplit("/", 1)[-1]
                    if len(cmd) >= 3 and cmd[1] == "-c":
                        found.append((where, shell, cmd[2]))
                    elif len(cmd) >= 2:
                        found.append((where, shell, mounted_file(stack, c, volumes, cmd[1])))
    return found


def mounted_file(stack, container: dict, volumes: dict, path: str) -> str:
    for m in container.get("volumeMounts", []):
        if path.startswith(m["mountPath"].rstrip("/") + "/"):
            cm = volumes[m["name"]]["configMap"]["name"]
            return stack.k8s("ConfigMap", cm)["data"][path[len(m["mountPath"].rstrip("/")) + 1:]]
    raise AssertionError(f"{path} is not mounted from a ConfigMap in {container['name']}")


@pytest.fixture(scope="module")
def shellcheck() -> str:
    return validators.require("shellcheck")


def test_every_embedded_script_passes_shellcheck(stack, shellcheck, tmp_path):
    found = scripts(stack)
    where = {w for w, _, _ in found}
    # the setup Jobs, Elasticsearch's config init and its readiness probe at least
    assert {"Job/elasticsearch-setup/setup", "StatefulSet/elasticsearch/config"} <= where, where
    problems = []
    for i, (place, shell, script) in enumerate(found):
        path = tmp_path / f"script{i}.sh"
        path.write_text(script)
        proc = subprocess.run([shellcheck, "-s", shell, "-f", "gcc", str(path)], capture_output=True, text=True)
        if proc.returncode != 0:
            problems.append(f"{place}:\n{proc.stdout}")
    assert not problems, "\n".join(problems)
