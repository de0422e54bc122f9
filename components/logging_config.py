"""Elasticsearch, Logstash, Filebeat configuration and the Elasticsearch setup as code.

Pure functions: the ``Logging`` component writes exactly their output into ConfigMaps.
The tests read the rendered pipeline with Logstash's string rules (``config.support_escapes``
as ``logstash.yml`` sets it), compile its grok patterns with Ruby's regex engine and run its
``ruby`` code with Ruby, on New API's real log lines (NEWAPI-CONTRACT.md §5).

New API logs plain text, not JSON (seed notes §4 #29, §5.7 #52, #55):

    [GIN] 2006/01/02 - 15:04:05 | <route_tag> | <request-id> | %3d | %13v | %15s | %7s <path>
    [INFO] 2006/01/02 - 15:04:05 | <request-id or SYSTEM> | message      (also WARN, ERR, DEBUG)
    [SYS] 2006/01/02 - 15:04:05 | message
    [FATAL] 2006/01/02 - 15:04:05 | [message]

Status, latency, client IP and method are right-aligned (``%3d``, ``%13v``, ``%15s``,
``%7s``), so the separators carry a variable run of spaces. Timestamps have no offset;
the app runs with ``TZ=UTC`` and the date filter says so. Only lines that start with
``{`` go through the seed's ``json`` filter.
"""

from __future__ import annotations

import json
from typing import Optional

from . import entry as entry_mod
from . import entry_metrics as em
from . import logging_alerts as la
from .monitoring_config import ES_EXPORTER_PORT, dump

LOG_INDEX_PREFIX = "new-api-logs"
LOG_INDEX = LOG_INDEX_PREFIX + "-%{+YYYY.MM.dd}"
ILM_POLICY = "new-api-logs"
BEATS_PORT = 5044
LOGSTASH_API_PORT = 9600
ES_HTTP_PORT = 9200
ES_TRANSPORT_PORT = 9300
KIBANA_PORT = 5601
FILEBEAT_HTTP_PORT = 5066
#: Filebeat's ``service`` of the Gateway's proxies' access-log lines (docs/relay-ttfb-gateway.md).
PROXY_ACCESS_SERVICE = "envoy-access-log"

WRITER_USER = "logstash_writer"
READER_USER = "new_api_logs_reader"
WRITER_ROLE = "new_api_logs_writer"
READER_ROLE = "new_api_logs_reader"
#: The exporter's user: cluster health and index stats, no document access.
MONITOR_USER = "new_api_monitor"
MONITOR_ROLE = "new_api_monitor"
#: Kibana's own connection to Elasticsearch: a dedicated user with the built-in
#: ``kibana_system`` role (never the ``elastic`` superuser).
KIBANA_USER = "new_api_kibana"
#: The kibana-setup Job's login: Kibana's built-in ``kibana_admin`` role (data views and
#: saved objects), no Elasticsearch superuser.
KIBANA_SETUP_USER = "new_api_kibana_setup"
#: The human login to Kibana: read the log indices, use Discover, dashboards and
#: visualizations (no management, no other index).
VIEWER_USER = "new_api_logs_viewer"
VIEWER_ROLE = "new_api_logs_kibana_viewer"

#: Every Elasticsearch user the setup Job maintains: user -> (roles, environment variable
#: of its password, key of that password in the ``elasticsearch-credentials`` Secret).
#: ``elastic`` is not among them: its password is the bootstrap password from the
#: Elasticsearch pods' environment, never stored through the API (see ``Logging``).
USERS = {
    WRITER_USER: ((WRITER_ROLE,), "WRITER_PASSWORD", "writer-password"),
    READER_USER: ((READER_ROLE,), "READER_PASSWORD", "reader-password"),
    MONITOR_USER: ((MONITOR_ROLE,), "MONITOR_PASSWORD", "monitor-password"),
    KIBANA_USER: (("kibana_system",), "KIBANA_PASSWORD", "kibana-password"),
    KIBANA_SETUP_USER: (("kibana_admin",), "KIBANA_SETUP_PASSWORD", "kibana-setup-password"),
    VIEWER_USER: ((READER_ROLE, VIEWER_ROLE), "VIEWER_PASSWORD", "viewer-password"),
}

