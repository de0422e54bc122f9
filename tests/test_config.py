"""Bad stack config fails before any resource is registered, naming the stack file, the
key path, the value and what is allowed."""

import pytest

from support import DELETE, override
from tools import mockrt

BAD = [
    # (id, stack, changes, expected fragments of the message)
    ("wrong-type", "dev", [("app.autoscaling.minReplicas", "three")],
     ["new-api:app.autoscaling.minReplicas", '"three"', "valid integer"]),
    ("float-for-int", "dev", [("app.autoscaling.maxReplicas", 2.5)],
     ["new-api:app.autoscaling.maxReplicas", "2.5", "valid integer"]),
    ("unknown-top-level-key", "dev", [("replicas", 3)],
     ["new-api:replicas", "unknown key", "allowed top-level keys"]),
    ("unknown-nested-key", "dev", [("app.replicas", 3)],
     ["new-api:app.replicas", "unknown key"]),
    ("zero-replicas", "dev", [("app.autoscaling.minReplicas", 0)],
     ["new-api:app.autoscaling.minReplicas", "= 0", "greater than or equal to 1"]),
    ("max-below-min", "dev", [("app.autoscaling.minReplicas", 5), ("app.autoscaling.maxReplicas", 3)],
     ["new-api:app.autoscaling", "maxReplicas (3) must be greater than minReplicas (5)"]),
    ("invalid-domain", "dev", [("domain", "not a domain!")],
     ["new-api:domain", '"not a domain!"', "fully qualified"]),
    ("wildcard-domain", "dev", [("domain", "*.example.net")],
     ["new-api:domain", "without wildcard"]),
    ("image-without-tag", "dev", [("app.image", "calciumion/new-api")],
     ["new-api:app.image", "has no tag"]),
    ("image-latest", "dev", [("app.image", "calciumion/new-api:latest")],
     ["new-api:app.image", "moving tag 'latest'"]),
    ("unknown-database-backend", "dev", [("database.backend", "mysql")],
     ["new-api:database.backend", '"mysql"', "'kubernetes', 'cloudnative-pg' or 'aws'"]),
    ("unknown-redis-backend", "dev", [("redis.backend", "memcached")],
     ["new-api:redis.backend", "'kubernetes' or 'aws'"]),
    ("negative-size", "dev", [("app.resources.memoryLimit", "-512Mi")],
     ["new-api:app.resources.memoryLimit", "not a Kubernetes quantity"]),
    ("negative-storage", "dev", [("database.storageSize", "-2Gi")],
     ["new-api:database.storageSize", "not a Kubernetes quantity"]),
    ("prod-single-replica", "prod", [("app.autoscaling.minReplicas", 1)],
     ["Pulumi.prod.yaml", "new-api:app.autoscaling.minReplicas = 1", "at least 2 serving replicas"]),
    ("unknown-environment", "dev", [("environment", "production")],
     ["new-api:environment", '"production"', "'dev', 'staging' or 'prod'"]),
    ("missing-domain", "dev", [("domain", DELETE)],
     ["new-api:domain = (unset)", "is required"]),
    ("pool-overflows-database", "dev", [("app.pool.maxOpenConns", 50)],
     ["new-api:app.pool.maxOpenConns = 50", "database.maxConnections (100)", "app.autoscaling.maxReplicas"]),
    ("cookie-secure-without-tls", "dev",
     [("ingress.tls.enabled", False), ("app.sessionCookieSecure", True)],
     ["new-api:app.sessionCookieSecure = true", "needs ingress.tls.enabled: true"]),
    ("bad-proxy-range", "dev", [("app.trustedProxies", ["10.244.0.0/33"])],
     ["new-api:app.trustedProxies[0]", '"10.244.0.0/33"', "CIDR"]),
    ("proxy-range-with-host-bits", "dev", [("app.trustedProxies", ["10.244.1.1/16"])],
     ["new-api:app.trustedProxies[0]", "host bits set"]),
    ("catch-all-proxy-range", "dev", [("app.trustedProxies", ["0.0.0.0/0"])],
     ["new-api:app.trustedProxies[0]", "catch-all"]),
    ("missing-trusted-proxies", "dev", [("app.trustedProxies", DELETE)],
     ["new-api:app.trustedProxies = (unset)", "is required"]),
    ("ingress-timeout-below-stream-timeout", "dev", [("ingress.proxyTimeoutSeconds", 300)],
     ["new-api:ingress.proxyTimeoutSeconds = 300", "must exceed app.streamingTimeoutSeconds (300)"]),
    ("letsencrypt-without-email", "dev", [("ingress.tls.issuer", "letsencrypt-staging")],
     ["new-api:ingress.tls.acmeEmail", "is required with issuer 'letsencrypt-staging'"]),
    ("prod-self-signed", "prod", [("ingress.tls.issuer", "self-signed")],
     ["Pulumi.prod.yaml", "new-api:ingress.tls.issuer", "letsencrypt-prod"]),
    ("prod-without-tls", "prod", [("ingress.tls.enabled", False)],
     ["new-api:ingress.tls.enabled = false", "prod always terminates TLS"]),
    ("request-above-limit", "dev", [("app.resources.memoryRequest", "1Gi")],
     ["new-api:app.resources", "memoryRequest 1Gi exceeds memoryLimit 384Mi"]),
    ("secret-in-extra-env", "dev", [("app.extraEnv", {"OPENAI_API_KEY": "sk-123"})],
     ["new-api:app", "OPENAI_API_KEY", "looks like a credential"]),
    ("invalid-namespace", "dev", [("namespace", "New_API")],
     ["new-api:namespace", '"New_API"', "DNS-1123"]),
    ("placeholder-acme-email", "prod", [("ingress.tls.acmeEmail", "ops@example.com")],
     ["new-api:ingress.tls.acmeEmail", "real, reachable"]),
    ("string-for-bool", "dev", [("ingress.tls.enabled", "yes")],
     ["new-api:ingress.tls.enabled", '"yes"', "valid boolean"]),
    ("idle-above-open", "dev", [("app.pool.maxIdleConns", 20)],
     ["new-api:app.pool", "maxIdleConns (20) exceeds maxOpenConns (10)"]),
    ("unknown-pull-policy", "dev", [("app.imagePullPolicy", "Never")],
     ["new-api:app.imagePullPolicy", "'IfNotPresent' or 'Always'"]),
    ("body-size-below-app-limit", "dev", [("ingress.proxyBodySizeMb", 64)],
     ["new-api:ingress.proxyBodySizeMb = 64", "greater than or equal to 128"]),
]


