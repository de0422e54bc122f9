"""Evaluate the canary and blue-green analyses the way Argo Rollouts does, with promtool
as the PromQL engine (a module of its own: the ingress-nginx and Gateway API tests use it).

What Argo Rollouts does with a Prometheus metric (argoproj/argo-rollouts):

- ``utils/analysis/helpers.go`` / ``utils/template``: ``{{args.<name>}}`` in the query is
  replaced by the value the Rollout passes; an arg the template declares but nobody
  passes fails the run. :func:`resolve_args` does the same and fails on a leftover tag.
- ``metricproviders/prometheus/prometheus.go`` ``processResponse``: an instant vector
  becomes ``result``, a ``[]float64`` of its sample values (an empty vector is ``[]``;
  ``0/0`` is a ``NaN`` sample).
- ``utils/evaluate/evaluate.go`` ``EvaluateResult``: the failure condition wins; neither
  condition true is ``Inconclusive``. The conditions are expr-lang, whose ``&&``
  short-circuits, so ``len(result) > 0 && result[0] >= 0.95`` is false on ``[]`` and,
  by IEEE comparison, on ``[NaN]``.

Our conditions all read ``len(result) > 0 && result[0] <op> <threshold>`` (the test
asserts that shape, so this translation cannot drift silently). For a query that returns
at most one sample, that condition is true exactly when the PromQL comparison filter
``(<query>) <op> <threshold>`` returns a sample: PromQL drops a sample whose comparison is
false, NaN included. promtool evaluates that filter on the test series, so the decision
comes from a real PromQL engine, not from Python arithmetic.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

_CONDITION = re.compile(r"^len\(result\) > 0 && result\[0\] (>=|<=|<|>) ([0-9.eE+-]+)$")
_TAG = re.compile(r"\{\{\s*args\.([A-Za-z0-9_-]+)\s*\}\}")


def resolve_args(query: str, args: dict) -> str:
    """``{{args.x}}`` replaced as Argo does; a tag without a value is an error."""
    def sub(m: re.Match) -> str:
        if m.group(1) not in args:
            raise AssertionError(f"{{{{args.{m.group(1)}}}}} has no value: Argo fails the AnalysisRun")
        return str(args[m.group(1)])
    return _TAG.sub(sub, query)


def as_filter(query: str, condition: str) -> str:
    """The PromQL filter equivalent to one of our Argo conditions (see module docstring)."""
    m = _CONDITION.match(condition)
    assert m, f"condition {condition!r} is not of the form the harness translates"
    return f"count(({query}) {m.group(1)} {m.group(2)})"


def prometheus_metrics(templates: dict, names: list, args: dict) -> list:
    """(metric name, resolved query, success condition, failure condition) of every
    Prometheus metric of the named AnalysisTemplates (specs as rendered)."""
    out = []
    for name in names:
        for metric in templates[name]["metrics"]:
            prom = metric["provider"].get("prometheus")
            if prom is None:
                continue
            out.append((f"{name}/{metric['name']}", resolve_args(prom["query"], args),
                        metric["successCondition"], metric["failureCondition"]))
    return out


def decide(promtool: str, tmp: Path, metrics: list, series: list, interval: str = "30s",
           at: str = "10m") -> dict:
    """Each metric's Argo phase (Successful, Failed, Inconclusive) at ``at`` on ``series``,
    decided by promtool: each condition is a PromQL filter whose result promtool checks
    against "one sample" and "no sample" (exactly one of the two passes)."""
    phases = {}
    for label, query, success, failure in metrics:
        held = {}
        for which, condition in (("success", success), ("failure", failure)):
            expr = as_filter(query, condition)
            verdict = []
            for expect in ([{"labels": "{}", "value": 1}], []):
                test = {"rule_files": [], "evaluation_interval": "30s", "tests": [{
                    "interval": interval, "input_series": series,
                    "promql_expr_test": [{"expr": expr, "eval_time": at, "exp_samples": expect}]}]}
                path = tmp / "analysis-test.yml"
                path.write_text(yaml.safe_dump(test, sort_keys=False))
                proc = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)
                if proc.returncode != 0 and "got:" not in proc.stdout + proc.stderr:
                    raise AssertionError(proc.stdout + proc.stderr)  # not a mismatch: a broken test
                verdict.append(proc.returncode == 0)
            assert verdict.count(True) == 1, (label, which, expr)
            held[which] = verdict[0]
        phases[label] = ("Failed" if held["failure"] else "Successful" if held["success"] else "Inconclusive")
    return phases


#: The canary cases every entry runs, on series labelled as its proxy labels them:
#: (case, keyword arguments of the entry's ``traffic()`` builder, expected phases).
#: 10 % errors on 20 % of the traffic is 2 % overall, which the stable's numbers would pass;
#: the canary's relay first byte after 30 s (issue 14) would hide behind the stable's 1 s.
CANARY_CASES = [
    ("bad canary diluted by a healthy stable", {"canary_errors": 0.10, "canary_seconds": 0.05},
     {"success-rate": "Failed"}),
    ("slow canary diluted by a fast stable", {"canary_errors": 0.0, "canary_seconds": 2.0},
     {"latency-p95": "Failed"}),
    ("canary slow to its first relay byte", {"canary_errors": 0.0, "canary_seconds": 0.05, "canary_first_byte": 30},
     {"relay-ttfb": "Failed"}),
    ("healthy canary", {"canary_errors": 0.005, "canary_seconds": 0.05},
     {"success-rate": "Successful", "latency-p95": "Successful", "relay-ttfb": "Successful"}),
    ("no canary traffic", {"canary_errors": 0.0, "canary_seconds": 0.05, "weight": 0},
     {"success-rate": "Inconclusive", "latency-p95": "Inconclusive", "relay-ttfb": "Inconclusive"}),
]


def assert_phases(phases: dict, expected: dict, case: str) -> None:
    """The decided phase of each expected metric (``decide`` keys them ``.../<metric>``)."""
    got = {label.split("/")[-1]: phase for label, phase in phases.items()}
    assert {k: got[k] for k in expected} == expected, (case, got)
