"""RDS automated backups (issue 14, aws backend): prometheus-rds-exporter runs under its
own IRSA role with the project's hardening, Prometheus scrapes it in both monitoring
modes, and the alerts fire when automated backups are off or kept for less than the
stack configures, or when nobody can see them, on series labelled exactly as the
exporter emits them.

The exporter's side (github.com/qonto/prometheus-rds-exporter, tag 0.18.1):

- ``internal/app/exporter/exporter.go``: ``rds_backup_retention_period_seconds{
  aws_account_id, aws_region, dbidentifier}`` per instance from DescribeDBInstances; when
  that call fails, only ``rds_exporter_build_info``, ``rds_exporter_errors_total`` and an
  unlabelled ``up`` 0 (``Collect``);
- ``internal/app/rds/rds.go``: the retention is ``BackupRetentionPeriod`` days in
  seconds (0: automated backups off, RDS docs "Enabling automated backups");
- ``cmd/root.go``: ``--listen-address`` default ``:9043``, the ``--collect-*`` flags,
  ``initConfig`` exiting when ``$HOME`` cannot be found;
- ``.goreleaser.yaml``: images ``public.ecr.aws/qonto/prometheus-rds-exporter:<tag>``.

Prometheus's side: ``metric_relabel_configs`` apply to scraped samples only, not to the
``up`` series Prometheus writes itself (Prometheus docs, configuration); the Prometheus
Operator maps ``metricRelabelings`` of a PodMonitor endpoint onto them
(``pkg/prometheus/promcfg.go``). IRSA: the role's trust policy must name
``system:serviceaccount:<namespace>:<name>`` and the ``sts.amazonaws.com`` audience (EKS
docs, "IAM roles for service accounts").
"""

import json
import subprocess

import pytest
import yaml
from conftest import k8s_object, k8s_objects, rendered_rules, unwrap

from support import DELETE, Stack, override, pod_spec
from tools import mockrt

# Written from the exporter's source (module docstring), not imported from the component.
RETENTION = "rds_backup_retention_period_seconds"
PORT = 9043
IMAGE = "public.ecr.aws/qonto/prometheus-rds-exporter:0.18.1"
ALERTS = {"NewApiRdsBackupRetentionTooShort", "NewApiRdsBackupsUnobserved"}
DAY = 86400


@pytest.fixture(scope="module")
def operator_stack():
    return Stack(mockrt.run_stack("prod", override("prod", ("monitoring.mode", "operator"))))


def rds_instances(stack) -> dict:
    """identifier -> configured retention days, of every RDS instance the stack registers."""
    return {unwrap(r.inputs)["identifier"]: int(unwrap(r.inputs)["backupRetentionPeriod"])
            for r in stack.of_type("aws:rds/instance:Instance")}


def primary(stack) -> tuple:
    """The instance the replica replicates (point-in-time recovery restores from its backups)."""
    instances = [unwrap(r.inputs) for r in stack.of_type("aws:rds/instance:Instance")]
    [p] = [i for i in instances if not i.get("replicateSourceDb")]
    return p["identifier"], int(p["backupRetentionPeriod"])


TARGET = ('job="rds-exporter",instance="10.0.1.9:9043",namespace="new-api",service="postgres",'
          'kubernetes_pod="new-api-postgres-rds-exporter-7c9d-abcde",node="n1"')


def retention(identifier: str, values: str) -> dict:
    return {"series": f'{RETENTION}{{{TARGET},aws_account_id="123456789012",aws_region="us-east-1",'
                      f'dbidentifier="{identifier}"}}', "values": values}


def exporter_only(up: int) -> list:
    """What the exporter serves when DescribeDBInstances fails (or finds nothing): its own
    counters and ``up`` (renamed at scrape), no instance series."""
    return [{"series": f'rds_exporter_up{{{TARGET}}}', "values": f"{up}x40"},
            {"series": f'rds_exporter_errors_total{{{TARGET}}}', "values": "0+1x40"},
            {"series": f'up{{{TARGET}}}', "values": "1x40"}]


