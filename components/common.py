"""Shared building blocks for every component: labels, metadata, the restricted
security context, probes, resources and volumes.

Each fact lives here once. Components compose these helpers instead of writing
their own pod security settings, so a change to the hardening baseline (Pod
Security Standards ``restricted``, CONTROLS.md K8S-001..K8S-012, K8S-029) is a
one-line change that every workload picks up.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional, Sequence

PART_OF = "new-api"
MANAGED_BY = "pulumi"

#: One non-root UID (and the same GID) per workload: the only table of them. Linux lets a
#: process read ``/proc/<pid>/environ`` (and ``mem``, ``fd/``) of any process with the same
#: UID and GID (proc(5): access mode PTRACE_MODE_READ_FSCREDS; kernel ``ptrace_may_access``),
#: so two workloads sharing a UID can read each other's secrets wherever their processes
#: meet: a node agent with the host's PID namespace or the host's ``/proc`` sees every
#: pod's processes (issue 13 item 4; policy STK-005). kube-score and checkov (CKV_K8S_40)
#: flag UIDs below 10000. Components name their workload (``restricted_pod_spec(identity=)``);
#: pods of one application (New API's serving, master and bootstrap pods) share its entry.
WORKLOAD_UIDS: dict[str, int] = {
    # PostgreSQL refuses a data directory owned by another user, and the in-cluster
    # server's existing volumes are owned by 10001: it keeps the UID every workload had.
    "postgres": 10001,
    "new-api": 10002,
    "postgres-backup": 10003,       # dump CronJob and restore Job
    "postgres-roles": 10004,        # RDS roles bootstrap Job
    "postgres-exporter": 10005,
    "redis": 10006,
    "redis-exporter": 10007,        # the ElastiCache exporter (aws backend)
    "rds-exporter": 10008,          # prometheus-rds-exporter (aws backend; RDS API via IRSA)
    "prometheus": 10010,
    "alertmanager": 10011,
    "grafana": 10012,
    "kube-state-metrics": 10013,
    "blackbox-exporter": 10014,
    "prometheus-adapter": 10015,
    "elasticsearch": 10020,
    "elasticsearch-setup": 10021,
    "kibana": 10022,
    "kibana-setup": 10023,
    "logstash": 10024,
    # node agents: host paths on every node, so never a UID any pod shares
    "node-exporter": 10030,
    "filebeat": 10031,
}
assert len(set(WORKLOAD_UIDS.values())) == len(WORKLOAD_UIDS), "two workloads share a UID"

#: The UID a container security context carries until ``restricted_pod_spec`` stamps the
#: workload's own on it (so a container built apart from a pod is still non-root).
RUNTIME_UID = RUNTIME_GID = WORKLOAD_UIDS["postgres"]


def workload_uid(identity: str) -> int:
    """The UID (= GID) of a workload, from WORKLOAD_UIDS."""
    if identity not in WORKLOAD_UIDS:
        raise ValueError(f"workload identity {identity!r} has no entry in components.common.WORKLOAD_UIDS: "
                         "add one with a UID no other workload uses")
    return WORKLOAD_UIDS[identity]

#: RFC 1918 ranges: where nodes and the API server live when a stack does not say.
PRIVATE_CIDRS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
#: Link-local: the instance metadata service (169.254.169.254) and its IPv6 twin.
LINK_LOCAL_CIDRS = ("169.254.0.0/16", "fe80::/10")
#: Never reached through a "public destinations" egress rule (issue 13 item 7): RFC 1918,
#: shared address space (RFC 6598: carrier NAT, and pod ranges of some clusters),
#: link-local, IPv6 unique-local. The API server, the nodes, every in-cluster and VPC
#: service live here; a gateway that fetches user-supplied URLs must not reach them.
NON_PUBLIC_CIDRS = (*PRIVATE_CIDRS, "100.64.0.0/10", *LINK_LOCAL_CIDRS, "fc00::/7")
#: Destinations of an egress rule "anywhere public" (IPv4 and IPv6).
ANYWHERE = ("0.0.0.0/0",)

#: Annotation keys honoured by the policy pack (policy/newapi_policy/exemptions.py).
EXEMPT_CONTROLS_ANNOTATION = "policy.new-api.io/exempt-controls"
EXEMPT_REASON_ANNOTATION = "policy.new-api.io/exempt-reason"
#: checkov's reasoned skip annotation (``checkov.io/skip1``, ``skip2``, ...).
CHECKOV_SKIP_PREFIX = "checkov.io/skip"
#: Annotation naming the datastore (``<namespace>/<workload>`` or ``<workload>``) a backup
#: CronJob, or a Job installing a snapshot schedule, protects (policy STK-003).
BACKUP_OF_ANNOTATION = "policy.new-api.io/backup-of"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_QUANTITY_FACTORS = {
    None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


# --------------------------------------------------------------------------- validation

def is_dns_label(value: str, max_len: int = 63) -> bool:
    """True when ``value`` is an RFC 1123 label (Kubernetes object and namespace names)."""
    return isinstance(value, str) and len(value) <= max_len and bool(_DNS_LABEL.match(value))


def parse_quantity(value: str) -> float:
    """Parse a Kubernetes quantity (``250m``, ``512Mi``, ``2``) into a float of base units.

    Raises ``ValueError`` for anything that is not a non-negative quantity.
    """
    match = _QUANTITY.match(str(value))
    if not match:
        raise ValueError(
            f"{value!r} is not a Kubernetes quantity (examples: 250m, 1, 512Mi, 2Gi)"
        )
    return float(match.group(1)) * _QUANTITY_FACTORS[match.group(3)]


def split_image(ref: str) -> tuple[str, str]:
    """Split ``registry/repo:tag`` (or ``...@sha256:digest``) into (repository, tag-or-digest).

    Raises ``ValueError`` when the reference carries no tag, or the tag is ``latest``:
    a moving tag is never production-grade (New API moves ``latest`` with every
    release candidate, NEWAPI-CONTRACT.md §7).
    """
    if not isinstance(ref, str) or not ref or any(c.isspace() for c in ref):
        raise ValueError(f"{ref!r} is not an image reference")
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        if not re.match(r"^sha256:[0-9a-f]{64}$", digest):
            raise ValueError(f"{ref!r} has a malformed digest (expected @sha256:<64 hex>)")
        return repo, "@" + digest
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        raise ValueError(f"{ref!r} has no tag: pin a version such as {ref}:<version>")
    repo, tag = ref.rsplit(":", 1)
    if tag == "latest":
        raise ValueError(f"{ref!r} uses the moving tag 'latest': pin a version tag")
    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", tag):
        raise ValueError(f"{ref!r} has an invalid tag {tag!r}")
    return repo, tag


def require(condition: bool, arg: str, message: str) -> None:
    """Raise the component-argument error used across components (names the arg)."""
    if not condition:
        raise ValueError(f"{arg}: {message}")


# --------------------------------------------------------------------------- labels and metadata

def labels(name: str, instance: str, component: str, extra: Optional[Mapping[str, str]] = None) -> dict:
    """The standard ``app.kubernetes.io`` labels (K8S-028) for one object."""
    out = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    out.update(extra or {})
    return out


def selector(name: str, instance: str, component: str) -> dict:
    """The immutable subset of :func:`labels` used in selectors."""
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
    }


def meta(name: Any, namespace: Any, object_labels: Mapping[str, str],
         annotations: Optional[Mapping[str, Any]] = None) -> dict:
    """ObjectMeta with an explicit, stable name (other objects refer to it by name)."""
    out: dict = {"name": name, "labels": dict(object_labels)}
    if namespace is not None:
        out["namespace"] = namespace
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def exemption_annotations(controls: Sequence[str], reason: str, checkov: Sequence[str] = ()) -> dict:
    """Annotations that exempt one workload from the named policy controls, with the reason.

    ``checkov``: the checkov checks the same waiver covers (e.g. CKV_K8S_19 for host network
    under K8S-009); each becomes ``checkov.io/skip<N>: <CHECK_ID>=<reason>``, the one way
    this stack skips a checkov finding (tools/checkov_scan.py runs checkov on the synth).
    checkov reads them from the object's own ``metadata.annotations`` only, not from a pod
    template, and splits the value at ``=`` (checkov/kubernetes/kubernetes_utils.py,
    ``get_skipped_checks``). The policy pack honours the exemption only where its per-stack
    config allows it (policy/newapi_policy/exemptions.py)."""
    if checkov and "=" in reason:
        raise ValueError(f"exemption reason {reason!r}: checkov splits its skip annotation at '=', leave it out")
    out = {EXEMPT_CONTROLS_ANNOTATION: ",".join(controls), EXEMPT_REASON_ANNOTATION: reason}
    out.update({f"{CHECKOV_SKIP_PREFIX}{n}": f"{check}={reason}" for n, check in enumerate(checkov, 1)})
    return out


# --------------------------------------------------------------------------- security context

def pod_security_context(uid: int = RUNTIME_UID, gid: int = RUNTIME_GID) -> dict:
    """Pod-level restricted context: non-root UID/GID, fsGroup for writable emptyDirs, seccomp."""
    return {
        "run_as_non_root": True,
        "run_as_user": uid,
        "run_as_group": gid,
        "fs_group": gid,
        "fs_group_change_policy": "OnRootMismatch",
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def container_security_context(uid: int = RUNTIME_UID, gid: int = RUNTIME_GID) -> dict:
    """Container-level restricted context (PSS restricted + read-only root filesystem)."""
    return {
        "run_as_non_root": True,
        "run_as_user": uid,
        "run_as_group": gid,
        "allow_privilege_escalation": False,
        "privileged": False,
        "read_only_root_filesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


# --------------------------------------------------------------------------- resources

def resources(cpu_request: str, memory_request: str, memory_limit: str,
              cpu_limit: Optional[str] = None, ephemeral_request: str = "64Mi",
              ephemeral_limit: Optional[str] = "1Gi") -> dict:
    """Requests and limits. Memory is always limited (K8S-003); CPU limit is optional
    (a CPU limit throttles a latency-sensitive gateway; it is advisory in the pack)."""
    requests = {"cpu": cpu_request, "memory": memory_request, "ephemeral-storage": ephemeral_request}
    limits = {"memory": memory_limit}
    if cpu_limit:
        limits["cpu"] = cpu_limit
    if ephemeral_limit:
        limits["ephemeral-storage"] = ephemeral_limit
    return {"requests": requests, "limits": limits}


def resources_of(spec: dict, ephemeral_request: str = "64Mi") -> dict:
    """:func:`resources` from a ``{cpu_request, memory_request, memory_limit, cpu_limit}`` dict."""
    return resources(spec["cpu_request"], spec["memory_request"], spec["memory_limit"],
                     spec.get("cpu_limit") or None, ephemeral_request=ephemeral_request)


# --------------------------------------------------------------------------- network

def public_egress_peers(cidrs: Sequence[str]) -> list:
    """NetworkPolicy ``ipBlock`` peers for destinations outside the cluster: each CIDR
    minus every non-public range inside it (``NON_PUBLIC_CIDRS``; an ``except`` entry must
    lie within its ``cidr``, Kubernetes API ``IPBlock``). A CIDR that is itself inside a
    private range is an explicit choice (a self-hosted model server) and kept whole;
    link-local is refused (the metadata endpoint is never a destination)."""
    import ipaddress

    peers = []
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr, strict=True)
        require(not any(net.overlaps(ipaddress.ip_network(r)) for r in LINK_LOCAL_CIDRS
                        if ipaddress.ip_network(r).version == net.version and not ipaddress.ip_network(r).subnet_of(net)),
                "egress cidrs", f"{cidr} overlaps link-local (the instance metadata service)")
        inside = [r for r in map(ipaddress.ip_network, NON_PUBLIC_CIDRS)
                  if r.version == net.version and r.subnet_of(net) and r != net]
        block: dict = {"cidr": cidr}
        if inside:
            block["except"] = [str(r) for r in inside]
        peers.append({"ip_block": block})
    return peers


def tcp(*ports: int) -> list:
    """NetworkPolicy port entries."""
    return [{"protocol": "TCP", "port": p} for p in ports]


def namespace_peer(namespace: Any, pod_labels: Optional[Mapping[str, str]] = None) -> dict:
    """A NetworkPolicy peer: the pods of a namespace (optionally only those with ``pod_labels``)."""
    peer: dict = {"namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": namespace}}}
    if pod_labels:
        peer["pod_selector"] = {"match_labels": dict(pod_labels)}
    return peer


def client_peers(clients: Sequence[Mapping]) -> list:
    """NetworkPolicy peers for ``[{pod_labels, namespace?}]`` (same namespace when unset)."""
    return [namespace_peer(c["namespace"], c["pod_labels"]) if c.get("namespace")
            else {"pod_selector": {"match_labels": dict(c["pod_labels"])}} for c in clients]


def service_spec(selector_labels: Mapping[str, str], ports: Sequence[tuple], *, headless: bool = False) -> dict:
    """A Service spec; ``ports`` are ``(name, port)`` pairs targeting the container port of
    the same name (or ``(name, port, target)``). Headless Services give StatefulSet pods DNS."""
    spec: dict = {"selector": dict(selector_labels),
                  "ports": [{"name": p[0], "port": p[1], "target_port": p[2] if len(p) > 2 else p[0],
                             "protocol": "TCP"} for p in ports]}
    if headless:
        spec["cluster_ip"] = "None"
    else:
        spec["type"] = "ClusterIP"
    return spec


# --------------------------------------------------------------------------- storage

def ephemeral_volume(name: str, size: str, storage_class: Optional[str] = None) -> dict:
    """Scratch space on a volume created and deleted with the pod (generic ephemeral
    volume): unlike a large emptyDir it neither counts against the node's ephemeral storage
    (where the kubelet evicts on the containers' limits) nor is left unreserved."""
    spec: dict = {"access_modes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storage_class_name"] = storage_class
    return {"name": name, "ephemeral": {"volume_claim_template": {"spec": spec}}}


def volume_claim(name: str, labels_: Mapping[str, str], size: str, storage_class: Optional[str] = None) -> dict:
    """A StatefulSet volume claim template (ReadWriteOnce)."""
    spec: dict = {"access_modes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storage_class_name"] = storage_class
    return {"metadata": {"name": name, "labels": dict(labels_)}, "spec": spec}


# --------------------------------------------------------------------------- probes

def http_probe(path: str, port: Any, *, period: int, timeout: int, failures: int,
               initial_delay: int = 0) -> dict:
    """An HTTP GET probe."""
    probe = {
        "http_get": {"path": path, "port": port, "scheme": "HTTP"},
        "period_seconds": period,
        "timeout_seconds": timeout,
        "failure_threshold": failures,
    }
    if initial_delay:
        probe["initial_delay_seconds"] = initial_delay
    return probe


def tcp_probe(port: Any, *, period: int, timeout: int, failures: int) -> dict:
    """A TCP connect probe (used for liveness where the HTTP endpoint depends on other services)."""
    return {
        "tcp_socket": {"port": port},
        "period_seconds": period,
        "timeout_seconds": timeout,
        "failure_threshold": failures,
    }


def exec_probe(command: Sequence[str], *, period: int, timeout: int, failures: int) -> dict:
    """An exec probe."""
    return {
        "exec_": {"command": list(command)},
        "period_seconds": period,
        "timeout_seconds": timeout,
        "failure_threshold": failures,
    }


# --------------------------------------------------------------------------- availability

#: Rolling update that never drops below the desired count (seed 002 §3.2, K8S-023).
ZERO_DOWNTIME_ROLLING = {"type": "RollingUpdate", "rolling_update": {"max_unavailable": 0, "max_surge": 1}}


def pre_stop_sleep(seconds: int) -> dict:
    """A preStop pause so endpoints are removed before SIGTERM (K8S-024). The kubelet's own
    sleep action (Kubernetes >= 1.30) needs no shell or sleep binary in the image."""
    return {"pre_stop": {"sleep": {"seconds": seconds}}}


def draining(container_: dict, seconds: int = 5) -> dict:
    """The container with a preStop pause (serving containers of Deployments)."""
    return {**container_, "lifecycle": pre_stop_sleep(seconds)}


def container(name: str, image: str, resources_: dict, **fields) -> dict:
    """A container with the restricted security context; other fields (args, env, ports,
    probes, volume_mounts, lifecycle...) are passed through when set."""
    c: dict = {"name": name, "image": image, "image_pull_policy": fields.pop("image_pull_policy", "IfNotPresent"),
               "resources": resources_, "security_context": container_security_context()}
    c.update({k: v for k, v in fields.items() if v})
    return c


# --------------------------------------------------------------------------- volumes

def empty_dir(name: str, size_limit: str, medium: Optional[str] = None) -> dict:
    """A size-limited emptyDir volume (K8S-036: an unbounded emptyDir can fill the node)."""
    spec: dict = {"size_limit": size_limit}
    if medium:
        spec["medium"] = medium
    return {"name": name, "empty_dir": spec}


def mount(name: str, path: str, read_only: bool = False, sub_path: Optional[str] = None) -> dict:
    out: dict = {"name": name, "mount_path": path}
    if read_only:
        out["read_only"] = True
    if sub_path:
        out["sub_path"] = sub_path
    return out


def secret_env(name: str, secret_name: Any, key: str) -> dict:
    """An env var read from a Secret key (K8S-016: secrets never as literals)."""
    return {"name": name, "value_from": {"secret_key_ref": {"name": secret_name, "key": key}}}


def field_env(name: str, field_path: str) -> dict:
    """An env var from the downward API (``metadata.name`` ...)."""
    return {"name": name, "value_from": {"field_ref": {"field_path": field_path}}}


def resource_env(name: str, container: str, resource: str, divisor: str = "1") -> dict:
    """An env var from the container's own resource limits (GOMAXPROCS, GOMEMLIMIT)."""
    return {
        "name": name,
        "value_from": {
            "resource_field_ref": {"container_name": container, "resource": resource, "divisor": divisor}
        },
    }


# --------------------------------------------------------------------------- pod spec

def topology_spread(selector_labels: Mapping[str, str]) -> list:
    """Spread replicas across zones (best effort) and nodes (best effort) (K8S-019)."""
    return [
        {
            "max_skew": 1,
            "topology_key": key,
            "when_unsatisfiable": "ScheduleAnyway",
            "label_selector": {"match_labels": dict(selector_labels)},
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def restricted_pod_spec(*, service_account: Any, containers: list, volumes: Optional[list] = None,
                        init_containers: Optional[list] = None, spread_labels: Optional[Mapping[str, str]] = None,
                        termination_grace_seconds: Optional[int] = None, restart_policy: Optional[str] = None,
                        priority_class: Optional[str] = None, automount_token: bool = False,
                        identity: str) -> dict:
    """A pod spec with the restricted baseline: own ServiceAccount, no token unless asked,
    pod security context, no host namespaces (left at their false defaults). ``identity``
    names the workload in WORKLOAD_UIDS: the pod and every container run as its UID/GID."""
    uid = gid = workload_uid(identity)
    for c in [*containers, *(init_containers or [])]:
        sc = c.get("security_context") if isinstance(c, dict) else None
        if isinstance(sc, dict) and "run_as_user" in sc:
            sc.update({"run_as_user": uid, "run_as_group": gid})
    spec: dict = {
        "service_account_name": service_account,
        "automount_service_account_token": automount_token,
        "security_context": pod_security_context(uid, gid),
        "enable_service_links": False,
        "containers": containers,
    }
    if volumes:
        spec["volumes"] = volumes
    if init_containers:
        spec["init_containers"] = init_containers
    if spread_labels:
        spec["topology_spread_constraints"] = topology_spread(spread_labels)
    if termination_grace_seconds is not None:
        spec["termination_grace_period_seconds"] = termination_grace_seconds
    if restart_policy:
        spec["restart_policy"] = restart_policy
    if priority_class:
        spec["priority_class_name"] = priority_class
    return spec
