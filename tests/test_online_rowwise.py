"""The service's fast way equals batch: the numpy evaluator against the SQL plan, the clean-payload pass against the full checks.

The SQL of the domain modules is the definition of every feature, and the full
payload checks (:mod:`risk.online.payload`) decide what batch would quarantine.
:mod:`risk.online.rowwise` and :mod:`risk.online.payload_fast` are the fast
twins the service uses for clean payloads: these tests hold each to its
definition on a hand-made world of edge cases and on every student of a
generated one, at several points of a term.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import WORLD_KEY, assert_compared, thai_id
from feature_world import AS_OF as EDGE_AS_OF
from feature_world import context_rates_frame
from feature_world import world as edge_world
from online_frames import features_from_frames
from parity_support import mismatches, per_student, references

from risk.config import Settings
from risk.data.contract import TABLES
from risk.data.export_payloads import read_student_tables, student_payloads
from risk.errors import ContractError
from risk.features.base import AsOf
from risk.features.batch import build_feature_matrix
from risk.features.catalog import load_catalog
from risk.features.sources import STUDENT_TABLES
from risk.online.builder import OnlineFeatureBuilder
from risk.online.payload_fast import CleanPayload, Deferred
from risk.online.rowwise import RowEvaluator, StudentRecords

CATALOG = load_catalog(Path(__file__).resolve().parent.parent / "configs" / "features.yaml")


def assert_rows_equal(evaluator: RowEvaluator, students: dict[int, StudentRecords], batch: pd.DataFrame) -> int:
    """Every batch row equals the evaluator's vector exactly; every student outside the batch cohort is outside it too."""
    compared, different = mismatches(evaluator, students, batch, CATALOG.names)
    assert not different, different[:20]
    return compared


def test_edge_cases_of_the_hand_made_world_equal_the_sql():
    frames = edge_world()
    rates = context_rates_frame()
    batch = features_from_frames(frames | {"context_rates": rates}, EDGE_AS_OF, CATALOG)
    evaluator = RowEvaluator(CATALOG, AsOf(EDGE_AS_OF), references(frames["schools"], frames["calendar"], rates))
    assert assert_rows_equal(evaluator, per_student(frames), batch) == 7  # S4 left before as_of


@pytest.fixture(scope="module")
def generated(world):
    """The generated world's validated tables and past rates, read once."""
    validated = world / "validated"
    frames = {name: pd.read_parquet(validated / name) for name in (*STUDENT_TABLES, "schools", "calendar")}
    return validated, frames, per_student(frames)


@pytest.mark.parametrize("week", [1, 6, 15, 30])
def test_every_student_of_a_generated_world_equals_the_sql(generated, service_builder, tmp_path, week):
    # Weeks 1 and 6 of the newest term, its last weeks, and a date in the term before (the
    # previous term's days, grades entered since, a screening after as_of all come into play).
    validated, frames, students = generated
    terms = sorted(frames["calendar"]["term"].unique())
    newest = pd.to_datetime(frames["calendar"].loc[frames["calendar"]["term"] == terms[-1], "date"])
    earlier = pd.to_datetime(frames["calendar"].loc[frames["calendar"]["term"] == terms[-2], "date"])
    as_of = (earlier.min() + pd.Timedelta(weeks=8) if week == 30 else newest.min() + pd.Timedelta(weeks=week - 1)).date()
    build_feature_matrix(validated, as_of, tmp_path / "batch.parquet", settings=Settings(), catalog=CATALOG,
                         progress=False)
    batch = pd.read_parquet(tmp_path / "batch.parquet")
    evaluator = RowEvaluator(CATALOG, AsOf(as_of), service_builder[0].references)
    assert_compared(assert_rows_equal(evaluator, students, batch), CATALOG.names, floor=1000)


# ---------------------------------------------------------------------- clean payloads
def source_payloads(source: Path, count: int) -> list[dict[str, list[dict]]]:
    """``count`` students' raw records as the JSON an upstream system sends (the export's own errors included)."""
    tables = read_student_tables(source)
    return student_payloads(tables, tables["enrollments"]["student_id"].drop_duplicates().sample(count, random_state=5))


@pytest.fixture(scope="module")
def raw_payloads(world):
    # 1,000 of the ~3,000 students; the first 300 are those of a sample of 300 (one permutation).
    return source_payloads(world / "source", 1000)


@pytest.fixture(scope="module")
def clean_payload(service_builder, raw_payloads):
    """A payload every record of which is valid, with records in every table."""
    builder, _ = service_builder
    return next(p for p in raw_payloads if isinstance(checked := builder.clean.check(p, WORLD_KEY), CleanPayload)
                and not checked.rejected
                and all(p[t] for t in ("attendance_daily", "grades", "health", "household", "behaviour", "assistance")))


@pytest.fixture(scope="module")
def service_builder(world):
    builder = OnlineFeatureBuilder.load(world / "validated", catalog=CATALOG, settings=Settings(), key=WORLD_KEY)
    calendar = pd.read_parquet(world / "validated" / "calendar")
    newest = pd.to_datetime(calendar.loc[calendar["term"] == calendar["term"].max(), "date"])
    return builder, (newest.min() + pd.Timedelta(weeks=7)).date()


