"""The term report: one self-contained HTML file an EEF analyst opens offline.

Input is :class:`ReportInputs` (area summaries of this term and, if any, the
last; the class mix by grade level; the drift check; the model card; alert
counts). Output is one UTF-8 HTML file with inline CSS and inline SVG charts,
Thai first with English beside it, and no script, font or image fetched from
anywhere: it reads the same on an office laptop with no network.

Rates are shares in [0, 1] (``flagged_rate = (at_risk + problem) / students``);
the report prints them as percentages, and changes between terms as
percentage points (pp).
"""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, field_validator

from risk.data.geography import REGIONS
from risk.errors import RiskError
from risk.features.catalog import Catalog
from risk.features.freshness import DomainFreshness
from risk.scoring.charts import (
    CLASS_COLOURS,
    Segment,
    legend_svg,
    nice_bins,
    percent,
    ranked_bars_svg,
    stacked_bars_svg,
)
from risk.scoring.report_areas import (
    RAISED_COLUMNS,
    area_rows,
    by_rank,
    pp,
    provinces,
    ranked_list,
    region_label,
)
from risk.scoring.report_drift import DriftInput, drift_section
from risk.scoring.report_model import (
    CLASS_TH,
    class_rows,
    missed_targets,
    model_facts,
    nested_evaluation,
    quality,
)
from risk.scoring.thai_tilemap import tilemap_svg

__all__ = ["DriftInput", "ReportError", "ReportInputs", "count_text", "pp", "render_report", "thai_date", "write_report"]

SUMMARY_COLUMNS = ("level", "area_code", "students", "normal", "at_risk", "problem", "flagged_rate")
GRADE_COLUMNS = ("grade_level", "normal", "at_risk", "problem")
GRADE_ORDER = ("K1", "K2", "K3", "P1", "P2", "P3", "P4", "P5", "P6", "M1", "M2", "M3", "M4", "M5", "M6")
TOP_PROVINCES = 15
TOP_AREAS = 10
TOP_CHANGES = 10

ALERT_TH = {
    "newly_at_risk": ("เข้ากลุ่มเสี่ยงใหม่", "newly at risk"),
    "escalated_problem": ("เลื่อนเป็นกลุ่มมีปัญหา", "escalated to problem"),
    "improved": ("ดีขึ้น", "improved"),
    "left_register": ("ออกจากทะเบียน", "left the register"),
}
# With no earlier run every flagged student is new: "escalated" would claim a class that never was.
FIRST_TERM_ALERT_TH = {
    "newly_at_risk": ("เข้ากลุ่มเสี่ยง (ครั้งแรกที่ประเมิน)", "newly flagged at risk (first scored term)"),
    "escalated_problem": ("เข้ากลุ่มมีปัญหา (ครั้งแรกที่ประเมิน)", "newly flagged as problem (first scored term)"),
}
FRESHNESS_STATUS_TH = {"fresh": "เป็นปัจจุบัน", "stale": "ข้อมูลเก่า", "missing": "ไม่มีข้อมูล"}
THAI_MONTHS = ("ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.",
               "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค.")  # fmt: skip


class ReportError(RiskError):
    """The report could not be written (its folder is missing or read-only)."""