@pytest.mark.parametrize("stack,changes,expected", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config_fails_clearly_and_creates_nothing(stack, changes, expected):
    result = mockrt.run_stack(stack, override(stack, *changes))
    assert result.error is not None, "the bad config was accepted"
    message = str(result.error)
    assert f"Pulumi.{stack}.yaml" in message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} missing from:\n{message}"
    assert result.registrations == [], "resources were registered before validation failed"


def test_config_error_is_a_clean_engine_error():
    import pulumi
    from stack.config import ConfigError

    assert issubclass(ConfigError, pulumi.RunError)  # printed without a traceback by the engine


def test_every_problem_is_reported_at_once():
    result = mockrt.run_stack("dev", override("dev", ("app.image", "x"), ("domain", "bad domain")))
    message = str(result.error)
    assert "new-api:app.image" in message and "new-api:domain" in message


def _budget(max_connections: int):
    """dev with maxReplicas 5: a rolling update's maxSurge 25 % rounds up (Kubernetes rounds
    maxSurge percentages up: apps/v1 DeploymentStrategy docs), so 5 + ceil(1.25) = 7 serving
    pods + 1 master, x maxOpenConns 10 + reservedConnections 20 = 100 connections."""
    return mockrt.run_stack("dev", override("dev", ("app.autoscaling.maxReplicas", 5),
                                            ("database.maxConnections", max_connections)))


def test_connection_budget_that_fits_the_rolling_surge_exactly_is_accepted():
    assert _budget(100).error is None


def test_connection_budget_one_short_of_the_rolling_surge_is_refused():
    """Without the surge (5 pods: 80) or with it rounded down (6 pods: 90), 99 would fit."""
    message = str(_budget(99).error)
    assert ("new-api:app.pool.maxOpenConns = 10: (7 serving pods at app.autoscaling.maxReplicas 5 plus the "
            "rolling update's 25 % surge + 1 master) x 10 + database.reservedConnections 20 = 100 exceeds "
            "database.maxConnections (99)") in message, message


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_stack_files_are_valid(stack):
    assert mockrt.run_stack(stack).error is None


def test_defaults_live_in_the_components():
    """The schema's defaults are the components' production defaults (one source)."""
    from components import app, images
    from stack.config import App, Autoscaling, Pool, Resources

    assert Resources().model_dump() == app.DEFAULT_RESOURCES
    assert Autoscaling().model_dump() == app.DEFAULT_AUTOSCALING
    assert Pool().model_dump() == app.DEFAULT_POOL
    assert App.model_fields["image"].default == images.NEW_API


# ----------------------------------------------------------------------------- the engine's own checks
# `pulumi up` validates stack files against Pulumi.yaml before the program runs
# (pulumi/pulumi sdk/go/common/workspace ValidateStackConfigAndApplyProjectConfig): a typed
# key with no default must be set, values must have the declared type, `secret: true` keys
# must be encrypted. These tests apply the same rules to the committed files.

def _project_config():
    import yaml

    return yaml.safe_load((mockrt.REPO / "Pulumi.yaml").read_text())["config"]


_TYPES = {"string": str, "object": dict, "integer": int, "boolean": bool, "array": list}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_files_pass_the_engines_project_config_validation(stack):
    import yaml

    values = (yaml.safe_load((mockrt.REPO / f"Pulumi.{stack}.yaml").read_text()) or {})["config"]
    for key, decl in _project_config().items():
        full = f"new-api:{key}"
        if full not in values:
            assert "default" in decl, f"Pulumi.{stack}.yaml lacks {full}, which has no default: the engine refuses it"
            continue
        value = values[full]
        if decl.get("secret"):
            assert isinstance(value, dict) and "secure" in value, f"{full} must be encrypted"
        else:
            assert isinstance(value, _TYPES[decl["type"]]), f"{full} must be of type {decl['type']}"


def test_project_defaults_mean_the_schema_defaults():
    """One source of defaults: Pulumi.yaml says {} (objects) or repeats the schema's value."""
    from stack.config import StackConfig

    for key, decl in _project_config().items():
        if "default" not in decl:
            continue
        field = next(f for name, f in StackConfig.model_fields.items() if (f.alias or name) == key)
        if decl["type"] == "object":
            assert decl["default"] == {}, key
        else:
            assert decl["default"] == field.default, key


def test_required_keys_are_exactly_the_ones_without_schema_defaults():
    from stack.config import StackConfig

    required = {f.alias or n for n, f in StackConfig.model_fields.items() if f.is_required()}
    undeclared_default = {k for k, d in _project_config().items() if "default" not in d}
    assert required == undeclared_default == {"environment", "domain", "app"}