def assert_same_as_the_full_checks(builder, payloads, as_of, full=None) -> list[Deferred]:
    """Where the fast way decides, it decides as the full checks: the same records left out by the same rules
    (and details), the same vector and hint, or the same refusal. Returns what it left to the full checks.

    ``full`` is the full checks' answer to ``payloads`` when the caller has it already."""
    fast = builder.features_fast(payloads, as_of)
    full = builder.features_many(payloads, as_of, fast=False) if full is None else full
    deferred = []
    for a, b in zip(fast, full, strict=True):
        if isinstance(a, Deferred):
            deferred.append(a)
            continue
        if isinstance(b, ContractError):
            assert isinstance(a, ContractError) and str(a) == str(b)
            continue
        assert not isinstance(a, ContractError), str(a)
        assert (a.student_key, a.term, a.school_id, a.hint) == (b.student_key, b.term, b.school_id, b.hint)
        assert [(r.table, r.record, r.rule) for r in a.rejected] == [(r.table, r.record, r.rule) for r in b.rejected]
        assert [r.detail for r in a.rejected] == [r.detail for r in b.rejected]
        np.testing.assert_array_equal(a.values, b.values)
    return deferred


def test_the_fast_way_decides_payloads_with_bad_records_as_the_full_checks(raw_payloads, service_builder):
    builder, as_of = service_builder
    full = builder.features_many(raw_payloads, as_of, fast=False)
    deferred = assert_same_as_the_full_checks(builder, raw_payloads, as_of, full)
    with_bad = [r for r in full if not isinstance(r, ContractError) and r.rejected]
    # The export injects errors into 0.5% of rows: most students' years of records hold one. The fast
    # way must decide nearly all payloads, bad records and all, or the service is not fast for them.
    assert len(with_bad) >= 100 and len(deferred) <= 0.05 * len(raw_payloads), [d.reason for d in deferred]
    assert {d.reason for d in deferred} <= {"no valid enrollment", "no enrollment with a valid student_id"}


# table, record, column, value: each one record of a clean payload broken one way.
BREAKS = {
    "a status outside the contract": ("attendance_daily", 0, "status", "Present"),
    "a Buddhist-Era year in a date": ("household", 0, "screened_on", "2568-06-23"),
    "a date that is words": ("health", 0, "measured_on", "yesterday"),
    "a number out of range": ("health", 0, "weight_kg", 400.0),
    "a number as words": ("grades", 0, "credits", "one"),
    "a credit off its half steps": ("grades", 0, "credits", 1.3),
    "an invalid ID": ("grades", 0, "student_id", "1234567890123"),
    "an unknown school": ("enrollments", 0, "school_id", "9999999999"),
    "an unknown term": ("grades", 0, "term", "2490-1"),
    "a missing required value": ("household", 0, "household_size", None),
    "a day the school was closed": ("attendance_daily", 0, "date", "WEEKEND"),
    "a day of a term the student was not enrolled in": ("attendance_daily", 0, "date", "2560-06-01"),
    "a number for a date": ("attendance_daily", 0, "date", 20260720),
    "a number for a status": ("attendance_daily", 0, "status", 5),
    "a flag for a number": ("grades", 0, "credits", True),
    "a flag for a date": ("enrollments", 0, "status_date", True),
    "a number for text": ("enrollments", 0, "classroom", 61),
    "a whole number off": ("household", 0, "household_size", 2.5),
    "a flag as a word nobody reads": ("behaviour", 0, "gaming", "maybe"),
    "a list": ("health", 0, "height_cm", [150]),
    "an object": ("assistance", 0, "programme", {"name": "cct"}),
    "a text over the limit": ("enrollments", 0, "classroom", "x" * 101),
    "a required key taken away": ("behaviour", 0, "sdq_peer", "DELETE"),
    "a record that is no object": ("grades", 0, None, "SCALAR"),
}
# Not broken, or not for the fast way to say: the full checks read these; the fast way defers, saying why.
UNUSUAL = {
    "a number with padding": ("grades", 0, "credits", " 1.5"),
    "padded text": ("enrollments", 0, "sex", " male"),
    "a date not written YYYY-MM-DD": ("health", 0, "measured_on", "06/03/2025"),
    "a date in year 0000": ("household", 0, "screened_on", "0000-06-23"),
    "a day that does not exist": ("household", 0, "screened_on", "2024-02-30"),
    "a number in scientific notation": ("health", 0, "weight_kg", "4e1"),
    "another student's ID": ("grades", 0, "student_id", thai_id("110370012345")),
}


def as_student(payload: dict, number: int) -> dict:
    """``payload`` with every record's student_id the valid Thai ID numbered ``number`` (made up, no real person's)."""
    student_id = thai_id(f"{350_000_000_000 + number}")
    return {table: [record | {"student_id": student_id} for record in records] for table, records in payload.items()}


