"""The term report's words about the model: what each class means, and how good the model is.

Inputs are what the scoring run keeps of its model:

* the class policy as JSON (``risk.models.policy.ClassPolicy``): pooled thresholds,
  per-group thresholds (``thresholds_by``: ``year_end_term`` 0 = semester 1, 1 = semester 2),
  the rules that raise a class, and, from models trained since issue 28, ``outcomes``
  (each class's students and dropouts on the held-out term) and ``missed`` (targets the
  policy could not meet, and the rule used instead);
* the held-out evaluation as flat metric names, ``"model.roc_auc"``, ``"logistic.recall_top10"``
  (MLflow's ``test.`` prefix is dropped): one entry per (model or baseline, metric).

Out come rows ready for the template, Thai first with English beside. Thresholds and
rates are shares in [0, 1], printed as percentages.
"""

from __future__ import annotations

import math
from typing import Any

from risk.models.card_views import TIE_FLOOR, auc_ties, tie_tolerance
from risk.models.policy_words import fallback_words, rule_condition
from risk.scoring.charts import percent

__all__ = ["CLASS_TH", "class_rows", "missed_targets", "model_facts", "nested_evaluation", "quality", "tolerance"]

CLASS_TH = {"normal": "กลุ่มปกติ", "at_risk": "กลุ่มเสี่ยง", "problem": "กลุ่มมีปัญหา"}
CLASS_EN = {"normal": "normal", "at_risk": "at risk", "problem": "problem"}
# What a class asks of a school, in the words of OBEC's student-care system (ระบบดูแลช่วยเหลือนักเรียน).
CLASS_MEANING = {
    "normal": ("โอกาสหลุดออกจากระบบต่ำกว่าเกณฑ์เฝ้าระวัง ดูแลตามปกติของโรงเรียน",
               "chance of dropping out below the watch line: the school's usual care"),
    "at_risk": ("โอกาสหลุดออกสูงกว่านักเรียนทั่วไป ครูประจำชั้นควรติดตามและพูดคุยกับนักเรียนและครอบครัว",
                "a higher chance of dropping out than most: the class teacher should follow up with the "
                "student and family"),
    "problem": ("โอกาสหลุดออกสูงมาก ควรช่วยเหลือทันทีและส่งต่อเมื่อจำเป็น",
                "a high chance of dropping out: help now, and refer when needed"),
}
GROUP_LABELS = {"year_end_term": {"0": ("ภาคเรียนที่ 1", "semester 1"), "1": ("ภาคเรียนที่ 2", "semester 2")}}
RULE_TEXT = {
    "exam_line": ("มาเรียนต่ำกว่า 80% ของวันเรียน (เกณฑ์มีสิทธิ์สอบ)",
                  "attendance under 80% of school days (the line to sit exams)"),
}
TARGET_TEXT = {
    "problem_precision": ("ความแม่นยำของกลุ่มมีปัญหา (สัดส่วนที่หลุดออกจริง)", "problem precision (share who drop out)"),
    "at_risk_recall": ("สัดส่วนผู้หลุดออกที่อยู่ในกลุ่มเสี่ยงขึ้นไป", "share of dropouts flagged at risk or above"),
    "at_risk_capacity_share": ("สัดส่วนนักเรียนที่ถูกเฝ้าระวัง", "share of students flagged"),
}
WHERE_TEXT = {"calibration": ("ข้อมูลปรับเทียบ", "calibration data"), "held_out": ("ภาคเรียนทดสอบ", "held-out term")}
# The models a run is judged beside (risk.models.train._all_scores), in the order a reader compares them.
MODELS = (
    ("model", "แบบจำลองนี้ (LightGBM)", "this model (LightGBM)"),
    ("logistic", "การถดถอยโลจิสติก", "logistic regression"),
    ("context_only", "ข้อมูลบริบทเท่านั้น (ชั้น โรงเรียน พื้นที่)", "context only (grade, school, area)"),
    ("abc_rule", "กฎ ABC (ขาดเรียน พฤติกรรม ผลการเรียน)", "ABC rule (attendance, behaviour, course grades)"),
    ("champion", "แบบจำลองที่ใช้อยู่ก่อนหน้า", "the champion before it"),
    ("oracle", "ขีดบน (oracle: รู้โอกาสจริงของข้อมูลจำลอง)", "oracle (knows the synthetic truth)"),
)
MODEL_FACTS = {
    "name": "ชื่อ / name", "version": "รุ่น / version", "alias": "สถานะ / alias",
    "trained_window": "ช่วงข้อมูล / data window", "trained window": "ช่วงข้อมูล / data window",
    "catalog": "รุ่นของรายการตัวแปร / feature catalog", "catalog_version": "รุ่นของรายการตัวแปร / feature catalog",
}  # fmt: skip
WINDOW_TH = {"train": "ฝึก / train", "calibration": "ปรับเทียบ / calibration", "test": "ทดสอบ / held-out test"}


