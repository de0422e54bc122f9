"""A consumer stack: team A runs its own New API with its own datastores, importing the
components package. It states intent (namespace, host, sizes); the components bring the
production defaults (security context, probes, HPA, PDB, NetworkPolicies, TLS)."""

import pulumi

from components import ApiService, RestrictedNamespace, StackSecrets, TlsIngress

config = pulumi.Config()
host = config.get("host") or "llm.team-a.example.net"

namespace = RestrictedNamespace("team-a-ns", {"name": "team-a-llm"})
secrets = StackSecrets("team-a-secrets", {})

# Team A brings its own managed Postgres and Redis (e.g. from its platform's catalogue).
sql_dsn = secrets.database_password.apply(
    lambda pw: f"postgresql://gateway:{pw}@pg.team-a.internal:5432/gateway?sslmode=require")
redis_url = secrets.redis_password.apply(lambda pw: f"rediss://:{pw}@redis.team-a.internal:6379/0")

api = ApiService("llm-gateway", {
    "namespace": namespace.name,
    "image": "calciumion/new-api:v1.0.0-rc.25",
    "host": host,
    "sql_dsn": sql_dsn,
    "redis_url": redis_url,
    "session_secret": secrets.session_secret,
    "crypto_secret": secrets.crypto_secret,
    "admin_password": secrets.admin_password,
    "trusted_proxies": ["10.42.0.0/16"],
    "autoscaling": {"min_replicas": 2, "max_replicas": 6},
    "datastore_egress": [{"port": 5432, "cidr": "10.20.0.0/16"}, {"port": 6379, "cidr": "10.20.0.0/16"}],
}, opts=pulumi.ResourceOptions(depends_on=[namespace]))

ingress = TlsIngress("llm-gateway", {
    "namespace": namespace.name,
    "host": host,
    "service_name": api.service_name,
    "issuer": "letsencrypt-prod",
    "acme_email": "platform@team-a.example.net",
})

pulumi.export("url", ingress.url)
pulumi.export("adminPassword", secrets.admin_password)
