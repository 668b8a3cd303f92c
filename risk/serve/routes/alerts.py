"""GET /v1/schools/{school_id}/alerts and POST /v1/alerts/{alert_id}/ack: a school's open alerts, and acting on one.

An acknowledgement says what was done as action codes the service is configured with
(``action_codes`` in configs/scoring.yaml: home_visit, cct_referral, ...), in words, or
both; a body of words alone is as it was before codes. A code outside the configuration is
a 422 that names the allowed ones.

A school on the wait-list of a randomised pilot (``risk pilot plan``) has no alerts to list
or acknowledge while its pilot term runs: its students are scored and their alerts stored,
but they are shown from the next term (:mod:`risk.store.pilot`).

Each alert says which class policy rule raised its class (``raised_by``; null when the
model's class stands): a teacher must see a rule-flagged child apart from a
model-flagged one. School context is about the school, not the child, so it is no part
of an alert (the teacher page shows it once, from :mod:`risk.store.context`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, HTTPException, Path
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from risk.data.contract import next_term
from risk.serve.deps import (
    ReaderKey,
    Services,
    ServicesDep,
    TeacherOrAdminKey,
    may_read_school,
    may_see_school,
)
from risk.serve.routing import OrjsonRoute
from risk.serve.schemas import (
    EXAMPLE_SCHOOL,
    AckRequest,
    AckResponse,
    AlertOut,
    AlertsResponse,
    StudentHint,
)
from risk.store import (
    AcknowledgementDateError,
    AuditRecord,
    KeyRecord,
    acknowledge,
    open_alerts,
    wait_list_term,
)
from risk.store.models import Alert
from risk.store.pilot import wait_listed_now

__all__ = ["NO_SUCH_ALERT", "acknowledge_alert", "alert_school", "refuse_unknown_codes", "refuse_unseen_alert", "router",
           "school_alerts"]

router = APIRouter(prefix="/v1", tags=["alerts"], route_class=OrjsonRoute)
SchoolId = Annotated[str, Path(pattern=r"^\d{10}$", description="The school's 10-digit id.",
                               examples=[EXAMPLE_SCHOOL])]
AlertId = Annotated[int, Path(ge=1, le=2**62, description="The alert's id.")]
NO_SUCH_ALERT = "There is no such alert."


@router.get("/schools/{school_id}/alerts", response_model=AlertsResponse,
            responses={403: {"description": "A teacher of another school."}})
async def list_alerts(school_id: SchoolId, key: ReaderKey, services: ServicesDep) -> AlertsResponse:
    """The school's open alerts, newest first, with each student's display hint, reasons and suggested actions."""
    if not may_read_school(key, school_id):
        # The same 403 for any other school, existing or not; the refusal is on record.
        services.audit.later(AuditRecord(key.key_id, "school_alerts", school_id=school_id,
                                         detail=f"refused 403: a teacher key of school {key.school_id}"))
    may_see_school(key, school_id)
    frame = await run_in_threadpool(school_alerts, services, key, school_id, "school_alerts")
    # A wait-list school of a pilot lists nothing this term: say until when, as the teacher page does.
    waiting = await run_in_threadpool(wait_list_term, services.store, school_id)
    return AlertsResponse(school_id=school_id, alerts=[alert_out(row) for _, row in frame.iterrows()],
                          wait_list_until=next_term(waiting) if waiting else None)


@router.post("/alerts/{alert_id}/ack", response_model=AckResponse,
             responses={404: {"description": "No such alert, or (for a teacher) another school's: the same answer."},
                        409: {"description": "Already acknowledged."},
                        422: {"description": "A bad body; an action code the service is not configured with "
                                             "(unknown_action, naming the allowed codes); a date outside the "
                                             "alert's date and today (date_range)."}})
async def ack_alert(alert_id: AlertId, body: AckRequest, key: TeacherOrAdminKey, services: ServicesDep) -> AckResponse:
    """Record what the school did about the alert (action codes, words, or both), and when; the alert is then closed."""
    codes = tuple(dict.fromkeys(body.actions))
    ack_id = await run_in_threadpool(acknowledge_alert, services, key, alert_id, body.action_taken,
                                     body.acted_on or dt.date.today(), codes)
    return AckResponse(alert_id=alert_id, acknowledgement_id=ack_id, status="acknowledged", actions=list(codes))


def school_alerts(services: Services, key: KeyRecord, school_id: str, action: str) -> pd.DataFrame:
    """The open alerts of a school, each student's read written to the audit log first."""
    frame = open_alerts(services.store, school_id)
    services.audit.now(*(AuditRecord(key.key_id, action, student_key=int(k), school_id=school_id,
                                      detail=f"alert {int(a)}") for k, a in zip(frame["student_key"], frame["id"],
                                                                                strict=True)))
    return frame


