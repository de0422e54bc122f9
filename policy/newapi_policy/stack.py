"""Stack-level controls: they need more than one resource (NetworkPolicies per namespace,
PDBs per workload, references between objects, protection, backups, monitoring)."""
from __future__ import annotations

import functools
import re
from typing import Any, List, Mapping, Optional, Tuple

import yaml

from .aws import BUCKETS, EC_CLUSTER, EC_RG, KMS_KEY, RDS
from .framework import (Res, Stack, fmt, get, is_map, items, num, plain, stack_policy, truthy)
from .k8s_workloads import Pod, parse_image, pod_of, replicas

SCALABLE = ("Deployment", "StatefulSet", "ReplicaSet", "Rollout")
LONG_RUNNING = ("Deployment", "StatefulSet", "DaemonSet", "Rollout")
SERVING_COMPONENTS = ("serving", "api", "web", "frontend", "gateway", "app", "server")
OBSERVABILITY = re.compile(r"logging|monitoring|metrics|observability|filebeat|fluent|logstash|elasticsearch|kibana|"
                           r"prometheus|grafana|alertmanager|node-exporter|kube-state-metrics|loki|promtail", re.I)


# --------------------------------------------------------------------------- shared lookups


def selector_matches(selector: Any, labels: Mapping, *, empty_matches: bool = False) -> bool:
    """A LabelSelector (matchLabels/matchExpressions) or a plain map (Service) against labels."""
    if not is_map(selector):
        return False
    if "matchLabels" in selector or "matchExpressions" in selector:
        ml = get(selector, "matchLabels", default={})
        exprs = items(get(selector, "matchExpressions"))
    else:
        ml, exprs = selector, []
    if not ml and not exprs:
        return empty_matches
    for k in ml:
        if get(labels, k) != get(ml, k):
            return False
    for e in exprs:
        key, op, vals = get(e, "key"), get(e, "operator"), [str(v) for v in items(get(e, "values"))]
        have = key in labels
        v = get(labels, key) if have else None
        if (op == "In" and (not have or v not in vals)) or (op == "NotIn" and have and v in vals) or \
           (op == "Exists" and not have) or (op == "DoesNotExist" and have):
            return False
    return True


def is_empty_selector(selector: Any) -> bool:
    return not is_map(selector) or (not get(selector, "matchLabels", default={})
                                    and not items(get(selector, "matchExpressions")))


class Workload:
    def __init__(self, res: Res, pod: Pod):
        self.res, self.pod = res, pod

    @property
    def ns(self):
        return self.res.namespace

    @property
    def pod_labels(self):
        return self.pod.labels


def workloads(stack: Stack, kinds=("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet",
                                   "Pod", "Rollout")) -> List[Workload]:
    out = []
    for r in stack.k8s(*kinds):
        p = pod_of(r) or _workload_ref_pod(stack, r)
        if p is not None:
            out.append(Workload(r, p))
    return out


def _workload_ref_pod(stack: Stack, r: Res) -> Optional[Pod]:
    """A Rollout with ``spec.workloadRef`` runs the pod template of the Deployment it names
    (same namespace): for the stack-level controls it is a workload with that pod."""
    if r.kind != "Rollout":
        return None
    ref = get(r.props, "spec", "workloadRef")
    if not is_map(ref) or get(ref, "kind") != "Deployment":
        return None
    for d in stack.k8s("Deployment"):
        if d.namespace == r.namespace and d.k8s_name == get(ref, "name"):
            template = get(d.props, "spec", "template")
            return Pod(r, template) if is_map(template) and is_map(get(template, "spec")) else None
    return None


def hpa_for(stack: Stack, w: Res) -> Optional[Res]:
    for h in stack.k8s("HorizontalPodAutoscaler"):
        ref = get(h.props, "spec", "scaleTargetRef", default={})
        if (h.namespace == w.namespace and get(ref, "kind") == w.kind and get(ref, "name") == w.k8s_name):
            return h
    return None


def selected_by(stack: Stack, kind: str, w: Workload, path=("spec", "selector")) -> List[Res]:
    return [o for o in stack.k8s(kind) if o.namespace == w.ns
            and selector_matches(get(o.props, *path), w.pod_labels)]


