"""``risk store load``: score rows written by ``risk score --engine spark`` into the store, as ``risk score`` stores them.

A run is started (or the unfinished run of the same model and date resumed), each
``bucket=N`` folder's rows and school context are written in one transaction that
marks the bucket done, then alerts and area summaries follow from the same parts as
in batch (:func:`risk.scoring.alerts.build_alerts`, :func:`risk.scoring.summaries.area_summaries`).
Drift needs each student's features, which the score rows do not carry: the run records
that it was not computed here.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from risk.errors import RiskError
from risk.models.bundle import ModelBundle
from risk.scoring.alerts import build_alerts
from risk.scoring.batch import SCORE_FILE_COLUMNS, bucket_context, run_settings
from risk.scoring.settings import ScoringSettings
from risk.scoring.summaries import area_summaries
from risk.store import (
    Store,
    done_buckets,
    find_unfinished_run,
    finish_run,
    start_run,
    write_alerts,
    write_bucket_scores,
    write_summaries,
)

__all__ = ["load_scores", "score_buckets"]

NO_DRIFT = {"warning_features": [], "score_psi": None, "reference": "not computed: scored with --engine spark"}


def score_buckets(scores: Path) -> dict[int, list[Path]]:
    """The Parquet files of each ``bucket=N`` folder under ``scores``."""
    if not scores.is_dir():
        raise RiskError(f"{scores} is not a folder of scores: write one with `risk score --engine spark`")
    found = {int(p.name.split("=", 1)[1]): sorted(p.glob("*.parquet")) for p in scores.glob("bucket=*") if p.is_dir()}
    if not found:
        raise RiskError(f"{scores} has no bucket=N folders: was it written by `risk score --engine spark`?")
    return dict(sorted(found.items()))


def load_scores(store: Store, scores: Path, *, bundle: ModelBundle, model_name: str,
                scoring: ScoringSettings) -> dict[str, object]:
    """Put the score rows under ``scores`` into ``store``; returns run_id, students, alerts, areas."""
    buckets = score_buckets(scores)
    first = pq.read_table(next(f for files in buckets.values() for f in files),
                          columns=["as_of", "term", "model_version"]).slice(0, 1).to_pylist()
    if not first:
        raise RiskError(f"{scores} holds no score rows")
    as_of, term, version = first[0]["as_of"], first[0]["term"], first[0]["model_version"]
    as_of = as_of if isinstance(as_of, dt.date) else dt.date.fromisoformat(str(as_of)[:10])
    run_id = find_unfinished_run(store, as_of=as_of, model_version=version) or start_run(
        store, as_of=as_of, term=term, model_name=model_name, model_version=version,
        settings=run_settings(bundle, scoring, engine="spark"))
    done = done_buckets(store, run_id)
    with tempfile.TemporaryDirectory(prefix="risk-load-") as folder:
        files, students = [], 0
        for bucket, paths in buckets.items():
            frame = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True) if paths else pd.DataFrame()
            frame = frame.reindex(columns=[*SCORE_FILE_COLUMNS, "context_codes", "context_en", "context_th"])
            frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
            frame["raised_by"] = frame["raised_by"].astype(object).where(frame["raised_by"].notna(), None)
            part = Path(folder) / f"bucket={bucket}.parquet"
            table = pa.Table.from_pandas(frame[list(SCORE_FILE_COLUMNS)], preserve_index=False)
            pq.write_table(table.set_column(table.schema.get_field_index("raised_by"), "raised_by",
                                            table.column("raised_by").cast(pa.string())), part)
            files.append(part)
            students += len(frame)
            if bucket not in done:
                write_bucket_scores(store, run_id, bucket, frame[list(SCORE_FILE_COLUMNS)], bucket_context(frame))
        alerts = build_alerts(store, files, as_of=as_of, bundle=bundle, scoring=scoring)
        outcomes = write_alerts(store, run_id, alerts)
        areas = area_summaries(files)
        write_summaries(store, run_id, areas)
    finish_run(store, run_id, students=students, drift=NO_DRIFT)
    return {"run_id": run_id, "students": students, "as_of": as_of, "model_version": version,
            "alerts": alerts["kind"].value_counts().to_dict() if len(alerts) else {}, "alert_outcomes": outcomes,
            "areas": len(areas)}
