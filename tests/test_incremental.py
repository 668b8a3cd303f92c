"""The validated store grows export by export: same tables as one big run, nothing twice, nothing rewritten."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from conftest import DAYS_A, SCHOOL_A, STUDENTS, TERM, clean_tables, write_source
from typer.testing import CliRunner

from risk.cli import app
from risk.data.contract import TABLES, term_window
from risk.data.export_split import split_export
from risk.data.incremental import StoreBusyError, StoreMismatchError, locked
from risk.data.synth import SynthConfig, generate
from risk.data.validate import validate_sources

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "synth.yaml"
SYNTH_KEY = b"incremental-test-key-0123456789"
# The week after the clean export's week: school A open Monday 10 to Friday 14 June 2024.
NEXT_WEEK = [dt.date(2024, 6, d) for d in (10, 11, 12, 13, 14)]


def _files(folder: Path) -> dict[str, str]:
    """Every validated Parquet file (tables and quarantine) → hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.parquet")) if "_derived" not in p.parts}


def _table(folder: Path, name: str) -> pd.DataFrame:
    """A validated table as a sorted frame (partition columns as text), comparable across stores."""
    frame = pd.read_parquet(folder / name)
    for column in ("bucket", "term"):
        if column in frame and isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype(str)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def _rules(folder: Path, name: str) -> Counter:
    files = list((folder / "quarantine" / name).glob("*.parquet"))
    return Counter(pd.concat([pd.read_parquet(f, columns=["rule"]) for f in files])["rule"]) if files else Counter()


# ---------------------------------------------------------------- term by term = all at once

