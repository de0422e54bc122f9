"""Default container images, pinned to exact version tags (never ``latest``).

One place for every image the components run; stack config can override each.

New API: ``v1.0.0-rc.25`` (NEWAPI-CONTRACT.md §8). The stable line ``v0.13.2`` has no
SIGTERM drain (``SHUTDOWN_TIMEOUT_SECONDS``), no ``TRUSTED_PROXIES`` and no
``SESSION_COOKIE_*``, all of which the app tier sets; rc.25 is the release candidate
matching the source the contract was read from. Avoid rc.37 (memory regression,
upstream issue #7361). Pin the digest in stack config once resolved
(``docker buildx imagetools inspect calciumion/new-api:v1.0.0-rc.25``): a tag can be
re-pushed, a digest cannot.
"""

NEW_API = "calciumion/new-api:v1.0.0-rc.25"

# --------------------------------------------------------------------------- data tier
# Exact tags, one per line, so a bump is a one-line diff. The Postgres major is the
# same everywhere (16): pg_dump must be at least the server's major version.

POSTGRES = "postgres:16.6"
"""Official Postgres image (Debian bookworm) for the in-cluster StatefulSet and the
pg_dump/pg_restore jobs. Runs as UID 10001: its entrypoint supports an arbitrary UID
(nss_wrapper) when PGDATA is writable."""

POSTGRES_EXPORTER = "quay.io/prometheuscommunity/postgres-exporter:v0.16.0"
"""Prometheus postgres_exporter (seed 000: ``postgres-exporter:9187``)."""

CNPG_POSTGRES = "ghcr.io/cloudnative-pg/postgresql:16.6"
"""CloudNativePG operand image (same major as ``POSTGRES``)."""

REDIS = "redis:7.4.2"
"""Official Redis 7 image (seed 000: ``redis:7-alpine``, pinned to an exact tag)."""

REDIS_EXPORTER = "quay.io/oliver006/redis_exporter:v1.67.0"
"""Prometheus redis_exporter (seed 000: ``redis-exporter:9121``)."""

RDS_EXPORTER = "public.ecr.aws/qonto/prometheus-rds-exporter:0.18.1"
"""qonto/prometheus-rds-exporter, the RDS automated-backup alerts' source (aws backend).
Release tags carry no ``v`` (git tag ``0.18.1``, 2026-04-27); ``.goreleaser.yaml``
publishes the multi-arch manifest as ``public.ecr.aws/qonto/prometheus-rds-exporter:<tag>``."""

AWS_CLI = "public.ecr.aws/aws-cli/aws-cli:2.22.35"
"""AWS CLI v2 for the backup upload/download steps (IRSA credentials, no static keys)."""

# --------------------------------------------------------------------------- observability
# Exact tags; the digests are resolved at release time (``crane digest <image>``) and
# can be pinned per stack. Elastic components share one version: Kibana and Logstash
# refuse a newer Elasticsearch major/minor mismatch.

PROMETHEUS = "quay.io/prometheus/prometheus:v3.5.0"
"""Prometheus 3.5 (long-term support line). Rules are checked with promtool 2.42 here;
nothing in them depends on 3.x-only syntax."""

ALERTMANAGER = "quay.io/prometheus/alertmanager:v0.28.1"
"""Alertmanager (config validated by amtool 0.25; only fields 0.25 accepts are used)."""

BLACKBOX_EXPORTER = "quay.io/prometheus/blackbox-exporter:v0.26.0"
"""Probes New API's ``GET /api/status`` (the app has no /metrics)."""

NODE_EXPORTER = "quay.io/prometheus/node-exporter:v1.9.1"
KUBE_STATE_METRICS = "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.15.0"
PROMETHEUS_ADAPTER = "registry.k8s.io/prometheus-adapter/prometheus-adapter:v0.12.0"

GRAFANA = "grafana/grafana:11.6.3"
"""Grafana 11.6: the dashboards are built with grafana-foundation-sdk ``1769699379!11.6.0``
(same minor), so the JSON schema matches what this Grafana reads."""

ELASTIC_VERSION = "8.17.4"
ELASTICSEARCH = f"docker.elastic.co/elasticsearch/elasticsearch:{ELASTIC_VERSION}"
ELASTICSEARCH_EXPORTER = "quay.io/prometheuscommunity/elasticsearch-exporter:v1.9.0"
"""prometheus-community elasticsearch_exporter: cluster health for the Elasticsearch alerts."""
LOGSTASH = f"docker.elastic.co/logstash/logstash:{ELASTIC_VERSION}"
LOGSTASH_EXPORTER = "ghcr.io/kuskoman/logstash-exporter:v1.9.1"
"""kuskoman/logstash-exporter (v1, the maintained stable line): Logstash's node stats, per
plugin id, for the log alerts (components/logging_alerts.py)."""
KIBANA = f"docker.elastic.co/kibana/kibana:{ELASTIC_VERSION}"
FILEBEAT = f"docker.elastic.co/beats/filebeat:{ELASTIC_VERSION}"
"""Seed 000 pins 8.11.0 for all four; the same 8.x line, patched."""
