#!/usr/bin/env bash
# Run Alertmanager's own silence-query benchmarks (silence/silence_bench_test.go) for a given
# release from the Go module proxy, on this machine, and print `<silences> <ns/op>` lines.
#
#   bench-silences.sh [VERSION] [BENCHTIME]     (defaults: v0.25.0, 1s)
#
# The module source is copied from the module cache into a scratch directory (nothing here is
# committed) and `go test -bench` runs there.
set -euo pipefail
version=${1:-v0.25.0}
benchtime=${2:-1s}
command -v go >/dev/null || { echo "bench-silences.sh: 'go' not found in PATH (make deps installs it)" >&2; exit 1; }
export GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -mod=mod"
dir=$(go mod download -json "github.com/prometheus/alertmanager@$version" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
scratch=$(mktemp -d)
trap 'chmod -R u+w "$scratch"; rm -rf "$scratch"' EXIT
cp -r "$dir" "$scratch/src"
chmod -R u+w "$scratch/src"
cd "$scratch/src"
# 0.25 names them Benchmark<N>SilencesQuery; later releases BenchmarkQuery/<N> silences.
go test -run '^$' -bench 'Benchmark[0-9]+SilencesQuery$|BenchmarkQuery$' -benchtime "$benchtime" ./silence/ 2>&1 |
  awk '/^Benchmark/ {
         n = $1; gsub(/[^0-9]/, " ", n); split(n, parts, " ");
         for (i = 1; i <= length(parts); i++) if (parts[i] != "") { count = parts[i]; break }
         for (i = 1; i <= NF; i++) if ($(i+1) == "ns/op") print count, $i
       }'
