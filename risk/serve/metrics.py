"""Prometheus metrics and the access log of one app (its own registry, so several apps can live in one process, as in tests).

With several worker processes (``workers`` > 1) the parent sets ``PROMETHEUS_MULTIPROC_DIR``
before it starts them: each worker writes its samples there and ``/metrics``, whichever
worker answers, adds up all of them (prometheus_client's multiprocess mode).

- ``risk_request_seconds`` (histogram): request latency by method, route template and status;
- ``risk_model_info`` (gauge, 1 for the version in service) and ``risk_model_swaps_total``;
- ``risk_model_refused_total``: models refused (corrupt or built for other features);
- ``risk_scored_students_total``, ``risk_rejected_records_total``, ``risk_score_batch_size``;
- ``risk_online_fallbacks_total``: every payload the online builder's fast way left to the full
  way, by reason (the builder's own counter, :mod:`risk.online.fallbacks`, added to this registry).

:class:`LatencyMiddleware` also writes the access log: one line a request with the
method, the route template (never the raw path: it may hold a student ID), the
status, the latency and the caller's key id; never a body, a path or a query string.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from risk.logs import get_logger
from risk.online.fallbacks import FALLBACKS

__all__ = ["KEY_ID_SCOPE", "LatencyMiddleware", "ServiceMetrics"]

access_log = get_logger("risk.serve.access_log")
KEY_ID_SCOPE = "risk.key_id"  # set by the key dependency (risk.serve.deps.note_key)

# Fine steps under 50 ms: the online target is 25 ms at p99.
LATENCY_BUCKETS = (0.002, 0.004, 0.006, 0.008, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1,
                   0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    """The service's collectors on one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram("risk_request_seconds", "Request latency, seconds.", ["method", "route", "status"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        # Per worker process ("liveall" adds a pid label): during a swap each says which version it serves.
        self.model_info = Gauge("risk_model_info", "1 for the model version in service, 0 for one swapped out.",
                                ["name", "version"], registry=r, multiprocess_mode="liveall")
        self._serving: tuple[str, str] | None = None
        self.swaps = Counter("risk_model_swaps_total", "Models swapped into service.", registry=r)
        self.refused = Counter("risk_model_refused_total", "Models refused (corrupt or incompatible).", ["reason"],
                               registry=r)
        self.scored = Counter("risk_scored_students_total", "Students scored online.", registry=r)
        self.rejected = Counter("risk_rejected_records_total", "Payload records left out, by rule.", ["rule"],
                                registry=r)
        self.batch_size = Histogram("risk_score_batch_size", "Students per feature statement.",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        # The builder counts its fallbacks itself (risk.online may not import the service); the count is the
        # process's, shown by each app of the process.
        r.register(FALLBACKS)

    def model_in_service(self, name: str, version: str) -> None:
        # Set to 0 rather than removed: a multiprocess sample cannot be removed from its worker's file.
        if self._serving is not None:
            self.model_info.labels(*self._serving).set(0)
        self._serving = (name, version)
        self.model_info.labels(name=name, version=version).set(1)
        self.swaps.inc()

    def exposition(self) -> bytes:
        """The text format: this app's registry, or every worker's samples in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class LatencyMiddleware:
    """Times every HTTP request by its route template (``/v1/students/{student_id}/risk``), never its raw path.

    With ``log`` on, each request is also one access log line (``event=request``).
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(scope["method"], template, str(status["code"])).observe(seconds)
            if self.log:
                access_log.info("request", method=scope["method"], route=template, status=status["code"],
                                latency_ms=round(seconds * 1000, 2), key_id=scope.get(KEY_ID_SCOPE))
