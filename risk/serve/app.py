"""The application factory: settings in, a FastAPI app out (no import-time globals).

:func:`build_services` loads what every request shares, once: the store, the
online feature builder (reference tables in memory), the model holder (registry
or cache), the scorer and its micro-batcher, keys, rate limits and the audit
trail. :func:`create_app` wires them to the routers; the lifespan starts the
background threads (batcher, audit writer, registry poll) and stops them.
:func:`worker_app` is one worker process's app when ``risk serve`` runs several; what a
process does to itself (gc freeze, TCP_NODELAY, ending with its supervisor) is in
:mod:`risk.serve.workers`.

Errors never echo input: validation errors keep their location and message but
drop the offending value (it may be a national ID), and anything unexpected is
a bare 500 with no detail, logged by type only.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from risk.config import DEFAULT_SETTINGS, load_settings
from risk.data.ids import id_key_from_env
from risk.errors import RiskError
from risk.features.catalog import load_catalog
from risk.logs import configure_logging, get_logger
from risk.online.builder import OnlineFeatureBuilder
from risk.scoring.settings import DEFAULT_SCORING_SETTINGS, load_scoring_settings
from risk.serve.access import AuditTrail, KeyCache, RateLimiter, scrub
from risk.serve.balance import CONNECTIONS_STATE, BalanceConnections, ConnectionShare
from risk.serve.deps import Services
from risk.serve.limits import BodyLimits, too_large_handler
from risk.serve.metrics import LatencyMiddleware, ServiceMetrics
from risk.serve.mlflow_registry import RegistryClient
from risk.serve.model_holder import ModelHolder
from risk.serve.routes import alerts, health, score, students, summary, teacher
from risk.serve.scorer import MicroBatcher, OnlineScorer
from risk.serve.settings import ServeSettings
from risk.serve.workers import end_with_parent, freeze_startup_objects
from risk.store import default_store_url, open_store

__all__ = ["WORKER_SETTINGS", "build_services", "create_app", "worker_app"]

log = get_logger(__name__)
TEMPLATES = Path(__file__).resolve().parent / "templates"
# `risk serve` with workers > 1 leaves its resolved settings here for each worker process.
WORKER_SETTINGS = "RISK_SERVE_WORKER_SETTINGS"
DESCRIPTION = """Dropout early-warning scores for Thai students.

