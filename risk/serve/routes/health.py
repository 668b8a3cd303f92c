"""GET /healthz (the process answers), /readyz (a model is loaded), /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from risk.serve.deps import ServicesDep
from risk.serve.routing import OrjsonRoute

__all__ = ["router"]

router = APIRouter(tags=["health"], route_class=OrjsonRoute)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "No model loaded yet."}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready only with a model loaded; names the version and where it came from (registry or cache)."""
    model = services.holder.current
    if model is None:
        return JSONResponse({"status": "not ready", "reason": "no model loaded"}, status_code=503)
    return JSONResponse({"status": "ready", "model_version": model.version, "model_source": model.source})


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus text: request latency histograms, the model version in service, refusals, counts."""
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
