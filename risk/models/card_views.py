"""What the model card says, in words: quality beside the baselines, the class policy, fairness flags
and the protected-inputs comparison, each turned from tables and the policy JSON into Thai and
English sentences (:class:`~risk.models.card_text.Bi`) and small tables for the template.

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

from risk.models.card_text import (
    AT_RISK_EITHER,
    CLASS_MEANINGS,
    CLASS_NAMES,
    FAIRNESS_MEANINGS,
    SEMESTERS,
    TARGETS,
    WHERE,
    Bi,
    attribute_name,
    auc,
    group_name,
    model_name,
    percent,
    probability,
)
from risk.models.fairness import DISPARITY_HIGH, DISPARITY_LOW

__all__ = ["TIE_FLOOR", "auc_standard_error", "fairness_view", "policy_view", "protected_view", "quality_view"]

TIE_FLOOR = 0.005
# A held-out share within half a point of its target is not called short: one term's noise.
_SLACK = 0.005
_SIMPLER = ("logistic", "context_only", "abc_rule")


def auc_standard_error(area: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil's standard error of an ROC AUC from ``positives`` and ``negatives`` rows (NaN if undefined)."""
    if not math.isfinite(area) or positives < 1 or negatives < 1:
        return math.nan
    q1, q2 = area / (2 - area), 2 * area**2 / (1 + area)
    variance = (area * (1 - area) + (positives - 1) * (q1 - area**2) + (negatives - 1) * (q2 - area**2)) / (
        positives * negatives)
    return math.sqrt(max(variance, 0.0))


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
    value = lambda model, column: _number(overall.loc[model].get(column)) if model in overall.index else math.nan  # noqa: E731
    has_oracle = "oracle" in overall.index
    ours = key_model if key_model in overall.index else None
    tolerance = TIE_FLOOR
    if ours is not None:
        rows, positives = value(ours, "rows"), value(ours, "positives")
        se = auc_standard_error(value(ours, "roc_auc"), int(positives), int(rows - positives)) if math.isfinite(
            rows + positives) else math.nan
        tolerance = max(TIE_FLOOR, se) if math.isfinite(se) else TIE_FLOOR
        view.tolerance = Bi(
            f"ถือว่า AUC สองค่า 'เท่ากัน' เมื่อต่างกันไม่เกิน {tolerance:.3f} "
            f"(ค่าที่มากกว่าระหว่าง {TIE_FLOOR} กับความคลาดเคลื่อนมาตรฐานของ AUC แบบ Hanley–McNeil)",
            f"Two AUCs count as tied when they differ by {tolerance:.3f} or less "
            f"(the larger of {TIE_FLOOR} and the AUC's Hanley–McNeil standard error).")
        view.sentences += _headline(ours, value, has_oracle, ", ".join(test_terms))
    simpler_ties = False
    for model in overall.index:
        share = _number(overall.loc[model].get("auc_ratio_to_oracle"))
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
    if abs(gap) <= tolerance:
        return Bi(f"{us.th} ได้ผลเท่ากับ{them.th}บนข้อมูลนี้ ({pair_th})",
                  f"{us.en} ties {them.en} on this data ({pair})."), True
    if gap > 0:
        return Bi(f"{us.th} ดีกว่า{them.th} {gap:.3f} ({pair_th})",
                  f"{us.en} is ahead of {them.en} by {gap:.3f} ({pair})."), False
    return Bi(f"{us.th} ด้อยกว่า{them.th} {-gap:.3f} ({pair_th})",
              f"{us.en} is behind {them.en} by {-gap:.3f} ({pair})."), False


# ---------------------------------------------------------------- class policy
@dataclass
class PolicyView:
    """The class policy for the template: classes, targets, misses (red), rules, notes."""

    recorded: bool = False
    classes: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    missed: list[Bi] = field(default_factory=list)
    rules: list[Bi] = field(default_factory=list)
    notes: list[Bi] = field(default_factory=list)
    outcomes_measured: bool = False


