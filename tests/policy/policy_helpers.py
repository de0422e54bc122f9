"""Run one policy in isolation, the way evaluate_stack (and the engine) runs it."""
from __future__ import annotations

from typing import Any, Dict, List

from newapi_policy import credentials_not_secret, evaluate_stack
from newapi_policy.framework import CHECKS

SYNTH_ONLY = "stk-002-credentials-secret"


def run_isolated(policy_name: str, resources: List[Dict[str, Any]], environment: str = "prod",
                 config: Dict[str, Any] | None = None) -> Dict[str, Any]:
    if policy_name == SYNTH_ONLY:
        return {"violations": credentials_not_secret(resources), "checks_run": {SYNTH_ONLY: len(resources)},
                "unknowns": [], "errors": [], "suppressed": []}
    return evaluate_stack(resources, environment=environment, config=config, policies=[CHECKS[policy_name]])


def messages(report: Dict[str, Any]) -> List[str]:
    return [v["message"] for v in report["violations"]]
