"""Pack configuration: one schema shared by every policy, one place for the defaults.

`pulumi preview --policy-pack policy --policy-pack-config cfg.json` hands each policy
its own entry of cfg.json; every policy accepts the same keys, so a config file repeats
the shared settings under each policy name (see `pack_config_file`). Enforcement levels
are overridden the standard way: `{"all": "advisory"}` or `{"<policy-name>": "disabled"}`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from pulumi_policy import PolicyConfigSchema

from .controls import CONTROL_IDS
from .exemptions import NON_WAIVABLE

#: Registries the stack's images come from. Docker Hub short names are namespaces
#: ("calciumion" = docker.io/calciumion/*) or official images ("postgres" =
#: docker.io/library/postgres); the rest are hosts (quay.io, registry.k8s.io, ghcr.io)
#: or vendor namespaces (docker.elastic.co, grafana, prom, bitnami).
DEFAULT_ALLOWED_REGISTRIES: Tuple[str, ...] = (
    "docker.io/calciumion", "calciumion", "docker.io/library", "postgres", "redis",
    "quay.io", "registry.k8s.io", "docker.elastic.co", "grafana", "prom", "bitnami", "ghcr.io",
    "public.ecr.aws",
)
#: cert-manager issuers K8S-045 accepts in prod: the conventional name and the stack's own
#: ClusterIssuer (components/ingress.py). Each must itself use the ACME production directory.
DEFAULT_PRODUCTION_ISSUERS: Tuple[str, ...] = ("letsencrypt-prod", "new-api-letsencrypt-prod")
PROD_MIN_BACKUP_RETENTION_DAYS = 14  # AWS-002: prod keeps two weeks of PITR


@dataclass(frozen=True)
class Settings:
    environment: str = "prod"
    allowed_registries: Tuple[str, ...] = DEFAULT_ALLOWED_REGISTRIES
    min_prod_replicas: int = 2
    min_backup_retention_days: int = 7
    production_issuers: Tuple[str, ...] = DEFAULT_PRODUCTION_ISSUERS
    #: control id -> objects ("Kind namespace/name") allowed to waive it; empty: none may.
    allowed_exemptions: Mapping[str, Tuple[str, ...]] = field(default_factory=dict)

    @property
    def prod(self) -> bool:
        return self.environment == "prod"

    @property
    def backup_retention_floor(self) -> int:
        """AWS-002: the configured minimum, and never below 14 days in prod."""
        if self.prod:
            return max(self.min_backup_retention_days, PROD_MIN_BACKUP_RETENTION_DAYS)
        return self.min_backup_retention_days


CONFIG_SCHEMA = PolicyConfigSchema(properties={
    "environment": {"type": "string", "enum": ["dev", "prod"], "default": "prod",
                    "description": "prod (default) is strict; dev skips the prod-only controls"},
    "allowedRegistries": {"type": "array", "items": {"type": "string"},
                          "default": list(DEFAULT_ALLOWED_REGISTRIES),
                          "description": "image registry / repository prefixes K8S-014 allows"},
    "minProdReplicas": {"type": "integer", "minimum": 1, "default": 2,
                        "description": "K8S-022/K8S-034 minimum replicas in prod"},
    "minBackupRetentionDays": {"type": "integer", "minimum": 1, "default": 7,
                               "description": "AWS-002/AWS-010 minimum retention (prod never below 14)"},
    "productionIssuers": {"type": "array", "items": {"type": "string"},
                          "default": list(DEFAULT_PRODUCTION_ISSUERS),
                          "description": "K8S-045 cert-manager issuers allowed in prod"},
    "allowedExemptions": {"type": "object", "default": {},
                          "additionalProperties": {"type": "array", "items": {"type": "string"}},
                          "description": "control id -> objects (\"Kind namespace/name\") whose exemption "
                                         "annotation for that control is honoured; nothing else is"},
})


def settings_from(config: Optional[Mapping[str, Any]]) -> Settings:
    """Build Settings from a policy's config (missing keys take the defaults)."""
    cfg = dict(config or {})
    env = cfg.get("environment", "prod")
    if env not in ("dev", "prod"):
        raise ValueError(f"policy config environment: {env!r} is not one of 'dev', 'prod'")
    allowed = cfg.get("allowedExemptions", {}) or {}
    if not isinstance(allowed, Mapping):
        raise ValueError(f"policy config allowedExemptions: {allowed!r} is not an object of control id -> objects")
    problems = [f"{k!r} is not a control id" for k in allowed if k not in CONTROL_IDS]
    problems += [f"{k} can never be waived: remove it" for k in allowed if k in NON_WAIVABLE]
    if problems:
        raise ValueError("policy config allowedExemptions: " + "; ".join(problems))
    return Settings(
        allowed_exemptions={k: tuple(v) for k, v in allowed.items()},
        environment=env,
        allowed_registries=tuple(cfg.get("allowedRegistries", DEFAULT_ALLOWED_REGISTRIES)),
        min_prod_replicas=int(cfg.get("minProdReplicas", 2)),
        min_backup_retention_days=int(cfg.get("minBackupRetentionDays", 7)),
        production_issuers=tuple(cfg.get("productionIssuers", DEFAULT_PRODUCTION_ISSUERS)),
    )


def pack_config_file(policy_names: List[str], environment: str = "prod",
                     **overrides: Any) -> Dict[str, Any]:
    """The --policy-pack-config document that gives every policy the same settings."""
    shared: Dict[str, Any] = {"environment": environment, **overrides}
    return {name: dict(shared) for name in policy_names}
