"""Shared fixtures: a tiny, hand-made source export that obeys the contract."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import pytest

from risk.data.ids import thai_check_digit

# Two test processes, each with LightGBM's two OpenMP threads (and DuckDB's, and a Spark JVM), on two cores:
# OpenMP threads that spin while they wait burn the core the other process needs; passive ones sleep.
# Set before any test loads OpenMP (nothing above does); make demo sets the same for its commands.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SCHOOL_A = "1040100001"
SCHOOL_B = "1030200002"
TERM = "2567-1"
# Five school days of school A and four of school B in the week of 3 June 2024.
DAYS_A = [dt.date(2024, 6, d) for d in (3, 4, 5, 6, 7)]
DAYS_B = [dt.date(2024, 6, d) for d in (3, 4, 5, 6)]


def thai_id(first12: str) -> str:
    return first12 + str(thai_check_digit(first12))


STUDENTS = [thai_id("110370012345"), thai_id("110370012346"), "G123456789012"]


# ---------------------------------------------------------------- no silent skip
# A test that needs something outside Python (the PostgreSQL server, Chromium, the shared PII
# scanner) says so through ``require``. On a developer's machine a missing part skips the test with
# one line on how to enable it (``-ra`` lists it); under CI=true, where .ci/run runs ``make test``
# and ``make test`` prepares every part, any skip is a failure: a green CI has run every test.
def in_ci() -> bool:
    """True under CI=true (or 1/yes), the environment .ci/run runs ``make test`` in."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(condition: bool, reason: str, how_to_enable: str) -> None:
    """Go on when ``condition`` holds; else skip with ``reason`` and ``how_to_enable`` (a failure under CI)."""
    if not condition:
        pytest.skip(f"{reason}; to run it: {how_to_enable}")


def _ci_failure(report):
    """``report`` turned from skipped into failed, its reason kept, when under CI; else as it was."""
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which fails the run: {reason}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    return _ci_failure((yield))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    return _ci_failure((yield))


# ---------------------------------------------------------------- the quick loop
# ``pytest -m "not slow"`` (``make test-fast``) must finish in under 2 minutes on 2 cores; ``make test``
# runs everything. Marks are set here, not in the test files: a test is slow when it needs a
# fixture that builds something big (the synthetic world, a trained champion, Chromium, the
# executed notebook, PostgreSQL), carries the ``browser`` or ``postgres`` mark, or sits in a module
# whose own setup is slow (measured with ``--durations``; each entry says what costs the time).
SLOW_FIXTURES = frozenset({
    "world", "champion_store", "champion",  # the session's synthetic world and the model trained on it
    "postgres", "chromium", "executed",     # a PostgreSQL database, the browser, the executed notebook
})
SLOW_MARKS = ("browser", "postgres")
SLOW_MODULES = frozenset({
    "test_incremental",  # synthetic exports validated term by term, the CLI on each
    "test_synth",        # generates and scans synthetic exports, clean and messy
    "test_synth_validate",    # online vs batch on a synthetic export; two validation workers
    "test_drift_calibrated",  # three dates of a generated population, scored
    "test_feature_leakage",   # every feature rebuilt with rows after as_of added
    "test_readme_intake",     # docs/intake.md's commands run: synth, inspect, validate
    "test_forest",            # compiled forests held to LightGBM bit for bit, several shapes
    "test_pilot_plan",        # 200 simulated pilots
    "test_actions",           # a validated, scored store per test, the CLI run
    "test_validate",          # one corrupted export validated per table
    "test_field_style",       # the export written and validated in both styles
})


def is_slow(item: pytest.Item) -> bool:
    """True when ``item`` needs a slow fixture or part, or sits in a slow module (see above)."""
    return (not SLOW_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))
            or any(item.get_closest_marker(mark) for mark in SLOW_MARKS)
            or item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES)


