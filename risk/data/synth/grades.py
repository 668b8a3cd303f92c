"""Term grades: Thai curriculum subjects with credits, grades 0–4 and the marks ร มส มผ ผ.

Subject codes follow the Thai basic-education pattern ``ท21101``: the learning
area letter (ท Thai, ค maths, ว science, ส social studies, พ health/PE, ศ arts,
ง careers, อ English; ก for activities), the level (1 primary, 2 lower
secondary, 3 upper secondary), the year within the level, the type (1 basic,
2 additional, 9 activity) and a two-digit number, odd in semester 1 and even in
semester 2. Kindergarten has no grades, and nor does a student who left mid-term.

A subject's score comes from ability and engagement (and a little poverty); a
student under the 80% attendance line is not eligible for the exam and gets มส
in most subjects (มผ in activities).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from risk.data.contract import ALL_GRADE_MARKS
from risk.data.synth.config import SynthConfig
from risk.data.synth.frames import Batch
from risk.data.synth.population import M1, M4, P1, sigmoid
from risk.data.synth.term import TermView

__all__ = ["Curriculum", "build_curriculum", "grades_batch"]

LEVELS = ("primary", "lower", "upper")
_OPTIONAL_ORDER = ("ศ", "ง", "พ")  # the subjects a school may leave ungraded in a term, in this order
ZERO, INCOMPLETE, NOT_ELIGIBLE, ACTIVITY_FAIL, ACTIVITY_PASS = (
    ALL_GRADE_MARKS.index(m) for m in ("0", "ร", "มส", "มผ", "ผ"))
_POINTS = np.array([0, 1, 1.5, 2, 2.5, 3, 3.5, 4], dtype=np.float32)


@dataclass
class Curriculum:
    """Subjects per level, padded to ``width``; arrays indexed [level, subject]."""

    codes: list[str]         # every subject code (the category list of subject_code)
    code_index: np.ndarray   # int (3, 7, 2, width): level, year in level (1–6), semester-1, subject
    credits: np.ndarray      # float (3, width)
    activity: np.ndarray     # bool (3, width)
    optional_rank: np.ndarray  # int (3, width): position among optional subjects, large if not optional
    present: np.ndarray      # bool (3, width): the level has this subject
    difficulty: np.ndarray   # float (3, width)


def build_curriculum(cfg: SynthConfig, rng: np.random.Generator) -> Curriculum:
    width = max(len(v) for v in cfg.grades.curriculum.values())
    codes: list[str] = []
    code_index = np.zeros((3, 7, 2, width), dtype=np.int32)
    credits = np.ones((3, width), dtype=np.float64)
    activity = np.zeros((3, width), dtype=bool)
    optional_rank = np.full((3, width), 99, dtype=np.int32)
    present = np.zeros((3, width), dtype=bool)
    for lv, level in enumerate(LEVELS):
        for j, (letter, kind, credit) in enumerate(cfg.grades.curriculum[level]):
            present[lv, j], credits[lv, j], activity[lv, j] = True, credit, kind == 9
            if letter in _OPTIONAL_ORDER:
                optional_rank[lv, j] = _OPTIONAL_ORDER.index(letter)
            for year in range(1, 7):
                for sem in (1, 2):
                    code_index[lv, year, sem - 1, j] = len(codes)
                    codes.append(f"{letter}{lv + 1}{year}{kind}{sem:02d}")
    difficulty = rng.normal(0, cfg.grades.subject_difficulty_sd, (3, width))
    return Curriculum(codes, code_index, credits, activity, optional_rank, present, difficulty)


def grades_batch(view: TermView, rate: np.ndarray, curriculum: Curriculum, term_code: str,
                 rng: np.random.Generator) -> tuple[Batch, np.ndarray, np.ndarray]:
    """The term's grade rows, and per active student the GPA and the share of subjects failed.

    Parameters
    ----------
    rate : attendance rate per active student (under the eligibility line → มส)

    Returns
    -------
    batch, gpa (n_active,), fail_share (n_active,)
    """
    gc, line = view.cfg.grades, view.cfg.attendance.eligibility_line
    pop, act = view.pop, view.act
    grade = pop.grade[act].astype(np.int64)
    graded = (grade >= P1) & (view.out.leave == view.grid.size)
    e = np.flatnonzero(graded)
    g = grade[e]
    level = np.where(g < M1, 0, np.where(g < M4, 1, 2))
    year = g - np.array([P1 - 1, M1 - 1, M4 - 1])[level]
    stud = act[e]
    width = curriculum.credits.shape[1]
    drop = rng.integers(0, gc.optional_subjects + 1, view.schools.n)[pop.school[stud]]
    include = curriculum.present[level] & (curriculum.optional_rank[level] >= drop[:, None])

    on = gc.score_on
    mean = (gc.score_mean + on["ability"] * pop.ability[stud] + on["engagement"] * pop.engagement[stud]
            + on["poverty"] * pop.poverty[stud])
    score = mean[:, None] + curriculum.difficulty[level] + rng.normal(0, gc.score_sd, (e.shape[0], width))
    value = np.clip(np.round(score * 2) / 2, 0, 4)
    mark = np.where(value < 1, ZERO, (value - 1) * 2 + 1).astype(np.int8)
    u = rng.random((e.shape[0], width, 3))
    eng = pop.engagement[stud][:, None]
    mark = np.where(u[..., 0] < sigmoid(gc.incomplete_base + gc.incomplete_engagement * eng), INCOMPLETE, mark)
    ineligible = (rate[e] < line)[:, None]
    mark = np.where(ineligible & (u[..., 1] < view.cfg.attendance.ms_share), NOT_ELIGIBLE, mark)
    act_fail = ineligible | (u[..., 2] < sigmoid(gc.activity_fail_base - 0.8 * eng))
    activity = curriculum.activity[level]
    mark = np.where(activity, np.where(act_fail, ACTIVITY_FAIL, ACTIVITY_PASS), mark).astype(np.int8)

    # GPA and failures over the graded academic subjects (for the repeat decision).
    academic = include & ~activity
    numeric = academic & (mark <= len(_POINTS) - 1)
    credits = curriculum.credits[level]
    points = _POINTS[np.minimum(mark, len(_POINTS) - 1)]
    weight = np.where(numeric, credits, 0.0)
    gpa = np.full(view.n, 2.5, dtype=np.float32)
    gpa[e] = np.where(weight.sum(1) > 0, (points * weight).sum(1) / np.maximum(weight.sum(1), 1e-9), 2.5)
    failed = academic & ((mark == ZERO) | (mark == NOT_ELIGIBLE) | (mark == INCOMPLETE))
    fail_share = np.zeros(view.n, dtype=np.float32)
    fail_share[e] = failed.sum(1) / np.maximum(academic.sum(1), 1)

    lo, hi = gc.recorded_after_days
    last_day = view.grid.days[view.grid.last_open]
    school_recorded = last_day + rng.integers(lo, hi + 1, view.schools.n)
    recorded = school_recorded[pop.school[stud]][:, None] + rng.integers(0, 4, (e.shape[0], width))
    subject = curriculum.code_index[level, year, view.grid.semester - 1]
    counts = include.sum(axis=1)
    batch = Batch(
        "grades",
        {"student_id": np.repeat(stud, counts), "term": np.zeros(int(counts.sum()), dtype=np.int32),
         "subject_code": subject[include], "credits": credits[include], "grade": mark[include],
         "recorded_on": recorded[include].astype(np.int32)},
        cats={"term": [term_code], "subject_code": list(curriculum.codes), "grade": list(ALL_GRADE_MARKS)},
    )
    return batch, gpa, fail_share