def policy_view(policy: dict[str, Any]) -> PolicyView:
    """The stored class policy (``ClassPolicy`` JSON with ``held_out``, ``outcomes`` and ``missed`` when measured)
    in words. Held-out figures per group are the group's ``held_out``; pooled ones the policy's ``held_out``, or
    else derived from ``outcomes``; a figure nowhere recorded is "not measured"."""
    view = PolicyView(recorded="problem_threshold" in policy)
    if not view.recorded:
        return view
    by = policy.get("thresholds_by")
    groups: dict[str, dict[str, Any]] = policy.get("groups") or {}
    outcomes: dict[str, dict[str, Any]] = policy.get("outcomes") or {}
    view.outcomes_measured = bool(outcomes)
    for name in ("problem", "at_risk", "normal"):
        outcome = outcomes.get(name)
        view.classes.append({
            "name": CLASS_NAMES[name], "meaning": CLASS_MEANINGS[name],
            "threshold": _threshold_words(name, policy, by, groups),
            "students": _count(outcome, "students"), "share": percent(_get(outcome, "share"), 1),
            "dropouts": _count(outcome, "dropouts"), "rate": percent(_get(outcome, "dropout_rate"), 1),
            "raised": _count(outcome, "raised_by_rule")})
    missed = policy.get("missed")
    # The policy's own held-out figures when it recorded them; else what the classes' outcomes imply.
    held_out = {k: _number(v) for k, v in (policy.get("held_out") or {}).items()} or _held_out_achieved(outcomes)
    for target, wanted in (policy.get("targets") or {}).items():
        if target not in TARGETS:
            continue
        words, key = TARGETS[target]
        for group in [None, *groups]:
            achieved = policy.get("achieved", {}) if group is None else groups[group].get("achieved", {})
            later = held_out.get(key) if group is None else (groups[group].get("held_out") or {}).get(key)
            misses = [m for m in missed or [] if m.get("target") == target and _same_group(m.get("group"), group)]
            for m in misses:
                later = m["achieved"] if m.get("where") == "held_out" and later is None else later
            short = [where for where, value in (("calibration", _number(achieved.get(key))), ("held_out", later))
                     if _short(target, wanted, value)]
            status, css = _status(misses, missed is not None, short)
            view.targets.append({
                "words": words.format(wanted=percent(wanted)),
                "group": _group_words(by, group), "wanted": percent(wanted),
                "calibration": percent(_number(achieved.get(key)), 1),
                "held_out": percent(later, 1) if later is not None else None,
                "missed": bool(misses), "status": status, "css": css})
    view.missed = [_missed_words(m, by) for m in missed or []]
    view.rules = [_rule_words(rule) for rule in policy.get("rules") or []]
    if "at_risk_recall" in (policy.get("targets") or {}):
        view.notes.append(AT_RISK_EITHER)
    return view


def _threshold_words(name: str, policy: dict[str, Any], by: str | None, groups: dict[str, dict[str, Any]]) -> Bi:
    if name == "normal":
        return Bi("ต่ำกว่าเกณฑ์ 'เสี่ยง' และไม่มีกฎใดยกระดับ", "under the at-risk threshold, and no rule raised it")
    key = f"{name}_threshold"
    parts = [(_group_words(by, g), groups[g].get(key)) for g in groups]
    if parts:
        parts.append((Bi("อื่น ๆ", "other rows"), policy.get(key)))
        th = " · ".join(f"{g.th} ≥ {probability(v)}" for g, v in parts)
        en = " · ".join(f"{g.en} ≥ {probability(v)}" for g, v in parts)
    else:
        th = en = f"≥ {probability(policy.get(key))}"
    if name == "at_risk":
        return Bi(f"ความน่าจะเป็น {th} หรือถูกยกระดับโดยกฎ", f"probability {en}, or raised by a rule")
    return Bi(f"ความน่าจะเป็น {th}", f"probability {en}")


