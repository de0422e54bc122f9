"""Every shell script the stack embeds in a container command or an exec probe, taken
from the objects the program registers (as the kubelet runs them: ``command`` plus
``args``), passes ShellCheck for the shell that runs it (``sh`` is the images' dash or
busybox, ``bash`` where the command names it). ShellCheck's rules: https://www.shellcheck.net/wiki/
(`-s` selects the dialect). The logging and roles tests check their scripts in more depth."""

import subprocess

from support import Stack
from tools.synth import manifest
from validators import require

SHELLS = {"/bin/sh": "sh", "sh": "sh", "/bin/bash": "bash", "bash": "bash"}
FLAGS = {"-c", "-ec", "-euc", "-eu", "-e"}


def scripts(stack: Stack) -> list:
    """(object, field path, shell, script) of every ``<shell> -c <script>`` in the stack."""
    out = []

    def walk(node, where, path):
        if isinstance(node, dict):
            argv = node.get("command")
            if isinstance(argv, list) and argv and argv[0] in SHELLS:
                argv = argv + list(node.get("args") or [])
                if len(argv) >= 3 and argv[1] in FLAGS:
                    out.append((where, ".".join(path), SHELLS[argv[0]], argv[2]))
            for key, value in node.items():
                walk(value, where, path + [str(key)])
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, where, path + [str(i)])

    for reg in stack.registrations:
        if reg.type.startswith("kubernetes:"):
            obj = manifest(reg.inputs)
            walk(obj, f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}", [])
    return out


def test_every_embedded_shell_script_passes_shellcheck(stack):
    shellcheck = require("shellcheck")
    found = scripts(stack)
    kinds = {where.split("/")[0] for where, *_ in found}
    # the dump CronJob, the bootstrap Job and Elasticsearch's init/probe are in both stacks
    assert {"CronJob", "Job", "StatefulSet"} <= kinds, kinds
    failures = []
    for where, path, shell, script in found:
        proc = subprocess.run([shellcheck, "-s", shell, "-"], input=script, capture_output=True, text=True,
                              timeout=60)
        if proc.returncode != 0:
            failures.append(f"{where} {path} ({shell}):\n{proc.stdout}")
    assert not failures, "\n".join(failures)
