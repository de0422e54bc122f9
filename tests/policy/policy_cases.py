"""The bad cases: each is a compliant fixture plus ONE mutation, with the control id and
the message text it must produce. Container controls are generated for every workload
kind at container and init-container level (and pod level where the field exists there)."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

import policy_fixtures as fx

SENTINEL = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's unknown string during preview


class _Delete:
    def __repr__(self):
        return "DELETE"


class _Remove:
    def __repr__(self):
        return "REMOVE-RESOURCE"


DELETE = _Delete()     # delete the field
REMOVE = _Remove()     # remove the whole resource from the stack


@dataclass(frozen=True)
class Append:
    item: Any


@dataclass
class Case:
    policy: str
    fixture: str          # a single_fixtures() key, or "stack" (compliant_stack), or "Kind/name" in the stack
    target: str           # object | pod | template | container | init
    path: Tuple[Any, ...]
    value: Any
    expect: str           # text the violation message must contain
    environment: str = "prod"
    label: str = ""

    @property
    def id(self) -> str:
        v = "delete" if self.value is DELETE else "remove" if self.value is REMOVE else "set"
        where = self.fixture if self.target == "object" else f"{self.fixture}.{self.target}"
        return f"{self.policy}[{where}:{'.'.join(map(str, self.path)) or '-'}={v}{self.label}]"

    @property
    def control(self) -> str:
        return self.policy.split("-")[0].upper() + "-" + self.policy.split("-")[1]


# --------------------------------------------------------------------------- applying a mutation


def pod_template(inputs: Dict[str, Any]) -> Dict[str, Any]:
    kind = inputs["kind"]
    if kind == "Pod":
        return inputs
    if kind == "CronJob":
        return inputs["spec"]["jobTemplate"]["spec"]["template"]
    return inputs["spec"]["template"]


def _base(inputs: Dict[str, Any], target: str) -> Dict[str, Any]:
    if target == "object":
        return inputs
    tpl = pod_template(inputs)
    return {"template": tpl, "pod": tpl["spec"], "container": tpl["spec"]["containers"][0],
            "init": tpl["spec"]["initContainers"][0]}[target]


def set_path(base: Any, path: Tuple[Any, ...], value: Any) -> None:
    for k in path[:-1]:
        if isinstance(base, dict) and k not in base:
            base[k] = {}
        base = base[k]
    last = path[-1]
    if value is DELETE:
        del base[last]
    elif isinstance(value, Append):
        base.setdefault(last, []).append(copy.deepcopy(value.item))
    else:
        base[last] = copy.deepcopy(value)


def find(resources: List[Dict[str, Any]], ref: str) -> Dict[str, Any]:
    kind, name = ref.split("/", 1)
    hits = [r for r in resources if r["type"].rsplit(":", 1)[-1] == kind and r["name"] == name]
    assert len(hits) == 1, f"fixture {ref} not found exactly once"
    return hits[0]


def build(case: Case, value: Any = None) -> List[Dict[str, Any]]:
    """The resources for a case: the fixture with the mutation (or `value` instead) applied."""
    value = case.value if value is None else value
    if case.fixture in fx.SINGLE_KINDS:
        resources = [fx.single_fixture(case.fixture)]
        res = resources[0]
    else:
        resources = fx.compliant_stack()
        res = find(resources, case.fixture)
        if value is REMOVE:
            resources.remove(res)
            return resources
    if case.path and case.path[0] in ("protect", "retainOnDelete", "secretPaths") and case.target == "entry":
        res[case.path[0]] = value
        return resources
    set_path(_base(res["inputs"], case.target), case.path, value)
    return resources


# --------------------------------------------------------------------------- the table

CASES: List[Case] = []


def add(policy, fixture, target, path, value, expect, **kw):
    CASES.append(Case(policy, fixture, target, tuple(path), value, expect, **kw))


ALL = fx.WORKLOAD_KINDS
LONG = ["Deployment", "StatefulSet", "DaemonSet", "Rollout"]
SC = ("securityContext",)


def per_container(policy, path, value, expect, *, kinds=ALL, levels=("container", "init")):
    for kind in kinds:
        for level in levels:
            add(policy, kind, level, path, value, expect)


def per_pod(policy, path, value, expect, *, kinds=ALL, target="pod"):
    for kind in kinds:
        add(policy, kind, target, path, value, expect)


# K8S-001: container overrides pod; pod level is the default
per_container("k8s-001-run-as-non-root", SC + ("runAsUser",), 1001, "runs as UID 1001")
per_container("k8s-001-run-as-non-root", SC + ("runAsGroup",), 0, "runs as GID 0")
per_container("k8s-001-run-as-non-root", SC + ("runAsNonRoot",), False, "does not set runAsNonRoot: true")
per_pod("k8s-001-run-as-non-root", SC + ("runAsUser",), 1001, "runs as UID 1001")
per_pod("k8s-001-run-as-non-root", SC + ("runAsNonRoot",), DELETE, "does not set runAsNonRoot: true")
per_pod("k8s-001-run-as-non-root", SC + ("runAsGroup",), DELETE, "sets no runAsGroup")
per_container("k8s-002-resource-requests", ("resources", "requests", "memory"), DELETE, "has no memory request")
per_container("k8s-002-resource-requests", ("resources", "requests", "cpu"), DELETE, "has no cpu request")
per_container("k8s-003-memory-limit", ("resources", "limits", "memory"), DELETE, "has no memory limit")
per_container("k8s-003-cpu-limit", ("resources", "limits", "cpu"), DELETE, "has no CPU limit")
per_container("k8s-004-probes", ("readinessProbe",), DELETE, "has no readinessProbe", kinds=LONG, levels=("container",))
per_container("k8s-004-probes", ("livenessProbe",), DELETE, "has no livenessProbe", kinds=LONG, levels=("container",))
per_container("k8s-005-no-privilege-escalation", SC + ("allowPrivilegeEscalation",), True, "allows privilege escalation")
per_container("k8s-005-no-privilege-escalation", SC + ("allowPrivilegeEscalation",), DELETE, "allows privilege escalation")
per_container("k8s-006-drop-capabilities", SC + ("capabilities", "drop"), [], "does not drop ALL capabilities")
per_container("k8s-006-drop-capabilities", SC + ("capabilities", "add"), ["SYS_ADMIN"], "adds capabilities SYS_ADMIN")
per_container("k8s-007-seccomp-profile", SC + ("seccompProfile",), {"type": "Unconfined"}, "seccomp profile Unconfined")
per_pod("k8s-007-seccomp-profile", SC + ("seccompProfile",), DELETE, "seccomp profile unset (Unconfined)")
per_container("k8s-008-no-privileged", SC + ("privileged",), True, "is privileged")
for key in ("hostNetwork", "hostPID", "hostIPC"):
    per_pod("k8s-009-no-host-namespaces", (key,), True, f"sets {key}: true")
per_pod("k8s-010-no-host-path", ("volumes",), Append({"name": "host", "hostPath": {"path": "/var/log"}}),
        'mounts hostPath volume "host" (/var/log)')
per_container("k8s-011-no-host-port", ("ports",), [{"containerPort": 3000, "hostPort": 3000}], "binds hostPort 3000")
per_container("k8s-012-read-only-root-fs", SC + ("readOnlyRootFilesystem",), False, "has a writable root filesystem")
per_container("k8s-013-image-tag-pinned", ("image",), "calciumion/new-api:latest", '"calciumion/new-api:latest" (latest)')
per_container("k8s-013-image-tag-pinned", ("image",), "calciumion/new-api", "no tag, i.e. latest")
per_container("k8s-013-image-digest", ("image",), "calciumion/new-api:v0.9.0", "without a digest")
per_container("k8s-014-allowed-registries", ("image",), "evil.example.com/x/miner:1.0" + fx.DIGEST,
              "from evil.example.com/x, which is not an allowed registry")
per_container("k8s-050-image-pull-policy", ("image",), "calciumion/new-api:v0.9.0", "imagePullPolicy IfNotPresent")
per_pod("k8s-015-no-sa-token-automount", ("automountServiceAccountToken",), DELETE,
        "auto-mounts the service account token (automountServiceAccountToken unset)")
per_pod("k8s-015-no-sa-token-automount", ("automountServiceAccountToken",), True, "auto-mounts the service account token")
add("k8s-015-no-sa-token-automount", "ServiceAccount", "object", ("automountServiceAccountToken",), True,
    "auto-mounts its token")
per_container("k8s-016-secrets-not-literal", ("env",), Append({"name": "API_KEY", "value": "sk-live-123"}),
              "secret-looking env API_KEY as a literal value")
per_container("k8s-016-secrets-not-literal", ("env",), Append({"name": "SQL_DSN", "value": "postgres://u:pw@db:5432/x"}),
              "secret-looking env SQL_DSN", kinds=["Deployment"])
add("k8s-016-secrets-not-literal", "ConfigMap", "object", ("data", "DB_PASSWORD"), "hunter2",
    'secret-looking key "DB_PASSWORD"')
add("k8s-016-secrets-not-literal", "ConfigMap", "object", ("data", "REDIS_URL"), "redis://default:pw@redis:6379",
    'key "REDIS_URL" holds a URL with credentials')
per_pod("k8s-047-own-service-account", ("serviceAccountName",), DELETE, "runs under the default ServiceAccount")
per_pod("k8s-047-own-service-account", ("serviceAccountName",), "default", "runs under the default ServiceAccount")
for kind in ("Deployment", "StatefulSet", "Rollout"):
    add("k8s-019-spread-replicas", kind, "pod", ("topologySpreadConstraints",), DELETE,
        "runs 2 replicas with no topologySpreadConstraints or podAntiAffinity")
add("k8s-019-spread-replicas", "Deployment/new-api", "pod", ("topologySpreadConstraints",), DELETE,
    "Deployment new-api/new-api runs up to 6 replicas with no topologySpreadConstraints")
add("k8s-023-rolling-update-capacity", "Deployment", "object", ("spec", "strategy", "rollingUpdate", "maxUnavailable"),
    DELETE, "default maxUnavailable of 25%")
add("k8s-023-rolling-update-capacity", "Deployment", "object", ("spec", "strategy"), {"type": "Recreate"},
    "uses the Recreate strategy")
add("k8s-023-rolling-update-capacity", "Deployment", "object", ("spec", "strategy", "rollingUpdate", "maxUnavailable"),
    "50%", "sets maxUnavailable: 50%")
for kind in ("Deployment", "Rollout"):
    add("k8s-024-graceful-shutdown", kind, "pod", ("terminationGracePeriodSeconds",), DELETE,
        "sets no terminationGracePeriodSeconds")
    add("k8s-024-graceful-shutdown", kind, "container", ("lifecycle",), DELETE, "has no preStop hook")
per_container("k8s-029-pss-restricted-rest", SC + ("procMount",), "Unmasked", "sets procMount Unmasked")
per_container("k8s-029-pss-restricted-rest", SC + ("seLinuxOptions",), {"type": "spc_t"}, "seLinuxOptions.type spc_t")
per_container("k8s-029-pss-restricted-rest", SC + ("seLinuxOptions",), {"user": "system_u"}, "seLinuxOptions.user")
per_container("k8s-029-pss-restricted-rest", SC + ("appArmorProfile",), {"type": "Unconfined"},
              "sets appArmorProfile Unconfined")
per_container("k8s-029-pss-restricted-rest", SC + ("windowsOptions",), {"hostProcess": True},
              "sets windowsOptions.hostProcess")
per_container("k8s-029-pss-restricted-rest", ("livenessProbe",), {"httpGet": {"path": "/", "port": 80, "host": "10.0.0.1"}},
              "sets livenessProbe.httpGet.host")
per_pod("k8s-029-pss-restricted-rest", SC + ("sysctls",), [{"name": "kernel.msgmax", "value": "65536"}],
        "sets unsafe sysctl kernel.msgmax")
per_pod("k8s-029-pss-restricted-rest", SC + ("appArmorProfile",), {"type": "Unconfined"}, "sets appArmorProfile Unconfined")
per_pod("k8s-029-pss-restricted-rest", ("metadata", "annotations"),
        {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}, "annotates AppArmor unconfined",
        target="template")
per_pod("k8s-030-volume-types", ("volumes",), Append({"name": "nfs", "nfs": {"server": "nas", "path": "/"}}),
        'uses a nfs volume "nfs"')
per_pod("k8s-030-volume-types", ("volumes",), Append({"name": "host", "hostPath": {"path": "/etc"}}),
        'uses a hostPath volume "host"')
per_pod("k8s-031-all-containers-covered", ("ephemeralContainers",), Append(fx.container("debug", ports=False, probes=False)),
        'ephemeral container "debug" in')
per_container("k8s-031-all-containers-covered", ("name",), "app", 'init container name "app"', levels=("init",))
per_container("k8s-035-distinct-probes", ("livenessProbe",),
              {"httpGet": {"path": "/api/status", "port": "http"}, "periodSeconds": 20},
              "same check for liveness and readiness", kinds=LONG, levels=("container",))
per_container("k8s-036-ephemeral-storage", ("resources", "requests", "ephemeral-storage"), DELETE,
              "has no ephemeral-storage request")
per_pod("k8s-036-ephemeral-storage", ("volumes", 0, "emptyDir", "sizeLimit"), DELETE, 'emptyDir volume "tmp"')
add("k8s-037-job-bounds", "Job", "object", ("spec", "backoffLimit"), DELETE, "sets no backoffLimit")
add("k8s-037-job-bounds", "Job", "object", ("spec", "activeDeadlineSeconds"), DELETE, "sets no activeDeadlineSeconds")
add("k8s-037-job-bounds", "Job", "object", ("spec", "ttlSecondsAfterFinished"), DELETE, "sets no ttlSecondsAfterFinished")
add("k8s-037-job-bounds", "Job", "pod", ("restartPolicy",), "Always", "uses restartPolicy Always")
add("k8s-037-job-bounds", "CronJob", "object", ("spec", "startingDeadlineSeconds"), DELETE, "sets no startingDeadlineSeconds")
add("k8s-037-job-bounds", "CronJob", "object", ("spec", "jobTemplate", "spec", "backoffLimit"), DELETE,
    "sets no backoffLimit")
add("k8s-037-job-bounds", "CronJob", "object", ("spec", "successfulJobsHistoryLimit"), DELETE,
    "neither job history limits nor ttlSecondsAfterFinished")
add("k8s-037-job-bounds", "CronJob/postgres-backup", "object", ("spec", "concurrencyPolicy"), "Allow",
    "backup CronJob new-api/postgres-backup lets runs overlap")
add("k8s-039-no-bare-pods", "Pod", "object", ("metadata", "name"), "new-api", "is a bare Pod")

# --------------------------------------------------------------------------- other Kubernetes objects
add("k8s-025-pod-security-labels", "Namespace", "object", ("metadata", "labels", "pod-security.kubernetes.io/enforce"),
    DELETE, "has no pod-security.kubernetes.io/enforce label")
add("k8s-025-pod-security-labels", "Namespace", "object", ("metadata", "labels", "pod-security.kubernetes.io/enforce"),
    "privileged", "enforces Pod Security level privileged")
add("k8s-025-pod-security-labels", "Namespace", "object", ("metadata", "labels", "pod-security.kubernetes.io/enforce"),
    "baseline", "enforces baseline without a policy.new-api.io/pod-security-reason")
add("k8s-020-ingress-tls", "Ingress", "object", ("spec", "tls"), DELETE, 'serves host "api.example.com" without TLS')
add("k8s-020-ingress-tls", "Ingress", "object", ("metadata", "annotations", "nginx.ingress.kubernetes.io/ssl-redirect"),
    "false", "disables the HTTPS redirect")
add("k8s-020-ingress-tls", "Ingress", "object", ("spec", "tls", 0, "secretName"), DELETE, "tls entry without secretName")
add("k8s-042-ingress-hosts", "Ingress", "object", ("spec", "rules", 0, "host"), "*.example.com",
    'wildcard host "*.example.com"')
add("k8s-042-ingress-hosts", "Ingress", "object", ("spec", "rules", 0, "host"), DELETE, "has a rule without host")
add("k8s-042-ingress-hosts", "Ingress", "object", ("spec", "rules", 0, "host"), "other.example.com",
    'host "other.example.com" is not in spec.tls[].hosts')
add("k8s-042-ingress-hosts", "Ingress", "object", ("spec", "defaultBackend"),
    {"service": {"name": "new-api", "port": {"number": 80}}}, "sets a defaultBackend")
add("k8s-042-ingress-hosts", "Ingress", "object", ("spec", "rules", 0, "http", "paths"),
    Append({"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "new-api", "port": {"number": 80}}}}),
    "repeats host+path api.example.com/")
add("k8s-043-no-ingress-snippets", "Ingress", "object",
    ("metadata", "annotations", "nginx.ingress.kubernetes.io/configuration-snippet"), "more_set_headers x;",
    "sets annotation nginx.ingress.kubernetes.io/configuration-snippet")
add("k8s-045-prod-issuer", "Ingress", "object", ("metadata", "annotations", "cert-manager.io/cluster-issuer"),
    "letsencrypt-staging", 'requests certificates from cluster-issuer "letsencrypt-staging"')
add("k8s-045-prod-issuer", "Gateway", "object", ("metadata", "annotations", "cert-manager.io/cluster-issuer"),
    "letsencrypt-staging", 'requests certificates from cluster-issuer "letsencrypt-staging"')
add("k8s-045-prod-issuer", "Certificate", "object", ("spec", "issuerRef", "name"), "selfsigned",
    "is issued by selfsigned, not letsencrypt-prod")
add("k8s-045-prod-issuer", "ClusterIssuer", "object", ("spec", "acme", "server"),
    "https://acme-staging-v02.api.letsencrypt.org/directory", "is a production issuer but uses the ACME server")
add("k8s-045-prod-issuer", "ClusterIssuer", "object", ("spec",), {"selfSigned": {}},
    "is a production issuer but issues selfSigned certificates")
add("k8s-021-no-nodeport-lb", "Service", "object", ("spec", "type"), "NodePort", "is of type NodePort")
add("k8s-021-no-nodeport-lb", "Service", "object", ("spec", "type"), "LoadBalancer",
    "is of type LoadBalancer without an explicit allow")
add("k8s-044-no-external-ips", "Service", "object", ("spec", "externalIPs"), ["203.0.113.7"], "sets externalIPs 203.0.113.7")
add("k8s-022-hpa-bounds", "HorizontalPodAutoscaler", "object", ("spec", "minReplicas"), 1, "allows 1 replica(s) in prod")
add("k8s-022-hpa-bounds", "HorizontalPodAutoscaler", "object", ("spec", "maxReplicas"), 2,
    "has maxReplicas 2 <= minReplicas 2")
add("k8s-022-hpa-bounds", "HorizontalPodAutoscaler", "object", ("spec", "behavior"), DELETE,
    "sets no scale-down stabilization window")
add("k8s-026-storage-requests-retained", "StatefulSet", "object",
    ("spec", "volumeClaimTemplates", 0, "spec", "resources"), DELETE, 'volumeClaimTemplate "data"')
add("k8s-026-storage-requests-retained", "StatefulSet", "object", ("spec", "persistentVolumeClaimRetentionPolicy"),
    {"whenDeleted": "Delete", "whenScaled": "Retain"}, "deletes its PVCs with the StatefulSet in prod")
add("k8s-026-storage-requests-retained", "PersistentVolumeClaim", "object", ("spec", "resources"), DELETE,
    "requests no storage size")
add("k8s-027-rbac-no-wildcards", "Role", "object", ("rules", 0, "verbs"), ["*"], "grants verbs: ['*']")
add("k8s-027-rbac-no-wildcards", "ClusterRole", "object", ("rules", 0, "resources"), ["*"], "grants resources: ['*']")
add("k8s-027-rbac-no-wildcards", "ClusterRoleBinding", "object", ("roleRef", "name"), "cluster-admin", "binds cluster-admin")
add("k8s-048-rbac-no-escalation", "Role", "object", ("rules", 0, "verbs"), ["get", "escalate"],
    "grants the escalate verb")
add("k8s-048-rbac-no-escalation", "Role", "object", ("rules", 0),
    {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}, "grants create on pods/exec")
add("k8s-048-rbac-no-escalation", "ClusterRole", "object", ("rules", 0, "resources"), ["secrets"],
    "reads secrets cluster-wide")
add("k8s-028-standard-labels", "Deployment", "object", ("metadata", "labels", "app.kubernetes.io/part-of"), DELETE,
    "lacks label(s) app.kubernetes.io/part-of")
add("k8s-028-standard-labels", "Service", "object", ("metadata", "labels", "app.kubernetes.io/managed-by"), "helm",
    'sets app.kubernetes.io/managed-by: "helm"')
add("k8s-041-no-deprecated-api", "HorizontalPodAutoscaler", "object", ("apiVersion",), "autoscaling/v2beta2",
    "uses apiVersion autoscaling/v2beta2")
add("k8s-041-no-deprecated-api", "PodDisruptionBudget", "object", ("apiVersion",), "policy/v1beta1",
    "uses apiVersion policy/v1beta1")
add("k8s-046-no-default-namespace", "Service", "object", ("metadata", "namespace"), DELETE,
    "lands in the default namespace (metadata.namespace unset)")
add("k8s-046-no-default-namespace", "Deployment", "object", ("metadata", "namespace"), "default",
    "lands in the default namespace")
add("pol-001-exemption-annotations", "Deployment", "object", ("metadata", "annotations"),
    {"policy.new-api.io/exempt-controls": "K8S-999", "policy.new-api.io/exempt-reason": "because"},
    "names unknown control id(s) K8S-999")
add("pol-001-exemption-annotations", "DaemonSet", "template", ("metadata", "annotations"),
    {"policy.new-api.io/exempt-controls": "K8S-009"}, "has no policy.new-api.io/exempt-reason justification")
add("pol-001-exemption-annotations", "DaemonSet", "template", ("metadata", "annotations"),
    {"policy.new-api.io/exempt-controls": "K8S-009", "policy.new-api.io/exempt-reason": "reads host metrics"},
    "the pack config does not allow waiving K8S-009 for DaemonSet", label="-not-allowed")
add("pol-001-exemption-annotations", "Deployment", "object", ("metadata", "annotations"),
    {"policy.new-api.io/exempt-controls": "K8S-008", "policy.new-api.io/exempt-reason": "needs the GPU"},
    "K8S-008 can never be waived", label="-non-waivable")

# --------------------------------------------------------------------------- AWS resources
add("aws-001-rds-encrypted", "Rds", "object", ("storageEncrypted",), False, "stores data unencrypted")
add("aws-001-rds-encrypted", "Rds", "object", ("kmsKeyId",), DELETE, "uses the AWS-managed key (kmsKeyId unset)")
add("aws-001-rds-encrypted", "RdsCluster", "object", ("storageEncrypted",), False, "stores data unencrypted")
add("aws-002-rds-backup-retention", "Rds", "object", ("backupRetentionPeriod",), 7, "keeps backups 7 day(s), below 14 (prod)")
add("aws-002-rds-backup-retention", "Rds", "object", ("backupRetentionPeriod",), 3, "keeps backups 3 day(s), below 7 (dev)",
    environment="dev")
add("aws-002-rds-backup-retention", "RdsCluster", "object", ("backupRetentionPeriod",), DELETE, "provider default")
add("aws-003-rds-deletion-protection", "Rds", "object", ("deletionProtection",), False, "has no deletion protection in prod")
add("aws-003-rds-deletion-protection", "Rds", "object", ("skipFinalSnapshot",), True, "skips the final snapshot in prod")
add("aws-003-rds-deletion-protection", "RdsCluster", "object", ("finalSnapshotIdentifier",), DELETE,
    "names no finalSnapshotIdentifier")
add("aws-004-rds-multi-az-private", "Rds", "object", ("publiclyAccessible",), True, "is publicly accessible")
add("aws-004-rds-multi-az-private", "Rds", "object", ("multiAz",), False, "runs in a single AZ in prod")
add("aws-005-rds-operability", "Rds", "object", ("performanceInsightsEnabled",), False, "has Performance Insights off")
add("aws-005-rds-operability", "Rds", "object", ("enabledCloudwatchLogsExports",), [], "exports no logs")
add("aws-005-rds-operability", "Rds", "object", ("autoMinorVersionUpgrade",), False, "turns off minor version upgrades")
add("aws-006-elasticache-encryption-auth", "Redis", "object", ("transitEncryptionEnabled",), False,
    "has transitEncryptionEnabled off")
add("aws-006-elasticache-encryption-auth", "Redis", "object", ("atRestEncryptionEnabled",), False,
    "has atRestEncryptionEnabled off")
add("aws-006-elasticache-encryption-auth", "Redis", "object", ("authToken",), DELETE, "accepts clients without AUTH")
add("aws-007-elasticache-ha-snapshots", "Redis", "object", ("snapshotRetentionLimit",), 0, "keeps no snapshots")
add("aws-007-elasticache-ha-snapshots", "Redis", "object", ("multiAzEnabled",), False, "has multiAzEnabled off in prod")
add("aws-007-elasticache-ha-snapshots", "Redis", "object", ("automaticFailoverEnabled",), False,
    "has automaticFailoverEnabled off in prod")
add("aws-011-sg-no-public-datastore", "SecurityGroup", "object", ("ingress", 0, "cidrBlocks"), ["0.0.0.0/0"],
    "admits 0.0.0.0/0 on ports 5432-5432")
add("aws-011-sg-no-public-datastore", "SgIngressRule", "object", ("cidrIpv4",), "0.0.0.0/0",
    "admits 0.0.0.0/0 on ports 6379-6379")
add("aws-012-kms-rotation", "KmsKey", "object", ("enableKeyRotation",), False, "does not rotate")
add("aws-016-rds-hygiene", "Rds", "object", ("copyTagsToSnapshot",), False, "does not copy tags to snapshots")
add("aws-016-rds-hygiene", "Rds", "object", ("username",), "postgres", 'default master username "postgres"')
add("aws-016-rds-hygiene", "Rds", "object", ("monitoringInterval",), 0, "has enhanced monitoring off")
add("aws-016-rds-hygiene", "Rds", "object", ("dbSubnetGroupName",), DELETE, "is in no DB subnet group")
add("aws-017-rds-pi-kms", "Rds", "object", ("performanceInsightsKmsKeyId",), DELETE,
    "keeps Performance Insights data under the AWS-managed key")
add("aws-018-elasticache-hygiene", "Redis", "object", ("subnetGroupName",), DELETE, "uses the default subnet group")
add("aws-018-elasticache-hygiene", "Redis", "object", ("autoMinorVersionUpgrade",), False, "turns off minor version upgrades")
add("aws-019-kms-iam-safety", "KmsKey", "object", ("bypassPolicyLockoutSafetyCheck",), True,
    "bypasses the policy lockout safety check")
add("aws-019-kms-iam-safety", "KmsKey", "object", ("deletionWindowInDays",), 7, "has a 7-day deletion window")
add("aws-019-kms-iam-safety", "KmsKey", "object", ("description",), DELETE, "has no description")
add("aws-019-kms-iam-safety", "IamPolicy", "object", ("policy",), json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]}), 'allows kms:Decrypt on Resource "*"')
add("aws-020-sg-rule-descriptions", "SecurityGroup", "object", ("ingress", 0, "description"), DELETE,
    "has an ingress rule on ports 5432-5432 without description")
add("aws-020-sg-rule-descriptions", "SgIngressRule", "object", ("description",), DELETE,
    "has an ingress rule on ports 6379-6379 without description")

# --------------------------------------------------------------------------- stack-level (the compliant stack + one change)
add("aws-008-s3-public-access-block", "BucketPublicAccessBlock/backups-pab", "object", (), REMOVE,
    "has no BucketPublicAccessBlock")
add("aws-008-s3-public-access-block", "BucketPublicAccessBlock/backups-pab", "object", ("blockPublicPolicy",), False,
    "leaves blockPublicPolicy off")
add("aws-009-s3-encryption-versioning",
    "BucketServerSideEncryptionConfiguration/backups-sse", "object", (), REMOVE, "has no server-side encryption")
add("aws-009-s3-encryption-versioning", "BucketVersioning/backups-versioning", "object",
    ("versioningConfiguration", "status"), "Suspended", "is not versioned")
add("aws-010-s3-backup-lifecycle", "BucketLifecycleConfiguration/backups-lifecycle", "object", (), REMOVE,
    "never expires old backups")
add("aws-010-s3-backup-lifecycle", "BucketLifecycleConfiguration/backups-lifecycle", "object",
    ("rules", 0, "expiration", "days"), 3, "expires backups after 3 day(s), below 14")
add("aws-013-s3-tls-only", "BucketPolicy/backups-policy", "object", (), REMOVE, "accepts requests without TLS")


def _tls_policy(**change) -> str:
    """The compliant fixture's DenyPlainHttp statement with one field changed."""
    statement = {"Sid": "DenyPlainHttp", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                 "Resource": ["arn:aws:s3:::new-api-backups", "arn:aws:s3:::new-api-backups/*"],
                 "Condition": {"Bool": {"aws:SecureTransport": "false"}}, **change}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


