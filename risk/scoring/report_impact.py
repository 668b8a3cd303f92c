"""The term report's section "Did the help work? / ความช่วยเหลือได้ผลหรือไม่" (issue 30).

Reads the estimates ``risk impact --term T`` stored (:func:`risk.store.impact_estimates`) and
turns them into the template's words, a table and a forest plot of the confidence intervals
(matplotlib, drawn on its own ``Figure``, as :mod:`risk.models.plots`; inline SVG with its
text kept as text, so Thai renders in the browser and the report still opens offline). The
section shows in the report of term T+1 (the outcome became known with its register) and in
the report of T itself once its estimates are stored. Only counts and rates: no student or
school is named.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from markupsafe import Markup
from matplotlib.figure import Figure

from risk.data.contract import previous_term
from risk.store import Store, impact_estimates

__all__ = ["forest_png", "forest_svg", "impact_section"]

# Randomised rows of the plot, in order, with their labels (th, en).
PILOT_ROWS = {
    "itt": ("ผลต่อนักเรียนที่ถูกเฝ้าระวัง (สุ่ม)", "Pilot effect on flagged students (ITT)"),
    "itt_randomisation": ("ผลเดียวกัน อนุมานจากการสุ่ม", "Same, randomisation inference"),
    "complier_iv": ("ในโรงเรียนที่ลงมือช่วย (IV)", "In schools that acted (IV)"),
}
ARM_NAMES = {"alert_now": ("แจ้งเตือนทันที", "alert now"), "wait_list": ("กลุ่มรอ", "wait-list")}
_DPI = 110


def _pp(value: float | None, sign: bool = True) -> str:
    """A proportion as percentage points, ``-0.0213 -> "−2.1"``; missing becomes ``"–"``."""
    if value is None or not math.isfinite(value):
        return "–"
    return (f"{100 * value:+.1f}" if sign else f"{100 * value:.1f}").replace("-", "−")


def _ci(row: pd.Series) -> str:
    return f"{_pp(row['ci_low'])} ถึง/to {_pp(row['ci_high'])}"


def _p(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _plot_rows(estimates: pd.DataFrame, names: dict[str, tuple[str, str]], lang: str) -> list[tuple[str, pd.Series]]:
    """(label, row) pairs, top to bottom: the randomised estimates, then each action's naive and adjusted."""
    pick = 0 if lang == "th" else 1
    rows = []
    for estimand, label in PILOT_ROWS.items():
        found = estimates[estimates["estimand"] == estimand]
        if len(found):
            rows.append((label[pick], found.iloc[0]))
    for code in estimates.loc[estimates["estimand"] == "action_adjusted", "action_code"]:
        name = names.get(code, (code, code))[pick]
        for estimand, th, en in (("action_naive", "เทียบตรง", "naive"), ("action_adjusted", "ปรับแล้ว", "adjusted")):
            found = estimates[(estimates["estimand"] == estimand) & (estimates["action_code"] == code)]
            if len(found):
                rows.append((f"{name}: {th if lang == 'th' else en}", found.iloc[0]))
    return rows


def _forest(estimates: pd.DataFrame, names: dict[str, tuple[str, str]], lang: str) -> Figure | None:
    """Each estimate as a dot with its CI, in percentage points; randomised dark, observational grey."""
    rows = [(label, row) for label, row in _plot_rows(estimates, names, lang) if math.isfinite(row["ci_low"])]
    if not rows:
        return None
    fig = Figure(figsize=(7.5, 0.45 * len(rows) + 1.2), dpi=_DPI)
    ax = fig.add_subplot()
    for y, (_, row) in enumerate(reversed(rows)):
        colour = "#1f4e79" if row["evidence"] == "randomised" else "#8c8c8c"
        ax.errorbar(100 * row["estimate"], y, xerr=[[100 * (row["estimate"] - row["ci_low"])],
                                                   [100 * (row["ci_high"] - row["estimate"])]],
                    fmt="o", color=colour, capsize=3)
    ax.axvline(0, color="#444", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(rows)), [label for label, _ in reversed(rows)])
    # Right-aligned under the axes, the label runs left under the wide row labels, not off the figure's right
    # edge: the SVG's Thai is measured here in a font without Thai glyphs and drawn wider by the browser, so
    # a centred label under this narrow axes was cut off whatever the layout reserved for it.
    ax.set_xlabel("ผลต่ออัตราการหลุดออก\n(จุดร้อยละ, ช่วงเชื่อมั่น 95%)" if lang == "th"
                  else "Effect on dropout\n(percentage points, 95% CI)", loc="right")
    fig.tight_layout()
    return fig


def forest_svg(estimates: pd.DataFrame, names: dict[str, tuple[str, str]], lang: str = "th") -> str:
    """The forest plot as SVG markup (text as text), or ``""`` when no estimate has a CI."""
    # The SVG keeps its text as text for the browser to draw; matplotlib only measures it, and
    # warns for each Thai glyph its own font lacks, which says nothing about the page.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        fig = _forest(estimates, names, lang)
        if fig is None:
            return ""
        out = io.StringIO()
        with matplotlib.rc_context({"svg.fonttype": "none"}):
            fig.savefig(out, format="svg", bbox_inches="tight", pad_inches=0.1)
    svg = out.getvalue()
    return svg[svg.index("<svg"):]  # the markup only: no XML declaration or DOCTYPE inside HTML