def broken(payload: dict, table: str, index: int, column: str | None, value: object) -> dict:
    out = copy.deepcopy(payload)
    if value == "WEEKEND":  # the Saturday after the first school day on record
        first = dt.date.fromisoformat(out[table][index][column])
        value = (first + dt.timedelta(days=(5 - first.weekday()) % 7 or 7)).isoformat()
    if value == "SCALAR":
        out[table][index] = 7
    elif value == "DELETE":
        del out[table][index][column]
    else:
        out[table][index][column] = value
    return out


@pytest.mark.parametrize("kind", sorted(BREAKS))
def test_a_broken_record_is_left_out_by_the_fast_way_as_by_the_full_checks(clean_payload, service_builder, kind):
    builder, as_of = service_builder
    table, index, column, value = BREAKS[kind]
    payload = broken(clean_payload, table, index, column, value)
    assert assert_same_as_the_full_checks(builder, [payload], as_of) == []
    (fast,) = builder.features_fast([payload], as_of)
    assert (table, index) in [(r.table, r.record) for r in fast.rejected]
    # An enrollment left out takes its term's days of attendance with it, as in batch.
    others = {(r.table, r.rule) for r in fast.rejected if (r.table, r.record) != (table, index)}
    assert others <= {("attendance_daily", "no_enrollment_that_term")} and (not others or table == "enrollments")


@pytest.mark.parametrize("table", ["health", "attendance_daily"])
def test_a_key_outside_the_contract_is_ignored_by_the_fast_way_as_by_the_full_checks(clean_payload, service_builder,
                                                                                     table):
    """As batch ignores an extra column of an export file: the record stays, judged on its contract columns."""
    builder, as_of = service_builder
    one = broken(clean_payload, table, 0, "blood_type", "O")
    every = copy.deepcopy(clean_payload)
    for record in every[table]:
        record["remark"] = {"x": [1, 2]}
    assert assert_same_as_the_full_checks(builder, [clean_payload, one, every], as_of) == []
    plain, *others = builder.features_fast([clean_payload, one, every], as_of)
    for other in others:
        assert other.rejected == plain.rejected
        np.testing.assert_array_equal(other.values, plain.values)


@pytest.mark.parametrize("kind", sorted(UNUSUAL))
def test_an_unusual_record_sends_the_payload_the_full_way(clean_payload, service_builder, kind):
    builder, as_of = service_builder
    payload = broken(clean_payload, *UNUSUAL[kind])
    (fast,) = builder.features_fast([payload], as_of)
    assert isinstance(fast, Deferred) and fast.reason
    (full,) = builder.features_many([payload], as_of)
    assert not isinstance(full, Deferred)


@pytest.mark.parametrize("table", ["enrollments", "attendance_daily", "grades", "household", "health", "behaviour",
                                   "assistance"])
def test_every_column_of_every_json_type_is_decided_as_the_full_checks(clean_payload, service_builder, table):
    """Each column of the table's first and last record given each JSON type (and taken away)."""
    builder, as_of = service_builder
    values = ["abc", "", 5, -1.5, 0, True, False, None, [1], {"a": 1}, "9" * 13, "x" * 101, "DELETE"]
    changes = [(index, column, value) for index in sorted({0, len(clean_payload[table]) - 1})
               for column in TABLES[table].column_names for value in values]
    # Each change sent as another student: the full checks take the call in one pass and one statement
    # (payloads of one student take a pass each, ~0.15 s apiece); the fast way judges each payload alone.
    payloads = [broken(as_student(clean_payload, n), table, *change) for n, change in enumerate(changes)]
    deferred = assert_same_as_the_full_checks(builder, payloads, as_of)
    # Thirteen digits in a date column is the one value here the fast way leaves to Arrow's strptime.
    assert {d.reason for d in deferred} <= {"no valid enrollment", "a date not written YYYY-MM-DD"}
    assert len(deferred) <= 0.1 * len(payloads)


def test_records_may_list_their_keys_in_any_order(clean_payload, service_builder):
    builder, as_of = service_builder
    shuffled = copy.deepcopy(clean_payload)
    for table in ("attendance_daily", "grades", "household"):
        shuffled[table] = [dict(reversed(r.items())) if i % 2 else r for i, r in enumerate(shuffled[table])]
    assert builder.clean.check(shuffled, WORLD_KEY) is not None
    (a,), (b,) = builder.features_many([shuffled], as_of), builder.features_many([clean_payload], as_of, fast=False)
    np.testing.assert_array_equal(a.values, b.values)


def test_a_duplicate_record_is_left_out_by_the_fast_way_as_in_batch(clean_payload, service_builder):
    builder, as_of = service_builder
    payload = clean_payload
    for table in ("attendance_daily", "assistance"):
        copied = copy.deepcopy(payload)
        copied[table].append(dict(copied[table][0]))
        (fast,) = builder.features_fast([copied], as_of)
        assert [(r.record, r.rule) for r in fast.rejected] == [(len(payload[table]), "duplicate")]
        assert assert_same_as_the_full_checks(builder, [copied], as_of) == []