# ---------------------------------------------------------------- balance for --dist loadfile
# ``make test`` gives each xdist worker a whole file at a time, the next one when it is free. pytest-xdist
# by default hands out files with many tests first, which left the few-test, minute-long files (a world of
# their own, a killed term, a server) to the end, one worker running them while the other sat idle. Files
# are handed out heaviest first instead (the longest-job-first rule), the light ones last to fill the gaps.
# The weights are seconds of wall time per file in one ``make test`` (2026-12-08, load average 10-15 on 2
# cores, tests/ at ee601e8); only their order matters. Spark's files go first of all: each worker that
# runs one starts a JVM, and the parity files take minutes. A file missing here keeps its place after these.
# The name every Spark test file starts with: they go first, all to one worker (the Spark section below).
SPARK_FILES = "test_spark_"
FILE_SECONDS = {
    "test_drift_calibrated": 285, "test_serve": 275, "test_alert_idempotency": 254, "test_privacy_term": 180,
    "test_online_rowwise": 173, "test_mlflow_backends": 144, "test_scoring": 135, "test_parity_kinds": 126,
    "test_train": 107, "test_online_fast": 85, "test_term_resume": 85, "test_teacher_page": 82,
    "test_synth_validate": 76, "test_incremental": 61, "test_actions": 56, "test_serve_examples": 53,
    "test_feature_cache": 50, "test_synth": 49, "test_readme_intake": 46, "test_forest": 45, "test_store": 40,
    "test_pilot": 39, "test_feature_leakage": 37, "test_tracking_store": 35, "test_validate_speed_rules": 34,
    "test_feature_points": 30, "test_serve_logs": 29, "test_impact_run": 28, "test_treated_rows": 27,
    "test_catalog": 27, "test_term_report": 24, "test_serve_browser": 20,
}


def heaviest_first(module: str) -> tuple[bool, float]:
    """The sort key of a test module's name: Spark's first, then by :data:`FILE_SECONDS`, longest first."""
    return not module.startswith(SPARK_FILES), -FILE_SECONDS.get(module, 0)


def pytest_configure(config):
    # xdist's own order (most tests first) would undo the one set in pytest_collection_modifyitems.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    for item in items:
        if is_slow(item):
            item.add_marker(pytest.mark.slow)
    # A stable sort: each file's tests keep their order, files of equal weight keep collection order.
    items.sort(key=lambda item: heaviest_first(item.module.__name__.rsplit(".", 1)[-1]))


# ---------------------------------------------------------------- the privacy scan
# The shared scanner sits beside the repository (/work/shared, ../shared in CI's clone). A privacy
# test without it proves nothing, so a missing or crashing scanner fails the test, never skips it.
PII_SCAN = Path(__file__).resolve().parents[2] / "shared" / "tools" / "pii_scan.py"


def pii_leaks(source: Path, *outputs: Path) -> list[str]:
    """The scanner's ``LEAK`` lines (its first 10) for raw IDs of export ``source`` found in ``outputs``.

    An empty list means every file under ``outputs`` was scanned and none holds a raw ID.
    """
    import subprocess
    import sys

    if not PII_SCAN.is_file():
        pytest.fail(f"the PII scanner is not at {PII_SCAN}: shared/ must sit beside the repository", pytrace=False)
    done = subprocess.run([sys.executable, str(PII_SCAN), str(source), *map(str, outputs)],
                          capture_output=True, text=True)
    summary = [line for line in done.stdout.splitlines() if line.startswith("pii scan:")]
    if done.returncode not in (0, 1) or not summary:  # 2: no IDs in the source; else a crash
        pytest.fail(f"the PII scanner did not finish a scan (exit {done.returncode}): "
                    f"{(done.stdout + done.stderr)[-1500:]}", pytrace=False)
    return [line for line in done.stdout.splitlines() if line.startswith("LEAK")]


