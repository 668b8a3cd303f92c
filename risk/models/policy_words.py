"""The class policy's fallbacks and rules in words, Thai and English, from the policy's own fields.

Shared by the model card (:mod:`risk.models.card_policy`) and the term report
(:mod:`risk.scoring.report_model`), so both name a fallback and a rule the same way.

A missed target (:class:`risk.models.policy.MissedTarget`: ``target``, ``group``, ``wanted``,
``achieved``, ``where``) carries what was done instead as one English sentence, ``fallback``,
written for the training log. An analyst reading Thai needs the same fact in Thai, so the
words here are built from the structured fields and the policy JSON (its thresholds, and the
fallback share when the policy records it); the English sentence stays as the detail, in
English only. A rule (:class:`risk.models.settings.ClassRule`) names its feature by code
(``att_rate_term``): the words use the feature's catalog description when a catalog is at
hand, else :data:`KNOWN_FEATURES`, and a share's bound as a percentage ("80%", not "0.8").
"""

from __future__ import annotations

import math
from typing import Any

from risk.features.catalog import Catalog
from risk.models.card_text import CLASS_NAMES, Bi, percent, probability

__all__ = ["KNOWN_FEATURES", "bound_text", "fallback_share", "fallback_words", "feature_words", "rule_condition"]

# Features a class rule is known to read, for a card or report drawn without the catalog at hand:
# (description, unit), worded as in configs/features.yaml.
KNOWN_FEATURES: dict[str, tuple[Bi, str]] = {
    "att_rate_term": (Bi("สัดส่วนวันที่มาเรียนในภาคเรียนนี้ (มาเรียนหรือมาสาย)",
                         "share of this term's school days attended (present or late)"), "share"),
    "att_rate_20d": (Bi("สัดส่วนวันที่มาเรียนใน 20 วันเรียนล่าสุด", "share of the last 20 school days attended"),
                     "share"),
    "gpa_last_term": (Bi("เกรดเฉลี่ยภาคเรียนล่าสุดที่มีผลการเรียน", "grade point average of the latest graded term"),
                      "grade_points"),
}
_SHARE_UNITS = ("share", "rate")


def feature_words(name: str, catalog: Catalog | None = None) -> tuple[Bi, str | None]:
    """A feature's description (Thai, English, the English starting in lower case for use mid-sentence) and its
    unit: from ``catalog`` when it has the feature, else :data:`KNOWN_FEATURES`; an unknown code stays a code."""
    if catalog is not None:
        try:
            spec = catalog.get(name)
        except KeyError:
            spec = None
        if spec is not None:
            return Bi(spec.description.th, _mid_sentence(spec.description.en)), spec.unit
    if name in KNOWN_FEATURES:
        return KNOWN_FEATURES[name]
    return Bi(name, name), None


def _mid_sentence(text: str) -> str:
    """'Share of ...' -> 'share of ...'; an acronym ('GPA ...') keeps its capitals."""
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        return text[0].lower() + text[1:]
    return text


def bound_text(value: float, unit: str | None) -> str:
    """A rule's bound as a reader writes it: a share 0.8 -> '80%'; anything else as it is (0.8, 1.5)."""
    if unit in _SHARE_UNITS:
        return f"{100 * value:g}%"
    if unit == "percent":
        return f"{value:g}%"
    return f"{value:g}"


def rule_condition(rule: dict[str, Any], catalog: Catalog | None = None) -> Bi:
    """When a rule fires, in words: 'share of this term's school days attended (...) is below 80%'."""
    feature, unit = feature_words(str(rule.get("feature", "")), catalog)
    below, above = rule.get("below"), rule.get("above")
    if below is not None:
        bound = bound_text(float(below), unit)
        return Bi(f"{feature.th} ต่ำกว่า {bound}", f"{feature.en} is below {bound}")
    bound = bound_text(float(above), unit) if above is not None else "–"
    return Bi(f"{feature.th} สูงกว่า {bound}", f"{feature.en} is above {bound}")


