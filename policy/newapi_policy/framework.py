"""The machinery every policy shares: resource views over the SDK's property proxies,
the unknown-value guard, exemptions, and the decorators that turn a small check function
into a `ResourceValidationPolicy` / `StackValidationPolicy` named after its control.

Unknown values. During preview the engine sends sentinel strings for unknowns and the
SDK wraps the properties in proxies that raise `UnknownValueError` on access. A check
reads properties through those proxies inside `ctx.field()` blocks: touching an unknown
skips that block only (no violation for that field), the remaining blocks still run, and
when the policy finishes the first unknown is re-raised so the SDK reports
"can't run policy ... during preview: <type> value at .<path> can't be known" as an
advisory diagnostic. Nothing unknown ever passes silently or crashes the pack.
"""
from __future__ import annotations

import contextvars
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional

from pulumi_policy import (EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy)
from pulumi_policy.proxy import UnknownValueError

from .controls import BY_POLICY, Control
from .exemptions import EXEMPT_CONTROLS, EXEMPT_REASON, Exemption, parse_exemption, refusal  # noqa: F401 (re-exported)
from .settings import CONFIG_SCHEMA, Settings, settings_from

STANDARD_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
                   "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by")

# --------------------------------------------------------------------------- data access


def is_map(x: Any) -> bool:
    return isinstance(x, Mapping)


def is_list(x: Any) -> bool:
    return isinstance(x, Sequence) and not isinstance(x, (str, bytes))


def get(obj: Any, *path: Any, default: Any = None) -> Any:
    """Walk `path` through mappings/sequences; `default` when a step is missing.
    Accessing an unknown value raises the SDK's UnknownValueError (caught by ctx.field)."""
    for key in path:
        if is_map(obj):
            if key not in obj:  # Mapping.__contains__ reads the value: unknowns raise here
                return default
            obj = obj[key]
        elif is_list(obj) and isinstance(key, int):
            if not -len(obj) <= key < len(obj):
                return default
            obj = obj[key]
        else:
            return default
    return default if obj is None else obj


def items(obj: Any) -> List[Any]:
    """The elements of a list-valued property ([] when absent)."""
    return list(obj) if is_list(obj) else []


def truthy(v: Any) -> bool:
    """Booleans as Kubernetes/AWS write them (true, "true")."""
    return v is True or (isinstance(v, str) and v.lower() == "true")


def num(v: Any) -> Optional[float]:
    """A number from an int, a float (the engine sends doubles) or a numeric string."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str) and re.fullmatch(r"-?\d+(\.\d+)?", v.strip()):
        return float(v)
    return None


def fmt(v: Any) -> str:
    """Render a value for a message: whole floats (engine doubles) as ints."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def plain(x: Any) -> Any:
    """A plain-dict copy of a proxied value (only for values already known to be safe)."""
    if is_map(x):
        return {k: plain(x[k]) for k in x}
    if is_list(x):
        return [plain(v) for v in x]
    return x


# --------------------------------------------------------------------------- resources

_NOT_OBJECT_MODULES = ("helm.sh/", "yaml", "kustomize")

CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass",
    "PriorityClass", "CustomResourceDefinition", "IngressClass", "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration", "ClusterIssuer", "APIService", "RuntimeClass", "CSIDriver",
    "VolumeSnapshotClass", "ClusterSecretStore", "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding", "FlowSchema", "PriorityLevelConfiguration",
})


