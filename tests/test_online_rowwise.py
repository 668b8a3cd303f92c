"""The service's fast way equals batch: the numpy evaluator against the SQL plan, the clean-payload pass against the full checks.

The SQL of the domain modules is the definition of every feature, and the full
payload checks (:mod:`risk.features.payload`) decide what batch would quarantine.
:mod:`risk.features.rowwise` and :mod:`risk.features.payload_fast` are the fast
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
from conftest import WORLD_KEY, assert_compared
from feature_world import AS_OF as EDGE_AS_OF
from feature_world import context_rates_frame
from feature_world import world as edge_world

from risk.config import Settings
from risk.data.export_payloads import read_student_tables, student_payloads
from risk.errors import ContractError
from risk.features.base import AsOf
from risk.features.batch import build_feature_matrix
from risk.features.catalog import load_catalog
from risk.features.online import features_from_frames
from risk.features.rowwise import RowEvaluator, RowReferences, StudentRecords, records_from_frames
from risk.features.service import OnlineFeatureBuilder
from risk.features.sources import STUDENT_TABLES

CATALOG = load_catalog(Path(__file__).resolve().parent.parent / "configs" / "features.yaml")


def references(schools: pd.DataFrame, calendar: pd.DataFrame, rates: pd.DataFrame) -> RowReferences:
    by_school = {row["school_id"]: row for row in schools.to_dict("records")}
    days = calendar.assign(date=pd.to_datetime(calendar["date"]))
    calendars = {key: np.sort(group["date"].to_numpy().astype("datetime64[D]"))
                 for key, group in days.groupby(["school_id", "term"])}
    rate_map = {r.school_id: (float(r.school_rate), float(r.district_rate)) for r in rates.itertuples()}
    return RowReferences(school=by_school.get,
                         calendar=lambda s, t: calendars.get((s, t), np.empty(0, "datetime64[D]")),
                         rates=lambda term: rate_map)


def per_student(frames: dict[str, pd.DataFrame]) -> dict[int, StudentRecords]:
    """Every student's records, cut from whole-table arrays (one conversion per table)."""
    out: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    for name in STUDENT_TABLES:
        frame = frames[name].sort_values("student_key", kind="stable").reset_index(drop=True)
        columns = records_from_frames({name: frame}).tables[name]
        keys = frame["student_key"].to_numpy()
        bounds = np.flatnonzero(np.diff(keys)) + 1
        for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(keys)], strict=True):
            if stop > start:
                out.setdefault(int(keys[start]), {})[name] = {c: v[start:stop] for c, v in columns.items()}
    empty = {name: records_from_frames({name: frames[name].iloc[:0]}).tables[name] for name in STUDENT_TABLES}
    return {key: StudentRecords({**empty, **tables}) for key, tables in out.items()}


def assert_rows_equal(evaluator: RowEvaluator, students: dict[int, StudentRecords], batch: pd.DataFrame) -> int:
    """Every batch row equals the evaluator's vector exactly; every student outside the batch cohort is outside it too."""
    expected = batch.set_index("student_key")[CATALOG.names]
    for key, records in students.items():
        found = evaluator.evaluate(records)
        if key not in expected.index:
            assert found is None, f"student {key} is not in batch's cohort"
            continue
        assert found is not None, f"student {key} is in batch's cohort"
        row = expected.loc[key].to_numpy(np.float64)
        same = (found[1] == row) | (np.isnan(found[1]) & np.isnan(row))
        assert same.all(), {n: (a, b) for n, a, b, s in zip(CATALOG.names, found[1], row, same, strict=True) if not s}
    return len(expected)


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
    """A payload the fast way takes, with records in every table."""
    builder, _ = service_builder
    return next(p for p in raw_payloads if builder.clean.check(p, WORLD_KEY) is not None
                and all(p[t] for t in ("attendance_daily", "grades", "health", "household", "behaviour", "assistance")))


@pytest.fixture(scope="module")
def service_builder(world):
    builder = OnlineFeatureBuilder.load(world / "validated", catalog=CATALOG, settings=Settings(), key=WORLD_KEY)
    calendar = pd.read_parquet(world / "validated" / "calendar")
    newest = pd.to_datetime(calendar.loc[calendar["term"] == calendar["term"].max(), "date"])
    return builder, (newest.min() + pd.Timedelta(weeks=7)).date()


