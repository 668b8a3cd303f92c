"""What the model card says, in words: quality beside the baselines, fairness flags and the
protected-inputs comparison, each turned from tables into Thai and English sentences
(:class:`~risk.models.card_text.Bi`) and small tables for the template; the class policy's words
are in :mod:`risk.models.card_policy` (re-exported here).

**Ties.** Two AUCs on the same held-out rows count as tied when they differ by no more than the
tolerance: the larger of :data:`TIE_FLOOR` (0.005) and the standard error of the key model's AUC
by Hanley & McNeil (1982), from its dropouts and other rows. Rows are student × sampling point,
so the standard error is somewhat optimistic; the floor keeps a large term from calling 0.002 a win.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from risk.models.card_policy import PolicyView, policy_view
from risk.models.card_text import (
    FAIRNESS_MEANINGS,
    TREATED_CHOICE_WORDS,
    TREATED_NO_STORE,
    TREATED_NOT_TOLD,
    TREATED_ROWS,
    TREATED_WAIT_LIST,
    Bi,
    attribute_name,
    auc,
    count,
    group_name,
    model_name,
    number,
    percent,
)
from risk.models.fairness import DISPARITY_HIGH, DISPARITY_LOW

__all__ = ["TIE_FLOOR", "PolicyView", "auc_standard_error", "auc_ties", "fairness_view", "policy_view",
           "protected_view", "quality_view", "tie_tolerance", "treated_view"]

TIE_FLOOR = 0.005
_SIMPLER = ("logistic", "context_only", "abc_rule")


def auc_standard_error(area: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil's standard error of an ROC AUC from ``positives`` and ``negatives`` rows (NaN if undefined)."""
    if not math.isfinite(area) or positives < 1 or negatives < 1:
        return math.nan
    q1, q2 = area / (2 - area), 2 * area**2 / (1 + area)
    variance = (area * (1 - area) + (positives - 1) * (q1 - area**2) + (negatives - 1) * (q2 - area**2)) / (
        positives * negatives)
    return math.sqrt(max(variance, 0.0))


def tie_tolerance(area: float, positives: int, negatives: int) -> float:
    """How far apart two AUCs on the same held-out rows may be and still tie: the larger of :data:`TIE_FLOOR`
    and the key model's Hanley–McNeil standard error (``area`` over ``positives`` dropouts and ``negatives``
    other rows); the floor alone when the error is undefined. The model card and the term report both use it."""
    se = auc_standard_error(area, positives, negatives)
    return max(TIE_FLOOR, se) if math.isfinite(se) else TIE_FLOOR


def auc_ties(a: float, b: float, tolerance: float) -> bool:
    """Whether AUCs ``a`` and ``b`` tie within ``tolerance`` (:func:`tie_tolerance`); never when one is missing."""
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tolerance


# ---------------------------------------------------------------- quality
@dataclass
class QualityView:
    """Sentences (Thai and English) and one readable row per model of the overall slice."""

    sentences: list[Bi] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    tolerance: Bi | None = None


