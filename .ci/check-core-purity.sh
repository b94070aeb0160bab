#!/usr/bin/env bash
# Proves the core-purity lint is live: a clock read planted in src/core must fail clippy, and
# the same read planted outside src/core must pass. Runs on a scratch copy of the crate.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export CARGO_TARGET_DIR="$root/target/purity"

plant() { # $1 = file to plant a clock read in; prints clippy's exit status
  rm -rf "$scratch/crate"
  mkdir -p "$scratch/crate"
  cp -r "$root/Cargo.toml" "$root/Cargo.lock" "$root/clippy.toml" "$root/src" "$root/benches" \
    "$scratch/crate/"
  printf '\n/// planted by check-core-purity\npub fn planted_clock() -> u128 { std::time::Instant::now().elapsed().as_nanos() }\n' >> "$scratch/crate/$1"
  (cd "$scratch/crate" && cargo clippy --quiet --lib -- -D warnings >"$scratch/out" 2>&1) && echo 0 || echo 1
}

if [ "$(plant src/core/mod.rs)" != 1 ] || ! grep -q "disallowed" "$scratch/out"; then
  cat "$scratch/out"
  echo "core purity: a clock read inside src/core was NOT rejected" >&2
  exit 1
fi
if [ "$(plant src/lib.rs)" != 0 ]; then
  cat "$scratch/out"
  echo "core purity: a clock read outside src/core was rejected (the ban leaked)" >&2
  exit 1
fi
echo "core purity: clock reads are rejected in src/core and allowed outside it"