for _label, _change in [
    ("deny-on-tls", {"Condition": {"Bool": {"aws:SecureTransport": "true"}}}),
    ("allow-on-plain-http", {"Effect": "Allow"}),
    ("deny-one-action", {"Action": "s3:GetObject"}),
    ("deny-bucket-not-objects", {"Resource": "arn:aws:s3:::new-api-backups"}),
    ("deny-objects-not-bucket", {"Resource": "arn:aws:s3:::new-api-backups/*"}),
    ("deny-other-bucket", {"Resource": ["arn:aws:s3:::other", "arn:aws:s3:::other/*"]}),
    ("deny-one-principal", {"Principal": {"AWS": "arn:aws:iam::111111111111:role/app"}}),
]:
    add("aws-013-s3-tls-only", "BucketPolicy/backups-policy", "object", ("policy",), _tls_policy(**_change),
        "accepts requests without TLS", label=f"-{_label}")
add("aws-014-s3-no-acls", "BucketOwnershipControls/backups-ownership", "object", ("rule", "objectOwnership"),
    "ObjectWriter", "still honours ACLs (objectOwnership ObjectWriter)")
add("aws-014-s3-no-acls", "Bucket/backups", "object", ("acl",), "public-read", 'sets acl "public-read"')
add("aws-015-s3-access-logging", "BucketLogging/backups-logging", "object", (), REMOVE, "has no server access logging")
add("k8s-017-network-policies", "NetworkPolicy/default-deny", "object", (), REMOVE,
    "namespace new-api has no default-deny Ingress NetworkPolicy")
