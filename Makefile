# risk: two commands on a fresh machine: `make demo` and `make test`.
# Each creates or refreshes the virtual environment itself.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RISK   := $(BIN)/risk
DATA   ?= data
DEMO_STUDENTS ?= 20000
DEMO_TERMS    ?= 6
# Ten weeks into the last synthetic term (2569-1, May–October 2026).
DEMO_AS_OF    ?= 2026-07-24
DEMO_LAST_TERM ?= 2569-1

.PHONY: setup demo test bench bench-quick bench-national lint serve clean help

help:
	@echo "make demo   - synthetic export -> risk term (validate, features, train, promote, score, alerts, report)"
	@echo "make test   - the test suite"
	@echo "make bench  - scale benchmarks (slow; figures beside their baselines); bench-quick, bench-national"
	@echo "make lint   - ruff"
	@echo "make setup  - create/refresh .venv from pyproject.toml"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

# synth, then the whole term's job: validate -> features -> train -> promote -> score -> alerts
# -> summaries -> report, with a step table at the end. Run it again: every step is reused.
# The export arrives term by term: earlier terms are validated into the store one at a time,
# then the newest term's job runs whole.
demo: setup
	$(RISK) synth --out $(DATA)/source --students $(DEMO_STUDENTS) --terms $(DEMO_TERMS) --seed 7 --last-term $(DEMO_LAST_TERM)
	$(RISK) split-export $(DATA)/source $(DATA)/exports
	@for export in $$(ls -d $(DATA)/exports/*/ | sort | grep -v "/$(DEMO_LAST_TERM)/"); do \
	  $(RISK) validate $$export $(DATA)/validated --demo --quiet || exit 1; done
	$(RISK) term --source $(DATA)/exports/$(DEMO_LAST_TERM) --as-of $(DEMO_AS_OF) --store $(DATA) --truth $(DATA)/source/truth.parquet --demo
	@echo "report: $(DATA)/report.html  scores: $(DATA)/scores.parquet  MLflow: $(DATA)/mlflow.db"

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/run.py

bench-quick: setup
	$(BIN)/python bench/run.py --quick

bench-national: setup
	$(BIN)/python bench/bench_national.py

lint: setup
	$(BIN)/ruff check risk tests bench

# The service on the demo's data (make demo first): validated folder, store data/risk.db, MLflow in data/.
serve: setup
	$(RISK) serve --data $(DATA)/validated --store sqlite:///$(abspath $(DATA))/risk.db --tracking-dir $(DATA) --demo

clean:
	rm -rf $(DATA) .pytest_cache .ruff_cache