@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A 3-term synthetic export validated at once, and the same export split by term and added term by term."""
    root = tmp_path_factory.mktemp("incremental")
    config = SynthConfig.from_yaml(CONFIG).model_copy(update={"chunk_size": 400})
    generate(root / "source", students=800, terms=3, seed=9, config=config, progress=False)
    whole = validate_sources(root / "source", root / "whole", key=SYNTH_KEY, progress=False, buckets=4)
    exports = split_export(root / "source", root / "terms")
    runs = [validate_sources(e, root / "store", key=SYNTH_KEY, progress=False, buckets=4) for e in exports]
    return root, whole, exports, runs


def test_split_gives_one_export_per_term(synthetic):
    _, _, exports, _ = synthetic
    assert [e.name for e in exports] == ["2568-1", "2568-2", "2569-1"]


@pytest.mark.parametrize("table", [t for t in TABLES if t != "schools"])
def test_every_source_row_lands_in_exactly_one_term_export(synthetic, table):
    root, _, exports, _ = synthetic
    source = _raw(root / "source", table)
    parts = pd.concat([_raw(e, table) for e in exports], ignore_index=True)
    assert len(parts) == len(source)
    assert Counter(map(tuple, parts.to_numpy())) == Counter(map(tuple, source.to_numpy()))


def test_school_list_is_in_every_term_export(synthetic):
    root, _, exports, _ = synthetic
    source = _raw(root / "source", "schools")
    for export in exports:
        pd.testing.assert_frame_equal(_raw(export, "schools"), source)


def test_attendance_of_a_term_export_is_dated_inside_that_term(synthetic):
    _, _, exports, _ = synthetic
    for export in exports:
        start, end = term_window(export.name)
        dates = pd.to_datetime(_raw(export, "attendance_daily")["date"], errors="coerce").dropna().dt.date
        inside = dates.between(start, end)
        # Only injected bad dates (a two-digit year read as 19xx) may lie elsewhere.
        assert inside.mean() > 0.99, export.name


@pytest.mark.parametrize("table", list(TABLES))
def test_term_by_term_gives_the_same_validated_tables(synthetic, table):
    root, _, _, _ = synthetic
    pd.testing.assert_frame_equal(_table(root / "store", table), _table(root / "whole", table))


@pytest.mark.parametrize("table", [t for t in TABLES if t != "schools"])
def test_term_by_term_quarantines_the_same_rows_by_the_same_rules(synthetic, table):
    root, whole, _, runs = synthetic
    assert _rules(root / "store", table) == _rules(root / "whole", table)
    at_once = next(t for t in whole.tables if t.table == table)
    added = [next(t for t in run.tables if t.table == table) for run in runs]
    assert sum(t.rows_in for t in added) == at_once.rows_in
    assert sum(t.quarantined for t in added) == at_once.quarantined


def test_school_list_sent_again_is_counted_unchanged_not_quarantined(synthetic):
    root, whole, _, runs = synthetic
    first, *later = [next(t for t in run.tables if t.table == "schools") for run in runs]
    assert first == next(t for t in whole.tables if t.table == "schools")
    for counts in later:
        assert (counts.used, counts.quarantined, counts.unchanged) == (0, 0, first.used)
        assert counts.rows_in == first.rows_in
    assert not list((root / "store" / "quarantine" / "schools").glob(f"{runs[1].batch}*"))


def test_each_run_balances_and_the_report_sums_the_runs(synthetic):
    root, _, _, runs = synthetic
    import json

    for run in runs:
        assert all(t.rows_in == t.used + t.unchanged + t.quarantined for t in run.tables)
        assert json.loads((root / "store" / "validation_runs" / f"{run.batch}.json").read_text())["batch"] == run.batch
    report = json.loads((root / "store" / "validation_report.json").read_text())
    assert report["runs"] == [r.batch for r in runs]
    for counts in report["tables"]:
        assert counts["rows_in"] == sum(next(t.rows_in for t in r.tables if t.table == counts["table"]) for r in runs)
        assert counts["rows_in"] == counts["used"] + counts["unchanged"] + counts["quarantined"]


def _raw(export: Path, table: str) -> pd.DataFrame:
    """Every row of ``table`` in an export as text, in file order."""
    parts = []
    for path in sorted((export / table).iterdir()):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False) if path.suffix == ".csv" else pd.read_parquet(path)
        parts.append(frame.astype(str))
    return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------- hand-made: rows sent again

@pytest.fixture
def store(clean_store: Path, tmp_path: Path) -> Path:
    """A fresh copy of the clean export validated into a store, at ``tmp_path / "store"`` (the export at ``first``)."""
    for name in ("first", "store"):
        shutil.copytree(clean_store / name, tmp_path / name)
    return tmp_path / "store"


def _second_week() -> dict[str, pd.DataFrame]:
    """A later export: school A's next week, with one day and some rows the store already holds."""
    t = clean_tables()
    calendar = pd.DataFrame([(SCHOOL_A, d, TERM) for d in [DAYS_A[0], *NEXT_WEEK]], columns=["school_id", "date", "term"])
    first_row = t["attendance_daily"].iloc[0].to_dict()  # student 0 on 3 June, present
    attendance = pd.DataFrame(
        [(STUDENTS[0], d, "present") for d in NEXT_WEEK]
        + [tuple(first_row.values()), (STUDENTS[0], DAYS_A[0], "absent")],  # a copy; a conflicting row
        columns=["student_id", "date", "status"])
    assistance = pd.DataFrame({"student_id": [STUDENTS[2]], "date": [dt.date(2024, 6, 12)], "programme": ["lunch"],
                               "amount_baht": [300.0], "received": [True]})
    return t | {"calendar": calendar, "attendance_daily": attendance, "assistance": assistance}