add("k8s-017-network-policies", "NetworkPolicy/default-deny", "object", ("spec", "policyTypes"), ["Ingress"],
    "namespace new-api has no default-deny Egress NetworkPolicy")
add("k8s-017-network-policies", "NetworkPolicy/allow-dns", "object", (), REMOVE, "no NetworkPolicy allowing DNS egress")
add("k8s-017-network-policies", "NetworkPolicy/new-api-allow", "object", (), REMOVE,
    "Deployment new-api/new-api has no NetworkPolicy of its own declaring Ingress and Egress")
add("k8s-017-network-policies", "NetworkPolicy/postgres-allow", "object", ("spec", "policyTypes"), ["Ingress"],
    "StatefulSet new-api/postgres has no NetworkPolicy of its own declaring Egress")
add("k8s-018-pdb-for-multi-replica", "PodDisruptionBudget/new-api", "object", (), REMOVE,
    "Deployment new-api/new-api runs up to 6 replicas without a PodDisruptionBudget")
add("k8s-018-pdb-for-multi-replica", "StatefulSet/postgres", "object", ("spec", "replicas"), 3,
    "StatefulSet new-api/postgres runs 3 replicas without a PodDisruptionBudget")
add("k8s-032-pdb-sane", "PodDisruptionBudget/new-api", "object", ("spec", "maxUnavailable"), 0,
    "sets maxUnavailable: 0, so no pod can ever be evicted")
