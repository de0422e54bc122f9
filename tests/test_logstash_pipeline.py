"""The Logstash pipeline as Logstash reads and runs it (issue 12 defect 1, issue 13 item 5).

Everything here starts from the rendered ConfigMap the stack registers (``logstash.yml``
and ``new-api.conf``), read by ``tests/logstash/lscl.py``: logstash-core's
``lscl_grammar.treetop`` string rules, valued under the ``config.support_escapes`` that
``logstash.yml`` sets (default false, ``logstash-core/lib/logstash/environment.rb``). Then
the real engines run:

- each ``ruby`` filter's code through ``ruby -c`` wrapped as logstash-filter-ruby's
  ``register`` evals it (``lib/logstash/filters/ruby.rb``), and run on events;
- each grok pattern expanded from Logstash's pattern library (pygrok ships it) and
  compiled by Ruby's Regexp (Onigmo; Logstash's grok runs on Oniguruma's Java port), then
  matched against New API's lines formatted exactly as ``middleware/logger.go``,
  ``logger/logger.go`` and ``common/sys_log.go`` write them (NEWAPI-CONTRACT.md §5);
- the credential mask (``mutate { gsub }``) as logstash-filter-mutate runs it:
  ``value.gsub(Regexp.new(needle), replacement)`` (``lib/logstash/filters/mutate.rb``).
"""

import json

import pytest
import validators
from logstash import harness, lscl
from logstash.lines import LINES, gin


@pytest.fixture(scope="module")
def ruby() -> str:
    return validators.require("ruby")


@pytest.fixture(params=["dev", "prod"], scope="module")
def pipeline(request) -> harness.Pipeline:
    return harness.rendered(request.getfixturevalue(request.param))


def grok_ops(pipeline) -> list[dict]:
    return [harness.grok_op(g) for g in pipeline.filters("grok")]


def parse(ruby, pipeline, *lines) -> list[dict]:
    return harness.run(ruby, grok_ops(pipeline), [{"message": line} for line in lines])


# --------------------------------------------------------------------------- reading


def test_logstash_reads_the_pipeline_and_its_escape_setting(pipeline):
    """The whole pipeline reads under Logstash's grammar; its strings are valued under the
    setting logstash.yml gives (the reader applies StringEscape only when it is true)."""
    assert [s.kind for s in pipeline.sections] == ["input", "filter", "output"]
    assert len(pipeline.filters("grok")) == 1 and len(pipeline.filters("ruby")) == 2  # + the relay's


def test_the_reader_values_strings_as_logstash_does():
    """The reader itself, on the cases lscl.rb / string_escape.rb define."""
    conf = r'filter { mutate { a => "x\\y\"z" b => ' + "'q\\'r'" + r' c => "\d\n" } }'
    raw = lscl.plugins(lscl.parse(conf, escapes=False), "filter", "mutate")[0]
    assert (raw.get("a"), raw.get("b"), raw.get("c")) == (r'x\\y\"z', r"q\'r", r"\d\n")
    esc = lscl.plugins(lscl.parse(conf, escapes=True), "filter", "mutate")[0]
    assert (esc.get("a"), esc.get("b"), esc.get("c")) == ('x\\y"z', "q'r", "\\d\n")
    assert lscl.support_escapes("http.host: 0.0.0.0\n") is False
    with pytest.raises(lscl.ConfigError):
        lscl.parse('filter { mutate { a => "open } }', escapes=False)


# --------------------------------------------------------------------------- ruby filter


def test_ruby_filter_code_is_valid_ruby_as_logstash_reads_it(ruby, pipeline, tmp_path):
    """``ruby -c`` on ``lambda { |event, &new_event_block| <code> }`` (the plugin's register)."""
    for plugin in pipeline.filters("ruby"):
        proc = harness.ruby_syntax(ruby, plugin.get("code"), tmp_path)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("latency,ms", [("1.234567ms", 1.235), ("345.678µs", 0.346), ("1m2.5s", 62500.0),
                                        ("2.5s", 2500.0), ("120ns", 0.0), ("1h0m0.5s", 3600500.0)])
