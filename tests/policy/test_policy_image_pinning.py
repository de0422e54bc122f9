"""Issue 13.3: digest pinning stays supported per stack, and the pack reports (advisory) a
prod image pinned only by tag (K8S-013 image-digest, prod only); dev may follow a tag."""
import pytest

import policy_fixtures as fx
from newapi_policy import evaluate_stack
from newapi_policy.framework import CHECKS
from support import Stack, override
from tools import mockrt, synth

POLICY = "k8s-013-image-digest"


def app(image):
    dep = fx.workload("Deployment", "new-api", app="new-api", component="app")
    dep["inputs"]["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return dep


def digest_advisories(report):
    return [v for v in report["violations"] if v["policy"] == POLICY]


def test_prod_image_pinned_only_by_tag_is_reported_as_advisory():
    [v] = digest_advisories(evaluate_stack([app("calciumion/new-api:v1.0.0-rc.25")], environment="prod",
                                           policies=[CHECKS[POLICY]]))
    assert v["level"] == "advisory" and "pinned only by tag in prod" in v["message"]


def test_prod_image_pinned_by_digest_passes():
    report = evaluate_stack([app("calciumion/new-api:v1.0.0-rc.25" + fx.DIGEST)], environment="prod",
                            policies=[CHECKS[POLICY]])
    assert digest_advisories(report) == [] and report["checks_run"][POLICY] > 0


def test_dev_image_pinned_by_tag_is_not_reported():
    report = evaluate_stack([app("calciumion/new-api:v1.0.0-rc.25")], environment="dev", policies=[CHECKS[POLICY]])
    assert digest_advisories(report) == []


def _report(stack, overrides=None):
    result = mockrt.run_stack(stack, overrides)
    assert result.error is None, result.error
    return evaluate_stack(synth.inventory(result), environment=synth.stack_environment(stack))


def test_synthesized_stacks_report_tag_only_images_in_prod_only():
    """Over the real program: prod lists its tag-only images, dev lists none."""
    assert digest_advisories(_report("dev")) == []
    prod = digest_advisories(_report("prod"))
    assert any('"calciumion/new-api:v1.0.0-rc.25"' in v["message"] for v in prod)


def test_a_stack_pins_the_app_image_by_digest():
    """Per stack: new-api:app.image accepts repo:tag@sha256:..., the pods run exactly it, the
    advisory goes away for it, and the smoke check still expects the tag's version."""
    pinned = "calciumion/new-api:v1.0.0-rc.25" + fx.DIGEST
    overrides = override("prod", ("app.image", pinned))
    result = mockrt.run_stack("prod", overrides)
    assert result.error is None, result.error
    stack = Stack(result)
    master = stack.k8s("Deployment", "new-api-master")
    assert master["spec"]["template"]["spec"]["containers"][0]["image"] == pinned
    assert not any("calciumion/new-api" in v["message"] for v in digest_advisories(_report("prod", overrides)))
    assert result.stack_outputs["appVersion"][0] == "v1.0.0-rc.25"
