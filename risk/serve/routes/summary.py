"""GET /v1/summary: class counts by area (and how many a rule raised) from the newest finished scoring run."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool

from risk.serve.deps import AnalystKey, Services, ServicesDep
from risk.serve.routing import OrjsonRoute
from risk.serve.schemas import SummaryArea, SummaryResponse
from risk.store import latest_finished_run, run_record, summaries

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["summary"], route_class=OrjsonRoute)


@router.get("/summary", response_model=SummaryResponse, responses={404: {"description": "No finished run yet."}})
async def summary(key: AnalystKey, services: ServicesDep,
                  level: Literal["school", "district", "province", "region", "nation"] = "nation") -> SummaryResponse:
    """Students by class per area at one level (school, district, province, region or the nation), and how many
    of each area's at_risk and problem students a class policy rule raised rather than the model."""
    return await run_in_threadpool(_summary, services, level)


def _summary(services: Services, level: str) -> SummaryResponse:
    run_id = latest_finished_run(services.store)
    if run_id is None:
        raise HTTPException(404, "No scoring run has finished yet.")
    frame = summaries(services.store, run_id, level)
    areas = [SummaryArea(**{k: row[k] for k in SummaryArea.model_fields}) for _, row in frame.iterrows()]
    return SummaryResponse(run_id=run_id, as_of=run_record(services.store, run_id)["as_of"], level=level, areas=areas)
