"""The service's feature path: the same vector as batch and as online_features, bad records left out by rule."""

from __future__ import annotations

import copy
import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import STUDENTS, WORLD_KEY, assert_compared, clean_tables, write_source
from online_frames import online_features

from risk.config import Settings
from risk.data.contract import TABLES
from risk.data.export_payloads import student_payloads
from risk.data.ids import pseudonym
from risk.data.quarantine import row_failures, split_chunk
from risk.data.reading import typed_frame
from risk.data.schemas import References, build_schema
from risk.data.validate import validate_sources
from risk.errors import ContractError
from risk.features.batch import build_feature_matrix
from risk.features.catalog import load_catalog
from risk.online.builder import OnlineFeatureBuilder
from risk.online.payload import schema_failures
from risk.online.payload_fast import Deferred

CATALOG = load_catalog(Path(__file__).resolve().parent.parent / "configs" / "features.yaml")
AS_OF = dt.date(2024, 6, 6)
KEY = b"fast-online-key-0123456789"


def payload_of(tables: dict[str, pd.DataFrame], student_id: str) -> dict[str, list[dict]]:
    """One student's rows of every student table, as the JSON an upstream system sends (dates as text)."""
    out = {}
    for name, frame in tables.items():
        if "student_id" in frame.columns:
            rows = frame[frame["student_id"] == student_id].drop(columns=["_file", "_row"], errors="ignore")
            out[name] = json.loads(rows.to_json(orient="records", date_format="iso", date_unit="s"))
    for rows in out.values():
        for row in rows:
            for column, value in row.items():
                if isinstance(value, str) and value.endswith("T00:00:00"):
                    row[column] = value[:10]
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The hand-made export of conftest, validated, with its batch matrix and a builder."""
    root = tmp_path_factory.mktemp("fast")
    source = write_source(clean_tables(), root / "source")
    validate_sources(source, root / "validated", key=KEY, progress=False, buckets=2)
    build_feature_matrix(root / "validated", AS_OF, root / "features.parquet", settings=Settings(),
                         catalog=CATALOG, progress=False)
    builder = OnlineFeatureBuilder.load(root / "validated", catalog=CATALOG, settings=Settings(), key=KEY)
    return root / "validated", pd.read_parquet(root / "features.parquet"), builder


def _old(validated: Path, tables: dict, as_of: dt.date = AS_OF) -> np.ndarray:
    frame = online_features(tables, as_of, validated=validated, key=KEY, catalog=CATALOG, settings=Settings())
    return frame[CATALOG.names].to_numpy()[0]


@pytest.mark.parametrize("student_id", STUDENTS)
def test_vector_equals_the_batch_row_and_online_features(small, student_id):
    validated, matrix, builder = small
    tables = payload_of(clean_tables(), student_id)
    result = builder.features(tables, AS_OF)
    expected = matrix[matrix["student_key"] == pseudonym(student_id, KEY)]
    assert result.student_key == expected["student_key"].iloc[0]
    assert result.names == tuple(CATALOG.names)
    assert result.values.dtype == np.float64 and result.values.shape == (len(CATALOG.names),)
    np.testing.assert_array_equal(result.values, expected[CATALOG.names].to_numpy()[0])
    np.testing.assert_array_equal(result.values, _old(validated, tables))
    assert result.rejected == ()


def test_display_hint_masks_the_id(small):
    _, _, builder = small
    hint = builder.features(payload_of(clean_tables(), STUDENTS[0]), AS_OF).hint
    assert (hint.id_hint, hint.grade_level, hint.classroom, hint.sex) == ("•••••••••" + STUDENTS[0][-4:], "P6", "6/1",
                                                                          "female")
    assert STUDENTS[0] not in repr(builder.features(payload_of(clean_tables(), STUDENTS[0]), AS_OF))


def test_a_bad_record_is_left_out_with_its_rule_and_the_rest_scores(small):
    validated, _, builder = small
    tables = payload_of(clean_tables(), STUDENTS[1])
    tables["attendance_daily"][1]["status"] = "Present"  # 4 June: an absence in the clean data
    result = builder.features(tables, AS_OF)
    assert [(r.table, r.record, r.rule, r.detail) for r in result.rejected] == [
        ("attendance_daily", 1, "not_allowed", "status = Present: not_allowed")]
    without = copy.deepcopy(tables)
    del without["attendance_daily"][1]
    np.testing.assert_array_equal(result.values, _old(validated, without))
    assert result.values[CATALOG.names.index("att_reported_share")] == pytest.approx(3 / 4)  # 4 of 5 days reported


def test_an_invalid_id_is_masked_in_the_detail(small):
    _, _, builder = small
    tables = payload_of(clean_tables(), STUDENTS[0])
    tables["health"][0]["student_id"] = "1234567890123"  # wrong check digit
    (rejected,) = builder.features(tables, AS_OF).rejected
    assert (rejected.table, rejected.rule) == ("health", "invalid_id")
    assert "1234567890123" not in rejected.detail and "0123" in rejected.detail


def test_a_repeated_record_is_a_duplicate_as_in_batch(small):
    validated, _, builder = small
    tables = payload_of(clean_tables(), STUDENTS[1])
    tables["assistance"].append(dict(tables["assistance"][0]))
    result = builder.features(tables, AS_OF)
    assert [(r.table, r.record, r.rule) for r in result.rejected] == [("assistance", 2, "duplicate")]
    np.testing.assert_array_equal(result.values, _old(validated, payload_of(clean_tables(), STUDENTS[1])))


def test_attendance_on_a_closed_day_is_rejected_like_batch(small):
    _, _, builder = small
    tables = payload_of(clean_tables(), STUDENTS[2])  # school B is closed on Friday 7 June
    tables["attendance_daily"].append({"student_id": STUDENTS[2], "date": "2024-06-07", "status": "present"})
    assert [(r.record, r.rule) for r in builder.features(tables, AS_OF).rejected] == [(4, "not_a_school_day")]


def test_no_valid_enrollment_is_a_contract_error(small):
    _, _, builder = small
    tables = payload_of(clean_tables(), STUDENTS[0])
    tables["enrollments"][0]["grade_level"] = "P7"
    with pytest.raises(ContractError, match="no valid enrollment.*grade_level = P7: not_allowed"):
        builder.features(tables, AS_OF)


def test_not_enrolled_at_as_of_is_a_contract_error(small):
    _, _, builder = small
    with pytest.raises(ContractError, match="not enrolled at 2024-11-15"):
        builder.features(payload_of(clean_tables(), STUDENTS[0]), dt.date(2024, 11, 15))


def test_a_payload_mixing_students_is_refused(small):
    _, _, builder = small
    tables = payload_of(clean_tables(), STUDENTS[0])
    tables["health"] = payload_of(clean_tables(), STUDENTS[1])["health"]
    with pytest.raises(ContractError, match="one student"):
        builder.features(tables, AS_OF)


def test_a_mixed_batch_is_checked_in_one_pass_with_the_results_of_single_calls(small):
    _, _, builder = small
    bad = payload_of(clean_tables(), STUDENTS[1])
    bad["attendance_daily"][1]["status"] = "Present"  # not_allowed
    bad["assistance"].append(dict(bad["assistance"][0]))  # duplicate, record 2
    refused = payload_of(clean_tables(), STUDENTS[0])
    refused["enrollments"][0]["grade_level"] = "P7"  # its only enrollment: nothing scorable
    payloads = [payload_of(clean_tables(), STUDENTS[0]), bad, refused, payload_of(clean_tables(), STUDENTS[2])]
    together = builder.features_many(payloads, AS_OF)
    assert [(r.table, r.record, r.rule) for r in together[1].rejected] == [
        ("attendance_daily", 1, "not_allowed"), ("assistance", 2, "duplicate")]
    assert together[0].rejected == () and together[3].rejected == ()
    assert isinstance(together[2], ContractError) and "grade_level = P7: not_allowed" in str(together[2])
    for payload, result in zip(payloads, together, strict=True):
        alone = builder.features_many([payload], AS_OF)[0]
        if isinstance(alone, ContractError):
            assert str(result) == str(alone)
        else:
            assert (result.student_key, result.rejected, result.hint) == (alone.student_key, alone.rejected, alone.hint)
            np.testing.assert_array_equal(result.values, alone.values)


def test_two_payloads_of_one_student_in_a_batch_are_not_duplicates_of_each_other(small):
    _, _, builder = small
    payload = payload_of(clean_tables(), STUDENTS[1])
    first, second = builder.features_many([payload, copy.deepcopy(payload)], AS_OF)
    assert first.rejected == () and second.rejected == ()
    np.testing.assert_array_equal(first.values, second.values)
    checked = builder.rules.check_many([payload, payload], KEY)
    assert checked[0].batch is not checked[1].batch  # checked in separate passes


def test_a_payload_that_cannot_be_read_fails_alone(small):
    _, _, builder = small
    broken = payload_of(clean_tables(), STUDENTS[0])
    del broken["enrollments"][0]["term"]  # a required column missing from its first record
    good = payload_of(clean_tables(), STUDENTS[2])
    result, fine = builder.features_many([broken, good], AS_OF)
    assert isinstance(result, ContractError) and "term" in str(result)
    np.testing.assert_array_equal(fine.values, builder.features(good, AS_OF).values)


def test_a_value_of_the_wrong_json_type_costs_its_record_alone_in_any_company(small):
    _, _, builder = small
    numbers = payload_of(clean_tables(), STUDENTS[1])
    numbers["attendance_daily"][1]["date"] = 20240604  # a number where the contract has a date
    numbers["grades"][0]["credits"] = True  # a flag where the contract has a number
    texts = payload_of(clean_tables(), STUDENTS[2])
    for fast in (True, False):
        together = builder.features_many([numbers, texts], AS_OF, fast=fast)
        assert [(r.table, r.record, r.rule, r.detail) for r in together[0].rejected] == [
            ("attendance_daily", 1, "bad_type", "date = unreadable: bad_type"),
            ("grades", 0, "bad_type", "credits = unreadable: bad_type")]
        assert together[1].rejected == () and together[1].hint == builder.features(texts, AS_OF).hint


def test_a_record_that_is_no_object_is_left_out_and_a_key_outside_the_contract_is_ignored(small):
    _, _, builder = small
    tables = payload_of(clean_tables(), STUDENTS[1])
    tables["attendance_daily"][0] = ["2024-06-03", "present"]
    tables["assistance"][0]["note"] = "paid in cash"
    for fast in (True, False):
        (result,) = builder.features_many([tables], AS_OF, fast=fast)
        assert [(r.table, r.record, r.rule, r.detail) for r in result.rejected] == [
            ("attendance_daily", 0, "bad_type", "the record is not a JSON object (list)")]


def test_an_extra_key_on_an_attendance_record_is_ignored_on_the_fast_way_and_the_full_checks_alike(small):
    """As batch ignores an extra column of an export file: the record is kept and judged on its contract columns."""
    _, _, builder = small
    plain = payload_of(clean_tables(), STUDENTS[0])
    expected = builder.features_many([plain], AS_OF, fast=False)[0]
    assert expected.rejected == ()
    one = copy.deepcopy(plain)
    one["attendance_daily"][0]["note"] = "x"
    every = copy.deepcopy(plain)  # an upstream system that adds one column to every record, of a wrong type too
    for record in every["attendance_daily"]:
        record["note"] = [1, {"a": "x" * 500}]
    for payload in (one, every):
        for fast in (True, False):
            (result,) = builder.features_many([payload], AS_OF, fast=fast)
            assert result.rejected == (), (fast, result.rejected)
            assert (result.student_key, result.hint) == (expected.student_key, expected.hint)
            np.testing.assert_array_equal(result.values, expected.values)
        (fast_only,) = builder.features_fast([payload], AS_OF)  # decided by the fast way itself, not deferred
        assert not isinstance(fast_only, Deferred | ContractError) and fast_only.rejected == ()


def test_a_long_text_is_left_out_and_echoed_only_in_part(small):
    _, _, builder = small
    tables = payload_of(clean_tables(), STUDENTS[1])
    tables["attendance_daily"][0]["status"] = "absent, " + "1103700123450" * 5  # long, and holding ID-like digits
    tables["attendance_daily"][1]["status"] = "x" * 5_000_000
    for fast in (True, False):
        (result,) = builder.features_many([tables], AS_OF, fast=fast)
        first, second = result.rejected
        assert (first.rule, second.rule, second.detail) == ("not_allowed", "bad_type", "status = unreadable: bad_type")
        assert "1103700123450" not in first.detail and len(first.detail) < 80


def test_a_birth_date_may_lie_before_the_data_window_and_a_measurement_may_not(small):
    """The contract's date window (Column.before_window), one rule for the fast way and the full checks alike."""
    _, _, builder = small
    tables = payload_of(clean_tables(), STUDENTS[0])
    tables["enrollments"][0]["birth_date"] = "2008-03-01"  # years before the window, as every birth date is
    tables["health"][0]["measured_on"] = "2022-01-10"  # before the window: a typing error, not a measurement
    for fast in (True, False):
        (result,) = builder.features_many([tables], AS_OF, fast=fast)
        assert [(r.table, r.record, r.rule, r.detail) for r in result.rejected] == [
            ("health", 0, "bad_date", "measured_on = 2022-01-10: bad_date")], fast
    (fast_only,) = builder.features_fast([tables], AS_OF)  # decided by the fast way itself, not deferred
    assert not isinstance(fast_only, Deferred | ContractError)


