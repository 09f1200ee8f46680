# Escher Extend: the two commands a newcomer needs are `make demo` and `make test`.
CARGO ?= cargo
FIXTURES := tests/fixtures
BIN := target/debug/escher-provision

.PHONY: test fmt-check clippy unit demo bench fuzz schema expected help emulators-start emulators-stop package

help:
	@echo "make demo    normalize the bundled sample alerts and print the table"
	@echo "make test    format check, clippy (warnings are errors), all tests"
	@echo "make bench   normalizer throughput vs. a plain JSON parse; approvals decide and cold load"
	@echo "make fuzz    run the normalizer fuzz target (by hand; needs 'cargo install cargo-fuzz')"
	@echo "make schema  regenerate schemas/unified-event.schema.json from the Rust type"
	@echo "make package build the functions' zips for extend (cargo lambda, release; not part of make test)"

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

demo:
	$(CARGO) build -q -p escher-provision
	$(BIN) events normalize --dir $(FIXTURES)/aws --dir $(FIXTURES)/azure --dir $(FIXTURES)/gcp

emulators-start:
	bash tests/emulators.sh start

emulators-stop:
	bash tests/emulators.sh stop

# The approvals benchmark loads from moto S3, so the emulators run for its duration.
bench:
	$(CARGO) bench -p escher-core --bench normalize
	bash tests/emulators.sh start
	set -a && . ./.emulators/env && set +a && $(CARGO) bench -p escher-core --bench approvals; \
	  status=$$?; bash tests/emulators.sh stop; exit $$status

# Seeded with the bundled fixtures so the fuzzer starts inside every payload kind.
FUZZ_SECONDS ?= 300
fuzz:
	mkdir -p handlers/core/fuzz/corpus/normalize
	cp $(FIXTURES)/aws/*.json $(FIXTURES)/azure/*.json $(FIXTURES)/gcp/*.json handlers/core/fuzz/corpus/normalize/
	cd handlers/core && $(CARGO) fuzz run normalize --sanitizer none -- -max_total_time=$(FUZZ_SECONDS)

schema:
	UPDATE_SCHEMA=1 $(CARGO) test -p escher-core --test schema

expected:
	UPDATE_EXPECTED=1 $(CARGO) test -p escher-core --test golden

# The functions' zips `escher-provision extend` deploys: target/lambda/<binary>/bootstrap.zip.
# cargo-lambda (PyPI, brings zig) links against an old enough glibc for provided.al2023.
# LAMBDA_ARCH must match `[functions] architecture` in escher.toml (arm64 by default).
LAMBDA_ARCH ?= arm64
LAMBDA_BINS ?= escher-alert escher-scan
package:
	@[ -x .venv/bin/cargo-lambda ] || { python3 -m venv .venv && .venv/bin/pip install --quiet --disable-pip-version-check cargo-lambda; }
	@if [ "$(LAMBDA_ARCH)" = arm64 ]; then rustup target add aarch64-unknown-linux-gnu; fi
	for bin in $(LAMBDA_BINS); do \
	  PATH="$$PWD/.venv/bin:$$PATH" $(CARGO) lambda build --release --output-format zip \
	    $(if $(filter arm64,$(LAMBDA_ARCH)),--arm64,--x86-64) --bin $$bin || exit $$?; \
	done
