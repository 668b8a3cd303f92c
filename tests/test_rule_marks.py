"""Rule marks and school context in the store (issue 28), on SQLite and PostgreSQL.

A teacher must see a child a class policy rule flagged apart from one the model
flagged, so ``raised_by`` goes with the score into the store and onto the alert; school
context is about the school, not the child, so it is kept once per school and code,
counted over the explained students, and a bucket written again counts once.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pandas as pd
import pytest
import sqlalchemy as sa
from test_alert_idempotency import alerts_of, run_at
from test_store import JULY_24, SCHOOL_A, SCHOOL_B, new_run, scores_frame

from risk.scoring.alerts import build_alerts
from risk.scoring.batch import bucket_context
from risk.scoring.settings import load_scoring_settings
from risk.store import (
    Store,
    acknowledge,
    latest_scores,
    open_alerts,
    open_store,
    student_history,
    write_alerts,
    write_bucket_scores,
)
from risk.store.context import ContextLine, school_context
from risk.store.models import Alert

TRANSITION = ("transition_year", "In P6 or M3", "เรียนชั้น ป.6 หรือ ม.3")
SCHOOL_RATE = ("school_past_dropout_rate", "The school lost 9% last year", "ปีที่แล้วโรงเรียนมีนักเรียนออก 9%")


@pytest.fixture
def store(backend: tuple[str, str | None]) -> Iterator[Store]:
    opened = open_store(backend[0])
    yield opened
    opened.close()


def explained(rows: list[tuple[int, str, list[tuple[str, str, str]]]]) -> pd.DataFrame:
    """Score rows as explained_scores leaves them: (student_key, school_id, context reasons) each."""
    return pd.DataFrame({
        "student_key": [k for k, _, _ in rows], "school_id": [s for _, s, _ in rows],
        "context_codes": [json.dumps([c for c, _, _ in found]) for _, _, found in rows],
        "context_en": [json.dumps([e for _, e, _ in found]) for _, _, found in rows],
        "context_th": [json.dumps([t for _, _, t in found], ensure_ascii=False) for _, _, found in rows],
    })  # fmt: skip


# --- counting a bucket's context ------------------------------------------------------------------


def test_bucket_context_counts_each_explained_student_once_per_school_and_code() -> None:
    frame = explained([(1, SCHOOL_A, [TRANSITION, SCHOOL_RATE]), (2, SCHOOL_A, [SCHOOL_RATE]),
                       (3, SCHOOL_A, []), (4, SCHOOL_B, [SCHOOL_RATE]), (5, SCHOOL_B, [SCHOOL_RATE, SCHOOL_RATE])])
    rows = bucket_context(frame)
    counts = {(s, c): n for s, c, n in zip(rows["school_id"], rows["code"], rows["students"], strict=True)}
    assert counts == {(SCHOOL_A, "transition_year"): 1, (SCHOOL_A, "school_past_dropout_rate"): 2,
                      (SCHOOL_B, "school_past_dropout_rate"): 2}
    assert set(rows.loc[rows["code"] == "transition_year", "th"]) == {TRANSITION[2]}


def test_a_frame_without_context_columns_has_no_context() -> None:
    assert bucket_context(pd.DataFrame({"student_key": [1], "school_id": [SCHOOL_A]})).empty


# --- the store ----------------------------------------------------------------------------------


def test_a_bucket_written_again_counts_its_school_context_once(store: Store) -> None:
    run_id = new_run(store, JULY_24)
    scores = scores_frame([1, 2, 3], ["at_risk", "at_risk", "normal"], JULY_24)
    context = bucket_context(explained([(1, SCHOOL_A, [TRANSITION, SCHOOL_RATE]), (2, SCHOOL_A, [SCHOOL_RATE])]))
    for _ in range(2):  # a resumed run writes the bucket it was killed in again
        write_bucket_scores(store, run_id, 0, scores, context)
    other = bucket_context(explained([(7, SCHOOL_A, [SCHOOL_RATE]), (8, SCHOOL_B, [TRANSITION])]))
    write_bucket_scores(store, run_id, 1, scores_frame([7, 8], ["at_risk", "problem"], JULY_24), other)
    assert school_context(store, run_id, SCHOOL_A) == [
        ContextLine(SCHOOL_RATE[0], SCHOOL_RATE[1], SCHOOL_RATE[2], 3),
        ContextLine(TRANSITION[0], TRANSITION[1], TRANSITION[2], 1)]
    assert [line.students for line in school_context(store, run_id, SCHOOL_B)] == [1]


def test_a_bucket_written_again_without_context_leaves_none_of_its_old_rows(store: Store) -> None:
    run_id = new_run(store, JULY_24)
    scores = scores_frame([1], ["at_risk"], JULY_24)
    write_bucket_scores(store, run_id, 0, scores, bucket_context(explained([(1, SCHOOL_A, [TRANSITION])])))
    write_bucket_scores(store, run_id, 0, scores)
    assert school_context(store, run_id, SCHOOL_A) == []


def test_raised_by_is_stored_with_the_score_and_read_back(store: Store) -> None:
    run_id = new_run(store, JULY_24)
    frame = scores_frame([1, 2], ["at_risk", "at_risk"], JULY_24).assign(raised_by=["exam_line", None])
    write_bucket_scores(store, run_id, 0, frame)
    stored = pd.concat(latest_scores(store, run_id, columns=["student_key", "raised_by"])).sort_values("student_key")
    assert stored["raised_by"].tolist()[0] == "exam_line" and pd.isna(stored["raised_by"].tolist()[1])
    assert student_history(store, 1)["raised_by"].tolist() == ["exam_line"]


# --- alerts ----------------------------------------------------------------------------------------


def raised_by_of(store: Store) -> dict[int, str | None]:
    """Each student's current alert's raised_by."""
    a = Alert.__table__.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(a.student_key, a.raised_by).where(a.superseded_at.is_(None)))
        return {int(k): r for k, r in rows}


def test_an_alert_carries_raised_by_and_an_acknowledged_one_keeps_its_own(store: Store) -> None:
    first = alerts_of({1: "at_risk", 2: "at_risk", 3: "at_risk"}).assign(raised_by=["exam_line", None, "exam_line"])
    write_alerts(store, run_at(store), first)
    assert raised_by_of(store) == {1: "exam_line", 2: None, 3: "exam_line"}
    assert open_alerts(store, "1040100001").set_index("student_key")["raised_by"].to_dict()[1] == "exam_line"
    acknowledge(store, int(open_alerts(store, "1040100001").set_index("student_key").loc[3, "id"]), "Home visit",
                JULY_24)
    # Scored again: the model now flags 1 itself, the rule now raises 2; 3 was acknowledged as it was.
    again = alerts_of({1: "at_risk", 2: "at_risk", 3: "at_risk"}).assign(raised_by=[None, "exam_line", None])
    counts = write_alerts(store, run_at(store, model_version="4"), again)
    assert counts["updated"] == 2 and counts["kept_acknowledged"] == 1
    assert raised_by_of(store) == {1: None, 2: "exam_line", 3: "exam_line"}


def test_build_alerts_copies_raised_by_from_the_scores(store: Store, tmp_path, champion) -> None:
    _, _, bundle = champion
    parts = tmp_path / "now.parquet"
    now = scores_frame([1, 2], ["at_risk", "problem"], JULY_24).assign(raised_by=["exam_line", None])
    for name in ("reasons_en", "reasons_th", "reason_codes"):
        now[name] = "[]"
    now.to_parquet(parts)
    new_run(store, dt.date(2026, 6, 1))
    alerts = build_alerts(store, [parts], as_of=JULY_24, bundle=bundle, scoring=load_scoring_settings())
    assert dict(zip(alerts["student_key"], alerts["raised_by"], strict=True)) == {1: "exam_line", 2: None}
    now.drop(columns=["raised_by"]).to_parquet(parts)  # a part written before rule marks existed
    alerts = build_alerts(store, [parts], as_of=JULY_24, bundle=bundle, scoring=load_scoring_settings())
    assert alerts["raised_by"].isna().all() and len(alerts) == 2