def effective_replicas(stack: Stack, w: Res) -> Tuple[Optional[float], Optional[Res]]:
    """(minimum replicas, hpa): the HPA's minReplicas when one targets w, else spec.replicas (default 1)."""
    h = hpa_for(stack, w)
    if h is not None:
        return num(get(h.props, "spec", "minReplicas", default=1)), h
    n = replicas(w)
    return (1 if n is None else n), None


# --------------------------------------------------------------------------- K8S-017


def _types(np: Res) -> List[str]:
    t = [str(x) for x in items(get(np.props, "spec", "policyTypes"))]
    return t or ["Ingress"] + (["Egress"] if "egress" in get(np.props, "spec", default={}) else [])


def _allows_dns(np: Res) -> bool:
    for rule in items(get(np.props, "spec", "egress")):
        for p in items(get(rule, "ports")):
            if num(get(p, "port")) == 53 or get(p, "port") in ("dns", "dns-tcp"):
                return True
    return False


@stack_policy("k8s-017-network-policies")
def _netpols(ctx, stack):
    nps = stack.k8s("NetworkPolicy")
    ws = workloads(stack)
    namespaces = {}
    for n in stack.k8s("Namespace"):
        with ctx.field():
            namespaces[n.k8s_name] = n
    for w in ws:
        with ctx.field():
            if w.ns and w.ns not in namespaces:
                namespaces[w.ns] = w.res
    for ns, owner in sorted(namespaces.items()):
        with ctx.field():
            local = [p for p in nps if p.namespace == ns]
            deny = [p for p in local if is_empty_selector(get(p.props, "spec", "podSelector"))]
            for direction in ("Ingress", "Egress"):
                key = direction.lower()
                if not any(direction in _types(p) and not items(get(p.props, "spec", key)) for p in deny):
                    ctx.report(f"namespace {ns} has no default-deny {direction} NetworkPolicy",
                               f"add a NetworkPolicy with podSelector: {{}} and policyTypes: [{direction}] "
                               f"and no {key} rules", res=owner)
            if not any(_allows_dns(p) for p in local):
                ctx.report(f"namespace {ns} has no NetworkPolicy allowing DNS egress",
                           "allow egress to kube-dns on UDP and TCP port 53", res=owner)
    for w in ws:
        with ctx.field():
            mine = [p for p in nps if p.namespace == w.ns
                    and not is_empty_selector(get(p.props, "spec", "podSelector"))
                    and selector_matches(get(p.props, "spec", "podSelector"), w.pod_labels)]
            types = {t for p in mine for t in _types(p)}
            missing = [t for t in ("Ingress", "Egress") if t not in types]
            if missing:
                ctx.report(f"{w.res.display} has no NetworkPolicy of its own declaring {' and '.join(missing)} rules",
                           "add a NetworkPolicy selecting its pod labels with policyTypes [Ingress, Egress] "
                           "and explicit ingress/egress rules", res=w.res)


# --------------------------------------------------------------------------- K8S-018, 032, 033, 034


@stack_policy("k8s-018-pdb-for-multi-replica")
def _pdb_needed(ctx, stack):
    for w in workloads(stack, SCALABLE):
        with ctx.field():
            n, hpa = effective_replicas(stack, w.res)
            hi = num(get(hpa.props, "spec", "maxReplicas")) if hpa is not None else None
            if (n is not None and n > 1) or (hi is not None and hi > 1):
                if not selected_by(stack, "PodDisruptionBudget", w):
                    ctx.report(f"{w.res.display} runs {'up to ' + fmt(hi) if hpa is not None else fmt(n)} replicas "
                               "without a PodDisruptionBudget", res=w.res)


@stack_policy("k8s-019-spread-replicas")
def _spread(ctx, stack):
    """A stack check so that HPA-managed workloads (spec.replicas unset, K8S-033) count by the HPA."""
    for w in workloads(stack, ("Deployment", "StatefulSet", "Rollout")):
        with ctx.field():
            n, hpa = effective_replicas(stack, w.res)
            hi = num(get(hpa.props, "spec", "maxReplicas")) if hpa is not None else None
            if not ((n is not None and n > 1) or (hi is not None and hi > 1)):
                continue
            if not items(get(w.pod.spec, "topologySpreadConstraints")) and \
                    not is_map(get(w.pod.spec, "affinity", "podAntiAffinity")):
                ctx.report(f"{w.res.display} runs {'up to ' + fmt(hi) if hpa is not None else fmt(n)} replicas "
                           "with no topologySpreadConstraints or podAntiAffinity", res=w.res)


