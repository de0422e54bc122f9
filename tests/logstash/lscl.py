"""A reader of Logstash pipeline configs that takes quoted strings the way Logstash does.

The grammar is logstash-core's ``lib/logstash/compiler/lscl/lscl_grammar.treetop``
(elastic/logstash 9.x): a ``double_quoted_string`` is ``'"' ( '\\"' / !'"' . )* '"'`` and a
``single_quoted_string`` the same with ``'``; a ``regexp`` is ``'/' ( '\\/' / !'/' . )* '/'``.
The value of a string is its text between the quotes, **as written**, unless the setting
``config.support_escapes`` is true (``lib/logstash/compiler/lscl.rb``, ``class String``):
then ``LogStash::Config::StringEscape.process_escapes`` (``lib/logstash/config/
string_escape.rb``) turns ``\\"``, ``\\'`` and ``\\\\`` into the escaped character, ``\\n``,
``\\r``, ``\\t``, ``\\0`` into control characters and leaves any other ``\\x`` as it is.
``config.support_escapes`` defaults to false (``lib/logstash/environment.rb``:
``BooleanSetting.new("config.support_escapes", false)``).

This reader follows the grammar rule by rule (a PEG with ordered choice, like treetop) and
fails with the offset of the first text it cannot read, as Logstash refuses such a
pipeline. Conditions are read and kept as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml


class ConfigError(ValueError):
    pass


@dataclass
class Bareword:
    text: str


@dataclass
class Regexp:
    pattern: str


@dataclass
class Plugin:
    name: str
    attributes: list[tuple[str, Any]]

    def get(self, key: str, default=None):
        return next((v for k, v in self.attributes if k == key), default)


@dataclass
class Branch:
    clauses: list[tuple[str, list]] = field(default_factory=list)  # (condition text or "else", body)


@dataclass
class Section:
    kind: str
    body: list


def process_escapes(text: str) -> str:
    """``LogStash::Config::StringEscape.process_escapes``: gsub(/\\\\./) { process }."""
    table = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "0": "\x00"}
    return re.sub(r"\\(.)", lambda m: table.get(m.group(1), m.group(0)), text, flags=re.S)


def support_escapes(logstash_yml: str) -> bool:
    """The pipeline setting as Logstash resolves it from ``logstash.yml`` (default false).
    Logstash reads flat (``config.support_escapes: true``) and nested keys alike."""
    settings = yaml.safe_load(logstash_yml) or {}
    if "config.support_escapes" in settings:
        return settings["config.support_escapes"] is True
    return (settings.get("config") or {}).get("support_escapes") is True


class _Reader:
    def __init__(self, text: str, escapes: bool):
        self.s, self.i, self.escapes = text, 0, escapes

    # ------------------------------------------------------------- lexical rules
    def fail(self, what: str):
        line = self.s.count("\n", 0, self.i) + 1
        raise ConfigError(f"expected {what} at line {line}: {self.s[self.i:self.i + 40]!r}")

    def peek(self, lit: str) -> bool:
        return self.s.startswith(lit, self.i)

    def eat(self, lit: str) -> bool:
        if self.peek(lit):
            self.i += len(lit)
            return True
        return False

    def expect(self, lit: str):
        if not self.eat(lit):
            self.fail(repr(lit))

    def whitespace(self) -> bool:
        m = re.compile(r"[ \t\r\n]+").match(self.s, self.i)
        if m:
            self.i = m.end()
        return bool(m)

    def comment(self) -> bool:
        m = re.compile(r"(?:[ \t\r\n]*#[^\r\n]*(?:\r?\n|\Z))+").match(self.s, self.i)
        if m and m.end() > self.i:
            self.i = m.end()
            return True
        return False

    def cs(self):
        while self.comment() or self.whitespace():
            pass

    def string(self):
        for quote in ('"', "'"):
            if self.peek(quote):
                j = self.i + 1
                while j < len(self.s):
                    if self.s.startswith("\\" + quote, j):
                        j += 2
                    elif self.s[j] == quote:
                        raw = self.s[self.i + 1:j]
                        self.i = j + 1
                        return process_escapes(raw) if self.escapes else raw
                    else:
                        j += 1
                self.fail(f"closing {quote}")
        return None

    def regexp(self):
        if not self.peek("/"):
            return None
        j = self.i + 1
        while j < len(self.s):
            if self.s.startswith("\\/", j):
                j += 2
            elif self.s[j] == "/":
                pattern = self.s[self.i + 1:j]
                self.i = j + 1
                return Regexp(pattern)
            else:
                j += 1
        self.fail("closing /")

    def match(self, regex: str):
        m = re.compile(regex).match(self.s, self.i)
        if m:
            self.i = m.end()
            return m.group(0)
        return None

    def name(self):
        bare = self.match(r"[A-Za-z0-9_-]+")
        return bare if bare is not None else self.string()

    def bareword(self):
        text = self.match(r"[A-Za-z_][A-Za-z0-9_]+")
        return Bareword(text) if text is not None else None

    def number(self):
        text = self.match(r"-?[0-9]+(?:\.[0-9]*)?")
        if text is None:
            return None
        return float(text) if "." in text else int(text)

    # ------------------------------------------------------------- values
    def attempt(self, rule):
        start = self.i
        try:
            out = rule()
        except ConfigError:
            self.i = start
            return None
        if out is None:
            self.i = start
        return out

    def value(self, with_plugin: bool = True):
        for rule in ((self.plugin,) if with_plugin else ()) + (self.bareword, self.string, self.number,
                                                              self.array, self.hash):
            out = self.attempt(rule)
            if out is not None:
                return out
        self.fail("a value")

    def array(self):
        if not self.eat("["):
            return None
        self.cs()
        items = []
        if not self.peek("]"):
            items.append(self.value())
            while True:
                start = self.i
                self.cs()
                if not self.eat(","):
                    self.i = start
                    break
                self.cs()
                items.append(self.value())
        self.cs()
        self.expect("]")
        return items

    def hash(self):
        if not self.eat("{"):
            return None
        self.cs()
        entries: dict = {}
        while not self.peek("}"):
            key = self.attempt(self.number) or self.attempt(self.bareword) or self.attempt(self.string)
            if key is None:
                self.fail("a hash key")
            key = key.text if isinstance(key, Bareword) else key
            self.cs()
            self.expect("=>")
            self.cs()
            entries[key] = self.value()
            self.cs()
        self.expect("}")
        return entries

    # ------------------------------------------------------------- plugins and branches
    def plugin(self):
        start = self.i
        name = self.name()
        if name is None:
            return None
        self.cs()
        if not self.eat("{"):
            self.i = start
            return None
        self.cs()
        attrs = []
        while not self.peek("}"):
            if attrs and not self.s[self.i - 1].isspace():
                self.fail("whitespace between attributes")
            key = self.name()
            if key is None:
                self.fail("an attribute name")
            self.cs()
            self.expect("=>")
            self.cs()
            attrs.append((key, self.value()))
            self.cs()
        self.expect("}")
        return Plugin(name, attrs)

    def rvalue(self):
        for rule in (self.string, self.number, self.selector, self.array, self.method_call, self.regexp):
            out = self.attempt(rule)
            if out is not None:
                return out
        return None

    def selector(self):
        text = self.match(r"(?:\[[^\]\[,]+\])+")
        return text

    def method_call(self):
        name = self.match(r"[A-Za-z_][A-Za-z0-9_]+")
        if name is None:
            return None
        self.cs()
        if not self.eat("("):
            return None
        self.cs()
        if not self.peek(")"):
            self.rvalue()
            while True:
                start = self.i
                self.cs()
                if not self.eat(","):
                    self.i = start
                    break
                self.cs()
                if self.rvalue() is None:
                    self.fail("an rvalue")
        self.cs()
        self.expect(")")
        return name

    def expression(self):
        start = self.i
        if self.eat("("):
            self.cs()
            self.condition()
            self.cs()
            self.expect(")")
            return True
        if self.eat("!"):
            self.cs()
            if self.eat("("):
                self.cs()
                self.condition()
                self.cs()
                self.expect(")")
                return True
            if self.selector() is None:
                self.fail("a selector after !")
            return True
        if self.rvalue() is None:
            self.i = start
            self.fail("an expression")
        after = self.i
        self.cs()
        op = self.match(r"==|!=|<=|>=|<|>|=~|!~|in\b|not \s*in\b")
        if op is None:
            self.i = after
            return True
        self.cs()
        if op in ("=~", "!~"):
            if self.attempt(self.string) is None and self.attempt(self.regexp) is None:
                self.fail("a string or regexp")
        elif self.rvalue() is None:
            self.fail("an rvalue")
        return True

    def condition(self):
        self.expression()
        while True:
            start = self.i
            self.cs()
            if self.match(r"and|or|xor|nand") is None:
                self.i = start
                return
            self.cs()
            self.expression()

    def block(self) -> list:
        self.cs()
        self.expect("{")
        self.cs()
        body = []
        while not self.peek("}"):
            body.append(self.branch_or_plugin())
            self.cs()
        self.expect("}")
        return body

    def branch_or_plugin(self):
        if self.peek("if") and re.match(r"if[\s(!\[\"'/]", self.s[self.i:self.i + 3]):
            branch = Branch()
            self.expect("if")
            self.cs()
            start = self.i
            self.condition()
            branch.clauses.append((self.s[start:self.i].strip(), self.block()))
            while True:
                save = self.i
                self.cs()
                if not self.eat("else"):
                    self.i = save
                    break
                self.cs()
                if self.eat("if"):
                    self.cs()
                    start = self.i
                    self.condition()
                    branch.clauses.append((self.s[start:self.i].strip(), self.block()))
                else:
                    branch.clauses.append(("else", self.block()))
                    break
            return branch
        plugin = self.plugin()
        if plugin is None:
            self.fail("a plugin or a branch")
        return plugin

    def config(self) -> list[Section]:
        sections = []
        self.cs()
        while self.i < len(self.s):
            kind = self.match(r"input|filter|output")
            if kind is None:
                self.fail("input, filter or output")
            sections.append(Section(kind, self.block()))
            self.cs()
        return sections


def parse(text: str, *, escapes: bool) -> list[Section]:
    """The pipeline's sections, every quoted string valued as Logstash values it."""
    return _Reader(text, escapes).config()


def plugins(sections: list[Section], kind: str, name: str) -> list[Plugin]:
    """Every ``name`` plugin in the ``kind`` sections, inside branches too, in order."""
    found: list[Plugin] = []

    def walk(body):
        for node in body:
            if isinstance(node, Plugin) and node.name == name:
                found.append(node)
            elif isinstance(node, Branch):
                for _, inner in node.clauses:
                    walk(inner)

    for section in sections:
        if section.kind == kind:
            walk(section.body)
    return found
