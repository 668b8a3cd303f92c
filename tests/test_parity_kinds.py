"""Every compute kind the domain modules declare: batch's SQL and the service's numpy evaluator give the same value.

``tests/test_online_rowwise.py`` holds the two paths to each other over the shipped
catalog. An analyst may enable any kind in YAML, so here a catalog of every kind with
each of its variants (``tests/parity_support.py``) is compared exactly (NaN equals NaN,
nothing else is close enough) on the hand-made worlds of ``tests/feature_world.py`` and
on students of the session's generated world, at several points of a term. The kinds
each side knows are compared as names too, and one ulp added to any one kind's numpy
function must fail the comparison, so the comparison cannot pass by comparing nothing.

The fast way's fallbacks are tested last: only those the design expects are caught,
each counted by reason and logged; any other exception propagates.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import structlog
from conftest import STUDENTS, WORLD_KEY, clean_tables, write_source
from feature_world import AS_OF, S11, context_rates_frame, event_edge_world
from online_frames import features_from_frames
from parity_support import (
    GRADE_KINDS,
    WHERE_KINDS,
    every_kind_catalog,
    mismatches,
    per_student,
    references,
)
from test_online_fast import CATALOG as SHIPPED
from test_online_fast import payload_of

from risk.config import Settings
from risk.data.validate import validate_sources
from risk.features import attendance, enrollment
from risk.features.base import AsOf
from risk.features.catalog import DOMAINS, Catalog
from risk.features.events import EVENT_KINDS
from risk.features.sources import STUDENT_TABLES
from risk.online.builder import OnlineFeatureBuilder
from risk.online.payload_fast import Deferred
from risk.online.rowwise import NeedsSql, RowEvaluator, StudentRecords
from risk.online.rowwise_kinds import FAMILY_OF, KINDS
from risk.online.rowwise_parts import PART_OF, PARTS
from risk.serve.metrics import ServiceMetrics


@pytest.fixture(scope="module")
def every(tmp_path_factory) -> Catalog:
    return every_kind_catalog(tmp_path_factory.mktemp("every_kind"))


def described(catalog: Catalog, different: list) -> list[tuple]:
    """Mismatches with what each feature computes, for a failure a reader can act on."""
    return [(key, name, catalog.get(name).domain, catalog.get(name).compute, numpy, sql)
            for key, name, numpy, sql in different[:20]]


# ---------------------------------------------------------------------- the kinds each side knows
def test_the_evaluator_implements_exactly_the_kinds_the_domain_modules_declare():
    declared = {"attendance": set(attendance.KINDS), "events": set(EVENT_KINDS), "enrollment": set(enrollment.KINDS),
                "grades": set(GRADE_KINDS)}
    implemented = {family: set(kinds) for family, kinds in KINDS.items()}
    for family in declared.keys() | implemented.keys():
        sql, numpy = declared.get(family, set()), implemented.get(family, set())
        assert not sql - numpy, f"{family}: kinds in SQL without a numpy twin: {sorted(sql - numpy)}"
        assert not numpy - sql, f"{family}: numpy kinds no domain module declares: {sorted(numpy - sql)}"
    assert set(FAMILY_OF) == set(DOMAINS) and set(PART_OF) == set(DOMAINS)
    assert set(PART_OF.values()) <= set(PARTS)


def test_the_catalog_of_every_kind_holds_every_kind_of_every_domain(every):
    by_family: dict[str, set[str]] = {}
    for domain in DOMAINS:
        generated = {f.compute["kind"] for f in every.by_domain(domain)}
        # latest_code reads a text column, which only the household screening has.
        assert generated | {"latest_code"} >= set(KINDS[FAMILY_OF[domain]]), domain
        by_family.setdefault(FAMILY_OF[domain], set()).update(generated)
    assert by_family == {family: set(kinds) for family, kinds in KINDS.items()}
    assert {f.compute["kind"] for f in every.enabled if "where" in f.compute} == set(WHERE_KINDS)


# ---------------------------------------------------------------------- the hand-made worlds
@pytest.fixture(scope="module")
def edge():
    """The edge world's frames, past rates, each student's records and the evaluator's references."""
    frames = event_edge_world()
    rates = context_rates_frame()
    return frames, rates, per_student(frames), references(frames["schools"], frames["calendar"], rates)


# The term's first day, as_of (a Friday), the term's last day, and the last day of the term before.
EDGE_POINTS = (dt.date(2024, 5, 20), AS_OF, dt.date(2024, 6, 14), dt.date(2024, 3, 15))


@pytest.mark.parametrize("as_of", EDGE_POINTS)
def test_every_kind_on_the_hand_made_worlds_equals_the_sql(every, edge, as_of):
    frames, rates, students, refs = edge
    batch = features_from_frames(frames | {"context_rates": rates}, as_of, every)
    compared, different = mismatches(RowEvaluator(every, AsOf(as_of), refs), students, batch, every.names)
    assert not different, described(every, different)
    assert compared >= 4