add("k8s-032-pdb-sane", "PodDisruptionBudget/new-api", "object", ("spec", "selector", "matchLabels",
                                                                  "app.kubernetes.io/component"), "nope",
    "selects no workload's pods in namespace new-api")
add("k8s-032-pdb-sane", "PodDisruptionBudget/new-api", "object", ("spec", "maxUnavailable"), DELETE,
    "sets neither maxUnavailable nor minAvailable")
add("k8s-032-pdb-sane", "PodDisruptionBudget/new-api", "object", ("spec", "minAvailable"), 2,
    "requires minAvailable 2 of Deployment new-api/new-api's 2 replica(s)")
add("k8s-033-hpa-replicas-unset", "Deployment/new-api", "object", ("spec", "replicas"), 3,
    "sets spec.replicas: 3 although HorizontalPodAutoscaler new-api/new-api scales it")
add("k8s-034-prod-min-replicas", "HorizontalPodAutoscaler/new-api", "object", (), REMOVE,
    "Deployment new-api/new-api serves traffic in prod with 1 replica(s) and no HPA")
add("k8s-038-app-priority-class", "Deployment/new-api", "pod", ("priorityClassName",), DELETE,
    "(the prod app) sets no priorityClassName")
add("k8s-040-referential-integrity", "Service/new-api", "object", ("spec", "selector", "app.kubernetes.io/component"),
    "nope", "which no workload's pods carry")
