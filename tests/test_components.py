"""Components used directly (as other teams import them): bad args fail with the arg
named before any child is registered; good args give production defaults."""

import pytest

from components import ApiService, RestrictedNamespace, StackSecrets, TlsIngress
from tools import mockrt

GOOD_APP = {
    "namespace": "team-a",
    "image": "calciumion/new-api:v1.0.0-rc.25",
    "host": "llm.team-a.example.net",
    "sql_dsn": "postgresql://u:p@db:5432/newapi?sslmode=require",
    "redis_url": "rediss://:p@redis:6379/0",
    "session_secret": "s" * 64,
    "crypto_secret": "c" * 64,
    "admin_password": "Abcdefgh12345678XYzz",
    "trusted_proxies": ["10.42.0.0/16"],
}


def run_app(**changes):
    args = {**GOOD_APP, **changes}
    for key, value in list(args.items()):
        if value is None:
            del args[key]
    return mockrt.run(lambda: ApiService("team-a-api", args), project="consumer")


BAD_APP = [
    ("image", "calciumion/new-api", "image: 'calciumion/new-api' has no tag"),
    ("image", "calciumion/new-api:latest", "moving tag 'latest'"),
    ("sql_dsn", "host=db user=u dbname=newapi", "sql_dsn: must start with postgresql://"),
    ("redis_url", "db:6379", "redis_url: must start with redis://"),
    ("session_secret", "random_string", "session_secret: the literal 'random_string' is fatal"),
    ("trusted_proxies", ["0.0.0.0/0"], "trusted_proxies: 0.0.0.0/0 would trust"),
    ("trusted_proxies", ["10.0.0.1/8"], "trusted_proxies: '10.0.0.1/8' is not a CIDR"),
    ("autoscaling", {"min_replicas": 4, "max_replicas": 4}, "autoscaling.max_replicas: 4 must be greater"),
    ("autoscaling", {"min_replicas": 0}, "autoscaling.min_replicas: must be at least 1"),
    ("autoscaling", {"minReplicas": 2}, "autoscaling: unknown keys ['minReplicas']"),
    ("pool", {"max_idle_conns": 50}, "pool.max_idle_conns: must be between 0 and max_open_conns"),
    ("resources", {"memory_limit": "lots"}, "resources.memory_limit: 'lots' is not a Kubernetes quantity"),
    ("session_cookie_secure", True, None),  # valid with tls (default)
    ("host", None, "host: is required"),
    ("extra_env", {"NODE_TYPE": "master"}, "extra_env: ['NODE_TYPE'] are managed by the component"),
]


@pytest.mark.parametrize("key,value,expected", BAD_APP, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_APP)])
def test_api_service_rejects_bad_args_before_creating_anything(key, value, expected):
    result = run_app(**{key: value})
    if expected is None:
        assert result.error is None
        return
    assert isinstance(result.error, ValueError), result.error
    assert expected in str(result.error)
    assert [r for r in result.registrations if r.type != "new-api:index:ApiService"] == []


def test_cookie_secure_without_tls_is_rejected():
    result = run_app(tls=False, session_cookie_secure=True)
    assert "session_cookie_secure: needs tls" in str(result.error)


def test_api_service_defaults_are_the_seed_production_values():
    result = run_app()
    assert result.error is None
    hpa = result.get("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "team-a-api").inputs["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    objects = {r.name: r for r in result.registrations}
    assert objects["team-a-api-config"].inputs["data"]["SQL_MAX_OPEN_CONNS"] == "12"
    assert objects["team-a-api-config"].inputs["data"]["SESSION_COOKIE_TRUSTED_URL"] == "https://llm.team-a.example.net"
    assert all(r.parent.endswith("ApiService::team-a-api") for r in result.registrations if r.custom)


@pytest.mark.parametrize("args,expected", [
    ({"name": "Bad_NS"}, "name: 'Bad_NS' must be a DNS-1123 label"),
    ({"name": "ok", "pod_security": "baseline"}, "pod_security_reason: pod_security 'baseline' needs"),
    ({"name": "ok", "pod_security": "open"}, "pod_security: 'open' must be"),
])
def test_namespace_rejects_bad_args(args, expected):
    result = mockrt.run(lambda: RestrictedNamespace("ns", args))
    assert expected in str(result.error)
    assert [r for r in result.registrations if r.custom] == []


@pytest.mark.parametrize("args,expected", [
    ({"host": "*.example.net"}, "host: '*.example.net' must be"),
    ({"host": "a.example.net", "issuer": "letsencrypt-prod"}, "acme_email: is required"),
    ({"host": "a.example.net", "issuer": "vault", "acme_email": "x@y.net"}, "issuer: 'vault' must be one of"),
])
def test_ingress_rejects_bad_args(args, expected):
    full = {"namespace": "n", "service_name": "svc", **args}
    result = mockrt.run(lambda: TlsIngress("ing", full))
    assert expected in str(result.error)
    assert [r for r in result.registrations if r.custom] == []


def test_secrets_reject_short_lengths():
    result = mockrt.run(lambda: StackSecrets("s", {"password_length": 8}))
    assert "password_length: 8 is too short" in str(result.error)
