"""Compliant fixtures, one per kind, in the shape of the synth's resources.json entries
(camelCase inputs as the engine sends them). Every bad case in the tests is one of these
plus one mutation."""
from __future__ import annotations

import copy
import functools
import json
from typing import Any, Dict, List, Optional

NS = "new-api"
DIGEST = "@sha256:" + "a" * 64
PROJECT = "new-api"
STACK = "test"

TYPES = {
    "Deployment": "kubernetes:apps/v1:Deployment", "StatefulSet": "kubernetes:apps/v1:StatefulSet",
    "DaemonSet": "kubernetes:apps/v1:DaemonSet", "ReplicaSet": "kubernetes:apps/v1:ReplicaSet",
    "Job": "kubernetes:batch/v1:Job", "CronJob": "kubernetes:batch/v1:CronJob", "Pod": "kubernetes:core/v1:Pod",
    "Rollout": "kubernetes:argoproj.io/v1alpha1:Rollout", "Namespace": "kubernetes:core/v1:Namespace",
    "Service": "kubernetes:core/v1:Service", "ServiceAccount": "kubernetes:core/v1:ServiceAccount",
    "ConfigMap": "kubernetes:core/v1:ConfigMap", "Secret": "kubernetes:core/v1:Secret",
    "PersistentVolumeClaim": "kubernetes:core/v1:PersistentVolumeClaim",
    "ResourceQuota": "kubernetes:core/v1:ResourceQuota", "LimitRange": "kubernetes:core/v1:LimitRange",
    "Gateway": "kubernetes:gateway.networking.k8s.io/v1:Gateway",
    "HTTPRoute": "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute",
    "ReferenceGrant": "kubernetes:gateway.networking.k8s.io/v1beta1:ReferenceGrant",
    "Ingress": "kubernetes:networking.k8s.io/v1:Ingress", "NetworkPolicy": "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    "HorizontalPodAutoscaler": "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
    "PodDisruptionBudget": "kubernetes:policy/v1:PodDisruptionBudget",
    "Role": "kubernetes:rbac.authorization.k8s.io/v1:Role",
    "ClusterRole": "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
    "RoleBinding": "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
    "ClusterRoleBinding": "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
    "PriorityClass": "kubernetes:scheduling.k8s.io/v1:PriorityClass",
    "Certificate": "kubernetes:cert-manager.io/v1:Certificate",
    "ServiceMonitor": "kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
    "ClusterIssuer": "kubernetes:cert-manager.io/v1:ClusterIssuer",
    "PrometheusRule": "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
}
WORKLOAD_KINDS = ["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod", "Rollout"]


def urn(typ: str, name: str) -> str:
    return f"urn:pulumi:{STACK}::{PROJECT}::{typ}::{name}"


def entry(typ: str, name: str, inputs: Dict[str, Any], **kw) -> Dict[str, Any]:
    e = {"urn": urn(typ, name), "type": typ, "name": name, "custom": True, "parent": None, "dependencies": [],
         "protect": False, "retainOnDelete": False, "deleteBeforeReplace": False, "aliases": [],
         "additionalSecretOutputs": [], "inputs": inputs, "secretPaths": []}
    e.update(kw)
    return e


def labels(name: str, component: str) -> Dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": f"{name}-test",
            "app.kubernetes.io/component": component, "app.kubernetes.io/part-of": "new-api",
            "app.kubernetes.io/managed-by": "pulumi"}


def selector_labels(name: str, component: str) -> Dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": f"{name}-test",
            "app.kubernetes.io/component": component}


def k8s(kind: str, name: str, body: Dict[str, Any], *, app: str = "new-api", component: str = "serving",
        namespaced: bool = True, api_version: Optional[str] = None, **kw) -> Dict[str, Any]:
    typ = TYPES[kind]
    meta = {"name": name, "labels": labels(app, component)}
    if namespaced:
        meta["namespace"] = NS
    inputs = {"apiVersion": api_version or typ.split(":")[1].replace("core/", ""), "kind": kind, "metadata": meta}
    inputs.update(body)
    return entry(typ, name, inputs, **kw)


# --------------------------------------------------------------------------- pod template