Upstream systems (Q-Info, iSEE, DMC) send one student's raw records per the data
contract to `POST /v1/score` and get a calibrated probability, a class and reasons
in Thai and English. Analysts read stored scores and area summaries; teachers read
their own school's alerts. Every call needs an API key (`X-API-Key` or Bearer);
student IDs are pseudonymised on arrival and never stored, logged or echoed."""


def build_services(settings: ServeSettings, *, id_key: bytes | None = None) -> Services:
    """Open the store, load the builder and the model (registry, else cache); nothing is started yet.

    One of several workers (``shared_dir`` set by ``risk serve``) also takes its slot in the
    shared count of connections (:mod:`risk.serve.balance`).
    """
    base = load_settings(settings.settings_file or DEFAULT_SETTINGS)
    scoring = load_scoring_settings(settings.scoring_file or DEFAULT_SCORING_SETTINGS)
    key = id_key if id_key is not None else id_key_from_env(demo=settings.demo_key)
    catalog = load_catalog(base.resolve(base.features.catalog))
    store = open_store(settings.store_url or default_store_url(settings.data.resolve().parent))
    builder = OnlineFeatureBuilder.load(settings.data, catalog=catalog, settings=base, key=key)
    metrics = ServiceMetrics()
    registry = RegistryClient(settings.model_name, settings.model_alias, settings.tracking_dir,
                              timeout_s=settings.mlflow_timeout_seconds, retries=settings.mlflow_retries)
    holder = ModelHolder(registry=registry.alias_version, download=registry.download, catalog=catalog,
                         cache_dir=settings.cache_dir,
                         on_refused=lambda version, reason: metrics.refused.labels(reason=reason).inc(),
                         on_swap=lambda model: metrics.model_in_service(settings.model_name, model.version))
    holder.start()
    connections = ConnectionShare()
    if settings.shared_dir is not None and settings.workers > 1:
        connections.join(settings.shared_dir, settings.workers)
    scorer = OnlineScorer(builder, holder, scoring.reasons, on_batch=metrics.batch_size.observe)
    batch = settings.micro_batch
    return Services(
        settings=settings, store=store, builder=builder, holder=holder, scorer=scorer,
        batcher=MicroBatcher(scorer, window_s=batch.window_ms / 1000, max_size=batch.max_size, workers=batch.workers),
        metrics=metrics, keys=KeyCache(store, settings.key_cache_seconds),
        limiter=RateLimiter(settings.rate_limit.per_second, settings.rate_limit.burst,
                            shared=settings.shared_dir / "rate-limits.sqlite" if settings.shared_dir else None),
        audit=AuditTrail(store), connections=connections,
        scoring=scoring, id_key=key,
        templates=Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2", "html"])))


def create_app(settings: ServeSettings, *, services: Services | None = None, id_key: bytes | None = None) -> FastAPI:
    """The service as an ASGI app (``services`` built from ``settings`` unless given)."""
    services = services or build_services(settings, id_key=id_key)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        stop = threading.Event()
        freeze_startup_objects()
        services.batcher.start()
        services.audit.start()
        poll = threading.Thread(target=services.holder.poll_forever, args=(stop, settings.poll_seconds),
                                name="model-poll", daemon=True)
        poll.start()
        model = services.holder.current
        log.info("service started", model_name=settings.model_name, model_alias=settings.model_alias,
                 model_version=model.version if model else None, model_source=model.source if model else None,
                 workers=settings.workers, pid=os.getpid(), store_backend=services.store.dialect,
                 max_body_kib=settings.max_body_kib, batch_max_kib=settings.max_batch_body_bytes // 1024)
        try:
            # The server gives this state to each connection: NoDelayH11Protocol counts itself in the share.
            yield {CONNECTIONS_STATE: services.connections}
        finally:
            stop.set()
            services.batcher.stop()
            services.audit.stop()
            poll.join(timeout=5)
            model = services.holder.current
            log.info("service stopped", model_version=model.version if model else None, pid=os.getpid())

    app = FastAPI(title="risk: dropout early warning", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.services = services
    for module in (score, students, alerts, summary, health, teacher):
        app.include_router(module.router)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(413, too_large_handler)
    app.add_exception_handler(RiskError, _risk_error)
    app.add_exception_handler(Exception, _unexpected)
    # Added last, runs first: the access log and latency see every answer, a 413 included.
    app.add_middleware(BodyLimits, default_bytes=settings.max_body_bytes, batch_bytes=settings.max_batch_body_bytes)
    app.add_middleware(LatencyMiddleware, metrics=services.metrics, log=settings.access_log)
    app.openapi = _configured_openapi(app, settings)  # type: ignore[method-assign]
    if settings.workers > 1:
        app.add_middleware(BalanceConnections, share=services.connections)
    return app


def _configured_openapi(app: FastAPI, settings: ServeSettings) -> Callable[[], dict[str, Any]]:
    """The app's OpenAPI document with the configured batch size as ``students``' maxItems.

    The model allows up to 1,000 students; the service takes ``batch_max_students``. The
    schema must say what the server does, or a valid-looking batch would be refused.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            batch = schema.get("components", {}).get("schemas", {}).get("BatchRequest")
            if batch is not None:
                batch["properties"]["students"]["maxItems"] = settings.batch_max_students
        return app.openapi_schema

    return openapi


def worker_app() -> FastAPI:
    """(uvicorn factory) One worker process's app, from the settings ``risk serve`` left in the environment."""
    end_with_parent()
    settings = ServeSettings.model_validate_json(os.environ[WORKER_SETTINGS])
    configure_logging(settings.log_level)  # a fresh interpreter: `risk serve` configured only itself
    return create_app(settings)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with each error's location, message and type, never the value that was sent.

    pydantic puts the offending value in ``input`` (and ``ctx``): both are dropped. A
    location may still be a key the client made up (an unknown field): it is cut to
    a short excerpt and anything ID-like in it masked, as in the message.
    """
    detail = [{"loc": [_excerpt(p) if isinstance(p, str) else p for p in e.get("loc", ())],
               "msg": _excerpt(str(e.get("msg", "")), 300), "type": _excerpt(str(e.get("type", "invalid")))}
              for e in exc.errors()[:MAX_ERRORS]]
    return JSONResponse(status_code=422, content=jsonable_encoder({"detail": detail}))


MAX_ERRORS = 50  # a body of 10,000 bad records is not answered with 10,000 errors


def _excerpt(text: str, limit: int = 40) -> str:
    """``text`` with ID-like digit runs masked, cut to ``limit`` characters (an ellipsis marks a cut)."""
    text = scrub(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _risk_error(request: Request, exc: RiskError) -> JSONResponse:
    log.error("request refused by a dependency", error=type(exc).__name__, reason=scrub(str(exc)))
    return JSONResponse(status_code=503, content={"detail": "The service cannot answer now: " + scrub(str(exc))})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error", error=type(exc).__name__, route=getattr(request.scope.get("route"), "path", None))
    return JSONResponse(status_code=500, content={"detail": "Internal error."})