def clean_tables() -> dict[str, pd.DataFrame]:
    """One clean frame per contract table: 2 schools, 3 students (one with a G-code), one term."""
    schools = pd.DataFrame({
        "school_id": [SCHOOL_A, SCHOOL_B],
        "name": ["โรงเรียนบ้านหนองบัว", "Ban Non Sung School"],
        "province_code": ["40", "30"],
        "district_code": ["4001", "3002"],
        "region": ["northeast", "northeast"],
        "size": ["small", "medium"],
        "area": ["rural", "urban"],
        "affiliation": ["obec", "local"],
        "latitude": [16.4, None],
        "longitude": [102.8, None],
    })
    calendar = pd.DataFrame(
        [(SCHOOL_A, d, TERM) for d in DAYS_A] + [(SCHOOL_B, d, TERM) for d in DAYS_B],
        columns=["school_id", "date", "term"],
    )
    enrollments = pd.DataFrame({
        "student_id": STUDENTS,
        "term": [TERM] * 3,
        "school_id": [SCHOOL_A, SCHOOL_A, SCHOOL_B],
        "grade_level": ["P6", "M3", "P2"],
        "classroom": ["6/1", "3/2", None],
        "sex": ["female", "male", "male"],
        "birth_date": [dt.date(2012, 7, 1), dt.date(2009, 2, 14), dt.date(2016, 9, 30)],
        "nationality": ["thai", "thai", "other"],
        "disability": ["none", "none", "learning"],
        "status": ["studying", "studying", "studying"],
        "status_date": [None, None, None],
    })
    attendance = pd.DataFrame(
        [(STUDENTS[0], d, "present") for d in DAYS_A]
        + [(STUDENTS[1], d, s) for d, s in zip(DAYS_A, ["present", "absent", "absent", "late", "sick"], strict=True)]
        + [(STUDENTS[2], d, "present") for d in DAYS_B],
        columns=["student_id", "date", "status"],
    )
    grades = pd.DataFrame({
        "student_id": [STUDENTS[0], STUDENTS[0], STUDENTS[1], STUDENTS[1]],
        "term": [TERM] * 4,
        "subject_code": ["ท16101", "ค16101", "ท23101", "ก23901"],
        "credits": [1.5, 1.5, 1.5, 0.5],
        "grade": ["3.5", "4", "มส", "ผ"],
        "recorded_on": [dt.date(2024, 10, 20)] * 4,
    })
    household = pd.DataFrame({
        "student_id": STUDENTS,
        "screened_on": [dt.date(2024, 6, 5)] * 3,
        "household_size": [5, 4, 6],
        "monthly_income_baht": [9000.0, 4000.0, 12000.0],
        "house_condition": ["poor", "dilapidated", "fair"],
        "owns_land": [True, False, False],
        "water_source": ["well", "rain", "bought"],
        "has_electricity": [True, True, True],
        "has_vehicle": [False, True, False],
        "dependants": [2, 1, 3],
        "lives_with": ["grandparents", "one_parent", "both_parents"],
        "distance_to_school_km": [3.5, 12.0, 1.0],
        "cct_status": ["poor", "extremely_poor", "not_screened"],
    })
    health = pd.DataFrame({
        "student_id": STUDENTS,
        "measured_on": [dt.date(2024, 6, 4)] * 3,
        "weight_kg": [35.0, 48.5, 20.1],
        "height_cm": [142.0, 160.2, 118.0],
    })
    behaviour = pd.DataFrame({
        "student_id": STUDENTS,
        "screened_on": [dt.date(2024, 6, 6)] * 3,
        "sdq_emotional": [2, 6, 1], "sdq_conduct": [1, 5, 0], "sdq_hyperactivity": [3, 7, 2],
        "sdq_peer": [1, 4, 1], "sdq_prosocial": [8, 4, 9],
        "substance": [False, True, False], "violence": [False, False, False],
        "bullying": [False, True, False], "pregnancy": [False, False, False],
        "gaming": [False, True, False], "sexual_risk": [False, False, False],
    })
    assistance = pd.DataFrame({
        "student_id": [STUDENTS[0], STUDENTS[1], STUDENTS[1]],
        "date": [dt.date(2024, 6, 20)] * 3,
        "programme": ["cct", "cct", "lunch"],
        "amount_baht": [1500.0, 1500.0, 300.0],
        "received": [True, False, True],
    })
    return {
        "schools": schools, "calendar": calendar, "enrollments": enrollments,
        "attendance_daily": attendance, "grades": grades, "household": household,
        "health": health, "behaviour": behaviour, "assistance": assistance,
    }  # fmt: skip