def quality_view(evaluation: pd.DataFrame, key_model: str | None, test_terms: list[str]) -> QualityView:
    """The overall slice of :func:`risk.models.metrics.evaluation_table` in words, the key model against each other one."""
    view = QualityView()
    if "slice" not in evaluation.columns or "model" not in evaluation.columns:
        return view
    overall = evaluation[evaluation["slice"] == "overall"].set_index("model")
    if overall.empty:
        return view
    value = lambda model, column: number(overall.loc[model].get(column)) if model in overall.index else math.nan  # noqa: E731
    has_oracle = "oracle" in overall.index
    ours = key_model if key_model in overall.index else None
    tolerance = TIE_FLOOR
    if ours is not None:
        rows, positives = value(ours, "rows"), value(ours, "positives")
        tolerance = tie_tolerance(value(ours, "roc_auc"), int(positives), int(rows - positives)) if math.isfinite(
            rows + positives) else TIE_FLOOR
        view.tolerance = Bi(
            f"ถือว่า AUC สองค่า 'เท่ากัน' เมื่อต่างกันไม่เกิน {tolerance:.3f} "
            f"(ค่าที่มากกว่าระหว่าง {TIE_FLOOR} กับความคลาดเคลื่อนมาตรฐานของ AUC แบบ Hanley–McNeil)",
            f"Two AUCs count as tied when they differ by {tolerance:.3f} or less "
            f"(the larger of {TIE_FLOOR} and the AUC's Hanley–McNeil standard error).")
        view.sentences += _headline(ours, value, has_oracle, ", ".join(test_terms))
    simpler_ties = False
    for model in overall.index:
        share = number(overall.loc[model].get("auc_ratio_to_oracle"))
        if not math.isfinite(share) and has_oracle and value("oracle", "roc_auc") > 0:
            share = value(model, "roc_auc") / value("oracle", "roc_auc")
        verdict = None
        if ours is not None and model not in (ours, "oracle"):
            verdict, tied = _compare(ours, model, value(ours, "roc_auc"), value(model, "roc_auc"), tolerance)
            view.sentences.append(verdict)
            simpler_ties |= tied and model in _SIMPLER
        view.rows.append({
            "name": model_name(model), "auc": auc(value(model, "roc_auc")), "oracle_share": percent(share),
            "recall_top10": percent(value(model, "recall_top10")),
            "precision_top10": percent(value(model, "precision_top10")),
            "ece": auc(value(model, "ece")), "verdict": verdict, "ours": model == ours})
    if simpler_ties:
        view.sentences.append(Bi("เมื่อผลเท่ากัน แบบจำลองที่ง่ายกว่าก็จัดลำดับนักเรียนได้ดีพอ ๆ กันบนข้อมูลนี้: "
                                 "LightGBM คุ้มค่าก็ต่อเมื่อเหตุผลหรือการปรับเทียบดีกว่า",
                                 "Where a simpler baseline ties, it ranks students as well on this data: LightGBM "
                                 "earns its place only through better reasons or calibration."))
    return view


def _headline(ours: str, value: Any, has_oracle: bool, terms: str) -> list[Bi]:
    name = model_name(ours)
    ranked = value(ours, "roc_auc")
    out = []
    if has_oracle:
        oracle = value("oracle", "roc_auc")
        share = percent(ranked / oracle) if oracle > 0 else "–"
        out.append(Bi(
            f"บนภาคเรียนทดสอบ {terms} {name.th} ได้ AUC {auc(ranked)} คิดเป็น {share} ของ oracle ({auc(oracle)}) "
            "ซึ่งคือความน่าจะเป็นจริงที่ใช้สร้างข้อมูลสังเคราะห์ เป็นค่าสูงสุดที่โมเดลใดจะทำได้",
            f"On the held-out term {terms}, {name.en} reaches AUC {auc(ranked)}, {share} of the oracle's "
            f"{auc(oracle)} (the true probability the synthetic data was drawn from: the best any model could do)."))
    else:
        out.append(Bi(f"บนภาคเรียนทดสอบ {terms} {name.th} ได้ AUC {auc(ranked)} (ข้อมูลจริงไม่มี oracle ให้เทียบ)",
                      f"On the held-out term {terms}, {name.en} reaches AUC {auc(ranked)} "
                      "(real data has no oracle to compare with)."))
    recall = percent(value(ours, "recall_top10"))
    oracle_recall = Bi(f" (oracle {percent(value('oracle', 'recall_top10'))})",
                       f" (the oracle {percent(value('oracle', 'recall_top10'))})") if has_oracle else Bi("", "")
    out.append(Bi(f"ใน 10% ของนักเรียนที่ {name.th} จัดว่าเสี่ยงที่สุด มีผู้ที่ออกกลางคันจริง {recall} ของทั้งหมด"
                  f"{oracle_recall.th}",
                  f"Among the 10% of students {name.en} ranks highest are {recall} of those who left{oracle_recall.en}."))
    return out