@stack_policy("k8s-032-pdb-sane")
def _pdb_sane(ctx, stack):
    ws = workloads(stack, SCALABLE + ("DaemonSet",))
    for pdb in stack.k8s("PodDisruptionBudget"):
        with ctx.field():
            spec = get(pdb.props, "spec", default={})
            sel = get(spec, "selector")
            if is_empty_selector(sel):
                ctx.report(f"{pdb.display} has an empty selector, which covers every pod in the namespace",
                           "select the workload's pod labels", res=pdb)
                continue
            targets = [w for w in ws if w.ns == pdb.namespace and selector_matches(sel, w.pod_labels)]
            if not targets:
                ctx.report(f"{pdb.display} selects no workload's pods in namespace {pdb.namespace}", res=pdb)
                continue
            mu, ma = get(spec, "maxUnavailable"), get(spec, "minAvailable")
            if mu is None and ma is None:
                ctx.report(f"{pdb.display} sets neither maxUnavailable nor minAvailable", "set maxUnavailable: 1",
                           res=pdb)
            if mu is not None and (num(mu) == 0 or str(mu).strip() == "0%"):
                ctx.report(f"{pdb.display} sets maxUnavailable: {fmt(mu)}, so no pod can ever be evicted",
                           "set maxUnavailable: 1", res=pdb)
            if ma is not None:
                if isinstance(ma, str) and ma.strip() == "100%":
                    ctx.report(f"{pdb.display} requires 100% of pods available", "set maxUnavailable: 1", res=pdb)
                elif num(ma) is not None:
                    for w in targets:
                        n, _ = effective_replicas(stack, w.res)
                        if n is not None and num(ma) >= n:
                            ctx.report(f"{pdb.display} requires minAvailable {fmt(ma)} of {w.res.display}'s "
                                       f"{fmt(n)} replica(s), blocking every drain",
                                       "set maxUnavailable: 1 or minAvailable below the replica count", res=pdb)


@stack_policy("k8s-033-hpa-replicas-unset")
def _hpa_replicas(ctx, stack):
    for w in stack.k8s("Deployment", "Rollout"):
        with ctx.field():
            h = hpa_for(stack, w)
            if h is not None and get(w.props, "spec", "replicas") is not None:
                ctx.report(f"{w.display} sets spec.replicas: {fmt(get(w.props, 'spec', 'replicas'))} although "
                           f"{h.display} scales it", res=w)


def ingress_services(stack: Stack) -> set:
    out = set()
    for ing in stack.k8s("Ingress"):
        for b in _ingress_backends(ing):
            out.add((ing.namespace, get(b, "service", "name")))
    return out


def _ingress_backends(ing: Res):
    d = get(ing.props, "spec", "defaultBackend")
    if is_map(d):
        yield d
    for r in items(get(ing.props, "spec", "rules")):
        for p in items(get(r, "http", "paths")):
            b = get(p, "backend")
            if is_map(b):
                yield b


def is_serving(stack: Stack, w: Workload, exposed: set) -> bool:
    if str(get(w.res.labels, "app.kubernetes.io/component", default="")) in SERVING_COMPONENTS:
        return True
    return any((s.namespace, s.k8s_name) in exposed for s in selected_by(stack, "Service", w))


@stack_policy("k8s-034-prod-min-replicas")
def _prod_replicas(ctx, stack):
    floor = ctx.settings.min_prod_replicas
    exposed = ingress_services(stack)
    for w in workloads(stack, ("Deployment", "StatefulSet", "Rollout")):
        with ctx.field():
            if not is_serving(stack, w, exposed) or hpa_for(stack, w.res) is not None:
                continue
            n = replicas(w.res)
            if n is None or n < floor:
                ctx.report(f"{w.res.display} serves traffic in prod with {fmt(n) if n is not None else 1} replica(s) "
                           "and no HPA", f"set spec.replicas >= {floor} or add an HPA", res=w.res)


# --------------------------------------------------------------------------- K8S-038