def test_rows_already_in_the_store_are_quarantined_and_the_counts_add_up(store, tmp_path, id_key):
    report = validate_sources(write_source(_second_week(), tmp_path / "second"), store, key=id_key, progress=False,
                              buckets=4)
    counts = {t.table: t for t in report.tables}
    assert report.mode == "append"
    # School A's first day is sent again as stored: unchanged, not a duplicate.
    assert (counts["calendar"].used, counts["calendar"].unchanged, counts["calendar"].by_rule) == (5, 1, {})
    assert (counts["attendance_daily"].used, counts["attendance_daily"].by_rule) == (
        5, {"duplicate": 1, "duplicate_key": 1})
    assert (counts["assistance"].used, counts["assistance"].quarantined) == (1, 0)
    # Tables sent again whole: every row is already stored; the school list is unchanged.
    assert (counts["schools"].used, counts["schools"].unchanged, counts["schools"].quarantined) == (0, 2, 0)
    for name in ("enrollments", "grades", "household", "health", "behaviour"):
        assert counts[name].used == 0 and counts[name].by_rule == {"duplicate": counts[name].rows_in}, name
    assert all(t.rows_in == t.used + t.unchanged + t.quarantined for t in report.tables)
    rejected = pd.read_parquet(store / "quarantine" / "attendance_daily").set_index("rule")["detail"]
    assert rejected["duplicate"] == "copy of a row already in the validated store"
    assert rejected["duplicate_key"] == "same key as a row already in the validated store"
    assert len(pd.read_parquet(store / "attendance_daily")) == 14 + 5


def test_adding_an_export_never_rewrites_earlier_files(store, tmp_path, id_key):
    before = _files(store)
    validate_sources(write_source(_second_week(), tmp_path / "second"), store, key=id_key, progress=False, buckets=4)
    after = _files(store)
    assert {path: after.get(path) for path in before} == before
    assert len(after) > len(before)


def test_the_same_export_twice_is_skipped_and_changes_nothing(store, tmp_path, id_key):
    cache = store / "_derived" / "features" / "v1" / "2024-06-06-abc.parquet"
    cache.parent.mkdir(parents=True)
    pd.DataFrame({"x": [1]}).to_parquet(cache)
    before, report_bytes = _files(store), (store / "validation_report.json").read_bytes()
    again = validate_sources(tmp_path / "first", store, key=id_key, progress=False, buckets=4)
    assert again.skipped and again.skipped_as
    assert "before" in again.summary_lines()[0]
    assert _files(store) == before
    assert (store / "validation_report.json").read_bytes() == report_bytes
    assert cache.exists()


def test_the_same_rows_in_other_files_are_all_quarantined_and_change_nothing(store, tmp_path, id_key):
    cache = store / "_derived" / "context_rates" / "2567-1.parquet"
    cache.parent.mkdir(parents=True)
    pd.DataFrame({"x": [1]}).to_parquet(cache)
    tables = {name: _table(store, name) for name in TABLES}
    report_bytes = (store / "validation_report.json").read_bytes()
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "first", copy)
    (copy / "attendance_daily").mkdir()
    (copy / "attendance_daily.parquet").rename(copy / "attendance_daily" / "resent.parquet")  # other bytes' path
    again = validate_sources(copy, store, key=id_key, progress=False, buckets=4)
    assert not again.skipped and not again.changed
    assert all(t.used == 0 and t.quarantined + t.unchanged == t.rows_in for t in again.tables)
    assert {t.table for t in again.tables if t.unchanged} == {"schools", "calendar"}
    assert "no new rows" in again.summary_lines()[-1]
    for name, frame in tables.items():
        pd.testing.assert_frame_equal(_table(store, name), frame)
    assert (store / "validation_report.json").read_bytes() == report_bytes
    assert cache.exists()
    assert (store / "validation_runs" / f"{again.batch}.json").exists()


def test_new_rows_clear_term_keyed_caches_and_keep_feature_points(store, tmp_path, id_key):
    (store / "_derived" / "context_rates").mkdir(parents=True)
    (store / "_derived" / "features").mkdir(parents=True)
    validate_sources(write_source(_second_week(), tmp_path / "second"), store, key=id_key, progress=False, buckets=4)
    assert not (store / "_derived" / "context_rates").exists()
    assert (store / "_derived" / "features").exists()  # keyed by the files that touch each point


