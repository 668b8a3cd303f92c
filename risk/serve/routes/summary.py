"""GET /v1/summary: class counts by area (and how many a rule raised) from the newest finished scoring run.

The counts take in every scored student, those of a randomised pilot's wait-list schools
too; at school level each area names its arm in the pilot planned for the run's term
(:func:`risk.store.pilot_arms`), so a caller can compare the arms.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool

from risk.serve.deps import AnalystKey, Services, ServicesDep
from risk.serve.routing import OrjsonRoute
from risk.serve.schemas import SummaryArea, SummaryResponse
from risk.store import latest_finished_run, pilot_arms, run_record, summaries

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
    run = run_record(services.store, run_id)
    frame = summaries(services.store, run_id, level)
    arms = _school_arms(services, run["term"]) if level == "school" else {}
    counted = [k for k in SummaryArea.model_fields if k != "arm"]
    areas = [SummaryArea(**{k: row[k] for k in counted}, arm=arms.get(row["area_code"]))
             for _, row in frame.iterrows()]
    return SummaryResponse(run_id=run_id, as_of=run["as_of"], level=level, areas=areas)


def _school_arms(services: Services, term: str) -> dict[str, str]:
    """school_id → arm of the pilot standing for ``term`` (empty when none stands)."""
    arms = pilot_arms(services.store, term)
    return dict(zip(arms["school_id"], arms["arm"], strict=True))
