"""Redis: both backends' resources and settings, one connection shape, protection, and
the rendered redis.conf run by a real redis-server."""

import pytest

from components import redis as rc
from components.app import pod_selector as app_selector
from support import container, env_map, pod_spec
from tools import mockrt

from .conftest import AWS_NET, needs_redis, outputs_of, redis_cli, secret_value

RG = "aws:elasticache/replicationGroup:ReplicationGroup"
SHAPE = ["host", "port", "password", "tls", "url"]


def _component(backend: str):
    extra = {"kubernetes": {"namespace": "new-api", "resources": {"memory_limit": "1536Mi"}},
             "aws": {"namespace": "new-api", "aws": {"vpc_id": AWS_NET["vpcId"], "subnet_ids": AWS_NET["subnetIds"],
                             "vpc_cidr": "10.0.0.0/16",
                             "source_security_group_ids": AWS_NET["sourceSecurityGroupIds"]}}}[backend]
    return lambda: rc.Redis("cache", {"backend": backend, "password": "pw0123456789abcdef", **extra})


def _sts(dev):
    return dev.k8s("StatefulSet", "new-api-redis")


# --------------------------------------------------------------------------- connection shape

@pytest.mark.parametrize("backend", rc.BACKENDS)
def test_password_and_url_outputs_are_secret(backend):
    out = outputs_of(_component(backend), SHAPE)
    assert out["password"][1] and out["url"][1] and not out["host"][1]


def test_url_scheme_follows_tls():
    urls = {b: outputs_of(_component(b), ["url"])["url"][0] for b in rc.BACKENDS}
    assert urls["kubernetes"] == "redis://:pw0123456789abcdef@cache.new-api.svc:6379/0"
    assert urls["aws"] == "rediss://:pw0123456789abcdef@cache.mock.internal:6379/0"


def test_connection_shape_is_identical_across_backends():
    kinds = {b: {k: type(v).__name__ for k, (v, _) in outputs_of(_component(b), SHAPE).items()} for b in rc.BACKENDS}
    assert kinds["kubernetes"] == kinds["aws"]


def test_maxmemory_above_80_percent_of_the_limit_is_rejected():
    result = mockrt.run(lambda: rc.Redis("cache", {"backend": "kubernetes", "namespace": "ns", "maxmemory_mb": 1500,
                                                   "resources": {"memory_limit": "1536Mi"}}))
    assert "maxmemory_mb: 1500 exceeds 80 % of memory_limit 1536Mi" in str(result.error)
    assert [r for r in result.registrations if r.custom] == []


def test_app_reads_redis_conn_string_from_its_secret(dev):
    env = env_map(container(dev.k8s("Deployment", "new-api-master")))
    assert env["REDIS_CONN_STRING"]["valueFrom"]["secretKeyRef"] == {"name": "new-api-env", "key": "REDIS_CONN_STRING"}


def test_prod_app_uses_the_elasticache_primary_endpoint_over_tls(prod):
    data = secret_value(prod.get("kubernetes:core/v1:Secret", "new-api-env").inputs["stringData"])
    assert data["REDIS_CONN_STRING"].startswith("rediss://:")
    assert data["REDIS_CONN_STRING"].endswith("@new-api-redis.mock.internal:6379/0")


# --------------------------------------------------------------------------- kubernetes backend

def test_redis_config_persists_with_aof_and_the_seed_rdb_rules(dev):
    conf = dev.k8s("ConfigMap", "new-api-redis-config")["data"]["redis.conf"].splitlines()
    assert {"appendonly yes", "appendfsync everysec", "save 900 1 300 10 60 10000"} <= set(conf)


def test_redis_config_sets_maxmemory_from_config_with_volatile_lru(dev):
    conf = dev.k8s("ConfigMap", "new-api-redis-config")["data"]["redis.conf"].splitlines()
    assert {"maxmemory 200mb", "maxmemory-policy volatile-lru"} <= set(conf)


def test_password_is_never_in_the_configmap_or_arguments(dev):
    password = secret_value(dev.get("kubernetes:core/v1:Secret", "new-api-redis-auth").inputs["stringData"])["password"]
    conf = dev.k8s("ConfigMap", "new-api-redis-config")["data"]["redis.conf"]
    c = container(_sts(dev), "redis")
    assert password not in conf and password not in " ".join(c["command"])
    assert conf.rstrip().endswith(f"include {rc.AUTH_DIR}/auth.conf")


def test_auth_file_comes_from_the_secret(dev):
    data = secret_value(dev.get("kubernetes:core/v1:Secret", "new-api-redis-auth").inputs["stringData"])
    assert data["auth.conf"] == f"requirepass {data['password']}\n"
    vol = next(v for v in pod_spec(_sts(dev))["volumes"] if v["name"] == "auth")
    assert vol["secret"]["secretName"] == "new-api-redis-auth"