def refuse_unseen_alert(services: Services, key: KeyRecord, alert_id: int, action: str) -> tuple[str, str, int]:
    """(school_id, status, student_key) of an alert the key may act on; else 404.

    A teacher naming another school's alert gets the very answer to an alert that does not
    exist; otherwise a teacher could tell, alert id by alert id, which exist in other schools.
    A teacher's refusal is audited with its real cause.
    """
    found = alert_school(services, alert_id)
    if found is not None and may_read_school(key, found[0]):
        return found
    if key.role == "teacher":
        cause = (f"alert {alert_id} does not exist or is wait-listed" if found is None
                 else f"alert {alert_id} is of school {found[0]}")
        services.audit.later(AuditRecord(key.key_id, action, student_key=None if found is None else found[2],
                                         school_id=key.school_id, detail=f"refused 404: {cause}"))
    raise HTTPException(404, NO_SUCH_ALERT)


def alert_school(services: Services, alert_id: int) -> tuple[str, str, int] | None:
    """(school_id, status, student_key) of an alert, or None when there is none to show.

    An alert of a school on its pilot term's wait-list is not shown to anyone while that
    term runs (:mod:`risk.store.pilot`), so it cannot be acted on either: None.
    """
    a = Alert.__table__.c
    with services.store.engine.connect() as conn:
        row = conn.execute(select(a.school_id, a.status, a.student_key)
                           .where(a.id == alert_id, ~wait_listed_now(a.school_id))).first()
    return None if row is None else (row[0], row[1], int(row[2]))


def acknowledge_alert(services: Services, key: KeyRecord, alert_id: int, action_taken: str, acted_on: dt.date,
                      codes: Sequence[str] = (), source: str = "api") -> int:
    """Check the key may act on the alert, record the acknowledgement and its action codes, and audit it.

    Returns the acknowledgement's id. Raises HTTPException: 404 (no such alert, or another
    school's for a teacher), 409 (not open), 422 (nothing said, an unknown code, a date out of range).
    """
    school_id, status, student_key = refuse_unseen_alert(services, key, alert_id, "alert_ack")
    if status != "open":
        raise HTTPException(409, "This alert was acknowledged already." if status == "acknowledged" else
                            "This alert was withdrawn: scoring its date again no longer supports it.")
    if not action_taken.strip() and not codes:
        raise HTTPException(422, [{"loc": ["body", "action_taken"], "type": "empty",
                                   "msg": "say what was done about the alert: action codes, words, or both"}])
    refuse_unknown_codes(services, codes)
    try:
        ack_id = acknowledge(services.store, alert_id, action_taken, acted_on, recorded_by=key.key_id, codes=codes,
                             source=source)
    except AcknowledgementDateError as exc:
        raise HTTPException(422, [{"loc": ["body", "acted_on"], "type": "date_range", "msg": str(exc)}]) from exc
    services.audit.now(AuditRecord(key.key_id, "alert_ack", student_key=student_key, school_id=school_id,
                                   detail=f"alert {alert_id}" + (f": {', '.join(codes)}" if codes else "")))
    return ack_id


def refuse_unknown_codes(services: Services, codes: Sequence[str]) -> None:
    """422 (``unknown_action``) naming each code the service is not configured with, and the allowed ones."""
    allowed = services.scoring.action_codes
    unknown = [(i, code) for i, code in enumerate(codes) if code not in allowed]
    if unknown:
        named = ", ".join(allowed) or "none are configured"
        raise HTTPException(422, [{"loc": ["body", "actions", i], "type": "unknown_action",
                                   "msg": f"{code!r} is not an action code; allowed: {named}"} for i, code in unknown])


def alert_out(row: pd.Series) -> AlertOut:
    return AlertOut(
        id=int(row["id"]), as_of=row["as_of"], kind=row["kind"], previous_class=_opt(row["previous_class"]),
        current_class=_opt(row["current_class"]),
        probability=None if pd.isna(row["probability"]) else float(row["probability"]),
        raised_by=_opt(row.get("raised_by")),
        student=StudentHint(id_hint=_opt(row["id_hint"]) or "", grade_level=_opt(row["grade_level"]),
                            classroom=_opt(row["classroom"]), sex=_opt(row["sex"])),
        reasons_en=row["reasons_en"] or [], reasons_th=row["reasons_th"] or [],
        actions_en=row["actions_en"] or [], actions_th=row["actions_th"] or [], created_at=row["created_at"])


def _opt(value: object) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