def fallback_share(policy: dict[str, Any], group: str | None) -> float | None:
    """The share of students the problem class falls back to (the follow-up capacity).

    ``targets.problem_fallback_share`` when the policy records it; else the share the problem
    class took on the calibration rows (``achieved.problem_share`` of the group, or pooled), which
    is that capacity when the fallback was used; None when neither is recorded.
    """
    recorded = (policy.get("targets") or {}).get("problem_fallback_share")
    if recorded is not None:
        return float(recorded)
    groups = policy.get("groups") or {}
    achieved = (groups.get(group) or {}).get("achieved") if group is not None else policy.get("achieved")
    share = (achieved or {}).get("problem_share")
    return float(share) if share is not None and math.isfinite(float(share)) else None


def _share_text(share: float) -> str:
    """1% for a round capacity, 0.4% for a measured one."""
    points = 100 * share
    return percent(share, 0 if abs(points - round(points)) < 1e-9 and points >= 1 else 1)


def _kept_threshold(policy: dict[str, Any], group: str | None, name: str) -> float | None:
    """The calibration threshold of class ``name`` that stands for ``group`` (the pooled one without it)."""
    source = (policy.get("groups") or {}).get(group, policy) if group is not None else policy
    value = source.get(f"{name}_threshold")
    return None if value is None else float(value)


def fallback_words(missed: dict[str, Any], policy: dict[str, Any] | None = None) -> Bi:
    """What the policy did instead of a missed target, in Thai and English, from the miss's fields.

    ``missed`` is one entry of the policy JSON's ``missed``; ``policy`` the whole policy JSON (for the
    thresholds that stand and the fallback share). The English ``fallback`` sentence is not used here:
    callers show it as the English detail.
    """
    policy = policy or {}
    target, where = str(missed.get("target", "")), str(missed.get("where", ""))
    group = None if missed.get("group") is None else str(missed.get("group"))
    achieved = percent(_float(missed.get("achieved")), 1)
    problem, at_risk = CLASS_NAMES["problem"], CLASS_NAMES["at_risk"]
    if where == "held_out":
        # A held-out term cannot choose a threshold (it would be fitted on the data it is judged on).
        name = "problem" if target == "problem_precision" else "at_risk"
        kept = _kept_threshold(policy, group, name)
        at = Bi(f" (ความน่าจะเป็น ≥ {probability(kept)})", f" (probability ≥ {probability(kept)})") if kept is not None \
            else Bi("", "")
        stands = Bi(f"เลือกเกณฑ์ใหม่บนภาคเรียนทดสอบไม่ได้ จึงคงเกณฑ์ '{CLASS_NAMES[name].th}' "
                    f"จากภาคเรียนที่ใช้ปรับเทียบไว้{at.th}",
                    f"no threshold can be chosen on the held-out term, so the calibration term's "
                    f"'{CLASS_NAMES[name].en}' threshold{at.en} stands")
        if target == "problem_precision":
            return Bi(f"{stands.th}: กลุ่ม '{problem.th}' คือนักเรียนที่มีความน่าจะเป็นสูงสุด ซึ่งออกกลางคันจริง {achieved}",
                      f"{stands.en}: the '{problem.en}' class is the highest-scored students, of whom {achieved} left")
        if target == "at_risk_capacity_share":
            return Bi(f"{stands.th} ซึ่งแจ้งเตือน {achieved} ของนักเรียน",
                      f"{stands.en}, flagging {achieved} of students")
        return stands
    if target == "problem_precision":
        share = fallback_share(policy, group)
        if share is None:
            return Bi(f"กลุ่ม '{problem.th}' จึงเป็นนักเรียนที่มีความน่าจะเป็นสูงสุดเท่าที่ครูติดตามได้แทน",
                      f"the '{problem.en}' class is instead the highest-scored students, as many as can be "
                      "followed up")
        return Bi(f"กลุ่ม '{problem.th}' จึงเป็นนักเรียนที่มีความน่าจะเป็นสูงสุด {_share_text(share)} แรกแทน "
                  "(เท่าที่ครูติดตามได้)",
                  f"the '{problem.en}' class is instead the highest-scored {_share_text(share)} of students "
                  "(as many as can be followed up)")
    if target in ("at_risk_capacity_share", "at_risk_recall"):
        return Bi(f"เกณฑ์ '{at_risk.th}' ใช้เป้าอีกข้อหนึ่งที่แจ้งเตือนน้อยกว่าแทน",
                  f"the '{at_risk.en}' threshold follows the other target, whichever flags fewer students")
    return Bi("ใช้กฎสำรองที่กำหนดไว้แทน", "a defined fallback rule is used instead")


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