@stack_policy("k8s-038-app-priority-class")
def _priority(ctx, stack):
    classes = {}
    for pc in stack.k8s("PriorityClass"):
        with ctx.field():
            classes[pc.k8s_name] = num(get(pc.props, "value"))
    ws = workloads(stack)
    obs = []
    for w in ws:
        with ctx.field():
            text = f"{w.res.k8s_name} {w.ns} {get(w.res.labels, 'app.kubernetes.io/component', default='')}"
            pc = get(w.pod.spec, "priorityClassName")
            if OBSERVABILITY.search(text) and classes.get(pc) is not None:
                obs.append((classes[pc], pc, w.res.display))
    for w in ws:
        with ctx.field():
            if w.res.kind not in ("Deployment", "Rollout") or get(w.res.labels, "app.kubernetes.io/name") != "new-api":
                continue
            pc = get(w.pod.spec, "priorityClassName")
            if pc in (None, ""):
                ctx.report(f"{w.res.display} (the prod app) sets no priorityClassName", res=w.res)
                continue
            mine = classes.get(pc)
            above = [o for o in obs if mine is not None and o[0] >= mine]
            for value, name, disp in above:
                ctx.report(f"{w.res.display} uses priority class {pc} ({fmt(mine)}), not above {disp}'s {name} "
                           f"({fmt(value)})", "give the app a PriorityClass valued above logging and monitoring",
                           res=w.res)


# --------------------------------------------------------------------------- K8S-040


def _service_ports(svc: Res) -> set:
    out = set()
    for p in items(get(svc.props, "spec", "ports")):
        if get(p, "port") is not None:
            out.add(fmt(get(p, "port")))
        if get(p, "name") is not None:
            out.add(str(get(p, "name")))
    return out


@stack_policy("k8s-040-referential-integrity")
def _refs(ctx, stack):
    ws = workloads(stack)
    services = {(s.namespace, s.k8s_name): s for s in stack.k8s("Service")}
    for s in services.values():
        with ctx.field():
            sel = get(s.props, "spec", "selector")
            if is_map(sel) and len(sel) and not any(w.ns == s.namespace and selector_matches(sel, w.pod_labels)
                                                    for w in ws):
                ctx.report(f"{s.display} selects {dict(plain(sel))}, which no workload's pods carry",
                           "make spec.selector equal the workload's pod labels", res=s)
    for ing in stack.k8s("Ingress"):
        for b in _ingress_backends(ing):
            with ctx.field():
                name = get(b, "service", "name")
                if name is None:
                    continue
                svc = services.get((ing.namespace, name))
                port = get(b, "service", "port", "number", default=get(b, "service", "port", "name"))
                if svc is None:
                    ctx.report(f"{ing.display} routes to Service {ing.namespace}/{name}, which the stack does not define",
                               res=ing)
                elif port is not None and fmt(port) not in _service_ports(svc):
                    ctx.report(f"{ing.display} routes to port {fmt(port)} of {svc.display}, which exposes "
                               f"{', '.join(sorted(_service_ports(svc)))}", res=ing)
    for np in stack.k8s("NetworkPolicy"):
        with ctx.field():
            sel = get(np.props, "spec", "podSelector")
            if not is_empty_selector(sel) and not any(w.ns == np.namespace and selector_matches(sel, w.pod_labels)
                                                      for w in ws):
                ctx.report(f"{np.display} podSelector matches no workload's pods", res=np)
    for h in stack.k8s("HorizontalPodAutoscaler"):
        with ctx.field():
            ref = get(h.props, "spec", "scaleTargetRef", default={})
            if not any(w.ns == h.namespace and w.res.kind == get(ref, "kind") and w.res.k8s_name == get(ref, "name")
                       for w in ws):
                ctx.report(f"{h.display} targets {get(ref, 'kind')} {get(ref, 'name')}, which the stack does not define",
                           res=h)
    for w in ws:
        with ctx.field():
            if w.res.kind in ("Pod", "Job", "CronJob"):
                continue
            sel = get(w.res.props, "spec", "selector")
            if not selector_matches(sel, w.pod_labels):
                ctx.report(f"{w.res.display} spec.selector does not match its pod template labels",
                           "derive selector and template labels from one label map", res=w.res)
        with ctx.field():
            if w.res.kind == "StatefulSet":
                sn = get(w.res.props, "spec", "serviceName")
                svc = services.get((w.ns, sn))
                if sn and (svc is None or get(svc.props, "spec", "clusterIP") != "None"):
                    ctx.report(f"{w.res.display} serviceName {sn} is not a headless Service in {w.ns}",
                               "define a Service with clusterIP: None named like spec.serviceName", res=w.res)