#: Custom grok patterns (also handed to Logstash as ``pattern_definitions``).
PATTERN_DEFINITIONS = {
    "NEWAPI_TS": r"%{YEAR}/%{MONTHNUM}/%{MONTHDAY} - %{TIME}",
    "GO_DURATION": r"(?:[0-9]+(?:\.[0-9]+)?(?:h|ms|µs|us|ns|m|s))+",
}

#: One pattern per line kind, tried in order.
GROK_PATTERNS = [
    # [GIN] access log: spaces before right-aligned fields; request id may be empty.
    r"^\[GIN\] %{NEWAPI_TS:timestamp} \| %{DATA:route_tag} \| %{DATA:request_id} \| +%{INT:status} \| "
    r"+%{GO_DURATION:latency} \| +%{DATA:client_ip} \| +%{WORD:method} %{GREEDYDATA:path}$",
    # [INFO]/[WARN]/[ERR]/[DEBUG] application log with request id (or SYSTEM).
    r"^\[(?<level>INFO|WARN|ERR|DEBUG)\] %{NEWAPI_TS:timestamp} \| %{DATA:request_id} \| "
    r"%{GREEDYDATA:log_message}$",
    # [SYS]/[FATAL] system log.
    r"^\[(?<level>SYS|FATAL)\] %{NEWAPI_TS:timestamp} \| %{GREEDYDATA:log_message}$",
]

#: Go duration -> milliseconds (the Ruby filter below and the tests use these).
DURATION_REGEX = r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)"
DURATION_UNITS_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}

#: First line of an event: New API's own prefixes (Filebeat multiline; seed 000's
#: ``^\d{4}-\d{2}-\d{2}`` never matches New API's lines and glued everything together).
MULTILINE_PATTERN = r"^\[(SYS|INFO|WARN|ERR|DEBUG|FATAL|GIN)[\]-]"

#: Query parameters that carry a credential on a request New API logs (the ``[GIN]`` line
#: has the path with its query string): ``key`` (the relay key on Gemini-compatible
#: routes, ``middleware/auth.go`` ``TokenAuth``: ``c.Query("key")``), ``code`` (WeChat and
#: OAuth login callbacks), and the usual names of tokens and keys other clients send.
SECRET_QUERY_PARAMS = ("key", "api_key", "apikey", "api-key", "token", "access_token", "code",
                       "secret", "password")
#: Masks applied to ``message`` (and ``[event][original]``) before any other filter, so
#: no index, field or fingerprint ever sees a credential: Ruby regexes (mutate's gsub runs
#: ``value.gsub(Regexp.new(needle), replacement)``), case-insensitive.
MASKS = [
    ("(?i)([?&](?:" + "|".join(SECRET_QUERY_PARAMS) + ")=)[^&#\\s]+",
     "\\1[masked]"),
    # New API's own keys (``sk-`` + 48 alphanumerics) wherever they appear in a line.
    ("\\bsk-[A-Za-z0-9]{16,}", "sk-[masked]"),
]
MASKED_FIELDS = ("message", "[event][original]")

LEVELS = {"err": "error", "sys": "info", "fatal": "fatal", "warn": "warn", "info": "info", "debug": "debug"}


def _ruby_duration() -> str:
    units = ", ".join(f'"{k}" => {v!r}' for k, v in DURATION_UNITS_MS.items())
    return (f"units = {{ {units} }}; d = event.get('latency'); "
            f"if d then ms = 0.0; d.scan(/{DURATION_REGEX}/) {{ |n, u| ms += n.to_f * units[u] }}; "
            "event.set('latency_ms', ms.round(3)) end")


#: Logstash reads quoted strings as written unless ``config.support_escapes`` is true
#: (logstash-core ``environment.rb``: default false; ``compiler/lscl.rb`` ``String#expr``).
#: The pipeline sets it (``logstash_yml``) and every string that needs a backslash or a
#: quote is rendered by ``_lit`` for it: the one rule for the pipeline's strings.
SUPPORT_ESCAPES = True


