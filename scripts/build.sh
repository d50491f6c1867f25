#!/bin/sh
# `npm run build`: the gateway in plain JavaScript (tsc) with its demo page and GraphiQL's assets
# compressed once, built beside dist/ and swapped in whole, so that a failed or concurrent build never
# leaves a running or starting gateway without its files.
set -e
cd "$(dirname "$0")/.."
next="dist.next.$$"
trap 'rm -rf "$next"' EXIT
tsc -p tsconfig.build.json --outDir "$next"
cp -R src/demo "$next/demo"
tsx scripts/build-graphiql.ts "$next"
rm -rf dist
mv "$next" dist