def cases(stack) -> list:
    ident, days = primary(stack)
    replicas = sorted(set(rds_instances(stack)) - {ident})
    ok = f"{days * DAY}x40"
    return [
        ("retention shortened", "NewApiRdsBackupRetentionTooShort", True,
         exporter_only(1) + [retention(ident, f"{7 * DAY}x40")]),
        ("automated backups off", "NewApiRdsBackupRetentionTooShort", True,
         exporter_only(1) + [retention(ident, "0x40")]),
        ("one day short", "NewApiRdsBackupRetentionTooShort", True,
         exporter_only(1) + [retention(ident, f"{(days - 1) * DAY}x40")]),
        ("as configured", "NewApiRdsBackupRetentionTooShort", False, exporter_only(1) + [retention(ident, ok)]),
        ("longer than configured", "NewApiRdsBackupRetentionTooShort", False,
         exporter_only(1) + [retention(ident, f"{35 * DAY}x40")]),
        # someone else's instance, and the read replica, are not the stack's backups
        ("other instances without backups", "NewApiRdsBackupRetentionTooShort", False,
         exporter_only(1) + [retention(ident, ok), retention("team-b-db", "0x40"),
                             *(retention(r, "0x40") for r in replicas)]),
        ("AWS API denied", "NewApiRdsBackupsUnobserved", True, exporter_only(0)),
        ("instance not reported", "NewApiRdsBackupsUnobserved", True,
         exporter_only(1) + [retention("team-b-db", ok)]),
        ("reported", "NewApiRdsBackupsUnobserved", False, exporter_only(1) + [retention(ident, ok)]),
        ("a scrape gap of 5 minutes", "NewApiRdsBackupsUnobserved", False,
         exporter_only(1) + [retention(ident, f"{days * DAY}x15 _x5 {days * DAY}x20")]),
    ]


def promtool_tests(stack) -> dict:
    ident, _ = primary(stack)
    tests = []
    for name, alert, fires, series in cases(stack):
        match = f',dbidentifier="{ident}"' if fires else ""
        tests.append({"name": name, "interval": "1m", "input_series": series, "promql_expr_test": [{
            "expr": f'count(ALERTS{{alertname="{alert}",alertstate="firing"{match}}})', "eval_time": "35m",
            "exp_samples": [{"labels": "{}", "value": 1}] if fires else []}]})
    return {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}


@pytest.mark.parametrize("name", ["prod", "operator"])
def test_rds_backup_alerts_fire_on_the_stacks_primary_only(request, name, promtool, tmp_path):
    """Both modes' rendered rules (the rules ConfigMap, the PrometheusRule) under
    ``promtool test rules``, with the identifier and retention of the RDS instance the
    stack registers: retention below it (0 included) fires, as configured or above stays
    silent, other instances are ignored; no series for the instance for 15 minutes fires."""
    stack = request.getfixturevalue({"operator": "operator_stack"}.get(name, name))
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rendered_rules(stack.result), sort_keys=False))
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(promtool_tests(stack), sort_keys=False))
    out = subprocess.run([promtool, "test", "rules", str(tmp_path / "tests.yml")], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]


def test_standalone_prometheus_scrapes_the_exporter_and_renames_its_up(prod):
    prom = yaml.safe_load(k8s_object(prod.result, "ConfigMap", "prometheus-config", "monitoring")["data"]
                          ["prometheus.yml"])
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "rds-exporter")
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["new-api"]}}]
    keeps = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert keeps == {("__meta_kubernetes_pod_container_port_number",): str(PORT),
                     ("__meta_kubernetes_pod_label_app_kubernetes_io_name",): "rds-exporter"}
    assert job["scrape_interval"] == "60s"
    assert job["metric_relabel_configs"] == [{"source_labels": ["__name__"], "regex": "up",
                                              "target_label": "__name__", "replacement": "rds_exporter_up"}]
    egress = k8s_object(prod.result, "NetworkPolicy", "prometheus", "monitoring")["spec"]["egress"]
    assert any({"protocol": "TCP", "port": PORT} in r["ports"]
               and r["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "new-api"}}}]
               for r in egress)


def test_operator_pod_monitor_scrapes_the_exporter_and_renames_its_up(operator_stack):
    monitor = next(m for m in k8s_objects(operator_stack.result, "PodMonitor")
                   if m["metadata"]["name"] == "rds-exporter")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["new-api"]}
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["portNumber"] == PORT and endpoint["interval"] == "60s"
    assert endpoint["metricRelabelings"] == [{"sourceLabels": ["__name__"], "regex": "up", "targetLabel": "__name__",
                                              "replacement": "rds_exporter_up"}]
    assert {"targetLabel": "job", "replacement": "rds-exporter"} in endpoint["relabelings"]