def _lit(value: str) -> str:
    """A Logstash string literal for ``config.support_escapes: true``: double-quoted,
    ``\\`` and ``"`` escaped (``LogStash::Config::StringEscape.process_escapes`` turns
    them back into exactly ``value``)."""
    assert SUPPORT_ESCAPES, "the pipeline's literals are rendered for config.support_escapes: true"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _relay_counting(relay: "em.EnvoyGateway") -> str:
    """The Gateway's proxies' access-log lines (``entry.ACCESS_LOG_FORMAT``): the relay's
    time to first byte counted per version and bound, then the line is dropped.

    The time is ``response_duration`` (to the first upstream byte); a request that got none
    (upstream timeout or reset, client gone first) has ``null`` there and waited at least
    its whole ``duration``, which then stands in for it. Each count is a no-op ``mutate``
    with a fixed id (``EnvoyGateway.relay_counter_id``), reported by logstash-exporter as
    ``logstash_stats_pipeline_plugin_events_out{plugin_id}``, as the log alerts' counts are.
    Not indexed: New API's own ``[GIN]`` line already records each request. Each comparison
    is guarded by the field's presence: Logstash compiles ``[f] <= n`` to ``not(gt)``, whose
    number comparison raises on a missing field (logstash-core ``EventCondition.java``), and
    accepts only integer literals."""
    access, first = "[@metadata][access]", "[@metadata][first_byte_ms]"
    code = (f"a = event.get('{access}'); if a.is_a?(Hash) then "
            f"t = a['{entry_mod.ACCESS_LOG_FIRST_BYTE_MS}'] || a['{entry_mod.ACCESS_LOG_DURATION_MS}']; "
            f"event.set('{first}', t) if t.is_a?(Numeric) end")
    branches = []
    for version in relay.BACKENDS:
        regex = "^" + relay.cluster_regex(version, em.STREAMING_GROUPS).replace("/", "\\/") + "$"
        counts = [f'      mutate {{ id => "{relay.relay_counter_id(version, "+Inf")}" }}']
        for le in relay.RELAY_BOUNDS:
            ms = int(round(float(le) * 1000))
            counts.append(f'      if {first} and {first} <= {ms} {{\n'
                          f'        mutate {{ id => "{relay.relay_counter_id(version, le)}" }}\n      }}')
        keyword = "if" if not branches else "} else if"
        branches.append(f"    {keyword} {access}[{entry_mod.ACCESS_LOG_CLUSTER}] =~ /{regex}/ {{\n"
                        + "\n".join(counts))
    return f"""  if [service] == "{PROXY_ACCESS_SERVICE}" {{
    json {{
      source => "message"
      target => "{access}"
      tag_on_failure => ["_envoy_access_jsonfailure"]
    }}
    ruby {{
      code => {_lit(code)}
    }}
{chr(10).join(branches)}
    }}
    drop {{ }}
  }}
"""