def test_the_fast_way_vouches_only_for_payloads_the_full_checks_find_clean(raw_payloads, service_builder):
    builder, as_of = service_builder
    payloads = raw_payloads
    fast = builder.features_many(payloads, as_of)
    full = builder.features_many(payloads, as_of, fast=False)
    vouched = clean_in_full = 0
    for payload, a, b in zip(payloads, fast, full, strict=True):
        took_fast = builder.clean.check(payload, WORLD_KEY) is not None
        full_clean = not isinstance(b, ContractError) and not b.rejected
        if took_fast:
            vouched += 1
            assert full_clean or (isinstance(b, ContractError) and "not enrolled" in str(b))
        clean_in_full += full_clean
        if isinstance(b, ContractError):
            assert isinstance(a, ContractError) and str(a) == str(b)
            continue
        assert (a.student_key, a.term, a.school_id, a.hint, a.rejected) == (b.student_key, b.term, b.school_id,
                                                                            b.hint, b.rejected)
        np.testing.assert_array_equal(a.values, b.values)
    # The export injects errors into 0.5% of rows: most students' year of records holds one.
    # Of the payloads that are clean, the fast way must take nearly all, or it is not worth having.
    assert clean_in_full >= 30 and vouched >= 0.9 * clean_in_full


BREAKS = {
    "a status outside the contract": ("attendance_daily", 0, "status", "Present"),
    "a date not written YYYY-MM-DD": ("health", 0, "measured_on", "06/03/2025"),
    "a Buddhist-Era year in a date": ("household", 0, "screened_on", "2568-06-23"),
    "a date in Thai digits": ("attendance_daily", 0, "date", "๒๐๒๕-๐๖-๑๑"),
    "a date in year 0000": ("household", 0, "screened_on", "0000-06-23"),
    "a number out of range": ("health", 0, "weight_kg", 400.0),
    "a number as words": ("grades", 0, "credits", "one"),
    "a credit off its half steps": ("grades", 0, "credits", 1.3),
    "another student's ID": ("grades", 0, "student_id", "1103700123453"),
    "an unknown school": ("enrollments", 0, "school_id", "9999999999"),
    "an unknown term": ("grades", 0, "term", "2490-1"),
    "a missing required value": ("household", 0, "household_size", None),
    "a day the school was closed": ("attendance_daily", 0, "date", "WEEKEND"),
}
# Not broken, only unusual: the full checks read these (and drop the unknown key); the fast way defers.
UNUSUAL = {
    "a flag as text": ("behaviour", 0, "gaming", "no"),
    "a key outside the contract": ("health", 0, "blood_type", "O"),
    "a number with padding": ("grades", 0, "credits", " 1.5"),
    "padded text": ("enrollments", 0, "sex", " male"),
}


@pytest.mark.parametrize("kind", sorted(BREAKS) + sorted(UNUSUAL))
def test_a_broken_or_unusual_record_sends_the_payload_the_full_way(clean_payload, service_builder, kind):
    builder, as_of = service_builder
    payload = clean_payload
    table, index, column, value = {**BREAKS, **UNUSUAL}[kind]
    broken = copy.deepcopy(payload)
    if value == "WEEKEND":  # the Saturday after the first school day on record
        first = dt.date.fromisoformat(broken[table][index][column])
        value = (first + dt.timedelta(days=(5 - first.weekday()) % 7 or 7)).isoformat()
    broken[table][index][column] = value
    assert builder.clean.check(broken, WORLD_KEY) is None
    (full,) = builder.features_many([broken], as_of)
    assert (isinstance(full, ContractError) or bool(full.rejected)) == (kind in BREAKS)


def test_records_may_list_their_keys_in_any_order(clean_payload, service_builder):
    builder, as_of = service_builder
    shuffled = copy.deepcopy(clean_payload)
    for table in ("attendance_daily", "grades", "household"):
        shuffled[table] = [dict(reversed(r.items())) if i % 2 else r for i, r in enumerate(shuffled[table])]
    assert builder.clean.check(shuffled, WORLD_KEY) is not None
    (a,), (b,) = builder.features_many([shuffled], as_of), builder.features_many([clean_payload], as_of, fast=False)
    np.testing.assert_array_equal(a.values, b.values)


def test_a_duplicate_record_sends_the_payload_the_full_way(clean_payload, service_builder):
    builder, as_of = service_builder
    payload = clean_payload
    for table in ("attendance_daily", "assistance"):
        broken = copy.deepcopy(payload)
        broken[table].append(dict(broken[table][0]))
        assert builder.clean.check(broken, WORLD_KEY) is None
        (full,) = builder.features_many([broken], as_of)
        assert [r.rule for r in full.rejected] == ["duplicate"]
