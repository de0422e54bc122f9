"""The components as a package other teams import: installable with a version, a schema
inferred for other languages covering every public component, a consumer example."""

import runpy
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import components
from tools import mockrt

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def analysis():
    from pulumi.provider.experimental.analyzer import Analyzer

    return Analyzer("new-api").analyze(components.public_components())


def test_every_exported_component_is_in_the_inferred_schema(analysis):
    names = {c.__name__ for c in components.public_components()}
    assert names >= {"ApiService", "RestrictedNamespace", "StackSecrets", "TlsIngress"}
    assert set(analysis["component_definitions"]) == names


def test_every_input_and_output_is_described(analysis):
    missing = []
    for cname, comp in analysis["component_definitions"].items():
        assert comp.description, f"{cname} has no docstring"
        for kind, props in (("input", comp.inputs), ("output", comp.outputs)):
            assert props, f"{cname} has no {kind}s"
            missing += [f"{cname}.{kind}.{p}" for p, d in props.items() if not d.description]
    for tname, typ in analysis["type_definitions"].items():
        missing += [f"{tname}.{p}" for p, d in typ.properties.items() if not d.description]
    assert missing == []


def test_required_args_are_required_in_the_schema(analysis):
    api = analysis["component_definitions"]["ApiService"].inputs
    for key in ("namespace", "image", "sqlDsn", "redisUrl", "sessionSecret", "adminPassword", "trustedProxies"):
        assert api[key].optional is False, key
    assert api["autoscaling"].optional is True


def test_package_schema_generates(analysis):
    from pulumi.provider.experimental.schema import generate_schema

    spec = generate_schema("new-api", components.__version__, None, analysis["component_definitions"],
                           analysis["type_definitions"], list(analysis["dependencies"]))
    doc = spec.to_json() if hasattr(spec, "to_json") else spec
    text = str(doc)
    assert "new-api:index:ApiService" in text and "new-api:index:TlsIngress" in text


def test_component_tokens_match_class_names():
    def program():
        for cls in components.public_components():
            assert cls.__init__.__annotations__["args"]
    assert mockrt.run(program).error is None
    source = "".join(p.read_text() for p in (REPO / "components").glob("*.py"))
    for cls in components.public_components():
        assert f'"new-api:index:{cls.__name__}"' in source


def test_package_builds_a_versioned_wheel(tmp_path):
    import shutil

    source = tmp_path / "src"  # build from a copy: setuptools writes build/ next to the sources
    shutil.copytree(REPO / "components", source, ignore=shutil.ignore_patterns("__pycache__", "build"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path), str(source)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = tmp_path.glob("*.whl")
    assert wheel.name.startswith(f"new_api_components-{components.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    assert "components/app.py" in names and "components/common.py" in names
    assert "components/PulumiPlugin.yaml" in names


def test_consumer_example_runs_with_the_package():
    result = mockrt.run(lambda: runpy.run_path(str(REPO / "examples/consumer/__main__.py"), run_name="__main__"),
                        project="team-a-llm-gateway", stack="dev")
    assert result.error is None, result.error
    hpa = result.get("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "llm-gateway").inputs["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    netpol = result.get("kubernetes:networking.k8s.io/v1:NetworkPolicy", "llm-gateway-serving").inputs["spec"]
    assert {"ipBlock": {"cidr": "10.20.0.0/16"}} in [p for r in netpol["egress"] for p in r["to"]]
    value, secret = result.stack_outputs["adminPassword"]
    assert secret


def test_plugin_manifest_matches_the_package_version():
    import yaml

    manifest = yaml.safe_load((REPO / "components" / "PulumiPlugin.yaml").read_text())
    assert manifest == {"name": "new-api", "version": components.__version__, "runtime": "python"}
