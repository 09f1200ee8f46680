# Escher Extend: the two commands a newcomer needs are `make demo` and `make test`.
CARGO ?= cargo
FIXTURES := tests/fixtures
BIN := target/debug/escher-provision

.PHONY: test fmt-check clippy unit demo demo-normalize bench faults fuzz schema expected help emulators-start emulators-stop package package-azure report-preview

help:
	@echo "make demo    no AWS account needed: deploy into moto, handle a public-bucket alert, print the story, destroy"
	@echo "make demo-normalize  normalize the bundled sample alerts and print the table"
	@echo "make test    format check, clippy (warnings are errors), all tests"
	@echo "make bench   normalizer throughput vs. a plain JSON parse; approvals decide and cold load;"
	@echo "             the incident memory's look-up, load and fold at 100 000 incidents;"
	@echo "             the AWS alert handler's cold start and CPU per event (against moto), its peak"
	@echo "             memory once it answered and after each of three passes over the corpus"
	@echo "             the nightly scan of a 304-resource estate: our CPU vs waiting on the API, wall time;"
	@echo "             then of a 3 040-resource estate: findings exactly once, wall time, our CPU"
	@echo "             1 000 alerts delivered 3 times, 16 in flight: exactly-once checked, throughput, CPU"
	@echo "             the Azure and Google Cloud handlers' start, peak memory (first event, three"
	@echo "             passes over the corpus) and CPU per event (against the API stand-ins); their"
	@echo "             nightly scans of about 3 000 resources and 1 000 alerts each delivered 3 times"
	@echo "             (the functions' and the CLI's release builds, LTO, as deployed and installed)"
	@echo "             escher-provision events handle as a whole process (its release build, LTO):"
	@echo "             wall time and peak memory"
	@echo "make faults  the alert handler under faults: every step x every fault kind through a proxy"
	@echo "             in front of moto, redelivered until handled; then the Google Cloud service, its"
	@echo "             stores on fake-gcs-server and Google's APIs each behind a proxy; then the Azure"
	@echo "             handler, its stores on azurite, Resource Manager behind a proxy; prints events"
	@echo "             lost, double fixes and unaudited fixes (all must be 0)"
	@echo "make fuzz    run every fuzz target for FUZZ_SECONDS each (default 120), one after the other:"
	@echo "             alerts, Lambda and Functions payloads, Google Cloud requests, approvals, policies, report settings,"
	@echo "             escher.toml; prints each target's executions (by hand; 'cargo install cargo-fuzz')"
	@echo "make schema  regenerate schemas/unified-event.schema.json from the Rust type"
	@echo "make package build the functions' zips for extend (cargo lambda, release; not part of make test)"
	@echo "make package-azure  build and check the Azure Functions package (cargo zigbuild, glibc 2.31)"
	@echo "make report-preview  render the sample morning report to .report-preview/ (HTML, Markdown, JSON)"
	@echo "             and screenshot the HTML with headless chromium (report.png); prints the paths"

test: fmt-check clippy unit

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The store conformance suite runs against moto, azurite and fake-gcs-server on 127.0.0.1;
# they are installed on first use, started here and always stopped afterwards.
unit:
	bash tests/emulators.sh start
	set -a && . ./.emulators/env && set +a && $(CARGO) test --workspace; \
	  status=$$?; bash tests/emulators.sh stop; exit $$status

# The fault suites in full (make test runs a subset of each): every step of the alert
# pipeline under every fault kind, on AWS, Google Cloud, then Azure, with their tables printed.
faults:
	bash tests/emulators.sh start
	set -a && . ./.emulators/env && set +a && ESCHER_FAULTS=full $(CARGO) test -p escher-aws --test faults -- --nocapture \
	  && ESCHER_FAULTS=full $(CARGO) test -p escher-gcp --test faults -- --nocapture \
	  && ESCHER_FAULTS=full $(CARGO) test -p escher-azure --test faults -- --nocapture; \
	  status=$$?; bash tests/emulators.sh stop; exit $$status

# One debug build of every binary (the CLI and the functions), moto only, the functions
# zipped from that build (moto never runs them); DEMO_ARTIFACTS=DIR deploys DIR/alert.zip
# and DIR/scan.zip instead. Each phase prints its time.
demo:
	bash tests/demo.sh