# --------------------------------------------------------------------------- K8S-049


@stack_policy("k8s-049-namespace-quota")
def _quota(ctx, stack):
    for ns in stack.k8s("Namespace"):
        with ctx.field():
            name = ns.k8s_name
            for kind in ("ResourceQuota", "LimitRange"):
                if not any(o.namespace == name for o in stack.k8s(kind)):
                    ctx.report(f"{ns.display} has no {kind}", f"add a {kind} to namespace {name}", res=ns)


# --------------------------------------------------------------------------- STK-001


STATEFUL_AWS = (*RDS, EC_RG, EC_CLUSTER, *BUCKETS, KMS_KEY, "aws:efs/fileSystem:FileSystem",
                "aws:dynamodb/table:Table")


def stateful(stack_resources: List[Res]) -> List[Res]:
    return [r for r in stack_resources
            if r.type in STATEFUL_AWS or (r.is_k8s and r.kind in ("PersistentVolumeClaim", "StatefulSet"))]


def protection(r: Res) -> Optional[str]:
    """How r survives a `pulumi destroy`/replace, or None."""
    if r.protect:
        return "protect"
    if r.retain_on_delete:
        return "retainOnDelete"
    if r.type in RDS and truthy(get(r.props, "deletionProtection")):
        return "deletionProtection"
    if r.is_k8s and r.kind == "StatefulSet" and get(
            r.props, "spec", "persistentVolumeClaimRetentionPolicy", "whenDeleted", default="Retain") == "Retain":
        return "PVC retention Retain"
    return None


@stack_policy("stk-001-stateful-protected")
def _protected(ctx, stack):
    for r in stateful(stack.resources):
        with ctx.field():
            if protection(r) is None:
                note = "" if r.retain_on_delete is not None else \
                    " (CrossGuard cannot see retainOnDelete; the synth's resources.json check can)"
                ctx.report(f"{r.display} holds state in prod but is not protected{note}", res=r)


# --------------------------------------------------------------------------- STK-003

DATASTORE_IMAGES = {"postgres": "postgres", "postgresql": "postgres", "elasticsearch": "elasticsearch",
                    "opensearch": "elasticsearch", "redis": "redis", "valkey": "redis", "mysql": "mysql",
                    "mariadb": "mysql", "mongo": "mongo", "mongodb": "mongo"}
BACKUP_OF = "policy.new-api.io/backup-of"
DATASTORE_WORDS = {"postgres": r"postgres|\bpg", "elasticsearch": r"elastic|\bes\b|\bes-", "redis": r"redis|valkey"}


def datastore_kind(w: Workload) -> Optional[str]:
    for c in w.pod.containers((("containers", "container"),)):
        img = get(c.data, "image")
        if isinstance(img, str):
            repo = parse_image(img)[1].rsplit("/", 1)[-1]
            if repo in DATASTORE_IMAGES:
                return DATASTORE_IMAGES[repo]
    return None


def _has_backup_job(stack: Stack, w: Workload, kind: str) -> bool:
    name = w.res.k8s_name
    for cj in stack.k8s("CronJob", "Job"):
        ref = get(cj.annotations, BACKUP_OF)
        if ref is not None:  # a CronJob that dumps, or a Job that installs e.g. an Elasticsearch SLM policy
            if str(ref) in (name, f"{w.ns}/{name}"):
                return True
            continue
        if cj.kind == "Job":
            continue
        text = f"{cj.k8s_name} {cj.name}"
        if cj.namespace == w.ns and re.search(r"backup|dump|snapshot", text, re.I) and \
                (name in text or re.search(DATASTORE_WORDS.get(kind, kind), text, re.I)):
            return True
    return False