@pytest.fixture(scope="module")
def edge_batch(every, edge):
    frames, rates, _, _ = edge
    return features_from_frames(frames | {"context_rates": rates}, AS_OF, every)


def one_ulp_up(maker: Callable) -> Callable:
    """``maker`` whose features come out one ulp above the true value (NaN stays NaN)."""
    def mutated(spec: Any, moment: Any) -> Callable:
        feature = maker(spec, moment)
        return lambda data: np.nextafter(feature(data), np.inf)
    return mutated


@pytest.mark.parametrize(("family", "kind"), [(f, k) for f, kinds in KINDS.items() for k in kinds])
def test_one_ulp_in_any_kind_fails_the_comparison(monkeypatch, every, edge, edge_batch, family, kind):
    """Each kind has a present value on the edge world, so a twin one ulp off is caught, and only there."""
    _, _, students, refs = edge
    monkeypatch.setitem(KINDS[family], kind, one_ulp_up(KINDS[family][kind]))
    _, different = mismatches(RowEvaluator(every, AsOf(AS_OF), refs), students, edge_batch, every.names)
    assert different, f"one ulp in {family} kind {kind!r} went unnoticed"
    caught = {(FAMILY_OF[every.get(name).domain], every.get(name).compute["kind"]) for _, name, _, _ in different}
    assert caught == {(family, kind)}


# Two events of S11 on as_of itself, one of the edge world's and one more; the one ranked the latest, decided by
# the part's columns in order (risk.features.events), and a column whose latest value shows which it was.
SAME_DAY = {
    # amount_baht first: 0.3 (the edge world's uniform) before 50.0.
    "assistance": ({"student_key": S11, "date": AS_OF, "programme": "lunch", "amount_baht": 50.0, "received": False},
                   "amount_baht", 0.3),
    # household_size and the income equal; house_condition "fair" before "poor" (text by code point).
    "household": ({"student_key": S11, "screened_on": AS_OF, "household_size": 7, "monthly_income_baht": 7000.3,
                   "house_condition": "fair", "owns_land": True, "water_source": "well", "has_electricity": True,
                   "has_vehicle": True, "dependants": 2, "distance_to_school_km": 3.3, "lives_with": "both_parents",
                   "cct_status": "extremely_poor"}, "proxy_means_score", 0.0),  # the edge world's "poor" house scores 1
    # weight_kg equal; a missing height_cm sorts last, so the edge world's 151.1 is the latest.
    "health": ({"student_key": S11, "measured_on": AS_OF, "weight_kg": 40.3, "height_cm": np.nan},
               "height_cm", 151.1),
}


@pytest.mark.parametrize("table", SAME_DAY)
def test_two_events_on_one_day_give_the_same_features_whatever_the_order_of_records(every, edge, table):
    """Batch and online, the extra event first or last: every feature of the domain the same, the latest as ranked."""
    frames, rates, _, refs = edge
    extra, column, latest = SAME_DAY[table]
    names = [f.name for f in every.by_domain(table)]
    (shown,) = [f.name for f in every.by_domain(table) if f.compute == {"kind": "latest", "column": column}]
    vectors = []
    for rows in (pd.concat([frames[table], pd.DataFrame([extra])]), pd.concat([pd.DataFrame([extra]), frames[table]])):
        world = frames | {table: rows.reset_index(drop=True)}
        batch = features_from_frames(world | {"context_rates": rates}, AS_OF, every).set_index("student_key")
        assert batch.loc[S11, shown] == latest
        vectors.append(batch.loc[S11, names].to_numpy(np.float64))
        found = RowEvaluator(every, AsOf(AS_OF), refs).evaluate(per_student(world)[S11])
        vectors.append(found[1][[every.names.index(n) for n in names]])
    for vector in vectors[1:]:
        np.testing.assert_array_equal(vector, vectors[0])


# ---------------------------------------------------------------------- the generated world
@pytest.fixture(scope="module")
def sampled(world, every):
    """400 students of the session's world (their records whole), and the service's references to it."""
    validated = world / "validated"
    frames = {name: pd.read_parquet(validated / name) for name in (*STUDENT_TABLES, "schools", "calendar")}
    keys = pd.Series(frames["enrollments"]["student_key"].unique()).sample(400, random_state=29)
    frames = {name: frame[frame["student_key"].isin(keys)] if name in STUDENT_TABLES else frame
              for name, frame in frames.items()}
    builder = OnlineFeatureBuilder.load(validated, catalog=every, settings=Settings(), key=WORLD_KEY)
    return frames, per_student(frames), builder.references