add("k8s-040-referential-integrity", "Ingress/new-api", "object",
    ("spec", "rules", 0, "http", "paths", 0, "backend", "service", "name"), "ghost",
    "routes to Service new-api/ghost, which the stack does not define")
add("k8s-040-referential-integrity", "Ingress/new-api", "object",
    ("spec", "rules", 0, "http", "paths", 0, "backend", "service", "port", "number"), 81, "routes to port 81")
add("k8s-040-referential-integrity", "HorizontalPodAutoscaler/new-api", "object", ("spec", "scaleTargetRef", "name"),
    "ghost", "targets Deployment ghost, which the stack does not define")
add("k8s-040-referential-integrity", "StatefulSet/postgres", "object", ("spec", "serviceName"), "postgres",
    "serviceName postgres is not a headless Service")
add("k8s-040-referential-integrity", "Deployment/new-api", "object",
    ("spec", "selector", "matchLabels", "app.kubernetes.io/component"), "x", "does not match its pod template labels")
add("k8s-040-referential-integrity", "NetworkPolicy/new-api-allow", "object",
    ("spec", "podSelector", "matchLabels", "app.kubernetes.io/component"), "x", "podSelector matches no workload's pods")
# Gateway API (issue 15): the Ingress controls' equivalents on Gateways and HTTPRoutes
add("k8s-020-gateway-tls", "HTTPRoute/new-api", "object", ("spec", "parentRefs", 0, "sectionName"), "http",
    "HTTPRoute new-api/new-api is served on plain-HTTP listener http of Gateway new-api/new-api")