def _redis_persistent(stack: Stack, w: Workload) -> bool:
    for c in w.pod.containers((("containers", "container"),)):
        words = " ".join(str(x) for x in [*items(get(c.data, "command")), *items(get(c.data, "args"))])
        if re.search(r"--appendonly\s+yes", words) or re.search(r"--save\s+(?!\"\"|''|\s*$)\S", words):
            return True
    names = {get(v, "configMap", "name") for v in w.pod.volumes() if is_map(get(v, "configMap"))}
    for cm in stack.k8s("ConfigMap"):
        if cm.namespace == w.ns and cm.k8s_name in names:
            data = get(cm.props, "data", default={})
            if any(re.search(r"^\s*appendonly\s+yes", str(get(data, k)), re.M) or
                   re.search(r"^\s*save\s+\d+", str(get(data, k)), re.M) for k in data):
                return True
    return False


@stack_policy("stk-003-datastore-backups")
def _backups(ctx, stack):
    for r in stack.of_type(*RDS):
        with ctx.field():
            if not (num(get(r.props, "backupRetentionPeriod")) or 0) >= 1:
                ctx.report(f"{r.display} has automated backups (PITR) off", "set backupRetentionPeriod >= 1", res=r)
    for r in stack.of_type(EC_RG):
        with ctx.field():
            if not (num(get(r.props, "snapshotRetentionLimit")) or 0) >= 1:
                ctx.report(f"{r.display} keeps no snapshots", "set snapshotRetentionLimit >= 1", res=r)
    for w in workloads(stack, ("StatefulSet", "Deployment")):
        with ctx.field():
            kind = datastore_kind(w)
            if kind is None:
                continue
            if kind == "redis":
                if not _redis_persistent(stack, w) and not _has_backup_job(stack, w, kind):
                    ctx.report(f"{w.res.display} runs Redis without persistence",
                               "enable appendonly yes (or save) on a persistent volume", res=w.res)
            elif not _has_backup_job(stack, w, kind):
                how = ("a snapshot CronJob, or the Job that installs an SLM snapshot policy and repository,"
                       if kind == "elasticsearch" else "a backup CronJob (pg_dump or equivalent)")
                ctx.report(f"{w.res.display} runs {kind} with no backup CronJob",
                           f"add {how} annotated {BACKUP_OF}: {w.ns}/{w.res.k8s_name}", res=w.res)


# --------------------------------------------------------------------------- STK-004

MONITORED_BY = "policy.new-api.io/monitored-by"


def _parse_yaml(text: Any) -> Any:
    """The parsed document (None when it is not YAML). Callers only read the result: it is
    shared, parsed once per text (STK-004 asks, for every workload, whether some
    prometheus.yml scrapes it), with libyaml's parser where PyYAML has it."""
    return _parse_yaml_text(str(text))


@functools.lru_cache(maxsize=64)
def _parse_yaml_text(text: str) -> Any:
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None


def prometheus_configs(stack: Stack):
    """(ConfigMap/Secret, parsed prometheus.yml) pairs."""
    for r in stack.k8s("ConfigMap", "Secret"):
        for section in ("data", "stringData"):
            data = get(r.props, section, default={})
            if not is_map(data):
                continue
            for k in data:
                if re.fullmatch(r"prometheus\.ya?ml", k):
                    cfg = _parse_yaml(get(data, k))
                    if isinstance(cfg, dict):
                        yield r, cfg


def _target_service(target: str, default_ns: Optional[str]) -> Optional[Tuple[Optional[str], str]]:
    """(namespace, service) a static scrape target addresses, e.g. pod-0.svc-headless.ns.svc:9093."""
    host = re.sub(r"^[a-z]+://", "", str(target)).split("/", 1)[0].rsplit(":", 1)[0]
    parts = host.split(".")
    if "svc" in parts and parts.index("svc") >= 2:
        i = parts.index("svc")
        return parts[i - 1], parts[i - 2]
    if len(parts) == 2:
        return parts[1], parts[0]
    if len(parts) == 1 and host != "localhost":
        return default_ns, parts[0]
    return None


def _pod_facts(w: Workload) -> dict:
    facts = {"__meta_kubernetes_namespace": [str(w.ns)]}
    for k in w.pod_labels:
        facts["__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k)] = [str(get(w.pod_labels, k))]
    for k in w.pod.annotations:
        facts["__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", k)] = [str(get(w.pod.annotations, k))]
    ports = [p for c in w.pod.containers() for p in items(get(c.data, "ports"))]
    facts["__meta_kubernetes_pod_container_port_number"] = [fmt(get(p, "containerPort")) for p in ports]
    facts["__meta_kubernetes_pod_container_port_name"] = [str(get(p, "name", default="")) for p in ports]
    return facts


