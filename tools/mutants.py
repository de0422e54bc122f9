"""Mutation testing for one file: does the suite notice a realistic bug?

Each mutant is one small change to the file's syntax tree, the kind of slip a reviewer
misses: a comparison operator swapped (``<`` / ``<=``, ``==`` / ``!=``, ``in`` / ``not in``),
``and`` / ``or`` swapped, a ``not`` dropped, an arithmetic operator swapped or a term dropped
(``a + b`` -> ``a``), a number changed, ``True`` / ``False`` swapped, or a condition removed
(``if c:`` / ``c if .. else`` / a comprehension filter forced to ``True`` or ``False``).
Every mutant is written into a private copy of the repository and the chosen tests run
there with ``pytest -x``; a mutant is *killed* when they fail (or time out) and *survives*
when they pass. Survivors are printed as diffs: each is a missing test, or an equivalent
change (then mark the line ``# pragma: no mutate`` and say why).

    python -m tools.mutants components/app.py --tests tests/test_app.py
    python -m tools.mutants components/app.py --function peak_serving_pods --tests tests/test_config.py
    make mutants FILE=components/app.py TESTS="tests/test_app.py" [FUNC=peak_serving_pods] [LINES=200-260]

Not part of ``make test``: a run costs one test run per mutant. Narrow it with
``--function`` / ``--lines`` and with the tests that cover the file. Docstrings, string
constants, f-strings and type annotations are not mutated.
"""

from __future__ import annotations

import argparse
import ast
import copy
import difflib
import os
import queue
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

NOT_COPIED = {".git", ".venv", "build", "__pycache__", ".pytest_cache", "node_modules", ".mypy_cache"}
PRAGMA = "pragma: no mutate"

COMPARE_SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
                 ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
                 ast.Is: ast.IsNot, ast.IsNot: ast.Is}
BINOP_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
               ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult}
SYMBOLS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
           ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.Add: "+",
           ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
           ast.And: "and", ast.Or: "or"}


@dataclass
class Mutant:
    line: int
    what: str
    source: str
    diff: str = ""
    status: str = ""
    seconds: float = 0.0
    output: str = field(default="", repr=False)


def _is_stringy(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)))


class _Sites(ast.NodeVisitor):
    """Collects (node, replacement node, description) for every mutation site."""

    def __init__(self) -> None:
        self.sites: list[tuple[ast.AST, ast.AST, str]] = []
        self._skip: set[int] = set()

    def _skip_subtree(self, node: Optional[ast.AST]) -> None:
        if node is not None:
            self._skip.update(id(n) for n in ast.walk(node))

    def visit(self, node: ast.AST) -> None:
        if id(node) in self._skip:
            return
        super().visit(node)

    # ---- what is never mutated
    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:  # f-string positions are unreliable before 3.12
        self._skip_subtree(node)

    def _body_docstring(self, body: list) -> None:
        if body and isinstance(body[0], ast.Expr) and _is_stringy(body[0].value):
            self._skip_subtree(body[0])

    def visit_Module(self, node: ast.Module) -> None:
        self._body_docstring(node.body)
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._body_docstring(node.body)
        for stmt in node.body:  # TypedDict/dataclass fields: the annotation is a type, the string after it a docstring
            if isinstance(stmt, ast.Expr) and _is_stringy(stmt.value):
                self._skip_subtree(stmt)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._body_docstring(node.body)
        self._skip_subtree(node.returns)
        for arg in ast.walk(node.args):
            if isinstance(arg, ast.arg):
                self._skip_subtree(arg.annotation)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._skip_subtree(node.annotation)
        self.generic_visit(node)

    # ---- mutation sites
    def _add(self, node: ast.AST, new: ast.AST, what: str) -> None:
        self.sites.append((node, new, what))

    def visit_Compare(self, node: ast.Compare) -> None:
        for i, op in enumerate(node.ops):
            swap = COMPARE_SWAPS.get(type(op))
            if swap:
                new = copy.deepcopy(node)
                new.ops[i] = swap()
                self._add(node, new, f"{SYMBOLS[type(op)]} -> {SYMBOLS[swap]}")
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if not (_is_stringy(node.left) or _is_stringy(node.right)):
            swap = BINOP_SWAPS.get(type(node.op))
            if swap:
                new = copy.deepcopy(node)
                new.op = swap()
                self._add(node, new, f"{SYMBOLS[type(node.op)]} -> {SYMBOLS[swap]}")
            if isinstance(node.op, (ast.Add, ast.Sub)):
                self._add(node, copy.deepcopy(node.left), f"drop '{SYMBOLS[type(node.op)]} {ast.unparse(node.right)}'")
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        new = copy.deepcopy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        self._add(node, new, f"{SYMBOLS[type(node.op)]} -> {SYMBOLS[type(new.op)]}")
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            self._add(node, copy.deepcopy(node.operand), "drop 'not'")
        elif isinstance(node.op, ast.USub) and not isinstance(node.operand, ast.Constant):
            self._add(node, copy.deepcopy(node.operand), "drop unary '-'")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            self._add(node, ast.Constant(not value), f"{value} -> {not value}")
        elif isinstance(value, int):
            self._add(node, ast.Constant(value + 1), f"{value} -> {value + 1}")
        elif isinstance(value, float):
            new = value * 2 if value else 1.0
            self._add(node, ast.Constant(new), f"{value} -> {new}")

    def _condition(self, node: ast.AST, test: ast.AST, where: str) -> None:
        for forced in (True, False):
            self._add(test, ast.Constant(forced), f"{where} condition -> {forced}")

    def visit_If(self, node: ast.If) -> None:
        self._condition(node, node.test, "if")
        self.generic_visit(node)

    def visit_While(self, node: ast.While) -> None:
        self._add(node.test, ast.Constant(False), "while condition -> False")
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self._condition(node, node.test, "conditional expression")
        self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        for test in node.ifs:
            self._add(test, ast.Constant(True), "comprehension filter -> True")
        self.generic_visit(node)


