"""The relay's time to first byte on the Gateway API entry (issue 14, docs/relay-ttfb-gateway.md):
the proxies' access log, Filebeat's collection of it and Logstash's counts, each read from
the objects the stack registers, the way its consumer reads them.

- **Envoy Gateway** ``EnvoyProxy.spec.telemetry.accessLog`` (the vendored CRD schema, plus
  the CEL rules of its ``format`` and ``sinks``, which JSON Schema does not run). Envoy
  Gateway renders ``format.json`` as Envoy's ``SubstitutionFormatString.json_format``
  (``internal/xds/translator/accesslog.go`` ``buildXdsAccessLog``), whose values are typed:
  "Values are rendered as strings, numbers, or boolean values as appropriate"
  (``api/envoy/config/core/v3/substitution_format_string.proto``), an unset value ``null``.
- **Envoy**'s command operators (``docs/root/configuration/observability/access_log/usage.rst``):
  ``%RESPONSE_DURATION%`` "from the start time to the first byte read from the upstream
  host", ``%DURATION%`` "to the last byte out", ``%UPSTREAM_CLUSTER%`` the upstream cluster
  (Envoy Gateway's ``httproute/<ns>/<route>/rule/<n>/backend/<i>``, docs/gateway-canary-metrics.md).
  Envoy itself has no time-to-headers statistic: the router charges ``upstream_rq_time`` in
  ``Filter::onUpstreamComplete`` (``source/common/router/router.cc``), at the end of the response.
- **Filebeat** autodiscover templates: a template applies when its ``condition`` holds on
  the container's metadata (libbeat ``conditions``: ``equals``, ``and``, ``not``), label
  keys with dots replaced by ``_`` (``labels.dedot``, default true).
- **Logstash**: the rendered pipeline run by ``tests/logstash`` (lscl reader + Ruby), on
  access-log lines built field by field from the rendered EnvoyProxy's format.
"""

import json

import pytest
import yaml
from logstash import harness

import validators
from components import entry as entry_mod
from support import Stack, override
from tools import mockrt, synth

ENVOY_PROXY_CRD = "gateway.envoyproxy.io/envoyproxy_v1alpha1.json"
#: The counters the SLO and the canary gate read (components/entry_metrics.py EnvoyGateway).
STABLE_ALL, STABLE_FAST = "new_api_relay_ttfb_stable_le_inf", "new_api_relay_ttfb_stable_le_10"
CANARY_ALL, CANARY_FAST = "new_api_relay_ttfb_canary_le_inf", "new_api_relay_ttfb_canary_le_10"


def access_log(stack: Stack) -> dict:
    return stack.k8s("EnvoyProxy", "new-api")["spec"]["telemetry"]["accessLog"]


def filebeat(stack: Stack) -> dict:
    return yaml.safe_load(stack.k8s("ConfigMap", "filebeat")["data"]["filebeat.yml"])


# --------------------------------------------------------------------------- the EnvoyProxy


def _cel_rules(schema: dict, *path: str) -> list[str]:
    node = schema
    for key in path:
        node = node["properties"][key] if key != "[]" else node["items"]
    return [r["message"] for r in node.get("x-kubernetes-validations", [])]


def test_envoy_proxy_writes_a_json_access_log_to_stdout_valid_for_the_crd(stack):
    """Schema-valid (vendored CRD), and the CEL rules of ``format`` and of each sink hold:
    type JSON has ``json`` and no ``text``; a File sink has ``file`` and nothing else."""
    proxy = stack.k8s("EnvoyProxy", "new-api")
    assert synth.validate_manifest(proxy) is None, synth.validate_manifest(proxy)
    schema = json.loads((synth.CRD_SCHEMAS / ENVOY_PROXY_CRD).read_text())
    settings_path = ("spec", "telemetry", "accessLog", "settings", "[]")
    assert "If AccessLogFormat type is JSON, json field needs to be set." in _cel_rules(
        schema, *settings_path, "format")
    assert "If AccessLogSink type is File, file field needs to be set." in _cel_rules(
        schema, *settings_path, "sinks", "[]")
    (setting,) = access_log(stack)["settings"]
    fmt = setting["format"]
    assert fmt["type"] == "JSON" and fmt["json"] and "text" not in fmt
    assert setting["sinks"] == [{"type": "File", "file": {"path": "/dev/stdout"}}]
    assert "type" not in setting and "matches" not in setting  # every route: no request is left out