def _sd_keeps(job: dict, w: Workload) -> bool:
    """Whether a kubernetes_sd (role pod) job keeps one of w's pods, judged on its keep/drop rules."""
    sds = [sd for sd in job.get("kubernetes_sd_configs") or [] if isinstance(sd, dict) and sd.get("role") == "pod"]
    if not sds:
        return False
    names = [n for sd in sds for n in ((sd.get("namespaces") or {}).get("names") or [])]
    if names and w.ns not in names:
        return False
    facts = _pod_facts(w)
    for rc in job.get("relabel_configs") or []:
        action = rc.get("action", "replace")
        src = rc.get("source_labels") or []
        if action not in ("keep", "drop") or len(src) != 1 or src[0] not in facts:
            continue  # not decidable from the manifest (e.g. pod phase): assume it lets the pod through
        hit = any(re.fullmatch(str(rc.get("regex", "(.*)")), v) for v in facts[src[0]])
        if (action == "keep" and not hit) or (action == "drop" and hit):
            return False
    return True


def _scraped_by_config(stack: Stack, w: Workload) -> bool:
    svcs = {(s.namespace, s.k8s_name) for s in selected_by(stack, "Service", w)}
    for r, cfg in prometheus_configs(stack):
        mounts_it = any(get(v, "configMap", "name") == r.k8s_name or get(v, "secret", "secretName") == r.k8s_name
                        for v in w.pod.volumes())
        alerting = [t for am in (cfg.get("alerting") or {}).get("alertmanagers") or []
                    for sc in am.get("static_configs") or [] for t in sc.get("targets") or []]
        for job in cfg.get("scrape_configs") or []:
            if not isinstance(job, dict):
                continue
            targets = [t for sc in job.get("static_configs") or [] for t in sc.get("targets") or []]
            if mounts_it and any(str(t).startswith(("localhost:", "127.0.0.1:")) for t in targets):
                return True  # Prometheus scraping itself
            if any(_target_service(t, r.namespace) in svcs for t in targets) or _sd_keeps(job, w):
                return True
        if any(_target_service(t, r.namespace) in svcs for t in alerting):
            return True  # Prometheus watches its Alertmanagers
    return False


def _monitored(stack: Stack, w: Workload) -> bool:
    if str(get(w.pod.annotations, "prometheus.io/scrape", default="")).lower() == "true":
        return True
    if _scraped_by_config(stack, w):
        return True
    if str(get(w.res.annotations, MONITORED_BY, default="")).strip():
        return True
    for pm in stack.k8s("PodMonitor"):
        if selector_matches(get(pm.props, "spec", "selector"), w.pod_labels):
            return True
    svcs = selected_by(stack, "Service", w)
    for sm in stack.k8s("ServiceMonitor"):
        for s in svcs:
            ns_sel = get(sm.props, "spec", "namespaceSelector", default={})
            ns_ok = truthy(get(ns_sel, "any")) or s.namespace in [str(x) for x in items(get(ns_sel, "matchNames"))] \
                or (not items(get(ns_sel, "matchNames")) and s.namespace == sm.namespace)
            if ns_ok and selector_matches(get(sm.props, "spec", "selector"), s.labels):
                return True
    return False


def _route_problems(cfg: Any) -> List[str]:
    if not isinstance(cfg, dict):
        return ["is not a mapping"]
    defined = {r.get("name") for r in cfg.get("receivers") or [] if isinstance(r, dict)}
    problems = []

    def walk(route, path):
        if not isinstance(route, dict):
            return
        rcv = route.get("receiver")
        if path == "route" and not rcv:
            problems.append("route has no default receiver")
        if rcv and rcv not in defined:
            problems.append(f"{path} sends to undefined receiver {rcv}")
        for i, sub in enumerate(route.get("routes") or []):
            walk(sub, f"{path}.routes[{i}]")
    if not isinstance(cfg.get("route"), dict):
        return ["has no route"]
    walk(cfg["route"], "route")
    return problems


