"""Alerts reach a human: e-mail authenticates where the server demands it, prod cannot be
deployed without a receiver that notifies, and in operator mode the AlertmanagerConfig
routes the stack's alerts the way the Prometheus Operator builds Alertmanager's config.

Consumers' rules, read in their source:

- Alertmanager ``notify/email/email.go`` (``Email.auth``): "If no username is set, keep
  going without authentication" -- no ``auth_username`` means no SMTP AUTH, whatever the
  password; a submission port (587, 465; RFC 6409 §4.3, RFC 8314) refuses such a sender
  (Gmail: ``530 5.7.0 Authentication Required``).
- prometheus-operator ``pkg/alertmanager/amcfg.go``: each AlertmanagerConfig's route is
  converted with receivers renamed ``<namespace>/<name>/<receiver>`` (``convertRoute``,
  ``makeNamespacedString``), processed by the enforcer of the Alertmanager's
  ``alertmanagerConfigMatcherStrategy`` (``getEnforcer``: ``OnNamespace``, the default,
  appends ``namespace="<the object's namespace>"`` to the route and its inhibit rules;
  ``None`` adds nothing; ``OnNamespaceExceptForAlertmanagerNamespace`` adds nothing for
  objects in the Alertmanager's namespace), given ``continue: true`` and prepended to the
  root route's children.
"""

import subprocess

import pytest
import yaml
from conftest import ALL_RECEIVERS, k8s_object, k8s_objects, pod_spec, run_monitoring, unwrap

from components import monitoring_config as mc
from components.monitoring import MATCHER_STRATEGY_ANNOTATION
from support import DELETE, Stack, override
from tools import mockrt


def am_config(result) -> dict:
    text = k8s_object(result, "Secret", "alertmanager-config", "monitoring")["stringData"]["alertmanager.yml"]
    return yaml.safe_load(text)


# --------------------------------------------------------------------------- e-mail auth


