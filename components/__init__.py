"""Reusable Pulumi components for running New API (the LLM API gateway) on Kubernetes.

Each component takes typed args (a ``TypedDict``), never reads ``pulumi.Config``, and
defaults to the production-grade setting. Import what you need::

    from components import ApiService, StackSecrets, TlsIngress, RestrictedNamespace
"""

from .app import ApiService, ApiServiceArgs
from .ingress import TlsIngress, TlsIngressArgs
from .namespace import RestrictedNamespace, RestrictedNamespaceArgs
from .secrets import StackSecrets, StackSecretsArgs

__all__ = [
    "ApiService", "ApiServiceArgs",
    "RestrictedNamespace", "RestrictedNamespaceArgs",
    "StackSecrets", "StackSecretsArgs",
    "TlsIngress", "TlsIngressArgs",
]
