"""Where a student stands within their school: their probability ranked among the school's students (issue 28).

"At risk, chance of dropping out 1%" reads as reassurance, although 1% may be several
times the school's usual risk. A teacher is better told where the child stands among
the children they know: "among the 10% most at risk in this school", "3× the school's
average". This module reads that from the school's latest finished run, for the
students a page shows, in one SQL query over the school's scores (window functions,
which SQLite ≥ 3.25 and PostgreSQL both have), never one query per child.

For a student of the school in that run (``n`` students, probabilities ``p``):

- ``rank``: 1 + the number of the school's students with a strictly higher probability;
- ``top_share``: the share of the school's students whose probability is at least the
  student's, in (0, 1] (``cume_dist`` over probabilities in descending order): the
  student is "among the ``top_share`` most at risk", ties counted against the claim;
- ``ratio_to_mean``: the student's probability over the school's mean probability
  (None when the mean is 0).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import exists, func, or_, select

from risk.store.db import Store
from risk.store.models import Score, ScoringRun

__all__ = ["SchoolStanding", "Standing", "school_standing"]


@dataclass(frozen=True, slots=True)
class Standing:
    """One student's place among their school's students in a run (see the module docstring)."""

    probability: float
    rank: int
    top_share: float
    ratio_to_mean: float | None


@dataclass(frozen=True, slots=True)
class SchoolStanding:
    """The school's latest finished run (None when no finished run scored it) and the standings asked for."""

    run_id: str | None
    as_of: dt.date | None
    students: int
    mean_probability: float | None
    by_student: dict[int, Standing] = field(default_factory=dict)


def school_standing(store: Store, school_id: str, student_keys: Iterable[int]) -> SchoolStanding:
    """The standing of each of ``student_keys`` scored in the school's latest finished run.

    The latest run is the newest finished one (by ``as_of``, then finishing time) that
    scored the school: a later run of other schools only, or one still running, does not
    count. Students not scored there (one who left the register) have no standing.
    """
    keys = sorted({int(k) for k in student_keys})
    s, r = Score.__table__.c, ScoringRun.__table__.c
    latest = (select(r.run_id).where(r.status == "finished",
                                     exists().where(s.run_id == r.run_id, s.school_id == school_id))
              .order_by(r.as_of.desc(), r.finished_at.desc()).limit(1).scalar_subquery())
    higher_first = s.probability.desc()
    ranked = (select(s.run_id, s.as_of, s.student_key, s.probability,
                     func.rank().over(order_by=higher_first).label("rank"),
                     func.cume_dist().over(order_by=higher_first).label("top_share"),
                     func.avg(s.probability).over().label("mean"),
                     func.count().over().label("students"),
                     func.row_number().over(order_by=s.student_key).label("row"))
              .where(s.run_id == latest, s.school_id == school_id).subquery())
    # Row 1 comes along whoever it is, so the run, its size and mean are known even when
    # none of the students asked about was scored in it.
    query = select(ranked).where(or_(ranked.c.row == 1, ranked.c.student_key.in_(keys)))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    if not rows:
        return SchoolStanding(run_id=None, as_of=None, students=0, mean_probability=None)
    mean = float(rows[0].mean)
    wanted = set(keys)
    return SchoolStanding(
        run_id=rows[0].run_id, as_of=rows[0].as_of, students=int(rows[0].students), mean_probability=mean,
        by_student={int(row.student_key): Standing(probability=float(row.probability), rank=int(row.rank),
                                                   top_share=float(row.top_share),
                                                   ratio_to_mean=float(row.probability) / mean if mean > 0 else None)
                    for row in rows if int(row.student_key) in wanted})
