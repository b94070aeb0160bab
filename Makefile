# `make test` is the one command that checks everything (README, .ci/run).
# `make bench` runs the benchmark binary against an embedded loopback cluster.

CARGO ?= cargo
SIM_SEEDS ?= 200

.PHONY: test deps fmt clippy no-async purity unit sim bench

test: deps fmt clippy no-async purity unit sim

# What the tests need beyond a Rust toolchain. (Nothing yet: the interop suites that need
# redis-server, Alertmanager and Go install them here.)
deps:
	@command -v $(CARGO) >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }

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

# The simulator runs optimised: it executes millions of protocol steps per seed range.
sim:
	SIM_SEEDS=$(SIM_SEEDS) $(CARGO) test --locked --release --test simulator -- --nocapture

bench:
	$(CARGO) run --release --bin hearsay-bench