def forest_png(estimates: pd.DataFrame, path: Path) -> Path:
    """The forest plot as a PNG at ``path`` (English labels: Thai fonts may be missing there)."""
    fig = _forest(estimates, {}, "en") or Figure(figsize=(4, 1))
    fig.savefig(path, format="png", bbox_inches="tight", pad_inches=0.1)
    return path


def _effect(row: pd.Series | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"estimate": _pp(row["estimate"]), "ci": _ci(row), "p": _p(row["p_value"]),
            "students": f"{int(row['n_students']):,}", "schools": f"{int(row['n_schools']):,}",
            "method": row["method"]}


def _relative(row: pd.Series | None) -> dict[str, str] | None:
    """The relative effect in percent (−20%: a fifth fewer dropouts), with its CI."""
    if row is None or not math.isfinite(row["estimate"]):
        return None
    as_percent = lambda v: f"{100 * v:+.0f}%".replace("-", "−")  # noqa: E731
    return {"estimate": as_percent(row["estimate"]),
            "ci": f"{as_percent(row['ci_low'])} ถึง/to {as_percent(row['ci_high'])}"}


def _first(estimates: pd.DataFrame, estimand: str) -> pd.Series | None:
    found = estimates[estimates["estimand"] == estimand]
    return found.iloc[0] if len(found) else None


def _verdict(itt: pd.Series | None) -> tuple[str, str]:
    """One sentence, Thai and English, on what the randomised estimate can say."""
    if itt is None:
        return ("ภาคเรียนนี้ไม่มีการสุ่มโรงเรียนนำร่อง จึงไม่มีหลักฐานจากการทดลอง",
                "This term had no randomised pilot, so there is no experimental evidence.")
    if itt["ci_high"] < 0:
        return ("นักเรียนที่ถูกเฝ้าระวังในโรงเรียนที่ได้รับการแจ้งเตือนหลุดออกน้อยกว่ากลุ่มรอ และความต่างนี้ไม่น่าเกิดจากความบังเอิญ",
                "Flagged students in alert schools dropped out less than in wait-list schools, by more than chance "
                "would explain.")
    if itt["ci_low"] > 0:
        return ("นักเรียนที่ถูกเฝ้าระวังในโรงเรียนที่ได้รับการแจ้งเตือนหลุดออกมากกว่ากลุ่มรอ ควรตรวจสอบ",
                "Flagged students in alert schools dropped out more than in wait-list schools: look into it.")
    return ("ยังแยกผลของการแจ้งเตือนออกจากศูนย์ไม่ได้ (ช่วงเชื่อมั่นครอบคลุมศูนย์)",
            "The effect of the alerts cannot yet be told apart from zero (the confidence interval covers zero).")


def _arms(estimates: pd.DataFrame) -> list[dict[str, str]]:
    rates = estimates[estimates["estimand"] == "dropout_rate"]
    return [{"th": ARM_NAMES.get(r.action_code, (r.action_code,) * 2)[0],
             "en": ARM_NAMES.get(r.action_code, (r.action_code,) * 2)[1], "rate": _pp(r.estimate, sign=False),
             "flagged": f"{int(r.n_students):,}", "schools": f"{int(r.n_schools):,}"} for r in rates.itertuples()]


def _actions(estimates: pd.DataFrame, names: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    rows = []
    for code in estimates.loc[estimates["estimand"] == "action_adjusted", "action_code"]:
        naive = estimates[(estimates["estimand"] == "action_naive") & (estimates["action_code"] == code)].iloc[0]
        adjusted = estimates[(estimates["estimand"] == "action_adjusted") & (estimates["action_code"] == code)].iloc[0]
        th, en = names.get(code, (code, code))
        rows.append({"th": th, "en": en, "naive": _pp(naive["estimate"]), "naive_ci": _ci(naive),
                     "adjusted": _pp(adjusted["estimate"]), "adjusted_ci": _ci(adjusted),
                     "students": f"{int(adjusted['n_students']):,}"})  # flagged students compared
    return rows


def impact_section(store: Store, report_term: str,
                   names: dict[str, tuple[str, str]] | None = None) -> dict[str, Any] | None:
    """The section's context for the report of ``report_term``, or None when no estimates are stored.

    The estimates of ``report_term`` itself are taken when stored, else those of the term before
    it (whose outcome this term's register told). ``names`` maps action codes to (th, en) words.
    """
    names = names or {}
    for term in (report_term, previous_term(report_term)):
        estimates = impact_estimates(store, term)
        if len(estimates):
            break
    else:
        return None
    itt = _first(estimates, "itt")
    verdict_th, verdict_en = _verdict(itt)
    return {"term": term, "verdict_th": verdict_th, "verdict_en": verdict_en, "arms": _arms(estimates),
            "itt": _effect(itt), "relative": _relative(_first(estimates, "itt_relative")),
            "randomisation": _effect(_first(estimates, "itt_randomisation")),
            "complier": _effect(_first(estimates, "complier_iv")), "actions": _actions(estimates, names),
            "svg": Markup(forest_svg(estimates, names, "th"))}
