"""Run the real Pulumi program (or any function) under Pulumi's mock runtime and record
everything the engine would see: type, name, parent, dependencies, protect, retain,
aliases, additionalSecretOutputs and inputs of every registered resource.

This is how the project is verified without the Pulumi CLI (ARCHITECTURE.md
"Verification here"). It only drives the public mock hooks of the SDK; the program
itself runs unmodified, exactly as ``pulumi up`` would run it.

Two things the stock mock monitor does not do, done here so tests prove something:
- outputs named in ``additionalSecretOutputs`` (e.g. ``RandomPassword.result``) come
  back as secrets, as the engine returns them;
- each run gets a fresh Pulumi context, so many stacks can run in one process.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import runpy
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

import pulumi
from pulumi.runtime import mocks as _mocks
from pulumi.runtime import rpc
from pulumi.runtime.config import set_all_config
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

REPO = Path(__file__).resolve().parent.parent

#: The marker the engine's wire format uses for a secret value.
SECRET_SIG = rpc._special_secret_sig  # "1b47061264138c4ac30d75fd1eb44270"
SIG_KEY = rpc._special_sig_key  # "4dabf18193072939515e22adb298388d"
#: What a secret value becomes in every file the synth writes.
REDACTED = "[secret]"


def is_secret_envelope(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


def _fake_secret(name: str, length: int = 32) -> str:
    """Deterministic stand-in for a generated value (synth output must be byte-identical)."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    return (digest * 4)[:length]


class StackMocks(pulumi.runtime.Mocks):
    """Outputs for the resource types the program uses; inputs echo back otherwise."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        typ = args.typ
        if typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = _fake_secret(args.name, int(args.inputs.get("length", 32)))
            outputs["bcryptHash"] = "$2a$10$" + _fake_secret(args.name + "bcrypt", 53)
        elif typ == "random:index/randomBytes:RandomBytes":
            raw = _fake_secret(args.name, int(args.inputs.get("length", 32)) * 2)
            outputs["hex"] = raw
            outputs["base64"] = raw
        elif typ == "random:index/randomId:RandomId":
            # Random bytes in the real provider: a stand-in from the name, never from the keepers.
            outputs["hex"] = _fake_secret(args.name + "-id", int(args.inputs.get("byteLength", 8)) * 2)
        elif typ.startswith("aws:"):
            short = typ.split(":")[-1].lower()
            if typ == "aws:s3/bucket:Bucket":
                # The engine auto-names a bucket without `bucket` (name + random suffix); its
                # ARN is arn:aws:s3:::<bucket> (no region or account), which policies match on.
                outputs.setdefault("bucket", f"{args.name}-0123abcd")
                outputs.setdefault("arn", f"arn:aws:s3:::{outputs['bucket']}")
            outputs.setdefault("arn", f"arn:aws:mock:::{short}/{args.name}")
            outputs.setdefault("address", f"{args.name}.mock.internal")
            outputs.setdefault("endpoint", f"{args.name}.mock.internal:5432")
            outputs.setdefault("primaryEndpointAddress", f"{args.name}.mock.internal")
            outputs.setdefault("readerEndpointAddress", f"{args.name}-ro.mock.internal")
            outputs.setdefault("keyId", f"{args.name}-key-id")
            # Auto-named resources (role, subnet group, parameter group...) get a name.
            outputs.setdefault("name", f"{args.name}-0123abcd")
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": "123456789012", "arn": "arn:aws:iam::123456789012:user/mock", "userId": "mock"}
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": "us-east-1", "region": "us-east-1", "id": "us-east-1"}
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com"}
        return {}


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    custom: bool
    parent: Optional[str]
    dependencies: list
    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool
    aliases: list
    additional_secret_outputs: list
    ignore_changes: list
    provider: str
    inputs: dict
    outputs: dict = field(default_factory=dict)


class RecordingMonitor(_mocks.MockMonitor):
    """A mock monitor that records each registration the way the engine receives it."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.registrations: dict[str, Registration] = {}
        self._lock = threading.Lock()

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        _mocks._ensure_event_loop()
        inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
        resource_args = pulumi.runtime.MockResourceArgs(
            typ=request.type,
            name=request.name,
            inputs=_strip_secrets(inputs),
            provider=request.provider,
            resource_id=request.importId,
            custom=request.custom or False,
        )
        id_, state = self.mocks.new_resource(resource_args)
        if request.custom:
            # The engine returns additionalSecretOutputs as secrets; the stock mock does not.
            for key in request.additionalSecretOutputs:
                if key in state and not is_secret_envelope(state[key]):
                    state[key] = {SIG_KEY: SECRET_SIG, "value": state[key]}
            # A secret input stays secret in the output state, as with the engine.
            for key, value in inputs.items():
                if is_secret_envelope(value) and key in state and not is_secret_envelope(state[key]):
                    state[key] = {SIG_KEY: SECRET_SIG, "value": state[key]}
        obj_proto = _sync_await(rpc.serialize_properties(state, {}))
        with self._lock:
            self.resources[urn] = _mocks.MockMonitor.ResourceRegistration(urn, id_, state)
            self.registrations[urn] = Registration(
                urn=urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                parent=request.parent or None,
                dependencies=sorted(set(request.dependencies)),
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                delete_before_replace=bool(request.deleteBeforeReplace),
                aliases=sorted(_alias_repr(a) for a in request.aliases),
                additional_secret_outputs=sorted(request.additionalSecretOutputs),
                ignore_changes=sorted(request.ignoreChanges),
                provider=request.provider,
                inputs=inputs,
            )
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=obj_proto)

    def RegisterResourceOutputs(self, request):  # noqa: N802
        _mocks._ensure_event_loop()
        outputs = rpc.deserialize_properties(request.outputs, keep_unknowns=True)
        with self._lock:
            if request.urn in self.registrations:
                self.registrations[request.urn].outputs = outputs
        return super().RegisterResourceOutputs(request)


