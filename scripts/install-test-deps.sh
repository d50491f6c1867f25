#!/usr/bin/env sh
# What the tests need beyond npm packages, from Debian's packages, installed only when missing:
# redis-server (replica tests) and chromium (browser tests; never a downloaded browser).
set -eu
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "task-gateway tests need:$missing (Debian: apt-get install -y$missing). Installing is left to you." >&2
  exit 0
fi
echo "installing test dependencies:$missing" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