def test_ruby_filter_converts_go_durations_to_milliseconds(ruby, pipeline, latency, ms):
    """The rendered code run for real on an event holding a Go duration (``%13v``)."""
    (plugin,) = [p for p in pipeline.filters("ruby") if "latency" in p.get("code")]
    (event,) = harness.run(ruby, [harness.ruby_op(plugin)], [{"latency": latency}])
    assert "tags" not in event, event
    assert event["latency_ms"] == pytest.approx(ms)


# --------------------------------------------------------------------------- grok


def test_gin_access_line_with_right_aligned_fields(ruby, pipeline):
    (event,) = parse(ruby, pipeline, LINES["gin"])
    assert {k: v for k, v in event.items() if k != "message"} == {
        "timestamp": "2026/11/22 - 10:15:30", "route_tag": "relay",
        "request_id": "20261122101530123456789abcdefgh", "status": "200", "latency": "1.234567ms",
        "client_ip": "10.244.0.17", "method": "POST", "path": "/v1/chat/completions"}


def test_gin_line_without_request_id_and_microsecond_latency(ruby, pipeline):
    """An empty request id is an empty capture: grok leaves it unset (keep_empty_captures false)."""
    (event,) = parse(ruby, pipeline, LINES["gin_no_request_id"])
    assert "request_id" not in event
    assert (event["latency"], event["client_ip"], event["method"], event["path"]) == (
        "345.678µs", "127.0.0.1", "GET", "/api/status")


def test_gin_line_with_minutes_and_ipv6(ruby, pipeline):
    (event,) = parse(ruby, pipeline, LINES["gin_slow_ipv6"])
    assert (event["status"], event["latency"], event["client_ip"], event["method"]) == (
        "502", "1m2.345678s", "2001:db8::1", "POST")


@pytest.mark.parametrize("method", ["GET", "OPTIONS", "DELETE"])
def test_gin_method_padding_is_read_for_every_method_width(ruby, pipeline, method):
    (event,) = parse(ruby, pipeline, gin("api", "r1", 204, "12.5µs", "192.168.100.200", method, "/api/x"))
    assert (event["method"], event["client_ip"], event["status"]) == (method, "192.168.100.200", "204")


@pytest.mark.parametrize("kind,level,request_id,message", [
    ("info", "INFO", "20261122101533abc", "user 1 | channel 3 | model gpt-4o"),
    ("err", "ERR", "SYSTEM", "failed to sync channel: context deadline exceeded"),
    ("warn", "WARN", "SYSTEM", "TRUSTED_PROXIES is not set"),
])
def test_application_lines_keep_request_id_and_pipes_in_message(ruby, pipeline, kind, level, request_id, message):
    (event,) = parse(ruby, pipeline, LINES[kind])
    assert (event["level"], event["request_id"], event["log_message"]) == (level, request_id, message)
    assert "route_tag" not in event


@pytest.mark.parametrize("kind,level", [("sys", "SYS"), ("fatal", "FATAL")])
def test_system_lines_have_no_request_id(ruby, pipeline, kind, level):
    (event,) = parse(ruby, pipeline, LINES[kind])
    assert event["level"] == level and "request_id" not in event and event["timestamp"] == (
        "2026/11/22 - 10:15:36" if kind == "sys" else "2026/11/22 - 10:15:37")


def test_other_lines_are_tagged_not_misparsed(ruby, pipeline):
    (panic, debug) = parse(ruby, pipeline, "goroutine 1 [running]:", "[GIN-debug] GET /api/status --> handler")
    for event in (panic, debug):
        assert event["tags"] == ["_newapi_grokfailure"] and set(event) == {"message", "tags"}


# --------------------------------------------------------------------------- credentials (issue 13 #5)

KEY = "sk-" + "AbC123xYz9" * 4 + "QwEr1234"  # New API's key shape: sk- and 48 alphanumerics


def mask_then_grok(ruby, pipeline, *lines) -> list[dict]:
    """The first filter of the rendered pipeline (the mask), then grok, as Logstash orders them."""
    first = next(s for s in pipeline.sections if s.kind == "filter").body[0]
    assert isinstance(first, lscl.Plugin) and first.name == "mutate" and first.get("gsub"), first
    return harness.run(ruby, [harness.gsub_op(first), *grok_ops(pipeline)],
                       [{"message": line, "event": {"original": line}} for line in lines])