def container(name: str, *, ports: bool = True, probes: bool = True, image: str = "calciumion/new-api:v0.9.0") -> Dict:
    c: Dict[str, Any] = {
        "name": name,
        "image": image + DIGEST,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "64Mi"},
                      "limits": {"cpu": "1", "memory": "512Mi"}},
        "env": [{"name": "PORT", "value": "3000"},
                {"name": "SQL_DSN", "valueFrom": {"secretKeyRef": {"name": "new-api-db", "key": "dsn"}}}],
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if ports:
        c["ports"] = [{"name": "http", "containerPort": 3000}]
        c["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", "5"]}}}
    if probes:
        c["readinessProbe"] = {"httpGet": {"path": "/api/status", "port": "http"}, "periodSeconds": 5}
        c["livenessProbe"] = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    return c


def pod_template(app: str, component: str, *, long_running: bool = True) -> Dict[str, Any]:
    init = container("migrate", ports=False, probes=False)
    main = container("app", ports=long_running, probes=long_running)
    spec: Dict[str, Any] = {
        "serviceAccountName": app,
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [init],
        "containers": [main],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    if long_running:
        spec["terminationGracePeriodSeconds"] = 30
        spec["priorityClassName"] = "new-api-critical"
        spec["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                              "whenUnsatisfiable": "ScheduleAnyway",
                                              "labelSelector": {"matchLabels": selector_labels(app, component)}}]
    else:
        spec["restartPolicy"] = "OnFailure"
    return {"metadata": {"labels": labels(app, component)}, "spec": spec}


def workload(kind: str, name: str = "new-api", *, app: str = "new-api", component: str = "serving") -> Dict[str, Any]:
    long_running = kind not in ("Job", "CronJob")
    tpl = pod_template(app, component, long_running=long_running)
    sel = {"matchLabels": selector_labels(app, component)}
    if kind == "Pod":
        body = {"spec": tpl["spec"]}
        return k8s(kind, name, body, app=app, component=component)
    if kind == "Job":
        body = {"spec": {"backoffLimit": 2, "activeDeadlineSeconds": 600, "ttlSecondsAfterFinished": 3600,
                         "template": tpl}}
    elif kind == "CronJob":
        body = {"spec": {"schedule": "0 3 * * *", "concurrencyPolicy": "Forbid", "startingDeadlineSeconds": 300,
                         "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
                         "jobTemplate": {"spec": {"backoffLimit": 2, "activeDeadlineSeconds": 600,
                                                  "template": tpl}}}}
    else:
        body = {"spec": {"selector": sel, "template": tpl}}
        if kind in ("Deployment", "StatefulSet", "ReplicaSet", "Rollout"):
            body["spec"]["replicas"] = 2
        if kind == "Deployment":
            body["spec"]["strategy"] = {"type": "RollingUpdate",
                                        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
        if kind == "Rollout":
            body["spec"]["strategy"] = {"canary": {"steps": [{"setWeight": 20}, {"pause": {"duration": "5m"}}]}}
        if kind == "StatefulSet":
            body["spec"]["serviceName"] = f"{name}-headless"
            body["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}]
    return k8s(kind, name, body, app=app, component=component)


# --------------------------------------------------------------------------- other Kubernetes kinds


def namespace(name: str = NS) -> Dict[str, Any]:
    e = k8s("Namespace", name, {}, component="namespace", namespaced=False)
    e["inputs"]["metadata"]["labels"].update({"pod-security.kubernetes.io/enforce": "restricted",
                                              "pod-security.kubernetes.io/enforce-version": "latest"})
    return e


def service(name: str = "new-api", app: str = "new-api", component: str = "serving", headless: bool = False):
    spec: Dict[str, Any] = {"type": "ClusterIP", "selector": selector_labels(app, component),
                            "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    if headless:
        spec["clusterIP"] = "None"
    return k8s("Service", name, {"spec": spec}, app=app, component=component)


def ingress(name: str = "new-api") -> Dict[str, Any]:
    e = k8s("Ingress", name, {"spec": {
        "ingressClassName": "nginx",
        "tls": [{"hosts": ["api.example.com"], "secretName": "new-api-tls"}],
        "rules": [{"host": "api.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
            "service": {"name": "new-api", "port": {"number": 80}}}}]}}]}})
    e["inputs"]["metadata"]["annotations"] = {"cert-manager.io/cluster-issuer": "letsencrypt-prod"}
    return e


