"""New API guardrails: the CrossGuard policies as importable code.

`POLICIES` is the list `policy/__main__.py` hands to `PolicyPack`; `evaluate_stack` runs
the very same objects over the synth's resources.json. The control table (ids, levels,
remediation) lives once in `controls.py` (../shared/CONTROLS.md, plus POL-001 for
malformed exemptions).

    pulumi preview --policy-pack policy                       # prod rules (the default)
    pulumi preview --policy-pack policy --policy-pack-config dev.json

where dev.json = `settings.pack_config_file([p.name for p in POLICIES], "dev")`; a single
policy's level is overridden the standard way (`{"k8s-019-spread-replicas": "disabled"}`).

Exemptions: `policy.new-api.io/exempt-controls: "K8S-009,K8S-010"` and
`policy.new-api.io/exempt-reason: "<why>"` on the object or its pod template, honoured only
when the pack config's `allowedExemptions` lists that control for that object and the control
is waivable (exemptions.NON_WAIVABLE); see exemptions.py. Other annotations the pack reads: `policy.new-api.io/backup-of` (STK-003),
`policy.new-api.io/monitored-by` (STK-004), `policy.new-api.io/allow-load-balancer`
(K8S-021), `policy.new-api.io/pod-security-reason` (K8S-025 baseline).
"""
from . import aws, gateway_api, k8s_objects, k8s_workloads, stack  # noqa: F401  (registers the policies)
from .controls import BY_POLICY, CONTROLS, Control
from .evaluate import evaluate_stack
from .framework import POLICIES
from .report import render_markdown
from .settings import CONFIG_SCHEMA, Settings, pack_config_file, settings_from
from .synth_checks import credentials_not_secret, unprotected_stateful

PACK_NAME = "new-api-guardrails"

__all__ = ["POLICIES", "CONTROLS", "BY_POLICY", "Control", "evaluate_stack", "render_markdown", "Settings",
           "settings_from", "pack_config_file", "CONFIG_SCHEMA", "credentials_not_secret", "unprotected_stateful",
           "PACK_NAME"]