def _compare(ours: str, other: str, a: float, b: float, tolerance: float) -> tuple[Bi, bool]:
    """The sentence comparing two AUCs, and whether they tie."""
    us, them = model_name(ours), model_name(other)
    pair = f"AUC {auc(a)} vs {auc(b)}"
    pair_th = f"AUC {auc(a)} เทียบกับ {auc(b)}"
    if not (math.isfinite(a) and math.isfinite(b)):
        return Bi(f"เทียบ {us.th} กับ{them.th}ไม่ได้ (ไม่มี AUC)", f"{us.en} cannot be compared with {them.en} (no AUC)."), False
    gap = a - b
    if auc_ties(a, b, tolerance):
        return Bi(f"{us.th} ได้ผลเท่ากับ{them.th}บนข้อมูลนี้ ({pair_th})",
                  f"{us.en} ties {them.en} on this data ({pair})."), True
    if gap > 0:
        return Bi(f"{us.th} ดีกว่า{them.th}อยู่ {gap:.3f} ({pair_th})",
                  f"{us.en} is ahead of {them.en} by {gap:.3f} ({pair})."), False
    return Bi(f"{us.th} ด้อยกว่า{them.th}อยู่ {-gap:.3f} ({pair_th})",
              f"{us.en} is behind {them.en} by {-gap:.3f} ({pair})."), False


# ---------------------------------------------------------------- fairness
@dataclass
class FairnessView:
    summary: Bi | None = None
    flags: list[dict[str, Any]] = field(default_factory=list)


def fairness_view(fairness: pd.DataFrame | None) -> FairnessView:
    """Each flagged group of :func:`risk.models.fairness.fairness_table` with what its flags mean for a teacher."""
    if fairness is None or "flagged_disparity" not in fairness.columns:
        return FairnessView()
    flagged = fairness[fairness["flagged_disparity"].fillna(False).astype(bool)]
    attributes = ", ".join(dict.fromkeys(attribute_name(a).en for a in fairness.get("attribute", [])))
    attributes_th = ", ".join(dict.fromkeys(attribute_name(a).th for a in fairness.get("attribute", [])))
    view = FairnessView(summary=Bi(
        f"ตรวจ {len(fairness)} กลุ่ม ({attributes_th}) ถูกทำเครื่องหมาย {len(flagged)} กลุ่ม",
        f"{len(fairness)} groups checked ({attributes}); {len(flagged)} flagged."))
    for _, row in flagged.iterrows():
        meanings = []
        for metric, words in FAIRNESS_MEANINGS.items():
            ratio = number(row.get(f"{metric}_ratio"))
            if ratio < DISPARITY_LOW - 1e-9 or ratio > DISPARITY_HIGH + 1e-9:  # NaN compares False: never flags
                meanings.append(words.format(ratio="∞" if math.isinf(ratio) else f"{ratio:.2f}"))
        rows, positives = number(row.get("rows")), number(row.get("positives"))
        counts = Bi(f"{rows:,.0f} คน ออกกลางคัน {positives:,.0f} คน", f"{rows:,.0f} students, {positives:,.0f} left") \
            if math.isfinite(rows) and math.isfinite(positives) else Bi("", "")
        view.flags.append({"group": group_name(str(row.get("attribute")), row.get("group")), "counts": counts,
                           "meanings": meanings})
    return view


# ---------------------------------------------------------------- protected inputs
@dataclass
class ProtectedView:
    measured: bool = False
    used: str | None = None
    rows: list[tuple[Bi, str, str]] = field(default_factory=list)
    sentence: Bi | None = None