def gateway(name: str = "new-api") -> Dict[str, Any]:
    """Gateway API: HTTP for redirects and ACME, HTTPS terminated with the certificate."""
    e = k8s("Gateway", name, {"spec": {"gatewayClassName": "eg", "listeners": [
        {"name": "http", "protocol": "HTTP", "port": 80, "allowedRoutes": {"namespaces": {"from": "Same"}}},
        {"name": "https", "protocol": "HTTPS", "port": 443, "hostname": "api.example.com",
         "tls": {"mode": "Terminate", "certificateRefs": [{"group": "", "kind": "Secret", "name": "new-api-tls"}]},
         "allowedRoutes": {"namespaces": {"from": "Same"}}}]}}, component="gateway")
    e["inputs"]["metadata"]["annotations"] = {"cert-manager.io/cluster-issuer": "letsencrypt-prod"}
    return e


def http_route(name: str = "new-api") -> Dict[str, Any]:
    return k8s("HTTPRoute", name, {"spec": {
        "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "new-api",
                        "sectionName": "https"}],
        "hostnames": ["api.example.com"],
        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                   "backendRefs": [{"group": "", "kind": "Service", "name": "new-api", "port": 80}]}]}},
        component="route")


def redirect_route() -> Dict[str, Any]:
    return k8s("HTTPRoute", "new-api-https-redirect", {"spec": {
        "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "new-api",
                        "sectionName": "http"}],
        "hostnames": ["api.example.com"],
        "rules": [{"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]}]}},
        component="gateway")


def certificate() -> Dict[str, Any]:
    return k8s("Certificate", "new-api-tls", {"spec": {"secretName": "new-api-tls", "dnsNames": ["api.example.com"],
                                                       "issuerRef": {"name": "letsencrypt-prod", "kind": "ClusterIssuer"}}})


def cluster_issuer() -> Dict[str, Any]:
    return k8s("ClusterIssuer", "letsencrypt-prod", {"spec": {"acme": {
        "email": "oncall@example.com", "server": "https://acme-v02.api.letsencrypt.org/directory",
        "privateKeySecretRef": {"name": "letsencrypt-prod-account-key"},
        "solvers": [{"http01": {"ingress": {"ingressClassName": "nginx"}}}]}}}, component="issuer", namespaced=False)


def hpa(target: str = "new-api", kind: str = "Deployment") -> Dict[str, Any]:
    return k8s("HorizontalPodAutoscaler", target, {"spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
        "minReplicas": 2, "maxReplicas": 6,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                                 "averageUtilization": 70}}}],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}}})


def pdb(name: str = "new-api", app: str = "new-api", component: str = "serving") -> Dict[str, Any]:
    return k8s("PodDisruptionBudget", name, {"spec": {"maxUnavailable": 1, "selector": {
        "matchLabels": selector_labels(app, component)}}}, app=app, component=component)


def service_account(name: str = "new-api") -> Dict[str, Any]:
    return k8s("ServiceAccount", name, {"automountServiceAccountToken": False})


def config_map() -> Dict[str, Any]:
    return k8s("ConfigMap", "new-api-config", {"data": {"LOG_LEVEL": "info", "SESSION_TTL": "3600"}})


