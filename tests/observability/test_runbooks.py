"""Every alert links its runbook: ``runbook_url`` = ``<base>/<Alert>.md`` on every
alerting rule the stacks render (Prometheus's rules ConfigMaps in standalone mode, the
PrometheusRule in operator mode), and each link resolves to a file in ``docs/runbooks``
with the four sections on-call needs. Alertmanager and Grafana show the annotation as is
(Prometheus docs, "Alerting rules": annotations are templated and passed through
unchanged), so a wrong link is a dead end at the worst moment."""

import re
from pathlib import Path

import pytest
import yaml
from conftest import k8s_objects, unwrap

from components import monitoring_config as mc
from support import Stack, override
from tools import mockrt

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / mc.RUNBOOK_DIR
SECTIONS = ["## Meaning", "## Confirm", "## Mitigate", "## Escalate"]


def rendered_rule_groups(result) -> list[dict]:
    """Every rule group a stack renders, read from its objects as Prometheus or the operator
    reads them: rules files in ConfigMaps (any key whose YAML has ``groups``) and
    PrometheusRule specs."""
    groups = []
    for cm in k8s_objects(result, "ConfigMap"):
        for key, text in (cm.get("data") or {}).items():
            if key.endswith((".yml", ".yaml")) and isinstance(text, str) and "groups:" in text:
                doc = yaml.safe_load(text)
                if isinstance(doc, dict) and "groups" in doc:
                    groups += doc["groups"]
    for rule in k8s_objects(result, "PrometheusRule"):
        groups += unwrap(rule["spec"])["groups"]
    return groups


def alerts_of(result) -> list[dict]:
    return [r for g in rendered_rule_groups(result) for r in g["rules"] if "alert" in r]


@pytest.fixture(scope="module")
def operator_stack():
    return Stack(mockrt.run_stack("dev", override("dev", ("monitoring.mode", "operator"))))


@pytest.fixture(params=["dev", "prod", "operator"], scope="module")
def rendered(request, dev, prod, operator_stack):
    return {"dev": dev, "prod": prod, "operator": operator_stack}[request.param].result


def test_every_rendered_alert_links_a_runbook_file(rendered):
    alerts = alerts_of(rendered)
    assert len(alerts) >= 19
    for rule in alerts:
        url = rule.get("annotations", {}).get("runbook_url")
        assert url == f"{mc.RUNBOOK_DIR}/{rule['alert']}.md", (rule["alert"], url)
        assert (REPO / url).is_file(), f"{rule['alert']}: {url} does not exist"


def test_runbook_base_url_from_config_prefixes_every_link():
    base = "https://github.com/new-api/new-api-infra/blob/main/docs/runbooks"
    result = mockrt.run_stack("dev", override("dev", ("monitoring.runbookBaseUrl", base)))
    assert result.error is None, result.error
    for rule in alerts_of(result):
        assert rule["annotations"]["runbook_url"] == f"{base}/{rule['alert']}.md"


def alert_runbooks() -> list[Path]:
    return sorted(p for p in RUNBOOKS.glob("*.md") if re.fullmatch(r"[A-Z][A-Za-z0-9]+", p.stem) and p.stem != "README")


@pytest.mark.parametrize("path", alert_runbooks(), ids=lambda p: p.stem)
def test_alert_runbook_says_what_it_means_how_to_confirm_mitigate_escalate(path):
    text = path.read_text()
    assert text.startswith(f"# {path.stem}\n"), "title must be the alert name"
    positions = [text.find(s + "\n") for s in SECTIONS]
    assert all(p >= 0 for p in positions), f"missing sections: {[s for s, p in zip(SECTIONS, positions) if p < 0]}"
    assert positions == sorted(positions), "sections out of order"
    bodies = re.split(r"^## .*$", text, flags=re.M)[1:]
    assert all(len(b.strip()) > 40 for b in bodies), "an empty section"


def test_every_alert_runbook_belongs_to_a_rendered_alert(dev, prod, operator_stack, nginx_dev):
    # nginx_dev: alerts only the legacy ingress-nginx entry renders (the relay's time-to-first-byte SLO)
    names = {r["alert"] for s in (dev, prod, operator_stack, nginx_dev) for r in alerts_of(s.result)}
    stale = sorted(p.stem for p in alert_runbooks() if p.stem not in names)
    assert not stale, f"runbooks of alerts that no stack renders: {stale}"


@pytest.mark.parametrize("path", sorted(RUNBOOKS.glob("*.md")), ids=lambda p: p.name)
def test_runbook_links_resolve(path):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        assert (path.parent / target).resolve().is_file(), f"{path.name}: broken link {target}"


@pytest.mark.parametrize("name", ["elasticsearch-snapshot-restore", "redis-restore", "scaling-up",
                                  "zone-or-region-loss"])
def test_operational_runbooks_exist(name):
    assert (RUNBOOKS / f"{name}.md").is_file()


def test_readme_alert_table_lists_every_alert_with_its_severity(dev, prod, operator_stack):
    text = (REPO / "README.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (\w+) \| ([^|]+) \| \[", text, flags=re.M)}
    for s in (dev, prod, operator_stack):
        for rule in alerts_of(s.result):
            assert rule["alert"] in rows, f"README alert table lacks {rule['alert']}"
            assert rule["labels"]["severity"] in rows[rule["alert"]], rule["alert"]
