"""Reusable Pulumi components for running New API (the LLM API gateway) on Kubernetes.

Each component takes typed args (a ``TypedDict``), never reads ``pulumi.Config``, and
defaults to the production-grade setting. Import what you need::

    from components import ApiService, StackSecrets, PublicEntry, RestrictedNamespace
"""

import inspect as _inspect

import pulumi as _pulumi

from .app import ApiService, ApiServiceArgs
from .backup import BackupBucket, BackupBucketArgs, PostgresBackup, PostgresBackupArgs
from .gateway import GatewayEntry, GatewayEntryArgs
from .ingress import TlsIngress, TlsIngressArgs
from .logging import Logging, LoggingArgs
from .monitoring import Monitoring, MonitoringArgs
from .namespace import RestrictedNamespace, RestrictedNamespaceArgs
from .postgres import Postgres, PostgresArgs
from .public_entry import PublicEntry, PublicEntryArgs
from .redis import Redis, RedisArgs
from .secrets import StackSecrets, StackSecretsArgs

__version__ = "0.1.0"

__all__ = [
    "ApiService", "ApiServiceArgs",
    "BackupBucket", "BackupBucketArgs", "PostgresBackup", "PostgresBackupArgs",
    "Postgres", "PostgresArgs", "Redis", "RedisArgs",
    "Logging", "LoggingArgs", "Monitoring", "MonitoringArgs",
    "RestrictedNamespace", "RestrictedNamespaceArgs",
    "StackSecrets", "StackSecretsArgs",
    "TlsIngress", "TlsIngressArgs", "GatewayEntry", "GatewayEntryArgs", "PublicEntry", "PublicEntryArgs",
]


def public_components() -> list:
    """Every ComponentResource class this package exports (hosted for other languages)."""
    return [obj for name in __all__ if _inspect.isclass(obj := globals()[name])
            and issubclass(obj, _pulumi.ComponentResource)]