def test_prod_alert_email_authenticates_on_the_submission_port(prod, amtool, tmp_path):
    """The rendered alertmanager.yml of prod: every e-mail config sent to a submission port
    names a user and a password file, and that file is a key of the credentials Secret the
    Alertmanager pods mount at that path (else Alertmanager skips AUTH or cannot read it)."""
    cfg = am_config(prod.result)
    port = int(cfg["global"]["smtp_smarthost"].rsplit(":", 1)[1])
    assert port in mc.SUBMISSION_PORTS
    emails = [e for r in cfg["receivers"] for e in r.get("email_configs", [])]
    assert emails, "prod has no e-mail receiver"
    sts = k8s_object(prod.result, "StatefulSet", "alertmanager")
    mounts = {m["mountPath"]: m["name"] for m in pod_spec(sts)["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(sts)["volumes"]}
    secret_name = volumes[mounts[mc.ALERTMANAGER_SECRETS_DIR]]["secret"]["secretName"]
    creds = k8s_object(prod.result, "Secret", secret_name, "monitoring")["stringData"]
    for email in emails:
        assert email.get("auth_username"), "no auth_username: Alertmanager sends without SMTP AUTH"
        directory, key = email["auth_password_file"].rsplit("/", 1)
        assert directory == mc.ALERTMANAGER_SECRETS_DIR and creds.get(key), email["auth_password_file"]
    path = tmp_path / "alertmanager.yml"
    path.write_text(mc.dump(cfg))
    out = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


BAD = [
    ("prod-email-without-username", "prod", [("monitoring.alerting.email.username", DELETE)],
     ["new-api:monitoring.alerting.email.username = null", "smtp.gmail.com:587", "submission port",
      "notify/email/email.go", "new-api:alertSmtpPassword"]),
    ("prod-email-without-password", "prod", [("alertSmtpPassword", DELETE)],
     ["new-api:alertSmtpPassword = null", "submission port", "pulumi config set --secret new-api:alertSmtpPassword"]),
    ("dev-email-on-465-without-auth", "dev",
     [("monitoring.alerting", {"email": {"to": ["oncall@new-api.net"], "from": "am@new-api.net",
                                         "smarthost": "smtp.example.net:465"}})],
     ["new-api:monitoring.alerting.email.username", "new-api:alertSmtpPassword", "smtp.example.net:465"]),
    ("prod-without-any-receiver", "prod", [("monitoring.alerting", {}), ("alertSmtpPassword", DELETE)],
     ["new-api:monitoring.alerting = null", "prod has no receiver that can notify"]),
    ("operator-default-matcher-strategy", "dev",
     [("monitoring.mode", "operator"), ("monitoring.operator.alertmanagerConfigMatcherStrategy", "OnNamespace")],
     ["new-api:monitoring.operator.alertmanagerConfigMatcherStrategy = \"OnNamespace\"", "amcfg.go"]),
]


@pytest.mark.parametrize("stack,changes,expected", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_undeliverable_alerting_fails_before_anything_is_registered(stack, changes, expected):
    result = mockrt.run_stack(stack, override(stack, *changes))
    assert result.error is not None, "the undeliverable alerting config was accepted"
    message = str(result.error)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} missing from:\n{message}"
    assert result.registrations == []


def test_prod_with_only_a_slack_receiver_deploys():
    changes = override("prod", ("monitoring.alerting", {}), ("alertSmtpPassword", DELETE))
    changes["alertSlackWebhook"] = {"secure": "AQICAHhslack"}
    result = mockrt.run_stack("prod", changes)
    assert result.error is None, result.error


def test_a_relay_without_auth_is_accepted():
    """Port 25 relays (inside a VPC) may accept unauthenticated mail: not refused."""
    changes = override("dev", ("monitoring.alerting", {"email": {
        "to": ["oncall@new-api.net"], "from": "am@new-api.net", "smarthost": "relay.internal.new-api.net:25"}}))
    result = mockrt.run_stack("dev", changes)
    assert result.error is None, result.error
    cfg = am_config(result)
    assert cfg["global"]["smtp_smarthost"] == "relay.internal.new-api.net:25"


@pytest.mark.parametrize("receivers,extra,expected", [
    ({"smtp_username": ""}, {}, "receivers.smtp_username"),
    ({}, {"smtp_password": None}, "smtp_password"),
])
def test_component_refuses_unauthenticated_submission(receivers, extra, expected):
    result = run_monitoring(receivers={**ALL_RECEIVERS["receivers"], **receivers}, **extra)
    assert isinstance(result.error, ValueError) and expected in str(result.error), result.error
    assert not k8s_objects(result, "Secret")


def test_component_with_require_receiver_fails_without_one():
    result = run_monitoring(receivers={}, smtp_password=None, slack_webhook_url=None, webhook_url=None,
                            require_receiver=True)
    assert isinstance(result.error, ValueError) and "no receiver can notify" in str(result.error)


# --------------------------------------------------------------------------- operator mode

#: kube-prometheus-stack's default Alertmanager config (values.yaml ``alertmanager.config``):
#: the root route, into which the operator prepends every AlertmanagerConfig's route.
KPS_ROOT = {"receiver": "null", "group_by": ["namespace"],
            "routes": [{"receiver": "null", "matchers": ['alertname = "Watchdog"']}]}


def operator_alertmanager_yml(amc: dict, strategy: str, alertmanager_namespace: str) -> dict:
    """The alertmanager.yml the operator generates from one AlertmanagerConfig (amcfg.go)."""
    ns, name = amc["metadata"]["namespace"], amc["metadata"]["name"]
    spec = amc["spec"]

    def named(receiver: str) -> str:
        return f"{ns}/{name}/{receiver}"

    def matchers(items: list) -> list:
        return [f'{m["name"]}{m.get("matchType", "=")}"{m["value"]}"' for m in items or []]

    def route(r: dict) -> dict:
        out = {"receiver": named(r["receiver"])}
        for key, target in (("groupBy", "group_by"), ("groupWait", "group_wait"),
                            ("groupInterval", "group_interval"), ("repeatInterval", "repeat_interval"),
                            ("continue", "continue")):
            if key in r:
                out[target] = r[key]
        if r.get("matchers"):
            out["matchers"] = matchers(r["matchers"])
        if r.get("routes"):
            out["routes"] = [route(c) for c in r["routes"]]
        return out

    top = route(spec["route"])
    inhibits = [{"source_matchers": matchers(i.get("sourceMatch")), "target_matchers": matchers(i.get("targetMatch")),
                 "equal": i.get("equal", [])} for i in spec.get("inhibitRules", [])]
    enforce = strategy == "OnNamespace" or (strategy == "OnNamespaceExceptForAlertmanagerNamespace"
                                            and ns != alertmanager_namespace)
    if enforce:  # namespaceEnforcer.processRoute / processInhibitRule
        top.setdefault("matchers", []).append(f'namespace="{ns}"')
        for i in inhibits:
            i["source_matchers"].append(f'namespace="{ns}"')
            i["target_matchers"].append(f'namespace="{ns}"')
    top["continue"] = True  # continueToNextRoute
    root = {**KPS_ROOT, "routes": [top, *KPS_ROOT["routes"]]}
    receivers = [{"name": "null"}] + [{"name": named(r["name"])} for r in spec["receivers"]]
    return {"route": root, "inhibit_rules": inhibits, "receivers": receivers}


@pytest.fixture(scope="module")
def operator_stack():
    return Stack(mockrt.run_stack("dev", override("dev", ("monitoring.mode", "operator"))))


def amtool_receivers(amtool, path, *labels) -> str:
    out = subprocess.run([amtool, "config", "routes", "test", f"--config.file={path}", *labels],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip()


@pytest.mark.parametrize("labels,receiver", [
    (["alertname=ApplicationDown", "severity=critical", "namespace=new-api", "service=new-api"],
     "monitoring/new-api/critical-alerts"),
    (["alertname=HighCPUUsage", "severity=warning", "service=node"], "monitoring/new-api/warning-alerts"),
    (["alertname=NewApiSLOLevel1Observe", "severity=info", "namespace=new-api", "service=new-api"],
     "monitoring/new-api/default"),
    # Another team's alert is not ours to e-mail.
    (["alertname=KubePodCrashLooping", "severity=critical", "namespace=payments"], "null"),
])
def test_operator_alertmanager_routes_the_stacks_alerts(operator_stack, amtool, tmp_path, labels, receiver):
    """Route the rendered AlertmanagerConfig as the operator would, under the matcher strategy
    the object declares as its prerequisite (the operator's default when it declares none)."""
    amc = next(o for o in operator_stack.k8s_all("AlertmanagerConfig"))
    strategy = (amc["metadata"].get("annotations") or {}).get(MATCHER_STRATEGY_ANNOTATION, "OnNamespace")
    cfg = operator_alertmanager_yml(amc, strategy, alertmanager_namespace="monitoring")
    path = tmp_path / "alertmanager.yml"
    path.write_text(mc.dump(cfg))
    check = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert amtool_receivers(amtool, path, *labels) == receiver


def test_operator_default_strategy_would_route_nothing(operator_stack, amtool, tmp_path):
    """Why the prerequisite exists: under OnNamespace the app's alert reaches no receiver of ours."""
    amc = next(o for o in operator_stack.k8s_all("AlertmanagerConfig"))
    path = tmp_path / "alertmanager.yml"
    path.write_text(mc.dump(operator_alertmanager_yml(amc, "OnNamespace", "monitoring")))
    assert amtool_receivers(amtool, path, "alertname=ApplicationDown", "severity=critical",
                            "namespace=new-api") == "null"


def test_operator_route_names_every_alert_of_the_stack(operator_stack):
    amc = next(o for o in operator_stack.k8s_all("AlertmanagerConfig"))
    rule = next(o for o in operator_stack.k8s_all("PrometheusRule"))
    ours = amc["spec"]["route"]["matchers"][0]
    assert ours["name"] == "alertname" and ours["matchType"] == "=~"
    assert set(ours["value"].split("|")) == set(mc.alert_names(unwrap(rule["spec"])))