def _threshold(value: float) -> str:
    digits = 2 if value < 0.01 else 1
    return percent(value, digits)


def _rule_text(rule: dict[str, Any]) -> tuple[str, str]:
    if rule.get("id") in RULE_TEXT:
        th, en = RULE_TEXT[rule["id"]]
    else:
        th, en = rule_condition(rule)
    if rule.get("min_grade"):
        th, en = f"{th} ตั้งแต่ชั้น {rule['min_grade']}", f"{en}, from {rule['min_grade']} up"
    return th, en


def _thresholds(policy: dict[str, Any], name: str) -> list[dict[str, str]]:
    """The probability lines of one class: one per group of ``thresholds_by``, else the pooled one."""
    key = f"{name}_threshold"
    by = policy.get("thresholds_by")
    groups = policy.get("groups") or {}
    if by and groups:
        labels = GROUP_LABELS.get(by, {})
        return [{"th": labels.get(g, (f"{by} = {g}",))[0], "en": labels.get(g, ("", f"{by} = {g}"))[1],
                 "value": _threshold(float(groups[g][key])), "unreachable": float(groups[g][key]) >= 1.0}
                for g in sorted(groups)]  # fmt: skip
    if key in policy:
        return [{"th": "ทุกภาคเรียน", "en": "every term", "value": _threshold(float(policy[key])),
                 "unreachable": float(policy[key]) >= 1.0}]
    return []


def _observed(outcomes: dict[str, Any] | None, name: str) -> dict[str, str] | None:
    """Dropout on the held-out term among the students the policy put in this class; None when not measured."""
    found = (outcomes or {}).get(name)
    if not found or found.get("students") is None:
        return None
    if found["students"] < 1:
        return {"rate": "ไม่มีนักเรียนในกลุ่มนี้", "counts": "no student in this class"}
    rate = found.get("dropout_rate")
    if rate is None:
        rate = found["dropouts"] / found["students"] if found["students"] else math.nan
    return {"rate": percent(float(rate)), "counts": f"{int(found['dropouts']):,} / {int(found['students']):,}"}


def class_rows(policy: dict[str, Any] | None, counts: dict[str, int], raised: dict[str, int]) -> list[dict[str, Any]]:
    """One row per class: names, meaning, thresholds, rules that raise to it, this term's counts, observed dropout.

    ``counts`` is students per class this term; ``raised`` how many of them a rule, not the
    model, put there (``scores.raised_by`` not NULL).
    """
    policy = policy or {}
    rows = []
    for name in ("problem", "at_risk", "normal"):
        rules = [_rule_text(r) for r in policy.get("rules", []) if r.get("raise_to") == name]
        by_rule = int(raised.get(name, 0))
        rows.append({
            "key": name, "th": CLASS_TH[name], "en": CLASS_EN[name],
            "meaning_th": CLASS_MEANING[name][0], "meaning_en": CLASS_MEANING[name][1],
            "thresholds": _thresholds(policy, name) if name != "normal" else [],
            "below": _thresholds(policy, "at_risk") if name == "normal" else [],
            "rules": [{"th": th, "en": en} for th, en in rules],
            "students": int(counts.get(name, 0)), "by_rule": by_rule,
            "by_model": int(counts.get(name, 0)) - by_rule,
            "observed": _observed(policy.get("outcomes"), name),
        })  # fmt: skip
    return rows


def missed_targets(policy: dict[str, Any] | None) -> list[dict[str, str]]:
    """Each target the policy could not meet, in words (Thai, English), with the rule used instead.

    What was done instead is worded as on the model card (:func:`risk.models.policy_words.fallback_words`);
    the policy's own English ``fallback`` sentence follows on the English line only.
    """
    out = []
    for miss in (policy or {}).get("missed", []):
        target_th, target_en = TARGET_TEXT.get(miss["target"], (miss["target"], miss["target"].replace("_", " ")))
        where_th, where_en = WHERE_TEXT.get(miss.get("where", ""), (miss.get("where", ""), miss.get("where", "")))
        group = miss.get("group")
        label = GROUP_LABELS.get(policy.get("thresholds_by") or "", {}).get(group or "", (group, group))
        in_th = f" ({label[0]})" if group is not None else ""
        in_en = f" ({label[1]})" if group is not None else ""
        instead = fallback_words(miss, policy)
        detail = str(miss.get("fallback") or "").strip()
        out.append({
            "th": f"ไม่ถึงเป้า{in_th}: {target_th} ตั้งไว้ {miss['wanted']:.2f} ได้จริง {miss['achieved']:.3f} "
                  f"บน{where_th} จึงใช้กฎสำรองแทน: {instead.th}",
            "en": f"target not met{in_en}: {target_en} {miss['wanted']:.2f} wanted, {miss['achieved']:.3f} "
                  f"on the {where_en}; instead: {instead.en}" + (f" (detail: {detail})" if detail else ""),
        })  # fmt: skip
    return out


