"""policy/ as `pulumi preview --policy-pack policy` loads it: PulumiPolicy.yaml, pinned
requirements, and __main__.py handing the importable POLICIES to PolicyPack."""
import os
import runpy
import sys

import pulumi_policy
import yaml

import newapi_policy

POLICY_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "policy")


def test_pulumipolicy_yaml_declares_python():
    with open(os.path.join(POLICY_DIR, "PulumiPolicy.yaml")) as f:
        doc = yaml.safe_load(f)
    runtime = doc["runtime"]
    assert runtime["name"] == "python" and runtime["options"]["virtualenv"] == ".venv" and doc["description"]


def test_requirements_are_pinned_to_the_tested_versions():
    with open(os.path.join(POLICY_DIR, "requirements.txt")) as f:
        pins = dict(line.strip().split("==") for line in f if line.strip() and not line.startswith("#"))
    assert pins["pulumi-policy"] == "1.21.0" and pins["pulumi"] == "3.272.0"


def test_main_builds_the_pack_from_the_importable_policies(monkeypatch):
    built = {}

    class FakePack:  # the real one serves gRPC forever
        def __init__(self, name, policies, enforcement_level=None, **kw):
            built.update(name=name, policies=policies, level=enforcement_level)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", FakePack)
    monkeypatch.syspath_prepend(POLICY_DIR)
    runpy.run_path(os.path.join(POLICY_DIR, "__main__.py"), run_name="__main__")
    assert built["name"] == newapi_policy.PACK_NAME
    assert built["policies"] is newapi_policy.POLICIES
    assert len({p.name for p in built["policies"]}) == len(built["policies"])
