"""The teacher page: server-rendered, Thai by default (``?lang=en`` for English), readable on a phone.

A teacher logs in with their key (kept in an HttpOnly, SameSite=Strict cookie),
sees their school's open alerts and acknowledges one by ticking what was done (the
configured action codes, Thai and English labels) and saying it in words if they like,
and when. Forms are read from the raw body (no multipart dependency); every view of
the alerts is audited like the API's.

What the page says follows what a teacher can act on (issue 28):

- the school's context (grade, transition year, past dropout rates) once, at the top:
  it is about the school, not any one child, and brings no action on a child's card;
- each child's reasons grouped under the action they call for (the alert's actions
  are one per reason, aligned with its reasons); an older alert, whose actions were
  one per domain, shows its reasons and then its actions;
- a child raised by a class policy rule (the 80% exam line), not by the model, in a
  section of its own and marked so: a low model probability must not read as a
  model's judgement;
- where the child stands in the school ("among the 10% most at risk", "3× the
  school's average") instead of a bare probability, which reads as reassurance when
  small; the probability stays, as a detail. A child with no score in that run is told
  so plainly, not given a bare probability. No protected attribute (sex, nationality,
  disability) is shown on a card;
- a child first scored as problem (the first scored term) is newly flagged, not
  escalated from a class they never had;
- a pilot's wait-list school sees, in its pilot term, no alerts or context: a note (issue 30).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import parse_qs

import pandas as pd
from fastapi import APIRouter, Cookie, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment

from risk.data.contract import next_term
from risk.features.catalog import Texts, installed_catalog
from risk.serve.deps import COOKIE, Services, ServicesDep, key_of, note_key
from risk.serve.routes.alerts import (
    acknowledge_alert,
    alert_out,
    refuse_unseen_alert,
    school_alerts,
)
from risk.serve.routing import OrjsonRoute
from risk.serve.schemas import AlertOut
from risk.store import KeyRecord, wait_list_term
from risk.store.context import ContextLine, school_context
from risk.store.standing import SchoolStanding, Standing, school_standing

__all__ = ["AlertCard", "SchoolView", "alert_cards", "kind_text", "page_html", "percent", "reason_groups", "router",
           "school_view", "standing_texts"]

router = APIRouter(prefix="/teacher", include_in_schema=False, route_class=OrjsonRoute)

TEXTS = {
    "th": {"title": "นักเรียนที่ต้องติดตาม", "school": "โรงเรียน", "other_lang": "English", "logout": "ออกจากระบบ",
           "key_label": "รหัสเข้าใช้งานของครู", "login": "เข้าสู่ระบบ",
           "key_help": "ขอรหัสได้จากผู้ดูแลระบบของเขตพื้นที่ (คำสั่ง risk keys create --role teacher)",
           "count": "การแจ้งเตือนที่ยังไม่ได้ดำเนินการ {n} รายการ", "room": "ห้อง",
           "classes": {"problem": "มีปัญหา", "at_risk": "เสี่ยง", "normal": "ปกติ"},
           "kinds": {"newly_at_risk": "เพิ่งเข้าสู่กลุ่มเสี่ยง", "escalated_problem": "เลื่อนเป็นกลุ่มมีปัญหา",
                     "improved": "ความเสี่ยงลดลง", "left_register": "ไม่มีชื่อในทะเบียนนักเรียนแล้ว"},
           "first_problem": "เข้ากลุ่มมีปัญหา (ครั้งแรก)", "reasons": "เหตุผล", "actions": "สิ่งที่ควรทำ",
           "action_taken": "สิ่งที่ได้ดำเนินการ (เลือกได้มากกว่าหนึ่งข้อ)", "note": "บันทึกเพิ่มเติม",
           "acted_on": "วันที่ดำเนินการ", "acknowledge": "บันทึกการดำเนินการ",
           "none": "ไม่มีการแจ้งเตือนที่ค้างอยู่", "done": "บันทึกเรียบร้อยแล้ว", "back": "กลับไปที่รายการ",
           "bad_key": "รหัสไม่ถูกต้อง ถูกยกเลิก หรือไม่ใช่รหัสของครู", "bad_form": "กรุณาเลือกหรือระบุสิ่งที่ได้ดำเนินการ และวันที่",
           "bad_date": "วันที่ดำเนินการต้องไม่ก่อนวันที่แจ้งเตือนและไม่เกินวันนี้",
           "bad_code": "มีรายการที่ไม่อยู่ในตัวเลือก กรุณาเลือกจากรายการที่ให้ไว้",
           "not_open": "การแจ้งเตือนนี้ได้บันทึกการดำเนินการไปแล้ว หรือถูกถอนออกแล้ว",
           "context_title": "บริบทของโรงเรียน",
           "context_help": "เป็นข้อมูลเกี่ยวกับโรงเรียนและช่วงชั้น ไม่ใช่เหตุผลของนักเรียนคนใดคนหนึ่ง",
           "context_students": "เพิ่มความเสี่ยงของนักเรียน {n} คน",
           "scores_of": "จากผลการประเมินวันที่ {as_of} (นักเรียน {n} คน)",
           "reasons_actions": "เหตุผลและสิ่งที่ควรทำ", "action_for": "สิ่งที่ควรทำ",
           "no_action": "ไม่มีสิ่งที่ต้องทำเพิ่มจากเหตุผลนี้",
           "no_reasons": "ไม่มีเหตุผลเฉพาะตัวนักเรียน ดูบริบทของโรงเรียนด้านบน",
           "top": "อยู่ในกลุ่ม {pct}% ที่เสี่ยงที่สุดของโรงเรียน (อันดับ {rank} จาก {n} คน)",
           "lower_half": "อยู่ในครึ่งที่เสี่ยงน้อยกว่าของโรงเรียนตามแบบจำลอง (อันดับ {rank} จาก {n} คน)",
           "times_mean": "สูงกว่าค่าเฉลี่ยของโรงเรียน {x} เท่า", "near_mean": "ใกล้เคียงค่าเฉลี่ยของโรงเรียน",
           "below_mean": "ต่ำกว่าค่าเฉลี่ยของโรงเรียน",
           "model_chance": "โอกาสออกกลางคันที่แบบจำลองประเมิน {p}",
           "no_standing": "ยังไม่มีข้อมูลลำดับความเสี่ยงของนักเรียนคนนี้ในโรงเรียน",
           "rule_section": "แจ้งเตือนตามเกณฑ์ ไม่ใช่จากแบบจำลอง",
           "rule_section_help": "นักเรียนกลุ่มนี้ถูกจัดกลุ่มตามเกณฑ์ (เช่น เวลาเรียนต่ำกว่า 80% ไม่มีสิทธิ์สอบ) "
                                "ไม่ใช่จากแบบจำลอง หากดูจากแบบจำลองอย่างเดียวจะอยู่ในกลุ่มที่เสี่ยงน้อยกว่า",
           "rules": {"exam_line": "แจ้งเตือนตามเกณฑ์เวลาเรียน (ต่ำกว่า 80% ไม่มีสิทธิ์สอบ) ไม่ใช่จากแบบจำลอง"},
           "rule_other": "แจ้งเตือนตามเกณฑ์ {rule} ไม่ใช่จากแบบจำลอง",
           "wait_list": "โรงเรียนของท่านอยู่ในกลุ่มรอ (wait-list) ของโครงการนำร่องภาคเรียน {term}: "
                        "ระบบยังประเมินนักเรียนทุกคนตามปกติ และจะแสดงการแจ้งเตือนตั้งแต่ภาคเรียนถัดไป ({next})"},
    "en": {"title": "Students to follow up", "school": "School", "other_lang": "ภาษาไทย", "logout": "Log out",
           "key_label": "Teacher key", "login": "Log in",
           "key_help": "Ask your area office's administrator for a key (risk keys create --role teacher).",
           "count": "{n} open alerts", "room": "room",
           "classes": {"problem": "problem", "at_risk": "at risk", "normal": "normal"},
           "kinds": {"newly_at_risk": "newly at risk", "escalated_problem": "escalated to problem",
                     "improved": "improved", "left_register": "left the register"},
           "first_problem": "newly flagged as problem", "reasons": "Reasons", "actions": "Suggested actions",
           "action_taken": "What was done (tick all that apply)", "note": "Note", "acted_on": "Date",
           "acknowledge": "Acknowledge",
           "none": "No open alerts.", "done": "Saved.", "back": "Back to the list",
           "bad_key": "This key is unknown, revoked, or not a teacher's.",
           "bad_form": "Tick or say what was done, and when.",
           "bad_date": "The date must lie between the alert's date and today.",
           "bad_code": "An action that is not one of the choices was sent; choose from the list.",
           "not_open": "This alert was acknowledged already, or withdrawn.",
           "context_title": "About this school",
           "context_help": "About the school and its grades, not a reason of any one child.",
           "context_students": "raised the risk of {n} students",
           "scores_of": "From the scores of {as_of} ({n} students)",
           "reasons_actions": "Reasons and what to do", "action_for": "Suggested action",
           "no_action": "No action follows from this reason alone",
           "no_reasons": "No reason about the child; see the school's context above.",
           "top": "Among the {pct}% most at risk in this school ({rank} of {n})",
           "lower_half": "In the less at-risk half of this school by the model ({rank} of {n})",
           "times_mean": "{x}× the school's average", "near_mean": "about the school's average",
           "below_mean": "below the school's average",
           "model_chance": "the model's chance of dropping out: {p}",
           "no_standing": "The child's standing in the school is not available yet",
           "rule_section": "Flagged by a rule, not by the model",
           "rule_section_help": "A rule (such as the 80% attendance line for exams), not the model, put these "
                                "children in their class: by the model alone they would be in a lower one.",
           "rules": {"exam_line": "Flagged by the attendance rule (80% exam line), not by the model"},
           "rule_other": "Flagged by the rule {rule}, not by the model",
           "wait_list": "Your school is on the pilot's wait-list for term {term}: every student is still "
                        "assessed, and alerts will show from next term ({next})."},
}
Lang = str
# Alerts whose actions follow from the child's reasons, one per reason (risk.scoring.alerts.actions_for).
GROUPED_KINDS = ("newly_at_risk", "escalated_problem")


@router.get("", response_class=HTMLResponse)
async def page(request: Request, services: ServicesDep, lang: Lang = "th", done: int | None = None,
               risk_key: Annotated[str | None, Cookie()] = None) -> HTMLResponse:
    lang = _lang(lang)
    key = _teacher(services, risk_key, request)
    if key is None:
        return _render(services, lang, status=200)
    frame = await run_in_threadpool(school_alerts, services, key, key.school_id, "teacher_page")
    view = await run_in_threadpool(school_view, services, key.school_id, frame)
    return _render(services, lang, school_id=key.school_id, view=view, done=done)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, services: ServicesDep) -> HTMLResponse:
    form = await _form(request)
    lang = _lang(form.get("lang", "th"))
    key = _teacher(services, form.get("key"), request)
    if key is None:
        return _render(services, lang, status=401, error=TEXTS[lang]["bad_key"])
    response = RedirectResponse(f"/teacher?lang={lang}", status_code=303)
    response.set_cookie(COOKIE, form["key"], httponly=True, samesite="strict", secure=services.settings.cookie_secure,
                        max_age=12 * 3600, path="/teacher")
    return response


@router.post("/logout")
async def logout(request: Request) -> RedirectResponse:
    form = await _form(request)
    response = RedirectResponse(f"/teacher?lang={_lang(form.get('lang', 'th'))}", status_code=303)
    response.delete_cookie(COOKIE, path="/teacher")
    return response


@router.post("/alerts/{alert_id}/ack", response_class=HTMLResponse)
async def acknowledge(request: Request, services: ServicesDep, alert_id: Annotated[int, Path(ge=1, le=2**62)],
                      risk_key: Annotated[str | None, Cookie()] = None) -> HTMLResponse:
    values = await _form_values(request)
    form = {k: v[0] for k, v in values.items()}
    lang = _lang(form.get("lang", "th"))
    key = _teacher(services, risk_key, request)
    if key is None:
        return _render(services, lang, status=401, error=TEXTS[lang]["bad_key"])
    await run_in_threadpool(refuse_unseen_alert, services, key, alert_id, "alert_ack")
    try:
        acted_on = dt.date.fromisoformat(form.get("acted_on", ""))
    except ValueError:
        acted_on = None
    codes = tuple(dict.fromkeys(c.strip() for c in values.get("action", []) if c.strip()))[:20]
    note = form.get("action_taken", "").strip()
    if (not note and not codes) or acted_on is None:
        return _render(services, lang, status=422, school_id=key.school_id, error=TEXTS[lang]["bad_form"])
    try:
        await run_in_threadpool(acknowledge_alert, services, key, alert_id, note[:2000], acted_on, codes, "page")
    except HTTPException as exc:
        # A date outside the alert's date..today or a code not offered (422), or an alert no longer
        # open (409): the page again, with the reason in the teacher's language, not the API's JSON.
        if exc.status_code not in (409, 422):
            raise
        return _render(services, lang, status=exc.status_code, school_id=key.school_id, error=TEXTS[lang][_fault(exc)])
    return RedirectResponse(f"/teacher?lang={lang}&done={alert_id}", status_code=303)


def _fault(exc: HTTPException) -> str:
    """The page's text for a refused acknowledgement."""
    if exc.status_code == 409:
        return "not_open"
    kinds = {item.get("type") for item in exc.detail} if isinstance(exc.detail, list) else set()
    return "bad_code" if "unknown_action" in kinds else "bad_date" if "date_range" in kinds else "bad_form"