def write_source(tables: dict[str, pd.DataFrame], folder: Path, csv: tuple[str, ...] = ("schools", "grades")) -> Path:
    """Write tables as an export: CSV (UTF-8, ISO dates) for names in ``csv``, Parquet otherwise."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if name in csv:
            frame.to_csv(folder / f"{name}.csv", index=False, date_format="%Y-%m-%d")
        else:
            frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


@pytest.fixture(scope="session")
def hand_validated(tmp_path_factory) -> Path:
    """The hand-made export (:func:`clean_tables`) validated once, in two buckets; read it, do not change it."""
    from risk.data.validate import validate_sources

    folder = tmp_path_factory.mktemp("hand-validated")
    validate_sources(write_source(clean_tables(), folder / "source"), folder / "validated", key=WORLD_KEY,
                     progress=False, buckets=2)
    return folder / "validated"


def hand_service_settings(validated: Path, store_url: str, folder: Path):
    """Settings of the real app for tests: no model registry, no access log, no key cache, no rate limit."""
    from risk.serve.settings import ServeSettings

    return ServeSettings(data=validated, store_url=store_url, tracking_dir=folder / "no-models",
                         model_cache=folder / "cache", access_log=False, key_cache_seconds=0,
                         rate_limit={"per_second": 100_000, "burst": 100_000})


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    return clean_tables()


ID_KEY = b"test-key-0123456789abcdef"  # the pseudonym key of the hand-made tests (fixture id_key)


@pytest.fixture
def id_key() -> bytes:
    return ID_KEY


@pytest.fixture(scope="session")
def clean_store(tmp_path_factory) -> Path:
    """``root`` with the clean export (``first``, :func:`clean_tables`) validated into a new store (``store``)
    with :data:`ID_KEY` in 4 buckets, once: tests take copies (``shutil.copytree``) and never change it."""
    from risk.data.validate import validate_sources

    root = tmp_path_factory.mktemp("clean-store")
    validate_sources(write_source(clean_tables(), root / "first"), root / "store", key=ID_KEY, progress=False,
                     buckets=4)
    return root


# ---------------------------------------------------------------- parity with a floor
# A parity test that compares nothing passes: each says how many students and which features it
# compared, and this holds it to a floor and to every feature the catalog file switches on.
def enabled_features() -> list[str]:
    """The names configs/features.yaml switches on, in file order, read from the file, not through the catalog."""
    import yaml

    entries = yaml.safe_load(FEATURES_YAML.read_text(encoding="utf-8"))["features"]
    return [entry["name"] for entry in entries if entry.get("enabled", True)]


def assert_compared(students: int, features: Sequence[str], floor: int) -> None:
    """Fail unless ``students`` (vectors compared) reach ``floor`` and ``features`` are every enabled feature."""
    assert students >= floor, f"the parity test compared {students} students, under its floor of {floor}"
    assert list(features) == enabled_features(), "the parity test compared other features than the enabled ones"


# ---------------------------------------------------------------- a trained world
# A small synthetic export with enough terms for a temporal split, validated once per
# test session; models and scores built on it are shared by the model, scoring and
# service tests. Sizes are the smallest that still give every role enough dropouts.
WORLD_KEY = b"model-world-test-key-0123456789"
WORLD_STUDENTS = 2500
WORLD_TERMS = 5


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """``root`` with ``source/`` (synthetic, with truth.parquet) and ``validated/``.

    Generated and validated once per session (tests/built_once.py); each xdist worker reads a copy of its
    own, so the caches a feature point writes under ``validated/`` are never written by two processes.
    """
    from built_once import built_by_one_worker
    from synthetic_store import validated_synthetic

    template = built_by_one_worker("world", tmp_path_factory, lambda folder: validated_synthetic(
        folder, students=WORLD_STUDENTS, terms=WORLD_TERMS, seed=3, key=WORLD_KEY))
    root = tmp_path_factory.mktemp("world")
    shutil.copytree(template, root, dirs_exist_ok=True)
    return root


def small_train_settings(**changes):
    """configs/train.yaml with the sizes of a unit test."""
    from risk.models.settings import load_train_settings

    settings = load_train_settings()
    settings.samples.weeks = [4, 6]
    settings.lightgbm.max_trees = 150
    settings.lightgbm.early_stopping_rounds = 30
    settings.evaluation.baseline_max_rows = 20_000
    settings.evaluation.shap_sample_rows = 300
    settings.evaluation.fairness_min_rows = 30
    settings.policy.min_group_rows = 300
    settings.policy.min_group_dropouts = 5
    for dotted, value in changes.items():
        section, name = dotted.split("__")
        setattr(getattr(settings, section), name, value)
    return settings


# ---------------------------------------------------------------- a registered champion
# One small model trained on ``world``, logged to a fresh SQLite MLflow store and promoted
# to champion; shared by the serving, tracking-server and notebook tests.
MODEL_NAME = "dropout-risk"
FEATURES_YAML = Path(__file__).resolve().parent.parent / "configs" / "features.yaml"


def train_small(world: Path, **changes):
    """A small model on ``world`` (champion from the current registry): (result, train settings)."""
    from risk.config import load_settings
    from risk.features.catalog import load_catalog
    from risk.models.tracking import champion_bundle
    from risk.models.train import train_model

    settings = small_train_settings(**changes)
    result = train_model(world / "validated", settings=load_settings(), train_settings=settings,
                         catalog=load_catalog(FEATURES_YAML), catalog_yaml=FEATURES_YAML.read_bytes(),
                         truth=world / "source" / "truth.parquet", id_key=WORLD_KEY,
                         champion=champion_bundle(MODEL_NAME), progress=False)
    return result, settings


def trained_once(world: Path, factory: pytest.TempPathFactory):
    """The result of :func:`train_small` on ``world`` with no champion, trained once per session: the first
    xdist worker to ask trains it and keeps it pickled (tests/built_once.py), the others read the pickle.

    The feature points the training cached under ``world``'s ``validated/_derived`` are copied into every
    worker's world, as if each had trained there (test_train holds the next training to reusing them).
    """
    import pickle

    from built_once import built_by_one_worker

    from risk.data.incremental import DERIVED

    def build(folder: Path) -> None:
        result, _ = train_small(world)
        (folder / "result.pickle").write_bytes(pickle.dumps(result))
        shutil.copytree(world / "validated" / DERIVED, folder / DERIVED)

    built = built_by_one_worker("champion-model", factory, build)
    shutil.copytree(built / DERIVED, world / "validated" / DERIVED, dirs_exist_ok=True)
    return pickle.loads((built / "result.pickle").read_bytes())


@pytest.fixture(scope="session")
def champion_store(world, tmp_path_factory):
    """``(home, tracking_uri, result, registered)``: a fresh SQLite store whose champion is one small model
    (:func:`trained_once`), logged and promoted in this worker's own store."""
    import os

    from risk.models.promotion import promote
    from risk.models.tracking import configure_tracking, log_training

    home = tmp_path_factory.mktemp("mlflow-champion")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    uri = configure_tracking(home)  # an empty registry: the model is trained with no champion to beat
    result = trained_once(world, tmp_path_factory)
    settings = small_train_settings()
    registered = log_training(result, data_dir=home, experiment="dropout-risk", model_name=MODEL_NAME,
                              settings_dump=settings.model_dump(mode="json"))
    decision = promote(MODEL_NAME, settings.promotion)
    assert decision.promoted, decision.reasons
    return home, uri, result, registered


