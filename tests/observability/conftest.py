"""Fixtures of the observability tests: the exact texts the components deploy, taken
from mock runs of the real program and components, plus the real validators."""

import sys
from pathlib import Path

import pulumi
import pytest

REPO = Path(__file__).resolve().parents[2]
for path in (REPO, REPO / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tools import mockrt  # noqa: E402
import validators  # noqa: E402

SCHEMAS = REPO / "tests" / "schemas" / "crds"


def unwrap(value):
    """Plain values of a registration's inputs (secret envelopes opened)."""
    if mockrt.is_secret_envelope(value):
        return unwrap(value.get("value"))
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def k8s_objects(result, kind: str) -> list[dict]:
    return [unwrap(r.inputs) for r in result.registrations
            if r.type.startswith("kubernetes:") and r.type.endswith(f":{kind}")]


def k8s_object(result, kind: str, name: str, namespace=None) -> dict:
    for obj in k8s_objects(result, kind):
        meta = obj.get("metadata", {})
        if meta.get("name") == name and (namespace is None or meta.get("namespace") == namespace):
            return obj
    raise KeyError(f"no {kind} {namespace}/{name}")


def registration(result, kind: str, name: str):
    for r in result.registrations:
        if r.type.endswith(f":{kind}") and unwrap(r.inputs).get("metadata", {}).get("name") == name:
            return r
    raise KeyError(f"no {kind} {name}")


def rendered_rules(result) -> dict:
    """The rule groups as the mode's Prometheus reads them: the PrometheusRule's spec in
    operator mode, else the standalone rules file (ConfigMap ``prometheus-rules``)."""
    import yaml

    rules = k8s_objects(result, "PrometheusRule")
    if rules:
        return unwrap(rules[0]["spec"])
    return yaml.safe_load(k8s_object(result, "ConfigMap", "prometheus-rules", "monitoring")["data"]["new-api.yml"])


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def tool(name: str) -> str:
    return validators.require(name)


@pytest.fixture(scope="session")
def promtool() -> str:
    return tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return tool("amtool")


ALL_RECEIVERS = {
    "namespace": "monitoring", "agent_namespace": "node-agents", "app_namespace": "new-api",
    "ingress_namespace": "ingress-nginx", "cluster_name": "new-api-test", "adapter": True,
    "receivers": {"email_to": ["oncall@new-api.net", "sre@new-api.net"], "email_from": "alertmanager@new-api.net",
                  "smarthost": "smtp.gmail.com:587", "smtp_username": "alertmanager", "slack_channel": "#alerts"},
}


def run_monitoring(**overrides):
    from components.monitoring import Monitoring

    def program():
        args = {**ALL_RECEIVERS,
                "smtp_password": pulumi.Output.secret("smtp-password-value"),
                "slack_webhook_url": pulumi.Output.secret("https://hooks.slack.com/services/T000/B000/XXXX"),
                "webhook_url": pulumi.Output.secret("https://oapi.dingtalk.com/robot/send?access_token=abc"),
                **overrides}
        Monitoring("monitoring", args)

    return mockrt.run(program)


@pytest.fixture(scope="session")
def full_monitoring():
    """Standalone Monitoring with every receiver (credentials as secret Outputs) and the adapter."""
    result = run_monitoring()
    assert result.error is None, result.error
    return result


@pytest.fixture(scope="session")
def operator_monitoring():
    result = run_monitoring(mode="operator", operator_prometheus_url="http://prom.monitoring.svc:9090",
                            operator_alertmanager_url="http://am.monitoring.svc:9093")
    assert result.error is None, result.error
    return result