def logstash_pipeline(environment: str, relay: Optional["em.EnvoyGateway"] = None) -> str:
    """The seed 000 pipeline (beats 5044 -> parse -> date -> cleanup -> daily index),
    rewritten for New API's plain-text lines. Credentials come from the environment
    (``${ES_USER}``/``${ES_PASSWORD}`` from a Secret). No ``stdout`` output (§5.7 #54).
    ``relay``: the Gateway API entry's metric source whose relay time to first byte this
    pipeline counts from the proxies' access log (:func:`_relay_counting`)."""
    patterns = "\n".join(f"          {_lit(p)}," for p in GROK_PATTERNS).rstrip(",")
    defs = "\n".join(f"        {_lit(k)} => {_lit(v)}" for k, v in PATTERN_DEFINITIONS.items())
    masks = ",\n".join(f"      {_lit(field)}, {_lit(needle)}, {_lit(replacement)}"
                       for field in MASKED_FIELDS for needle, replacement in MASKS)
    errors = " or ".join(f'[level] == "{level}"' for level in la.ERROR_LEVELS)
    level_map = "\n".join(
        f'    if [level] == "{k}" {{ mutate {{ replace => {{ "level" => "{v}" }} }} }}'
        for k, v in LEVELS.items() if k != v)
    return f"""input {{
  beats {{
    port => {BEATS_PORT}
  }}
}}

filter {{
  # Credentials never reach an index (issue 13 #5): masked before anything reads the line.
  mutate {{
    gsub => [
{masks}
    ]
  }}
  if [service] == "new-api" {{
    if [message] =~ /^\\{{/ {{
      json {{
        source => "message"
      }}
    }} else {{
      grok {{
        pattern_definitions => {{
{defs}
        }}
        match => {{
          "message" => [
{patterns}
          ]
        }}
        tag_on_failure => ["_newapi_grokfailure"]
      }}
      if [route_tag] {{
        mutate {{ add_field => {{ "log_type" => "access" "level" => "info" }} }}
      }} else if [timestamp] {{
        mutate {{ add_field => {{ "log_type" => "app" }} }}
      }}
    }}
    if [level] {{
      mutate {{ lowercase => ["level"] }}
    }}
{level_map}
    # Counted per line as parsed (logging_alerts: Logstash's plugin metrics by id feed
    # the log alerts through the exporter sidecar).
    if {errors} {{
      mutate {{ id => "{la.LOG_ERRORS_ID}" }}
    }}
    mutate {{ id => "{la.LOG_LINES_ID}" }}
    if [timestamp] {{
      date {{
        match => ["timestamp", "yyyy/MM/dd - HH:mm:ss"]
        timezone => "UTC"
        remove_field => ["timestamp"]
      }}
    }}
    if [latency] {{
      ruby {{
        code => {_lit(_ruby_duration())}
      }}
    }}
    if [log_message] {{
      mutate {{
        replace => {{ "message" => "%{{log_message}}" }}
      }}
    }}
    if [status] {{
      mutate {{ convert => {{ "status" => "integer" }} }}
    }}
    mutate {{
      remove_field => ["@version", "latency", "log_message"]
    }}
  }}
{_relay_counting(relay) if relay is not None else ""}  if [kubernetes][container][name] {{
    mutate {{
      add_field => {{ "container_name" => "%{{[kubernetes][container][name]}}" }}
    }}
  }}
  if ![environment] {{
    mutate {{ add_field => {{ "environment" => "{environment}" }} }}
  }}
  # Idempotent ids: a Filebeat restart (its registry is on an emptyDir) re-ships lines;
  # the same line at the same offset of the same file overwrites instead of duplicating.
  fingerprint {{
    source => ["[log][file][path]", "[log][offset]", "[event][original]", "message"]
    concatenate_sources => true
    method => "SHA256"
    target => "[@metadata][doc_id]"
  }}
}}

output {{
  elasticsearch {{
    hosts => ["${{ES_HOSTS}}"]
    user => "${{ES_USER}}"
    password => "${{ES_PASSWORD}}"
    index => "{LOG_INDEX}"
    document_id => "%{{[@metadata][doc_id]}}"
    manage_template => false
    ilm_enabled => false
  }}
}}
"""


def logstash_yml() -> str:
    return dump({
        "http.host": "0.0.0.0",
        # Quoted strings in the pipeline are escape-processed (see ``_lit``).
        "config.support_escapes": SUPPORT_ESCAPES,
        "api.http.port": LOGSTASH_API_PORT,
        "path.data": "/usr/share/logstash/data",
        "pipeline.ecs_compatibility": "disabled",
        "xpack.monitoring.enabled": False,
        "log.format": "plain",
    })


def pipelines_yml() -> str:
    return dump([{"pipeline.id": "new-api", "path.config": "/usr/share/logstash/pipeline/new-api.conf",
                  "pipeline.workers": 1, "queue.type": "memory"}])


