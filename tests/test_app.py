"""The app tier on the synthesized dev and prod stacks: topology and ordering, probes,
security context, env and Secrets, drain timings (NEWAPI-CONTRACT.md; issues 2 and 9)."""

import ipaddress

import pytest

from components import app as app_component
from support import container, env_map, pod_spec

SERVING, MASTER, JOB = "new-api", "new-api-master", "new-api-bootstrap"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def settings(stack) -> dict:
    return stack.k8s("ConfigMap", "new-api-config")["data"]


# ----------------------------------------------------------------------------- topology

def test_master_is_exactly_one_replica_replaced_with_recreate(stack):
    master = stack.k8s("Deployment", MASTER)
    assert master["spec"]["replicas"] == 1
    assert master["spec"]["strategy"] == {"type": "Recreate"}


def test_no_autoscaler_targets_the_master(stack):
    targets = [h["spec"]["scaleTargetRef"]["name"] for h in stack.k8s_all("HorizontalPodAutoscaler")]
    assert targets == [SERVING]


def test_serving_pods_are_slaves_and_the_master_is_not(stack):
    assert env_map(container(stack.k8s("Deployment", SERVING)))["NODE_TYPE"]["value"] == "slave"
    assert "NODE_TYPE" not in env_map(container(stack.k8s("Deployment", MASTER)))
    assert "NODE_TYPE" not in settings(stack)


def test_master_slaves_and_bootstrap_run_the_same_pinned_image(stack):
    images = {container(stack.k8s("Deployment", SERVING))["image"],
              container(stack.k8s("Deployment", MASTER))["image"],
              container(stack.k8s("Job", JOB), "bootstrap")["image"]}
    assert len(images) == 1
    (image,) = images
    assert image.startswith("calciumion/new-api:v") and not image.endswith(":latest")


def test_node_name_is_the_pod_name_on_master_and_slaves(stack):
    for name in (SERVING, MASTER):
        node_name = env_map(container(stack.k8s("Deployment", name)))["NODE_NAME"]
        assert node_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_serving_replicas_are_left_to_the_hpa(stack):
    assert "replicas" not in stack.k8s("Deployment", SERVING)["spec"]


def test_hpa_bounds_follow_the_seed_in_prod_and_are_smaller_in_dev(dev, prod):
    prod_hpa = prod.k8s("HorizontalPodAutoscaler", SERVING)["spec"]
    assert (prod_hpa["minReplicas"], prod_hpa["maxReplicas"]) == (3, 10)
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in prod_hpa["metrics"]}
    assert targets == {"cpu": 80, "memory": 80}
    assert prod_hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    dev_hpa = dev.k8s("HorizontalPodAutoscaler", SERVING)["spec"]
    assert (dev_hpa["minReplicas"], dev_hpa["maxReplicas"]) == (1, 2)


def test_master_goes_first_then_bootstrap_then_slaves_then_the_public_ingress(nginx_stack):
    stack = nginx_stack
    def deps(typ, name):
        return set(stack.get(typ, name).dependencies)

    master = stack.get(DEPLOYMENT, MASTER).urn
    master_svc = stack.get("kubernetes:core/v1:Service", MASTER).urn
    job = stack.get("kubernetes:batch/v1:Job", JOB).urn
    serving = stack.get(DEPLOYMENT, SERVING).urn
    assert master in deps("kubernetes:core/v1:Service", MASTER)
    assert master_svc in deps("kubernetes:batch/v1:Job", JOB)
    assert {master, job} <= deps(DEPLOYMENT, SERVING)
    # The Ingress waits for the serving Service, which waits for the serving Deployment.
    service = stack.get("kubernetes:core/v1:Service", SERVING).urn
    assert serving in deps("kubernetes:core/v1:Service", SERVING)
    assert service in deps("kubernetes:networking.k8s.io/v1:Ingress", "new-api")


