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
FIELD_PROFILE := configs/profiles/field.yaml
# Ten weeks into the last synthetic term (2569-1, May–October 2026).
DEMO_AS_OF    ?= 2026-07-24
DEMO_LAST_TERM ?= 2569-1

.PHONY: setup demo demo-pilot test test-fast test-spark test-db test-java bench bench-quick bench-national lint serve clean help

help:
	@echo "make demo-pilot - a randomised wait-list pilot on the synthetic world, then risk impact (data/pilot)"
	@echo "make demo   - synthetic export -> risk term (validate, features, train, promote, score, alerts, report)"
	@echo "make test   - the test suite (test-db: creates PostgreSQL database test when missing)"
	@echo "make test-spark - the Spark parity tests (local mode; installs Java from Debian if missing)"
	@echo "make test-fast - the tests not marked slow (no world, browser, notebook or PostgreSQL), under 2 minutes"
	@echo "make bench  - scale benchmarks (slow; figures beside their baselines); bench-quick, bench-national"
	@echo "make lint   - ruff"
	@echo "make setup  - create/refresh .venv from pyproject.toml"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	@touch $(STAMP)

setup: $(STAMP)

# synth, then the whole term's job: validate -> features -> train -> promote -> score -> alerts
# -> summaries -> report, with a step table at the end. Run it again: every step is reused.
# Last, the reasons a teacher reads are audited against the children's own feature values
# (risk audit-reasons: no protected or context reason, none below its grade, one per fact).
# The export arrives term by term, the way schools send it (Excel, cp874 CSV with Thai headers,
# Buddhist-Era day-first dates; read through configs/profiles/field.yaml): earlier terms are
# validated into the store one after the other (one command, oldest first), then the newest
# term's job runs whole.
# OMP_WAIT_POLICY=PASSIVE: LightGBM's OpenMP threads sleep at a barrier instead of spinning. On a
# shared 2-core host (load 11) 100 rounds of the demo's booster took 34 s wall, 13.5 s CPU with
# spinning threads and 2.0 s wall, 1.9 s CPU without.
demo: export OMP_WAIT_POLICY ?= PASSIVE
demo: setup
	$(RISK) synth --out $(DATA)/source --students $(DEMO_STUDENTS) --terms $(DEMO_TERMS) --seed 7 --last-term $(DEMO_LAST_TERM)
	$(RISK) split-export $(DATA)/source $(DATA)/exports --style field
	$(RISK) inspect $(DATA)/exports/$(DEMO_LAST_TERM) --profile $(FIELD_PROFILE) > $(DATA)/inspect.txt
	$(RISK) validate $$(ls -d $(DATA)/exports/*/ | sort | grep -v "/$(DEMO_LAST_TERM)/") $(DATA)/validated \
	  --profile $(FIELD_PROFILE) --demo --quiet
	$(RISK) term --source $(DATA)/exports/$(DEMO_LAST_TERM) --profile $(FIELD_PROFILE) --as-of $(DEMO_AS_OF) --store $(DATA) --truth $(DATA)/source/truth.parquet --demo
	$(RISK) features --as-of $(DEMO_AS_OF) --data $(DATA)/validated --out $(DATA)/features.parquet --quiet
	$(RISK) audit-reasons --data $(DATA)/validated --features $(DATA)/features.parquet
	@echo "report: $(DATA)/report.html  scores: $(DATA)/scores.parquet  MLflow: $(DATA)/mlflow.db"

# A randomised wait-list pilot on the synthetic world, in its own folder (PILOT_DATA): every term is
# validated, half the schools (by province and size) are drawn to the wait-list of the newest term
# before it is scored, the term runs, a teacher model acts on the alerts it was shown (home visits
# lowering dropout by 30%, learning support by 20%: the planted effects), the generator writes the
# next term's register, and risk impact estimates what the alerts and each action changed.
PILOT_DATA ?= data/pilot
PILOT_NEXT_TERM ?= 2569-2
demo-pilot: setup
	$(RISK) synth --out $(PILOT_DATA)/source --students $(DEMO_STUDENTS) --terms $(DEMO_TERMS) --seed 7 --last-term $(DEMO_LAST_TERM)
	$(RISK) split-export $(PILOT_DATA)/source $(PILOT_DATA)/exports
	@for export in $$(ls -d $(PILOT_DATA)/exports/*/ | sort); do \
	  $(RISK) validate $$export $(PILOT_DATA)/validated --demo --quiet || exit 1; done
	$(RISK) pilot plan --term $(DEMO_LAST_TERM) --share 0.5 --stratify province,size --seed 7 --data $(PILOT_DATA)/validated
	$(RISK) term --source $(PILOT_DATA)/exports/$(DEMO_LAST_TERM) --as-of $(DEMO_AS_OF) --store $(PILOT_DATA) --truth $(PILOT_DATA)/source/truth.parquet --demo
	$(RISK) synth --continue $(PILOT_DATA)/source --alerts-from $(PILOT_DATA)/risk.db --effect home_visit=-0.3,learning_support=-0.2 --out $(PILOT_DATA)/next --seed 3 --demo
	$(RISK) actions import $(PILOT_DATA)/next/actions.csv --store sqlite:///$(PILOT_DATA)/risk.db --demo
	$(RISK) split-export $(PILOT_DATA)/next $(PILOT_DATA)/next-exports --term $(DEMO_LAST_TERM) --term $(PILOT_NEXT_TERM)
	$(RISK) validate $(PILOT_DATA)/next-exports/$(PILOT_NEXT_TERM) $(PILOT_DATA)/validated --demo --quiet
	$(RISK) impact --term $(DEMO_LAST_TERM) --data $(PILOT_DATA)/validated
	$(RISK) report --data $(PILOT_DATA)/validated --out $(PILOT_DATA)/report.html
	@echo "pilot report: $(PILOT_DATA)/report.html  truth: $(PILOT_DATA)/next/truth.parquet"