def elasticsearch_yml(*, replicas: int, statefulset: str, headless: str, allow_mmap: bool,
                      snapshot_path: Optional[str] = None) -> str:
    """elasticsearch.yml: security on, transport TLS from cert-manager certificates,
    single-node discovery in dev, three master-eligible nodes in prod."""
    cfg: dict = {
        "cluster.name": "new-api-logs",
        "node.name": "${POD_NAME}",
        "network.host": "0.0.0.0",
        "http.port": ES_HTTP_PORT,
        "transport.port": ES_TRANSPORT_PORT,
        "path.data": "/usr/share/elasticsearch/data",
        "path.logs": "/usr/share/elasticsearch/logs",
        "node.store.allow_mmap": allow_mmap,
        "xpack.security.enabled": True,
        "xpack.security.enrollment.enabled": False,
        "xpack.security.transport.ssl.enabled": True,
        "xpack.security.transport.ssl.verification_mode": "certificate",
        "xpack.security.transport.ssl.key": "certs/tls.key",
        "xpack.security.transport.ssl.certificate": "certs/tls.crt",
        "xpack.security.transport.ssl.certificate_authorities": ["certs/ca.crt"],
        "xpack.security.http.ssl.enabled": False,
        "xpack.ml.enabled": False,
        "ingest.geoip.downloader.enabled": False,
    }
    if snapshot_path:
        cfg["path.repo"] = [snapshot_path]
    if replicas == 1:
        cfg["discovery.type"] = "single-node"
    else:
        cfg["discovery.seed_hosts"] = [headless]
        cfg["cluster.initial_master_nodes"] = [f"{statefulset}-{i}" for i in range(replicas)]
    return dump(cfg)


def ilm_policy(retention_days: int) -> dict:
    """Seed backup matrix: logs kept 180 days in prod; dev 7 (seed notes §4 #33, §5.7 #56).
    Daily indices without rollover: ``min_age`` counts from index creation."""
    phases: dict = {"hot": {"min_age": "0ms", "actions": {"set_priority": {"priority": 100}}}}
    if retention_days > 14:
        phases["warm"] = {"min_age": "7d", "actions": {"set_priority": {"priority": 50}, "readonly": {},
                                                       "forcemerge": {"max_num_segments": 1}}}
    phases["delete"] = {"min_age": f"{retention_days}d", "actions": {"delete": {}}}
    return {"policy": {"phases": phases, "_meta": {"managed_by": "pulumi", "project": "new-api"}}}


def index_template(replicas: int) -> dict:
    return {
        "index_patterns": [f"{LOG_INDEX_PREFIX}-*"],
        "priority": 200,
        "template": {
            "settings": {"index.lifecycle.name": ILM_POLICY, "number_of_shards": 1,
                         "number_of_replicas": 0 if replicas == 1 else 1},
            "mappings": {"properties": {
                "@timestamp": {"type": "date"},
                "level": {"type": "keyword"}, "log_type": {"type": "keyword"},
                "service": {"type": "keyword"}, "environment": {"type": "keyword"},
                "status": {"type": "integer"}, "latency_ms": {"type": "float"},
                "client_ip": {"type": "ip", "ignore_malformed": True},
                "method": {"type": "keyword"}, "path": {"type": "keyword", "ignore_above": 2048},
                "request_id": {"type": "keyword"}, "route_tag": {"type": "keyword"},
                "container_name": {"type": "keyword"},
                # message.keyword: Kibana's "Top error messages" table aggregates on it.
                "message": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}},
            }},
        },
        "_meta": {"managed_by": "pulumi"},
    }


def roles() -> dict:
    pattern = [f"{LOG_INDEX_PREFIX}-*"]
    return {
        WRITER_ROLE: {"cluster": ["monitor"],
                      "indices": [{"names": pattern, "privileges": ["create_doc", "create_index", "index",
                                                                    "view_index_metadata"]}]},
        READER_ROLE: {"indices": [{"names": pattern, "privileges": ["read", "view_index_metadata"]}]},
        # monitor_snapshot: the exporter's snapshot collector (repositories, snapshot list).
        MONITOR_ROLE: {"cluster": ["monitor", "monitor_snapshot"],
                       "indices": [{"names": pattern, "privileges": ["monitor"]}]},
        # Kibana feature privileges (application "kibana-.kibana", default space): read-only
        # Discover, Dashboard and Visualize; index access comes from READER_ROLE.
        VIEWER_ROLE: {"applications": [{"application": "kibana-.kibana", "resources": ["space:default"],
                                        "privileges": ["feature_discover.read", "feature_dashboard.read",
                                                       "feature_visualize.read"]}]},
    }