def _line_offsets(data: bytes) -> list[int]:
    offsets, pos = [0], 0
    for line in data.splitlines(keepends=True):
        pos += len(line)
        offsets.append(pos)
    return offsets


def _pragma_lines(text: str) -> set[int]:
    return {i for i, line in enumerate(text.splitlines(), 1) if PRAGMA in line}


def _selected_lines(tree: ast.Module, function: Optional[str], lines: Optional[tuple[int, int]]) -> Optional[set[int]]:
    if function is None and lines is None:
        return None
    chosen: set[int] = set()
    if function is not None:
        found = False
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == function:
                chosen.update(range(node.lineno, node.end_lineno + 1))
                found = True
        if not found:
            raise SystemExit(f"mutants: no function or class named {function!r}")
    if lines is not None:
        span = set(range(lines[0], lines[1] + 1))
        chosen = chosen & span if function is not None else span
    return chosen


def generate(path: Path, function: Optional[str] = None, lines: Optional[tuple[int, int]] = None,
             display: Optional[str] = None) -> list[Mutant]:
    """Every mutant of a Python file (optionally only inside ``function`` and/or ``lines``)."""
    text = path.read_text()
    data = text.encode()
    tree = ast.parse(text)
    visitor = _Sites()
    visitor.visit(tree)
    offsets = _line_offsets(data)
    skip_lines = _pragma_lines(text)
    chosen = _selected_lines(tree, function, lines)
    label = display or str(path)
    mutants, seen = [], set()
    for node, new, what in visitor.sites:
        if node.lineno in skip_lines or (chosen is not None and node.lineno not in chosen):
            continue
        start = offsets[node.lineno - 1] + node.col_offset
        end = offsets[node.end_lineno - 1] + node.end_col_offset
        mutated = (data[:start] + f"({ast.unparse(new)})".encode() + data[end:]).decode()
        try:
            compile(mutated, str(path), "exec")
        except SyntaxError:
            continue
        if mutated in seen or mutated == text:
            continue
        seen.add(mutated)
        diff = "".join(difflib.unified_diff(text.splitlines(keepends=True), mutated.splitlines(keepends=True),
                                            f"a/{label}", f"b/{label}", n=1))
        mutants.append(Mutant(node.lineno, what, mutated, diff))
    return mutants


def _copy_tree(root: Path, dest: Path) -> None:
    shutil.copytree(root, dest, ignore=shutil.ignore_patterns(*NOT_COPIED), symlinks=True)
    for dirpath, dirnames, _ in os.walk(root):  # installed node packages: shared read-only, not copied
        rel = Path(dirpath).relative_to(root)
        if rel.parts and rel.parts[0] in {".git", ".venv"}:
            dirnames[:] = []
            continue
        if "node_modules" in dirnames:
            target = dest / rel / "node_modules"
            if (dest / rel).is_dir() and not target.exists():
                target.symlink_to(Path(dirpath) / "node_modules")
        dirnames[:] = [d for d in dirnames if d not in NOT_COPIED]


