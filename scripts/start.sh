#!/bin/sh
# `npm start`: builds dist/ when it is missing or older than a source, then
# replaces this shell with the gateway (exec), so signals reach it directly.
set -e
cd "$(dirname "$0")/.."
if [ ! -f dist/main.js ] || [ -n "$(find src package.json package-lock.json tsconfig.json tsconfig.build.json -newer dist/main.js | head -n 1)" ]; then
  echo "task-gateway: building dist/ (npm run build)" >&2
  if ! npm run --silent build >&2; then
    # A production install (npm ci --omit=dev) has no compiler: the dist/ it shipped with still runs.
    [ -f dist/main.js ] || exit 1
    echo "task-gateway: the build failed; starting the existing dist/" >&2
  fi
fi
exec node dist/main.js