def test_public_service_and_ingress_route_to_serving_pods_only(nginx_stack):
    stack = nginx_stack
    serving_labels = stack.k8s("Deployment", SERVING)["spec"]["template"]["metadata"]["labels"]
    service = stack.k8s("Service", SERVING)["spec"]
    assert all(serving_labels.get(k) == v for k, v in service["selector"].items())
    assert service["selector"]["app.kubernetes.io/component"] == "serving"
    backend = stack.k8s("Ingress", "new-api")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": SERVING, "port": {"number": service["ports"][0]["port"]}}


def test_master_service_selects_only_the_master(stack):
    assert stack.k8s("Service", MASTER)["spec"]["selector"]["app.kubernetes.io/component"] == "master"


# ----------------------------------------------------------------------------- probes

@pytest.mark.parametrize("name", [SERVING, MASTER])
def test_startup_probe_gives_migrations_at_least_five_minutes(stack, name):
    probe = container(stack.k8s("Deployment", name))["startupProbe"]
    assert probe["httpGet"]["path"] == "/api/status"
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 300


@pytest.mark.parametrize("name", [SERVING, MASTER])
def test_readiness_polls_status_no_faster_than_every_ten_seconds(stack, name):
    probe = container(stack.k8s("Deployment", name))["readinessProbe"]
    assert probe["httpGet"]["path"] == "/api/status" and probe["periodSeconds"] >= 10


@pytest.mark.parametrize("name", [SERVING, MASTER])
def test_liveness_is_tcp_so_a_redis_outage_does_not_restart_pods(stack, name):
    c = container(stack.k8s("Deployment", name))
    assert "httpGet" not in c["livenessProbe"]
    port = c["livenessProbe"]["tcpSocket"]["port"]
    assert port in ("http", app_component.APP_PORT)
    assert {"name": "http", "containerPort": 3000, "protocol": "TCP"} in c["ports"]


# ----------------------------------------------------------------------------- security and files

@pytest.mark.parametrize("kind,name,cname", [("Deployment", SERVING, "new-api"),
                                             ("Deployment", MASTER, "new-api"),
                                             ("Job", JOB, "bootstrap")])
def test_runs_as_its_own_uid_10002_with_a_read_only_root(stack, kind, name, cname):
    """New API's own UID (components.common.WORKLOAD_UIDS): no other workload can read its
    environment (SQL_DSN, SESSION_SECRET) through /proc (issue 13 item 4)."""
    obj = stack.k8s(kind, name)
    pod, c = pod_spec(obj), container(obj, cname)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (10002, 10002)
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsUser"] == 10002
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] != "default"
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]