def _metric(evaluation: dict[str, float], model: str, name: str) -> float:
    value = evaluation.get(f"{model}.{name}", evaluation.get(f"test.{model}.{name}"))
    return math.nan if value is None else float(value)


def tolerance(evaluation: dict[str, float]) -> float:
    """How close two AUCs must be to tie: the model card's rule (:func:`risk.models.card_views.tie_tolerance`).

    It needs the held-out term's rows and dropouts, ``model.rows`` and ``model.positives``: the test split's
    counts (MLflow params ``rows.test.rows`` / ``rows.test.positives``, which ``risk report`` adds to the
    metrics it reads). A run that kept only metrics has neither, and the tolerance is then the card's floor
    alone (:data:`risk.models.card_views.TIE_FLOOR`, 0.005): on a term of ~150k students the standard error
    is below it anyway, so the two agree wherever the report is read.
    """
    rows, positives = _metric(evaluation, "model", "rows"), _metric(evaluation, "model", "positives")
    if math.isnan(rows) or math.isnan(positives):
        return TIE_FLOOR
    return tie_tolerance(_metric(evaluation, "model", "roc_auc"), int(positives), int(rows - positives))


def _verdict(model: str, auc: float, ours: float, evaluation: dict[str, float], tied: float) -> tuple[str, str]:
    """A baseline beside this model, in words: ties (within ``tied``), better, or how far below (AUC)."""
    if model == "model":
        return "", ""
    if model == "oracle":
        ratio = _metric(evaluation, "model", "auc_ratio_to_oracle")
        ratio = ours / auc if math.isnan(ratio) and auc else ratio
        return (f"แบบจำลองนี้ได้ {ratio:.2f} เท่าของ AUC ขีดบน", f"this model reaches {ratio:.2f}× the oracle AUC")
    if math.isnan(auc) or math.isnan(ours):
        return "", ""
    if auc_ties(ours, auc, tied):
        return ("เท่ากับแบบจำลองนี้ (ต่างกันน้อยกว่าที่วัดได้)", "ties this model (closer than the data can tell)")
    if auc > ours:
        return (f"ดีกว่าแบบจำลองนี้ {auc - ours:.3f}", f"better than this model by {auc - ours:.3f}")
    return (f"ต่ำกว่าแบบจำลองนี้ {ours - auc:.3f}", f"{ours - auc:.3f} below this model")


def quality(evaluation: dict[str, float] | None) -> dict[str, Any] | None:
    """The model beside its baselines: rows of (names, AUC, recall in the top 10%, words), and who ties it."""
    if not evaluation:
        return None
    ours = _metric(evaluation, "model", "roc_auc")
    tied = tolerance(evaluation)
    rows, ties = [], []
    for key, th, en in MODELS:
        auc, recall = _metric(evaluation, key, "roc_auc"), _metric(evaluation, key, "recall_top10")
        if math.isnan(auc) and math.isnan(recall):
            continue
        words_th, words_en = _verdict(key, auc, ours, evaluation, tied)
        if key not in ("model", "oracle") and auc_ties(ours, auc, tied):
            ties.append({"th": th, "en": en})
        rows.append({"key": key, "th": th, "en": en, "auc": "–" if math.isnan(auc) else f"{auc:.3f}",
                     "recall": percent(recall), "words_th": words_th, "words_en": words_en})  # fmt: skip
    return {"rows": rows, "ties": ties, "tolerance": f"{tied:.3f}"} if rows else None


def nested_evaluation(model: dict[str, Any]) -> dict[str, float] | None:
    """Metrics given inside the model dict (older callers): ``{"evaluation": {"roc_auc": ..., "oracle": {...}}}``."""
    given = model.get("evaluation")
    if not isinstance(given, dict):
        return None
    flat: dict[str, float] = {}
    for key, value in given.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items() if isinstance(v, int | float)})
        elif isinstance(value, int | float):
            flat[key if "." in key else f"model.{key}"] = value
    return flat


def model_facts(model: dict[str, Any]) -> list[dict[str, str]]:
    """Name, version, alias, data window and catalog, each under a Thai and English label; metrics are elsewhere."""
    rows = []
    for key, label in MODEL_FACTS.items():
        value = model.get(key)
        if value in (None, "", {}, []):
            continue
        if isinstance(value, dict):  # the split: terms by role, in the order they are used
            roles = [r for r in WINDOW_TH if r in value] + [r for r in value if r not in WINDOW_TH]
            text = "; ".join(f"{WINDOW_TH.get(role, role)} {', '.join(map(str, value[role]))}"
                             for role in roles if value[role])  # fmt: skip
        elif isinstance(value, list | tuple):
            text = " – ".join(map(str, value)) if len(value) == 2 else ", ".join(map(str, value))
        else:
            text = str(value)
        rows.append({"label": label, "value": text})
    return rows
