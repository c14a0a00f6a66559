#!/usr/bin/env bash
# Fetch the chart libraries' UMD builds from npm into this folder.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
(cd "$tmp" && npm pack -q vega@5 vega-lite@5 vega-embed@6 >/dev/null)
for pkg in vega vega-lite vega-embed; do
  mkdir -p "$tmp/$pkg" && tar xzf "$tmp/$pkg"-[0-9]*.tgz -C "$tmp/$pkg"
  cp "$tmp/$pkg/package/build/$pkg.min.js" .
done
rm -rf "$tmp"
