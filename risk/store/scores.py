"""Scores: written a bucket at a time, read back by run, by student, or as each student's previous score.

A score frame has one row per student (shape (n_students, ~17)) with the columns
of :data:`SCORE_COLUMNS`: the pseudonym ``student_key`` (int64), ``as_of``
(date), area codes, the display hint (grade, classroom, sex, ``id_hint``),
``probability`` (calibrated, 0..1), ``risk_class`` and the reasons as lists of
text (or JSON text). Extra columns are ignored. Reads give the lists back as lists.

``raised_by`` (text or None) names the class policy rule (``exam_line``) that set the
class when the model's probability alone gives a lower one; None when the model's
class stands. It is stored because a teacher must see a rule-flagged child apart from
a model-flagged one (issue 28). A bucket's school context (reasons about the school,
not the child: :mod:`risk.store.context`) is written in the same transaction as its
scores, so a bucket written again, on resume, counts once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence

import pandas as pd
from sqlalchemy import Connection, delete, func, insert, select

from risk.store.bulk import check_frame, insert_frame, parse_json_lists, read_frames
from risk.store.context import forget_bucket_context, write_bucket_context
from risk.store.db import Store, StoreError
from risk.store.models import RISK_CLASSES, Score, ScoringRun, ScoringRunBucket
from risk.store.runs import utc_now

__all__ = [
    "HINT_COLUMNS",
    "SCORE_COLUMNS",
    "check_id_hints",
    "decode_lists",
    "latest_scores",
    "previous_scores",
    "student_history",
    "write_bucket_scores",
]

# The columns a score frame brings; the store adds id, run_id and bucket.
SCORE_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in Score.__table__.columns if c.name not in ("id", "run_id", "bucket")
)
REQUIRED_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in Score.__table__.columns if c.name in SCORE_COLUMNS and not c.nullable
)
HINT_COLUMNS: tuple[str, ...] = ("grade_level", "classroom", "sex", "id_hint")
LIST_COLUMNS: tuple[str, ...] = ("reasons_en", "reasons_th", "reason_codes", "actions_en", "actions_th")
CHUNK_ROWS = 100_000


def write_bucket_scores(store: Store, run_id: str, bucket: int, frame: pd.DataFrame,
                        context: pd.DataFrame | None = None) -> int:
    """Store one bucket's scores and its school context, and mark the bucket done, in one transaction.

    Scores and context rows already stored for (``run_id``, ``bucket``) are
    replaced, so writing a bucket twice leaves it once. ``context`` has one row per
    (school, code) of the bucket (:func:`risk.store.context.write_bucket_context`);
    None writes none. Returns the number of score rows written.

    Raises
    ------
    StoreError
        When a required column is missing, a class is unknown, or an ``id_hint``
        shows more than four digits of an ID.
    """
    _check_frame(frame)
    score = Score.__table__
    with store.writing(f"bucket {bucket} of run {run_id}") as conn:
        conn.execute(delete(score).where(score.c.run_id == run_id, score.c.bucket == bucket))
        _forget_bucket(conn, run_id, bucket)
        if context is None:
            forget_bucket_context(conn, run_id, bucket)
        else:
            write_bucket_context(conn, run_id, bucket, context)
        given = frame[[c for c in SCORE_COLUMNS if c in frame.columns]]
        rows = insert_frame(conn, score, given, {"run_id": run_id, "bucket": bucket})
        conn.execute(
            insert(ScoringRunBucket.__table__),
            {"run_id": run_id, "bucket": bucket, "rows": rows, "finished_at": utc_now()},
        )
    return rows


def _forget_bucket(conn: Connection, run_id: str, bucket: int) -> None:
    table = ScoringRunBucket.__table__
    conn.execute(delete(table).where(table.c.run_id == run_id, table.c.bucket == bucket))


def _check_frame(frame: pd.DataFrame) -> None:
    check_frame(frame, "scores", REQUIRED_COLUMNS, "risk_class", RISK_CLASSES, "Risk class")
    check_id_hints(frame["id_hint"])


def check_id_hints(hints: pd.Series) -> None:
    """Refuse any hint that shows five or more digits in a row: only the last four of an ID may be stored."""
    # Thai PDPA: a raw national ID must never reach the store; the hint is for recognition only.
    leaking = hints.astype("string").str.contains(r"\d{5}", regex=True, na=False)
    if leaking.any():
        raise StoreError(
            f"An id_hint at row {int(leaking.to_numpy().argmax())} shows more than four digits; "
            "store IDs masked to their last four (risk.data.ids.masked_id)."
        )


def previous_scores(
    store: Store, *, before_as_of: dt.date, school_ids: Iterable[str] | None = None
) -> pd.DataFrame:
    """Each student's latest score from a finished run dated before ``before_as_of``.

    Parameters
    ----------
    before_as_of : date
        Only runs with ``as_of`` strictly earlier count.
    school_ids : iterable of str, optional
        Keep only students whose latest earlier score was at one of these schools.

    Returns
    -------
    DataFrame of shape (n_students, 11)
        student_key, as_of, run_id, risk_class, probability, school_id and the
        display hint (grade_level, classroom, sex, id_hint); one row per student.
        When two finished runs share the latest ``as_of``, the later-finished wins.
    """
    s, r = Score.__table__.c, ScoringRun.__table__.c
    rank = func.row_number().over(
        partition_by=s.student_key, order_by=(s.as_of.desc(), r.finished_at.desc(), s.id.desc())
    )
    columns = [
        s.student_key, s.as_of, s.run_id, s.risk_class, s.probability, s.school_id,
        *(s[c] for c in HINT_COLUMNS),
    ]  # fmt: skip
    ranked = (
        select(*columns, rank.label("rank"))
        .join_from(Score.__table__, ScoringRun.__table__, s.run_id == r.run_id)
        .where(r.status == "finished", r.as_of < before_as_of)
        .subquery()
    )
    stmt = select(*(ranked.c[c.name] for c in columns)).where(ranked.c.rank == 1)
    if school_ids is not None:
        stmt = stmt.where(ranked.c.school_id.in_(list(school_ids)))
    stmt = stmt.order_by(ranked.c.student_key)
    with store.engine.connect() as conn:
        parts = list(read_frames(conn, stmt, CHUNK_ROWS))
    names = [c.name for c in columns]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=names)


def latest_scores(
    store: Store, run_id: str, *, columns: Sequence[str] | None = None, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """The run's scores in chunks of at most ``chunk_rows`` rows, in the order they were written.

    Parameters
    ----------
    columns : sequence of str, optional
        Which of ``bucket`` and :data:`SCORE_COLUMNS` to read (default: all). Reading
        only what is needed (say, area codes and class for summaries) is much faster
        than decoding every reason list.

    Raises
    ------
    StoreError
        When a column is not a score column.
    """
    s = Score.__table__.c
    names = ["bucket", *SCORE_COLUMNS] if columns is None else list(columns)
    unknown = [c for c in names if c not in SCORE_COLUMNS and c != "bucket"]
    if unknown:
        raise StoreError(f"Scores have no column {', '.join(unknown)}.")
    stmt = select(*(s[c] for c in names)).where(s.run_id == run_id).order_by(s.id)
    with store.engine.connect() as conn:
        for part in read_frames(conn, stmt, chunk_rows):
            yield decode_lists(part)


def student_history(store: Store, student_key: int) -> pd.DataFrame:
    """Every stored score of one student, newest first, with its run's id and status.

    Returns
    -------
    DataFrame of shape (n_scores, 20)
        run_id, run_status and the :data:`SCORE_COLUMNS`; lists decoded.
    """
    s, r = Score.__table__.c, ScoringRun.__table__.c
    stmt = (
        select(s.run_id, r.status.label("run_status"), *(s[c] for c in SCORE_COLUMNS))
        .join_from(Score.__table__, ScoringRun.__table__, s.run_id == r.run_id)
        .where(s.student_key == int(student_key))
        .order_by(s.as_of.desc(), r.started_at.desc())
    )
    with store.engine.connect() as conn:
        result = conn.execute(stmt)
        frame = pd.DataFrame.from_records([tuple(row) for row in result], columns=list(result.keys()))
    return decode_lists(frame)


def decode_lists(frame: pd.DataFrame) -> pd.DataFrame:
    """JSON-text list columns (reasons, actions) back into Python lists; NULL stays None."""
    for name in LIST_COLUMNS:
        if name in frame.columns:
            frame[name] = pd.Series(parse_json_lists(frame[name].tolist()), index=frame.index, dtype=object)
    return frame
