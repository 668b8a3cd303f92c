"""The words of the model card, in Thai and English, and the number forms both use.

The card is read by an analyst (at EEF or an area office) who decides whether the
list can be trusted, not by the engineer who trained it. Every fixed sentence is
here as a :class:`Bi` pair, Thai first; :mod:`risk.models.card_views` fills in the
numbers. Thai writes digits and per cent as English does, so one number form
(:func:`percent`, :func:`auc`) serves both languages.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

__all__ = [
    "ATTRIBUTES",
    "AT_RISK_EITHER",
    "Bi",
    "CLASS_MEANINGS",
    "CLASS_NAMES",
    "FAIRNESS_COLUMNS",
    "FAIRNESS_MEANINGS",
    "MODEL_NAMES",
    "NOT_FOR",
    "PLAIN_LIMITATIONS",
    "SEMESTERS",
    "SPLITS",
    "TREATED_CHOICE_WORDS",
    "TREATED_NOT_TOLD",
    "TREATED_NO_STORE",
    "TREATED_ROWS",
    "TREATED_WAIT_LIST",
    "TARGETS",
    "USED_FOR",
    "VALUES",
    "WHERE",
    "FIGURES",
    "attribute_name",
    "auc",
    "count",
    "figure_caption",
    "group_name",
    "model_name",
    "number",
    "percent",
    "probability",
    "value_of",
]


class Bi(NamedTuple):
    """One text in Thai and in English."""

    th: str
    en: str

    def format(self, **values: object) -> Bi:
        return Bi(self.th.format(**values), self.en.format(**values))


# ---------------------------------------------------------------- what it is for
USED_FOR = [
    Bi("เรียงลำดับนักเรียนให้ครูดูคนที่มีโอกาสออกกลางคันก่อนภาคเรียนหน้าสูงที่สุดก่อน",
       "Ordering students so that a teacher looks first at those most likely to leave school before next term."),
    Bi("บอกเหตุผลที่ครูใช้เป็นจุดเริ่มต้นในการพูดคุยและช่วยเหลือ",
       "Giving reasons a teacher can start from when talking with the child and the family."),
    Bi("ให้ สพฐ. กสศ. และเขตพื้นที่เห็นภาพรวมว่าความเสี่ยงอยู่ที่ใด เพื่อวางแผนกำลังคนและงบประมาณ",
       "Showing EEF and area offices where risk is concentrated, to plan staff time and support."),
]
NOT_FOR = [
    Bi("ไม่ใช่การตัดสินใจอัตโนมัติ: ห้ามส่งเด็กเข้าโครงการ ตัดสิทธิ์ หรือรายงานเด็กจากคะแนนนี้เพียงอย่างเดียว",
       "Not an automated decision: no child is placed in a programme, denied a service or reported on the score alone."),
    Bi("ไม่ใช่การประเมินครู โรงเรียน หรือครอบครัว",
       "Not a judgement of a teacher, a school or a family."),
    Bi("ไม่แทนความรู้ของครูที่มีต่อเด็ก: ถ้าครูเห็นต่าง ให้เชื่อครู",
       "Not a substitute for what the teacher knows of the child: where they disagree, the teacher comes first."),
    Bi("ห้ามบอกเด็กหรือครูว่าเด็กเสี่ยง 'เพราะ' เพศ สัญชาติ หรือความพิการ",
       "Never a way to tell a child or a teacher that a child is at risk because of sex, nationality or disability."),
]
PLAIN_LIMITATIONS = [
    Bi("ความน่าจะเป็นปรับเทียบจากภาคเรียนเดียว โรงเรียนหรือพื้นที่ที่ต่างจากภาคเรียนนั้นอาจมีอัตราจริงต่างจากตัวเลขที่พิมพ์ "
       "ให้อ่านรายงานการเปลี่ยนแปลงของข้อมูล (drift) ก่อนใช้ผลทุกครั้ง",
       "Probabilities are calibrated on one term; a school, area or term unlike it may see other rates. "
       "Read the drift section of the term report before each use."),
    Bi("ตัวเลขที่คำนวณจากข้อมูลสังเคราะห์แสดงว่าระบบทำงานได้ แต่ไม่ได้บอกว่าจะแม่นเพียงใดกับนักเรียนจริง",
       "Figures computed on synthetic data show that the pipeline works, not how well it will do on real students."),
    Bi("การออกกลางคันเกิดไม่บ่อย กลุ่มเล็กจึงให้อัตราที่แกว่งมาก ให้ดูจำนวนนักเรียนควบคู่กับอัตราเสมอ",
       "Dropout is rare, so small groups give noisy rates: read every rate beside its counts."),
    Bi("กลุ่มที่ถูกทำเครื่องหมายในส่วนความเป็นธรรมได้รับการปฏิบัติจากรายชื่อไม่เท่ากัน ให้อ่านความหมายก่อนใช้",
       "Groups flagged in the fairness section are treated unequally by the list: read what that means before use."),
]

# ---------------------------------------------------------------- models of the evaluation table
MODEL_NAMES = {
    "model": Bi("LightGBM", "LightGBM"),
    "lightgbm": Bi("LightGBM", "LightGBM"),
    "oracle": Bi("ค่าจริงของตัวสร้างข้อมูล (oracle)", "the oracle"),
    "champion": Bi("โมเดลที่ใช้งานอยู่ (champion)", "the current champion"),
    "logistic": Bi("แบบจำลองโลจิสติกพื้นฐาน", "the logistic baseline"),
    "context_only": Bi("แบบจำลองที่ดูเฉพาะบริบท (โรงเรียน พื้นที่ ชั้น)",
                       "the context-only baseline (school, area and grade only)"),
    "abc_rule": Bi("กฎ ABC (การมาเรียน พฤติกรรม ผลการเรียน)", "the ABC rule (attendance, behaviour, course failure)"),
}


def model_name(code: str) -> Bi:
    return MODEL_NAMES.get(code, Bi(code, code))


# ---------------------------------------------------------------- classes and targets
CLASS_NAMES = {
    "problem": Bi("มีปัญหา", "problem"),
    "at_risk": Bi("เสี่ยง", "at risk"),
    "normal": Bi("ปกติ", "normal"),
}
CLASS_MEANINGS = {
    "problem": Bi("มีโอกาสออกกลางคันสูงที่สุด ควรติดตามเป็นกลุ่มแรก ไปพบเด็กและครอบครัว",
                  "Most likely to leave: follow up first, with the child and the family."),
    "at_risk": Bi("มีโอกาสออกกลางคันสูงกว่าปกติ หรือถูกยกระดับโดยกฎ (เช่น มาเรียนต่ำกว่า 80%) ควรเฝ้าดูและช่วยเหลือ",
                  "More likely than most to leave, or raised by a rule (such as attendance under 80%): watch and support."),
    "normal": Bi("ไม่มีสัญญาณจากรายชื่อ แต่ความรู้ของครูยังสำคัญเสมอ",
                 "No signal from the list; the teacher's own knowledge still counts."),
}
# Target id -> (words with {wanted}, key of the policy's ``achieved`` that measures it).
TARGETS = {
    "problem_precision": (
        Bi("นักเรียนระดับ 'มีปัญหา' อย่างน้อย {wanted} ออกกลางคันจริง (ความแม่นยำ)",
           "At least {wanted} of the students in 'problem' really leave (precision)"), "problem_precision"),
    "at_risk_recall": (
        Bi("ผู้ที่ถูกแจ้งเตือน (เสี่ยงหรือมีปัญหา) ครอบคลุม {wanted} ของผู้ที่ออกกลางคัน (ความครอบคลุม)",
           "The flagged students (at risk or problem) include {wanted} of those who leave (recall)"), "flagged_recall"),
    "at_risk_capacity_share": (
        Bi("แจ้งเตือนไม่เกิน {wanted} ของนักเรียนทั้งหมด (กำลังคนที่ติดตามได้)",
           "No more than {wanted} of all students are flagged (follow-up capacity)"), "flagged_share"),
}
AT_RISK_EITHER = Bi("เกณฑ์ 'เสี่ยง' ใช้เป้าความครอบคลุมหรือเป้ากำลังคน ข้อที่แจ้งเตือนน้อยกว่า จึงมักมีข้อหนึ่งต่ำกว่าเป้าตามที่ออกแบบไว้",
                    "The at-risk threshold follows the recall target or the capacity target, whichever flags fewer "
                    "students, so one of the two usually stays short of its number by design.")
# ---------------------------------------------------------------- treated training rows (issue 30)
TREATED_ROWS = Bi("แถวฝึกที่ผลลัพธ์อาจเปลี่ยนไปเพราะความช่วยเหลือ: {treated} ({share}) "
                  "ได้รับการแจ้งเตือน {alerted} มีบันทึกการช่วยเหลือ {acted} จากแถวฝึก {rows}; {choice}",
                  "Rows whose outcome the help may have changed: {treated} ({share}); alerted {alerted}, "
                  "acted on {acted}, of {rows} training rows; {choice}")
TREATED_CHOICE_WORDS = {
    "keep": Bi("คงไว้ตามเดิม", "kept as they are"),
    "down_weight": Bi("ลดน้ำหนักเหลือ {weight}", "down-weighted to {weight}"),
    "untreated_only": Bi("ตัดออกจากการฝึก", "left out"),
}
TREATED_WAIT_LIST = Bi("แถวของโรงเรียนกลุ่มรอ (wait-list) ในภาคเรียนนำร่อง {wait_list} แถว เก็บไว้ทั้งหมด",
                       "The {wait_list} rows of wait-list schools in a pilot term are all kept")
TREATED_NO_STORE = Bi("ไม่ได้อ่านฐานข้อมูลการแจ้งเตือน จึงไม่มีแถวใดนับว่าได้รับความช่วยเหลือ ({choice})",
                      "No store of alerts was read, so no row counts as helped ({choice})")
TREATED_NOT_TOLD = Bi("ไม่ได้นับ", "not counted")

SPLITS = {"train": Bi("ฝึก", "train"), "calibration": Bi("ปรับเทียบ", "calibration"),
          "test": Bi("ทดสอบ", "held-out test")}
WHERE = {"calibration": Bi("ภาคเรียนที่ใช้ปรับเทียบ", "the calibration term"),
         "held_out": Bi("ภาคเรียนทดสอบ", "the held-out term")}

# ---------------------------------------------------------------- fairness
# Ratio column -> what a value outside the band means for a teacher. {ratio} is the group's ratio.
FAIRNESS_MEANINGS = {
    "recall": Bi("เด็กกลุ่มนี้ที่จะออกกลางคันอยู่ในรายชื่อน้อยกว่ากลุ่มที่ดีที่สุด ({ratio}×): "
                 "อย่าถือว่าเด็กกลุ่มนี้ที่ไม่อยู่ในรายชื่อปลอดภัย ครูควรเฝ้าดูด้วยตนเอง",
                 "Fewer of this group's children who will leave are on the list ({ratio}× the best group): "
                 "a child of this group who is not on the list is not thereby safe; keep your own watch."),
    "fpr": Bi("เด็กกลุ่มนี้ที่จะเรียนต่อถูกแจ้งเตือนผิดบ่อยกว่า ({ratio}×): "
              "คุยกับเด็กก่อนลงมือ และระวังการตีตรา",
              "More of this group's children who would have stayed are flagged ({ratio}× the false alarms): "
              "talk with the child before acting, and take care not to label them."),
    "precision": Bi("การแจ้งเตือนในกลุ่มนี้ถูกต้องน้อยกว่า ({ratio}×): ใช้รายชื่อเป็นจุดเริ่มต้น ไม่ใช่ข้อสรุป",
                    "A flag in this group is right less often ({ratio}× the best group): "
                    "treat the list as a place to start, not a finding."),
    "calibration": Bi("ความน่าจะเป็นที่พิมพ์ไม่ตรงกับอัตราจริงของกลุ่มนี้ (จริง/ทำนาย {ratio}×): "
                      "เทียบเด็กภายในกลุ่มเดียวกัน อย่ายึดตัวเลขร้อยละ",
                      "The printed probability misstates this group's real rate (observed/predicted {ratio}× the best "
                      "group's): compare children within the group, not the percentage."),
}
FAIRNESS_COLUMNS = [
    ("recall_ratio", Bi("ต่ำกว่า 0.8: เด็กกลุ่มนี้ที่จะออกกลางคันถูกพบน้อยกว่า",
                        "under 0.8: this group's leavers are found less often")),
    ("fpr_ratio", Bi("สูงกว่า 1.25: แจ้งเตือนผิดในกลุ่มนี้มากกว่า",
                     "over 1.25: more false alarms in this group")),
    ("precision_ratio", Bi("ต่ำกว่า 0.8: การแจ้งเตือนในกลุ่มนี้ถูกน้อยกว่า",
                           "under 0.8: a flag in this group is right less often")),
    ("calibration_ratio", Bi("นอกช่วง 0.8–1.25: ร้อยละที่พิมพ์ไม่ตรงกับอัตราจริงของกลุ่ม",
                             "outside 0.8–1.25: the printed percentage misstates the group's real rate")),
    ("flagged_disparity", Bi("ใช่ เมื่อข้อใดข้อหนึ่งข้างบนเกิดขึ้น", "yes when any of the above holds")),
]
ATTRIBUTES = {
    "sex": Bi("เพศ", "sex"),
    "region": Bi("ภูมิภาค", "region"),
    "non_thai": Bi("ไม่มีสัญชาติไทย", "without Thai nationality"),
    "has_disability": Bi("มีความพิการ", "with a disability"),
    "school_size": Bi("ขนาดโรงเรียน", "school size"),
    "school_rural": Bi("โรงเรียนในชนบท", "rural school"),
    "year_end_term": Bi("ภาคเรียน", "semester"),
}
VALUES = {
    "male": Bi("ชาย", "male"), "female": Bi("หญิง", "female"),
    "yes": Bi("ใช่", "yes"), "no": Bi("ไม่ใช่", "no"),
    "north": Bi("ภาคเหนือ", "north"), "northeast": Bi("ภาคตะวันออกเฉียงเหนือ", "northeast"),
    "central": Bi("ภาคกลาง", "central"), "east": Bi("ภาคตะวันออก", "east"),
    "west": Bi("ภาคตะวันตก", "west"), "south": Bi("ภาคใต้", "south"),
    "small": Bi("เล็ก", "small"), "medium": Bi("กลาง", "medium"),
    "large": Bi("ใหญ่", "large"), "extra_large": Bi("ใหญ่พิเศษ", "extra large"),
}
# thresholds_by groups of the class policy, as the policy keys them ("0"/"1" of a flag).
SEMESTERS = {"year_end_term": {"0": Bi("ภาคเรียนที่ 1", "semester 1"),
                               "1": Bi("ภาคเรียนที่ 2 (ปลายปี)", "semester 2 (year end)")}}


def attribute_name(attribute: str) -> Bi:
    return ATTRIBUTES.get(attribute, Bi(attribute, attribute))


def group_name(attribute: str, value: object) -> Bi:
    """``sex = male`` as words; a value without a translation is shown as it is in both languages."""
    text = str(value)
    if attribute in SEMESTERS and text in SEMESTERS[attribute]:
        return SEMESTERS[attribute][text]
    name, shown = attribute_name(attribute), VALUES.get(text, Bi(text, text))
    return Bi(f"{name.th}: {shown.th}", f"{name.en}: {shown.en}")


# ---------------------------------------------------------------- figures (their labels stay English:
# matplotlib may have no Thai font where a model is trained, so the caption carries the Thai)
FIGURES = {
    "calibration": Bi("การปรับเทียบ: ความน่าจะเป็นที่ทำนายเทียบกับอัตราออกกลางคันจริง ยิ่งใกล้เส้นทแยงยิ่งดี",
                      "Calibration: predicted probability against the observed dropout rate; closer to the "
                      "diagonal is better."),
    "lead_time": Bi("ระยะเวลาเตือนล่วงหน้า: สัดส่วนผู้ออกกลางคันที่พบใน 10% แรก ตามสัปดาห์ของภาคเรียน",
                    "Lead time: share of leavers found in the top 10%, by school week of the term."),
    "shap_summary": Bi("ตัวแปรที่มีผลต่อคะแนนมากที่สุด (SHAP): ไปทางขวาคือเพิ่มความเสี่ยง",
                       "The inputs that move the score most (SHAP): to the right raises the risk."),
}


def figure_caption(name: str) -> Bi:
    return FIGURES.get(name, Bi(name, name))


# ---------------------------------------------------------------- number forms
def percent(value: float | None, digits: int = 0) -> str:
    """0.0372 -> '3.7%' (digits=1); a dash when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{100 * value:.{digits}f}%"


def probability(value: float | None) -> str:
    """A threshold as a percentage with three significant figures: 0.3123 -> '31.2%', 0.0052 -> '0.52%'."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{100 * value:.3g}%"


def auc(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.3f}"


def number(value: object) -> float:
    """A float from a table cell or a JSON value; NaN when missing or not a number."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def value_of(mapping: dict[str, Any] | None, key: str) -> float | None:
    """``mapping[key]`` as a float; None when the mapping or the key is missing."""
    return None if mapping is None or key not in mapping else number(mapping[key])


def count(mapping: dict[str, Any] | None, key: str) -> str:
    """A count with thousands separators (``2,553``); a dash when missing."""
    found = value_of(mapping, key)
    return "–" if found is None or not math.isfinite(found) else f"{found:,.0f}"