def pvc() -> Dict[str, Any]:
    return k8s("PersistentVolumeClaim", "new-api-data", {"spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}})


def role(kind: str = "Role") -> Dict[str, Any]:
    return k8s(kind, "new-api-reader", {"rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]},
        namespaced=(kind == "Role"))


def binding(kind: str = "RoleBinding") -> Dict[str, Any]:
    role_kind = "Role" if kind == "RoleBinding" else "ClusterRole"
    return k8s(kind, "new-api-reader", {
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": "new-api-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "new-api", "namespace": NS}]}, namespaced=(kind == "RoleBinding"))


def netpol(name: str, selector: Dict[str, Any], types: List[str], ingress: Optional[list] = None,
           egress: Optional[list] = None) -> Dict[str, Any]:
    spec: Dict[str, Any] = {"podSelector": selector, "policyTypes": types}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return k8s("NetworkPolicy", name, {"spec": spec}, component="network-policy")


def default_deny() -> Dict[str, Any]:
    return netpol("default-deny", {}, ["Ingress", "Egress"])


def allow_dns() -> Dict[str, Any]:
    return netpol("allow-dns", {}, ["Egress"], egress=[{"to": [{"namespaceSelector": {}}],
                                                        "ports": [{"protocol": "UDP", "port": 53},
                                                                  {"protocol": "TCP", "port": 53}]}])


def workload_netpol(name: str, app: str, component: str) -> Dict[str, Any]:
    return netpol(f"{name}-allow", {"matchLabels": selector_labels(app, component)}, ["Ingress", "Egress"],
                  ingress=[{"from": [{"namespaceSelector": {"matchLabels": {
                      "kubernetes.io/metadata.name": "ingress-nginx"}}}], "ports": [{"port": 3000}]}],
                  egress=[{"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "postgres"}}}],
                           "ports": [{"port": 5432}]}])


def quota() -> Dict[str, Any]:
    return k8s("ResourceQuota", "quota", {"spec": {"hard": {"requests.cpu": "8", "requests.memory": "16Gi"}}},
               component="namespace")


def limit_range() -> Dict[str, Any]:
    return k8s("LimitRange", "limits", {"spec": {"limits": [{"type": "Container",
                                                            "default": {"cpu": "500m", "memory": "256Mi"}}]}},
               component="namespace")


def priority_class(name: str, value: int) -> Dict[str, Any]:
    return k8s("PriorityClass", name, {"value": value, "globalDefault": False}, component="scheduling",
               namespaced=False)


def service_monitor(name: str = "new-api", app: str = "new-api", component: str = "serving") -> Dict[str, Any]:
    return k8s("ServiceMonitor", name, {"spec": {"selector": {"matchLabels": selector_labels(app, component)},
                                                 "endpoints": [{"port": "http", "path": "/metrics"}]}},
               component="monitoring")


def prometheus_rule() -> Dict[str, Any]:
    return k8s("PrometheusRule", "new-api-alerts", {"spec": {"groups": [{"name": "new-api", "rules": [
        {"alert": "NewApiDown", "expr": "up{job=\"new-api\"} == 0", "for": "5m",
         "labels": {"severity": "critical"}}]}]}}, component="monitoring")


ALERTMANAGER_YAML = """route:
  receiver: oncall
  routes:
    - matchers: ['severity="critical"']
      receiver: oncall
receivers:
  - name: oncall
    webhook_configs:
      - url: http://alert-sink.monitoring.svc:8080/
"""


def alertmanager_secret(text: str = ALERTMANAGER_YAML) -> Dict[str, Any]:
    return k8s("Secret", "alertmanager-config", {"stringData": {"alertmanager.yaml": text}}, component="monitoring",
               secretPaths=["stringData"])


# --------------------------------------------------------------------------- AWS


def kms_key(name: str = "data-key") -> Dict[str, Any]:
    return entry("aws:kms/key:Key", name, {"description": "new-api data at rest", "enableKeyRotation": True,
                                           "deletionWindowInDays": 30}, protect=True)


def rds(name: str = "db") -> Dict[str, Any]:
    return entry("aws:rds/instance:Instance", name, {
        "engine": "postgres", "engineVersion": "16.4", "instanceClass": "db.t4g.medium", "allocatedStorage": 20,
        "storageEncrypted": True, "kmsKeyId": "arn:aws:kms:eu-west-1:111111111111:key/data",
        "backupRetentionPeriod": 14, "deletionProtection": True, "skipFinalSnapshot": False,
        "finalSnapshotIdentifier": "db-final", "multiAz": True, "publiclyAccessible": False,
        "autoMinorVersionUpgrade": True, "performanceInsightsEnabled": True,
        "performanceInsightsKmsKeyId": "arn:aws:kms:eu-west-1:111111111111:key/data",
        "enabledCloudwatchLogsExports": ["postgresql", "upgrade"], "copyTagsToSnapshot": True,
        "username": "newapi", "password": "[secret]", "dbSubnetGroupName": "db-subnets",
        "monitoringInterval": 60, "monitoringRoleArn": "arn:aws:iam::111111111111:role/rds-monitoring"},
        protect=True)


def rds_cluster(name: str = "aurora") -> Dict[str, Any]:
    return entry("aws:rds/cluster:Cluster", name, {
        "engine": "aurora-postgresql", "storageEncrypted": True, "kmsKeyId": "arn:aws:kms:eu-west-1:1:key/data",
        "backupRetentionPeriod": 14, "deletionProtection": True, "skipFinalSnapshot": False,
        "finalSnapshotIdentifier": "aurora-final", "copyTagsToSnapshot": True, "masterUsername": "newapi",
        "masterPassword": "[secret]", "dbSubnetGroupName": "db-subnets",
        "enabledCloudwatchLogsExports": ["postgresql"]}, protect=True)


def redis_rg(name: str = "cache") -> Dict[str, Any]:
    return entry("aws:elasticache/replicationGroup:ReplicationGroup", name, {
        "description": "new-api cache", "engine": "redis", "nodeType": "cache.t4g.small", "numCacheClusters": 2,
        "atRestEncryptionEnabled": True, "transitEncryptionEnabled": True, "authToken": "[secret]",
        "automaticFailoverEnabled": True, "multiAzEnabled": True, "snapshotRetentionLimit": 7,
        "autoMinorVersionUpgrade": True, "subnetGroupName": "cache-subnets"}, protect=True)


def security_group(name: str = "db-sg") -> Dict[str, Any]:
    return entry("aws:ec2/securityGroup:SecurityGroup", name, {
        "description": "database", "vpcId": "vpc-1",
        "ingress": [{"protocol": "tcp", "fromPort": 5432, "toPort": 5432, "cidrBlocks": ["10.0.0.0/16"],
                     "description": "postgres from the cluster VPC"}],
        "egress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["10.0.0.0/16"],
                    "description": "replies inside the VPC"}]})