#: Where a filesystem snapshot repository lives inside the Elasticsearch pod (``path.repo``).
SNAPSHOT_PATH = "/usr/share/elasticsearch/snapshots"


def s3_repository(bucket: str, base_path: str) -> dict:
    """An S3 snapshot repository (credentials from IRSA, never static keys). No
    ``server_side_encryption``: ``true`` asks S3 for SSE-S3 (AES256) on every object and so
    overrides the bucket's default SSE-KMS (Elasticsearch S3 repository settings); left
    unset, objects get the bucket's customer-managed KMS key."""
    return {"type": "s3", "settings": {"bucket": bucket, "base_path": base_path.rstrip("/")}}


def fs_repository() -> dict:
    """A filesystem snapshot repository on the node's own volume (single-node clusters only:
    every node must see the same filesystem)."""
    return {"type": "fs", "settings": {"location": SNAPSHOT_PATH, "compress": True}}


def slm_policy(retention_days: int) -> dict:
    """Nightly snapshot of the log indices (SLM), kept ``retention_days``."""
    return {"schedule": "0 30 1 * * ?", "name": "<new-api-logs-{now/d}>", "repository": "backups",
            "config": {"indices": [f"{LOG_INDEX_PREFIX}-*"], "include_global_state": False},
            "retention": {"expire_after": f"{retention_days}d", "min_count": 3, "max_count": 100}}


#: The setup Job's script: idempotent PUTs (ILM policy, index template, roles, then every
#: user of ``USERS`` with its current password, optional snapshot repository + SLM). Bodies
#: are files from a ConfigMap; passwords come from the environment (Secrets) and are
#: alphanumeric. A changed password changes the Job's pod template (a keyed trigger), so
#: the Job is replaced and re-applies the users.
SETUP_SCRIPT = r"""
set -eu
auth="elastic:${ELASTIC_PASSWORD}"
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' -u "$auth" "$ES_URL/_cluster/health?wait_for_status=yellow&timeout=10s")" = 200 ]; do
  i=$((i+1)); [ "$i" -ge 60 ] && { echo "Elasticsearch not healthy at $ES_URL"; exit 1; }
  sleep 5
done
call() {
  method=$1; path=$2; body=$3
  code=$(curl -s -o /tmp/reply -w '%{http_code}' -u "$auth" -X "$method" -H 'Content-Type: application/json' \
    "$ES_URL/$path" --data-binary "$body")
  if [ "$code" -ge 300 ]; then echo "$method $path failed: $code $(cat /tmp/reply)"; exit 1; fi
  echo "$method $path: $code"
}
call PUT "_ilm/policy/$ILM_POLICY" @/setup/ilm-policy.json
call PUT "_index_template/$ILM_POLICY" @/setup/index-template.json
for role in /setup/role-*.json; do
  name=$(basename "$role" .json); name=${name#role-}
  call PUT "_security/role/$name" "@$role"
done
# users.tsv: user, roles (JSON array), name of the variable holding its password
while IFS="$(printf '\t')" read -r user roles variable; do
  password=$(printenv "$variable")
  call PUT "_security/user/$user" "{\"password\":\"$password\",\"roles\":$roles}"
done < /setup/users.tsv
if [ -f /setup/snapshot-repository.json ]; then
  call PUT "_snapshot/backups" @/setup/snapshot-repository.json
  call PUT "_slm/policy/nightly-snapshots" @/setup/slm-policy.json
  # A first snapshot now: proves the repository works and starts the staleness clock
  # (ElasticsearchSnapshotStale) on a new stack; a snapshot already running is fine.
  (call POST "_slm/policy/nightly-snapshots/_execute" "") || echo "first snapshot not started"
fi
echo "setup complete"
""".strip()