@dataclass(frozen=True, slots=True)
class AlertCard:
    """One alert as the page shows it: the alert, its rule mark, and where the child stands."""

    alert: AlertOut
    raised_by: str | None
    standing: Standing | None


@dataclass(frozen=True, slots=True)
class SchoolView:
    """What the logged-in page shows: the school's context once, then the cards."""

    standing: SchoolStanding
    context: list[ContextLine]
    cards: list[AlertCard]
    # A context line's suggested action (code → Texts), where its feature calls for one: the
    # transition year asks the school to plan the move with families; a past dropout rate asks nothing.
    context_actions: dict = field(default_factory=dict)
    wait_list_term: str | None = None  # the pilot term while the school is on its wait-list

    @property
    def model_cards(self) -> list[AlertCard]:
        return [c for c in self.cards if c.raised_by is None]

    @property
    def rule_cards(self) -> list[AlertCard]:
        return [c for c in self.cards if c.raised_by is not None]


def school_view(services: Services, school_id: str, frame: pd.DataFrame) -> SchoolView:
    """The school's standing, context and alert cards; no context or cards while on a pilot's wait-list."""
    standing = school_standing(services.store, school_id, frame["student_key"] if len(frame) else [])
    waiting = wait_list_term(services.store, school_id)
    if waiting is not None:
        return SchoolView(standing=standing, context=[], cards=[], wait_list_term=waiting)
    context = school_context(services.store, standing.run_id, school_id) if standing.run_id else []
    return SchoolView(standing=standing, context=context, cards=alert_cards(frame, standing),
                      context_actions=context_actions(services, context))