def _held_out_achieved(outcomes: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The policy's targets measured by the classes' outcomes on the held-out term (empty when not measured)."""
    if not all(name in outcomes for name in ("normal", "at_risk", "problem")):
        return {}
    flagged = [outcomes["at_risk"], outcomes["problem"]]
    dropouts = sum(int(o.get("dropouts", 0)) for o in outcomes.values())
    return {"problem_precision": float(outcomes["problem"].get("dropout_rate", math.nan)),
            "flagged_recall": sum(int(o.get("dropouts", 0)) for o in flagged) / dropouts if dropouts else math.nan,
            "flagged_share": sum(float(o.get("share", 0.0)) for o in flagged)}


def _group_words(by: str | None, group: str | None) -> Bi:
    if group is None:
        return Bi("ทุกกลุ่มรวมกัน", "all rows")
    if by in SEMESTERS and group in SEMESTERS[by]:
        return SEMESTERS[by][group]
    return group_name(by or "group", group)


def _same_group(missed_group: object, group: str | None) -> bool:
    return (missed_group is None and group is None) or (group is not None and str(missed_group) == group)


def _short(target: str, wanted: float, achieved: float | None) -> bool:
    """Whether a measured value falls short of its target by more than half a point (capacity: goes over it)."""
    if achieved is None or not math.isfinite(achieved):
        return False
    return achieved > wanted + _SLACK if target == "at_risk_capacity_share" else achieved < wanted - _SLACK


def _status(misses: list[dict[str, Any]], checked: bool, short: list[str]) -> tuple[Bi, str]:
    """Words and CSS class of a target's status: missed as the policy recorded it (red); short of it on the
    calibration or held-out term though not recorded as missed (amber: the at-risk pair is either-or); kept;
    or not checked (a policy written before it recorded misses)."""
    if misses:
        th, en = _places([str(m.get("where")) for m in misses])
        return Bi(f"พลาดเป้าบน{th}", f"missed on {en}"), "missed"
    if short:
        th, en = _places(short)
        return Bi(f"ไม่ถึงเป้าบน{th}", f"short of it on {en}"), "short"
    return (Bi("เป็นไปตามนโยบาย", "kept"), "ok") if checked else (Bi("ยังไม่ได้ตรวจ", "not checked"), "")


def _places(wheres: list[str]) -> tuple[str, str]:
    places = [WHERE.get(w, Bi(w, w)) for w in wheres]
    return " และ".join(p.th for p in places), " and ".join(p.en for p in places)


def _missed_words(missed: dict[str, Any], by: str | None) -> Bi:
    words, _ = TARGETS.get(missed.get("target", ""), (Bi(str(missed.get("target")), str(missed.get("target"))), ""))
    words = words.format(wanted=percent(missed.get("wanted")))
    where = WHERE.get(missed.get("where", ""), Bi(str(missed.get("where")), str(missed.get("where"))))
    group = missed.get("group")
    scope = Bi("", "") if group is None else _group_words(by, str(group))
    scope = Bi(f" ({scope.th})", f" ({scope.en})") if group is not None else scope
    achieved = percent(_number(missed.get("achieved")), 1)
    fallback = str(missed.get("fallback", ""))
    return Bi(f"พลาดเป้า: {words.th} แต่ได้เพียง {achieved} บน{where.th}{scope.th} ใช้กฎสำรองแทน: {fallback}",
              f"Target missed: {words.en}, but only {achieved} on {where.en}{scope.en}. Fallback used: {fallback}")


def _rule_words(rule: dict[str, Any]) -> Bi:
    raise_to = CLASS_NAMES.get(rule.get("raise_to", ""), Bi(str(rule.get("raise_to")), str(rule.get("raise_to"))))
    feature = rule.get("feature", "")
    below, above = rule.get("below"), rule.get("above")
    bound = Bi(f"ต่ำกว่า {below:g}", f"is below {below:g}") if below is not None else Bi(
        f"สูงกว่า {above:g}", f"is above {above:g}")
    grade = rule.get("min_grade")
    grades = Bi(f" ตั้งแต่ชั้น {grade} ขึ้นไป", f", from grade {grade} up") if grade else Bi("", "")
    reason = rule.get("reason") or {}
    shown = Bi(f" ครูจะเห็นว่า: “{str(reason.get('th', '')).replace('{value}', '…')}”",
               f" The teacher reads: “{str(reason.get('en', '')).replace('{value}', '…')}”") if reason else Bi("", "")
    return Bi(f"กฎ {rule.get('id')}: ยกระดับเป็น '{raise_to.th}' เมื่อ {feature} {bound.th}{grades.th} "
              f"และแสดงว่าถูกยกระดับโดยกฎ ไม่ใช่โดยโมเดล{shown.th}",
              f"Rule {rule.get('id')}: raises a student to '{raise_to.en}' when {feature} {bound.en}{grades.en}, "
              f"marked as raised by the rule, not by the model.{shown.en}")


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
            ratio = _number(row.get(f"{metric}_ratio"))
            if ratio < DISPARITY_LOW - 1e-9 or ratio > DISPARITY_HIGH + 1e-9:  # NaN compares False: never flags
                meanings.append(words.format(ratio="∞" if math.isinf(ratio) else f"{ratio:.2f}"))
        rows, positives = _number(row.get("rows")), _number(row.get("positives"))
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
    a, b = _number(with_.get("auc")), _number(without.get("auc"))
    fa, fb = _count(with_, "fairness_flags"), _count(without, "fairness_flags")
    used = comparison.get("used")
    in_use = Bi("ใช้ข้อมูลเหล่านี้เป็นข้อมูลเข้า", "uses them as inputs") if used == "with_protected" else Bi(
        "ไม่ใช้ข้อมูลเหล่านี้เป็นข้อมูลเข้า", "does not use them as inputs")
    return ProtectedView(
        measured=True, used=used,
        rows=[(Bi("AUC", "AUC"), auc(a), auc(b)),
              (Bi("พบผู้ออกกลางคันใน 10% แรก", "recall in the top 10%"),
               percent(_number(with_.get("recall_top10"))), percent(_number(without.get("recall_top10")))),
              (Bi("กลุ่มที่ถูกทำเครื่องหมายด้านความเป็นธรรม", "fairness flags (groups)"), fa, fb)],
        sentence=Bi(f"เมื่อไม่ใช้เพศ สัญชาติ และความพิการเป็นข้อมูลเข้า AUC เป็น {auc(b)} (เทียบกับ {auc(a)} เมื่อใช้) "
                    f"และกลุ่มที่ถูกทำเครื่องหมายเป็น {fb} (เทียบกับ {fa}) โมเดลที่ใช้งาน{in_use.th}",
                    f"Without sex, nationality and disability as inputs, AUC is {auc(b)} (against {auc(a)} with them) "
                    f"and {fb} groups are flagged (against {fa}). The model in use {in_use.en}."))


# ---------------------------------------------------------------- small helpers
def _number(value: object) -> float:
    """A float from a cell or JSON value; NaN when missing or not a number."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _get(mapping: dict[str, Any] | None, key: str) -> float | None:
    return None if mapping is None or key not in mapping else _number(mapping[key])


def _count(mapping: dict[str, Any] | None, key: str) -> str:
    number = _get(mapping, key)
    return "–" if number is None or not math.isfinite(number) else f"{number:,.0f}"
