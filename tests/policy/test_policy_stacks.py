"""The pack over the real dev and prod stacks, synthesized offline by tools.synth (the
lead's synth), and mutation tests: removing the security context, a probe or a limit from
the app component makes the stack fail the pack."""
import os
import sys

import pytest

from newapi_policy import evaluate_stack

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tools import mockrt, synth  # noqa: E402  (a missing or broken synth fails the module, never skips it)


def synthesize(stack):
    """resources.json entries, outputs and environment for `stack`, exactly as tools.synth builds them.
    A program that does not synthesize fails these tests: the pack's verdict on a stack that
    cannot be built is not "no violations"."""
    result = mockrt.run_stack(stack)
    assert result.error is None, f"the program does not synthesize {stack}: {result.error}"
    assert result.registrations, f"{stack} registered no resources"
    outputs = {k: (mockrt.REDACTED if secret else synth.clean(v)) for k, (v, secret) in result.stack_outputs.items()}
    return synth.inventory(result), outputs, synth.stack_environment(stack)


@pytest.fixture(scope="module", params=["dev", "prod"])
def stack_report(request):
    resources, outputs, environment = synthesize(request.param)
    return request.param, evaluate_stack(resources, environment=environment, outputs=outputs,
                                         config=synth.pack_config(request.param))


def test_pack_runs_cleanly_over_the_stack(stack_report):
    _, report = stack_report
    assert report["errors"] == [] and report["unknowns"] == []
    assert report["checks_run"]["k8s-001-run-as-non-root"] > 0 and report["checks_run"]["k8s-017-network-policies"] == 1


def test_stack_has_no_mandatory_violation(stack_report):
    """The issue's gate: dev and prod pass every mandatory control (the synth exits
    non-zero otherwise)."""
    stack, report = stack_report
    mandatory = [v["message"] for v in report["violations"] if v["level"] == "mandatory"]
    assert mandatory == [], f"{stack} has {len(mandatory)} mandatory violation(s):\n" + "\n".join(mandatory)


def test_stack_exemptions_are_justified(stack_report):
    _, report = stack_report
    for ex in report["exemptions"]:
        assert ex["controls"] and ex["reason"].strip(), ex


def _prod_mandatory_ids():
    resources, outputs, environment = synthesize("prod")
    report = evaluate_stack(resources, environment=environment, outputs=outputs, config=synth.pack_config("prod"))
    return {v["control"] for v in report["violations"] if v["level"] == "mandatory"}


@pytest.fixture
def common(monkeypatch):
    from components import common as module
    return module


def test_app_without_security_context_fails(common, monkeypatch):
    monkeypatch.setattr(common, "container_security_context", lambda *a, **k: {})
    assert {"K8S-005", "K8S-006", "K8S-012"} <= _prod_mandatory_ids()


def test_app_without_http_probes_fails(common, monkeypatch):
    monkeypatch.setattr(common, "http_probe", lambda *a, **k: None)
    assert "K8S-004" in _prod_mandatory_ids()


def test_a_program_that_does_not_synthesize_fails_instead_of_skipping(monkeypatch):
    """The old module skipped here, so a broken program passed the pack's stack tests."""
    from stack import config

    def broken(*a, **k):
        raise config.ConfigError("broken on purpose")
    monkeypatch.setattr(config, "load", broken)
    with pytest.raises(AssertionError, match="the program does not synthesize prod: .*broken on purpose"):
        synthesize("prod")


def test_app_without_memory_limit_fails(common, monkeypatch):
    real = common.resources

    def no_memory_limit(*a, **k):
        r = real(*a, **k)
        r["limits"].pop("memory", None)
        return r
    monkeypatch.setattr(common, "resources", no_memory_limit)
    assert "K8S-003" in _prod_mandatory_ids()