def context_actions(services: Services, context: list[ContextLine]) -> dict:
    """Each context line's suggested action (code → Texts) when the catalog gives its feature one.

    The serving model's catalog, else (the service is up but has no model yet: alerts are still
    shown) the installed one.
    """
    if not context:
        return {}
    loaded = services.holder.current
    catalog = loaded.bundle.catalog if loaded is not None else installed_catalog()
    if catalog is None:
        return {}
    specs = {spec.name: spec for spec in catalog.features}
    actions = {}
    for line in context:
        spec = specs.get(line.code)
        if spec is not None and spec.action is not None and spec.action in services.scoring.actions:
            actions[line.code] = services.scoring.actions[spec.action]
    return actions


def alert_cards(frame: pd.DataFrame, standing: SchoolStanding) -> list[AlertCard]:
    """One card per alert row (``open_alerts`` columns), with its rule mark and its student's standing."""
    cards = []
    for _, row in frame.iterrows():
        mark = row.get("raised_by")
        cards.append(AlertCard(alert=alert_out(row), raised_by=None if mark is None or pd.isna(mark) else str(mark),
                               standing=standing.by_student.get(int(row["student_key"]))))
    # Newest date first, as stored; within a date the most at risk first, so a teacher with
    # time for three children sees the three who need it most. Stable: unranked keep their order.
    by_date: dict[dt.date, list[AlertCard]] = {}
    for card in cards:
        by_date.setdefault(card.alert.as_of, []).append(card)
    return [card for day in sorted(by_date, reverse=True)
            for card in sorted(by_date[day], key=lambda c: c.standing.rank if c.standing else math.inf)]


