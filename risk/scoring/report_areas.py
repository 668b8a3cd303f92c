"""The term report's area lists: flagged / students per area, rule-raised students apart, small areas held back.

Input is the run's area summaries (one row per level and area: students, normal,
at_risk, problem, flagged_rate in [0, 1]) and, when known, how many of each area's
at-risk and problem students a class rule raised rather than the model
(``raised``: level, area_code, at_risk, problem). A rate over a handful of students
says little (2 of 3 is 67%), so an area with fewer than ``min_students`` students is
marked, never ranked among the highest, and in the ranked lists merged into one
"other small areas" row.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from risk.data.geography import PROVINCES
from risk.scoring.charts import percent
from risk.scoring.thai_tilemap import province_tiles

__all__ = ["RAISED_COLUMNS", "area_rows", "by_rank", "pp", "province_names", "provinces", "ranked_list", "region_label"]

RAISED_COLUMNS = ("level", "area_code", "at_risk", "problem")
REGION_TH = {
    "north": "ภาคเหนือ", "northeast": "ภาคตะวันออกเฉียงเหนือ", "central": "ภาคกลาง",
    "east": "ภาคตะวันออก", "west": "ภาคตะวันตก", "south": "ภาคใต้",
}  # fmt: skip
LEVEL_TEXT = {"district": ("อำเภอ", "district"), "school": ("โรงเรียน", "school"), "province": ("จังหวัด", "province")}


def pp(change: float) -> str:
    """A change in percentage points with its sign, ``1.25 -> "+1.3 pp"``; NaN becomes ``"–"``."""
    if change is None or math.isnan(change):
        return "–"
    return f"{change:+.1f} pp"


def region_label(code: str) -> str:
    return f"{REGION_TH[code]} / {code}" if code in REGION_TH else code


def province_names() -> dict[str, tuple[str, str]]:
    return {t.code: (t.name_th, t.name_en) for t in province_tiles()}


def area_rows(summaries: pd.DataFrame, level: str, raised: pd.DataFrame | None, min_students: int) -> pd.DataFrame:
    """One level's rows with flagged, by_rule, by_model, "flagged / students" text, rate text and ``small``."""
    rows = summaries.loc[summaries["level"] == level].copy()
    rows["area_code"] = rows["area_code"].astype(str)
    rows["flagged"] = (rows["at_risk"] + rows["problem"]).astype(int)
    rows["by_rule"] = 0
    if raised is not None and not raised.empty:
        mine = raised.loc[raised["level"] == level]
        by_area = (mine["at_risk"] + mine["problem"]).groupby(mine["area_code"].astype(str)).sum()
        rows["by_rule"] = rows["area_code"].map(by_area).fillna(0).astype(int)
    rows["by_model"] = rows["flagged"] - rows["by_rule"]
    rows["counts_text"] = [f"{f:,} / {s:,}" for f, s in zip(rows["flagged"], rows["students"], strict=True)]
    rows["rate_text"] = rows["flagged_rate"].map(percent)
    rows["small"] = rows["students"] < min_students
    return rows.reset_index(drop=True)


def provinces(current: pd.DataFrame, previous: pd.DataFrame | None, raised: pd.DataFrame | None,
              min_students: int) -> pd.DataFrame:
    """Province rows with Thai and English names, region, counts and the change since last term in pp."""
    rows = area_rows(current, "province", raised, min_students)
    names = province_names()
    # A code outside the 77 is still listed (under its code) so nothing is hidden.
    rows["name_th"] = [names.get(c, (c, ""))[0] for c in rows["area_code"]]
    rows["name_en"] = [names.get(c, ("", ""))[1] for c in rows["area_code"]]
    rows["region"] = [region_label(PROVINCES[c][1]) if c in PROVINCES else "" for c in rows["area_code"]]
    rows["change_pp"] = math.nan
    if previous is not None:
        before = previous.loc[previous["level"] == "province"]
        before = before.set_index(before["area_code"].astype(str))["flagged_rate"]
        rows["change_pp"] = 100 * (rows["flagged_rate"] - rows["area_code"].map(before))
    rows["change_text"] = rows["change_pp"].map(pp)
    return rows


def by_rank(rows: pd.DataFrame) -> pd.DataFrame:
    """Areas of a fair size by flagged rate, highest first; the small ones after them, never above."""
    return rows.sort_values(["small", "flagged_rate", "students"], ascending=[True, False, False])


def _label(level: str, code: str, names: dict[str, tuple[str, str]]) -> tuple[str, str]:
    th, en = LEVEL_TEXT.get(level, (level, level))
    # District codes start with their province's two digits (4001 is a district of Khon Kaen, 40).
    province = names.get(code[:2]) if level == "district" else None
    if province:
        return f"{th} {code} {province[0]}", f"{en} {code}, {province[1]}"
    return f"{th} {code}", f"{en} {code}"


def ranked_list(summaries: pd.DataFrame, level: str, raised: pd.DataFrame | None, min_students: int,
                top: int) -> dict[str, Any] | None:
    """The ``top`` areas of a level by flagged rate (fair-sized only), and the small ones merged into one row."""
    rows = area_rows(summaries, level, raised, min_students)
    if rows.empty:
        return None
    names = province_names()
    fair = by_rank(rows.loc[~rows["small"]]).head(top)
    listed = [{**r, "th": _label(level, r["area_code"], names)[0], "en": _label(level, r["area_code"], names)[1]}
              for r in fair.to_dict("records")]  # fmt: skip
    small = rows.loc[rows["small"]]
    other = None
    if len(small):
        flagged, students = int(small["flagged"].sum()), int(small["students"].sum())
        other = {"areas": len(small), "counts_text": f"{flagged:,} / {students:,}", "by_rule": int(small["by_rule"].sum()),
                 "rate_text": percent(flagged / students if students else math.nan)}  # fmt: skip
    level_th, level_en = LEVEL_TEXT.get(level, (level, level))
    return {"rows": listed, "other": other, "total": len(rows), "th": level_th, "en": level_en}