def test_replace_starts_the_store_again(store, tmp_path, id_key):
    validate_sources(write_source(_second_week(), tmp_path / "second"), store, key=id_key, progress=False, buckets=4)
    report = validate_sources(tmp_path / "first", store, key=id_key, progress=False, buckets=4, replace=True)
    assert report.mode == "new"
    assert len(pd.read_parquet(store / "attendance_daily")) == 14
    assert len(list((store / "validation_runs").glob("*.json"))) == 1


def test_another_key_is_refused(store, tmp_path):
    with pytest.raises(StoreMismatchError, match="another pseudonym key"):
        validate_sources(tmp_path / "first", store, key=b"another-key-0123456789", progress=False)


def test_a_second_writer_gets_a_clear_error(store, tmp_path, id_key):
    with locked(store), pytest.raises(StoreBusyError, match="being validated by pid"):
        validate_sources(write_source(_second_week(), tmp_path / "second"), store, key=id_key, progress=False)


def test_a_run_stopped_after_its_commit_is_finished_by_the_next(store, tmp_path, id_key, monkeypatch):
    import risk.data.validate as validate

    second = write_source(_second_week(), tmp_path / "second")

    def stopped(out_dir: Path, batch: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(validate, "publish", stopped)
    with pytest.raises(KeyboardInterrupt):
        validate_sources(second, store, key=id_key, progress=False, buckets=4)
    assert len(pd.read_parquet(store / "attendance_daily")) == 14  # nothing published yet
    monkeypatch.undo()
    again = validate_sources(second, store, key=id_key, progress=False, buckets=4)
    assert again.skipped  # the stopped run took it
    assert len(pd.read_parquet(store / "attendance_daily")) == 14 + 5
    assert not (store / "_incoming").exists() or not any((store / "_incoming").iterdir())


def test_a_run_stopped_before_its_commit_leaves_nothing(store, tmp_path, id_key, monkeypatch):
    import risk.data.validate as validate

    before = _files(store)
    monkeypatch.setattr(validate, "write_commit", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        validate_sources(write_source(_second_week(), tmp_path / "second"), store, key=id_key, progress=False)
    monkeypatch.undo()
    assert validate_sources(tmp_path / "first", store, key=id_key, progress=False).skipped
    assert _files(store) == before


# ---------------------------------------------------------------- the command

def test_validate_command_appends_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("RISK_ID_KEY", "a-test-key-of-enough-length")
    runner = CliRunner()
    first = write_source(clean_tables(), tmp_path / "first")
    second = write_source(_second_week(), tmp_path / "second")
    out = tmp_path / "validated"
    assert runner.invoke(app, ["validate", str(first), str(out), "--quiet"]).exit_code == 0
    result = runner.invoke(app, ["validate", str(second), str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "appended to the validated store" in result.output
    result = runner.invoke(app, ["validate", str(second), str(out), "--quiet"])
    assert result.exit_code == 0 and "nothing to do" in result.output


def test_split_export_command_writes_one_folder_per_term(tmp_path):
    tables = clean_tables()
    later = tables["calendar"].assign(date=[d + dt.timedelta(days=161) for d in tables["calendar"]["date"]],
                                      term="2567-2")  # the same weekdays in November
    tables["calendar"] = pd.concat([tables["calendar"], later], ignore_index=True)
    source = write_source(tables, tmp_path / "source")
    result = CliRunner().invoke(app, ["split-export", str(source), str(tmp_path / "terms")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "terms").iterdir()) == ["2567-1", "2567-2"]
    assert len(pd.read_parquet(tmp_path / "terms" / "2567-2" / "calendar.parquet")) == len(later)
    assert len(pd.read_parquet(tmp_path / "terms" / "2567-2" / "attendance_daily.parquet")) == 0