def test_access_log_has_what_the_pipeline_reads_and_no_query_string(stack):
    """The three fields the pipeline classifies on, each a lone operator (so typed JSON
    renders durations as numbers); the path without its query (relay keys travel there)."""
    fmt = access_log(stack)["settings"][0]["format"]["json"]
    assert fmt[entry_mod.ACCESS_LOG_CLUSTER] == "%UPSTREAM_CLUSTER%"
    assert fmt[entry_mod.ACCESS_LOG_FIRST_BYTE_MS] == "%RESPONSE_DURATION%"
    assert fmt[entry_mod.ACCESS_LOG_DURATION_MS] == "%DURATION%"
    paths = [v for v in fmt.values() if "PATH" in v]
    assert paths and all(v.startswith("%REQ_WITHOUT_QUERY(") for v in paths), paths


# --------------------------------------------------------------------------- Filebeat


def _holds(condition: dict, event: dict) -> bool:
    """libbeat conditions (``libbeat/conditions``): ``equals`` (every field equal), ``and``,
    ``or``, ``not``."""
    (op, arg), = condition.items()
    if op == "equals":
        return all(event.get(field) == value for field, value in arg.items())
    if op == "and":
        return all(_holds(c, event) for c in arg)
    if op == "or":
        return any(_holds(c, event) for c in arg)
    if op == "not":
        return not _holds(arg, event)
    raise AssertionError(f"condition {op} not modelled")


def _metadata(namespace: str, labels: dict, container: str) -> dict:
    """A container's autodiscover metadata as the conditions see it (dedotted labels)."""
    event = {"kubernetes.namespace": namespace, "kubernetes.container.name": container}
    event.update({f"kubernetes.labels.{k.replace('.', '_')}": v for k, v in labels.items()})
    return event


def _proxy_labels(gateway: str, namespace: str) -> dict:
    """Labels of a Gateway's proxy pod as Envoy Gateway sets them
    (``internal/infrastructure/kubernetes/proxy/testdata/deployments/default.yaml``)."""
    return {**entry_mod.ENVOY_POD_LABELS, entry_mod.OWNING_GATEWAY_NAME_LABEL: gateway,
            entry_mod.OWNING_GATEWAY_NAMESPACE_LABEL: namespace}


def _templates(stack: Stack, event: dict) -> list:
    (provider,) = filebeat(stack)["filebeat.autodiscover"]["providers"]
    return [t for t in provider["templates"] if _holds(t["condition"], event)]


def test_filebeat_collects_the_access_log_of_the_gateways_proxies_only(stack):
    """The envoy container of the stack's Gateway's proxies: its stdout only (Envoy's own
    log is on stderr), as the ``service`` the pipeline counts; not the shutdown-manager, not
    another Gateway's proxies in the same namespace."""
    ours = _proxy_labels("new-api", "new-api")
    (template,) = _templates(stack, _metadata("envoy-gateway-system", ours, "envoy"))
    (config,) = template["config"]
    assert config["fields"]["service"] == "envoy-access-log" and config["fields_under_root"] is True
    assert config["parsers"] == [{"container": {"stream": "stdout", "format": "auto"}}]
    assert _templates(stack, _metadata("envoy-gateway-system", ours, "shutdown-manager")) == []
    assert _templates(stack, _metadata("envoy-gateway-system", _proxy_labels("other", "team-b"), "envoy")) == []
    # New API's own lines are still collected by their template
    (app,) = _templates(stack, _metadata("new-api", {"app.kubernetes.io/name": "new-api"}, "new-api"))
    assert app["config"][0]["fields"]["service"] == "new-api"


# --------------------------------------------------------------------------- Logstash