@pytest.mark.parametrize("query", [
    f"?key={KEY}",                       # Gemini routes: middleware/auth.go reads c.Query("key")
    f"?alt=sse&KEY={KEY}",               # Go's url.Values keys are case-sensitive, logs are not
    f"?key={KEY[3:]}&alt=sse",            # the key without its sk- prefix is accepted too
])
def test_relay_key_in_the_query_string_is_masked_before_indexing(ruby, pipeline, query):
    line = gin("relay", "r1", 200, "812.3ms", "203.0.113.9", "POST",
               f"/v1beta/models/gemini-2.0-flash:streamGenerateContent{query}")
    (event,) = mask_then_grok(ruby, pipeline, line)
    secret = KEY[3:]
    assert secret not in event["message"] and secret not in event["event"]["original"]
    assert secret not in event["path"] and "[masked]" in event["path"]
    assert event["path"].startswith("/v1beta/models/gemini-2.0-flash:streamGenerateContent?")
    assert (event["status"], event["method"]) == ("200", "POST")
    if "alt=sse" in query:
        assert "alt=sse" in event["path"]


@pytest.mark.parametrize("path", ["/api/oauth/wechat?code=0a1B2c3D4e", "/api/oauth/github?code=abc123&state=xyz",
                                  "/api/verify?token=t0ken-v4lue"])
def test_login_codes_and_tokens_in_the_query_string_are_masked(ruby, pipeline, path):
    (event,) = mask_then_grok(ruby, pipeline, gin("api", "r2", 302, "3.2ms", "203.0.113.9", "GET", path))
    value = path.split("=")[1].split("&")[0]
    assert value not in event["message"] and value not in event["path"]


def test_a_key_quoted_in_an_application_line_is_masked(ruby, pipeline):
    line = f"[ERR] 2026/11/22 - 10:15:34 | 20261122abc | invalid token {KEY} for channel 3"
    (event,) = mask_then_grok(ruby, pipeline, line)
    assert KEY[3:] not in event["message"] and event["log_message"] == "invalid token sk-[masked] for channel 3"


def test_lines_without_credentials_pass_unchanged(ruby, pipeline):
    lines = list(LINES.values()) + [gin("api", "r3", 200, "1ms", "10.0.0.1", "GET", "/api/log/?p=1&keyword=x")]
    events = mask_then_grok(ruby, pipeline, *lines)
    assert [e["message"] for e in events] == lines


# --------------------------------------------------------------------------- the whole filter section

def test_the_filter_section_turns_new_api_lines_into_indexed_events(ruby, pipeline):
    """Every filter of the rendered section, in order, with its conditions (pipeline.rb's
    Program): levels normalised, app messages unwrapped, status an integer, latency in ms,
    timestamps in UTC, the key masked; and the counting filters the log alerts read
    (components/logging_alerts.py) see every New API line and only its error lines."""
    lines = [*LINES.values(), gin("relay", "r9", 200, "2.5s", "203.0.113.9", "POST",
                                  f"/v1beta/models/gemini-pro:generateContent?key={KEY}")]
    events, counts = harness.run_program(ruby, pipeline, [{"message": m, "service": "new-api"} for m in lines]
                                         + [{"message": "[ERR] from another app", "service": "redis"}])
    by_kind = dict(zip([*LINES, "gin_key"], events))
    assert {k: e.get("level") for k, e in by_kind.items()} == {
        "gin": "info", "gin_no_request_id": "info", "gin_slow_ipv6": "info", "info": "info", "err": "error",
        "warn": "warn", "sys": "info", "fatal": "fatal", "gin_key": "info"}
    assert counts == {"new_api_log_lines": len(lines), "new_api_log_errors": 2}
    gin_event = by_kind["gin"]
    assert (gin_event["status"], gin_event["latency_ms"], gin_event["log_type"]) == (200, 1.235, "access")
    assert gin_event["@timestamp"] == "2026-11-22T10:15:30Z" and "timestamp" not in gin_event
    assert by_kind["err"]["message"] == "failed to sync channel: context deadline exceeded"
    assert by_kind["err"]["log_type"] == "app" and "latency" not in gin_event
    assert KEY[3:] not in json.dumps(by_kind["gin_key"]) and by_kind["gin_key"]["latency_ms"] == 2500.0
    assert events[-1]["environment"] and "level" not in events[-1]  # other services: not parsed
