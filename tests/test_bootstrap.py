"""The bootstrap Job's script, run for real with /bin/sh (the image's Debian dash) against
a fake `wget` that plays the master: idempotent, creates root once, fails loudly."""

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from components.app import BOOTSTRAP_SCRIPT

FAKE_WGET = textwrap.dedent("""\
    #!/bin/sh
    # Plays New API's master. Records every call; answers from env.
    echo "$*" >> "$CALLS"
    post=""
    while [ $# -gt 0 ]; do
      case "$1" in --post-data) post="$2"; shift ;; esac
      url="$1"; shift
    done
    [ "$MASTER_DOWN" = 1 ] && exit 4
    case "$url" in
      */api/status) printf '{"success":true,"data":{"setup":%s,"version":"v1.0.0-rc.25"}}' "$SETUP_DONE" ;;
      */api/setup) printf '%s' "$post" > "$POSTED"; printf '%s' "$SETUP_REPLY" ;;
      *) exit 8 ;;
    esac
    """)


def run_script(tmp_path: Path, **env) -> subprocess.CompletedProcess:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "wget").write_text(FAKE_WGET)
    (bindir / "sleep").write_text("#!/bin/sh\nexit 0\n")
    for tool in ("wget", "sleep"):
        (bindir / tool).chmod(0o755)
    full_env = {
        "PATH": f"{bindir}:/usr/bin:/bin",
        "MASTER_URL": "http://new-api-master:3000",
        "ADMIN_USERNAME": "root",
        "ADMIN_PASSWORD": "Abcdefgh12345678XYzz",
        "CALLS": str(tmp_path / "calls"),
        "POSTED": str(tmp_path / "posted"),
        "SETUP_DONE": "false",
        "SETUP_REPLY": '{"success":true,"message":""}',
        "MASTER_DOWN": "0",
        **env,
    }
    return subprocess.run(["/bin/sh", "-ec", BOOTSTRAP_SCRIPT], env=full_env, capture_output=True,
                          text=True, timeout=30)


def test_creates_root_with_the_generated_password_when_setup_is_pending(tmp_path):
    proc = run_script(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    posted = json.loads((tmp_path / "posted").read_text())
    assert posted == {"username": "root", "password": "Abcdefgh12345678XYzz",
                      "confirmPassword": "Abcdefgh12345678XYzz",
                      "SelfUseModeEnabled": False, "DemoSiteEnabled": False}
    assert "http://new-api-master:3000/api/setup" in (tmp_path / "calls").read_text()


def test_does_nothing_when_setup_is_already_done(tmp_path):
    proc = run_script(tmp_path, SETUP_DONE="true")
    assert proc.returncode == 0
    assert "nothing to do" in proc.stdout
    assert not (tmp_path / "posted").exists()
    assert "/api/setup" not in (tmp_path / "calls").read_text()


def test_fails_when_the_master_refuses_setup(tmp_path):
    proc = run_script(tmp_path, SETUP_REPLY='{"success":false,"message":"already initialised"}')
    assert proc.returncode == 1
    assert "setup failed" in proc.stdout


def test_gives_up_when_the_master_never_answers(tmp_path):
    proc = run_script(tmp_path, MASTER_DOWN="1")
    assert proc.returncode == 1
    assert "master not answering" in proc.stdout
    assert len((tmp_path / "calls").read_text().splitlines()) == 60


def test_script_is_posix_sh():
    from validators import require

    proc = subprocess.run([require("sh"), "-n", "-c", BOOTSTRAP_SCRIPT], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