add("k8s-020-gateway-tls", "HTTPRoute/new-api", "object", ("spec", "parentRefs", 0, "sectionName"), DELETE,
    "is served on plain-HTTP listener http", label="-every-listener")
add("k8s-020-gateway-tls", "HTTPRoute/new-api", "object", ("spec", "parentRefs", 0, "sectionName"), "tls",
    "attaches to listener tls of Gateway new-api/new-api, which has no such listener")
add("k8s-020-gateway-tls", "HTTPRoute/new-api-https-redirect", "object", ("spec", "rules", 0, "filters", 0,
                                                                          "requestRedirect", "scheme"), "http",
    "HTTPRoute new-api/new-api-https-redirect is served on plain-HTTP listener http")
add("k8s-020-gateway-tls", "Gateway/new-api", "object", ("spec", "listeners", 1, "tls", "certificateRefs"), [],
    "listener https is HTTPS without a certificate it terminates TLS with")
add("k8s-040-gateway-references", "HTTPRoute/new-api", "object", ("spec", "rules", 0, "backendRefs", 0, "name"),
    "ghost", "routes to Service new-api/ghost, which the stack does not define")
add("k8s-040-gateway-references", "HTTPRoute/new-api", "object", ("spec", "rules", 0, "backendRefs", 0, "port"), 81,
    "routes to port 81 of Service new-api/new-api")