def test_probes_ping_with_the_password_from_env_and_liveness_is_tcp(dev):
    c = container(_sts(dev), "redis")
    assert "redis-cli --no-auth-warning" in c["readinessProbe"]["exec"]["command"][-1]
    assert env_map(c)["REDISCLI_AUTH"]["valueFrom"]["secretKeyRef"]["key"] == "password"
    assert c["livenessProbe"]["tcpSocket"] == {"port": "redis"}


def test_redis_image_is_pinned_and_restricted(dev):
    c = container(_sts(dev), "redis")
    assert c["image"] == "redis:7.4.2"
    assert (c["securityContext"]["runAsUser"], c["securityContext"]["readOnlyRootFilesystem"]) == (10006, True)


def test_dev_redis_is_laptop_sized(dev):
    res = container(_sts(dev), "redis")["resources"]["requests"]
    assert (res["cpu"], res["memory"]) == ("50m", "128Mi")


def test_exporter_reads_the_password_from_the_secret(dev):
    c = container(_sts(dev), "exporter")
    assert c["image"] == "quay.io/oliver006/redis_exporter:v1.67.0"
    assert env_map(c)["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "new-api-redis-auth"


def test_statefulset_keeps_its_volume_claims(dev):
    spec = _sts(dev)["spec"]
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert spec["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "1Gi"


def test_network_policy_admits_only_the_app_and_scrapers(dev):
    spec = dev.k8s("NetworkPolicy", "new-api-redis")["spec"]
    assert spec["ingress"][0] == {
        "from": [{"podSelector": {"matchLabels": app_selector("new-api", r)}} for r in ("master", "serving")],
        "ports": [{"protocol": "TCP", "port": 6379}]}
    assert spec["ingress"][1]["ports"] == [{"protocol": "TCP", "port": 9121}]
    assert len(spec["ingress"]) == 2 and spec["egress"] == []


def test_prod_in_cluster_redis_is_protected_and_retained(prod_in_cluster):
    reg = prod_in_cluster.get("kubernetes:apps/v1:StatefulSet", "new-api-redis")
    assert reg.protect and reg.retain_on_delete


# --------------------------------------------------------------------------- real server

@needs_redis
def test_real_redis_server_requires_the_password(live_redis):
    port, password = live_redis()
    assert "NOAUTH" in redis_cli(port, "ping")
    assert redis_cli(port, "ping", password=password) == "PONG"


@needs_redis
def test_real_redis_server_runs_the_rendered_persistence_and_memory_settings(live_redis):
    port, password = live_redis(maxmemory_mb=200)
    got = {}
    for key in ("appendonly", "appendfsync", "save", "maxmemory", "maxmemory-policy"):
        name, value = redis_cli(port, "config", "get", key, password=password).splitlines()
        got[name] = value
    assert got == {"appendonly": "yes", "appendfsync": "everysec", "save": "900 1 300 10 60 10000",
                   "maxmemory": str(200 * 2**20), "maxmemory-policy": "volatile-lru"}


# --------------------------------------------------------------------------- aws backend

def test_elasticache_is_one_endpoint_with_failover_across_azs(prod):
    rg = prod.get(RG, "new-api-redis").inputs
    assert (rg["numCacheClusters"], rg["automaticFailoverEnabled"], rg["multiAzEnabled"]) == (2, True, True)
    params = {p["name"]: p["value"] for p in prod.get("aws:elasticache/parameterGroup:ParameterGroup",
                                                      "new-api-redis-params").inputs["parameters"]}
    assert params == {"cluster-enabled": "no", "maxmemory-policy": "volatile-lru"}


def test_elasticache_encrypts_at_rest_and_in_transit_with_the_generated_token(prod):
    rg = prod.get(RG, "new-api-redis").inputs
    assert (rg["atRestEncryptionEnabled"], rg["transitEncryptionEnabled"]) == (True, True)
    assert rg["kmsKeyId"] == "arn:aws:mock:::key/new-api-redis-kms"
    token = secret_value(rg["authToken"])
    url = secret_value(prod.get("kubernetes:core/v1:Secret", "new-api-env").inputs["stringData"])["REDIS_CONN_STRING"]
    assert f":{token}@" in url


def test_elasticache_keeps_snapshots_and_upgrades_minors(prod):
    rg = prod.get(RG, "new-api-redis").inputs
    assert (rg["snapshotRetentionLimit"], rg["autoMinorVersionUpgrade"]) == (7, True)
    assert rg["subnetGroupName"] and rg["finalSnapshotIdentifier"] == "new-api-redis-final"


def test_elasticache_security_group_admits_only_the_configured_security_groups(prod):
    sg = prod.get("aws:ec2/securityGroup:SecurityGroup", "new-api-redis-sg").inputs
    assert [(r["fromPort"], r.get("securityGroups"), r.get("cidrBlocks")) for r in sg["ingress"]] == \
        [(6379, ["sg-0123456789abcdef0"], None)]
    assert all(r["description"] for r in sg["ingress"])


@pytest.mark.parametrize("typ,name", [(RG, "new-api-redis"), ("aws:kms/key:Key", "new-api-redis-kms")])
def test_prod_elasticache_resources_are_protected(prod, typ, name):
    assert prod.get(typ, name).protect