OPERATORS = {
    "%START_TIME%": lambda r: "2026-11-30T10:15:30.123Z",
    "%REQ(:METHOD)%": lambda r: "POST",
    "%REQ_WITHOUT_QUERY(X-ENVOY-ORIGINAL-PATH?:PATH)%": lambda r: r.get("path", "/v1/chat/completions"),
    "%PROTOCOL%": lambda r: "HTTP/1.1",
    "%RESPONSE_CODE%": lambda r: r.get("code", 200),
    "%RESPONSE_FLAGS%": lambda r: r.get("flags", "-"),
    "%RESPONSE_CODE_DETAILS%": lambda r: r.get("details", "via_upstream"),
    "%BYTES_RECEIVED%": lambda r: 412,
    "%BYTES_SENT%": lambda r: 18034,
    "%DURATION%": lambda r: r["duration"],
    "%RESPONSE_DURATION%": lambda r: r["first_byte"],
    "%REQ(X-REQUEST-ID)%": lambda r: "0f6c7d2e-5b1a-4a8e-9c1d-3e2f1a0b9c8d",
    "%REQ(:AUTHORITY)%": lambda r: "api.example.net",
    "%UPSTREAM_HOST%": lambda r: "10.244.1.17:3000" if r["cluster"] else None,
    "%UPSTREAM_CLUSTER%": lambda r: r["cluster"],
    "%ROUTE_NAME%": lambda r: "httproute/new-api/new-api/rule/0/match/0/api_example_net",
}


def envoy_line(fmt: dict, **request) -> str:
    """One access-log line as Envoy writes it for ``fmt`` (typed JSON: numbers for the
    durations, the status and the byte counts; ``null`` for an unset value, e.g.
    ``%RESPONSE_DURATION%`` when no upstream byte came). An operator the format uses and
    this builder does not know fails the test: a changed format needs a look here."""
    return json.dumps({key: OPERATORS[op](request) for key, op in fmt.items()}, separators=(",", ":"))


def cluster(rule: int, backend: int, route: str = "new-api/new-api") -> str:
    return f"httproute/{route}/rule/{rule}/backend/{backend}"


#: (request, counters it must pass): relay rule 0, playground rule 1, rest rule 2;
#: backendRef 0 stable, 1 canary.
CASES = [
    # a 45 s stream whose first byte came after 0.8 s: fast (its whole length does not count)
    (dict(cluster=cluster(0, 0), first_byte=800, duration=45000), {STABLE_ALL, STABLE_FAST}),
    (dict(cluster=cluster(0, 0), first_byte=12000, duration=50000), {STABLE_ALL}),
    (dict(cluster=cluster(0, 0), first_byte=10000, duration=10200), {STABLE_ALL, STABLE_FAST}),  # le is <=
    (dict(cluster=cluster(1, 1), first_byte=300, duration=9000, path="/pg/chat/completions"),
     {CANARY_ALL, CANARY_FAST}),
    (dict(cluster=cluster(0, 1), first_byte=25000, duration=60000), {CANARY_ALL}),
    # upstream timeout: no first byte; it waited its whole duration, so it is slow
    (dict(cluster=cluster(0, 1), first_byte=None, duration=3600000, code=504, flags="UT",
          details="upstream_response_timeout"), {CANARY_ALL}),
    # client gone after 1.5 s without a first byte: at least 1.5 s, within the bound
    (dict(cluster=cluster(0, 0), first_byte=None, duration=1500, code=0, flags="DC",
          details="downstream_remote_disconnect"), {STABLE_ALL, STABLE_FAST}),
    # the rest of the API, another route, Kibana's route, no route: not the relay
    (dict(cluster=cluster(2, 0), first_byte=30000, duration=30000, path="/api/status"), set()),
    (dict(cluster=cluster(0, 0, "team-b/shop"), first_byte=30000, duration=30000), set()),
    (dict(cluster="httproute/logging/kibana/rule/0/backend/0", first_byte=30000, duration=30000), set()),
    (dict(cluster=None, first_byte=None, duration=0, code=404, flags="NR", details="route_not_found"), set()),
]