class ReportInputs(BaseModel):
    """Everything one term report shows.

    ``summaries`` and ``previous_summaries`` have one row per area with columns
    level (school/district/province/region/nation), area_code, students,
    normal, at_risk, problem, flagged_rate (share in [0, 1]); province codes are
    the 2-digit codes of ``risk.data.geography.PROVINCES``, region codes its
    ``REGIONS``. ``by_grade`` has grade_level (K1..M6), normal, at_risk, problem.
    ``raised`` has level, area_code, at_risk, problem: how many of an area's students in
    that class a class rule, not the model, put there (every level the summaries hold).
    ``evaluation`` holds the held-out metrics as flat names (``"model.roc_auc"``,
    ``"logistic.recall_top10"``); ``policy`` is the model's class policy as JSON;
    ``model_card`` a link (URI or path) to the model card. ``catalog`` names the drift check's
    features in words (default: the installed catalog, ``configs/features.yaml``).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    as_of: date
    term: str
    generated_at: datetime
    model: dict[str, Any]
    summaries: pd.DataFrame
    previous_summaries: pd.DataFrame | None = None
    by_grade: pd.DataFrame
    drift: DriftInput | None = None
    alerts: dict[str, int] | None = None
    alerts_by_rule: dict[str, int] | None = None  # of ``alerts``, those whose class a rule set
    # Each student domain at as_of (risk.features.freshness); None when it was not checked.
    freshness: list[DomainFreshness] | None = None
    evaluation: dict[str, float] | None = None
    policy: dict[str, Any] | None = None
    model_card: str | None = None
    raised: pd.DataFrame | None = None
    min_area_students: int = 30  # ScoringSettings.report
    catalog: Catalog | None = None
    # The "Did the help work?" section (risk.scoring.report_impact.impact_section); None: no estimates stored.
    impact: dict[str, Any] | None = None

    @field_validator("summaries", "previous_summaries")
    @classmethod
    def _summary_columns(cls, frame: pd.DataFrame | None) -> pd.DataFrame | None:
        return None if frame is None else _with_columns(frame, SUMMARY_COLUMNS, "area summaries")

    @field_validator("by_grade")
    @classmethod
    def _grade_columns(cls, frame: pd.DataFrame) -> pd.DataFrame:
        return _with_columns(frame, GRADE_COLUMNS, "class mix by grade")

    @field_validator("raised")
    @classmethod
    def _raised_columns(cls, frame: pd.DataFrame | None) -> pd.DataFrame | None:
        return None if frame is None else _with_columns(frame, RAISED_COLUMNS, "rule-raised counts")


def _with_columns(frame: pd.DataFrame, needed: tuple[str, ...], what: str) -> pd.DataFrame:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lack the column(s) {', '.join(missing)}; expected {', '.join(needed)}")
    return frame


def write_report(inputs: ReportInputs, path: Path) -> Path:
    """Render the term report and write it to ``path`` (UTF-8); return the path."""
    html = render_report(inputs)
    try:
        path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write the term report to {path} ({exc.strerror or exc})") from exc
    return path


def render_report(inputs: ReportInputs) -> str:
    """The term report as one HTML string."""
    env = Environment(
        loader=PackageLoader("risk.scoring", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = count_text
    return env.get_template("term_report.html.j2").render(**_context(inputs))


def _context(inputs: ReportInputs) -> dict[str, Any]:
    least = inputs.min_area_students
    province_rows = provinces(inputs.summaries, inputs.previous_summaries, inputs.raised, least)
    bins = nice_bins(province_rows.loc[~province_rows["small"], "flagged_rate"].tolist()
                     or province_rows["flagged_rate"].tolist())
    rates = dict(zip(province_rows["area_code"], province_rows["flagged_rate"], strict=True))
    # Small provinces are never ranked: a rate over a handful of students is noise.
    top = by_rank(province_rows.loc[~province_rows["small"]]).head(TOP_PROVINCES)
    bars = [(f"{r.name_th} {r.name_en}", f"{r.name_th} / {r.name_en}: {r.counts_text} ({r.rate_text})",
             r.flagged_rate) for r in top.itertuples()]  # fmt: skip
    nation = _nation(inputs.summaries)
    first_term = inputs.previous_summaries is None or inputs.previous_summaries.empty
    return {
        "term": inputs.term,
        "as_of": inputs.as_of.isoformat(),
        "as_of_th": thai_date(inputs.as_of),
        "generated_at": inputs.generated_at.strftime("%Y-%m-%d %H:%M"),
        "nation": nation,
        "counts": _area_counts(inputs.summaries),
        "classes": class_rows(inputs.policy, nation, _nation_raised(inputs.raised)),
        "policy_known": inputs.policy is not None,
        "missed": missed_targets(inputs.policy),
        "map_svg": Markup(tilemap_svg(rates, bins)),
        "legend_svg": Markup(legend_svg(bins, "อัตราเฝ้าระวัง (เสี่ยง + มีปัญหา) / flagged rate")),
        "top_svg": Markup(ranked_bars_svg(bars, bins, notes=[f"{r.rate_text} ({r.counts_text})" for r in top.itertuples()])),
        "top_n": len(bars),
        "min_area": least,
        "small_provinces": int(province_rows["small"].sum()),
        "regions": _regions(inputs.summaries, inputs.raised, least),
        "grade_svg": Markup(_grade_chart(inputs.by_grade)),
        "change": _change(inputs.summaries, inputs.previous_summaries, province_rows),
        "provinces": by_rank(province_rows).to_dict("records"),
        "lists": [x for x in (ranked_list(inputs.summaries, level, inputs.raised, least, TOP_AREAS)
                              for level in ("district", "school")) if x],
        "drift": drift_section(inputs.drift, inputs.catalog),
        "facts": model_facts(inputs.model),
        "quality": quality(inputs.evaluation or nested_evaluation(inputs.model)),
        "model_card": inputs.model_card,
        "alerts": _alerts(inputs.alerts, inputs.alerts_by_rule, first_term),
        "first_term": first_term,
        "freshness": _freshness(inputs.freshness),
        "impact": inputs.impact,
    }


def _nation_raised(raised: pd.DataFrame | None) -> dict[str, int]:
    """Rule-raised students per class, nationwide (summed from the provinces without a nation row)."""
    if raised is None or raised.empty:
        return {}
    rows = raised.loc[raised["level"] == "nation"]
    if rows.empty:
        rows = raised.loc[raised["level"] == "province"]
    return {c: int(rows[c].sum()) for c in ("at_risk", "problem")}


def _level(frame: pd.DataFrame, level: str) -> pd.DataFrame:
    rows = frame.loc[frame["level"] == level].copy()
    rows["area_code"] = rows["area_code"].astype(str)
    return rows


def _nation(summaries: pd.DataFrame) -> dict[str, Any]:
    """The nation row; summed from the provinces when the summaries hold none."""
    rows = _level(summaries, "nation")
    if rows.empty:
        rows = _level(summaries, "province")
    totals = {c: int(rows[c].sum()) for c in ("students", "normal", "at_risk", "problem")}
    rate = (
        float(rows["flagged_rate"].iloc[0]) if len(rows) == 1
        else (totals["at_risk"] + totals["problem"]) / totals["students"] if totals["students"] else math.nan
    )  # fmt: skip
    flagged = totals["at_risk"] + totals["problem"]
    return {**totals, "flagged_rate": rate, "rate_text": percent(rate), "counts_text": f"{flagged:,} / {totals['students']:,}"}


def _area_counts(summaries: pd.DataFrame) -> dict[str, int]:
    return {level: int((summaries["level"] == level).sum()) for level in ("school", "district", "province")}


def _regions(summaries: pd.DataFrame, raised: pd.DataFrame | None, least: int) -> list[dict[str, Any]]:
    rows = area_rows(summaries, "region", raised, least)
    order = {r: i for i, r in enumerate(REGIONS)}
    rows = rows.assign(_order=rows["area_code"].map(lambda r: order.get(r, len(order))))
    rows = rows.sort_values(["_order", "area_code"])
    return [{**r, "label": region_label(r["area_code"])} for r in rows.to_dict("records")]


def _grade_chart(by_grade: pd.DataFrame) -> str:
    """100% stacked bars of the three classes, one per grade level in school order."""
    counts = by_grade.groupby(by_grade["grade_level"].astype(str))[["normal", "at_risk", "problem"]].sum()
    known = [g for g in GRADE_ORDER if g in counts.index]
    order = known + sorted(set(counts.index) - set(known))
    # Problem and at-risk start at the left edge so the flagged shares line up across grades.
    classes = ("problem", "at_risk", "normal")
    rows = [(g, [float(counts.at[g, c]) for c in classes]) for g in order]
    colours = dict(zip(CLASS_TH, CLASS_COLOURS, strict=True))
    segments = [Segment(f"{CLASS_TH[c]} / {c.replace('_', ' ')}", colours[c]) for c in classes]

    def note(values: list[float]) -> str:
        total = sum(values)
        return f"{total:,.0f} คน | {percent((values[0] + values[1]) / total) if total else '–'}"

    return stacked_bars_svg(rows, segments, note=note, width=1000)


def _change(current: pd.DataFrame, previous: pd.DataFrame | None, provinces: pd.DataFrame) -> dict[str, Any] | None:
    """Nation change and the provinces that rose and fell most, in pp; None without a last term."""
    if previous is None or previous.empty:
        return None
    now, before = _nation(current), _nation(previous)
    compared = provinces.dropna(subset=["change_pp"])
    return {
        "nation_before": percent(before["flagged_rate"]),
        "nation_now": now["rate_text"],
        "nation_pp": pp(100 * (now["flagged_rate"] - before["flagged_rate"])),
        "rises": compared.loc[compared["change_pp"] > 0].nlargest(TOP_CHANGES, "change_pp").to_dict("records"),
        "falls": compared.loc[compared["change_pp"] < 0].nsmallest(TOP_CHANGES, "change_pp").to_dict("records"),
        "compared": len(compared),
    }


def _alerts(alerts: dict[str, int] | None, by_rule: dict[str, int] | None,
            first_term: bool) -> list[dict[str, Any]] | None:
    if alerts is None:
        return None
    words = {**ALERT_TH, **(FIRST_TERM_ALERT_TH if first_term else {})}
    return [{"th": words.get(kind, (kind, ""))[0], "en": words.get(kind, ("", kind))[1], "count": f"{count:,}",
             "by_rule": None if by_rule is None else f"{by_rule.get(kind, 0):,}"}
            for kind, count in alerts.items()]  # fmt: skip


def _freshness(freshness: list[DomainFreshness] | None) -> dict[str, Any] | None:
    """Rows of the freshness table and the Thai and English sentence of each stale or missing domain."""
    if freshness is None:
        return None
    rows = [{"domain": f"{f.name_th} / {f.name_en}", "newest": f.newest.isoformat() if f.newest else "–",
             "newest_th": thai_date(f.newest) if f.newest else "ไม่มี / none",
             "age": count_text(f.age_days), "max_age": count_text(f.max_age_days), "rows": count_text(f.rows_in_term),
             "status": f"{FRESHNESS_STATUS_TH[f.status]} / {f.status}", "warn": f.status != "fresh"}
            for f in freshness]  # fmt: skip
    warnings = [{"th": f.warning_th(), "en": f.warning()} for f in freshness if f.status != "fresh"]
    return {"rows": rows, "warnings": warnings, "term": freshness[0].term if freshness else ""}


def count_text(value: float) -> str:
    """A head count with thousands separators, ``12345 -> "12,345"``; missing becomes ``"–"``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{round(value):,}"


def thai_date(day: date) -> str:
    """A date the Thai way, Buddhist-Era year: ``date(2024, 7, 1) -> "1 ก.ค. 2567"``."""
    return f"{day.day} {THAI_MONTHS[day.month - 1]} {day.year + 543}"