def reason_groups(reasons: list[str], actions: list[str | None],
                  kind: str = "newly_at_risk") -> list[tuple[str, list[str]]] | None:
    """Reasons under the action each calls for, actions in order of first appearance.

    None when the lists are not aligned one action per reason: an alert stored before
    issue 28 has one action per domain of its reasons; the page then lists reasons, then
    actions. (An old alert whose reasons were all of different domains, each with an
    action, has them aligned already, so grouping it is right too.) An improved or
    left-register alert's one action is about the alert, not a reason: never grouped.
    An empty (or null) action groups the reasons that call for none.
    """
    if kind not in GROUPED_KINDS or not reasons or len(reasons) != len(actions):
        return None
    groups: dict[str, list[str]] = {}
    for reason, action in zip(reasons, actions, strict=True):
        groups.setdefault(action or "", []).append(reason)
    return list(groups.items())


def standing_texts(standing: Standing, students: int, t: dict) -> tuple[str, str, str]:
    """(place in the school, comparison with the school's mean, the model's probability) in ``t``'s language.

    The place counts ties against the claim (``top_share`` is the share at or above the
    child) and is rounded up, so "among the 8%" is never better than the truth. A calibrated
    probability comes in steps, so many children may share one: their place is then the
    range of ranks they share ("1–26 of 242"), not a first place one child cannot hold.
    """
    shared_to = round(standing.top_share * students)
    rank = f"{standing.rank}–{shared_to}" if shared_to > standing.rank else str(standing.rank)
    if standing.top_share <= 0.5:
        place = t["top"].format(pct=math.ceil(round(standing.top_share * 100, 9)), rank=rank, n=students)
    else:
        place = t["lower_half"].format(rank=rank, n=students)
    # Compared as shown (one decimal), so 1.4999 is "1.5×", not "about the average".
    ratio = None if standing.ratio_to_mean is None else round(standing.ratio_to_mean, 1)
    if ratio is None:
        compared = ""
    elif ratio >= 1.5:
        compared = t["times_mean"].format(x=f"{ratio:.0f}" if ratio >= 10 else f"{ratio:.1f}".removesuffix(".0"))
    elif ratio >= 2 / 3:
        compared = t["near_mean"]
    else:
        compared = t["below_mean"]
    return place, compared, t["model_chance"].format(p=percent(standing.probability))


