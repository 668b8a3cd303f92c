"""The floors the benches set a measured path beside: the fastest known way to do each part of the same work.

- validation: a pyarrow scan of the inputs (every table, every column), in bench_national.
- features: :func:`features_floor_sql`, one plain DuckDB query over the same validated Parquet, with the
  engine's connection settings (2 threads, 4 GB), producing per-student aggregates comparable to the
  feature builders' (listed in its docstring), written to Parquet as ``risk features`` writes its matrix.
  It leaves out the point-in-time plumbing: no school calendar (a day with no attendance row is not
  counted), windows in calendar days instead of school days, no previous term's attendance, no
  streaks, no term ranks beyond the latest graded term, no context rates. It computes less than the
  engine, so it is a floor, not a peer.
- model: the compiled forest and its TreeSHAP tables (risk.models.forest) or LightGBM's
  ``booster.predict`` and ``pred_contrib``, whichever is faster for each half on the run's model,
  all four timed in the same child (bench_score.floor_child).
- training: bare ``lgb.Dataset`` + ``lightgbm.train`` (bench_train.floor_child).

python bench/floors.py --features-child VALIDATED OUT.json AS_OF [AS_OF ...]   (used by the benches)
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

ATTENDED = "('present', 'late')"


def features_floor_sql(as_of: dt.date) -> str:
    """One SELECT: a row per cohort student at ``as_of`` with plain group-by aggregates of each table.

    Per student: the enrolment context (grade level, sex, age in years, nationality, disability, the
    school's size, area and region); terms on record, schools attended and terms repeated; this term's
    attendance up to ``as_of`` (rows, attended share, its share in the last 28 and 84 calendar days,
    unexcused, excused and late days, Monday/Friday absences); the latest graded term's GPA (credit
    weighted), grade 0 / ร / มส / มผ counts and failed credits, and the count of graded terms; the latest
    household screening (income per capita in baht a month, CCT status, size, dependants, lives with,
    distance in km, proxy-means score) and the income change since the first; the latest BMI (kg/m²),
    height (cm) and weight change (kg); the latest SDQ total and subscales and every risk flag ever
    raised; assistance allocated and received in the last 365 days (baht) and the last payment's date.
    """
    from risk.features.base import AsOf, sql_text
    from risk.features.enrollment import cohort_sql

    point = AsOf(as_of)
    day, term = point.sql, sql_text(point.term)
    attended = f"CASE WHEN status IN {ATTENDED} THEN 1.0 ELSE 0.0 END"
    return f"""
    WITH cohort AS ({cohort_sql(point)}),
    history AS (
        SELECT student_key, count(DISTINCT term) AS terms_on_record, count(DISTINCT school_id) AS schools_attended,
               count(*) - count(DISTINCT grade_level) AS terms_repeated
        FROM enrollments WHERE term <= {term} GROUP BY student_key),
    att AS (
        SELECT student_key, count(*) AS att_rows, avg({attended}) AS att_rate_term,
               avg({attended}) FILTER (WHERE date > {day} - INTERVAL 28 DAY) AS att_rate_28d,
               avg({attended}) FILTER (WHERE date > {day} - INTERVAL 84 DAY) AS att_rate_84d,
               count(*) FILTER (WHERE status = 'absent') AS att_unexcused,
               count(*) FILTER (WHERE status IN ('leave', 'sick')) AS att_excused,
               count(*) FILTER (WHERE status = 'late') AS att_late,
               count(*) FILTER (WHERE status NOT IN {ATTENDED} AND isodow(date) IN (1, 5)) AS att_monday_friday
        FROM attendance_daily WHERE term = {term} AND date <= {day} GROUP BY student_key),
    grade_term AS (
        SELECT student_key, term,
               sum(credits * TRY_CAST(grade AS DOUBLE))
                 / nullif(sum(credits) FILTER (WHERE TRY_CAST(grade AS DOUBLE) IS NOT NULL), 0) AS gpa,
               count(*) FILTER (WHERE grade = '0') AS n_zero, count(*) FILTER (WHERE grade = 'ร') AS n_incomplete,
               count(*) FILTER (WHERE grade = 'มส') AS n_not_eligible,
               count(*) FILTER (WHERE grade = 'มผ') AS n_activity_failed,
               coalesce(sum(credits) FILTER (WHERE grade IN ('0', 'ร', 'มส')), 0) AS failed_credits
        FROM grades WHERE recorded_on <= {day} AND term <= {term} GROUP BY student_key, term),
    graded AS (
        SELECT student_key, arg_max(gpa, term) AS gpa_last, arg_max(n_zero, term) AS zero_last,
               arg_max(n_incomplete, term) AS incomplete_last, arg_max(n_not_eligible, term) AS not_eligible_last,
               arg_max(n_activity_failed, term) AS activity_failed_last,
               arg_max(failed_credits, term) AS failed_credits_last, count(*) AS graded_terms
        FROM grade_term GROUP BY student_key),
    hh AS (
        SELECT student_key,
               arg_max(monthly_income_baht / household_size, screened_on) AS income_per_capita_baht,
               arg_max(monthly_income_baht, screened_on) / nullif(arg_min(monthly_income_baht, screened_on), 0) - 1
                 AS income_change,
               arg_max(cct_status, screened_on) AS cct_status, arg_max(household_size, screened_on) AS household_size,
               arg_max(dependants, screened_on) AS dependants, arg_max(lives_with, screened_on) AS lives_with,
               arg_max(distance_to_school_km, screened_on) AS distance_to_school_km,
               arg_max((CASE house_condition WHEN 'dilapidated' THEN 2 WHEN 'poor' THEN 1 ELSE 0 END)
                       + CAST(NOT owns_land AS INT) + CAST(water_source IN ('rain', 'river') AS INT)
                       + CAST(NOT has_electricity AS INT) + CAST(NOT has_vehicle AS INT)
                       + CAST(dependants > household_size / 2 AS INT), screened_on) AS proxy_means_score
        FROM household WHERE screened_on <= {day} GROUP BY student_key),
    body AS (
        SELECT student_key, arg_max(weight_kg / (height_cm / 100) ^ 2, measured_on) AS bmi,
               arg_max(height_cm, measured_on) AS height_cm,
               arg_max(weight_kg, measured_on) - arg_min(weight_kg, measured_on) AS weight_change_kg
        FROM health WHERE measured_on <= {day} GROUP BY student_key),
    sdq AS (
        SELECT student_key,
               arg_max(sdq_emotional + sdq_conduct + sdq_hyperactivity + sdq_peer, screened_on) AS sdq_total,
               arg_max(sdq_emotional, screened_on) AS sdq_emotional, arg_max(sdq_conduct, screened_on) AS sdq_conduct,
               arg_max(sdq_hyperactivity, screened_on) AS sdq_hyperactivity,
               arg_max(sdq_peer, screened_on) AS sdq_peer, arg_max(sdq_prosocial, screened_on) AS sdq_prosocial,
               bool_or(substance) AS flag_substance, bool_or(violence) AS flag_violence,
               bool_or(bullying) AS flag_bullying, bool_or(pregnancy) AS flag_pregnancy,
               bool_or(gaming) AS flag_gaming, bool_or(sexual_risk) AS flag_sexual_risk
        FROM behaviour WHERE screened_on <= {day} GROUP BY student_key),
    aid AS (
        SELECT student_key, sum(amount_baht) AS allocated_baht_365d,
               coalesce(sum(amount_baht) FILTER (WHERE received), 0) AS received_baht_365d,
               max(date) FILTER (WHERE received) AS last_payment
        FROM assistance WHERE date <= {day} AND date > {day} - INTERVAL 365 DAY GROUP BY student_key)
    SELECT c.student_key, c.grade_level, c.sex, c.nationality, c.disability,
           date_diff('day', c.birth_date, {day}) / 365.25 AS age_years, s.size, s.area, s.region,
           history.* EXCLUDE (student_key), att.* EXCLUDE (student_key), graded.* EXCLUDE (student_key),
           hh.* EXCLUDE (student_key), body.* EXCLUDE (student_key), sdq.* EXCLUDE (student_key),
           aid.* EXCLUDE (student_key)
    FROM cohort c
    LEFT JOIN schools s ON s.school_id = c.school_id
    LEFT JOIN history ON history.student_key = c.student_key
    LEFT JOIN att ON att.student_key = c.student_key
    LEFT JOIN graded ON graded.student_key = c.student_key
    LEFT JOIN hh ON hh.student_key = c.student_key
    LEFT JOIN body ON body.student_key = c.student_key
    LEFT JOIN sdq ON sdq.student_key = c.student_key
    LEFT JOIN aid ON aid.student_key = c.student_key
    ORDER BY c.student_key
    """


def features_child(validated: Path, out: Path, points: list[dt.date]) -> None:
    """(Child process) the features floor at each of ``points``: seconds, rows and columns to ``out`` (JSON).

    Each point's aggregates are written to a Parquet file beside ``out`` (replaced each run), as
    ``risk features`` writes its matrix; the time includes opening the views and writing the file.
    """
    from risk.features.sources import connect, view_validated

    started = time.perf_counter()
    con = connect()  # the engine's threads and memory limit
    view_validated(con, validated)
    rows, columns = [], 0
    for i, point in enumerate(points):
        matrix = out.with_name(f"{out.stem}-{i}.parquet")
        sql = features_floor_sql(point)
        con.execute(f"COPY ({sql}) TO '{matrix}' (FORMAT parquet)")
        rows.append(con.execute(f"SELECT count(*) FROM read_parquet('{matrix}')").fetchone()[0])
        columns = len(con.execute(f"DESCRIBE SELECT * FROM read_parquet('{matrix}')").fetchall())
    out.write_text(json.dumps({"seconds": time.perf_counter() - started, "points": [p.isoformat() for p in points],
                               "rows": rows, "columns": columns}), encoding="utf-8")


# Catalog features the floor computes the same way (engine name -> floor column): the check that its
# aggregates are the builders' and not something cheaper.
ENGINE_TWINS = {"att_unexcused_term": "att_unexcused", "att_late_term": "att_late", "gpa_last_term": "gpa_last",
                "terms_on_record": "terms_on_record", "age_years": "age_years",
                "income_per_capita_baht": "income_per_capita_baht", "dependants": "dependants",
                "proxy_means_score": "proxy_means_score", "sdq_total": "sdq_total",
                "assistance_received_baht_365d": "received_baht_365d"}


def agreement(engine_matrix: Path, floor_matrix: Path) -> dict[str, float]:
    """Per twin feature, the share of the engine's students whose floor value is the same (NaN = NaN)."""
    import numpy as np
    import pandas as pd

    engine = pd.read_parquet(engine_matrix, columns=["student_key", *ENGINE_TWINS]).set_index("student_key")
    floor = pd.read_parquet(floor_matrix, columns=["student_key", *ENGINE_TWINS.values()]).set_index("student_key")
    floor = floor.reindex(engine.index)
    shares = {}
    for name, twin in ENGINE_TWINS.items():
        a, b = engine[name].to_numpy(np.float64), floor[twin].astype(np.float64).to_numpy()
        shares[name] = float((np.isclose(a, b, rtol=1e-9, atol=1e-9) | (np.isnan(a) & np.isnan(b))).mean())
    return shares