@pytest.fixture(scope="module")
def ruby() -> str:
    return validators.require("ruby")


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_pipeline_counts_relay_first_bytes_per_version_and_drops_the_lines(ruby, request, name):
    """Every access line classified into the counters by version (backendRef) and by its
    first byte within 10 s, as the no-op filters' ids count them (pipeline.rb counts an
    ``id`` per event it passes, as Logstash's plugin metrics do); the line is then dropped
    (reaches no output), while New API's own lines still go through."""
    stack = request.getfixturevalue(name)
    pipeline = harness.rendered(stack)
    fmt = access_log(stack)["settings"][0]["format"]["json"]
    fields = next(t["config"][0]["fields"] for t in filebeat(stack)["filebeat.autodiscover"]["providers"][0]
                  ["templates"] if t["config"][0]["fields"]["service"] == "envoy-access-log")
    for req, expected in CASES:
        events, counts = harness.run_program(ruby, pipeline, [{"message": envoy_line(fmt, **req), **fields}])
        assert events == [None], (req, events)
        assert set(counts) == expected, (req, counts)
    # all at once: the totals the SLO reads
    events, counts = harness.run_program(
        ruby, pipeline, [{"message": envoy_line(fmt, **req), **fields} for req, _ in CASES]
        + [{"message": "not json at all", **fields},
           {"message": "[SYS] 2026/11/22 - 10:15:36 | New API v1.0.0 started | port 3000", "service": "new-api"}])
    assert counts == {STABLE_ALL: 4, STABLE_FAST: 3, CANARY_ALL: 3, CANARY_FAST: 1, "new_api_log_lines": 1}
    assert events[:-1] == [None] * (len(CASES) + 1) and events[-1]["level"] == "info"


def test_every_counter_the_rules_and_the_gate_read_is_a_filter_of_the_pipeline(monkeypatch):
    """The contract between the rendered Prometheus rules / AnalysisTemplates and the rendered
    pipeline: each ``plugin_id`` they name is the ``id`` of a filter Logstash runs (a typo or
    a threshold only one side knows would leave the SLI at NaN, silently)."""
    import re

    stack, _ = _run("dev", ("app.delivery.strategy", "canary"), monkeypatch=monkeypatch)
    pipeline = harness.rendered(stack)
    ids = {p.get("id") for p in pipeline.filters("mutate") if p.get("id")}
    rules = stack.k8s("ConfigMap", "prometheus-rules")["data"]["new-api.yml"]
    gate = json.dumps(stack.k8s("AnalysisTemplate", "new-api-relay-latency")["spec"])
    read = set(re.findall(r"new_api_relay_ttfb_[a-z0-9_]+", rules + gate))
    assert read and read <= ids, read - ids
    assert {"new_api_relay_ttfb_canary_le_10", "new_api_relay_ttfb_canary_le_inf"} <= set(
        re.findall(r"new_api_relay_ttfb_[a-z0-9_]+", gate))


# --------------------------------------------------------------------------- where it cannot exist


def _run(stack: str, *changes, monkeypatch) -> tuple[Stack, list]:
    import pulumi

    warnings: list = []
    monkeypatch.setattr(pulumi.log, "warn", lambda msg, *a, **k: warnings.append(msg))
    return Stack(mockrt.run_stack(stack, override(stack, *changes))), warnings


@pytest.mark.parametrize("changes", [
    [("logging.enabled", False)],
    [("entry.gateway.gateway.create", False), ("entry.gateway.gateway.namespace", "infra")],
    [("entry.gateway.envoyGateway", False)],
], ids=["no logging", "shared gateway", "other implementation"])
def test_without_the_access_log_counts_no_relay_slo_is_rendered_and_up_says_so(monkeypatch, changes):
    """Nothing would count the relay's first bytes: no relay recording rules, burn alerts
    or canary gate (they would never fire), no proxy log collection, and a warning."""
    stack, warnings = _run("dev", ("app.delivery.strategy", "canary"), *changes, monkeypatch=monkeypatch)
    rules = stack.k8s("ConfigMap", "prometheus-rules")["data"]["new-api.yml"]
    assert "relay" not in rules and "new_api_relay_ttfb" not in rules
    assert "new-api-relay-latency" not in {t["metadata"]["name"] for t in stack.k8s_all("AnalysisTemplate")}
    if ("logging.enabled", False) not in changes:
        assert "envoy-access-log" not in stack.k8s("ConfigMap", "filebeat")["data"]["filebeat.yml"]
        assert "new_api_relay_ttfb" not in stack.k8s("ConfigMap", "logstash")["data"]["new-api.conf"]
    assert any("relay-ttfb" in w and "docs/relay-ttfb-gateway.md" in w for w in warnings), warnings