def kind_text(kind: str, previous_class: str | None, t: dict) -> str:
    """What happened to the child, in ``t``'s language.

    A child with no class before (the first scored term, or new to the register) whose
    first class is problem is stored as ``escalated_problem``: they were newly flagged,
    not moved up from a class they never had.
    """
    if kind == "escalated_problem" and previous_class is None:
        return t["first_problem"]
    return t["kinds"].get(kind, kind)


def percent(probability: float) -> str:
    """A probability as a percentage a reader can take in: 12%, 0.4% (not a misleading 0%)."""
    value = probability * 100
    return f"{value:.0f}%" if value >= 1 or value == 0 else f"{value:.1f}%"


def _teacher(services: Services, token: str | None, request: Request) -> KeyRecord | None:
    if not token:
        return None
    try:
        key = note_key(request, key_of(services, token))
    except HTTPException:
        return None
    return key if key.role == "teacher" else None


async def _form(request: Request) -> dict[str, str]:
    return {k: v[0] for k, v in (await _form_values(request)).items()}


async def _form_values(request: Request) -> dict[str, list[str]]:
    """Every value of each field (a box ticked several times over sends ``action`` once per box)."""
    body = (await request.body())[:20_000].decode("utf-8", errors="replace")
    return parse_qs(body, keep_blank_values=True)


def _lang(value: str) -> str:
    return value if value in TEXTS else "th"


def page_html(templates: Environment, lang: str, *, school_id: str | None = None, view: SchoolView | None = None,
              done: int | None = None, error: str | None = None, action_codes: Mapping[str, Texts] | None = None,
              ) -> str:
    """The page as HTML: the login form without ``school_id``, else the school's ``view`` (None: a link back).

    ``action_codes`` (code → th/en label) are the choices each card's form offers as boxes to tick.
    """
    t = TEXTS[lang]
    if view is not None and view.wait_list_term is not None:  # in place of "no open alerts": why, and until when
        t = {**t, "none": t["wait_list"].format(term=view.wait_list_term, next=next_term(view.wait_list_term))}
    return templates.get_template("teacher.html.j2").render(
        t=t, lang=lang, other_lang="en" if lang == "th" else "th", school_id=school_id,
        view=view, done=done, error=error, today=dt.date.today().isoformat(), action_codes=action_codes or {},
        reason_groups=reason_groups, standing_texts=standing_texts, kind_text=kind_text, percent=percent,
        grouped_kinds=GROUPED_KINDS)


def _render(services: Services, lang: str, *, status: int = 200, school_id: str | None = None,
            view: SchoolView | None = None, done: int | None = None, error: str | None = None) -> HTMLResponse:
    html = page_html(services.templates, lang, school_id=school_id, view=view, done=done, error=error,
                     action_codes=services.scoring.action_codes)
    return HTMLResponse(html, status_code=status)
