"""tools/mutants.py (make mutants): it must report a mutant the tests catch as killed, one
they miss as survived (with its diff), and refuse to score tests that fail unmutated."""

import subprocess
import sys
import textwrap

import pytest

from tools import mutants

MODULE = '''\
"""A fixture module."""


def surge(replicas: int) -> int:
    """Replicas plus a quarter, rounded down."""
    return replicas + replicas // 4


def size(replicas: int) -> str:
    if replicas > 3:
        return "big"
    return "small"
'''

# surge() is pinned exactly; size() only far from its edge, so `> 3` -> `>= 3` and `> 4` survive.
TESTS = '''\
from calc import size, surge


def test_surge():
    assert surge(8) == 10


def test_size_far_from_the_edge():
    assert size(10) == "big" and size(0) == "small"
'''


@pytest.fixture
def project(tmp_path):
    (tmp_path / "calc.py").write_text(MODULE)
    (tmp_path / "test_calc.py").write_text(TESTS)
    return tmp_path


def run_tool(project, *args):
    proc = subprocess.run([sys.executable, "-m", "tools.mutants", "calc.py", "--root", str(project),
                           "--tests", "test_calc.py", "--jobs", "1", *args],
                          capture_output=True, text=True, cwd=mutants.Path(mutants.__file__).parent.parent,
                          timeout=300)
    return proc


def test_generates_operator_constant_and_condition_mutants_but_not_docstrings(project):
    found = {(m.line, m.what) for m in mutants.generate(project / "calc.py")}
    assert {(6, "+ -> -"), (6, "drop '+ replicas // 4'"), (6, "// -> /"), (6, "4 -> 5"),
            (10, "> -> >="), (10, "if condition -> True"), (10, "if condition -> False")} <= found
    assert not [m for m in found if m[0] in (1, 5)], "docstrings are not mutated"


def test_function_filter_keeps_only_that_function(project):
    lines = {m.line for m in mutants.generate(project / "calc.py", function="size")}
    assert lines == {10}


def test_pragma_line_is_not_mutated(project):
    (project / "calc.py").write_text(MODULE.replace("if replicas > 3:", "if replicas > 3:  # pragma: no mutate"))
    assert {m.line for m in mutants.generate(project / "calc.py")} == {6}


def test_reports_killed_and_survived_with_the_surviving_diffs(project):
    proc = run_tool(project, "--function", "size")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "killed" in proc.stdout
    assert "SURVIVED line 10: > -> >=" in proc.stdout
    assert "-    if replicas > 3:\n+    if (replicas >= 3):" in proc.stdout
    summary = proc.stdout.strip().splitlines()[-1]
    assert "SURVIVED line 10: 3 -> 4" in proc.stdout
    assert summary.startswith("mutants: calc.py: 2 killed, 2 survived (score 50%)"), summary
    assert (project / "calc.py").read_text() == MODULE, "the original file is never touched"


def test_an_edge_case_test_kills_the_survivors(project):
    (project / "test_calc.py").write_text(TESTS + textwrap.dedent('''
        def test_size_at_the_edge():
            assert size(3) == "small" and size(4) == "big"
        '''))
    proc = run_tool(project, "--function", "size")
    assert "mutants: calc.py: 4 killed, 0 survived" in proc.stdout, proc.stdout


def test_refuses_when_the_tests_fail_unmutated(project):
    (project / "test_calc.py").write_text(TESTS.replace("== 10", "== 11"))
    proc = run_tool(project)
    assert proc.returncode == 2
    assert "the tests do not pass on the unmutated code" in proc.stdout
