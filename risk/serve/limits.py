"""How large a request body may be: 413 before the body is parsed or held whole.

A body announced larger than its route's limit (``Content-Length``) is answered at
once, unread. A body sent in chunks is counted as it arrives by Starlette's
``RequestBodyLimitMiddleware``, which stops the read at the first byte past the
limit; FastAPI turns that into the same 413. The batch route has its own, larger
limit (``batch_max_students`` students at ``batch_kib_per_student`` each).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY, RequestBodyLimitMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["BATCH_PATH", "BodyLimits", "too_large", "too_large_handler"]

BATCH_PATH = "/v1/score/batch"


def too_large(limit_bytes: int) -> JSONResponse:
    """The 413 answer: a short JSON error naming the limit, nothing of what was sent."""
    return JSONResponse({"detail": f"The request body is larger than this route takes ({limit_bytes // 1024} KiB)."},
                        status_code=413, headers={"Connection": "close"})


async def too_large_handler(request: Request, exc: Exception) -> JSONResponse:
    """(exception handler for 413) Starlette's counter stopped a chunked body past the limit."""
    return too_large(int(request.scope.get(MAX_BODY_SIZE_SCOPE_KEY) or 0))


class BodyLimits:
    """Request bodies up to ``default_bytes``, or ``batch_bytes`` on the batch route; 413 past them.

    The limit is chosen by the raw path only to pick between the two numbers; the path
    itself is never logged or echoed.
    """

    def __init__(self, app: ASGIApp, *, default_bytes: int, batch_bytes: int) -> None:
        self.app = app
        self.default_bytes = default_bytes
        self.batch_bytes = batch_bytes
        self._counted = {limit: RequestBodyLimitMiddleware(app, max_body_size=limit)
                         for limit in {default_bytes, batch_bytes}}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.batch_bytes if scope["path"].rstrip("/") == BATCH_PATH else self.default_bytes
        if _content_length(scope) > limit:
            await too_large(limit)(scope, receive, send)
            return
        await self._counted[limit](scope, receive, send)


def _content_length(scope: Scope) -> int:
    """The announced body size, bytes; 0 when not announced (chunked) or not a number (h11 refuses those)."""
    value = Headers(scope=scope).get("content-length", "")
    return int(value) if value.isdigit() else 0
