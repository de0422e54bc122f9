"""The rendered Logstash pipeline, read and run the way Logstash reads and runs it.

- ``rendered(stack)``: ``logstash.yml`` and ``new-api.conf`` from the ConfigMap the stack
  registers, the pipeline read by ``lscl`` under the ``config.support_escapes`` that
  ``logstash.yml`` sets (Logstash's default: false).
- ``expand``: grok's ``%{SYNTAX:semantic}`` references expanded from Logstash's pattern
  library (as shipped by pygrok, ``pygrok/patterns``) plus the plugin's
  ``pattern_definitions``, as jls-grok does: a named reference becomes a named group, an
  unnamed one a group, until none is left.
- ``run``: ``pipeline.rb`` under Debian's ``ruby``: the filters run with Ruby's own
  Regexp (Onigmo) and the ruby filter's code evaluated as logstash-filter-ruby does.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pygrok

from . import lscl

HERE = Path(__file__).resolve().parent
REFERENCE = re.compile(r"%\{(\w+)(?::([\w@\[\].-]+))?(?::(int|float))?\}")


@functools.lru_cache(maxsize=1)
def pattern_library() -> dict[str, str]:
    """Logstash's grok pattern library as pygrok ships it (``NAME regex`` per line)."""
    library: dict[str, str] = {}
    for path in sorted((Path(pygrok.__file__).parent / "patterns").iterdir()):
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, regex = line.partition(" ")
                library[name] = regex.strip()
    return library


def expand(pattern: str, definitions: dict[str, str]) -> str:
    library = {**pattern_library(), **definitions}
    for _ in range(100):
        if not REFERENCE.search(pattern):
            return pattern
        pattern = REFERENCE.sub(
            lambda m: (f"(?<{m.group(2)}>{library[m.group(1)]})" if m.group(2) else f"(?:{library[m.group(1)]})"),
            pattern)
    raise ValueError(f"grok pattern does not resolve: {pattern}")


@dataclass
class Pipeline:
    logstash_yml: str
    text: str
    escapes: bool
    sections: list

    def filters(self, name: str) -> list[lscl.Plugin]:
        return lscl.plugins(self.sections, "filter", name)


def rendered(stack) -> Pipeline:
    data = stack.k8s("ConfigMap", "logstash")["data"]
    escapes = lscl.support_escapes(data["logstash.yml"])
    return Pipeline(data["logstash.yml"], data["new-api.conf"], escapes,
                    lscl.parse(data["new-api.conf"], escapes=escapes))


def grok_op(plugin: lscl.Plugin) -> dict:
    """The grok plugin as pipeline.rb runs it: field, expanded patterns, failure tags."""
    (field, patterns), = plugin.get("match").items()
    patterns = patterns if isinstance(patterns, list) else [patterns]
    definitions = plugin.get("pattern_definitions") or {}
    keep = plugin.get("keep_empty_captures")
    return {"type": "grok", "field": field, "patterns": [expand(p, definitions) for p in patterns],
            "tag_on_failure": plugin.get("tag_on_failure") or ["_grokparsefailure"],
            "keep_empty_captures": isinstance(keep, lscl.Bareword) and keep.text == "true"}


def gsub_op(plugin: lscl.Plugin) -> dict:
    flat = plugin.get("gsub")
    assert len(flat) % 3 == 0, flat
    return {"type": "gsub", "rules": [flat[i:i + 3] for i in range(0, len(flat), 3)]}


def ruby_op(plugin: lscl.Plugin, if_field: str | None = None) -> dict:
    return {"type": "ruby", "code": plugin.get("code"), "if_field": if_field}


def run(ruby: str, ops: list[dict], events: list[dict]) -> list[dict]:
    proc = subprocess.run([ruby, str(HERE / "pipeline.rb")], input=json.dumps({"ops": ops, "events": events}),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def ruby_syntax(ruby: str, code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """``ruby -c`` on the code exactly as logstash-filter-ruby's ``register`` evaluates it."""
    script = tmp_path / "filter.rb"
    script.write_text(f"@codeblock = lambda {{ |event, &new_event_block| {code} }}\n")
    return subprocess.run([ruby, "-c", str(script)], capture_output=True, text=True, timeout=30)


# --------------------------------------------------------------------------- whole filter section

_TOKEN = re.compile(r'\s*(?:(?P<sel>(?:\[[^\]\[,]+\])+)|"(?P<str>(?:\\.|[^"\\])*)"|/(?P<re>(?:\\/|[^/])*)/'
                    r'|(?P<num>-?[0-9]+(?:\.[0-9]+)?)|(?P<op>==|!=|=~|<=|>=|<|>|!)|(?P<word>and|or))')
_COMPARE = ("==", "!=", "=~", "<=", ">=", "<", ">")


def condition(text: str, escapes: bool) -> dict:
    """The subset of Logstash conditions the pipeline uses (lscl_grammar.treetop
    ``condition``): ``[field]``, ``![field]``, ``[f] == "v"``, ``[f] != "v"``,
    ``[f] =~ /re/``, ``[f] <= 123`` (``<``, ``>``, ``>=`` too: a number literal), joined by
    ``and``/``or`` (left to right, as Logstash's grammar has no precedence between them
    here: the pipeline never mixes them)."""
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"unsupported condition: {text!r} at {pos}")
        tokens.append(m)
        pos = m.end()
    terms, joins, i = [], [], 0
    while i < len(tokens):
        t = tokens[i]
        if t.group("op") == "!":
            terms.append({"op": "not", "arg": {"op": "exists", "field": tokens[i + 1].group("sel")}})
            i += 2
        elif t.group("sel") and i + 1 < len(tokens) and tokens[i + 1].group("op") in _COMPARE:
            op, right = tokens[i + 1].group("op"), tokens[i + 2]
            if op == "=~":
                terms.append({"op": op, "left": {"field": t.group("sel")}, "regex": right.group("re")})
            elif right.group("num") is not None:
                terms.append({"op": op, "left": {"field": t.group("sel")},
                              "right": {"number": float(right.group("num"))}})
            else:
                raw = right.group("str")
                terms.append({"op": op, "left": {"field": t.group("sel")},
                              "right": {"string": lscl.process_escapes(raw) if escapes else raw}})
            i += 3
        elif t.group("sel"):
            terms.append({"op": "exists", "field": t.group("sel")})
            i += 1
        elif t.group("word"):
            joins.append(t.group("word"))
            i += 1
        else:
            raise ValueError(f"unsupported condition: {text!r}")
    if not joins:
        return terms[0]
    assert len(set(joins)) == 1, text
    return {"op": joins[0], "args": terms}


def _plain(value):
    if isinstance(value, lscl.Bareword):
        return value.text
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def program(pipeline: Pipeline) -> list:
    """The filter section as pipeline.rb's Program runs it (grok patterns expanded)."""
    def node(n):
        if isinstance(n, lscl.Branch):
            return {"branch": [{"cond": None if cond == "else" else condition(cond, pipeline.escapes),
                                "body": [node(x) for x in body]} for cond, body in n.clauses]}
        attrs = _plain(dict(n.attributes))
        if n.name == "grok":
            attrs["expanded"] = grok_op(n)["patterns"]
        return {"name": n.name, "attrs": attrs}

    return [node(n) for s in pipeline.sections if s.kind == "filter" for n in s.body]


def run_program(ruby: str, pipeline: Pipeline, events: list[dict]) -> tuple[list[dict], dict]:
    proc = subprocess.run([ruby, str(HERE / "pipeline.rb")],
                          input=json.dumps({"program": program(pipeline), "events": events}),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    return out["events"], out["counts"]
