"""A small world in the validated layout, built by hand so every feature can be checked by eye.

as_of is Friday 7 June 2024, in term 2567-1; the term before is 2566-2.
School A and school B are in district 4001. Student keys are small integers.
:func:`event_edge_world` adds two students whose events sit on the edges of the
event kinds (window bounds, as_of itself, filters that keep nothing).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

AS_OF = dt.date(2024, 6, 7)
A, B = "1040100001", "1040100002"
S1, S2, S3, S4, S5, S6, S7, S8, S9, S10, S11, S12 = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12


def weekdays(start: dt.date, end: dt.date) -> list[dt.date]:
    days = (start + dt.timedelta(n) for n in range((end - start).days + 1))
    return [d for d in days if d.weekday() < 5]


TERM_DAYS = weekdays(dt.date(2024, 5, 20), dt.date(2024, 6, 14))  # 15 days to as_of, 5 after
PREVIOUS_TERM_DAYS = weekdays(dt.date(2024, 3, 4), dt.date(2024, 3, 15))  # 10 days
FIRST_TERM_DAYS = weekdays(dt.date(2023, 9, 4), dt.date(2023, 9, 8))


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def world() -> dict[str, pd.DataFrame]:
    schools = _frame([
        {"school_id": s, "name": n, "province_code": "40", "district_code": "4001", "region": "northeast",
         "size": size, "area": "rural", "affiliation": "obec", "latitude": None, "longitude": None}
        for s, n, size in ((A, "โรงเรียนบ้านเอ", "small"), (B, "โรงเรียนบ้านบี", "medium"))
    ])
    calendar = _frame(
        [{"school_id": s, "date": day, "term": "2567-1"} for s in (A, B) for day in TERM_DAYS]
        + [{"school_id": s, "date": day, "term": "2566-2"} for s in (A, B) for day in PREVIOUS_TERM_DAYS]
        + [{"school_id": s, "date": day, "term": "2566-1"} for s in (A, B) for day in FIRST_TERM_DAYS]
    )
    enrollments = _enrollments()
    s1_term = {day: "present" for day in TERM_DAYS if day <= AS_OF}
    s1_term.update({d("2024-05-27"): "absent", d("2024-06-03"): "absent", d("2024-06-04"): "absent",
                    d("2024-06-05"): "sick", d("2024-06-07"): "absent", d("2024-05-31"): "late"})
    del s1_term[d("2024-05-22")]  # no row that day: not a present day
    attendance = _frame(
        [{"student_key": S1, "date": day, "status": st, "term": "2567-1", "school_id": A} for day, st in s1_term.items()]
        + [{"student_key": S1, "date": day, "status": "present", "term": "2566-2", "school_id": A}
           for day in PREVIOUS_TERM_DAYS]
        + [{"student_key": S1, "date": d("2024-06-10"), "status": "absent", "term": "2567-1", "school_id": A}]
        + [{"student_key": S2, "date": day, "status": "present", "term": "2567-1", "school_id": A}
           for day in TERM_DAYS if day <= AS_OF]
        + [{"student_key": S10, "date": day, "status": "present", "term": "2567-1", "school_id": A}
           for day in TERM_DAYS if d("2024-06-03") <= day <= AS_OF]
    )

    def grade(key, term, subject, credits, mark, recorded):
        return {"student_key": key, "term": term, "subject_code": subject, "credits": credits, "grade": mark,
                "recorded_on": d(recorded)}

    grades = _frame([
        grade(S1, "2566-1", "ท21101", 1.5, "4", "2023-10-20"), grade(S1, "2566-1", "ค21101", 1.5, "3", "2023-10-20"),
        grade(S1, "2566-2", "ท21102", 1.5, "3", "2024-04-01"), grade(S1, "2566-2", "ค21102", 1.5, "2", "2024-04-01"),
        grade(S1, "2566-2", "ว21102", 1.0, "มส", "2024-04-01"), grade(S1, "2566-2", "ก21902", 0.5, "ผ", "2024-04-01"),
        grade(S1, "2567-1", "ท22101", 1.5, "0", "2024-10-20"),  # entered after as_of
    ])  # fmt: skip

    def screening(key, on, income, size, **items):
        row = {"student_key": key, "screened_on": d(on), "household_size": size, "monthly_income_baht": income,
               "house_condition": "fair", "owns_land": True, "water_source": "piped", "has_electricity": True,
               "has_vehicle": True, "dependants": 1, "lives_with": "both_parents", "distance_to_school_km": 2.0,
               "cct_status": "not_poor"}
        return row | items

    household = _frame([
        screening(S1, "2023-06-10", 8000.0, 4),
        screening(S1, "2024-06-03", 6000.0, 4, house_condition="poor", owns_land=False, water_source="rain",
                  has_vehicle=False, dependants=3, lives_with="grandparents", distance_to_school_km=7.5,
                  cct_status="poor"),
        screening(S1, "2024-08-01", 100.0, 9),  # after as_of
    ])
    health = _frame([
        {"student_key": S1, "measured_on": d("2024-05-20"), "weight_kg": 40.0, "height_cm": 150.0},
        {"student_key": S1, "measured_on": d("2024-06-03"), "weight_kg": 38.5, "height_cm": 150.0},
        {"student_key": S1, "measured_on": d("2024-06-10"), "weight_kg": 20.0, "height_cm": 150.0},
        {"student_key": S8, "measured_on": d("2024-06-03"), "weight_kg": 17.0, "height_cm": 103.0},
    ])
    flags = {f: False for f in ("substance", "violence", "bullying", "pregnancy", "gaming", "sexual_risk")}
    behaviour = _frame([
        {"student_key": S1, "screened_on": d("2024-05-25"), "sdq_emotional": 3, "sdq_conduct": 4,
         "sdq_hyperactivity": 5, "sdq_peer": 2, "sdq_prosocial": 6} | flags | {"substance": True, "gaming": True},
    ])
    assistance = _frame([
        {"student_key": S1, "date": d("2023-07-01"), "programme": "cct", "amount_baht": 1000.0, "received": True},
        {"student_key": S1, "date": d("2024-01-15"), "programme": "cct", "amount_baht": 1000.0, "received": True},
        {"student_key": S1, "date": d("2024-05-30"), "programme": "lunch", "amount_baht": 500.0, "received": False},
        {"student_key": S1, "date": d("2024-06-20"), "programme": "cct", "amount_baht": 9999.0, "received": True},
    ])
    return {"schools": schools, "calendar": calendar, "enrollments": enrollments, "attendance_daily": attendance,
            "grades": grades, "household": household, "health": health, "behaviour": behaviour,
            "assistance": assistance}  # fmt: skip


def _enrol(key, term, school, grade, birth, sex="female", status="studying", status_date=None):
    return {"student_key": key, "id_hint": "•••••••••0000", "term": term, "school_id": school,
            "grade_level": grade, "classroom": None, "sex": sex, "birth_date": d(birth),
            "nationality": "thai", "disability": "none", "status": status, "status_date": status_date}


def _enrollments() -> pd.DataFrame:
    """Every enrollment of the world (see the comments: who left, who came late, who is in earlier terms only)."""
    return _frame([
        _enrol(S1, "2566-1", A, "M1", "2010-08-01"), _enrol(S1, "2566-2", A, "M1", "2010-08-01"),
        _enrol(S1, "2567-1", A, "M2", "2010-08-01"),
        _enrol(S2, "2566-1", B, "M1", "2010-03-01", "male"), _enrol(S2, "2566-2", B, "M1", "2010-03-01", "male"),
        _enrol(S2, "2567-1", A, "M1", "2010-03-01", "male"),
        _enrol(S3, "2567-1", A, "P6", "2011-01-10"),
        _enrol(S8, "2567-1", B, "K2", "2020-01-15"),  # too young for the WHO 5–19 reference
        # S9 graduated from P6 before as_of: still in the cohort, at the riskiest moment.
        _enrol(S9, "2567-1", B, "P6", "2011-11-11", status="graduated", status_date=d("2024-06-05")),
        _enrol(S10, "2567-1", A, "P5", "2013-02-02"),  # came only in the last week
        # S4 left before as_of; S5's departure is dated after as_of, so it is not known yet.
        _enrol(S4, "2567-1", A, "M2", "2010-01-01", status="dropped_out", status_date=d("2024-06-01")),
        _enrol(S5, "2567-1", A, "M2", "2010-01-01", status="dropped_out", status_date=d("2024-06-20")),
        # Earlier terms only: S6 did not come back after 2566-2; S7 finished M6.
        _enrol(S6, "2566-1", B, "M2", "2009-05-05"), _enrol(S6, "2566-2", B, "M2", "2009-05-05"),
        _enrol(S7, "2566-1", A, "M6", "2005-05-05"), _enrol(S7, "2566-2", A, "M6", "2005-05-05"),
    ])  # fmt: skip


def context_rates_frame() -> pd.DataFrame:
    return pd.DataFrame({"school_id": [A, B], "school_rate": [0.0625, 0.1875], "district_rate": [0.125, 0.125]})


def event_edge_world() -> dict[str, pd.DataFrame]:
    """:func:`world` and two more students of school A in 2567-1 with events on the edges of the event kinds.

    S11 has three or four events in each table: one exactly 365 days before as_of (2023-06-08:
    outside a 365-day window, which keeps dates after as_of minus 365 days), one exactly 30 days
    before (2024-05-08: outside a 30-day window), one on as_of itself; values that sum
    differently in another order (0.1 + 0.2 + 0.3 in a year's window); flags that change from event to event.
    S12 has one event in each table, every flag false: a ``where`` keeps nothing, a previous is missing.
    """
    frames = world()
    enrollments = frames["enrollments"]
    like_s3 = enrollments[enrollments["student_key"] == S3].iloc[0].to_dict()  # P6 at school A in 2567-1
    more = {
        "enrollments": [like_s3 | {"student_key": key} for key in (S11, S12)],
        "household": [_screening(S11, "2023-06-08", 7000.1, 3, True), _screening(S11, "2023-11-20", 7000.2, 3, False),
                      _screening(S11, "2024-06-07", 7000.3, 7, True), _screening(S12, "2024-01-10", 4000.0, 5, False)],
        "health": [{"student_key": key, "measured_on": d(on), "weight_kg": kg, "height_cm": cm}
                   for key, on, kg, cm in ((S11, "2023-06-08", 40.1, 149.9), (S11, "2024-05-08", 40.2, 150.7),
                                           (S11, "2024-06-07", 40.3, 151.1), (S12, "2024-02-01", 35.5, 140.0))],
        "behaviour": [_sdq(S11, "2023-06-08", 3, True), _sdq(S11, "2024-05-08", 7, False),
                      _sdq(S11, "2024-06-07", 5, True), _sdq(S12, "2024-03-01", 2, False)],
        "assistance": [{"student_key": key, "date": d(on), "programme": programme, "amount_baht": baht,
                        "received": received}
                       for key, on, programme, baht, received in (
                           (S11, "2023-06-08", "cct", 0.4, True), (S11, "2023-12-01", "cct", 0.1, True),
                           (S11, "2024-05-08", "lunch", 0.2, False), (S11, "2024-06-07", "uniform", 0.3, True),
                           (S12, "2024-04-01", "lunch", 500.0, False))],
    }  # fmt: skip
    return frames | {name: pd.concat([frames[name], _frame(rows)], ignore_index=True) for name, rows in more.items()}


def _screening(key: int, on: str, income: float, size: int, flags: bool) -> dict:
    """A household screening whose owns_land, has_electricity and has_vehicle are all ``flags``."""
    return {"student_key": key, "screened_on": d(on), "household_size": size, "monthly_income_baht": income,
            "house_condition": "poor" if flags else "good", "owns_land": flags, "water_source": "well",
            "has_electricity": flags, "has_vehicle": flags, "dependants": 2, "distance_to_school_km": 3.3,
            "lives_with": "both_parents" if flags else "alone", "cct_status": "poor" if flags else "not_screened"}


def _sdq(key: int, on: str, score: int, flags: bool) -> dict:
    """A behaviour screening with every SDQ scale at ``score`` and every risk flag ``flags``."""
    scales = ("sdq_emotional", "sdq_conduct", "sdq_hyperactivity", "sdq_peer", "sdq_prosocial")
    risks = ("substance", "violence", "bullying", "pregnancy", "gaming", "sexual_risk")
    return {"student_key": key, "screened_on": d(on)} | dict.fromkeys(scales, score) | dict.fromkeys(risks, flags)
