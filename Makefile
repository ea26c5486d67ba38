# Developer workflow. Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two installs into one .venv: the demo's (runtime, emulator, reports; no test or lint tools) and the
# developer's (every extra). Each is redone when pyproject.toml changes.
DEMO_STAMP := $(VENV)/.installed-demo
STAMP := $(VENV)/.installed-dev

# The emulator test drives the real AWS CLI: the system one, else one installed here
# (its own virtualenv, because awscli pins a botocore that aiobotocore may not accept).
AWS_CLI := $(shell command -v aws 2>/dev/null)
ifeq ($(AWS_CLI),)
AWS_CLI := $(VENV)/awscli/bin/aws
endif

.PHONY: install test lint demo bench clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[emulator,report]'
	touch $(DEMO_STAMP)

# The dev extras include the emulator's and the report's: the demo's install is then up to date too.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP) $(DEMO_STAMP)

$(VENV)/awscli/bin/aws:
	$(PYTHON) -m venv $(VENV)/awscli
	$(VENV)/awscli/bin/pip install --quiet awscli

test: $(STAMP) $(AWS_CLI)
	# Three workers on two cores: the tests wait on emulated job latency as much as they compute
	# (measured idle: 7.1 min with 1.7 cores busy; user+sys 12 min). The 15 slowest are listed
	# at the end; `-m "not e2e"` leaves out the CLI subprocess tests.
	AWS_CLI=$(AWS_CLI) $(BIN)/pytest -q -n 3 --durations=15

lint: $(STAMP)
	$(BIN)/ruff check collector tests tools $(wildcard bench)
	$(BIN)/ruff format --check collector tests tools $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/lint-imports
	# Every IAM policy file under deploy/ and docs/ (trust policies as trust policies).
	$(BIN)/python tools/policylint.py deploy docs
	$(BIN)/cfn-lint deploy/cloudformation/*.yaml
	# The docs site: a broken link, anchor or repository file fails the build.
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(VENV)/site

demo: $(DEMO_STAMP)
	$(BIN)/collector demo

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache

# --- collector report (issue 15) ---
.PHONY: report-screenshot bench-report
CHROMIUM ?= chromium
# Renders the HTML report of an emulated organisation's sweep in headless Chromium (Debian's
# `chromium` package) and REWRITES the tracked docs/report.png; the flags keep Chromium off
# the network.
report-screenshot: $(STAMP)
	$(BIN)/python tools/report_screenshot.py out/screenshot
	$(CHROMIUM) --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir=out/screenshot/chromium --hide-scrollbars --force-device-scale-factor=1 \
		--window-size=1400,1500 --screenshot=docs/report.png \
		file://$(CURDIR)/out/screenshot/report.html 2>out/screenshot/chromium.log

# `report unused` and `summary` on one million synthetic service rows (not part of `make test`).
bench-report: $(STAMP)
	$(BIN)/python -m bench.report_speed

# --- Container image: needs root and Debian's package mirror; not part of `make test` ---
IMAGE ?= localhost/collector:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE_BASE ?= localhost/collector-base:bookworm
IMAGE_TOOLS := buildah podman debootstrap runc

.PHONY: image image-test image-tools

image-tools:
	@missing=$$(for tool in $(IMAGE_TOOLS); do command -v $$tool >/dev/null || echo $$tool; done); \
	if [ -n "$$missing" ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

# A local debian:bookworm-slim equivalent (debootstrap), then buildah bud with chroot isolation.
image: image-tools
	deploy/image/base.sh $(IMAGE_BASE)
	deploy/image/build.sh $(IMAGE) $(IMAGE_BASE) $(PYTHON)

# The image against the emulator on loopback: uid 10001 into a mounted dir, read-only rootfs.
image-test: image $(STAMP)
	deploy/image/test.sh $(IMAGE) $(BIN)
