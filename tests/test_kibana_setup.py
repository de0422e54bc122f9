"""The kibana-setup Job: its script run for real with bash against a fake `curl` playing
Kibana, and its place in the stack (after Kibana, only to Kibana)."""

import json
import subprocess
import textwrap

from components import logging_config as lc
from support import container

FAKE_CURL = textwrap.dedent("""\
    #!/bin/sh
    # Plays Kibana: /api/status answers $STATUS_CODE, the data view POST answers $POST_CODE.
    echo "$*" >> "$CALLS"
    out=""; data=""; url=""
    while [ $# -gt 0 ]; do
      case "$1" in
        -o) out="$2"; shift ;;
        --data-binary) data="$2"; shift ;;
        -u|-X|-H|-w) shift ;;
        -s) ;;
        *) url="$1" ;;
      esac
      shift
    done
    case "$url" in
      */api/status) printf '%s' "$STATUS_CODE" ;;
      */api/data_views/data_view) printf '%s' "$data" > "$POSTED"; echo '{"ok":1}' > "${out:-/dev/null}";
                                   printf '%s' "$POST_CODE" ;;
    esac
    """)


def run(tmp_path, **env):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in (("curl", FAKE_CURL), ("sleep", "#!/bin/sh\nexit 0\n")):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    full = {"PATH": f"{bindir}:/usr/bin:/bin", "KIBANA_URL": "http://kibana.logging.svc:5601",
            "KIBANA_SETUP_USER": lc.KIBANA_SETUP_USER, "KIBANA_SETUP_PASSWORD": "pw", "DATA_VIEW": json.dumps(lc.data_view()), "DATA_VIEW_ID": lc.DATA_VIEW_ID,
            "CALLS": str(tmp_path / "calls"), "POSTED": str(tmp_path / "posted"),
            "STATUS_CODE": "200", "POST_CODE": "200", **env}
    return subprocess.run(["bash", "-c", lc.KIBANA_SETUP_SCRIPT], env=full, capture_output=True, text=True,
                          timeout=30, cwd=tmp_path)


def test_creates_the_data_view_idempotently(tmp_path):
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    body = json.loads((tmp_path / "posted").read_text())
    assert body["data_view"]["title"] == "new-api-logs-*" and body["data_view"]["timeFieldName"] == "@timestamp"
    assert body["override"] is True
    assert "kbn-xsrf: true" in (tmp_path / "calls").read_text()


def test_waits_for_kibana_then_gives_up(tmp_path):
    proc = run(tmp_path, STATUS_CODE="503")
    assert proc.returncode == 1 and "Kibana not available" in proc.stdout
    assert not (tmp_path / "posted").exists()


def test_fails_when_kibana_refuses_the_data_view(tmp_path):
    proc = run(tmp_path, POST_CODE="400")
    assert proc.returncode == 1 and "data view failed: 400" in proc.stdout


def test_the_job_runs_after_kibana_and_may_only_reach_it(dev):
    job = dev.get("kubernetes:batch/v1:Job", "logging-kibana-setup")
    assert dev.get("kubernetes:apps/v1:Deployment", "logging-kibana").urn in job.dependencies
    env = {e["name"]: e for e in container(dev.k8s("Job", "kibana-setup"), "kibana-setup")["env"]}
    assert env["KIBANA_SETUP_USER"]["value"] == lc.KIBANA_SETUP_USER
    assert env["KIBANA_SETUP_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "kibana-setup-password"
    assert "ELASTIC_PASSWORD" not in env  # never the superuser
    policy = dev.k8s("NetworkPolicy", "kibana-setup")["spec"]
    assert policy["ingress"] == [] and [p["port"] for p in policy["egress"][0]["ports"]] == [5601]