def test_many_dates_on_one_thread_still_give_each_date_its_own_vector(small):
    """Each date's plan is parsed once per thread; old ones are dropped after 16 dates."""
    _, _, builder = small
    payload = payload_of(clean_tables(), STUDENTS[0])
    first = builder.features(payload, AS_OF).values
    early = builder.features(payload, dt.date(2024, 6, 4)).values
    for day in range(1, 19):
        builder.features_many([payload], dt.date(2024, 5, 20) + dt.timedelta(days=day))
    np.testing.assert_array_equal(builder.features(payload, AS_OF).values, first)
    np.testing.assert_array_equal(builder.features(payload, dt.date(2024, 6, 4)).values, early)
    assert not np.array_equal(first, early, equal_nan=True)  # the dates do differ, so the test can tell them apart


def test_checks_reject_the_same_records_with_the_same_rules_as_pandera():
    records = [row for s in STUDENTS for row in payload_of(clean_tables(), s)["enrollments"]]
    records[0]["student_id"] = "1234567890123"  # wrong check digit
    records[1].update(grade_level="P9", sex=None, birth_date="2009-02-x")
    records[2].update(birth_date="1985-01-01", term="2567/1")
    frame, bad = typed_frame(pa.Table.from_pylist(records), TABLES["enrollments"])
    frame.insert(0, "student_key", np.arange(3, dtype=np.int64))
    refs = References(school_ids=frozenset({"1040100001"}), terms=frozenset({"2567-1"}),
                      window=(dt.date(2023, 1, 1), dt.date(2025, 1, 1)))
    schema = build_schema(TABLES["enrollments"], refs)
    ours = split_chunk(frame, schema_failures(schema, frame, bad))[1]
    pandera = split_chunk(frame, row_failures(schema, frame, bad))[1]
    pd.testing.assert_frame_equal(ours, pandera)
    assert list(ours["rule"]) == ["invalid_id", "bad_type", "bad_format"]  # each row's first rule by priority
    assert "not_allowed" in ours.loc[1, "rules"] and "unknown_school" in ours.loc[2, "rules"]