def _alias_repr(alias) -> str:
    if alias.urn:
        return alias.urn
    spec = alias.spec
    return json.dumps({"name": spec.name, "type": spec.type, "parentUrn": spec.parentUrn}, sort_keys=True)


def _strip_secrets(value: Any) -> Any:
    """Plain values for the mock's new_resource (the engine hands providers plain values)."""
    if is_secret_envelope(value):
        return _strip_secrets(value.get("value"))
    if isinstance(value, dict):
        return {k: _strip_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_secrets(v) for v in value]
    return value


# --------------------------------------------------------------------------- stack config

class StackFileError(Exception):
    pass


def project_name(repo: Path = REPO) -> str:
    return yaml.safe_load((repo / "Pulumi.yaml").read_text())["name"]


def load_stack_config(stack: str, repo: Path = REPO,
                      overrides: Optional[dict] = None) -> tuple[dict, list]:
    """The config map the engine would hand the program for ``stack``: Pulumi.yaml
    declared defaults, then ``Pulumi.<stack>.yaml``, then ``overrides`` (tests).

    ``overrides`` maps keys (``new-api:app`` or short ``app``) to Python values;
    ``None`` removes a key. ``secure:`` values cannot be decrypted offline: they become
    a placeholder and the key is marked secret, as the engine would mark it.
    """
    project = yaml.safe_load((repo / "Pulumi.yaml").read_text())
    name = project["name"]
    path = repo / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise StackFileError(f"no stack file {path.name}: create it (see README, 'pulumi stack init')")
    stack_doc = yaml.safe_load(path.read_text()) or {}

    def qualify(key: str) -> str:
        return key if ":" in key else f"{name}:{key}"

    values: dict[str, Any] = {}
    for key, decl in (project.get("config") or {}).items():
        if isinstance(decl, dict) and ("default" in decl or "value" in decl):
            values[qualify(key)] = decl.get("value", decl.get("default"))
    for key, value in (stack_doc.get("config") or {}).items():
        values[qualify(key)] = value
    for key, value in (overrides or {}).items():
        if value is None:
            values.pop(qualify(key), None)
        else:
            values[qualify(key)] = value

    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in values.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = f"[secure:{key}]"
            secret_keys.append(key)
        elif isinstance(value, str):
            config[key] = value
        else:
            config[key] = json.dumps(value)
    return config, sorted(secret_keys)


# --------------------------------------------------------------------------- running

@dataclass
class RunResult:
    stack: str
    registrations: list  # of Registration, sorted by URN
    stack_outputs: dict
    error: Optional[BaseException] = None

    def by_type(self, typ: str) -> list:
        return [r for r in self.registrations if r.type == typ]

    def get(self, typ: str, name: str) -> Registration:
        for r in self.registrations:
            if r.type == typ and r.name == name:
                return r
        raise KeyError(f"no {typ} named {name!r}; have: {[r.name for r in self.by_type(typ)]}")


def run(fn: Callable[[], Any], *, stack: str = "test", project: Optional[str] = None,
        config: Optional[dict] = None, secret_keys: Optional[list] = None) -> RunResult:
    """Run ``fn`` as a Pulumi program under mocks in a fresh context and return what it registered.

    An exception from the program is returned in ``RunResult.error`` (with whatever was
    registered before it), so tests can assert both the message and that nothing was created.
    """
    ctx = contextvars.Context()
    return ctx.run(_run_in_context, fn, stack, project or project_name(), config or {}, secret_keys or [])


def _run_in_context(fn, stack, project, config, secret_keys) -> RunResult:
    mocks = StackMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    set_all_config(config, secret_keys)
    error: Optional[BaseException] = None
    try:
        _sync_await(run_pulumi_func(fn))
    except BaseException as exc:  # noqa: BLE001 (returned to the caller)
        error = exc
    root = pulumi.runtime.get_root_resource()
    outputs = {}
    if error is None and root is not None and getattr(root, "outputs", None):
        outputs = _resolve_outputs(root.outputs)
    regs = sorted(monitor.registrations.values(), key=lambda r: r.urn)
    return RunResult(stack=stack, registrations=regs, stack_outputs=outputs, error=error)


def _resolve_outputs(outputs: dict) -> dict:
    """Stack exports as {name: (value, is_secret)}."""
    resolved = {}
    for key, value in outputs.items():
        out = pulumi.Output.from_input(value)
        val = _sync_await(out.future())
        secret = _sync_await(out.is_secret())
        resolved[key] = (val, bool(secret))
    return resolved


def run_stack(stack: str, overrides: Optional[dict] = None, repo: Path = REPO) -> RunResult:
    """Run the real ``__main__.py`` for ``stack`` (its Pulumi.<stack>.yaml) under mocks."""
    config, secret_keys = load_stack_config(stack, repo, overrides)
    main = str(repo / "__main__.py")
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        return run(lambda: runpy.run_path(main, run_name="__main__"), stack=stack,
                   project=project_name(repo), config=config, secret_keys=secret_keys)
    finally:
        os.chdir(cwd)
