"""Kibana's objects for New API's logs, created by the kibana-setup Job (idempotent):
the ``new-api-logs-*`` data view and seed 000's dashboard with its three visualizations
(SEED-NOTES §2.27: ``new-api-logs-dashboard`` with ``log-level-distribution`` (pie),
``error-logs-timeline`` (histogram) and ``top-error-messages`` (data table); the seed
defined only the first, for Kibana 7.10, and referenced the index pattern by name
(§5.7 #57)). Here every object references the data view by id through ``references``
(Kibana's saved-object reference format) and reads fields the index template maps:
``level`` (keyword), ``@timestamp`` (date), ``message.keyword``.
"""

from __future__ import annotations

import json

from .images import ELASTIC_VERSION
from .logging_config import LOG_INDEX_PREFIX

DATA_VIEW_ID = "new-api-logs"
DASHBOARD_ID = "new-api-logs-dashboard"
#: What the error views count: New API's [ERR] and [FATAL] lines (lowercased by Logstash).
ERRORS_QUERY = {"query": "level:(error or fatal)", "language": "kuery"}
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def data_view() -> dict:
    """Body of ``POST /api/data_views/data_view``; ``override`` makes a re-run idempotent."""
    return {"data_view": {"id": DATA_VIEW_ID, "name": "New API logs", "title": f"{LOG_INDEX_PREFIX}-*",
                          "timeFieldName": "@timestamp"},
            "override": True}


def _search_source(query: dict) -> str:
    return json.dumps({"query": query, "filter": [], "indexRefName": INDEX_REF}, sort_keys=True)


def _visualization(title: str, vis_type: str, params: dict, aggs: list, query: dict) -> dict:
    """A legacy ``visualization`` saved object (``visState`` as Kibana stores it)."""
    vis_state = {"title": title, "type": vis_type, "params": params,
                 "aggs": [{"enabled": True, **agg} for agg in aggs]}
    return {"attributes": {"title": title, "description": "", "version": 1, "uiStateJSON": "{}",
                           "visState": json.dumps(vis_state, sort_keys=True),
                           "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(query)}},
            "references": [{"name": INDEX_REF, "type": "index-pattern", "id": DATA_VIEW_ID}]}


COUNT = {"id": "1", "type": "count", "schema": "metric", "params": {}}
ALL = {"query": "", "language": "kuery"}

#: id -> saved-object body of each visualization.
VISUALIZATIONS = {
    "log-level-distribution": _visualization(
        "Log level distribution", "pie",
        {"type": "pie", "addTooltip": True, "addLegend": True, "legendPosition": "right", "isDonut": True},
        [COUNT, {"id": "2", "type": "terms", "schema": "segment",
                 "params": {"field": "level", "size": 10, "order": "desc", "orderBy": "1"}}],
        ALL),
    "error-logs-timeline": _visualization(
        "Error logs over time", "histogram",
        {"type": "histogram", "addTooltip": True, "addLegend": False, "legendPosition": "right"},
        [COUNT, {"id": "2", "type": "date_histogram", "schema": "segment",
                 "params": {"field": "@timestamp", "interval": "auto", "min_doc_count": 1,
                            "extended_bounds": {}}}],
        ERRORS_QUERY),
    "top-error-messages": _visualization(
        "Top error messages", "table",
        {"perPage": 10, "showPartialRows": False, "showMetricsAtAllLevels": False, "showTotal": False},
        [COUNT, {"id": "2", "type": "terms", "schema": "bucket",
                 "params": {"field": "message.keyword", "size": 20, "order": "desc", "orderBy": "1"}}],
        ERRORS_QUERY),
}

#: Seed grid: pie x0 y0 w24 h15, histogram x24 y0 w24 h15, table x0 y15 w48 h15.
GRID = {"log-level-distribution": (0, 0, 24, 15), "error-logs-timeline": (24, 0, 24, 15),
        "top-error-messages": (0, 15, 48, 15)}


def dashboard() -> dict:
    panels, refs = [], []
    for i, (vis_id, (x, y, w, h)) in enumerate(GRID.items()):
        panels.append({"panelIndex": str(i + 1), "gridData": {"x": x, "y": y, "w": w, "h": h, "i": str(i + 1)},
                       "embeddableConfig": {}, "panelRefName": f"panel_{i}", "version": ELASTIC_VERSION})
        refs.append({"name": f"panel_{i}", "type": "visualization", "id": vis_id})
    return {"attributes": {"title": "New API logs", "description": "New API application log analysis",
                           "timeRestore": False, "version": 1, "panelsJSON": json.dumps(panels, sort_keys=True),
                           "optionsJSON": json.dumps({"useMargins": True, "hidePanelTitles": False}),
                           "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(
                               {"query": ALL, "filter": []}, sort_keys=True)}},
            "references": refs}


def saved_objects() -> dict[str, str]:
    """Files of the kibana-setup ConfigMap: ``<type>.<id>.json`` -> body of
    ``POST /api/saved_objects/<type>/<id>?overwrite=true`` (a re-run overwrites)."""
    files = {f"visualization.{vid}.json": json.dumps(body, indent=1, sort_keys=True)
             for vid, body in VISUALIZATIONS.items()}
    files[f"dashboard.{DASHBOARD_ID}.json"] = json.dumps(dashboard(), indent=1, sort_keys=True)
    return files


#: The kibana-setup Job's script: waits for Kibana, creates or overwrites the data view,
#: then every saved object of $OBJECTS_DIR (visualizations before the dashboard).
KIBANA_SETUP_SCRIPT = r"""
set -eu
auth="${KIBANA_SETUP_USER}:${KIBANA_SETUP_PASSWORD}"
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' -u "$auth" "$KIBANA_URL/api/status")" = 200 ]; do
  i=$((i+1)); [ "$i" -ge 60 ] && { echo "Kibana not available at $KIBANA_URL"; exit 1; }
  sleep 5
done
post() {
  code=$(curl -s -o /tmp/reply -w '%{http_code}' -u "$auth" -X POST -H 'kbn-xsrf: true' \
    -H 'Content-Type: application/json' "$KIBANA_URL/$1" --data-binary "$2")
  if [ "$code" -ge 300 ]; then echo "$3 failed: $code $(cat /tmp/reply)"; exit 1; fi
}
post api/data_views/data_view "$DATA_VIEW" "data view"
echo "data view $DATA_VIEW_ID ready"
for kind in visualization dashboard; do
  for object in "$OBJECTS_DIR/$kind".*.json; do
    [ -e "$object" ] || continue
    id=$(basename "$object" .json); id=${id#"$kind".}
    post "api/saved_objects/$kind/$id?overwrite=true" "@$object" "$kind $id"
    echo "$kind $id ready"
  done
done
""".strip()