def test_the_default_stacks_measure_the_relay_and_do_not_warn(monkeypatch):
    stack, warnings = _run("dev", ("app.delivery.strategy", "canary"), monkeypatch=monkeypatch)
    assert "new-api-relay-latency" in {t["metadata"]["name"] for t in stack.k8s_all("AnalysisTemplate")}
    assert not [w for w in warnings if "relay" in w]


def test_the_harness_fails_a_comparison_on_a_missing_field_as_logstash_does(ruby, dev):
    """Why the pipeline guards ``first_byte_ms`` before comparing it: in Logstash ``[f] <= n``
    is ``not(gt)`` and ``gt`` compares the literal with the field (logstash-core
    ``EventCondition.java``), which raises on nil. pipeline.rb models that, so an unguarded
    comparison in the rendered pipeline would fail the tests above."""
    import subprocess

    program = [{"branch": [{"cond": harness.condition("[@metadata][first_byte_ms] <= 10000", True),
                            "body": [{"name": "mutate", "attrs": {"id": "fast"}}]}]}]
    proc = subprocess.run([ruby, str(harness.HERE / "pipeline.rb")],
                          input=json.dumps({"program": program, "events": [{"message": "x"}]}),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "guard the field first" in proc.stderr
    events, counts = harness.run_program(ruby, harness.rendered(dev), [{"message": "x", "service": "envoy-access-log"}])
    assert events == [None] and counts == {}


# --------------------------------------------------------------------------- the network path


def _pod(stack: Stack, kind: str, name: str) -> tuple[str, dict]:
    obj = stack.k8s(kind, name)
    return obj["metadata"]["namespace"], obj["spec"]["template"]["metadata"]["labels"]


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _peer_admits(peer: dict, namespace: str, labels: dict) -> bool:
    ns_ok = ("namespaceSelector" not in peer or
             _selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace}))
    return ns_ok and _selects(peer.get("podSelector", {}), labels) and "ipBlock" not in peer


def _admitted(stack: Stack, src: tuple, dst: tuple, port: int) -> bool:
    """Kubernetes NetworkPolicy semantics (kubernetes.io/docs/concepts/services-networking/
    network-policies): the source's Egress policies must admit the destination pod and port,
    and the destination's Ingress policies the source (namespaceSelector and podSelector in
    one peer both apply)."""
    def side(direction: str, own: tuple, other: tuple) -> bool:
        key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
        policies = [p for p in stack.k8s_all("NetworkPolicy") if p["metadata"]["namespace"] == own[0]
                    and _selects(p["spec"]["podSelector"], own[1]) and direction in p["spec"]["policyTypes"]]
        assert policies, f"no {direction} policy selects {own}"
        return any((not rule.get("ports") or port in [p["port"] for p in rule["ports"]])
                   and any(_peer_admits(peer, *other) for peer in rule.get(peers_key, []))
                   for p in policies for rule in p["spec"].get(key, []))
    return side("Egress", src, dst) and side("Ingress", dst, src)


def test_the_access_lines_path_is_admitted_and_needs_nothing_new(stack):
    """Filebeat reads the proxies' log files on the node (read-only hostPath), so no policy
    in the proxies' namespace is involved; from there the lines take the path New API's
    take: Filebeat -> Logstash beats (5044), Prometheus -> the Logstash exporter."""
    from components import logging_config as lc
    from components.logging_alerts import LOGSTASH_EXPORTER_PORT

    filebeat_pod, logstash_pod = _pod(stack, "DaemonSet", "filebeat"), _pod(stack, "Deployment", "logstash")
    assert _admitted(stack, filebeat_pod, logstash_pod, lc.BEATS_PORT)
    assert not _admitted(stack, filebeat_pod, logstash_pod, lc.LOGSTASH_API_PORT)  # the evaluator can say no
    assert _admitted(stack, _pod(stack, "StatefulSet", "prometheus"), logstash_pod, LOGSTASH_EXPORTER_PORT)
    mounts = {m["mountPath"]: m for m in stack.k8s("DaemonSet", "filebeat")["spec"]["template"]["spec"]
              ["containers"][0]["volumeMounts"]}
    assert mounts["/var/log/containers"].get("readOnly") is True
