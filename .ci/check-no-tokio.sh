#!/usr/bin/env bash
# No async runtime anywhere in the normal or build dependency graph.
set -euo pipefail
for runtime in tokio async-std smol; do
  out=$(cargo tree -e normal,build -i "$runtime" 2>&1 || true)
  if grep -q "^$runtime v" <<<"$out"; then
    echo "$out"
    echo "no-async: $runtime is in the dependency tree" >&2
    exit 1
  fi
done
echo "no-async: no tokio, async-std or smol in the dependency tree"