def alertmanager_configs(stack: Stack):
    """(resource, parsed config or None) for every Alertmanager configuration in the stack."""
    for r in stack.k8s("ConfigMap", "Secret"):
        for section in ("data", "stringData"):
            data = get(r.props, section, default={})
            for k in data:
                if re.fullmatch(r"alertmanager\.ya?ml", k):
                    cfg = _parse_yaml(get(data, k))  # a masked secret ("[secret]") is not judged
                    yield r, cfg if isinstance(cfg, dict) else None
    for r in stack.k8s("AlertmanagerConfig"):
        spec = plain(get(r.props, "spec", default={}))
        yield r, {"route": spec.get("route"), "receivers": spec.get("receivers")}


def has_alerts(stack: Stack) -> List[Res]:
    out = list(stack.k8s("PrometheusRule"))
    for cm in stack.k8s("ConfigMap"):
        data = get(cm.props, "data", default={})
        if any(re.search(r"^\s*-?\s*alert:\s*\S", str(get(data, k)), re.M) for k in data):
            out.append(cm)
    return out


@stack_policy("stk-004-monitoring-alert-routing")
def _monitoring(ctx, stack):
    for w in workloads(stack, LONG_RUNNING):
        with ctx.field():
            if not _monitored(stack, w):
                ctx.report(f"{w.res.display} is neither scraped nor otherwise monitored",
                           f"add a prometheus.yml scrape job (static target or kubernetes_sd keep rule), a "
                           f"ServiceMonitor/PodMonitor, prometheus.io/scrape, or {MONITORED_BY}", res=w.res)
    with ctx.field():
        alerts = has_alerts(stack)
        if not alerts:
            return
        configs = list(alertmanager_configs(stack))
        if not configs:
            ctx.report(f"{alerts[0].display} defines alerts but the stack has no Alertmanager configuration",
                       "add an Alertmanager config whose route sends every alert to a receiver", res=alerts[0])
        for r, cfg in configs:
            if cfg is None:
                continue  # unreadable (e.g. a secret the synth masks): amtool checks it
            for p in _route_problems(cfg):
                ctx.report(f"Alertmanager configuration in {r.display} {p}",
                           "define the receiver and route every alert to it", res=r)


# --------------------------------------------------------------------------- STK-005

#: A hostPath that exposes the host's procfs: /proc itself, below it, or a parent (``/``
#: mounted recursively, as hostPath mounts are, carries /proc with it).
HOST_PROC_PATH = re.compile(r"^/*(proc(/.*)?)?/*$")


def _host_process_access(pod: Pod) -> Optional[str]:
    """Why a pod sees other pods' processes: the host's PID namespace, or the host's /proc."""
    if truthy(get(pod.spec, "hostPID")):
        return "hostPID: true"
    for v in pod.volumes():
        path = get(v, "hostPath", "path")
        if isinstance(path, str) and HOST_PROC_PATH.match(path):
            return f"hostPath {path}"
    return None


def _uids(pod: Pod) -> set:
    """Effective runAsUser of every container (None: left to the image)."""
    return {num(pod.sc(c, "runAsUser")) for c in pod.containers()}


@stack_policy("stk-005-host-access-own-uid")
def _host_access_own_uid(ctx, stack):
    """Linux lets a process read /proc/<pid>/environ of any process with its UID and GID
    (proc(5), PTRACE_MODE_READ_FSCREDS); a pod with the host's PID namespace or /proc sees
    every pod's processes on its node, so it must share its UID with no other workload
    (never waivable: exemptions.NON_WAIVABLE)."""
    pods = [(r, p) for r in stack.k8s("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet",
                                      "Pod", "Rollout") if (p := pod_of(r)) is not None]
    for res, pod in pods:
        with ctx.field():
            why = _host_process_access(pod)
            if why is None:
                continue
            uids = _uids(pod)
            if None in uids:
                ctx.report(f"{res.display} sees the node's processes ({why}) but leaves a container's UID to "
                           "its image", "set runAsUser to a UID no other workload uses", res=res)
                continue
            for other, other_pod in pods:
                if other is res:
                    continue
                shared = uids & (_uids(other_pod) - {None})
                if shared:
                    ctx.report(f"{res.display} sees the node's processes ({why}) and runs as UID "
                               f"{', '.join(fmt(u) for u in sorted(shared))} like {other.display}, so it can read "
                               "that workload's /proc/<pid>/environ", res=res)
