"""Baseline for bench_features: attendance features written plainly in pandas, whole tables in memory.

Computes, for the cohort at ``as_of``, the same attendance features as the
engine's catalog entries att_rate_term, att_rate_20d, att_rate_60d,
att_unexcused_term, att_longest_absence_streak and att_current_absence_streak.
Usage: python bench/pandas_attendance.py VALIDATED AS_OF OUT.parquet
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from risk.data.contract import previous_term, term_of_date


def main(validated: Path, as_of: dt.date, out: Path) -> None:
    term = term_of_date(as_of)
    terms = [term, previous_term(term)]
    cutoff = pd.Timestamp(as_of)
    enrol = pd.read_parquet(validated / "enrollments",
                            columns=["student_key", "term", "school_id", "status", "status_date"])
    cal = pd.read_parquet(validated / "calendar")
    # Lean dtypes (integers and categories) so that a national term fits in memory at all.
    for frame in (enrol, cal):
        frame["school_id"] = frame["school_id"].astype("int64")
        frame["term"] = frame["term"].astype("category")
    att = pd.read_parquet(validated / "attendance_daily", columns=["student_key", "date", "status", "term"],
                          filters=[("term", "in", terms), ("date", "<=", as_of)])
    att["status"] = att["status"].astype("category")
    att["date"] = pd.to_datetime(att["date"])

    left = enrol["status"].isin(["dropped_out", "deceased", "transferred"]) & (
        pd.to_datetime(enrol["status_date"]) <= cutoff)
    cohort = enrol.loc[(enrol["term"] == term) & ~left, ["student_key"]]
    enr = enrol[enrol["term"].isin(terms) & enrol["student_key"].isin(cohort["student_key"])]
    cal = cal[pd.to_datetime(cal["date"]) <= cutoff].assign(date=lambda c: pd.to_datetime(c["date"]))
    days = enr[["student_key", "term", "school_id"]].merge(cal, on=["school_id", "term"])[
        ["student_key", "date", "term"]]
    days = days.merge(att[["student_key", "date", "status"]], on=["student_key", "date"], how="left")
    del att
    days["attended"] = days["status"].isin(["present", "late"])
    days["in_term"] = days["term"] == term
    days = days.sort_values(["student_key", "date"], ascending=[True, False])
    days["day_rank"] = days.groupby("student_key").cumcount() + 1

    def rate(mask: pd.Series) -> pd.Series:
        return days[mask].groupby("student_key")["attended"].mean()

    result = pd.DataFrame(index=cohort["student_key"].to_numpy())
    result["att_rate_term"] = rate(days["in_term"])
    result["att_rate_20d"] = rate(days["day_rank"] <= 20)
    result["att_rate_60d"] = rate(days["day_rank"] <= 60)
    in_term = days[days["in_term"]]
    result["att_unexcused_term"] = (in_term["status"] == "absent").groupby(in_term["student_key"]).sum()
    longest, current = _streaks(in_term)
    result["att_longest_absence_streak"] = longest
    result["att_current_absence_streak"] = current
    has_days = result.index.isin(days["student_key"].unique())
    for column in ("att_unexcused_term", "att_longest_absence_streak", "att_current_absence_streak"):
        result.loc[has_days, column] = result.loc[has_days, column].fillna(0)
    result.index.name = "student_key"
    result.reset_index().to_parquet(out, index=False)


def _streaks(days: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    missed = days[~days["attended"]].copy()
    missed["run"] = missed["day_rank"] - missed.groupby("student_key").cumcount()
    runs = missed.groupby(["student_key", "run"]).agg(n=("day_rank", "size"), first=("day_rank", "min"))
    longest = runs.groupby("student_key")["n"].max()
    current = runs[runs["first"] == 1].groupby("student_key")["n"].max()
    return longest.astype(np.float64), current.astype(np.float64)


if __name__ == "__main__":
    main(Path(sys.argv[1]), dt.date.fromisoformat(sys.argv[2]), Path(sys.argv[3]))
