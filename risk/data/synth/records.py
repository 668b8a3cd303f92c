"""Batches of the reference tables (schools, calendar), the enrollments and the truth."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from risk.data.contract import DISABILITIES, GRADE_LEVELS
from risk.data.geography import PROVINCE_CODES, REGIONS
from risk.data.synth.calendar import TermGrid
from risk.data.synth.frames import Batch, IdDictionary
from risk.data.synth.population import M1, P1
from risk.data.synth.schools import AFFILIATIONS, AREAS, SIZES, Schools
from risk.data.synth.term import TermView
from risk.data.synth.trajectories import STATUSES

__all__ = ["calendar_batch", "classroom_labels", "enrollment_batch", "schools_batch", "truth_table"]


def schools_batch(schools: Schools) -> Batch:
    n = schools.n
    codes = np.arange(n)
    lat_null = np.isnan(schools.latitude)
    return Batch(
        "schools",
        {"school_id": codes, "name": codes, "province_code": schools.province, "district_code": codes,
         "region": schools.region, "size": schools.size, "area": schools.rural.astype(np.int8),
         "affiliation": schools.affiliation, "latitude": np.nan_to_num(schools.latitude),
         "longitude": np.nan_to_num(schools.longitude)},
        cats={"school_id": schools.school_id.tolist(), "name": schools.name.tolist(),
              "province_code": list(PROVINCE_CODES), "district_code": schools.district_code.tolist(),
              "region": list(REGIONS), "size": list(SIZES), "area": list(AREAS), "affiliation": list(AFFILIATIONS)},
        nulls={"latitude": lat_null.copy(), "longitude": lat_null.copy()},
    )


def calendar_batch(grid: TermGrid, schools: Schools) -> Batch:
    school, day = np.nonzero(grid.open)
    return Batch(
        "calendar",
        {"school_id": school, "date": grid.days[day], "term": np.zeros(school.shape[0], dtype=np.int8)},
        cats={"school_id": schools.school_id.tolist(), "term": [grid.term]},
    )


def classroom_labels(max_sections: int) -> list[str]:
    """``year/section`` labels, e.g. ``2/1``: year within the level (K, P or M), then the section."""
    return [f"{y}/{s}" for y in range(1, 7) for s in range(1, max_sections + 1)]


def enrollment_batch(view: TermView, school_ids: list[str]) -> Batch:
    pop, act, out = view.pop, view.act, view.out
    grade = pop.grade[act].astype(np.int64)
    year = grade + 1 - np.where(grade < P1, 0, np.where(grade < M1, P1, M1))
    max_sections = view.cfg.population.classrooms[1]
    classroom = (year - 1) * max_sections + (pop.section[act].astype(np.int64) - 1)
    return Batch(
        "enrollments",
        {"student_id": act, "term": np.zeros(view.n, dtype=np.int8), "school_id": pop.school[act],
         "grade_level": grade, "classroom": classroom, "sex": pop.sex[act], "birth_date": pop.birth[act].copy(),
         "nationality": (~pop.thai[act]).astype(np.int8), "disability": pop.disability[act],
         "status": out.status, "status_date": out.status_date.copy()},
        cats={"term": [view.grid.term], "school_id": school_ids, "grade_level": list(GRADE_LEVELS),
              "classroom": classroom_labels(max_sections), "sex": ["male", "female"],
              "nationality": ["thai", "other"], "disability": list(DISABILITIES), "status": list(STATUSES)},
        nulls={"status_date": out.status_null.copy()},
    )


def truth_table(view: TermView, ids: IdDictionary, last: bool) -> pa.Table:
    """Per enrolled student: the true dropout probability, what happened, and the latent factors."""
    pop, act, out, s = view.pop, view.act, view.out, view.school
    onset = view.shocks.onset
    n = view.n
    return pa.table({
        "student_id": ids.ids.take(pa.array(act)),
        "term": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)),
                                               pa.array([view.grid.term])).cast(pa.string()),
        "p_dropout": out.p_dropout.astype(np.float64),
        "dropped_out": pa.array(out.dropout, mask=np.full(n, last)),
        "grade_level": pa.DictionaryArray.from_arrays(pa.array(pop.grade[act].astype(np.int32)),
                                                      pa.array(GRADE_LEVELS)).cast(pa.string()),
        "school_id": pa.DictionaryArray.from_arrays(pa.array(s.astype(np.int32)),
                                                    pa.array(view.schools.school_id.tolist())).cast(pa.string()),
        "status": pa.DictionaryArray.from_arrays(pa.array(out.status.astype(np.int32)),
                                                 pa.array(STATUSES)).cast(pa.string()),
        "poverty": pop.poverty[act].astype(np.float64),
        "family_instability": pop.family[act].astype(np.float64),
        "health": pop.health[act].astype(np.float64),
        "engagement": pop.engagement[act].astype(np.float64),
        "ability": pop.ability[act].astype(np.float64),
        "school_effect": view.schools.effect[s].astype(np.float64),
        "district_effect": view.schools.district_effect[s].astype(np.float64),
        "shock_migration": onset["migration"] >= 0,
        "shock_job_loss": onset["job_loss"] >= 0,
        "shock_illness": onset["illness"] >= 0,
        "shock_pregnancy": onset["pregnancy"] >= 0,
        "dropped_mid_term": out.within,
        "deceased": out.dead,
    })
