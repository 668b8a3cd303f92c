"""A run that loses a table stops, publishes nothing, and keeps what it rejected and why."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import SCHOOL_A, SCHOOL_B, clean_tables, write_source

from risk.data.loss import DataLossError, judge_loss
from risk.data.report import TableCounts
from risk.data.validate import validate_sources
from risk.errors import ConfigError, ContractError

SECOND_TERM = "2567-2"
NOVEMBER = [dt.date(2024, 11, d) for d in (4, 5, 6, 7, 8)]


def _next_term(bad_households: int = 3) -> dict[str, pd.DataFrame]:
    """The export of term 2567-2, with a new screening per student; the first ``bad_households`` say
    ``cct_status = unknown``, which the contract does not allow."""
    t = clean_tables()
    calendar = pd.DataFrame([(s, d, SECOND_TERM) for s in (SCHOOL_A, SCHOOL_B) for d in NOVEMBER],
                            columns=["school_id", "date", "term"])
    household = t["household"].assign(screened_on=dt.date(2024, 11, 5))
    household.loc[: bad_households - 1, "cct_status"] = "unknown"
    return t | {"calendar": calendar, "enrollments": t["enrollments"].assign(term=SECOND_TERM),
                "household": household}


def _store_files(store: Path) -> dict[str, str]:
    """Every file of the store (tables, quarantine, reports, manifest) → hash of its bytes; failed runs aside."""
    return {str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(store.rglob("*")) if p.is_file() and p.parts[len(store.parts)] != "failed_runs"
            and p.name != ".validate.lock"}


@pytest.fixture
def store(tmp_path: Path, id_key: bytes) -> Path:
    validate_sources(write_source(clean_tables(), tmp_path / "first"), tmp_path / "store", key=id_key,
                     progress=False, buckets=4)
    return tmp_path / "store"


def test_a_wholly_rejected_table_stops_the_run_and_leaves_the_store_as_it_was(store, tmp_path, id_key):
    before = _store_files(store)
    with pytest.raises(DataLossError) as caught:
        validate_sources(write_source(_next_term(), tmp_path / "second"), store, key=id_key, progress=False,
                         buckets=4)
    assert _store_files(store) == before
    message = str(caught.value)
    assert "'household' lost all of its 3 incoming rows (not_allowed 3)" in message
    assert "--accept-loss household" in message and str(caught.value.failed_run) in message
    assert "\n" not in message and isinstance(caught.value, ContractError)


def test_a_stopped_run_keeps_its_quarantine_and_the_reason(store, tmp_path, id_key):
    with pytest.raises(DataLossError) as caught:
        validate_sources(write_source(_next_term(), tmp_path / "second"), store, key=id_key, progress=False,
                         buckets=4)
    folder = caught.value.failed_run
    assert folder.parent == store / "failed_runs"
    report = json.loads((folder / "report.json").read_text())
    assert report["mode"] == "failed" and "household" in report["failure"]
    household = next(t for t in report["tables"] if t["table"] == "household")
    assert (household["rows_in"], household["quarantined"], household["by_rule"]) == (3, 3, {"not_allowed": 3})
    rejected = pd.read_parquet(folder / "quarantine" / "household")
    assert rejected["rule"].tolist() == ["not_allowed"] * 3
    assert not (store / "_incoming").exists() or not any((store / "_incoming").iterdir())


def test_accept_loss_takes_the_run_and_says_so(store, tmp_path, id_key):
    report = validate_sources(write_source(_next_term(), tmp_path / "second"), store, key=id_key, progress=False,
                              buckets=4, accept_loss=frozenset({"household"}))
    household = next(t for t in report.tables if t.table == "household")
    assert household.loss_accepted and "--accept-loss household" in household.warning
    assert any(line.startswith("warning: table 'household' lost all") for line in report.summary_lines())
    stored = json.loads((store / "validation_runs" / f"{report.batch}.json").read_text())
    assert next(t for t in stored["tables"] if t["table"] == "household")["loss_accepted"]
    assert len(pd.read_parquet(store / "enrollments")) == 6


def test_a_loss_above_the_warning_share_warns_and_passes(store, tmp_path, id_key):
    report = validate_sources(write_source(_next_term(bad_households=1), tmp_path / "second"), store, key=id_key,
                              progress=False, buckets=4)
    household = next(t for t in report.tables if t.table == "household")
    assert (household.used, household.quarantined) == (2, 1)
    assert "lost 1 (33.3%) of its 3 incoming rows" in household.warning and not household.loss_accepted


def test_a_new_store_whose_table_is_wholly_rejected_says_how_many_rows_came_in(tmp_path, id_key):
    tables = clean_tables()
    tables["household"]["cct_status"] = "unknown"
    with pytest.raises(DataLossError) as caught:
        validate_sources(write_source(tables, tmp_path / "first"), tmp_path / "store", key=id_key,
                         progress=False, buckets=4, accept_loss=frozenset({"household"}))
    message = str(caught.value)
    assert "had 3 rows" in message and "every one was rejected (not_allowed 3)" in message
    assert "has no rows" not in message
    assert not (tmp_path / "store" / "household").exists()
    assert (caught.value.failed_run / "quarantine" / "household").is_dir()


def test_accept_loss_must_name_a_table(store, tmp_path, id_key):
    with pytest.raises(ConfigError, match="'houshold', which is not a table"):
        validate_sources(write_source(_next_term(), tmp_path / "second"), store, key=id_key, progress=False,
                         accept_loss=frozenset({"houshold"}))


def _counts(rows_in: int, by_rule: dict[str, int]) -> TableCounts:
    quarantined = sum(by_rule.values())
    return TableCounts(table="health", files=1, rows_in=rows_in, used=rows_in - quarantined,
                       quarantined=quarantined, by_rule=by_rule)


@pytest.mark.parametrize(("rows_in", "by_rule", "warns", "stops"), [
    (0, {}, False, False),                                 # no rows in: nothing lost
    (10, {"duplicate": 10}, False, False),                 # exact copies: their content is stored
    (100, {"bad_date": 5}, False, False),                  # 5% is the warning line, not above it
    (100, {"bad_date": 6}, True, False),
    (10, {"bad_date": 9, "duplicate": 1}, True, False),
    (10, {"bad_date": 7, "duplicate_key": 3}, False, True),
])
def test_what_counts_as_a_loss(rows_in, by_rule, warns, stops):
    judged, stop = judge_loss(_counts(rows_in, by_rule), accept_loss=frozenset(), warn_share=0.05, fail_share=1.0)
    assert (bool(judged.warning), bool(stop)) == (warns, stops)


def test_a_file_that_breaks_off_mid_run_keeps_what_the_run_found(store, tmp_path, id_key, monkeypatch):
    import risk.data.validate as validate

    original = validate.run_row_pass

    def unreadable_household(work, files, **options):
        if work.table.name == "household":
            raise ContractError("household.csv: line 3 cannot be read as UTF-8")
        return original(work, files, **options)

    monkeypatch.setattr(validate, "run_row_pass", unreadable_household)
    before = _store_files(store)
    with pytest.raises(ContractError, match=r"line 3 cannot be read as UTF-8; the store is unchanged, .*failed_runs"):
        validate_sources(write_source(_next_term(), tmp_path / "second"), store, key=id_key, progress=False,
                         buckets=4)
    assert _store_files(store) == before
    (kept,) = (store / "failed_runs").iterdir()
    report = json.loads((kept / "report.json").read_text())
    assert [t["table"] for t in report["tables"]] == ["schools", "calendar", "enrollments", "attendance_daily",
                                                      "grades"]


def test_the_command_exits_non_zero_on_a_lost_table_and_takes_it_with_accept_loss(store, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from risk.cli import app

    monkeypatch.setenv("RISK_ID_KEY", "test-key-0123456789abcdef")
    second = write_source(_next_term(), tmp_path / "second")
    before = _store_files(store)
    refused = CliRunner().invoke(app, ["validate", str(second), str(store), "--quiet"])
    assert refused.exit_code == 2, refused.output
    assert "household" in refused.output and "--accept-loss household" in refused.output
    assert _store_files(store) == before
    taken = CliRunner().invoke(app, ["validate", str(second), str(store), "--quiet", "--accept-loss", "household"])
    assert taken.exit_code == 0, taken.output
    assert "warning: table 'household' lost all" in " ".join(taken.output.split())
    assert _store_files(store) != before
