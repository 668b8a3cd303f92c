"""The class policy in words for the model card: what each class means and held on the held-out term, each
target wanted and achieved (on calibration, on the held-out term), each missed target with its fallback, and
the rules that raise a class. Reads the policy's JSON (:class:`risk.models.policy.ClassPolicy`), so a policy
written before ``held_out``, ``outcomes`` or ``missed`` existed still reads: "not measured", "not checked".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from risk.features.catalog import Catalog
from risk.models.card_text import (
    AT_RISK_EITHER,
    CLASS_MEANINGS,
    CLASS_NAMES,
    SEMESTERS,
    TARGETS,
    WHERE,
    Bi,
    count,
    group_name,
    number,
    percent,
    probability,
    value_of,
)
from risk.models.policy_words import fallback_words, rule_condition

__all__ = ["PolicyView", "policy_view"]

# A share within half a point of its target is not called short: one term's noise.
_SLACK = 0.005


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


def policy_view(policy: dict[str, Any], catalog: Catalog | None = None) -> PolicyView:
    """The stored class policy (``ClassPolicy`` JSON with ``held_out``, ``outcomes`` and ``missed`` when measured)
    in words. Held-out figures per group are the group's ``held_out``; pooled ones the policy's ``held_out``, or
    else derived from ``outcomes``; a figure nowhere recorded is "not measured". A rule's feature is named by its
    description in ``catalog`` when given, else by :data:`risk.models.policy_words.KNOWN_FEATURES`."""
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
            "students": count(outcome, "students"), "share": percent(value_of(outcome, "share"), 1),
            "dropouts": count(outcome, "dropouts"), "rate": percent(value_of(outcome, "dropout_rate"), 1),
            "raised": count(outcome, "raised_by_rule")})
    missed = policy.get("missed")
    # The policy's own held-out figures when it recorded them; else what the classes' outcomes imply.
    held_out = {k: number(v) for k, v in (policy.get("held_out") or {}).items()} or _held_out_achieved(outcomes)
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
            short = [where for where, value in (("calibration", number(achieved.get(key))), ("held_out", later))
                     if _short(target, wanted, value)]
            status, css = _status(misses, missed is not None, short)
            view.targets.append({
                "words": words.format(wanted=percent(wanted)),
                "group": _group_words(by, group), "wanted": percent(wanted),
                "calibration": percent(number(achieved.get(key)), 1),
                "held_out": percent(later, 1) if later is not None else None,
                "missed": bool(misses), "status": status, "css": css})
    view.missed = [_missed_words(m, policy) for m in missed or []]
    view.rules = [_rule_words(rule, catalog) for rule in policy.get("rules") or []]
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


def _missed_words(missed: dict[str, Any], policy: dict[str, Any]) -> Bi:
    """A missed target and what was done instead, built from the miss's fields (:mod:`risk.models.policy_words`);
    the policy's own English ``fallback`` sentence follows as the detail, in English only."""
    words, _ = TARGETS.get(missed.get("target", ""), (Bi(str(missed.get("target")), str(missed.get("target"))), ""))
    words = words.format(wanted=percent(missed.get("wanted")))
    where = WHERE.get(missed.get("where", ""), Bi(str(missed.get("where")), str(missed.get("where"))))
    group = missed.get("group")
    scope = Bi("", "") if group is None else _group_words(policy.get("thresholds_by"), str(group))
    scope = Bi(f" ({scope.th})", f" ({scope.en})") if group is not None else scope
    achieved = percent(number(missed.get("achieved")), 1)
    instead = fallback_words(missed, policy)
    detail = str(missed.get("fallback") or "").strip()
    detail = f" (Detail: {detail.rstrip('.')}.)" if detail else ""
    return Bi(f"พลาดเป้า: {words.th} แต่ได้เพียง {achieved} บน{where.th}{scope.th} ใช้กฎสำรองแทน: {instead.th}",
              f"Target missed: {words.en}, but only {achieved} on {where.en}{scope.en}. "
              f"Fallback used: {instead.en}.{detail}")


def _rule_words(rule: dict[str, Any], catalog: Catalog | None = None) -> Bi:
    raise_to = CLASS_NAMES.get(rule.get("raise_to", ""), Bi(str(rule.get("raise_to")), str(rule.get("raise_to"))))
    when = rule_condition(rule, catalog)
    grade = rule.get("min_grade")
    grades = Bi(f" ตั้งแต่ชั้น {grade} ขึ้นไป", f", from grade {grade} up") if grade else Bi("", "")
    reason = rule.get("reason") or {}
    shown = Bi(f" ครูจะเห็นว่า: “{str(reason.get('th', '')).replace('{value}', '…')}”",
               f" The teacher reads: “{str(reason.get('en', '')).replace('{value}', '…')}”") if reason else Bi("", "")
    return Bi(f"กฎ {rule.get('id')}: ยกระดับเป็น '{raise_to.th}' เมื่อ{when.th}{grades.th} "
              f"และแสดงว่าถูกยกระดับโดยกฎ ไม่ใช่โดยโมเดล{shown.th}",
              f"Rule {rule.get('id')}: raises a student to '{raise_to.en}' when {when.en}{grades.en}, "
              f"marked as raised by the rule, not by the model.{shown.en}")
