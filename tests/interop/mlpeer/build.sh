#!/usr/bin/env bash
# Build mlpeer against both pinned memberlist versions:
#   build.sh OUTDIR   ->  OUTDIR/mlpeer-v0.7.0  (go.mod)
#                         OUTDIR/mlpeer-v0.5.0  (go.v050.mod)
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
if ! command -v go >/dev/null 2>&1; then
    echo "mlpeer build: 'go' not found in PATH; the Go interop peer needs a Go toolchain (https://go.dev/dl/)" >&2
    exit 1
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
cd "$here"

build() { # modfile binary-name [go build flags]
    if ! go build -modfile="$1" "${@:3}" -o "$out/$2" .; then
        echo "mlpeer build: building $2 with $1 failed" >&2
        exit 1
    fi
    echo "built $out/$2 ($("$out/$2" version))"
}

build go.mod mlpeer-v0.7.0
# Tag mlv050: no Alertmanager module in that build (its states layer, states.go, is left out).
build go.v050.mod mlpeer-v0.5.0 -tags mlv050
# Alertmanager's TLS transport under the bench (tag amtls): the anchor for `hearsay-bench broadcast --tls`.
if ! go build -modfile=go.mod -tags amtls -o "$out/mlpeer-amtls" .; then
    echo "mlpeer build: building mlpeer-amtls failed" >&2
    exit 1
fi
echo "built $out/mlpeer-amtls"
