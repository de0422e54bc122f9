"""A restorable copy of the database before New API's master runs a new version.

New API migrates its schema when the master starts (GORM AutoMigrate, forward only, no
lock; NEWAPI-CONTRACT.md): an Argo abort or a rolling rollback brings the old pods back,
not the old schema. So when ``app.image`` moves to a new version, the stack first takes a
copy by the backend's native means and the master waits for it (its metadata carries the
copy's name, an input, so the engine orders the master after the copy is complete):

- ``aws``: an ``aws.rds.Snapshot`` named after the version (the provider waits until it is
  ``available``), kept when it leaves the program (``retain_on_delete``);
- ``cloudnative-pg``: a CloudNativePG ``Backup`` of the cluster, awaited until
  ``status.phase`` is ``completed`` (pulumi-kubernetes ``pulumi.com/waitFor``), retained
  (a recovery from it names the Backup object);
- ``kubernetes``: a Job per version running the backup CronJob's dump script to completion
  (pulumi-kubernetes waits for a Job to complete), built by ``PostgresBackup``.

"Which version runs now" is ``app.deployedVersion`` in the stack file, which the deploy
workflow advances after a deploy passes its smoke check (docs/runbook-upgrade.md): the copy
exists while ``app.image`` differs from it, and leaves the program (retained) once it is
advanced. A version older than it is refused unless ``app.allowDowngrade`` is set.
"""

from __future__ import annotations

import re
from typing import Optional

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from . import common

#: Annotation on the master Deployment naming the copy its version was deployed after.
SNAPSHOT_ANNOTATION = "new-api.io/pre-upgrade-snapshot"
RUNBOOK = "docs/runbook-upgrade.md"

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")


def image_version(image: str) -> Optional[str]:
    """The version tag of an image reference (``None`` when pinned by digest alone)."""
    _, tag = common.split_image(image)
    if tag.startswith("@"):
        return None
    return tag.split("@", 1)[0]


def version_key(version: str) -> tuple:
    """Semantic-version order (semver.org §11): numbers compare numerically, a pre-release
    (``-rc.25``) sorts before its release, its dot-separated parts numerically when numeric."""
    m = _VERSION.match(version or "")
    if not m:
        raise ValueError(f"{version!r} is not a version (vMAJOR.MINOR.PATCH[-PRERELEASE])")
    major, minor, patch, pre = m.groups()
    pre_key: tuple = (1,) if pre is None else (0, *[(0, int(p), "") if p.isdigit() else (1, 0, p)
                                                    for p in pre.split(".")])
    return int(major), int(minor), int(patch), pre_key


def slug(version: str) -> str:
    """A version as a resource-name part: lower case letters, digits, single hyphens."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", version.lower())).strip("-")


def needed(image: str, deployed_version: Optional[str]) -> Optional[str]:
    """The target version when this deploy upgrades a running database, else None (a new
    stack has nothing to copy; an unchanged version has its copy already)."""
    target = image_version(image)
    if not deployed_version or target is None or target == deployed_version:
        return None
    return target


def rds_snapshot(name: str, instance: aws.rds.Instance, version: str,
                 opts: Optional[pulumi.ResourceOptions] = None) -> aws.rds.Snapshot:
    """A manual RDS snapshot (kept after the stack: manual snapshots outlive the instance)."""
    return aws.rds.Snapshot(
        f"{name}-pre-upgrade-{slug(version)}",
        db_instance_identifier=instance.identifier,
        db_snapshot_identifier=instance.identifier.apply(lambda i: f"{i}-pre-upgrade-{slug(version)}"),
        tags={"purpose": "pre-upgrade", "new-api-version": version},
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(retain_on_delete=True)))


def cnpg_backup(name: str, namespace: pulumi.Input[str], cluster_name: pulumi.Input[str], version: str,
                labels: dict, opts: Optional[pulumi.ResourceOptions] = None) -> k8s.apiextensions.CustomResource:
    """An on-demand CloudNativePG Backup of the cluster (its object store, like the
    ScheduledBackup), awaited until completed."""
    object_name = f"{name}-pre-upgrade-{slug(version)}"
    return k8s.apiextensions.CustomResource(
        object_name,
        api_version="postgresql.cnpg.io/v1", kind="Backup",
        metadata=common.meta(object_name, namespace, labels, {
            # pulumi-kubernetes >= 4.18: the create waits for this condition (else it
            # returns as soon as the object exists, before any data is copied).
            "pulumi.com/waitFor": "jsonpath={.status.phase}=completed",
            "new-api.io/version": version}),
        spec={"cluster": {"name": cluster_name}, "method": "barmanObjectStore", "target": "primary"},
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(retain_on_delete=True)))


def object_name(resource: pulumi.Resource) -> pulumi.Output[str]:
    """``metadata.name`` of a Kubernetes object (typed ObjectMeta, or a plain map for a
    CustomResource), carrying the dependency on the object."""
    return resource.metadata.apply(lambda m: m["name"] if isinstance(m, dict) else m.name)
