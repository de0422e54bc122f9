"""Workload controls: one pod-template walker for Deployment, StatefulSet, DaemonSet, Job,
CronJob (its jobTemplate), ReplicaSet, Pod and Argo Rollout, over containers,
initContainers and ephemeralContainers, with pod-level securityContext as the default a
container overrides (K8S-031)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional, Tuple

from .framework import (Ctx, Res, fmt, get, is_map, items, num, resource_policy, truthy)

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod", "Rollout")
LONG_RUNNING = ("Deployment", "StatefulSet", "DaemonSet", "Rollout")
ALL_CONTAINERS = (("containers", "container"), ("initContainers", "init container"),
                  ("ephemeralContainers", "ephemeral container"))
MAIN_CONTAINERS = ALL_CONTAINERS[:1]

UID_FLOOR = 10000  # kube-score / checkov CKV_K8S_40


def is_workload(r: Res) -> bool:
    return r.is_k8s and r.kind in WORKLOAD_KINDS


def template_path(kind: str) -> Tuple[str, ...]:
    if kind == "Pod":
        return ()
    if kind == "CronJob":
        return ("spec", "jobTemplate", "spec", "template")
    return ("spec", "template")


@dataclass
class Container:
    field: str      # containers | initContainers | ephemeralContainers
    label: str      # container | init container | ephemeral container
    data: Mapping
    res: Res

    @property
    def name(self) -> str:
        return str(get(self.data, "name", default="?"))

    @property
    def where(self) -> str:
        return f'{self.label} "{self.name}" in {self.res.display}'

    @property
    def is_sidecar(self) -> bool:
        return self.field == "initContainers" and get(self.data, "restartPolicy") == "Always"


class Pod:
    """The pod template (or Pod) of a workload."""

    def __init__(self, res: Res, template: Mapping):
        self.res = res
        self.template = template
        self.spec = get(template, "spec", default={})

    @property
    def labels(self) -> Mapping:
        return get(self.template, "metadata", "labels", default={})

    @property
    def annotations(self) -> Mapping:
        return get(self.template, "metadata", "annotations", default={})

    def containers(self, which=ALL_CONTAINERS) -> Iterator[Container]:
        for fld, label in which:
            for c in items(get(self.spec, fld)):
                yield Container(fld, label, c, self.res)

    def sc(self, c: Container, key: str) -> Any:
        """Effective securityContext field: the container's, else the pod's."""
        v = get(c.data, "securityContext", key)
        if v is None:
            v = get(self.spec, "securityContext", key)
        return v

    def volumes(self):
        return items(get(self.spec, "volumes"))

    def mounts_of(self, volume_name: str):
        for c in self.containers():
            for m in items(get(c.data, "volumeMounts")):
                if get(m, "name") == volume_name:
                    yield c, m


def pod_of(res: Res) -> Optional[Pod]:
    if not is_workload(res):
        return None
    path = template_path(res.kind)
    template = get(res.props, *path) if path else res.props
    if not is_map(template) or not is_map(get(template, "spec")):
        return None  # e.g. a Rollout with workloadRef: no template of its own
    return Pod(res, template)


def pod_policy(policy_name: str, kinds=WORKLOAD_KINDS):
    """Decorate `fn(ctx, res, pod)`."""
    def deco(fn):
        def whole(ctx: Ctx, res: Res):
            pod = pod_of(res)
            if pod is not None:
                fn(ctx, res, pod)
        resource_policy(policy_name, lambda r: r.is_k8s and r.kind in kinds)(whole)
        return fn
    return deco


def container_policy(policy_name: str, kinds=WORKLOAD_KINDS, which=ALL_CONTAINERS):
    """Decorate `fn(ctx, res, pod, container)`: runs per container, an unknown skips only that one."""
    def deco(fn):
        def whole(ctx: Ctx, res: Res):
            pod = pod_of(res)
            if pod is None:
                return
            for c in pod.containers(which):
                with ctx.field():
                    fn(ctx, res, pod, c)
        resource_policy(policy_name, lambda r: r.is_k8s and r.kind in kinds)(whole)
        return fn
    return deco


# --------------------------------------------------------------------------- K8S-001..013


@container_policy("k8s-001-run-as-non-root")
def _non_root(ctx, res, pod, c):
    with ctx.field():
        if not truthy(pod.sc(c, "runAsNonRoot")):
            ctx.report(f"{c.where} does not set runAsNonRoot: true")
    for key, what in (("runAsUser", "UID"), ("runAsGroup", "GID")):
        with ctx.field():
            v = pod.sc(c, key)
            n = num(v)
            if v is None:
                ctx.report(f"{c.where} sets no {key} (the image decides the {what})")
            elif n is None or n < UID_FLOOR:
                ctx.report(f"{c.where} runs as {what} {fmt(v)}")


@container_policy("k8s-002-resource-requests")
def _requests(ctx, res, pod, c):
    for r in ("cpu", "memory"):
        with ctx.field():
            if get(c.data, "resources", "requests", r) in (None, ""):
                ctx.report(f"{c.where} has no {r} request", f"set resources.requests.{r}")


@container_policy("k8s-003-memory-limit")
def _mem_limit(ctx, res, pod, c):
    if get(c.data, "resources", "limits", "memory") in (None, ""):
        ctx.report(f"{c.where} has no memory limit")


@container_policy("k8s-003-cpu-limit")
def _cpu_limit(ctx, res, pod, c):
    if get(c.data, "resources", "limits", "cpu") in (None, ""):
        ctx.report(f"{c.where} has no CPU limit")


@container_policy("k8s-004-probes", kinds=LONG_RUNNING, which=MAIN_CONTAINERS)
def _probes(ctx, res, pod, c):
    for p in ("readinessProbe", "livenessProbe"):
        with ctx.field():
            if not is_map(get(c.data, p)):
                ctx.report(f"{c.where} has no {p}", f"add a {p} (httpGet on the health endpoint)")


@container_policy("k8s-005-no-privilege-escalation")
def _no_escalation(ctx, res, pod, c):
    v = get(c.data, "securityContext", "allowPrivilegeEscalation")
    if v is not False and not (isinstance(v, str) and v.lower() == "false"):
        ctx.report(f"{c.where} allows privilege escalation"
                   + ("" if v is None else f" (allowPrivilegeEscalation: {v})"))


@container_policy("k8s-006-drop-capabilities")
def _caps(ctx, res, pod, c):
    with ctx.field():
        drop = [str(x).upper() for x in items(get(c.data, "securityContext", "capabilities", "drop"))]
        if "ALL" not in drop:
            ctx.report(f"{c.where} does not drop ALL capabilities")
    with ctx.field():
        add = [str(x).upper().removeprefix("CAP_")
               for x in items(get(c.data, "securityContext", "capabilities", "add"))]
        extra = sorted(set(add) - {"NET_BIND_SERVICE"})
        if extra:
            ctx.report(f"{c.where} adds capabilities {', '.join(extra)}")


@container_policy("k8s-007-seccomp-profile")
def _seccomp(ctx, res, pod, c):
    t = get(c.data, "securityContext", "seccompProfile", "type")
    if t is None:
        t = get(pod.spec, "securityContext", "seccompProfile", "type")
    if t not in ("RuntimeDefault", "Localhost"):
        ctx.report(f"{c.where} runs with seccomp profile {t or 'unset (Unconfined)'}")


@container_policy("k8s-008-no-privileged")
def _privileged(ctx, res, pod, c):
    if truthy(get(c.data, "securityContext", "privileged")):
        ctx.report(f"{c.where} is privileged")


@pod_policy("k8s-009-no-host-namespaces")
def _host_ns(ctx, res, pod):
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        with ctx.field():
            if truthy(get(pod.spec, key)):
                ctx.report(f"{res.display} sets {key}: true", f"remove {key} from the pod spec")


@pod_policy("k8s-010-no-host-path")
def _host_path(ctx, res, pod):
    for v in pod.volumes():
        with ctx.field():
            if not is_map(get(v, "hostPath")):
                continue
            name = get(v, "name", default="?")
            path = get(v, "hostPath", "path", default="?")
            writable = [c.name for c, m in pod.mounts_of(name) if not truthy(get(m, "readOnly"))]
            if writable and res.exempts("K8S-010", ctx.settings):
                ctx.report(f'hostPath volume "{name}" ({path}) in {res.display} is mounted writable by '
                           f'{", ".join(writable)} although the K8S-010 exemption covers read-only access only',
                           "set readOnly: true on every volumeMount of the hostPath volume", exemptable=False)
            else:
                ctx.report(f'{res.display} mounts hostPath volume "{name}" ({path})')


@container_policy("k8s-011-no-host-port")
def _host_port(ctx, res, pod, c):
    for p in items(get(c.data, "ports")):
        with ctx.field():
            hp = get(p, "hostPort")
            if hp not in (None, 0):
                ctx.report(f"{c.where} binds hostPort {fmt(hp)}")


@container_policy("k8s-012-read-only-root-fs")
def _ro_root(ctx, res, pod, c):
    if not truthy(get(c.data, "securityContext", "readOnlyRootFilesystem")):
        ctx.report(f"{c.where} has a writable root filesystem")


# --------------------------------------------------------------------------- images

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def parse_image(image: str) -> Tuple[str, str, Optional[str], Optional[str]]:
    """(registry, repository path, tag, digest) with Docker Hub defaults applied."""
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    tag = None
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        image, tag = image.rsplit(":", 1)
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = "docker.io", image
        if "/" not in path:
            path = f"library/{path}"
    return registry, path, tag, digest


def registry_allowed(image: str, allowed) -> bool:
    registry, path, _, _ = parse_image(image)
    full = f"{registry}/{path}"
    for entry in allowed:
        entry = entry.strip().rstrip("/")
        if not entry:
            continue
        first = entry.split("/", 1)[0]
        if "." in first or ":" in first or first == "localhost":
            candidates = [entry]
        elif "/" in entry:
            candidates = [f"docker.io/{entry}"]
        else:  # Docker Hub namespace, or an official image
            candidates = [f"docker.io/{entry}", f"docker.io/library/{entry}"]
        if any(full == c or full.startswith(c + "/") for c in candidates):
            return True
    return False


def _image(c: Container) -> Optional[str]:
    img = get(c.data, "image")
    return img if isinstance(img, str) and img else None


@container_policy("k8s-013-image-tag-pinned")
def _tag(ctx, res, pod, c):
    img = _image(c)
    if img is None:
        ctx.report(f"{c.where} has no image", "set image to a versioned reference")
        return
    _, _, tag, digest = parse_image(img)
    if digest is None and (tag is None or tag == "latest"):
        ctx.report(f'{c.where} uses image "{img}" ({"latest" if tag else "no tag, i.e. latest"})')


@container_policy("k8s-013-image-digest")
def _digest(ctx, res, pod, c):
    img = _image(c)
    if img is not None and not _DIGEST.search(img):
        ctx.report(f'{c.where} uses image "{img}" without a digest (pinned only by tag in prod)')


@container_policy("k8s-014-allowed-registries")
def _registries(ctx, res, pod, c):
    img = _image(c)
    if img is not None and not registry_allowed(img, ctx.settings.allowed_registries):
        reg, path, _, _ = parse_image(img)
        ctx.report(f'{c.where} pulls "{img}" from {reg}/{path.rsplit("/", 1)[0]}, which is not an allowed registry')


@container_policy("k8s-050-image-pull-policy")
def _pull_policy(ctx, res, pod, c):
    img = _image(c)
    if img is None or _DIGEST.search(img):
        return
    pp = get(c.data, "imagePullPolicy")
    if pp != "Always":
        ctx.report(f'{c.where} uses imagePullPolicy {pp or "IfNotPresent (default)"} with the mutable tag "{img}"')


# --------------------------------------------------------------------------- K8S-015, 016, 047


def _automount_off(v) -> bool:
    return v is False or (isinstance(v, str) and v.lower() == "false")


@resource_policy("k8s-015-no-sa-token-automount",
                 lambda r: r.is_k8s and (r.kind in WORKLOAD_KINDS or r.kind == "ServiceAccount"))
def _automount(ctx, res):
    if res.kind == "ServiceAccount":
        v = get(res.props, "automountServiceAccountToken")
        if not _automount_off(v):
            ctx.report(f"{res.display} auto-mounts its token into every pod that uses it")
        return
    pod = pod_of(res)
    if pod is None:
        return
    v = get(pod.spec, "automountServiceAccountToken")
    if not _automount_off(v):
        ctx.report(f"{res.display} auto-mounts the service account token"
                   + (" (automountServiceAccountToken unset)" if v is None else ""))


SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|"
    r"(^|_)DSN$|CONN(ECTION)?_?STR(ING)?|AUTH_?KEY|SIGNING_?KEY|ENCRYPTION_?KEY)", re.I)
SECRET_NAME_OK = re.compile(r"(_FILE|_PATH|_DIR|_NAME|_REF|_LENGTH|_TTL|_EXPIRE\w*|_ENABLED)$", re.I)
CREDENTIAL_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@${}]+:[^/\s@${}]+@", re.I)


def secret_looking(name: str, value: Any) -> bool:
    if isinstance(value, str) and CREDENTIAL_URL.search(value):
        return True
    name = name.replace("-", "_").replace(".", "_")
    if not SECRET_NAME.search(name) or SECRET_NAME_OK.search(name):
        return False
    return isinstance(value, str) and value.strip() != "" and not value.startswith("/")


@resource_policy("k8s-016-secrets-not-literal",
                 lambda r: r.is_k8s and (r.kind in WORKLOAD_KINDS or r.kind == "ConfigMap"))
def _secret_literals(ctx, res):
    if res.kind == "ConfigMap":
        data = get(res.props, "data", default={})
        for key in data:
            with ctx.field():
                value = get(data, key)
                if CREDENTIAL_URL.search(str(value)):
                    ctx.report(f'{res.display} key "{key}" holds a URL with credentials')
                elif secret_looking(key, value if "\n" not in str(value) else ""):
                    ctx.report(f'{res.display} holds secret-looking key "{key}"')
        return
    pod = pod_of(res)
    if pod is None:
        return
    for c in pod.containers():
        for e in items(get(c.data, "env")):
            with ctx.field():
                if "value" not in e:
                    continue
                name = str(get(e, "name", default=""))
                if secret_looking(name, get(e, "value")):
                    ctx.report(f'{c.where} sets secret-looking env {name} as a literal value')


@pod_policy("k8s-047-own-service-account")
def _own_sa(ctx, res, pod):
    sa = get(pod.spec, "serviceAccountName") or get(pod.spec, "serviceAccount")
    if sa in (None, "", "default"):
        ctx.report(f"{res.display} runs under the default ServiceAccount")


# --------------------------------------------------------------------------- K8S-019, 023, 024


def replicas(res: Res) -> Optional[float]:
    return num(get(res.props, "spec", "replicas"))


@resource_policy("k8s-023-rolling-update-capacity", lambda r: r.is_k8s and r.kind == "Deployment")
def _rolling(ctx, res):
    st = get(res.props, "spec", "strategy", default={})
    kind = get(st, "type", default="RollingUpdate")
    if kind == "Recreate":
        ctx.report(f"{res.display} uses the Recreate strategy, which stops every pod before starting new ones")
        return
    mu = get(st, "rollingUpdate", "maxUnavailable")
    if mu is None:
        ctx.report(f"{res.display} keeps the default maxUnavailable of 25%")
    elif num(mu) != 0 and str(mu).strip() != "0%":
        ctx.report(f"{res.display} sets maxUnavailable: {fmt(mu)}")


@resource_policy("k8s-024-graceful-shutdown", lambda r: r.is_k8s and r.kind in ("Deployment", "Rollout"))
def _graceful(ctx, res):
    pod = pod_of(res)
    if pod is None:
        return
    serving = [c for c in pod.containers(MAIN_CONTAINERS) if items(get(c.data, "ports"))]
    if not serving:
        return
    with ctx.field():
        if get(pod.spec, "terminationGracePeriodSeconds") is None:
            ctx.report(f"{res.display} serves traffic but sets no terminationGracePeriodSeconds")
    for c in serving:
        with ctx.field():
            if not is_map(get(c.data, "lifecycle", "preStop")):
                ctx.report(f"{c.where} serves traffic but has no preStop hook",
                           "add lifecycle.preStop (a short sleep) so endpoints drain before SIGTERM")


# --------------------------------------------------------------------------- K8S-029, 030, 031


SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes"})
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
APPARMOR_OK = ("RuntimeDefault", "Localhost")
HANDLERS = ("livenessProbe", "readinessProbe", "startupProbe")


def _selinux(ctx, where, opts):
    if not is_map(opts):
        return
    t = get(opts, "type", default="")
    if t not in SELINUX_TYPES:
        ctx.report(f"{where} sets seLinuxOptions.type {t}")
    for k in ("user", "role"):
        if get(opts, k, default="") != "":
            ctx.report(f"{where} sets seLinuxOptions.{k}")


@pod_policy("k8s-029-pss-restricted-rest")
def _pss_rest(ctx, res, pod):
    with ctx.field():
        for s in items(get(pod.spec, "securityContext", "sysctls")):
            n = get(s, "name")
            if n not in SAFE_SYSCTLS:
                ctx.report(f"{res.display} sets unsafe sysctl {n}")
    with ctx.field():
        _selinux(ctx, res.display, get(pod.spec, "securityContext", "seLinuxOptions"))
    with ctx.field():
        t = get(pod.spec, "securityContext", "appArmorProfile", "type")
        if t is not None and t not in APPARMOR_OK:
            ctx.report(f"{res.display} sets appArmorProfile {t}")
    with ctx.field():
        if truthy(get(pod.spec, "securityContext", "windowsOptions", "hostProcess")):
            ctx.report(f"{res.display} sets windowsOptions.hostProcess")
    with ctx.field():
        for k in pod.annotations:
            if k.startswith("container.apparmor.security.beta.kubernetes.io/"):
                v = str(get(pod.annotations, k))
                if v != "runtime/default" and not v.startswith("localhost/"):
                    ctx.report(f"{res.display} annotates AppArmor {v}")
    for c in pod.containers():
        with ctx.field():
            pm = get(c.data, "securityContext", "procMount")
            if pm not in (None, "Default"):
                ctx.report(f"{c.where} sets procMount {pm}")
        with ctx.field():
            _selinux(ctx, c.where, get(c.data, "securityContext", "seLinuxOptions"))
        with ctx.field():
            t = get(c.data, "securityContext", "appArmorProfile", "type")
            if t is not None and t not in APPARMOR_OK:
                ctx.report(f"{c.where} sets appArmorProfile {t}")
        with ctx.field():
            if truthy(get(c.data, "securityContext", "windowsOptions", "hostProcess")):
                ctx.report(f"{c.where} sets windowsOptions.hostProcess")
        handlers = [(p, get(c.data, p)) for p in HANDLERS]
        handlers += [(f"lifecycle.{h}", get(c.data, "lifecycle", h)) for h in ("postStart", "preStop")]
        for label, h in handlers:
            with ctx.field():
                for kind in ("httpGet", "tcpSocket"):
                    if get(h, kind, "host") not in (None, ""):
                        ctx.report(f"{c.where} sets {label}.{kind}.host", "drop the host field (PSS: probes target the pod)")


SAFE_VOLUMES = ("configMap", "secret", "emptyDir", "projected", "downwardAPI", "persistentVolumeClaim",
                "csi", "ephemeral")


@pod_policy("k8s-030-volume-types")
def _volume_types(ctx, res, pod):
    for v in pod.volumes():
        with ctx.field():
            kinds = [k for k in v if k != "name"]
            bad = [k for k in kinds if k not in SAFE_VOLUMES and not (k == "hostPath" and res.exempts("K8S-010", ctx.settings))]
            for k in bad:
                ctx.report(f'{res.display} uses a {k} volume "{get(v, "name", default="?")}"')


@pod_policy("k8s-031-all-containers-covered")
def _coverage(ctx, res, pod):
    with ctx.field():
        for c in pod.containers(ALL_CONTAINERS[2:]):
            ctx.report(f"{c.where} is declared in the manifest",
                       "remove ephemeralContainers (they are added by kubectl debug, never declared)")
    with ctx.field():
        seen = {}
        for c in pod.containers():
            n = get(c.data, "name")
            if n in (None, ""):
                ctx.report(f"an unnamed {c.label} in {res.display} cannot be attributed by the container checks",
                           "give every container a unique name")
            elif n in seen:
                ctx.report(f'{c.label} name "{n}" in {res.display} repeats a {seen[n]} name',
                           "give every container (init and ephemeral too) a unique name")
            else:
                seen[n] = c.label


# --------------------------------------------------------------------------- K8S-035, 036, 037, 039


def _handler(p: Any):
    if not is_map(p):
        return None
    for k in ("httpGet", "tcpSocket", "grpc", "exec"):
        if is_map(get(p, k)):
            return (k, tuple(sorted((kk, str(get(p, k, kk))) for kk in get(p, k) if kk != "httpHeaders")))
    return None


@container_policy("k8s-035-distinct-probes", which=MAIN_CONTAINERS)
def _distinct_probes(ctx, res, pod, c):
    live, ready = _handler(get(c.data, "livenessProbe")), _handler(get(c.data, "readinessProbe"))
    if live is not None and live == ready and not is_map(get(c.data, "startupProbe")):
        ctx.report(f"{c.where} uses the same check for liveness and readiness, so a slow dependency restarts it")


@pod_policy("k8s-036-ephemeral-storage")
def _ephemeral(ctx, res, pod):
    for v in pod.volumes():
        with ctx.field():
            if "emptyDir" in v and get(v, "emptyDir", "sizeLimit") in (None, ""):
                ctx.report(f'emptyDir volume "{get(v, "name", default="?")}" in {res.display} has no sizeLimit',
                           "set emptyDir.sizeLimit")
    for c in pod.containers():
        with ctx.field():
            if get(c.data, "resources", "requests", "ephemeral-storage") in (None, ""):
                ctx.report(f"{c.where} has no ephemeral-storage request",
                           "set resources.requests.ephemeral-storage")


def is_backup(res: Res) -> bool:
    text = " ".join([res.name, str(res.k8s_name), str(get(res.labels, "app.kubernetes.io/component", default=""))])
    return bool(re.search(r"backup|dump|snapshot", text, re.I)) or get(res.annotations, "policy.new-api.io/backup-of") is not None


@resource_policy("k8s-037-job-bounds", lambda r: r.is_k8s and r.kind in ("Job", "CronJob"))
def _job_bounds(ctx, res):
    cron = res.kind == "CronJob"
    job = get(res.props, "spec", "jobTemplate", "spec", default={}) if cron else get(res.props, "spec", default={})
    prefix = "spec.jobTemplate.spec." if cron else "spec."
    with ctx.field():
        if get(job, "backoffLimit") is None:
            ctx.report(f"{res.display} sets no backoffLimit (default 6 retries)", f"set {prefix}backoffLimit")
    with ctx.field():
        if get(job, "activeDeadlineSeconds") is None:
            ctx.report(f"{res.display} sets no activeDeadlineSeconds, so a hung run never ends",
                       f"set {prefix}activeDeadlineSeconds")
    with ctx.field():
        rp = get(job, "template", "spec", "restartPolicy")
        if rp not in ("OnFailure", "Never"):
            ctx.report(f"{res.display} uses restartPolicy {rp or 'unset'}",
                       f"set {prefix}template.spec.restartPolicy: OnFailure or Never")
    if cron:
        with ctx.field():
            if get(res.props, "spec", "startingDeadlineSeconds") is None:
                ctx.report(f"{res.display} sets no startingDeadlineSeconds", "set spec.startingDeadlineSeconds")
        with ctx.field():
            hist = all(get(res.props, "spec", k) is not None
                       for k in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"))
            if not hist and get(job, "ttlSecondsAfterFinished") is None:
                ctx.report(f"{res.display} sets neither job history limits nor ttlSecondsAfterFinished",
                           "set spec.successfulJobsHistoryLimit and failedJobsHistoryLimit")
        with ctx.field():
            if is_backup(res) and get(res.props, "spec", "concurrencyPolicy") != "Forbid":
                ctx.report(f"backup {res.display} lets runs overlap "
                           f"(concurrencyPolicy {get(res.props, 'spec', 'concurrencyPolicy', default='Allow')})",
                           "set spec.concurrencyPolicy: Forbid")
    else:
        with ctx.field():
            if get(job, "ttlSecondsAfterFinished") is None:
                ctx.report(f"{res.display} sets no ttlSecondsAfterFinished, so finished pods pile up",
                           "set spec.ttlSecondsAfterFinished")


@resource_policy("k8s-039-no-bare-pods", is_workload)
def _bare_pod(ctx, res):
    if res.kind == "Pod":
        ctx.report(f"{res.display} is a bare Pod that nothing reschedules")