def model_floor(f: dict) -> tuple[float, str]:
    """The model part's floor from a bench_score floor child's timings: seconds and how it was made.

    Each half takes the faster of its two ways on the run's model: the probabilities by the compiled
    forest or ``booster.predict``, the flagged rows' SHAP values by the TreeSHAP tables or ``pred_contrib``
    (the tables only when the model's trees are small enough for them).
    """
    predict = min(("compiled forest", f["forest_seconds"]), ("booster.predict", f["predict_seconds"]),
                  key=lambda x: x[1])
    ways = [("pred_contrib", f["contrib_seconds"])]
    if f["explain_error"] is not None:
        ways.append(("TreeSHAP tables", f["explain_seconds"]))
    explain = min(ways, key=lambda x: x[1])
    return predict[1] + explain[1], f"{predict[0]} {predict[1]:,.1f} s + {explain[0]} {explain[1]:,.1f} s"


def old_model_floor(f: dict) -> float:
    """The floor the benches used before 2026-12-07: ``booster.predict`` + ``pred_contrib`` (more work than the scorer's)."""
    return f["predict_seconds"] + f["contrib_seconds"]


def main() -> None:
    if len(sys.argv) > 4 and sys.argv[1] == "--features-child":
        features_child(Path(sys.argv[2]), Path(sys.argv[3]), [dt.date.fromisoformat(d) for d in sys.argv[4:]])
        return
    raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
