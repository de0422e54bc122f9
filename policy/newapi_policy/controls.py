"""The control table: the one place that states each control's id, policy name, level,
scope and remediation (../shared/CONTROLS.md). Every policy, message prefix, test and
report line derives from it.

A control whose CONTROLS.md row mixes levels is split into a mandatory and an advisory
policy that share the id (K8S-003 memory limit / CPU limit, K8S-013 tag / digest).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

MANDATORY = "mandatory"
ADVISORY = "advisory"

#: where a control is decided: in CrossGuard (engine and synth alike), or only on the
#: synth's resources.json (facts CrossGuard's Python SDK never sees: secretness,
#: retainOnDelete).
CROSSGUARD = "crossguard"
SYNTH = "synth"


@dataclass(frozen=True)
class Control:
    id: str
    slug: str
    title: str
    level: str
    applies_to: str
    remediation: str
    prod_only: bool = False
    where: str = CROSSGUARD

    @property
    def policy_name(self) -> str:
        return f"{self.id.lower()}-{self.slug}"

    @property
    def description(self) -> str:
        return f"[{self.id}] {self.title}"


def _c(id_, slug, title, level, applies_to, remediation, **kw) -> Control:
    return Control(id_, slug, title, level, applies_to, remediation, **kw)


M, A = MANDATORY, ADVISORY
WL = "workloads"

CONTROLS: List[Control] = [
    _c("K8S-001", "run-as-non-root", "Containers run as non-root with UID/GID >= 10000", M, WL,
       "set securityContext.runAsNonRoot: true and runAsUser/runAsGroup >= 10000 (pod level or per container)"),
    _c("K8S-002", "resource-requests", "CPU and memory requests on every container", M, WL,
       "set resources.requests.cpu and resources.requests.memory"),
    _c("K8S-003", "memory-limit", "Memory limit on every container", M, WL,
       "set resources.limits.memory"),
    _c("K8S-003", "cpu-limit", "CPU limit on every container", A, WL,
       "set resources.limits.cpu"),
    _c("K8S-004", "probes", "Readiness and liveness probes on long-running containers", M,
       "Deployment, StatefulSet, DaemonSet, Rollout",
       "add readinessProbe and livenessProbe to every container"),
    _c("K8S-005", "no-privilege-escalation", "allowPrivilegeEscalation: false", M, WL,
       "set securityContext.allowPrivilegeEscalation: false on every container"),
    _c("K8S-006", "drop-capabilities", "Capabilities drop ALL, add only NET_BIND_SERVICE", M, WL,
       "set securityContext.capabilities.drop: [ALL] and add nothing but NET_BIND_SERVICE"),
    _c("K8S-007", "seccomp-profile", "seccomp profile RuntimeDefault or Localhost", M, WL,
       "set securityContext.seccompProfile.type: RuntimeDefault (pod level or per container)"),
    _c("K8S-008", "no-privileged", "No privileged containers", M, WL,
       "remove securityContext.privileged (or set it to false)"),
    _c("K8S-009", "no-host-namespaces", "No hostNetwork, hostPID, hostIPC", M, WL,
       "remove hostNetwork/hostPID/hostIPC from the pod spec"),
    _c("K8S-010", "no-host-path", "No hostPath volumes (exemptable, read-only only)", M, WL,
       "replace the hostPath volume, or exempt K8S-010 with a reason and mount it readOnly: true"),
    _c("K8S-011", "no-host-port", "No hostPort", M, WL,
       "remove ports[].hostPort and expose the port through a Service"),
    _c("K8S-012", "read-only-root-fs", "Read-only root filesystem", M, WL,
       "set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where the app writes"),
    _c("K8S-013", "image-tag-pinned", "Image pinned to a tag other than latest", M, WL,
       "use an explicit version tag (or a digest), never latest or no tag"),
    # Prod only: a tag can be re-pushed, a digest cannot; dev may follow a tag (issue 13.3).
    _c("K8S-013", "image-digest", "Prod image pinned by digest, not only by tag", A, WL,
       "pin the image by digest in the stack config (repo:tag@sha256:..., resolved with "
       "`docker buildx imagetools inspect repo:tag`)", prod_only=True),
    _c("K8S-014", "allowed-registries", "Images only from allowed registries", A, WL,
       "pull the image from an allowed registry or add the registry to the allowedRegistries policy config"),
    _c("K8S-015", "no-sa-token-automount", "Service account token not auto-mounted", M,
       "workloads, ServiceAccount",
       "set automountServiceAccountToken: false (exempt K8S-015 with a reason if the workload talks to the Kubernetes API)"),
    _c("K8S-016", "secrets-not-literal", "Secrets only through secretKeyRef or volumes", M,
       "workloads, ConfigMap",
       "move the value into a Secret and reference it with env[].valueFrom.secretKeyRef or a secret volume"),
    _c("K8S-017", "network-policies", "Default-deny, DNS egress and per-workload NetworkPolicies", M, "stack",
       "add a default-deny NetworkPolicy (podSelector: {}, policyTypes [Ingress, Egress]), a DNS egress allow "
       "(port 53) per namespace, and per workload a NetworkPolicy with explicit ingress and egress rules"),
    _c("K8S-018", "pdb-for-multi-replica", "PodDisruptionBudget for every multi-replica workload", M, "stack",
       "add a PodDisruptionBudget in the workload's namespace selecting its pod labels"),
    _c("K8S-019", "spread-replicas", "Multi-replica workloads spread across nodes/zones", A,
       "Deployment, StatefulSet, Rollout",
       "add topologySpreadConstraints (kubernetes.io/hostname and topology.kubernetes.io/zone) or podAntiAffinity"),
    _c("K8S-020", "ingress-tls", "Ingress terminates TLS for every host and redirects HTTP", M, "Ingress",
       "list every rule host in spec.tls[].hosts with a secretName and keep the HTTP->HTTPS redirect on"),
    _c("K8S-020", "gateway-tls", "Gateway API: HTTPS listeners terminate TLS; routes attach to them, plain HTTP "
       "only redirects", M, "Gateway, HTTPRoute",
       "give every HTTPS listener tls.certificateRefs (mode Terminate) and attach HTTPRoutes to it with "
       "parentRefs[].sectionName; on an HTTP listener only a RequestRedirect to https"),
    _c("K8S-021", "no-nodeport-lb", "No NodePort Service; LoadBalancer only when allowed", M, "Service",
       "use type ClusterIP behind the Ingress (a LoadBalancer needs the policy.new-api.io/allow-load-balancer annotation with a reason)"),
    _c("K8S-022", "hpa-bounds", "HPA minReplicas, maxReplicas > min, scale-down stabilization", M,
       "HorizontalPodAutoscaler",
       "set minReplicas >= the prod minimum, maxReplicas > minReplicas and behavior.scaleDown.stabilizationWindowSeconds"),
    _c("K8S-023", "rolling-update-capacity", "Rolling updates never drop capacity", A, "Deployment",
       "set strategy.rollingUpdate.maxUnavailable: 0 (with maxSurge >= 1)"),
    _c("K8S-024", "graceful-shutdown", "Graceful shutdown for serving pods", A, "Deployment, Rollout",
       "set terminationGracePeriodSeconds and a lifecycle.preStop hook on serving containers"),
    _c("K8S-025", "pod-security-labels", "Namespaces carry Pod Security admission labels", M, "Namespace",
       "label the namespace pod-security.kubernetes.io/enforce: restricted (baseline needs the "
       "policy.new-api.io/pod-security-reason annotation)"),
    _c("K8S-026", "storage-requests-retained", "StatefulSet volumes request storage; prod PVCs retained", M,
       "StatefulSet, PVC",
       "set resources.requests.storage on every volumeClaimTemplate/PVC and keep persistentVolumeClaimRetentionPolicy.whenDeleted: Retain in prod"),
    _c("K8S-027", "rbac-no-wildcards", "RBAC: no wildcard verbs/resources, no cluster-admin binding", M,
       "Role, ClusterRole, bindings",
       "list the exact apiGroups, resources and verbs; bind a narrow Role instead of cluster-admin"),
    _c("K8S-028", "standard-labels", "Standard app.kubernetes.io labels", A, "all Kubernetes objects",
       "add app.kubernetes.io/name, instance, component, part-of: new-api and managed-by: pulumi"),
    _c("K8S-029", "pss-restricted-rest", "Rest of PSS restricted (procMount, sysctls, SELinux, AppArmor, hostProcess, probe host)", M, WL,
       "remove unsafe procMount/sysctls/seLinuxOptions/Unconfined AppArmor/hostProcess/probe host settings"),
    _c("K8S-030", "volume-types", "Only safe volume types", M, WL,
       "use configMap, secret, emptyDir, projected, downwardAPI, persistentVolumeClaim, csi or ephemeral volumes"),
    _c("K8S-031", "all-containers-covered", "Init and ephemeral containers are checked like containers", M, WL,
       "give every container (init and ephemeral too) a unique name and do not declare ephemeralContainers in manifests"),
    _c("K8S-032", "pdb-sane", "PDB allows a disruption and selects the workload", M, "PodDisruptionBudget",
       "set maxUnavailable: 1 (or minAvailable below the replica count) and a selector matching the workload's pods in its namespace"),
    _c("K8S-033", "hpa-replicas-unset", "HPA-targeted Deployment/Rollout leaves spec.replicas unset", M,
       "Deployment, Rollout", "remove spec.replicas from the workload the HPA scales"),
    _c("K8S-034", "prod-min-replicas", "Prod serving workloads without HPA run >= minProdReplicas", M,
       "Deployment, StatefulSet, Rollout", "set spec.replicas >= minProdReplicas or add an HPA", prod_only=True),
    _c("K8S-035", "distinct-probes", "Liveness probe differs from readiness probe", A, WL,
       "point livenessProbe at a cheaper endpoint than readinessProbe, or add a startupProbe"),
    _c("K8S-036", "ephemeral-storage", "emptyDir sizeLimit and ephemeral-storage requests", A, WL,
       "set emptyDir.sizeLimit and resources.requests.ephemeral-storage"),
    _c("K8S-037", "job-bounds", "Jobs/CronJobs are bounded and cleaned up", M, "Job, CronJob",
       "set backoffLimit, activeDeadlineSeconds (CronJob: startingDeadlineSeconds), restartPolicy OnFailure/Never, "
       "ttlSecondsAfterFinished or history limits, and concurrencyPolicy: Forbid on backups"),
    _c("K8S-038", "app-priority-class", "Prod app has a priorityClassName above logging/monitoring", A,
       "Deployment, Rollout", "set priorityClassName to a PriorityClass valued above logging and monitoring", prod_only=True),
    _c("K8S-039", "no-bare-pods", "No bare Pods", M, "Pod", "run the pod from a Deployment, StatefulSet, Job or CronJob"),
    _c("K8S-040", "referential-integrity", "References between objects resolve", M, "stack",
       "make selectors, backends, targets and serviceName refer to objects that exist in the stack"),
    _c("K8S-040", "gateway-references", "Gateway API references resolve; across namespaces only with a ReferenceGrant",
       M, "HTTPRoute, Gateway, ReferenceGrant",
       "point backendRefs at a Service and port of the stack; for another namespace add a ReferenceGrant there "
       "(from the HTTPRoute's or Gateway's namespace and kind, to the Service or Secret)"),
    _c("K8S-041", "no-deprecated-api", "No alpha, beta or removed apiVersions", M, "all Kubernetes objects",
       "use the stable apiVersion (autoscaling/v2, policy/v1, networking.k8s.io/v1, batch/v1, ...)"),
    _c("K8S-042", "ingress-hosts", "Ingress hosts explicit, covered by TLS, unique; no defaultBackend", M, "Ingress",
       "give every rule a concrete host listed in spec.tls[].hosts, remove defaultBackend and duplicate host+path pairs"),
    _c("K8S-043", "no-ingress-snippets", "No ingress-nginx *-snippet annotations", M, "Ingress",
       "remove the nginx.ingress.kubernetes.io/*-snippet annotation (CVE-2021-25742)"),
    _c("K8S-044", "no-external-ips", "Services set no externalIPs", M, "Service", "remove spec.externalIPs"),
    _c("K8S-045", "prod-issuer", "Prod certificates come from the production issuer", M, "Ingress, Gateway, Certificate",
       "use the production ClusterIssuer (productionIssuers policy config)", prod_only=True),
    _c("K8S-046", "no-default-namespace", "Nothing in the default namespace", M, "namespaced objects",
       "set metadata.namespace to the component's namespace"),
    _c("K8S-047", "own-service-account", "Each workload runs under its own ServiceAccount", M, WL,
       "create a ServiceAccount for the workload and set serviceAccountName"),
    _c("K8S-048", "rbac-no-escalation", "RBAC: no escalate/bind/impersonate, exec/attach/proxy, cluster-wide secret reads", M,
       "Role, ClusterRole",
       "remove escalate/bind/impersonate verbs, create on pods/exec|pods/attach|nodes/proxy, and cluster-wide secrets reads"),
    _c("K8S-049", "namespace-quota", "App namespaces have a ResourceQuota and a LimitRange", A, "Namespace",
       "add a ResourceQuota and a LimitRange to the namespace"),
    _c("K8S-050", "image-pull-policy", "imagePullPolicy Always or a digest-pinned image", A, WL,
       "set imagePullPolicy: Always or pin the image by digest"),
    _c("AWS-001", "rds-encrypted", "RDS storage encrypted with KMS", M, "aws:rds",
       "set storageEncrypted: true and kmsKeyId to a customer-managed key"),
    _c("AWS-002", "rds-backup-retention", "RDS backup retention >= 7 days (prod >= 14)", M, "aws:rds",
       "set backupRetentionPeriod to at least the minimum retention"),
    _c("AWS-003", "rds-deletion-protection", "RDS deletion protection and final snapshot in prod", M, "aws:rds",
       "set deletionProtection: true, skipFinalSnapshot: false and finalSnapshotIdentifier", prod_only=True),
    _c("AWS-004", "rds-multi-az-private", "RDS Multi-AZ in prod; not publicly accessible", M, "aws:rds",
       "set publiclyAccessible: false and (prod) multiAz: true"),
    _c("AWS-005", "rds-operability", "RDS minor upgrades, Performance Insights, log exports", A, "aws:rds",
       "keep autoMinorVersionUpgrade on, enable performanceInsightsEnabled and enabledCloudwatchLogsExports"),
    _c("AWS-006", "elasticache-encryption-auth", "ElastiCache encryption at rest and in transit, auth token", M,
       "aws:elasticache", "set atRestEncryptionEnabled, transitEncryptionEnabled and authToken (or userGroupIds)"),
    _c("AWS-007", "elasticache-ha-snapshots", "ElastiCache failover and Multi-AZ in prod, snapshots kept", M,
       "aws:elasticache", "set snapshotRetentionLimit > 0 and (prod) automaticFailoverEnabled and multiAzEnabled"),
    _c("AWS-008", "s3-public-access-block", "S3 public access fully blocked", M, "aws:s3",
       "add a BucketPublicAccessBlock with all four settings true"),
    _c("AWS-009", "s3-encryption-versioning", "S3 server-side encryption; versioning on backup buckets", M, "aws:s3",
       "add a BucketServerSideEncryptionConfiguration (aws:kms) and, for backup buckets, BucketVersioning Enabled"),
    _c("AWS-010", "s3-backup-lifecycle", "S3 lifecycle expires old backups", A, "aws:s3",
       "add a BucketLifecycleConfiguration rule (Enabled) expiring objects after the retention period"),
    _c("AWS-011", "sg-no-public-datastore", "No ingress from 0.0.0.0/0 to data stores", M, "aws:ec2",
       "restrict the rule's source to the cluster's security group or VPC CIDR"),
    _c("AWS-012", "kms-rotation", "KMS keys rotate", M, "aws:kms", "set enableKeyRotation: true"),
    _c("AWS-013", "s3-tls-only", "Backup buckets deny requests without TLS", M, "aws:s3",
       "add a BucketPolicy statement Deny s3:* when aws:SecureTransport is false"),
    _c("AWS-014", "s3-no-acls", "S3 ownership controls BucketOwnerEnforced, no ACLs", M, "aws:s3",
       "add BucketOwnershipControls with objectOwnership: BucketOwnerEnforced and drop ACLs"),
    _c("AWS-015", "s3-access-logging", "S3 server access logging on backup buckets", A, "aws:s3",
       "add a BucketLogging resource targeting the log bucket"),
    _c("AWS-016", "rds-hygiene", "RDS copies tags, non-default username, subnet group, enhanced monitoring", A, "aws:rds",
       "set copyTagsToSnapshot, a non-default username, dbSubnetGroupName and monitoringInterval > 0"),
    _c("AWS-017", "rds-pi-kms", "Performance Insights KMS-encrypted", M, "aws:rds",
       "set performanceInsightsKmsKeyId when performanceInsightsEnabled"),
    _c("AWS-018", "elasticache-hygiene", "ElastiCache auto minor upgrades and own subnet group", A, "aws:elasticache",
       "keep autoMinorVersionUpgrade on and set subnetGroupName"),
    _c("AWS-019", "kms-iam-safety", "KMS keys safe; no kms:Decrypt on *", M, "aws:kms, aws:iam",
       "keep bypassPolicyLockoutSafetyCheck false, add a description, deletionWindowInDays: 30, and scope kms:Decrypt to key ARNs"),
    _c("AWS-020", "sg-rule-descriptions", "Security-group rules carry descriptions", A, "aws:ec2",
       "set description on every security-group rule"),
    _c("STK-001", "stateful-protected", "Prod stateful resources are protected", M, "stack",
       "set protect=True (or retainOnDelete / native deletion protection) on the resource", prod_only=True),
    _c("STK-002", "credentials-secret", "Generated credentials are Pulumi secrets", M, "stack",
       "wrap the value in pulumi.Output.secret / additional_secret_outputs and never export it in plaintext",
       where=SYNTH),
    _c("STK-003", "datastore-backups", "Every datastore has a backup schedule", M, "stack",
       "add a backup CronJob (pg_dump / snapshot) annotated policy.new-api.io/backup-of, PITR or Redis persistence"),
    _c("STK-004", "monitoring-alert-routing", "Workloads monitored; alerts routed", A, "stack",
       "add a ServiceMonitor/PodMonitor (or prometheus.io/scrape) for the workload and route every alert to a receiver"),
    _c("STK-005", "host-access-own-uid", "Workloads that see the node's processes have a UID of their own", M,
       "stack", "give the workload a UID no other workload uses (components/common.py WORKLOAD_UIDS), and drop "
       "hostPID where the agent reads the host's /proc mount anyway"),
    _c("POL-001", "exemption-annotations", "Exemption annotations name known controls and a reason", M,
       "all Kubernetes objects",
       "name only known control ids in policy.new-api.io/exempt-controls and give policy.new-api.io/exempt-reason"),
]

BY_POLICY: Dict[str, Control] = {c.policy_name: c for c in CONTROLS}
CONTROL_IDS = frozenset(c.id for c in CONTROLS)
assert len(BY_POLICY) == len(CONTROLS), "duplicate policy names in the control table"


def control(policy_name: str) -> Control:
    return BY_POLICY[policy_name]
