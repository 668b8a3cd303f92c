"""The teacher page: server-rendered, Thai by default (``?lang=en`` for English), readable on a phone.

A teacher logs in with their key (kept in an HttpOnly, SameSite=Strict cookie),
sees their school's open alerts with each student's display hint, class,
reasons and suggested actions, and acknowledges one by saying what was done and
when. Forms are read from the raw body (no multipart dependency); every view of
the alerts is audited like the API's.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Cookie, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from risk.serve.deps import COOKIE, Services, ServicesDep, key_of, note_key
from risk.serve.routes.alerts import (
    acknowledge_alert,
    alert_out,
    refuse_unseen_alert,
    school_alerts,
)
from risk.serve.routing import OrjsonRoute
from risk.store import KeyRecord

__all__ = ["router"]

router = APIRouter(prefix="/teacher", include_in_schema=False, route_class=OrjsonRoute)

TEXTS = {
    "th": {"title": "นักเรียนที่ต้องติดตาม", "school": "โรงเรียน", "other_lang": "English", "logout": "ออกจากระบบ",
           "key_label": "รหัสเข้าใช้งานของครู", "login": "เข้าสู่ระบบ",
           "key_help": "ขอรหัสได้จากผู้ดูแลระบบของเขตพื้นที่ (คำสั่ง risk keys create --role teacher)",
           "count": "การแจ้งเตือนที่ยังไม่ได้ดำเนินการ {n} รายการ", "room": "ห้อง",
           "sex": {"female": "หญิง", "male": "ชาย"},
           "classes": {"problem": "มีปัญหา", "at_risk": "เสี่ยง", "normal": "ปกติ"},
           "kinds": {"newly_at_risk": "เพิ่งเข้าสู่กลุ่มเสี่ยง", "escalated_problem": "อาการหนักขึ้น",
                     "improved": "ดีขึ้น", "left_register": "ไม่อยู่ในทะเบียนแล้ว"},
           "chance": "โอกาสออกกลางคัน", "reasons": "เหตุผล", "actions": "สิ่งที่ควรทำ",
           "action_taken": "สิ่งที่ได้ดำเนินการ", "acted_on": "วันที่ดำเนินการ", "acknowledge": "บันทึกการดำเนินการ",
           "none": "ไม่มีการแจ้งเตือนที่ค้างอยู่", "done": "บันทึกเรียบร้อยแล้ว",
           "bad_key": "รหัสไม่ถูกต้อง ถูกยกเลิก หรือไม่ใช่รหัสของครู", "bad_form": "กรุณาระบุสิ่งที่ได้ดำเนินการและวันที่",
           "bad_date": "วันที่ดำเนินการต้องไม่ก่อนวันที่แจ้งเตือนและไม่เกินวันนี้",
           "not_open": "การแจ้งเตือนนี้ได้บันทึกการดำเนินการไปแล้ว หรือถูกถอนออกแล้ว"},
    "en": {"title": "Students to follow up", "school": "School", "other_lang": "ภาษาไทย", "logout": "Log out",
           "key_label": "Teacher key", "login": "Log in",
           "key_help": "Ask your area office's administrator for a key (risk keys create --role teacher).",
           "count": "{n} open alerts", "room": "room", "sex": {"female": "girl", "male": "boy"},
           "classes": {"problem": "problem", "at_risk": "at risk", "normal": "normal"},
           "kinds": {"newly_at_risk": "newly at risk", "escalated_problem": "escalated to problem",
                     "improved": "improved", "left_register": "left the register"},
           "chance": "chance of dropping out", "reasons": "Reasons", "actions": "Suggested actions",
           "action_taken": "What was done", "acted_on": "Date", "acknowledge": "Acknowledge",
           "none": "No open alerts.", "done": "Saved.",
           "bad_key": "This key is unknown, revoked, or not a teacher's.",
           "bad_form": "Say what was done and when.",
           "bad_date": "The date must lie between the alert's date and today.",
           "not_open": "This alert was acknowledged already, or withdrawn."},
}
Lang = str


@router.get("", response_class=HTMLResponse)
async def page(request: Request, services: ServicesDep, lang: Lang = "th", done: int | None = None,
               risk_key: Annotated[str | None, Cookie()] = None) -> HTMLResponse:
    lang = _lang(lang)
    key = _teacher(services, risk_key, request)
    if key is None:
        return _render(services, lang, status=200)
    frame = await run_in_threadpool(school_alerts, services, key, key.school_id, "teacher_page")
    alerts = [alert_out(row) for _, row in frame.iterrows()]
    return _render(services, lang, school_id=key.school_id, alerts=alerts, done=done)


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
    form = await _form(request)
    lang = _lang(form.get("lang", "th"))
    key = _teacher(services, risk_key, request)
    if key is None:
        return _render(services, lang, status=401, error=TEXTS[lang]["bad_key"])
    await run_in_threadpool(refuse_unseen_alert, services, key, alert_id, "alert_ack")
    try:
        acted_on = dt.date.fromisoformat(form.get("acted_on", ""))
    except ValueError:
        acted_on = None
    action = form.get("action_taken", "").strip()
    if not action or acted_on is None:
        return _render(services, lang, status=422, school_id=key.school_id, error=TEXTS[lang]["bad_form"])
    try:
        await run_in_threadpool(acknowledge_alert, services, key, alert_id, action[:2000], acted_on)
    except HTTPException as exc:
        # A date outside the alert's date..today (422) or an alert no longer open (409): the page again,
        # with the reason in the teacher's language, not the API's JSON.
        if exc.status_code not in (409, 422):
            raise
        error = TEXTS[lang]["bad_date" if exc.status_code == 422 else "not_open"]
        return _render(services, lang, status=exc.status_code, school_id=key.school_id, error=error)
    return RedirectResponse(f"/teacher?lang={lang}&done={alert_id}", status_code=303)


def _teacher(services: Services, token: str | None, request: Request) -> KeyRecord | None:
    if not token:
        return None
    try:
        key = note_key(request, key_of(services, token))
    except HTTPException:
        return None
    return key if key.role == "teacher" else None


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body())[:20_000].decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _lang(value: str) -> str:
    return value if value in TEXTS else "th"


def _render(services: Services, lang: str, *, status: int = 200, school_id: str | None = None,
            alerts: list | None = None, done: int | None = None, error: str | None = None) -> HTMLResponse:
    html = services.templates.get_template("teacher.html.j2").render(
        t=TEXTS[lang], lang=lang, other_lang="en" if lang == "th" else "th", school_id=school_id,
        alerts=alerts or [], done=done, error=error, today=dt.date.today().isoformat())
    return HTMLResponse(html, status_code=status)
