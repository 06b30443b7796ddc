# The two commands of the README: `make demo` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Debian packages the demo and the tests need (the tests start real sshd, rclone, PostgreSQL and moto servers)
DEBS   := python3-venv restic openssh-server openssh-client rclone poppler-utils postgresql libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core chromium

.PHONY: demo test lint unit integration bench setup system-deps clean

demo: setup
	$(BIN)/preuve demo --dir .demo

test: setup
	@bash scripts/run-tests.sh

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

unit: setup
	$(BIN)/python -m pytest tests/unit -q

# Small sizes, minutes not hours; the issues' full sizes are each script's defaults (see --help and README).
bench: setup
	$(BIN)/python bench/drill_overhead.py
	$(BIN)/python bench/listing_memory.py
	$(BIN)/python bench/attest_scale.py --clients 5
	$(BIN)/python bench/web_overview.py --clients 50 --requests 10

setup: system-deps $(VENV)/.installed

system-deps:
	@bash scripts/system-deps.sh $(DEBS)

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
