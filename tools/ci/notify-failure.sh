#!/usr/bin/env bash
# Tell people a deploy failed (deploy.yml runs this when a step of a stack's job failed:
# `pulumi up` or the smoke check). Posts {"text": "..."} to $NOTIFY_WEBHOOK_URL, the shape a
# Slack incoming webhook (and most chat webhooks) accept. Without a webhook configured it only
# says so: the failed job itself is the notification GitHub sends.
#   env: NOTIFY_WEBHOOK_URL (optional secret), STACK, RUN_URL
set -euo pipefail

: "${STACK:?stack name}"
: "${RUN_URL:?link to the workflow run}"
if [ -z "${NOTIFY_WEBHOOK_URL:-}" ]; then
  echo "NOTIFY_WEBHOOK_URL is not set: no chat notification (the failed run is the signal)"
  exit 0
fi
text="new-api deploy of stack ${STACK} failed (pulumi up or the smoke check): ${RUN_URL}"
jq -cn --arg t "$text" '{text: $t}' |
  curl -sS --fail --max-time 15 -X POST -H 'Content-Type: application/json' --data-binary @- \
    "$NOTIFY_WEBHOOK_URL" -o /dev/null
echo "notified the webhook"
