"""Behaviours the table's one-mutation cases do not show on their own."""
import pytest

import policy_fixtures as fx
from newapi_policy import evaluate_stack
from newapi_policy.k8s_workloads import parse_image, registry_allowed
from newapi_policy.settings import DEFAULT_ALLOWED_REGISTRIES
from policy_helpers import messages, run_isolated


def test_container_security_context_overrides_the_pod_default():
    d = fx.workload("Deployment")
    pod = d["inputs"]["spec"]["template"]["spec"]
    pod["securityContext"]["runAsUser"] = 1001
    for c in pod["containers"] + pod["initContainers"]:
        c["securityContext"]["runAsUser"] = 10001
    assert run_isolated("k8s-001-run-as-non-root", [d])["violations"] == []
    pod["initContainers"][0]["securityContext"]["runAsUser"] = 0
    assert messages(run_isolated("k8s-001-run-as-non-root", [d])) == [
        '[K8S-001] init container "migrate" in Deployment new-api/new-api runs as UID 0: set '
        'securityContext.runAsNonRoot: true and runAsUser/runAsGroup >= 10000 (pod level or per container)']


def test_pod_level_violation_is_reported_for_every_container():
    d = fx.workload("Rollout")
    d["inputs"]["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 1001
    msgs = messages(run_isolated("k8s-001-run-as-non-root", [d]))
    assert [m.split(" in ")[0] for m in msgs] == ['[K8S-001] container "app"', '[K8S-001] init container "migrate"']


def test_cronjob_job_template_is_walked():
    cj = fx.workload("CronJob")
    cj["inputs"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["hostPID"] = True
    assert "CronJob new-api/new-api sets hostPID: true" in messages(run_isolated("k8s-009-no-host-namespaces", [cj]))[0]


def test_rollout_with_workload_ref_has_no_template_to_check():
    r = fx.workload("Rollout")
    r["inputs"]["spec"] = {"workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "new-api"}}
    assert run_isolated("k8s-001-run-as-non-root", [r])["violations"] == []


def test_app_priority_must_beat_monitoring():
    stack = fx.compliant_stack()
    stack.append(fx.priority_class("monitoring", 200000))
    pg = next(r for r in stack if r["name"] == "postgres" and r["type"].endswith("StatefulSet"))
    pg["inputs"]["spec"]["template"]["spec"]["priorityClassName"] = "monitoring"
    pg["inputs"]["metadata"]["labels"]["app.kubernetes.io/component"] = "monitoring"
    msgs = messages(run_isolated("k8s-038-app-priority-class", stack))
    assert msgs and "uses priority class new-api-critical (100000), not above StatefulSet new-api/postgres's " \
                     "monitoring (200000)" in msgs[0]


def test_image_parsing_and_registry_defaults():
    assert parse_image("postgres:16") == ("docker.io", "library/postgres", "16", None)
    assert parse_image("ghcr.io/a/b@sha256:" + "0" * 64)[0::3] == ("ghcr.io", "sha256:" + "0" * 64)
    assert parse_image("localhost:5000/x:1")[:2] == ("localhost:5000", "x")
    for ok in ("calciumion/new-api:v1", "postgres:16", "redis:7", "quay.io/prometheus/node-exporter:v1",
               "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2", "docker.elastic.co/beats/filebeat:8",
               "grafana/grafana:11", "prom/alertmanager:v0.27", "bitnami/redis:7", "ghcr.io/x/y:1"):
        assert registry_allowed(ok, DEFAULT_ALLOWED_REGISTRIES), ok
    for bad in ("evil/new-api:v1", "docker.io/calciumion2/x:1", "quay.io.evil.com/x:1"):
        assert not registry_allowed(bad, DEFAULT_ALLOWED_REGISTRIES), bad


def test_dev_relaxes_prod_only_parts_but_not_the_rest():
    rds = fx.rds()
    rds["inputs"].update({"multiAz": False, "publiclyAccessible": True, "backupRetentionPeriod": 7})
    prod = messages(evaluate_stack([rds], environment="prod"))
    dev = messages(evaluate_stack([rds], environment="dev"))
    assert any("single AZ in prod" in m for m in prod) and not any("single AZ" in m for m in dev)
    assert any("publicly accessible" in m for m in dev)
    assert any("below 14 (prod)" in m for m in prod) and not any("[AWS-002]" in m for m in dev)


def test_config_min_backup_retention_and_level_override():
    rds = fx.rds()
    rds["inputs"]["backupRetentionPeriod"] = 20
    assert "AWS-002" in {v["control"] for v in evaluate_stack([rds], config={"minBackupRetentionDays": 30})["violations"]}
    report = evaluate_stack([rds], config={"minBackupRetentionDays": 30, "aws-002-rds-backup-retention": "advisory"})
    assert [v["level"] for v in report["violations"] if v["control"] == "AWS-002"] == ["advisory"]
    report = evaluate_stack([rds], config={"minBackupRetentionDays": 30, "all": "disabled"})
    assert report["violations"] == [] and report["mandatory_violations"] == 0


def test_unknown_environment_is_rejected():
    import pytest
    with pytest.raises(ValueError, match="environment"):
        evaluate_stack([], environment="staging")


def test_read_replica_needs_no_final_snapshot_or_multi_az_but_stays_protected():
    replica = fx.rds("db-replica")
    replica["inputs"].update({"replicateSourceDb": "db", "multiAz": False, "skipFinalSnapshot": True})
    del replica["inputs"]["finalSnapshotIdentifier"]
    report = evaluate_stack([replica], environment="prod")
    assert not {"AWS-003", "AWS-004"} & {v["control"] for v in report["violations"]}, messages(report)
    replica["inputs"]["deletionProtection"] = False
    assert any("has no deletion protection" in m for m in messages(evaluate_stack([replica])))


def test_s3_companions_resolve_to_their_own_bucket_and_log_buckets_need_no_logging():
    stack = fx.compliant_stack()
    logs = fx.entry("aws:s3/bucket:Bucket", "backups-access-logs", {"tags": {"purpose": "backup-access-logs"}},
                    protect=True)
    stack.append(logs)
    backups = next(r for r in stack if r["name"] == "backups")
    logging = next(r for r in stack if r["name"] == "backups-logging")
    logging["dependencies"].append(logs["urn"])  # the logging resource depends on both buckets
    for suffix, typ, inputs in [
            ("pab", "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
             {"blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True, "restrictPublicBuckets": True}),
            ("sse", "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
             {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]}),
            ("versioning", "aws:s3/bucketVersioning:BucketVersioning", {"versioningConfiguration": {"status": "Enabled"}}),
            ("lifecycle", "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
             {"rules": [{"status": "Enabled", "expiration": {"days": 180}}]}),
            ("ownership", "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
             {"rule": {"objectOwnership": "BucketOwnerEnforced"}})]:
        stack.append(fx.entry(typ, f"backups-access-logs-{suffix}", {"bucket": "logs-id", **inputs},
                              dependencies=[logs["urn"], backups["urn"]]))
    report = evaluate_stack(stack)
    # the log bucket's policy is missing: AWS-013 names it, and nothing else is attributed wrongly
    assert [(v["control"], v["resource"]) for v in report["violations"]] == [("AWS-013", "backups-access-logs")]


def test_internal_ca_certificates_are_not_public_certificates():
    ca = fx.certificate()
    ca["inputs"]["spec"] = {"isCA": True, "commonName": "logs-ca", "secretName": "ca",
                            "issuerRef": {"kind": "Issuer", "name": "selfsigned"}}
    transport = fx.certificate()
    transport["inputs"]["spec"].update({"dnsNames": ["es-headless.logging.svc", "*.es-headless.logging.svc.cluster.local"],
                                        "issuerRef": {"kind": "Issuer", "name": "logs-ca"}})
    assert run_isolated("k8s-045-prod-issuer", [ca, transport])["violations"] == []


def test_backup_of_annotation_on_a_job_counts_as_a_schedule():
    stack = fx.compliant_stack()
    cron = next(r for r in stack if r["name"] == "postgres-backup")
    stack.remove(cron)
    assert messages(run_isolated("stk-003-datastore-backups", stack))
    job = fx.workload("Job", "postgres-slm-setup", app="postgres", component="backup")
    job["inputs"]["metadata"]["annotations"] = {"policy.new-api.io/backup-of": "new-api/postgres"}
    assert run_isolated("stk-003-datastore-backups", stack + [job])["violations"] == []


PROMETHEUS_YML = """scrape_configs:
- job_name: postgres
  kubernetes_sd_configs:
  - role: pod
    namespaces: {names: [new-api]}
  relabel_configs:
  - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name]
    regex: %s
    action: keep
  - source_labels: [__meta_kubernetes_pod_phase]
    regex: Pending|Succeeded|Failed
    action: drop
- job_name: app
  static_configs:
  - targets: ['http://%s.new-api.svc:80/api/status']
"""


def _prometheus_stack(pg_regex, app_host):
    stack = [r for r in fx.compliant_stack() if not (r["type"].endswith(":ServiceMonitor") and r["name"] != "redis")]
    stack.append(fx.k8s("ConfigMap", "prometheus-config", {"data": {"prometheus.yml": PROMETHEUS_YML % (pg_regex, app_host)}},
                        component="monitoring"))
    return stack


def test_prometheus_scrape_config_counts_as_monitoring():
    assert run_isolated("stk-004-monitoring-alert-routing", _prometheus_stack("postgres", "new-api"))["violations"] == []


def test_prometheus_scrape_config_that_misses_a_workload_is_reported():
    msgs = messages(run_isolated("stk-004-monitoring-alert-routing", _prometheus_stack("redis", "other")))
    assert [m.split(" is neither")[0] for m in msgs] == ["[STK-004] Deployment new-api/new-api",
                                                         "[STK-004] StatefulSet new-api/postgres"]


def test_masked_alertmanager_config_is_left_to_amtool():
    stack = fx.compliant_stack()
    am = next(r for r in stack if r["name"] == "alertmanager-config")
    am["inputs"]["stringData"]["alertmanager.yaml"] = "[secret]"
    assert run_isolated("stk-004-monitoring-alert-routing", stack)["violations"] == []


def test_tls_only_bucket_policy_accepts_every_spelling_of_the_correct_deny():
    """AWS-013's bad cases (policy_cases: an Allow, a Deny on "true", on one action, one
    resource or one principal) all report; these equivalent correct forms must not."""
    from policy_cases import _tls_policy

    for change in ({}, {"Principal": {"AWS": "*"}}, {"Action": ["s3:*"]}, {"Action": "*"},
                   {"Condition": {"BoolIfExists": {"aws:SecureTransport": "false"}}},
                   {"Condition": {"Bool": {"aws:SecureTransport": ["false"]}}}):
        resources = fx.compliant_stack()
        bucket_policy = next(r for r in resources if r["name"] == "backups-policy")
        bucket_policy["inputs"]["policy"] = _tls_policy(**change)
        report = run_isolated("aws-013-s3-tls-only", resources)
        assert report["violations"] == [] and report["checks_run"]["aws-013-s3-tls-only"] > 0, (change, messages(report))


def _redis_stack(args, conf=None, namespace=fx.NS, mounted=True):
    stack = fx.compliant_stack()
    sts = next(r for r in stack if r["name"] == "redis" and r["type"].endswith(":StatefulSet"))
    pod = sts["inputs"]["spec"]["template"]["spec"]
    pod["containers"][0]["args"] = args
    if conf is not None:
        cm = fx.k8s("ConfigMap", "redis-conf", {"data": {"redis.conf": conf}}, app="redis", component="cache")
        cm["inputs"]["metadata"]["namespace"] = namespace
        stack.append(cm)
        if mounted:
            pod.setdefault("volumes", []).append({"name": "conf", "configMap": {"name": "redis-conf"}})
    return stack


@pytest.mark.parametrize("args,conf,namespace,mounted,persistent", [
    (["--appendonly", "yes"], None, fx.NS, True, True),
    (["--save", "900 1"], None, fx.NS, True, True),
    ([], "appendonly yes\n", fx.NS, True, True),
    ([], "save 900 1\n", fx.NS, True, True),
    ([], 'appendonly no\nsave ""\n', fx.NS, True, False),
    ([], "appendonly yes\n", "other", True, False),   # a ConfigMap of that name in another namespace
    ([], "appendonly yes\n", fx.NS, False, False),    # not mounted by the Redis pod
])
def test_redis_persistence_is_read_from_args_or_the_mounted_config(args, conf, namespace, mounted, persistent):
    """redis.conf directives `appendonly yes` / `save <seconds> <changes>` (redis.io,
    docs/management/persistence), as flags or from the mounted config file."""
    report = run_isolated("stk-003-datastore-backups", _redis_stack(args, conf, namespace, mounted))
    expected = [] if persistent else ["[STK-003] StatefulSet new-api/redis runs Redis without persistence"]
    assert [m.split(":")[0] for m in messages(report)] == expected


@pytest.mark.parametrize("fixture,field", [("db", "backupRetentionPeriod"), ("cache", "snapshotRetentionLimit")])
def test_one_day_of_managed_backups_is_enough_for_stk003(fixture, field):
    """The boundary: 1 day of PITR / 1 snapshot passes, 0 (the bad case) fails."""
    stack = fx.compliant_stack()
    next(r for r in stack if r["name"] == fixture and field in r["inputs"])["inputs"][field] = 1
    assert run_isolated("stk-003-datastore-backups", stack)["violations"] == []


def _host_pid_app(uid):
    stack = fx.compliant_stack()
    app = next(r for r in stack if r["name"] == "new-api" and r["type"].endswith(":Deployment"))
    pod = app["inputs"]["spec"]["template"]["spec"]
    pod["hostPID"] = True
    for sc in [pod["securityContext"], *(c["securityContext"] for c in pod["containers"] + pod["initContainers"])]:
        sc.pop("runAsUser", None)
        if uid is not None:
            sc["runAsUser"] = uid
    return stack


def test_host_pid_workload_with_a_uid_of_its_own_passes_stk005():
    """The only workload with hostPID, on a UID nobody else uses: nothing to read."""
    report = run_isolated("stk-005-host-access-own-uid", _host_pid_app(10999))
    assert report["violations"] == [] and report["checks_run"]["stk-005-host-access-own-uid"] > 0


def test_host_pid_workload_that_leaves_its_uid_to_the_image_is_reported():
    assert [m.split(":")[0] for m in messages(run_isolated("stk-005-host-access-own-uid", _host_pid_app(None)))] == [
        "[STK-005] Deployment new-api/new-api sees the node's processes (hostPID"]