class Res:
    """One resource as a policy sees it (args of a resource policy or a stack PolicyResource)."""

    def __init__(self, resource_type: str, props: Mapping, urn: str, name: str,
                 protect: bool = False, retain_on_delete: Optional[bool] = None,
                 parent: Optional[str] = None, dependencies: Iterable[str] = ()):
        self.type = resource_type
        self.props = props
        self.urn = urn
        self.name = name
        self.protect = bool(protect)
        self.retain_on_delete = retain_on_delete  # None: not visible (CrossGuard)
        self.parent = parent
        self.dependencies = list(dependencies)
        parts = resource_type.split(":")
        self.module = parts[1] if len(parts) == 3 else ""
        self.kind = parts[-1]
        self._exemption: Optional[Exemption] = None

    @classmethod
    def from_args(cls, args) -> "Res":
        return cls(args.resource_type, args.props, args.urn, args.name,
                   protect=getattr(args.opts, "protect", False),
                   retain_on_delete=getattr(args.opts, "retain_on_delete", None),
                   parent=getattr(args.opts, "parent", None))

    @classmethod
    def from_policy_resource(cls, r) -> "Res":
        return cls(r.resource_type, r.props, r.urn, r.name,
                   protect=getattr(r.opts, "protect", False),
                   retain_on_delete=getattr(r.opts, "retain_on_delete", None),
                   parent=r.parent.urn if r.parent is not None else getattr(r.opts, "parent", None),
                   dependencies=[d.urn for d in r.dependencies])

    # -- Kubernetes
    @property
    def is_k8s(self) -> bool:
        return (self.type.startswith("kubernetes:") and not self.type.startswith("kubernetes:pulumi")
                and not self.module.startswith(_NOT_OBJECT_MODULES)
                and not self.kind.endswith(("Patch", "List")) and self.module != "")

    @property
    def api_version(self) -> str:
        v = self.props.get("apiVersion") if "apiVersion" in self.props else None
        if isinstance(v, str) and v:
            return v
        return self.module[len("core/"):] if self.module.startswith("core/") else self.module

    @property
    def meta(self) -> Mapping:
        return get(self.props, "metadata", default={})

    @property
    def labels(self) -> Mapping:
        return get(self.props, "metadata", "labels", default={})

    @property
    def annotations(self) -> Mapping:
        return get(self.props, "metadata", "annotations", default={})

    @property
    def namespace(self) -> Optional[str]:
        return get(self.props, "metadata", "namespace")

    @property
    def k8s_name(self) -> str:
        return get(self.props, "metadata", "name", default=self.name)

    @property
    def display(self) -> str:
        """e.g. 'Deployment new-api/new-api-serving' (falls back to the Pulumi name)."""
        try:
            ns, n = self.namespace, self.k8s_name
        except UnknownValueError:
            return f"{self.kind} {self.name}"
        if not self.is_k8s:
            return f"{self.type.split(':')[-1]} {self.name}"
        return f"{self.kind} {ns}/{n}" if ns else f"{self.kind} {n}"

    @property
    def is_namespaced(self) -> bool:
        return self.kind not in CLUSTER_SCOPED

    # -- exemptions (contract: annotation on the object, or on its pod template)
    def exemption(self) -> Exemption:
        if self._exemption is None:
            self._exemption = parse_exemption(self._annotation_sources())
        return self._exemption

    def _annotation_sources(self) -> List[Mapping]:
        sources = [self.annotations]
        for path in (("spec", "template", "metadata", "annotations"),
                     ("spec", "jobTemplate", "spec", "template", "metadata", "annotations")):
            a = get(self.props, *path)
            if is_map(a):
                sources.append(a)
        return sources

    def exempts(self, control_id: str, settings: Settings) -> bool:
        """The object declares a reasoned exemption from `control_id` AND the pack config allows
        it for this object (and the control is waivable)."""
        return self.exemption_refusal(control_id, settings) == ""

    def exemption_refusal(self, control_id: str, settings: Settings) -> Optional[str]:
        """None: no exemption declared; "": honoured; otherwise why it is not honoured."""
        try:
            if control_id not in self.exemption().controls:
                return None
            return refusal(control_id, self.display, settings.allowed_exemptions)
        except UnknownValueError:
            return None


# --------------------------------------------------------------------------- run-time collector


@dataclass
class Collector:
    """Side channel evaluate_stack reads; absent when the engine runs the pack."""
    ran: Counter = field(default_factory=Counter)
    suppressed: List[Dict[str, Any]] = field(default_factory=list)
    unknowns: List[Dict[str, Any]] = field(default_factory=list)


COLLECTOR: contextvars.ContextVar[Optional[Collector]] = contextvars.ContextVar("newapi_policy_collector",
                                                                             default=None)


class _Field:
    def __init__(self, ctx: "Ctx"):
        self.ctx = ctx

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, UnknownValueError):
            self.ctx.unknowns.append(exc)
            return True
        return False