def protected_view(comparison: dict[str, Any] | None) -> ProtectedView:
    """The model with and without sex, nationality and disability as inputs, side by side."""
    if not comparison or "with_protected" not in comparison or "without_protected" not in comparison:
        return ProtectedView()
    with_, without = comparison["with_protected"], comparison["without_protected"]
    a, b = number(with_.get("auc")), number(without.get("auc"))
    fa, fb = count(with_, "fairness_flags"), count(without, "fairness_flags")
    used = comparison.get("used")
    in_use = Bi("ใช้ข้อมูลเหล่านี้เป็นข้อมูลเข้า", "uses them as inputs") if used == "with_protected" else Bi(
        "ไม่ใช้ข้อมูลเหล่านี้เป็นข้อมูลเข้า", "does not use them as inputs")
    note = _sampled_note(comparison)
    return ProtectedView(
        measured=True, used=used,
        rows=[(Bi("AUC", "AUC"), auc(a), auc(b)),
              (Bi("พบผู้ออกกลางคันใน 10% แรก", "recall in the top 10%"),
               percent(number(with_.get("recall_top10"))), percent(number(without.get("recall_top10")))),
              (Bi("กลุ่มที่ถูกทำเครื่องหมายด้านความเป็นธรรม", "fairness flags (groups)"), fa, fb)],
        sentence=Bi(f"เมื่อไม่ใช้เพศ สัญชาติ และความพิการเป็นข้อมูลเข้า AUC เป็น {auc(b)} (เทียบกับ {auc(a)} เมื่อใช้) "
                    f"และกลุ่มที่ถูกทำเครื่องหมายเป็น {fb} (เทียบกับ {fa}) โมเดลที่ใช้งาน{in_use.th}{note.th}",
                    f"Without sex, nationality and disability as inputs, AUC is {auc(b)} (against {auc(a)} with them) "
                    f"and {fb} groups are flagged (against {fa}). The model in use {in_use.en}.{note.en}"))


def _sampled_note(comparison: dict[str, Any]) -> Bi:
    """Nothing when both settings were fitted on the same rows; else how many the other setting had."""
    rows = comparison.get("fit_rows") or {}
    used = comparison.get("used")
    other = next((rows[k] for k in rows if k != used), None)
    if other is None or other >= rows.get(used, other):
        return Bi("", "")
    return Bi(f" โมเดลอีกแบบฝึกจากตัวอย่างนักเรียน {other:,} แถวจาก {rows[used]:,} แถวที่ใช้ฝึก",
              f" The other setting was fitted on a sample of students, {other:,} of the {rows[used]:,} training rows.")


# ---------------------------------------------------------------- treated training rows
def treated_view(treated: dict[str, Any] | None) -> list[Bi]:
    """The choice for training rows the help may have changed, and their counts, as sentences
    (``treated``: :meth:`risk.models.treated.TreatedRows.summary`; None: a model trained before they were counted)."""
    if not treated:
        return [TREATED_NOT_TOLD]
    words = TREATED_CHOICE_WORDS[treated["choice"]].format(weight=f"{treated['down_weight']:g}")
    if treated.get("source") == "none":
        return [Bi(TREATED_NO_STORE.th.format(choice=words.th), TREATED_NO_STORE.en.format(choice=words.en))]
    numbers = _treated_numbers(treated)
    lines = [Bi(TREATED_ROWS.th.format(**numbers, choice=words.th), TREATED_ROWS.en.format(**numbers, choice=words.en))]
    if treated.get("wait_list"):
        lines.append(TREATED_WAIT_LIST.format(wait_list=f"{treated['wait_list']:,}"))
    return lines


def _treated_numbers(treated: dict[str, Any]) -> dict[str, str]:
    return {"treated": f"{treated['treated']:,}", "share": percent(treated["share"], 1),
            "alerted": f"{treated['alerted']:,}", "acted": f"{treated['acted']:,}", "rows": f"{treated['rows']:,}"}