# `--workspace --bins` everywhere: the same features as `make test` and the demo, so the
# crates are compiled once for all of them.
demo-normalize:
	$(CARGO) build --workspace --bins
	$(BIN) events normalize --dir $(FIXTURES)/aws --dir $(FIXTURES)/azure --dir $(FIXTURES)/gcp

# The sample report of escher-scan's tests (a finding in every section; no cloud needed),
# rendered and screenshot by headless chromium (apt-get install chromium).
REPORT_PREVIEW_DIR ?= .report-preview
report-preview:
	$(CARGO) run -q -p escher-scan --example report_preview -- $(REPORT_PREVIEW_DIR)

emulators-start:
	bash tests/emulators.sh start

emulators-stop:
	bash tests/emulators.sh stop

# The approvals, handler, scan and load benchmarks run against moto, azurite and
# fake-gcs-server, so the emulators run for their duration. The benchmarks build with the release-no-lto profile (release without the
# whole-program link). What users run is measured on the release builds: the handler benches
# spawn the functions' release binaries (ESCHER_BENCH_BIN_DIR), as the clouds run them, and
# the events handle bench runs the CLI's (ESCHER_BENCH_CLI).
BENCH := $(CARGO) bench --profile release-no-lto
RELEASE_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/release
bench:
	$(BENCH) -p escher-core --bench normalize
	$(BENCH) -p escher-core --bench incidents
	$(CARGO) build --release --bin escher-provision --bin escher-alert \
	  --bin escher-azure-functions --bin escher-gcp-service
	bash tests/emulators.sh start
	set -a && . ./.emulators/env && set +a && export ESCHER_BENCH_BIN_DIR=$(RELEASE_DIR) \
	  && $(BENCH) -p escher-core --bench approvals \
	  && $(BENCH) -p escher-aws --bench handler \
	  && $(BENCH) -p escher-aws --bench scan \
	  && $(BENCH) -p escher-aws --bench load \
	  && $(BENCH) -p escher-azure --bench handler \
	  && $(BENCH) -p escher-azure --bench scan \
	  && $(BENCH) -p escher-azure --bench load \
	  && $(BENCH) -p escher-gcp --bench handler \
	  && $(BENCH) -p escher-gcp --bench scan \
	  && $(BENCH) -p escher-gcp --bench load \
	  && ESCHER_BENCH_CLI=$(RELEASE_DIR)/escher-provision $(BENCH) -p escher-provision --bench events_handle; \
	  status=$$?; bash tests/emulators.sh stop; exit $$status

# Every target (tests/fuzz.sh lists them), each seeded at run time from the repository's own
# samples so the fuzzer starts inside every input kind. FUZZ_RUNS=N stops each after N
# executions instead; FUZZ_TARGETS="a b" runs a subset.
FUZZ_SECONDS ?= 120
fuzz:
	CARGO="$(CARGO)" FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz.sh

schema:
	UPDATE_SCHEMA=1 $(CARGO) test -p escher-core --test schema

expected:
	UPDATE_EXPECTED=1 $(CARGO) test -p escher-core --test golden

# The functions' zips `escher-provision extend` deploys: target/lambda/<binary>/bootstrap.zip.
# `escher-provision package` holds the cargo lambda command (extend runs the same when a zip
# is missing or stale): cargo-lambda from PyPI (brings zig, installed into .venv on first
# use) links against an old enough glibc, and each bootstrap is checked against
# provided.al2023's glibc 2.34. LAMBDA_ARCH (arm64 | x86_64) defaults to escher.toml
# `[aws.functions] architecture`, else arm64.
LAMBDA_ARCH ?=
LAMBDA_BINS ?= escher-alert escher-scan
package:
	$(CARGO) build --workspace --bins
	$(BIN) package $(if $(LAMBDA_ARCH),--arch $(LAMBDA_ARCH)) $(foreach bin,$(LAMBDA_BINS),--bin $(bin))

# The Azure Functions package `extend --cloud azure` publishes: target/azure/azure-functions.zip
# (host.json, the function folders, the custom handler). cargo-zigbuild and zig come from PyPI
# into .venv on first use and link the handler against glibc 2.31, the Functions workers'
# (Debian bullseye); the package is checked against that ceiling. CI runs this.
package-azure:
	$(CARGO) build -p escher-provision
	$(BIN) package --cloud azure