class Ctx:
    """What a check function gets: the control, settings, and report()/field()."""

    def __init__(self, control: Control, policy_name: str, settings: Settings, report_violation,
                 res: Optional[Res] = None, stack_mode: bool = False):
        self.control = control
        self.policy_name = policy_name
        self.settings = settings
        self._report_violation = report_violation
        self.res = res
        self.stack_mode = stack_mode
        self.unknowns: List[UnknownValueError] = []
        self.reported = 0

    def field(self) -> _Field:
        return _Field(self)

    def report(self, what: str, fix: Optional[str] = None, *, res: Optional[Res] = None,
               exemptable: bool = True) -> None:
        target = res or self.res
        msg = f"[{self.control.id}] {what}: {fix or self.control.remediation}"
        if exemptable and target is not None and target.exempts(self.control.id, self.settings):
            col = COLLECTOR.get()
            if col is not None:
                col.suppressed.append({"control": self.control.id, "policy": self.policy_name,
                                       "urn": target.urn, "message": msg})
            return
        self.reported += 1
        if self.stack_mode:
            self._report_violation(msg, target.urn if target is not None else None)
        else:
            self._report_violation(msg, None)

    def finish(self) -> None:
        if not self.unknowns:
            return
        col = COLLECTOR.get()
        if col is not None:
            for e in self.unknowns:
                col.unknowns.append({"policy": self.policy_name, "control": self.control.id,
                                     "urn": self.res.urn if self.res else "", "message": e.message})
        raise self.unknowns[0]


# --------------------------------------------------------------------------- policy builders

POLICIES: List[Any] = []
CHECKS: Dict[str, Callable] = {}


def _register(policy_name: str, policy) -> None:
    if policy_name in CHECKS:
        raise ValueError(f"policy {policy_name} defined twice")
    if policy_name not in BY_POLICY:
        raise ValueError(f"policy {policy_name} is not in the control table")
    POLICIES.append(policy)
    CHECKS[policy_name] = policy


def resource_policy(policy_name: str, applies: Callable[[Res], bool]):
    """Decorate `fn(ctx, res)`; the policy runs it on every resource `applies` accepts."""
    control = BY_POLICY[policy_name]

    def deco(fn):
        def validate(args, report_violation):
            res = Res.from_args(args)
            try:
                ok = applies(res)
            except UnknownValueError:
                ok = False
            if not ok:
                return
            settings = settings_from(args.get_config())
            if control.prod_only and not settings.prod:
                return
            col = COLLECTOR.get()
            if col is not None:
                col.ran[policy_name] += 1
            ctx = Ctx(control, policy_name, settings, report_violation, res=res)
            with ctx.field():
                fn(ctx, res)
            ctx.finish()

        _register(policy_name, ResourceValidationPolicy(
            name=policy_name, description=control.description, validate=validate,
            enforcement_level=EnforcementLevel(control.level), config_schema=CONFIG_SCHEMA,
            remediation_steps=control.remediation))
        return fn
    return deco


class Stack:
    """All resources of a stack, with the lookups the stack checks share."""

    def __init__(self, resources: List[Res]):
        self.resources = resources
        self.by_urn = {r.urn: r for r in resources}

    def k8s(self, *kinds: str) -> List[Res]:
        return [r for r in self.resources if r.is_k8s and (not kinds or r.kind in kinds)]

    def of_type(self, *types: str) -> List[Res]:
        return [r for r in self.resources if r.type in types]


def stack_policy(policy_name: str):
    """Decorate `fn(ctx, stack)`; report with ctx.report(..., res=the offending resource)."""
    control = BY_POLICY[policy_name]

    def deco(fn):
        def validate(args, report_violation):
            settings = settings_from(args.get_config())
            if control.prod_only and not settings.prod:
                return
            col = COLLECTOR.get()
            if col is not None:
                col.ran[policy_name] += 1
            stack = Stack([Res.from_policy_resource(r) for r in args.resources])
            ctx = Ctx(control, policy_name, settings, report_violation, stack_mode=True)
            with ctx.field():
                fn(ctx, stack)
            ctx.finish()

        _register(policy_name, StackValidationPolicy(
            name=policy_name, description=control.description, validate=validate,
            enforcement_level=EnforcementLevel(control.level), config_schema=CONFIG_SCHEMA,
            remediation_steps=control.remediation))
        return fn
    return deco


def k8s_kinds(*kinds: str) -> Callable[[Res], bool]:
    return lambda r: r.is_k8s and (not kinds or r.kind in kinds)


def aws_types(*types: str) -> Callable[[Res], bool]:
    return lambda r: r.type in types
