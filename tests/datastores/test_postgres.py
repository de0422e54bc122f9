"""Postgres: each backend's resources and settings, one connection shape, protection,
and the in-cluster configuration checked against a real server."""

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import yaml

from components import postgres as pg
from components import postgres_base
from components.app import pod_selector as app_selector
from components.backup import pod_selector as backup_selector
from support import Stack, container, env_map, pod_spec
from tools import mockrt

from .conftest import AWS_NET, S3, needs_postgres, outputs_of, run, secret_value

REPO = Path(__file__).resolve().parents[2]
RDS = "aws:rds/instance:Instance"


def _statefulset(dev):
    return dev.k8s("StatefulSet", "new-api-postgres")


def _component(backend: str):
    extra = {
        "kubernetes": {},
        "cloudnative-pg": {"cloudnative_pg": {"backup_bucket": "b", "backup_role_arn":
                                              "arn:aws:iam::123456789012:role/r"}},
        "aws": {"aws": {"vpc_id": AWS_NET["vpcId"], "subnet_ids": AWS_NET["subnetIds"],
                        "vpc_cidr": "10.0.0.0/16", "source_security_group_ids": AWS_NET["sourceSecurityGroupIds"],
                        "ca_bundle_config_map": {"name": "rds-ca", "key": "ca.pem"}}},
    }[backend]
    return lambda: pg.Postgres("db", {"backend": backend, "namespace": "new-api", "password": "pw0123456789",
                                      **extra})


SHAPE = ["host", "port", "read_host", "database", "username", "password", "sslmode", "dsn"]


# --------------------------------------------------------------------------- connection shape

@pytest.mark.parametrize("backend", pg.BACKENDS)
def test_password_and_dsn_outputs_are_secret(backend):
    out = outputs_of(_component(backend), SHAPE)
    assert out["password"][1] and out["dsn"][1]
    assert not out["host"][1]


@pytest.mark.parametrize("backend", pg.BACKENDS)
def test_dsn_is_a_postgresql_url_matching_the_other_outputs(backend):
    out = {k: v for k, (v, _) in outputs_of(_component(backend), SHAPE).items()}
    assert out["dsn"] == (f"postgresql://newapi:pw0123456789@{out['host']}:5432/newapi"
                          f"?{pg.ssl_query(out['sslmode'])}")


def test_sslmode_is_disable_only_in_cluster_and_verify_full_on_tls_backends():
    modes = {b: outputs_of(_component(b), ["sslmode"])["sslmode"][0] for b in pg.BACKENDS}
    assert modes == {"kubernetes": "disable", "cloudnative-pg": "verify-full", "aws": "verify-full"}


def test_connection_shape_is_identical_across_backends():
    kinds = {b: {k: type(v).__name__ for k, (v, _) in outputs_of(_component(b), SHAPE).items()}
             for b in pg.BACKENDS}
    assert kinds["kubernetes"] == kinds["cloudnative-pg"] == kinds["aws"]
    assert kinds["aws"]["port"] in ("int", "float")


def test_password_is_generated_only_when_none_is_given():
    result = mockrt.run(lambda: pg.Postgres("db", {"backend": "kubernetes", "namespace": "ns"}))
    names = [r.name for r in result.by_type("random:index/randomPassword:RandomPassword")]
    assert "db-password" in names
    given = mockrt.run(_component("kubernetes"))
    assert "db-password" not in [r.name for r in given.by_type("random:index/randomPassword:RandomPassword")]


def test_unknown_backend_is_rejected_before_any_resource():
    result = mockrt.run(lambda: pg.Postgres("db", {"backend": "mysql", "namespace": "ns"}))
    assert "backend: 'mysql' is not one of kubernetes, cloudnative-pg, aws" in str(result.error)
    assert [r for r in result.registrations if r.custom] == []


def test_superuser_name_is_refused_for_the_app_role():
    result = mockrt.run(lambda: pg.Postgres("db", {"backend": "kubernetes", "namespace": "ns",
                                                   "username": "postgres"}))
    assert "username: 'postgres' is reserved" in str(result.error)