def setup_files(retention_days: int, replicas: int, repository: Optional[dict] = None,
                snapshot_retention_days: int = 30) -> dict[str, str]:
    files = {
        "setup.sh": SETUP_SCRIPT,
        "ilm-policy.json": json.dumps(ilm_policy(retention_days), indent=1, sort_keys=True),
        "index-template.json": json.dumps(index_template(replicas), indent=1, sort_keys=True),
        **{f"role-{name}.json": json.dumps(body, indent=1, sort_keys=True) for name, body in roles().items()},
        "users.tsv": "".join(f"{user}\t{json.dumps(list(r))}\t{variable}\n"
                             for user, (r, variable, _) in USERS.items()),
    }
    if repository:
        files["snapshot-repository.json"] = json.dumps(repository, indent=1, sort_keys=True)
        files["slm-policy.json"] = json.dumps(slm_policy(snapshot_retention_days), indent=1, sort_keys=True)
    return files


def _label(key: str) -> str:
    """A pod label as Filebeat's Kubernetes metadata names it: dots replaced by ``_``
    (autodiscover ``labels.dedot``, default true)."""
    return "kubernetes.labels." + key.replace(".", "_")


def filebeat_yml(*, app_namespace: str, app_name: str, environment: str, logstash_host: str,
                 proxies: Optional[dict] = None) -> str:
    """Filebeat with Kubernetes autodiscover (seed notes §5.7 #53: no ``log``/``docker``
    inputs, stdout via /var/log/containers), New API's multiline rule, output to Logstash.
    ``proxies`` (``namespace``, ``gateway_name``, ``gateway_namespace``): also the access
    log (stdout) of the envoy container of that Gateway's proxy pods, as
    :data:`PROXY_ACCESS_SERVICE` (docs/relay-ttfb-gateway.md)."""
    def template(condition: dict, fields: dict, multiline: bool, stream: str = "all") -> dict:
        parsers: list = [{"container": {"stream": stream, "format": "auto"}}]
        if multiline:
            parsers.append({"multiline": {"type": "pattern", "pattern": MULTILINE_PATTERN,
                                          "negate": True, "match": "after", "max_lines": 200, "timeout": "5s"}})
        return {"condition": condition, "config": [{
            "type": "filestream",
            "id": "container-${data.kubernetes.container.id}",
            "paths": ["/var/log/containers/*-${data.kubernetes.container.id}.log"],
            "prospector.scanner.symlinks": True,
            "parsers": parsers,
            "fields": fields, "fields_under_root": True,
            "ignore_older": "48h",
        }]}

    name = _label("app.kubernetes.io/name")
    is_app = {"and": [{"equals": {"kubernetes.namespace": app_namespace}},
                      {"equals": {name: app_name}}]}
    others = {"and": [{"equals": {"kubernetes.namespace": app_namespace}},
                      {"not": {"equals": {name: app_name}}}]}
    templates = [
        template(is_app, {"service": "new-api", "environment": environment}, multiline=True),
        template(others, {"service": "${data.kubernetes.labels.app_kubernetes_io/name}",
                          "environment": environment}, multiline=False),
    ]
    if proxies:
        is_proxy = {"and": [
            {"equals": {"kubernetes.namespace": proxies["namespace"]}},
            {"equals": {_label(entry_mod.OWNING_GATEWAY_NAME_LABEL): proxies["gateway_name"]}},
            {"equals": {_label(entry_mod.OWNING_GATEWAY_NAMESPACE_LABEL): proxies["gateway_namespace"]}},
            {"equals": {"kubernetes.container.name": entry_mod.ENVOY_CONTAINER}}]}
        # stdout only: the access log; Envoy's own log goes to stderr.
        templates.append(template(is_proxy, {"service": PROXY_ACCESS_SERVICE, "environment": environment},
                                  multiline=False, stream="stdout"))
    return dump({
        "filebeat.autodiscover": {"providers": [{
            "type": "kubernetes", "node": "${NODE_NAME}", "scope": "node",
            "add_resource_metadata": {"deployment": True},
            "templates": templates,
        }]},
        "processors": [{"add_host_metadata": {"when.not.contains.tags": "forwarded"}}],
        "output.logstash": {"hosts": [logstash_host], "loadbalance": True},
        "http": {"enabled": True, "host": "0.0.0.0", "port": FILEBEAT_HTTP_PORT},
        "path.data": "/usr/share/filebeat/data",
        "logging.level": "info",
        "logging.to_stderr": True,
        "logging.to_files": False,
    })