def test_threads_get_the_same_vectors_as_serial_calls(small):
    _, _, builder = small
    payloads = [payload_of(clean_tables(), s) for s in STUDENTS]
    serial = [builder.features(p, AS_OF).values for p in payloads]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: (i % 3, builder.features(payloads[i % 3], AS_OF).values), range(160)))
    for which, values in results:
        np.testing.assert_array_equal(values, serial[which])


def test_parity_on_synthetic_students_across_terms(world):
    """Realistic data: several terms of history, every table, two points in time."""
    validated = world / "validated"
    builder = OnlineFeatureBuilder.load(validated, catalog=CATALOG, settings=Settings(), key=WORLD_KEY)
    tables = {name: _source_table(world / "source" / name) for name, t in TABLES.items() if t.has_student}
    injected = pd.read_parquet(world / "source" / "_injected.parquet")
    dirty = set()
    for name, frame in tables.items():
        marked = frame.merge(injected[injected["table"] == name], left_on=["_file", "_row"], right_on=["file", "row"])
        dirty |= set(marked["student_id"])
    terms = sorted(tables["enrollments"]["term"].dropna().unique())
    # Every student of the last three terms none of whose records had an error injected (~400-500 a
    # term), not a sample: each payload is the student's whole history, built once.
    enrolled = tables["enrollments"]
    clean = enrolled.loc[~enrolled["student_id"].isin(dirty), "student_id"].dropna().drop_duplicates()
    payloads = dict(zip(clean, student_payloads({n: f.drop(columns=["_file", "_row"]) for n, f in tables.items()},
                                                clean), strict=True))
    compared = 0
    for term in terms[-3:]:
        as_of = _mid_term(validated, term)
        out = world / f"features-{as_of}.parquet"
        build_feature_matrix(validated, as_of, out, settings=Settings(), catalog=CATALOG, progress=False)
        matrix = pd.read_parquet(out).set_index("student_key")
        candidates = enrolled.loc[(enrolled["term"] == term) & enrolled["student_id"].isin(payloads), "student_id"]
        for student_id in candidates.drop_duplicates():
            key = pseudonym(student_id, WORLD_KEY)
            if key not in matrix.index:
                continue  # left before as_of
            result = builder.features(payloads[student_id], as_of)
            np.testing.assert_array_equal(result.values, matrix.loc[key, CATALOG.names].to_numpy(dtype=np.float64),
                                          err_msg=f"{term} {as_of}")
            compared += 1
    assert_compared(compared, result.names, floor=1000)


def _source_table(folder: Path) -> pd.DataFrame:
    parts = []
    for path in sorted(folder.iterdir()):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False) if path.suffix == ".csv" else pd.read_parquet(path)
        parts.append(frame.assign(_file=f"{folder.name}/{path.name}", _row=range(len(frame))))
    return pd.concat(parts, ignore_index=True)


def _mid_term(validated: Path, term: str) -> dt.date:
    calendar = pd.read_parquet(validated / "calendar", columns=["date", "term"])
    days = sorted(calendar.loc[calendar["term"] == term, "date"].unique())
    return pd.Timestamp(days[len(days) // 2]).date()