# ---------------------------------------------------------------- databases
# The local PostgreSQL 15 (trust auth) and its database ``test``, which ``make test`` creates.
PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test connect_timeout=3"
PG_SERVER = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=postgres connect_timeout=3"


def postgres_listening() -> bool:
    """True when something accepts TCP connections at PG_HOST:PG_PORT (refused or timed out: False)."""
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=3):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres() -> str:
    """The libpq DSN of database ``test`` once the server answers and the database is there.

    Only a server that is not listening skips (fails under CI). A server that is up but refuses
    user ``postgres``, or lacks database ``test``, fails: that is a broken setup, not a missing part.
    psycopg 3 gives no SQLSTATE for errors at connection time, so the cases are told apart by
    a TCP connection first and then the catalog of database ``postgres``.
    """
    import psycopg

    require(postgres_listening(), f"PostgreSQL is not listening at {PG_HOST}:{PG_PORT}",
            f"start PostgreSQL 15 on {PG_HOST}:{PG_PORT} with trust auth for user postgres, then `make test`")
    try:
        with psycopg.connect(PG_SERVER, autocommit=True) as con:
            found = con.execute("SELECT 1 FROM pg_database WHERE datname = 'test'").fetchone()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_HOST}:{PG_PORT} is up but refused user postgres on database postgres "
                    f"(the tests expect trust auth): {exc}", pytrace=False)
    if found is None:
        pytest.fail(f"PostgreSQL at {PG_HOST}:{PG_PORT} has no database `test`; `make test` creates it "
                    "(or: createdb -h 127.0.0.1 -U postgres test)", pytrace=False)
    return PG_ADMIN


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """(URL, schema): a fresh SQLite file, or a fresh PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        from risk.store import default_store_url

        yield default_store_url(tmp_path), None
        return
    import psycopg

    admin = psycopg.connect(request.getfixturevalue("postgres"), autocommit=True)
    schema = f"store_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}", schema
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture(scope="session")
def term_run(world, tmp_path_factory):
    """The session's one ``risk term`` on ``world``, shared by every xdist worker (tests/term_support.py).

    Read it; only test_privacy_term.py adds to it (the service it runs on the folder, under ``service/``).
    """
    from term_support import shared_term

    return shared_term(world, tmp_path_factory)


@pytest.fixture(scope="session")
def champion(champion_store):
    """(tracking folder, model version, bundle) of the session's champion; read it, do not change it."""
    home, _, result, registered = champion_store
    return home, registered["version"], result.bundle


