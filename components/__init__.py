"""Reusable Pulumi components for running New API (the LLM API gateway) on Kubernetes.

Each component takes typed args (a ``TypedDict``), never reads ``pulumi.Config``, and
defaults to the production-grade setting. Import what you need::

    from components import ApiService, StackSecrets, TlsIngress, RestrictedNamespace
"""

import inspect as _inspect

import pulumi as _pulumi

from .app import ApiService, ApiServiceArgs
from .ingress import TlsIngress, TlsIngressArgs
from .namespace import RestrictedNamespace, RestrictedNamespaceArgs
from .secrets import StackSecrets, StackSecretsArgs

__version__ = "0.1.0"

__all__ = [
    "ApiService", "ApiServiceArgs",
    "RestrictedNamespace", "RestrictedNamespaceArgs",
    "StackSecrets", "StackSecretsArgs",
    "TlsIngress", "TlsIngressArgs",
]


def public_components() -> list:
    """Every ComponentResource class this package exports (hosted for other languages)."""
    return [obj for name in __all__ if _inspect.isclass(obj := globals()[name])
            and issubclass(obj, _pulumi.ComponentResource)]