@pytest.mark.parametrize("name", [SERVING, MASTER])
def test_tmp_is_a_size_limited_empty_dir_and_logs_go_to_stdout(stack, name):
    obj = stack.k8s("Deployment", name)
    volumes = {v["name"]: v for v in pod_spec(obj)["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(obj)["volumeMounts"]}
    assert volumes[mounts["/tmp"]]["emptyDir"]["sizeLimit"]
    assert container(obj)["args"] == ["--log-dir="]
    assert settings(stack)["TZ"] == "UTC"


def test_gomemlimit_is_ninety_percent_of_the_memory_limit(prod):
    c = container(prod.k8s("Deployment", SERVING))
    assert c["resources"]["limits"]["memory"] == "512Mi"
    assert env_map(c)["GOMEMLIMIT"]["value"] == "460MiB"


# ----------------------------------------------------------------------------- drain

@pytest.mark.parametrize("name", [SERVING, MASTER])
def test_grace_period_covers_prestop_plus_shutdown_timeout(stack, name):
    obj = stack.k8s("Deployment", name)
    pre_stop = int(container(obj)["lifecycle"]["preStop"]["exec"]["command"][-1])
    shutdown = int(settings(stack)["SHUTDOWN_TIMEOUT_SECONDS"])
    assert pre_stop >= 5
    assert pod_spec(obj)["terminationGracePeriodSeconds"] >= pre_stop + shutdown + 10


def test_rolling_update_never_drops_capacity(stack):
    strategy = stack.k8s("Deployment", SERVING)["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": "25%"}


def test_ingress_outlasts_the_streaming_timeout_and_does_not_buffer(nginx_stack):
    stack = nginx_stack
    ann = stack.k8s("Ingress", "new-api")["metadata"]["annotations"]
    streaming = int(settings(stack)["STREAMING_TIMEOUT"])
    assert int(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > streaming
    assert int(ann["nginx.ingress.kubernetes.io/proxy-send-timeout"]) > streaming
    assert ann["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(ann["nginx.ingress.kubernetes.io/proxy-body-size"].rstrip("m")) >= 128


# ----------------------------------------------------------------------------- env and secrets

def test_proxies_and_cookies_follow_config_and_tls(prod):
    s = settings(prod)
    assert s["TRUSTED_PROXIES"] == "10.0.0.0/16"
    assert s["SESSION_COOKIE_SECURE"] == "true"
    assert s["SESSION_COOKIE_TRUSTED_URL"] == "https://api.example.net"


def test_without_tls_the_cookie_is_not_secure_and_no_trusted_url_is_set():
    from support import Stack, override
    from tools import mockrt

    plain = Stack(mockrt.run_stack("dev", override("dev", ("ingress.tls.enabled", False))))
    s = settings(plain)
    assert s["SESSION_COOKIE_SECURE"] == "false" and "SESSION_COOKIE_TRUSTED_URL" not in s


def test_pool_is_sized_from_config(dev):
    s = settings(dev)
    assert (s["SQL_MAX_OPEN_CONNS"], s["SQL_MAX_IDLE_CONNS"], s["SQL_MAX_LIFETIME"]) == ("10", "5", "300")


SECRET_KEYS = ("SQL_DSN", "REDIS_CONN_STRING", "SESSION_SECRET", "CRYPTO_SECRET")


@pytest.mark.parametrize("name", [SERVING, MASTER])
def test_credentials_come_only_from_the_shared_secret(stack, name):
    env = env_map(container(stack.k8s("Deployment", name)))
    for key in SECRET_KEYS:
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "new-api-env", "key": key}
        assert "value" not in env[key]
    assert not set(SECRET_KEYS) & set(settings(stack))


def _secret_value(stack, secret_name, key):
    from tools.mockrt import is_secret_envelope

    for reg in stack.of_type("kubernetes:core/v1:Secret"):
        if reg.inputs["metadata"]["name"] == secret_name:
            data = reg.inputs["stringData"]
            assert is_secret_envelope(data), "Secret data must reach the engine as a secret"
            return data["value"][key]
    raise KeyError(secret_name)


def test_dsn_is_a_postgres_url_and_redis_a_redis_url(stack):
    assert _secret_value(stack, "new-api-env", "SQL_DSN").startswith("postgresql://")
    assert "sslmode=" in _secret_value(stack, "new-api-env", "SQL_DSN")
    assert _secret_value(stack, "new-api-env", "REDIS_CONN_STRING").startswith(("redis://", "rediss://"))


def test_session_and_crypto_secrets_are_generated_and_distinct(stack):
    session = _secret_value(stack, "new-api-env", "SESSION_SECRET")
    crypto = _secret_value(stack, "new-api-env", "CRYPTO_SECRET")
    assert session != "random_string" and len(session) >= 32
    assert crypto != session and len(crypto) >= 32


# ----------------------------------------------------------------------------- bootstrap job

def test_bootstrap_job_reaches_the_master_through_its_cluster_ip_service(stack):
    job = stack.k8s("Job", JOB)
    env = env_map(container(job, "bootstrap"))
    assert env["MASTER_URL"]["value"] == f"http://{MASTER}:3000"
    assert env["ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "new-api-admin", "key": "password"}
    spec = job["spec"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert spec["backoffLimit"] >= 1 and spec["activeDeadlineSeconds"] > 0 and spec["ttlSecondsAfterFinished"] > 0


def test_admin_password_is_exported_only_as_a_secret(stack):
    value, secret = stack.result.stack_outputs["adminPassword"]
    assert secret is True and value


# ----------------------------------------------------------------------------- availability and network

def test_pdb_allows_one_disruption_of_serving_pods(stack):
    pdb = stack.k8s("PodDisruptionBudget", SERVING)["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["selector"]["matchLabels"]["app.kubernetes.io/component"] == "serving"


def test_serving_pods_spread_across_zones_and_nodes(stack):
    keys = {t["topologyKey"] for t in pod_spec(stack.k8s("Deployment", SERVING))["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


def test_namespace_enforces_restricted_and_denies_by_default(stack):
    ns = stack.k8s("Namespace", "new-api")["metadata"]["labels"]
    assert ns["pod-security.kubernetes.io/enforce"] == "restricted"
    deny = stack.k8s("NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns = stack.k8s("NetworkPolicy", "allow-dns-egress")["spec"]["egress"][0]
    assert {p["port"] for p in dns["ports"]} == {53}


@pytest.mark.parametrize("kind,entry_ns", [("gateway", "envoy-gateway-system"), ("ingress-nginx", "ingress-nginx")])
def test_serving_pods_accept_traffic_only_from_the_entry_and_monitoring(stack, nginx_stack, kind, entry_ns):
    stack = stack if kind == "gateway" else nginx_stack
    rules = stack.k8s("NetworkPolicy", "new-api-serving")["spec"]["ingress"]
    sources = {r["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for r in rules}
    assert sources == {entry_ns, "monitoring"}
    assert all(r["ports"] == [{"protocol": "TCP", "port": 3000}] for r in rules)


def test_master_accepts_only_the_bootstrap_job_and_monitoring(stack):
    rules = stack.k8s("NetworkPolicy", "new-api-master")["spec"]["ingress"]
    assert rules[0]["from"] == [{"podSelector": {"matchLabels": app_component.pod_selector("new-api", "bootstrap")}}]
    assert len(rules) == 2


def test_egress_is_datastores_and_https_but_never_instance_metadata(stack):
    egress = stack.k8s("NetworkPolicy", "new-api-serving")["spec"]["egress"]
    https = [r for r in egress if r["ports"] == [{"protocol": "TCP", "port": 443}]]
    assert len(https) == 1
    for peer in https[0]["to"]:
        block = peer["ipBlock"]
        if ipaddress.ip_address("169.254.169.254") in ipaddress.ip_network(block["cidr"]):
            assert "169.254.0.0/16" in block["except"]
    other_ports = {p["port"] for r in egress if r not in https for p in r["ports"]}
    assert other_ports and 443 not in other_ports


def test_bootstrap_job_may_only_talk_to_the_master(stack):
    spec = stack.k8s("NetworkPolicy", "new-api-bootstrap")["spec"]
    assert spec["ingress"] == []
    assert spec["egress"] == [{"to": [{"podSelector": {"matchLabels": app_component.pod_selector("new-api", "master")}}],
                               "ports": [{"protocol": "TCP", "port": 3000}]}]


def test_upstream_ports_come_from_config():
    from support import Stack, override
    from tools import mockrt

    smtp = Stack(mockrt.run_stack("dev", override("dev", ("network.upstreamPorts", [443, 465, 587]))))
    egress = smtp.k8s("NetworkPolicy", "new-api-serving")["spec"]["egress"]
    upstream = next(r for r in egress if any("ipBlock" in p for p in r["to"]))
    assert [p["port"] for p in upstream["ports"]] == [443, 465, 587]
    bad = mockrt.run_stack("dev", override("dev", ("network.upstreamPorts", [70000])))
    assert "new-api:network.upstreamPorts[0]" in str(bad.error) and bad.registrations == []
