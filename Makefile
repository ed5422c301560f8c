# Stable entry points: make setup | demo | test | bench  (see README.md)
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(ROOT)/.venv
NEXTFLOW := $(ROOT)/.tools/bin/nextflow
export PATH := $(VENV)/bin:$(ROOT)/.tools/bin:$(PATH)
export NXF_OFFLINE := true
# nf-core tools (make setup-nfcore) work offline: no check for a newer release, no progress bars
export NFCORE_NO_VERSION_CHECK := 1
export HIDE_PROGRESS := 1
DEMO_OUT ?= $(ROOT)/demo_results
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: setup setup-python setup-nextflow setup-browser setup-nfcore demo test test-fast lint bench lock clean

setup: setup-python setup-nextflow ## venv + pinned Nextflow (idempotent)

setup-python:
	bash scripts/setup_python.sh

setup-nextflow:
	bash scripts/install_nextflow.sh

setup-browser: ## headless Chromium for the report's browser test (Debian packages)
	bash scripts/setup_browser.sh

setup-nfcore: ## nf-core/tools (pinned) in its own venv .tools/nf-core-venv, for the nf-core lints in make test
	bash scripts/setup_nfcore.sh

demo: setup ## run the whole pipeline on simulated data into ./demo_results
	cd $(ROOT)
	$(NEXTFLOW) run . -profile test -resume --outdir $(DEMO_OUT)
	echo "demo: results in $(DEMO_OUT); open the report: $(DEMO_OUT)/report/report.html"

test: setup setup-browser setup-nfcore ## every test: Python units, real data, real Nextflow runs, the report in a browser, nf-core lints
	cd $(ROOT)
	$(VENV)/bin/ruff check python tests benchmarks
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-fast: setup-python
	$(VENV)/bin/python -m pytest -m "not pipeline and not slow" $(PYTEST_ARGS)

lint:
	$(VENV)/bin/ruff check python tests benchmarks

bench: setup ## benchmarks (not tests): results in benchmarks/results/
	$(VENV)/bin/python benchmarks/run_all.py $(BENCH_ARGS)

lock: ## re-resolve requirements.lock from pyproject.toml
	d=$$(mktemp -d); python3 -m venv $$d; $$d/bin/pip install -q -e '.[dev]'; \
	{ echo '# Exact pins for the scfan environment (Python 3.11, Linux x86_64). Regenerate with: make lock'; \
	  $$d/bin/pip freeze --exclude-editable | grep -v '^scfan'; } > requirements.lock; rm -rf $$d

clean:
	rm -rf work .nextflow .nextflow.log* $(DEMO_OUT)