@pytest.mark.parametrize("week", [1, 6, 15, 30])
def test_every_kind_on_students_of_a_generated_world_equals_the_sql(every, sampled, week):
    """Weeks 1, 6 and 15 of the newest term, and week 8 of the term before."""
    frames, students, refs = sampled
    calendar = frames["calendar"].assign(date=pd.to_datetime(frames["calendar"]["date"]))
    terms = sorted(calendar["term"].unique())
    first = calendar.loc[calendar["term"] == terms[-2 if week == 30 else -1], "date"].min()
    as_of = (first + pd.Timedelta(weeks=8 if week == 30 else week - 1)).date()
    rates = pd.DataFrame([(school, *pair) for school, pair in refs.rates(AsOf(as_of).term).items()],
                         columns=["school_id", "school_rate", "district_rate"])
    batch = features_from_frames(frames | {"context_rates": rates}, as_of, every)
    compared, different = mismatches(RowEvaluator(every, AsOf(as_of), refs), students, batch, every.names)
    assert not different, described(every, different)
    assert compared >= 300


# ---------------------------------------------------------------------- fallbacks of the fast way
FAST_AS_OF = dt.date(2024, 6, 6)
FAST_KEY = b"fast-online-key-0123456789"


@pytest.fixture(scope="module")
def small_builder(tmp_path_factory):
    """A builder over conftest's hand-made export, validated."""
    root = tmp_path_factory.mktemp("fallbacks")
    source = write_source(clean_tables(), root / "source")
    validate_sources(source, root / "validated", key=FAST_KEY, progress=False, buckets=2)
    return OnlineFeatureBuilder.load(root / "validated", catalog=SHIPPED, settings=Settings(), key=FAST_KEY)


def fallbacks(reason: str) -> float:
    """The service's count of fallbacks for ``reason`` (0 before the first)."""
    return ServiceMetrics().registry.get_sample_value("risk_online_fallbacks_total", {"reason": reason}) or 0.0


@contextlib.contextmanager
def info_logs() -> Iterator[list[dict]]:
    """The log entries of the block, info and above (a library logs warnings only until a program configures it)."""
    saved = structlog.get_config()
    try:
        with structlog.testing.capture_logs() as logs:
            structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
            yield logs
    finally:
        structlog.configure(**saved)


def test_a_deferred_payload_is_counted_and_logged_with_its_reason_alone(small_builder):
    payload = payload_of(clean_tables(), STUDENTS[0])
    payload["enrollments"][0]["sex"] = " female"  # padded text: the full checks decide
    (good,) = small_builder.features_fast([payload_of(clean_tables(), STUDENTS[0])], FAST_AS_OF)
    (first,) = small_builder.features_fast([payload], FAST_AS_OF)
    assert not isinstance(good, Deferred) and isinstance(first, Deferred)
    before = fallbacks(first.reason)
    with info_logs() as logs:
        (again,) = small_builder.features_fast([payload], FAST_AS_OF)
    assert again == first and fallbacks(first.reason) == before + 1
    assert [(e["event"], e["reason"]) for e in logs] == [("online features take the full way", first.reason)]
    assert STUDENTS[0] not in repr(logs)


def test_a_student_the_evaluator_cannot_place_is_counted_and_takes_the_full_way(small_builder, monkeypatch):
    def cannot_place(*_: Any) -> None:
        raise NeedsSql("enrollments the evaluator leaves to SQL")

    monkeypatch.setitem(PARTS, "attendance", cannot_place)
    as_of = FAST_AS_OF - dt.timedelta(days=1)  # a date whose evaluator the builder has not built yet
    before = fallbacks("enrollments the evaluator leaves to SQL")
    (fast,) = small_builder.features_fast([payload_of(clean_tables(), STUDENTS[0])], as_of)
    assert fast == Deferred("enrollments the evaluator leaves to SQL")
    assert fallbacks("enrollments the evaluator leaves to SQL") == before + 1
    (full,) = small_builder.features_many([payload_of(clean_tables(), STUDENTS[0])], as_of)
    assert not isinstance(full, Deferred)


def test_an_unexpected_exception_of_the_evaluator_is_not_swallowed(small_builder, monkeypatch):
    def broken(spec: Any, moment: Any) -> Callable:
        def feature(data: Any) -> float:
            raise ValueError("a bug in a numpy twin")
        return feature

    monkeypatch.setitem(KINDS["attendance"], "rate", broken)
    as_of = FAST_AS_OF - dt.timedelta(days=2)  # a date whose evaluator the builder has not built yet
    with pytest.raises(ValueError, match="a bug in a numpy twin"):
        small_builder.features_fast([payload_of(clean_tables(), STUDENTS[0])], as_of)


def test_two_enrollments_of_the_term_are_left_to_sql(edge):
    frames, _, students, refs = edge
    records = students[S11]
    twice = {name: np.concatenate([values, values]) for name, values in records.table("enrollments").items()}
    with pytest.raises(NeedsSql):
        RowEvaluator(Catalog(version="none", features=[]), AsOf(AS_OF), refs).evaluate(
            StudentRecords({**records.tables, "enrollments": twice}))
