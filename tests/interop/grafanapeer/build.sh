#!/usr/bin/env bash
# Build the Grafana-layout Redis peer: build.sh OUTDIR -> OUTDIR/grafanapeer
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
if ! command -v go >/dev/null 2>&1; then
    echo "grafanapeer build: 'go' not found in PATH; the Go Redis peer needs a Go toolchain (https://go.dev/dl/)" >&2
    exit 1
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
cd "$here"
if ! go build -o "$out/grafanapeer" .; then
    echo "grafanapeer build: go build failed" >&2
    exit 1
fi
echo "built $out/grafanapeer"
