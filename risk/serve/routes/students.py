"""GET /v1/students/{student_id}/risk: a student's latest stored score and history.

The ID (national ID or G-code) is turned into its pseudonym on arrival and then
dropped: it is never stored, logged, or echoed, not even in an error.

Each stored score says which class policy rule raised its class (``raised_by``; null
when the model's class stands), because a teacher must see a rule-flagged child apart
from a model-flagged one, and carries its school's context for that run apart from the
child's reasons, because context is about the school, not the child
(:func:`risk.store.context.school_context`).

A randomised pilot (issue 30) withholds alerts from a wait-list school's teachers while
its pilot term runs; a score names the same class and reasons as the withheld alert, so a
teacher key of that school gets here the answer the alert routes give a withheld alert:
the 404 of a student with no score it may read (the audit log keeps the real cause). From
the next term's first scoring on, the scores show again, the pilot term's included. The
pilot withholds alerts from teachers, not scores: the wait-list school's students are
scored and their scores stored as any others, analyst and admin keys read them here, and
upstream keys keep scoring them through ``POST /v1/score``.
"""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from fastapi import APIRouter, HTTPException, Path
from fastapi.concurrency import run_in_threadpool

from risk.data.ids import is_valid_student_id, pseudonym
from risk.serve.deps import ReaderKey, Services, ServicesDep, may_read_school
from risk.serve.routing import OrjsonRoute
from risk.serve.schemas import EXAMPLE_ID, Reason, StoredScore, StudentHint, StudentRiskResponse
from risk.store import AuditRecord, KeyRecord, student_history, wait_list_term
from risk.store.context import school_context

__all__ = ["NOT_READABLE", "router", "stored_score"]

router = APIRouter(prefix="/v1/students", tags=["students"], route_class=OrjsonRoute)
# The shape only: a check digit is not a pattern, so a 13-digit ID with a wrong one is refused in the route.
StudentId = Annotated[str, Path(pattern=r"^(?:[0-9]{13}|G[0-9]{12})$",
                                description="Thai national ID (13 digits, valid check digit) or G-code (G + 12 digits).",
                                examples=[EXAMPLE_ID])]
NOT_READABLE = "No stored score of this student that this key may read."


@router.get("/{student_id}/risk", response_model=StudentRiskResponse,
            responses={404: {"description": "No stored score this key may read: none at all, or (for a teacher) "
                                            "only another school's, or one of a school on the wait-list of the "
                                            "pilot term now running; the answers are the same."},
                       422: {"description": "Not a valid student ID (the ID is not echoed)."}})
async def student_risk(student_id: StudentId, key: ReaderKey, services: ServicesDep) -> StudentRiskResponse:
    """The latest stored score of a student and every earlier one, newest first (every read, refused or not,
    is audited)."""
    if not is_valid_student_id(student_id):
        raise HTTPException(422, [{"loc": ["path", "student_id"], "type": "invalid_id",
                                   "msg": "not a Thai national ID with a valid check digit, nor a G-code"}])
    student_key = pseudonym(student_id, services.id_key)
    del student_id  # from here on only the pseudonym exists
    return await run_in_threadpool(_history, services, key, student_key)


def _history(services: Services, key: KeyRecord, student_key: int) -> StudentRiskResponse:
    frame = student_history(services.store, student_key)
    frame = frame[frame["run_status"] == "finished"] if len(frame) else frame
    cause = _refusal(services, key, frame)
    if cause is not None:
        # One answer whether the child has no score, a score in another school, or a withheld one:
        # a teacher must not learn which by asking. The audit log keeps the real cause.
        services.audit.later(AuditRecord(key.key_id, "student_risk", student_key=student_key,
                                         school_id=key.school_id, detail=f"refused 404: {cause}"))
        raise HTTPException(404, NOT_READABLE)
    latest = frame.iloc[0]
    services.audit.now(AuditRecord(key.key_id, "student_risk", student_key=student_key,
                                   school_id=str(latest["school_id"]), detail=f"{len(frame)} scores"))
    contexts: dict[tuple[str, str], list[Reason]] = {}
    for run_id, school_id in dict.fromkeys(zip(frame["run_id"], frame["school_id"], strict=True)):
        contexts[run_id, school_id] = [Reason(code=line.code, en=line.en, th=line.th)
                                       for line in school_context(services.store, run_id, school_id)]
    scores = [stored_score(row, contexts[row["run_id"], row["school_id"]]) for _, row in frame.iterrows()]
    return StudentRiskResponse(latest=scores[0], history=scores[1:])


def _refusal(services: Services, key: KeyRecord, frame: pd.DataFrame) -> str | None:
    """Why the key may not read the student's finished scores (``frame``, newest first), or None when it may.

    A teacher of a school on the wait-list of the pilot term now running reads none of its
    students' scores: they would show the alert withheld from it. Other keys are not asked
    about the pilot (one query more for teacher keys only).
    """
    if frame.empty:
        return "no stored score"
    school_id = str(frame.iloc[0]["school_id"])
    if not may_read_school(key, school_id):
        return f"a score in school {school_id}"
    if key.role == "teacher":
        waiting = wait_list_term(services.store, school_id)
        if waiting is not None:
            return f"school {school_id} is on the wait-list of pilot term {waiting}"
    return None


def stored_score(row: pd.Series, context: list[Reason] | None = None) -> StoredScore:
    """A stored score row (:func:`risk.store.student_history`) as the API shows it, with its school's context."""
    codes = row["reason_codes"] or []
    en, th = row["reasons_en"] or [], row["reasons_th"] or []
    return StoredScore(
        run_id=row["run_id"], as_of=row["as_of"], term=row["term"], school_id=row["school_id"],
        student=StudentHint(id_hint=row["id_hint"], grade_level=row["grade_level"], classroom=_opt(row["classroom"]),
                            sex=_opt(row["sex"])),
        probability=float(row["probability"]), risk_class=row["risk_class"], raised_by=_opt(row.get("raised_by")),
        reasons=[Reason(code=c, en=e, th=t) for c, e, t in zip(codes, en, th, strict=False)],
        context=context or [], model_version=row["model_version"])


def _opt(value: object) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
