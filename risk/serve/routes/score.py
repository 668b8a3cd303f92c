"""POST /v1/score and /v1/score/batch: payloads of raw records → probability, class and reasons.

Each score says which class policy rule raised its class (``raised_by``; null when the
model's class stands), because a teacher must see a rule-flagged child apart from a
model-flagged one, and lists its school and grade ``context`` apart from the child's
reasons, because context is about the school, not the child.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from fastapi import APIRouter, HTTPException, Response
from fastapi.concurrency import run_in_threadpool

from risk.errors import ContractError
from risk.online.payload_fast import Deferred
from risk.serve.access import scrub
from risk.serve.deps import Services, ServicesDep, UpstreamKey
from risk.serve.routing import OrjsonRoute
from risk.serve.schemas import (
    BatchItem,
    BatchRequest,
    BatchResponse,
    ErrorItem,
    LeftOut,
    Reason,
    ScoreRequest,
    ScoreResponse,
    StudentHint,
)
from risk.serve.scorer import ModelNotReady, Scored
from risk.store import AuditRecord

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["score"], route_class=OrjsonRoute)
TABLE_NAMES = ("enrollments", "attendance_daily", "grades", "household", "health", "behaviour", "assistance")
DETAIL_CHARS = 300  # a record breaking every rule of its table lists them all; past this, enough is said
UNSCORABLE = {422: {"description": "Nothing scorable is left (for example, no valid enrollment); "
                                   "field-level messages say why."}}


@router.post("/score", response_model=ScoreResponse, responses={**UNSCORABLE, 503: {"description": "No model yet."}})
async def score(body: ScoreRequest, key: UpstreamKey, services: ServicesDep) -> Response:
    """Score one student from their raw records at ``as_of``.

    A record that breaks a contract rule — a wrong value, a value of the wrong JSON
    type, a text over 100 characters, a record that is no object — is left out and
    listed in ``left_out`` with batch's rule and a short, masked detail; the student
    is scored from the rest, with the features and reasons batch scoring uses. A key
    outside the contract is ignored (as batch ignores an extra column). 422 only when nothing scorable is left (no valid
    enrollment, or none in the term of ``as_of``).
    """
    _check_as_of(services, body.as_of, ["body", "as_of"])
    tables = body.tables()
    try:
        # A payload is scored at once by the fast way (bad records left out), on the event loop itself:
        # its ~1.5 ms of Python cost more in a thread (the hop, and threads taking the GIL in turns
        # stretched every request's latency). The few it cannot decide join a micro-batch for the full
        # checks, off the loop.
        scored = services.scorer.score_clean(tables, body.as_of)
        if isinstance(scored, Deferred):  # counted and logged by the builder (risk_online_fallbacks_total)
            scored = await asyncio.wrap_future(services.batcher.submit(tables, body.as_of))
        if isinstance(scored, ContractError):
            raise scored
    except ContractError as exc:
        raise HTTPException(422, [_error(exc)]) from None
    except ModelNotReady as exc:
        raise HTTPException(503, str(exc)) from None
    _record(services, key.key_id, [scored])
    # Built and checked as a ScoreResponse once, serialised in one pass: returned as a model, FastAPI
    # would dump it, validate it again against response_model and encode it (the OpenAPI page still
    # documents response_model).
    return Response(_response(scored).model_dump_json(), media_type="application/json")


@router.post("/score/batch", response_model=BatchResponse, responses={503: {"description": "No model yet."}})
async def score_batch(body: BatchRequest, key: UpstreamKey, services: ServicesDep) -> BatchResponse:
    """Score many students; each is scored or rejected with its own errors (``received = scored + rejected``)."""
    limit = services.settings.batch_max_students
    if len(body.students) > limit:
        raise HTTPException(422, [{"loc": ["body", "students"], "type": "too_long",
                                   "msg": f"at most {limit} students per request; got {len(body.students)}"}])
    results: list[BatchItem] = []
    items, positions = [], []
    for i, student in enumerate(body.students):
        try:
            _check_as_of(services, student.as_of, ["body", "students", i, "as_of"])
        except HTTPException as exc:
            results.append(BatchItem(index=i, status="rejected", errors=[ErrorItem(**exc.detail[0])]))
            continue
        items.append((student.tables(), student.as_of))
        positions.append(i)
    try:
        outcomes = await run_in_threadpool(services.scorer.score_many, items) if items else []
    except ModelNotReady as exc:
        raise HTTPException(503, str(exc)) from None
    for i, outcome in zip(positions, outcomes, strict=True):
        if isinstance(outcome, Scored):
            results.append(BatchItem(index=i, status="scored", score=_response(outcome)))
        else:
            error = _error(outcome)
            error["loc"] = ["body", "students", i, *error["loc"][1:]]
            results.append(BatchItem(index=i, status="rejected", errors=[ErrorItem(**error)]))
    results.sort(key=lambda r: r.index)
    _record(services, key.key_id, [o for o in outcomes if isinstance(o, Scored)])
    scored = sum(r.status == "scored" for r in results)
    return BatchResponse(received=len(body.students), scored=scored, rejected=len(results) - scored, results=results)


def _check_as_of(services: Services, as_of: dt.date, loc: list) -> None:
    """The date must fall in the span of the school calendar the service holds (plus its margins)."""
    window = services.builder.rules.refs.window
    if window is not None and not (window[0] <= as_of <= window[1]):
        raise HTTPException(422, [{"loc": loc, "type": "out_of_range",
                                   "msg": f"as_of must be between {window[0]} and {window[1]} "
                                          "(the school calendar the service knows)"}])


def _error(exc: Exception) -> dict:
    """A ContractError as a field-level message: the table it names, else the body."""
    message = scrub(str(exc))
    table = next((t for t in TABLE_NAMES if t in message or t.rstrip("s") in message.split(":")[0]), None)
    return {"loc": ["body", table] if table else ["body"], "msg": message, "type": "unscorable"}


def _response(scored: Scored) -> ScoreResponse:
    f = scored.features
    return ScoreResponse(
        as_of=f.as_of, term=f.term, school_id=f.school_id,
        student=StudentHint(id_hint=f.hint.id_hint, grade_level=f.hint.grade_level, classroom=f.hint.classroom,
                            sex=f.hint.sex),
        probability=scored.probability, risk_class=scored.risk_class, raised_by=scored.raised_by,
        reasons=[Reason(code=c, en=en, th=th) for c, en, th in scored.reasons],
        context=[Reason(code=c, en=en, th=th) for c, en, th in scored.context],
        model_version=scored.model_version,
        left_out=[LeftOut(table=r.table, record=r.record, rule=r.rule, detail=_detail(r.detail))
                  for r in f.rejected],
    )


def _detail(text: str) -> str:
    """A left-out record's detail as it may go back: IDs masked, at most 300 characters (each value is cut to 40)."""
    text = scrub(text)
    return text if len(text) <= DETAIL_CHARS else text[:DETAIL_CHARS] + "…"


def _record(services: Services, key_id: str, scored: list[Scored]) -> None:
    services.metrics.scored.inc(len(scored))
    for s in scored:
        for r in s.features.rejected:
            services.metrics.rejected.labels(rule=r.rule).inc()
    services.audit.later(*(AuditRecord(key_id, "score", student_key=s.features.student_key,
                                       school_id=s.features.school_id) for s in scored))
