#!/bin/sh
# `npm start`: builds dist/ when it is missing or older than a source, then
# replaces this shell with the gateway (exec), so signals reach it directly.
set -e
cd "$(dirname "$0")/.."
if [ ! -f dist/main.js ] || [ -n "$(find src package.json package-lock.json tsconfig.json tsconfig.build.json -newer dist/main.js | head -n 1)" ]; then
  echo "task-gateway: building dist/ (npm run build)" >&2
  npm run --silent build >&2
fi
exec node dist/main.js
