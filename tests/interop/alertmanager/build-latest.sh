#!/usr/bin/env bash
# Build the latest Alertmanager release from the Go module proxy into $1/alertmanager-latest.
#
# The module zip lacks the web UI's built assets (ui/app/dist), which the binary embeds; a
# placeholder page stands in for them. Nothing here is committed: the source is copied from the
# module cache into a scratch directory and built there.
set -euo pipefail
out=${1:?usage: build-latest.sh OUTDIR}
mkdir -p "$out"
command -v go >/dev/null || { echo "build-latest.sh: 'go' not found in PATH (make deps installs it)" >&2; exit 1; }
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
if [ -x "$out/alertmanager-latest" ] && [ -f "$out/alertmanager-latest.version" ]; then
  exit 0
fi
read -r dir version < <(go mod download -json github.com/prometheus/alertmanager@latest |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["Dir"], d["Version"])')
scratch=$(mktemp -d)
trap 'chmod -R u+w "$scratch"; rm -rf "$scratch"' EXIT
cp -r "$dir" "$scratch/src"
chmod -R u+w "$scratch/src"
mkdir -p "$scratch/src/ui/app/dist"
echo '<!doctype html><title>Alertmanager</title>' > "$scratch/src/ui/app/dist/index.html"
(cd "$scratch/src" && go build -o "$out/alertmanager-latest" ./cmd/alertmanager)
echo "$version" > "$out/alertmanager-latest.version"
echo "built $out/alertmanager-latest ($version)"