def sg_ingress_rule(name: str = "db-in") -> Dict[str, Any]:
    return entry("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", name, {
        "securityGroupId": "sg-1", "ipProtocol": "tcp", "fromPort": 6379, "toPort": 6379,
        "cidrIpv4": "10.0.0.0/16", "description": "redis from the cluster VPC"})


def iam_policy(name: str = "backup-writer") -> Dict[str, Any]:
    return entry("aws:iam/policy:Policy", name, {"policy": json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
         "Resource": "arn:aws:kms:eu-west-1:111111111111:key/data"},
        {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": "arn:aws:s3:::new-api-backups/*"}]})})


def bucket_set(name: str = "backups") -> List[Dict[str, Any]]:
    b = entry("aws:s3/bucket:Bucket", name, {"bucket": "new-api-backups", "tags": {"purpose": "backup"}},
              protect=True)
    u = b["urn"]

    def part(typ, suffix, inputs):
        return entry(typ, f"{name}-{suffix}", {"bucket": "new-api-backups", **inputs}, parent=u, dependencies=[u])
    tls_policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyPlainHttp", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": ["arn:aws:s3:::new-api-backups", "arn:aws:s3:::new-api-backups/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})
    return [b,
            part("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "pab", {
                "blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True,
                "restrictPublicBuckets": True}),
            part("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "sse", {
                "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms",
                                                                  "kmsMasterKeyId": "arn:aws:kms:key/data"},
                           "bucketKeyEnabled": True}]}),
            part("aws:s3/bucketVersioning:BucketVersioning", "versioning",
                 {"versioningConfiguration": {"status": "Enabled"}}),
            part("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "lifecycle", {
                "rules": [{"id": "expire", "status": "Enabled", "filter": {"prefix": ""}, "expiration": {"days": 30},
                           "noncurrentVersionExpiration": {"noncurrentDays": 30}}]}),
            part("aws:s3/bucketPolicy:BucketPolicy", "policy", {"policy": tls_policy}),
            part("aws:s3/bucketOwnershipControls:BucketOwnershipControls", "ownership",
                 {"rule": {"objectOwnership": "BucketOwnerEnforced"}}),
            part("aws:s3/bucketLogging:BucketLogging", "logging",
                 {"targetBucket": "new-api-logs", "targetPrefix": "backups/"})]


# --------------------------------------------------------------------------- the compliant stack


def app_deployment() -> Dict[str, Any]:
    d = workload("Deployment")
    del d["inputs"]["spec"]["replicas"]  # the HPA owns it (K8S-033)
    return d


def postgres() -> List[Dict[str, Any]]:
    sts = workload("StatefulSet", "postgres", app="postgres", component="database")
    c = sts["inputs"]["spec"]["template"]["spec"]["containers"][0]
    c["image"] = "postgres:16.4" + DIGEST
    c["ports"] = [{"name": "postgres", "containerPort": 5432}]
    c["readinessProbe"] = {"exec": {"command": ["pg_isready"]}}
    c["livenessProbe"] = {"tcpSocket": {"port": 5432}}
    sts["inputs"]["spec"]["replicas"] = 1
    sts["inputs"]["spec"]["template"]["spec"]["serviceAccountName"] = "postgres"
    sts["inputs"]["spec"]["template"]["spec"]["priorityClassName"] = "new-api-data"
    backup = workload("CronJob", "postgres-backup", app="postgres", component="backup")
    backup["inputs"]["metadata"]["annotations"] = {"policy.new-api.io/backup-of": f"{NS}/postgres"}
    backup["inputs"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"] = "postgres-backup"
    return [sts, service("postgres-headless", "postgres", "database", headless=True),
            service("postgres", "postgres", "database"), service_monitor("postgres", "postgres", "database"),
            workload_netpol("postgres", "postgres", "database"), service_account("postgres"),
            backup, workload_netpol("postgres-backup", "postgres", "backup"), service_account("postgres-backup")]


def redis() -> List[Dict[str, Any]]:
    """In-cluster Redis: persistence on (STK-003 asks for appendonly or save on a volume)."""
    sts = workload("StatefulSet", "redis", app="redis", component="cache")
    c = sts["inputs"]["spec"]["template"]["spec"]["containers"][0]
    c["image"] = "redis:7.4.2" + DIGEST
    c["args"] = ["--appendonly", "yes", "--save", "900 1"]
    c["ports"] = [{"name": "redis", "containerPort": 6379}]
    c["readinessProbe"] = {"exec": {"command": ["redis-cli", "ping"]}}
    c["livenessProbe"] = {"tcpSocket": {"port": 6379}}
    sts["inputs"]["spec"]["replicas"] = 1
    sts["inputs"]["spec"]["template"]["spec"]["serviceAccountName"] = "redis"
    sts["inputs"]["spec"]["template"]["spec"]["priorityClassName"] = "new-api-data"
    return [sts, service("redis-headless", "redis", "cache", headless=True), service("redis", "redis", "cache"),
            service_monitor("redis", "redis", "cache"), workload_netpol("redis", "redis", "cache"),
            service_account("redis")]


def compliant_stack() -> List[Dict[str, Any]]:
    """A fresh copy of the compliant stack (built once)."""
    return list(copy.deepcopy(_compliant_stack()))


@functools.lru_cache(maxsize=None)
def _compliant_stack() -> tuple:
    res = [namespace(), quota(), limit_range(), default_deny(), allow_dns(),
           priority_class("new-api-critical", 100000), priority_class("new-api-data", 90000),
           app_deployment(), service(), ingress(), gateway(), http_route(), redirect_route(),
           certificate(), cluster_issuer(), hpa(), pdb(), service_account(),
           workload_netpol("new-api", "new-api", "serving"), service_monitor(), prometheus_rule(),
           alertmanager_secret(), config_map(), role(), binding(),
           *postgres(), *redis(),
           kms_key(), rds(), redis_rg(), security_group(), sg_ingress_rule(), iam_policy(), *bucket_set()]
    return tuple(sorted(res, key=lambda r: r["urn"]))


def single_fixtures() -> Dict[str, Dict[str, Any]]:
    """One compliant resource per kind (resource-level policies only), freshly copied."""
    return copy.deepcopy(_single_fixtures())


def single_fixture(kind: str) -> Dict[str, Any]:
    return copy.deepcopy(_single_fixtures()[kind])


@functools.lru_cache(maxsize=None)
def _single_fixtures() -> Dict[str, Dict[str, Any]]:
    out = {k: workload(k) for k in WORKLOAD_KINDS}
    out.update({
        "Namespace": namespace(), "Service": service(), "Ingress": ingress(), "Gateway": gateway(),
        "Certificate": certificate(), "ClusterIssuer": cluster_issuer(),
        "HorizontalPodAutoscaler": hpa(), "PodDisruptionBudget": pdb(), "ServiceAccount": service_account(),
        "ConfigMap": config_map(), "PersistentVolumeClaim": pvc(), "Role": role("Role"),
        "ClusterRole": role("ClusterRole"), "RoleBinding": binding("RoleBinding"),
        "ClusterRoleBinding": binding("ClusterRoleBinding"), "NetworkPolicy": default_deny(),
        "Rds": rds(), "RdsCluster": rds_cluster(), "Redis": redis_rg(), "SecurityGroup": security_group(),
        "SgIngressRule": sg_ingress_rule(), "KmsKey": kms_key(), "IamPolicy": iam_policy(),
    })
    return out


SINGLE_KINDS = frozenset(_single_fixtures())