def stop_process_group(process) -> None:
    """Stop a server started with ``start_new_session=True``: SIGTERM to its group, SIGKILL if it lingers."""
    import os
    import signal
    import subprocess

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


# ---------------------------------------------------------------- Spark (make test and make test-spark)
# The Spark test files share one worker under ``--dist loadfile`` (make test): one JVM and one session for all
# of them, instead of a 4g JVM started, warmed up and planning the same SQL in each of the two workers
# (SPARK_FILES, with the balance section above).


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile`` with every ``tests/test_spark_*.py`` in one scope (one worker); other modes as xdist has them."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SparkFilesTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return "spark" if Path(scope).name.startswith(SPARK_FILES) else scope

    return SparkFilesTogether(config, log)


@pytest.fixture(scope="session")
def spark():
    """The test process's one local Spark session, shared by every Spark test module."""
    require(shutil.which("java") is not None, "Java is not installed (Spark runs on the JVM)",
            "apt-get install -y default-jre-headless (make test-spark installs it)")
    pytest.importorskip("pyspark", reason="the spark extra is not installed: pip install -e '.[spark]'")
    from risk.spark.session import spark_session

    spark = spark_session("local[2]", progress=False, quick_jit=True)
    # The tests' worlds are small: a shuffle into the session's 8 partitions is 8 tasks of nothing each,
    # at every join and group-by of the feature plan. The numbers do not depend on it (rows are sorted
    # before they are compared).
    spark.conf.set("spark.sql.shuffle.partitions", "2")
    return spark