def _run_tests(workdir: Path, tests: list[str], timeout: float, pytest_args: list[str]) -> tuple[str, str]:
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *pytest_args, *tests]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        return "timeout", (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    if proc.returncode == 0:
        return "passed", proc.stdout
    if proc.returncode == 5:
        return "no tests", proc.stdout + proc.stderr
    return "failed", proc.stdout + proc.stderr


def run(root: Path, target: str, tests: list[str], mutants: list[Mutant], jobs: int, timeout: Optional[float],
        pytest_args: list[str], out=sys.stdout) -> int:
    """Run the tests against each mutant in ``jobs`` private copies; returns the exit code."""
    scratch = Path(tempfile.mkdtemp(prefix="mutants-"))
    try:
        workers = [scratch / f"w{i}" for i in range(max(1, min(jobs, len(mutants) or 1)))]
        for w in workers:
            _copy_tree(root, w)
        started = time.monotonic()
        status, output = _run_tests(workers[0], tests, timeout or 3600, pytest_args)
        baseline = time.monotonic() - started
        if status != "passed":
            print(f"mutants: the tests do not pass on the unmutated code ({status}); fix that first\n{output[-3000:]}",
                  file=out)
            return 2
        limit = timeout or max(30.0, 3 * baseline + 10)
        print(f"mutants: {len(mutants)} mutants of {target}; tests {' '.join(tests)} "
              f"(baseline {baseline:.1f}s, timeout {limit:.0f}s, {len(workers)} jobs)", file=out, flush=True)
        todo: "queue.Queue[Mutant]" = queue.Queue()
        for m in mutants:
            todo.put(m)
        lock = threading.Lock()

        def work(workdir: Path) -> None:
            path = workdir / target
            original = path.read_text()
            while True:
                try:
                    m = todo.get_nowait()
                except queue.Empty:
                    return
                path.write_text(m.source)
                t0 = time.monotonic()
                result, m.output = _run_tests(workdir, tests, limit, pytest_args)
                m.seconds = time.monotonic() - t0
                path.write_text(original)
                m.status = {"passed": "survived", "failed": "killed", "timeout": "killed (timeout)"}.get(result, result)
                with lock:
                    print(f"  {m.status:<16} line {m.line:<5} {m.what}  [{m.seconds:.1f}s]", file=out, flush=True)

        threads = [threading.Thread(target=work, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    killed = [m for m in mutants if m.status.startswith("killed")]
    survived = [m for m in mutants if m.status == "survived"]
    other = [m for m in mutants if m not in killed and m not in survived]
    for m in sorted(survived, key=lambda m: m.line):
        print(f"\nSURVIVED line {m.line}: {m.what}\n{m.diff}", file=out)
    for m in other:
        print(f"\n{m.status.upper()} line {m.line}: {m.what}\n{m.output[-1500:]}", file=out)
    total = len(killed) + len(survived)
    score = f"{100 * len(killed) / total:.0f}%" if total else "n/a"
    print(f"\nmutants: {target}: {len(killed)} killed, {len(survived)} survived"
          f"{f', {len(other)} errors' if other else ''} (score {score})", file=out)
    return 0


def _parse_lines(value: str) -> tuple[int, int]:
    first, _, last = value.partition("-")
    return int(first), int(last or first)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.mutants", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="the Python file to mutate, relative to --root")
    parser.add_argument("--tests", nargs="+", default=["tests"], help="test files or node ids to run (default: tests)")
    parser.add_argument("--function", help="only mutate inside this function or class")
    parser.add_argument("--lines", type=_parse_lines, help="only mutate these lines, e.g. 200-260")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the repository to copy (default: this one)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel copies (default 2)")
    parser.add_argument("--timeout", type=float, help="seconds per mutant (default 3x the baseline run + 10)")
    parser.add_argument("--list", action="store_true", help="print the mutants without running anything")
    parser.add_argument("--pytest-args", default="", help="extra pytest arguments, e.g. \"-k budget\"")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    path = root / args.file
    if not path.is_file():
        parser.error(f"{args.file}: no such file under {root}")
    target = str(path.relative_to(root))
    mutants = generate(path, args.function, args.lines, display=target)
    if args.list:
        for m in mutants:
            print(f"line {m.line}: {m.what}\n{m.diff}")
        print(f"{len(mutants)} mutants")
        return 0
    if not mutants:
        print(f"mutants: nothing to mutate in {target} with these filters")
        return 1
    return run(root, target, args.tests, mutants, args.jobs, args.timeout, shlex.split(args.pytest_args))


if __name__ == "__main__":
    sys.exit(main())