add("k8s-040-gateway-references", "HTTPRoute/new-api", "object", ("spec", "rules", 0, "backendRefs", 0, "namespace"),
    "other", "routes to Service other/new-api in another namespace without a ReferenceGrant there")
add("k8s-040-gateway-references", "Gateway/new-api", "object",
    ("spec", "listeners", 1, "tls", "certificateRefs", 0, "namespace"), "certs",
    "uses certificate certs/new-api-tls from another namespace without a ReferenceGrant there")
add("k8s-049-namespace-quota", "ResourceQuota/quota", "object", (), REMOVE, "has no ResourceQuota")
add("k8s-049-namespace-quota", "LimitRange/limits", "object", (), REMOVE, "has no LimitRange")
add("stk-001-stateful-protected", "ReplicationGroup/cache", "entry", ("protect",), False,
    "ReplicationGroup cache holds state in prod but is not protected")
add("stk-001-stateful-protected", "Bucket/backups", "entry", ("protect",), False,
    "Bucket backups holds state in prod but is not protected")
add("stk-001-stateful-protected", "StatefulSet/postgres", "object", ("spec", "persistentVolumeClaimRetentionPolicy"),
    {"whenDeleted": "Delete"}, "StatefulSet new-api/postgres holds state in prod but is not protected")