def test_exporter_runs_hardened_under_its_irsa_role(prod):
    from components import common

    dep = k8s_object(prod.result, "Deployment", "new-api-postgres-rds-exporter", "new-api")
    spec = pod_spec(dep)
    [c] = spec["containers"]
    assert c["image"] == IMAGE
    assert spec["securityContext"]["runAsUser"] == common.WORKLOAD_UIDS["rds-exporter"]
    assert list(common.WORKLOAD_UIDS.values()).count(spec["securityContext"]["runAsUser"]) == 1
    assert c["securityContext"]["readOnlyRootFilesystem"] is True and spec["automountServiceAccountToken"] is False
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["AWS_REGION"] and env["HOME"]
    # every optional collector off: DescribeDBInstances is the only AWS call
    assert {a for a in c["args"] if a.endswith("=false")} == {
        f"--{f}=false" for f in ("collect-instance-metrics", "collect-instance-tags", "collect-instance-types",
                                 "collect-logs-size", "collect-maintenances", "collect-cluster-metrics",
                                 "collect-quotas", "collect-usages", "collect-engine-support")}
    # the ServiceAccount carries the role, whose trust names exactly that ServiceAccount
    sa = k8s_object(prod.result, "ServiceAccount", spec["serviceAccountName"], "new-api")
    role = prod.get("aws:iam/role:Role", "new-api-postgres-rds-exporter")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(":role/new-api-postgres-rds-exporter")
    condition = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
    assert sorted(condition.values()) == ["sts.amazonaws.com",
                                          f"system:serviceaccount:new-api:{spec['serviceAccountName']}"]
    policy = json.loads(prod.get("aws:iam/rolePolicy:RolePolicy", "new-api-postgres-rds-exporter").inputs["policy"])
    assert [s["Action"] for s in policy["Statement"]] == [["rds:DescribeDBInstances"]]
    assert all(s["Resource"].startswith("arn:aws:rds:") for s in policy["Statement"])


def test_exporter_reaches_only_aws_https_and_is_reached_only_by_the_scrapers(prod):
    spec = k8s_object(prod.result, "NetworkPolicy", "new-api-postgres-rds-exporter", "new-api")["spec"]
    assert spec["ingress"] == [{"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}], "ports": [{"protocol": "TCP", "port": PORT}]}]
    [rule] = spec["egress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 443}]
    for peer in rule["to"]:
        # public addresses only: never the cluster, the VPC or the metadata service
        assert {"10.0.0.0/8", "169.254.0.0/16"} <= set(peer["ipBlock"]["except"])


def test_aws_backend_with_monitoring_but_no_irsa_is_refused_naming_the_key():
    changes = override("prod", ("backup.irsa", DELETE),
                       ("backup.s3", {"bucket": "new-api-backups-prod", "roleArn": "arn:aws:iam::123456789012:role/r"}))
    result = mockrt.run_stack("prod", changes)
    assert result.error is not None and result.registrations == []
    assert "new-api:backup.irsa" in str(result.error) and "RDS exporter" in str(result.error), str(result.error)


def test_postgres_component_refuses_aws_monitoring_without_the_exporters_irsa():
    from components.postgres import _validate

    args = {"backend": "aws", "namespace": "new-api", "monitoring_namespace": "monitoring",
            "aws": {"vpc_id": "vpc-1", "subnet_ids": ["subnet-1", "subnet-2"], "vpc_cidr": "10.0.0.0/16",
                    "source_security_group_ids": ["sg-1"], "ca_bundle_pem": "pem"}}
    with pytest.raises(ValueError, match="aws.backup_exporter.oidc_provider_arn"):
        _validate(args)