# --------------------------------------------------------------------------- app wiring

def test_app_reads_sql_dsn_from_its_secret(dev):
    env = env_map(container(dev.k8s("Deployment", "new-api")))
    assert env["SQL_DSN"]["valueFrom"]["secretKeyRef"] == {"name": "new-api-env", "key": "SQL_DSN"}


def test_app_secret_holds_the_postgres_component_dsn(dev):
    data = secret_value(dev.get("kubernetes:core/v1:Secret", "new-api-env").inputs["stringData"])
    assert data["SQL_DSN"].startswith("postgresql://newapi:")
    assert data["SQL_DSN"].endswith("@new-api-postgres.new-api.svc:5432/newapi?sslmode=disable")


def test_prod_app_dsn_points_at_rds_with_tls(prod):
    data = secret_value(prod.get("kubernetes:core/v1:Secret", "new-api-env").inputs["stringData"])
    assert data["SQL_DSN"].endswith("@new-api-postgres-primary.mock.internal:5432/newapi"
                                    "?sslmode=verify-full&sslrootcert=/etc/new-api/db-ca/ca.pem")


def test_app_egress_reaches_in_cluster_postgres_pods(dev):
    rules = dev.k8s("NetworkPolicy", "new-api-serving")["spec"]["egress"]
    assert {"to": [{"podSelector": {"matchLabels": pg.pod_selector("new-api-postgres")}}],
            "ports": [{"protocol": "TCP", "port": 5432}]} in rules