add("stk-002-credentials-secret", "Secret/alertmanager-config", "entry", ("secretPaths",), [],
    "carries stringData.alertmanager.yaml as a plaintext value")
add("stk-002-credentials-secret", "Instance/db", "object", ("password",), "hunter2",
    "input password holds a credential in plaintext")
add("stk-003-datastore-backups", "CronJob/postgres-backup", "object", (), REMOVE,
    "StatefulSet new-api/postgres runs postgres with no backup CronJob")
add("stk-003-datastore-backups", "Instance/db", "object", ("backupRetentionPeriod",), 0, "has automated backups (PITR) off")
for _label, _args in [("no-persistence", []), ("save-disabled", ["--save", '""']),
                      ("appendonly-no", ["--appendonly", "no"])]:
    add("stk-003-datastore-backups", "StatefulSet/redis", "container", ("args",), _args,
        "StatefulSet new-api/redis runs Redis without persistence", label=f"-{_label}")
add("stk-003-datastore-backups", "ReplicationGroup/cache", "object", ("snapshotRetentionLimit",), 0, "keeps no snapshots")
add("stk-005-host-access-own-uid", "Deployment/new-api", "pod", ("hostPID",), True,
    "Deployment new-api/new-api sees the node's processes (hostPID: true) and runs as UID 10001 like ")
add("stk-005-host-access-own-uid", "StatefulSet/postgres", "pod", ("volumes",),
    Append({"name": "proc", "hostPath": {"path": "/proc", "type": "Directory"}}),
    "StatefulSet new-api/postgres sees the node's processes (hostPath /proc) and runs as UID 10001 like ")
add("stk-005-host-access-own-uid", "StatefulSet/redis", "pod", ("volumes",),
    Append({"name": "root", "hostPath": {"path": "/"}}), "(hostPath /) and runs as UID 10001 like ", label="-root")
add("stk-004-monitoring-alert-routing", "ServiceMonitor/postgres", "object", (), REMOVE,
    "StatefulSet new-api/postgres is neither scraped nor otherwise monitored")
add("stk-004-monitoring-alert-routing", "Secret/alertmanager-config", "object", ("stringData", "alertmanager.yaml"),
    "route:\n  receiver: pager\nreceivers:\n  - name: oncall\n", "route sends to undefined receiver pager")
add("stk-004-monitoring-alert-routing", "Secret/alertmanager-config", "object", (), REMOVE,
    "defines alerts but the stack has no Alertmanager configuration")