# Two test processes, one per core; a test file stays on one (its module fixtures are built once), and the
# Spark test files share one (one JVM; tests/conftest.py). Spark's parity tests run here in local mode: every
# feature kind, every student's score and reasons, the store load. README's Spark lines are left to test-spark.
test: setup test-db test-java
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not spark_readme"

# Every Spark test (marker spark), README's Spark lines too (marker spark_readme: each line a new JVM).
test-spark: setup test-java
	$(BIN)/python -m pytest -n 2 --dist loadfile -m spark

# The quick loop: the tests not marked slow (tests/conftest.py marks them), no PostgreSQL needed.
test-fast: setup
	$(BIN)/python -m pytest -m "not slow" -n 2 --dist loadfile

# What the tests need outside Python: database `test` on the local PostgreSQL (127.0.0.1:5432,
# user postgres, trust auth), created when the server is up and the database is not. A server
# that is down is left to the tests, which say so (a failure under CI=true); one that is up
# but refuses us stops here. psycopg comes with the venv; psql may not be installed.
define CREATE_TEST_DB
import socket, sys
import psycopg
try:
    socket.create_connection(("127.0.0.1", 5432), timeout=3).close()
except OSError:
    print("PostgreSQL is not listening at 127.0.0.1:5432: its tests will skip (fail under CI=true)")
    sys.exit(0)
try:
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3",
                         autocommit=True) as con:
        if con.execute("SELECT 1 FROM pg_database WHERE datname = 'test'").fetchone() is None:
            con.execute("CREATE DATABASE test")
            print("created PostgreSQL database test at 127.0.0.1:5432")
except psycopg.Error as exc:
    sys.exit(f"cannot create PostgreSQL database test at 127.0.0.1:5432 as user postgres: {exc}")
endef
export CREATE_TEST_DB

# The Spark tests (local mode) need a Java runtime: Debian's, when the machine has none.
test-java:
	@command -v java >/dev/null || (apt-get update -qq && apt-get install -y -qq default-jre-headless)

test-db: setup
	@$(BIN)/python -c "$$CREATE_TEST_DB"

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
