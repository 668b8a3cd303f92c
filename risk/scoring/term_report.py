"""``risk report``: the term report of a finished scoring run, from the store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from risk.config import Settings
from risk.errors import RiskError
from risk.features.freshness import DomainFreshness, domain_freshness
from risk.scoring.report import ReportInputs, write_report
from risk.store import (
    Store,
    alert_counts,
    latest_finished_run,
    latest_scores,
    previous_finished_run,
    run_record,
    summaries,
)

__all__ = ["term_report"]

LEVELS = ("nation", "region", "province", "district", "school")


def term_report(store: Store, out: Path, run_id: str | None = None, *, validated: Path | None = None,
                settings: Settings | None = None) -> Path:
    """Write the report of ``run_id`` (default: the newest finished run) to ``out``; returns the path.

    With ``validated`` (the folder the run scored), the report shows each domain's freshness at the
    run's as_of, checked now against ``settings`` (rows dated after as_of never count, so a later
    validation changes it only by rows that arrived late).
    """
    run_id = run_id or latest_finished_run(store)
    if run_id is None:
        raise RiskError("the store holds no finished scoring run: run `risk score` first")
    run = run_record(store, run_id)
    if run["status"] != "finished":
        raise RiskError(f"scoring run {run_id} is {run['status']}, not finished: run `risk score` again to finish it")
    previous = previous_finished_run(store, before_as_of=run["as_of"])
    kept = run["settings"] or {}
    model = {"name": run["model_name"], "version": run["model_version"],
             "trained window": kept.get("trained", {}), "catalog": kept.get("catalog_version"),
             **kept.get("evaluation", {})}
    inputs = ReportInputs(
        as_of=run["as_of"], term=run["term"], generated_at=dt.datetime.now(dt.UTC), model=model,
        summaries=_all_levels(store, run_id),
        previous_summaries=_all_levels(store, previous) if previous else None,
        by_grade=_class_mix_by_grade(store, run_id), drift=run["drift"], alerts=alert_counts(store, run_id),
        freshness=_freshness(validated, run["as_of"], settings))
    return write_report(inputs, out)


def _freshness(validated: Path | None, as_of: dt.date, settings: Settings | None) -> list[DomainFreshness] | None:
    """Each domain's freshness at ``as_of``; None without a validated folder at hand (a store read from afar)."""
    if validated is None or not validated.is_dir():
        return None
    return domain_freshness(validated, as_of, settings or Settings())


def _all_levels(store: Store, run_id: str) -> pd.DataFrame:
    return pd.concat([summaries(store, run_id, level) for level in LEVELS], ignore_index=True)


def _class_mix_by_grade(store: Store, run_id: str) -> pd.DataFrame:
    counts: pd.DataFrame | None = None
    for chunk in latest_scores(store, run_id, columns=["grade_level", "risk_class"], chunk_rows=500_000):
        part = chunk.groupby(["grade_level", "risk_class"]).size()
        counts = part if counts is None else counts.add(part, fill_value=0)
    if counts is None:
        return pd.DataFrame(columns=["grade_level", "normal", "at_risk", "problem"])
    table = counts.unstack(fill_value=0).reindex(columns=["normal", "at_risk", "problem"], fill_value=0)
    return table.astype(int).reset_index()