def test_prod_app_egress_reaches_rds_in_the_vpc(prod):
    rules = prod.k8s("NetworkPolicy", "new-api-serving")["spec"]["egress"]
    assert {"to": [{"ipBlock": {"cidr": "10.0.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 5432}]} in rules


# --------------------------------------------------------------------------- kubernetes backend

def test_statefulset_keeps_its_volume_claims(dev):
    spec = _statefulset(dev)["spec"]
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    claim = spec["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "2Gi"


def test_postgres_image_is_pinned_to_an_exact_tag(dev):
    assert container(_statefulset(dev), "postgres")["image"] == "postgres:16.6"


def test_postgres_runs_as_10001_with_read_only_root(dev):
    c = container(_statefulset(dev), "postgres")
    sc = c["securityContext"]
    assert (sc["runAsUser"], sc["readOnlyRootFilesystem"], sc["capabilities"]) == (10001, True, {"drop": ["ALL"]})
    assert pod_spec(_statefulset(dev))["securityContext"]["fsGroup"] == 10001
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/var/run/postgresql", "/tmp", pg.DATA_MOUNT} <= mounts
    assert env_map(c)["PGDATA"]["value"] == pg.PGDATA and pg.PGDATA.startswith(pg.DATA_MOUNT + "/")


def test_readiness_uses_pg_isready_over_tcp_and_liveness_is_tcp(dev):
    c = container(_statefulset(dev), "postgres")
    assert c["readinessProbe"]["exec"]["command"][:2] == ["pg_isready", "--host=127.0.0.1"]
    assert c["startupProbe"]["exec"]["command"][0] == "pg_isready"
    assert c["livenessProbe"]["tcpSocket"] == {"port": "postgres"}


def test_dev_postgres_is_laptop_sized(dev):
    res = container(_statefulset(dev), "postgres")["resources"]
    assert (res["requests"]["cpu"], res["requests"]["memory"]) == ("100m", "256Mi")


def test_passwords_reach_postgres_only_through_secret_refs(dev):
    env = {**env_map(container(_statefulset(dev), "postgres")), **env_map(container(_statefulset(dev), "roles"))}
    for name in ("POSTGRES_PASSWORD", "APP_PASSWORD", "MONITOR_PASSWORD", "BACKUP_PASSWORD", "SUPERUSER_PASSWORD"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "new-api-postgres-credentials"
        assert "value" not in env[name]
    data = dev.k8s("ConfigMap", "new-api-postgres-config")["data"]
    secret = secret_value(dev.get("kubernetes:core/v1:Secret", "new-api-postgres-credentials").inputs["stringData"])
    assert all(pw not in text for pw in secret.values() if pw != "newapi" for text in data.values())


def test_exporter_sidecar_uses_the_pg_monitor_role(dev):
    c = container(_statefulset(dev), "exporter")
    env = env_map(c)
    assert c["image"] == "quay.io/prometheuscommunity/postgres-exporter:v0.16.0"
    assert env["DATA_SOURCE_USER"]["value"] == pg.MONITOR_USER
    assert env["DATA_SOURCE_PASS"]["valueFrom"]["secretKeyRef"]["key"] == "monitor-password"
    assert c["ports"] == [{"name": "metrics", "containerPort": 9187, "protocol": "TCP"}]


def test_headless_and_client_services_select_the_pod(dev):
    headless = dev.k8s("Service", "new-api-postgres-headless")["spec"]
    client = dev.k8s("Service", "new-api-postgres")["spec"]
    assert headless["clusterIP"] == "None" and _statefulset(dev)["spec"]["serviceName"] == "new-api-postgres-headless"
    assert client["selector"] == headless["selector"] == pg.pod_selector("new-api-postgres")


def test_network_policy_admits_only_the_app_and_backup_on_5432_and_scrapers_on_9187(dev):
    spec = dev.k8s("NetworkPolicy", "new-api-postgres")["spec"]
    peers = [{"podSelector": {"matchLabels": sel}} for sel in (
        app_selector("new-api", "master"), app_selector("new-api", "serving"),
        backup_selector("new-api-db-backup"))]
    assert spec["ingress"] == [
        {"from": peers, "ports": [{"protocol": "TCP", "port": 5432}]},
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
         "ports": [{"protocol": "TCP", "port": 9187}]},
    ]
    assert spec["egress"] == [] and spec["policyTypes"] == ["Ingress", "Egress"]


def test_server_parameters_equal_the_seed_at_4gi():
    params = pg.server_parameters("4Gi", 200)
    assert (params["shared_buffers"], params["effective_cache_size"], params["work_mem"],
            params["maintenance_work_mem"]) == ("1024MB", "3072MB", "64MB", "256MB")


def test_dev_postgres_is_not_protected(dev):
    assert not dev.get("kubernetes:apps/v1:StatefulSet", "new-api-postgres").protect


def test_prod_in_cluster_postgres_is_protected_and_retained(prod_in_cluster):
    reg = prod_in_cluster.get("kubernetes:apps/v1:StatefulSet", "new-api-postgres")
    assert reg.protect and reg.retain_on_delete


# --------------------------------------------------------------------------- real server

@needs_postgres
def test_rendered_postgresql_conf_is_what_a_real_server_runs(live_postgres):
    shown = live_postgres.psql("SELECT current_setting('max_connections') || ' ' || "
                               "current_setting('shared_buffers') || ' ' || current_setting('password_encryption')")
    assert shown == "100 128MB scram-sha-256"


@needs_postgres
def test_app_role_owns_the_database_without_superuser(live_postgres):
    row = live_postgres.psql("SELECT r.rolsuper, pg_get_userbyid(d.datdba) FROM pg_database d, pg_roles r "
                             "WHERE d.datname = 'newapi' AND r.rolname = 'newapi'")
    assert row == "f|newapi"


@needs_postgres
def test_app_role_logs_in_over_tcp_with_scram_and_can_create_tables(live_postgres):
    env = {"PGHOST": "127.0.0.1", "PGUSER": "newapi", "PGPASSWORD": "app-pass-1234", "PGSSLMODE": "require"}
    out = live_postgres.psql("CREATE TABLE probe(id int); DROP TABLE probe; SELECT current_user", db="newapi", **env)
    assert out == "newapi"


@needs_postgres
def test_monitor_role_has_pg_monitor_only(live_postgres):
    row = live_postgres.psql(f"SELECT rolsuper, pg_has_role('{pg.MONITOR_USER}', 'pg_monitor', 'member') "
                             f"FROM pg_roles WHERE rolname = '{pg.MONITOR_USER}'")
    assert row == "f|t"


# --------------------------------------------------------------------------- cloudnative-pg backend

def _cluster(stack):
    return stack.k8s("Cluster", "new-api-postgres")


def test_cnpg_cluster_runs_three_instances_with_a_synchronous_standby(cnpg):
    spec = _cluster(cnpg)["spec"]
    assert spec["instances"] == 3
    assert spec["postgresql"]["synchronous"] == {"method": "any", "number": 1, "dataDurability": "required"}
    assert spec["enableSuperuserAccess"] is False


def test_cnpg_archives_wal_and_base_backups_to_s3_through_irsa(cnpg):
    spec = _cluster(cnpg)["spec"]
    store = spec["backup"]["barmanObjectStore"]
    assert store["destinationPath"] == "s3://new-api-dev-backups/cnpg/new-api-postgres/"
    assert store["s3Credentials"] == {"inheritFromIAMRole": True}
    assert spec["backup"]["retentionPolicy"] == "7d"  # dev's backup.retentionDays
    assert spec["serviceAccountTemplate"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        ":role/new-api-backup")


def test_cnpg_scheduled_backup_runs_daily_at_0200(cnpg):
    spec = cnpg.k8s("ScheduledBackup", "new-api-postgres-daily")["spec"]
    assert (spec["schedule"], spec["cluster"], spec["method"]) == (
        "0 0 2 * * *", {"name": "new-api-postgres"}, "barmanObjectStore")


@pytest.mark.parametrize("mode", ["standalone", "operator"])
def test_cnpg_instances_are_scraped_once_by_the_stacks_own_job(mode):
    """Old code: ``enablePodMonitor: true`` whenever monitoring was on, so in operator mode
    the instances were scraped by CloudNativePG's PodMonitor and by ours (every
    ``sum(cnpg_backends_total)`` doubled), and in standalone mode the operator was asked for
    a PodMonitor nothing reads. The stack's own ``postgres-exporter`` job or PodMonitor
    selects every pod of the app namespace serving 9187, the instances' metrics port
    (cloudnative-pg ``pkg/specs/pods.go`` container port ``url.PostgresMetricsPort``, 9187 in
    ``pkg/management/url/url.go``)."""
    stack = Stack(run("dev", ("database.backend", "cloudnative-pg"), ("backup.s3", S3),
                      ("monitoring.mode", mode)))
    assert _cluster(stack)["spec"]["monitoring"] == {"enablePodMonitor": False}
    if mode == "operator":
        monitor = next(m for m in stack.k8s_all("PodMonitor") if m["metadata"]["name"] == "postgres-exporter")
        assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["new-api"]
        assert monitor["spec"]["selector"] == {}
        assert [e["portNumber"] for e in monitor["spec"]["podMetricsEndpoints"]] == [pg.EXPORTER_PORT]
    else:
        prom = yaml.safe_load(stack.k8s("ConfigMap", "prometheus-config")["data"]["prometheus.yml"])
        job = next(j for j in prom["scrape_configs"] if j["job_name"] == "postgres-exporter")
        assert job["kubernetes_sd_configs"][0]["namespaces"]["names"] == ["new-api"]
        assert str(pg.EXPORTER_PORT) in json.dumps(job["relabel_configs"])


@pytest.mark.parametrize("kind,name,schema", [
    ("Cluster", "new-api-postgres", "cluster_v1.json"),
    ("ScheduledBackup", "new-api-postgres-daily", "scheduledbackup_v1.json"),
])
def test_cnpg_objects_validate_against_the_vendored_crd_schemas(cnpg, kind, name, schema):
    doc = json.loads((REPO / "tests/schemas/crds/postgresql.cnpg.io" / schema).read_text())
    jsonschema.Draft7Validator(doc).validate(cnpg.k8s(kind, name))


def cnpg_server_names(cluster: str, namespace: str) -> set[str]:
    """The DNS names CloudNativePG puts in the server certificate it issues: for each of
    its ``-rw``, ``-r`` and ``-ro`` Services, the name, ``name.ns``, ``name.ns.svc`` and
    ``name.ns.svc.<cluster domain>`` (cloudnative-pg ``api/v1/cluster_funcs.go``
    ``GetClusterAltDNSNames``, read at a95a534)."""
    return {f"{cluster}-{svc}{suffix}" for svc in ("rw", "r", "ro")
            for suffix in ("", f".{namespace}", f".{namespace}.svc", f".{namespace}.svc.cluster.local")}


def test_cnpg_dsn_verifies_the_operators_certificate_on_the_rw_service(cnpg):
    """Old code: ``sslmode=require`` (encrypted, server never verified). The host is one of
    the names the operator's certificate carries, and the CA is the operator's server CA,
    Secret ``<cluster>-ca`` key ``ca.crt`` (``GetServerCASecretName``, ``pkg/certs/certs.go``
    ``CACertKey``), projected alone: the Secret also holds the CA's private key."""
    data = secret_value(cnpg.get("kubernetes:core/v1:Secret", "new-api-env").inputs["stringData"])
    url = urlsplit(data["SQL_DSN"])
    assert url.hostname in cnpg_server_names("new-api-postgres", "new-api")
    assert parse_qs(url.query) == {"sslmode": ["verify-full"], "sslrootcert": [pg.CA_FILE]}
    for name in ("new-api", "new-api-master"):
        pod = cnpg.k8s("Deployment", name)["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v["name"] == postgres_base.CA_VOLUME)
        assert volume["secret"]["secretName"] == "new-api-postgres-ca"
        assert volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.pem"}]
        mounts = [m for c in pod["containers"] for m in c.get("volumeMounts", []) if m["name"] == postgres_base.CA_VOLUME]
        assert mounts and all(m["readOnly"] and pg.CA_FILE.startswith(m["mountPath"] + "/") for m in mounts)


def test_cnpg_bootstrap_owner_is_the_app_role_from_a_basic_auth_secret(cnpg):
    initdb = _cluster(cnpg)["spec"]["bootstrap"]["initdb"]
    assert (initdb["owner"], initdb["secret"]) == ("newapi", {"name": "new-api-postgres-app"})
    assert cnpg.k8s("Secret", "new-api-postgres-app")["type"] == "kubernetes.io/basic-auth"


def test_cnpg_network_policy_admits_the_app_on_5432(cnpg):
    ingress = cnpg.k8s("NetworkPolicy", "new-api-postgres")["spec"]["ingress"]
    app_rule = [r for r in ingress if {"podSelector": {"matchLabels": app_selector("new-api", "serving")}}
                in r["from"]]
    assert app_rule and app_rule[0]["ports"] == [{"protocol": "TCP", "port": 5432}]


def test_cnpg_egress_reaches_the_api_server_privately_and_s3_publicly_only(cnpg):
    """Old code: one ``0.0.0.0/0`` rule on 443 and 6443 (any HTTPS host, private ones
    included). Now the API server at ``monitoring.apiServerCidrs`` (private by default) and
    S3 on 443 at ``network.objectStorageCidrs`` minus the private ranges (an ``except`` lies
    within its ``cidr``: Kubernetes API ``IPBlock``)."""
    egress = cnpg.k8s("NetworkPolicy", "new-api-postgres")["spec"]["egress"]
    outside = [r for r in egress if any("ipBlock" in p for p in r["to"])]
    assert outside
    by_ports = {tuple(p["port"] for p in r["ports"]): [p["ipBlock"] for p in r["to"]] for r in outside}
    assert set(by_ports) == {(443, 6443), (443,)}
    assert {b["cidr"] for b in by_ports[(443, 6443)]} == {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}
    assert all("except" not in b for b in by_ports[(443, 6443)])
    s3 = by_ports[(443,)]
    assert [b["cidr"] for b in s3] == ["0.0.0.0/0"]
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(s3[0]["except"])


def test_cnpg_stack_runs_no_pg_dump_job(cnpg):
    assert cnpg.k8s_all("CronJob") == []


def test_prod_cnpg_cluster_is_protected_and_retained(cnpg_prod):
    reg = cnpg_prod.get("kubernetes:postgresql.cnpg.io/v1:Cluster", "new-api-postgres")
    assert reg.protect and reg.retain_on_delete


# --------------------------------------------------------------------------- aws backend

def _rds(prod, which="primary"):
    return prod.get(RDS, f"new-api-postgres-{which}").inputs


def test_rds_is_multi_az_encrypted_and_private(prod):
    rds = _rds(prod)
    assert (rds["multiAz"], rds["storageEncrypted"], rds["publiclyAccessible"]) == (True, True, False)
    assert rds["kmsKeyId"] == "arn:aws:mock:::key/new-api-postgres-kms"


def test_rds_keeps_30_days_of_backups_and_a_final_snapshot(prod):
    rds = _rds(prod)
    assert rds["backupRetentionPeriod"] == 30
    assert (rds["deletionProtection"], rds["skipFinalSnapshot"]) == (True, False)
    assert rds["finalSnapshotIdentifier"] == "new-api-postgres-primary-final"


def test_rds_operability_settings(prod):
    rds = _rds(prod)
    assert rds["performanceInsightsEnabled"] and rds["performanceInsightsKmsKeyId"] == rds["kmsKeyId"]
    assert rds["enabledCloudwatchLogsExports"] == ["postgresql", "upgrade"]
    assert (rds["copyTagsToSnapshot"], rds["autoMinorVersionUpgrade"], rds["monitoringInterval"]) == (True, True, 60)
    assert rds["username"] == "newapi_admin" and secret_value(rds["password"])


def test_rds_parameter_group_forces_tls_and_sizes_max_connections(prod):
    params = {p["name"]: p["value"] for p in prod.get("aws:rds/parameterGroup:ParameterGroup",
                                                      "new-api-postgres-params").inputs["parameters"]}
    assert params["rds.force_ssl"] == "1" and params["max_connections"] == "200"


def test_rds_security_group_admits_only_the_configured_security_groups(prod):
    """Issue 13 item 6: the nodes' (or pods') security group from config, no address range."""
    sg = prod.get("aws:ec2/securityGroup:SecurityGroup", "new-api-postgres-sg").inputs
    assert [(r["fromPort"], r["toPort"], r.get("securityGroups"), r.get("cidrBlocks")) for r in sg["ingress"]] == \
        [(5432, 5432, ["sg-0123456789abcdef0"], None)]
    assert all(r["description"] for r in sg["ingress"]) and sg["egress"] == []


def test_rds_kms_key_rotates_with_the_maximum_deletion_window(prod):
    key = prod.get("aws:kms/key:Key", "new-api-postgres-kms").inputs
    assert (key["enableKeyRotation"], key["deletionWindowInDays"]) == (True, 30) and key["description"]


def test_rds_read_replica_follows_the_primary_and_is_the_read_host(prod):
    replica = _rds(prod, "replica")
    assert replica["replicateSourceDb"] == "new-api-postgres-primary"
    # RDS refuses a final snapshot of a replica; the primary's covers the data.
    assert replica["skipFinalSnapshot"] is True and replica["deletionProtection"] is True


@pytest.mark.parametrize("typ,name", [
    (RDS, "new-api-postgres-primary"), (RDS, "new-api-postgres-replica"), ("aws:kms/key:Key", "new-api-postgres-kms"),
])
def test_prod_rds_resources_are_protected(prod, typ, name):
    assert prod.get(typ, name).protect
