"""The kibana-setup Job: its rendered script run for real with bash against a fake `curl`
playing Kibana, with the rendered environment and the saved objects of its ConfigMap; and
its place in the stack (after Kibana, only to Kibana).

Kibana's APIs as the script uses them: ``POST /api/data_views/data_view`` with
``override: true`` and ``POST /api/saved_objects/<type>/<id>?overwrite=true`` (both
overwrite on a re-run, so the Job is idempotent); a saved object references the data view
by id in ``references`` (``kibanaSavedObjectMeta.searchSourceJSON.index``), a dashboard its
panels by ``panelRefName`` (Kibana's saved-object reference format)."""

import json
import subprocess
import textwrap

import pytest

from components import logging_config as lc
from support import container

FAKE_CURL = textwrap.dedent("""\
    #!/bin/sh
    # Plays Kibana: /api/status answers $STATUS_CODE, every POST $POST_CODE; bodies are
    # stored under $POSTED/<path with / and ? as _>.
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
      */api/*) path=$(printf '%s' "${url#*/api/}" | tr '/?' '__')
               case "$data" in @*) cat "${data#@}" > "$POSTED/$path" ;; *) printf '%s' "$data" > "$POSTED/$path" ;; esac
               echo '{"ok":1}' > "${out:-/dev/null}"; printf '%s' "$POST_CODE" ;;
    esac
    """)


@pytest.fixture(scope="module")
def rendered(dev):
    job = dev.k8s("Job", "kibana-setup")
    c = container(job, "kibana-setup")
    assert c["command"][:2] == ["bash", "-c"]
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    objects = dev.k8s("ConfigMap", "kibana-setup")["data"]
    return c["command"][2], env, objects


def run(tmp_path, rendered, **env):
    script, rendered_env, objects = rendered
    bindir, objdir, posted = tmp_path / "bin", tmp_path / "objects", tmp_path / "posted"
    for d in (bindir, objdir, posted):
        d.mkdir(exist_ok=True)
    for name, text in (("curl", FAKE_CURL), ("sleep", "#!/bin/sh\nexit 0\n")):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    for name, text in objects.items():
        (objdir / name).write_text(text)
    full = {**rendered_env, "PATH": f"{bindir}:/usr/bin:/bin", "KIBANA_SETUP_PASSWORD": "pw",
            "OBJECTS_DIR": str(objdir), "CALLS": str(tmp_path / "calls"), "POSTED": str(posted),
            "STATUS_CODE": "200", "POST_CODE": "200", **env}
    return subprocess.run(["bash", "-c", script], env=full, capture_output=True, text=True, timeout=30, cwd=tmp_path)


def posted(tmp_path) -> dict:
    return {p.name: json.loads(p.read_text()) for p in (tmp_path / "posted").iterdir()}


def test_creates_the_data_view_and_the_seed_dashboard_idempotently(tmp_path, rendered):
    proc = run(tmp_path, rendered)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bodies = posted(tmp_path)
    view = bodies["data_views_data_view"]
    assert view["data_view"]["title"] == "new-api-logs-*" and view["data_view"]["timeFieldName"] == "@timestamp"
    assert view["override"] is True
    assert set(bodies) == {"data_views_data_view",
                           "saved_objects_visualization_log-level-distribution_overwrite=true",
                           "saved_objects_visualization_error-logs-timeline_overwrite=true",
                           "saved_objects_visualization_top-error-messages_overwrite=true",
                           "saved_objects_dashboard_new-api-logs-dashboard_overwrite=true"}
    calls = (tmp_path / "calls").read_text()
    assert "kbn-xsrf: true" in calls and f"{rendered[1]['KIBANA_SETUP_USER']}:pw" in calls
    # visualizations before the dashboard that embeds them
    order = [line for line in calls.splitlines() if "saved_objects" in line]
    assert "dashboard" in order[-1] and all("visualization" in line for line in order[:-1])
    first = posted(tmp_path)
    assert run(tmp_path, rendered).returncode == 0 and posted(tmp_path) == first  # a re-run overwrites


def test_the_dashboard_shows_the_seeds_three_panels_on_the_data_view(tmp_path, rendered):
    """Seed 000 (SEED-NOTES §2.27): pie x0 y0 w24 h15, histogram x24 y0 w24 h15, data table
    x0 y15 w48 h15; every visualization reads the data view by reference."""
    assert run(tmp_path, rendered).returncode == 0
    bodies = posted(tmp_path)
    dash = bodies["saved_objects_dashboard_new-api-logs-dashboard_overwrite=true"]
    panels = json.loads(dash["attributes"]["panelsJSON"])
    refs = {r["name"]: r for r in dash["references"]}
    layout = {refs[p["panelRefName"]]["id"]: tuple(p["gridData"][k] for k in "xywh") for p in panels}
    assert layout == {"log-level-distribution": (0, 0, 24, 15), "error-logs-timeline": (24, 0, 24, 15),
                      "top-error-messages": (0, 15, 48, 15)}
    types = {}
    for vid in layout:
        vis = bodies[f"saved_objects_visualization_{vid}_overwrite=true"]
        (ref,) = vis["references"]
        assert ref == {"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern",
                       "id": rendered[1]["DATA_VIEW_ID"]}
        source = json.loads(vis["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        assert source["indexRefName"] == ref["name"] and "index" not in source
        types[vid] = json.loads(vis["attributes"]["visState"])["type"]
    assert types == {"log-level-distribution": "pie", "error-logs-timeline": "histogram",
                     "top-error-messages": "table"}


def test_every_field_a_visualization_aggregates_is_mapped_aggregatable(dev, tmp_path, rendered):
    """Terms and date histograms need keyword/date fields: each field the visualizations
    aggregate exists as such in the rendered index template."""
    template = json.loads(dev.k8s("ConfigMap", "elasticsearch-setup")["data"]["index-template.json"])
    props = template["template"]["mappings"]["properties"]

    def field_type(path):
        top, _, sub = path.partition(".")
        return props[top]["fields"][sub]["type"] if sub else props[top]["type"]

    for name, text in rendered[2].items():
        if name.startswith("visualization."):
            aggs = json.loads(json.loads(text)["attributes"]["visState"])["aggs"]
            for agg in aggs:
                if "field" in agg["params"]:
                    assert field_type(agg["params"]["field"]) in ("keyword", "date"), (name, agg)


def test_waits_for_kibana_then_gives_up(tmp_path, rendered):
    proc = run(tmp_path, rendered, STATUS_CODE="503")
    assert proc.returncode == 1 and "Kibana not available" in proc.stdout
    assert posted(tmp_path) == {}


def test_fails_when_kibana_refuses_an_object(tmp_path, rendered):
    proc = run(tmp_path, rendered, POST_CODE="400")
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
