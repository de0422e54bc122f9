#!/usr/bin/env bash
# Smoke check after `pulumi up` (deploy.yml): is the deployed New API serving, and can it
# read its database?
#
#   1. GET  $SMOKE_URL/api/status until it answers {"success": true} with
#      data.version == $SMOKE_VERSION (bounded: $SMOKE_ATTEMPTS tries, $SMOKE_INTERVAL s
#      apart). /api/status is served from memory and never touches the database
#      (NEWAPI-CONTRACT.md §1), so it proves the new pods serve, not that the data tier works.
#   2. POST $SMOKE_URL/api/user/login with the root user the stack's bootstrap Job created
#      ($SMOKE_USERNAME / $SMOKE_PASSWORD): New API looks the user up in the users table and
#      checks the password hash (model.User.ValidateAndFill: DB.Where("username = ?")...First),
#      so {"success": true} needs a reachable, migrated database that holds that row.
#
# Every request sends `X-Canary: always`, which routes to the canary during an Argo Rollouts
# canary (components/delivery.py) and is ignored otherwise. The password is read from the
# environment and sent on stdin, never on a command line or in the output.
# Exit 0 when both checks pass, 1 otherwise (with a ::error:: annotation saying which).
set -euo pipefail

: "${SMOKE_URL:?base URL, e.g. https://api.example.net}"
: "${SMOKE_VERSION:?the version the deploy rolled out, e.g. v1.0.0-rc.25}"
: "${SMOKE_USERNAME:?the stack output adminUsername}"
: "${SMOKE_PASSWORD:?the stack output adminPassword}"
attempts="${SMOKE_ATTEMPTS:-30}"
interval="${SMOKE_INTERVAL:-10}"
timeout="${SMOKE_TIMEOUT:-10}"
base="${SMOKE_URL%/}"
body="$(mktemp)"
trap 'rm -f "$body"' EXIT

fail() {
  echo "::error title=smoke check::$*" >&2
  exit 1
}

# request METHOD PATH [curl args...]: writes the body to $body, prints the HTTP status
# (000 when the connection failed).
request() {
  local method="$1" path="$2"
  shift 2
  curl -sS --compressed --max-time "$timeout" -o "$body" -w '%{http_code}' \
    -H 'X-Canary: always' -X "$method" "$@" "$base$path" 2>/dev/null || true
}

seen="no answer"
for ((i = 1; i <= attempts; i++)); do
  code="$(request GET /api/status)"
  if [ "$code" = 200 ] && jq -e . "$body" >/dev/null 2>&1; then
    version="$(jq -r '.data.version // "none"' "$body")"
    if jq -e --arg v "$SMOKE_VERSION" '.success == true and .data.version == $v' "$body" >/dev/null; then
      echo "GET /api/status: success, version $version (attempt $i)"
      break
    fi
    seen="HTTP 200, success=$(jq -r '.success' "$body"), version $version"
  else
    seen="HTTP $code"
  fi
  echo "GET /api/status attempt $i/$attempts: $seen; want success with version $SMOKE_VERSION"
  if [ "$i" -eq "$attempts" ]; then
    fail "GET $base/api/status never answered success with version $SMOKE_VERSION after $attempts attempts (last: $seen)"
  fi
  sleep "$interval"
done

payload="$(jq -cn --arg u "$SMOKE_USERNAME" --arg p "$SMOKE_PASSWORD" '{username: $u, password: $p}')"
for ((i = 1; i <= 3; i++)); do
  code="$(printf '%s' "$payload" | request POST /api/user/login -H 'Content-Type: application/json' --data-binary @-)"
  if [ "$code" = 200 ] && jq -e '.success == true' "$body" >/dev/null 2>&1; then
    echo "POST /api/user/login: success (the database answered)"
    exit 0
  fi
  message="$(jq -r '.message // empty' "$body" 2>/dev/null || true)"
  echo "POST /api/user/login attempt $i/3: HTTP $code ${message:+($message)}"
  # Only a server-side error is worth retrying; a refused login will not change.
  case "$code" in 5* | 000) sleep "$interval" ;; *) break ;; esac
done
fail "POST $base/api/user/login as $SMOKE_USERNAME did not succeed (HTTP $code${message:+: $message}): New API could not read the user from its database, or the stack's admin password no longer matches"
