"""What routes receive: the app's services, the caller's key (checked, rate-limited) and role checks.

A key comes as ``Authorization: Bearer <token>`` or ``X-API-Key: <token>``; the
teacher page sends it in its cookie. No key, an unknown or revoked key → 401; a
role that may not use the route → 403; too many requests → 429 with Retry-After.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import Environment

from risk.online.builder import OnlineFeatureBuilder
from risk.scoring.settings import ScoringSettings
from risk.serve.access import AuditTrail, KeyCache, RateLimiter
from risk.serve.balance import ConnectionShare
from risk.serve.metrics import KEY_ID_SCOPE, ServiceMetrics
from risk.serve.model_holder import ModelHolder
from risk.serve.scorer import MicroBatcher, OnlineScorer
from risk.serve.settings import ServeSettings
from risk.store import AuditRecord, KeyRecord, Store

__all__ = ["COOKIE", "KEY_ID_SCOPE", "AdminKey", "AnalystKey", "CurrentKey", "ReaderKey", "ServicesDep", "Services",
           "TeacherOrAdminKey", "UpstreamKey", "key_of", "may_read_school", "may_see_school", "note_key", "role"]

COOKIE = "risk_key"

_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key token (`risk keys create`).")
_bearer = HTTPBearer(auto_error=False, description="The same token as a bearer token.")


@dataclass
class Services:
    """Everything the app built at start; one instance per app, on ``app.state.services``."""

    settings: ServeSettings
    store: Store
    builder: OnlineFeatureBuilder
    holder: ModelHolder
    scorer: OnlineScorer
    batcher: MicroBatcher
    metrics: ServiceMetrics
    keys: KeyCache
    limiter: RateLimiter
    audit: AuditTrail
    connections: ConnectionShare  # this process's open connections, for the balance across workers
    scoring: ScoringSettings
    id_key: bytes
    templates: Environment


async def _services(request: Request) -> Services:
    # async on purpose: FastAPI runs a plain def dependency in its thread pool, a hop to another
    # thread and back (and a turn at the GIL) on every request for one attribute read.
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(_services)]


def key_of(services: Services, token: str | None) -> KeyRecord:
    """The active key of ``token``, rate-limited; HTTPException 401 or 429 otherwise."""
    if not token:
        raise HTTPException(401, "An API key is required (X-API-Key header or Bearer token).",
                            headers={"WWW-Authenticate": "Bearer"})
    record = services.keys.active(token)
    if record is None:
        raise HTTPException(401, "This API key is unknown or revoked.", headers={"WWW-Authenticate": "Bearer"})
    wait = services.limiter.allow(record.key_id)
    if wait > 0:
        raise HTTPException(429, "Too many requests for this key; slow down.",
                            headers={"Retry-After": str(max(1, math.ceil(wait)))})
    return record


async def _current_key(request: Request, services: ServicesDep,
                       header: Annotated[str | None, Security(_header)] = None,
                       bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
                       ) -> KeyRecord:
    return note_key(request, key_of(services, header or (bearer.credentials if bearer else None)))


def note_key(request: Request, key: KeyRecord) -> KeyRecord:
    """Leave the key's public id in the request's scope, where the access log line finds it."""
    request.scope[KEY_ID_SCOPE] = key.key_id
    return key


CurrentKey = Annotated[KeyRecord, Depends(_current_key)]


def role(*allowed: str) -> Callable[[KeyRecord], KeyRecord]:
    """A dependency passing keys of the ``allowed`` roles and refusing the others with 403."""

    async def check(request: Request, key: CurrentKey, services: ServicesDep) -> KeyRecord:
        if key.role not in allowed:
            route = getattr(request.scope.get("route"), "path", "?")  # the template: never the raw path
            services.audit.later(AuditRecord(key.key_id, "refused", school_id=key.school_id,
                                             detail=f"refused 403: {request.method} {route} by a {key.role} key"))
            raise HTTPException(403, f"A {key.role} key may not use this; it needs one of: {', '.join(allowed)}.")
        return key

    return check


def may_read_school(key: KeyRecord, school_id: str) -> bool:
    """Whether the key may read ``school_id``'s students (a teacher: only their own school)."""
    return key.role != "teacher" or key.school_id == school_id


def may_see_school(key: KeyRecord, school_id: str) -> None:
    """403 unless the key may read ``school_id``'s students (a teacher: only their own school)."""
    if not may_read_school(key, school_id):
        raise HTTPException(403, "A teacher key reads its own school's students only.")


UpstreamKey = Annotated[KeyRecord, Depends(role("upstream", "admin"))]
ReaderKey = Annotated[KeyRecord, Depends(role("teacher", "analyst", "admin"))]
TeacherOrAdminKey = Annotated[KeyRecord, Depends(role("teacher", "admin"))]
AnalystKey = Annotated[KeyRecord, Depends(role("analyst", "admin"))]
AdminKey = Annotated[KeyRecord, Depends(role("admin"))]
