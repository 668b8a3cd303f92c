"""``risk score``: every enrolled student at ``as_of``, bucket by bucket, explained, stored, resumable.

Per bucket of students (the validated folders are bucketed by pseudonym):
features → calibrated probability → class → reasons, written as one Parquet part
(atomic rename) and then to the store in one transaction that also marks the
bucket done. Killed part way, the same command finds the unfinished run of this
model and date and scores only the buckets the store does not have, so every
student ends up scored exactly once. Drift counts are kept per bucket beside the
parts and added up at the end; then alerts and area summaries are written.

Two things are kept beside each score because a teacher reads them differently from
the probability (issue 28). ``raised_by`` names the class policy rule (``exam_line``)
that set a class above the one the model's probability gives (None: the model's class
stands): a teacher must see a rule-flagged child apart from a model-flagged one. School
context (grade, transition year, the school's and district's past rates) is about the
school, not the child, so it is never among a child's reasons: each bucket's context is
counted per school and code, in the transaction of the bucket's scores, so a bucket
written again on resume counts once (:mod:`risk.store.context`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import resource
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel

from risk.config import Settings
from risk.errors import RiskError
from risk.features.aggregates import PreviousTermDays
from risk.features.base import AsOf
from risk.features.batch import buckets_of, group_features, last_term_days
from risk.features.build import FeaturePlan, feature_plan
from risk.features.context_rates import open_validated
from risk.logs import get_logger
from risk.models.bundle import ModelBundle
from risk.models.profile import TrainingProfile
from risk.progress import Progress
from risk.scoring.alerts import build_alerts
from risk.scoring.drift import DriftAccumulator, accumulator_state, add_state
from risk.scoring.drift_reference import DriftReference, drift_reference
from risk.scoring.explained import explained_scores
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

__all__ = ["ScoreReport", "bucket_context", "run_settings", "score_students"]

log = get_logger(__name__)

SCORE_FILE_COLUMNS = ("student_key", "as_of", "term", "school_id", "district_code", "province_code", "region",
                      "grade_level", "classroom", "sex", "id_hint", "probability", "risk_class", "raised_by", "reasons_en",
                      "reasons_th", "reason_codes", "model_version")


class ScoreReport(BaseModel):
    run_id: str
    as_of: dt.date
    term: str
    model_version: str
    students: int
    classes: dict[str, int]
    buckets: int
    buckets_resumed: int
    alerts: dict[str, int]
    drifted: list[str]
    score_psi: float
    seconds: float
    peak_rss_mb: float
    output: str
    step_seconds: dict[str, float] = {}
    flagged: int = 0
    areas: int = 0
    # What storing the alerts did: new, updated, kept_acknowledged, reraised, withdrawn (risk.store.alerts).
    alert_outcomes: dict[str, int] = {}
    # Flagged students whose class a policy rule set above the model's, by rule id (e.g. {"exam_line": 437}).
    raised_by_rule: dict[str, int] = {}

    def summary_lines(self) -> list[str]:
        mix = ", ".join(f"{k} {v:,}" for k, v in self.classes.items())
        raised = sum(self.raised_by_rule.values())
        rules = ", ".join(f"{k} {v:,}" for k, v in sorted(self.raised_by_rule.items()))
        lines = [f"scored {self.students:,} students at {self.as_of} (term {self.term}) with model version "
                 f"{self.model_version}: {mix}",
                 f"of {self.flagged:,} flagged, {raised:,} raised by a rule rather than the model"
                 + (f" ({rules})" if rules else ""),
                 f"run {self.run_id}; {self.buckets} buckets ({self.buckets_resumed} already done); "
                 f"{self.seconds:.1f} s; peak RSS {self.peak_rss_mb:,.0f} MB",
                 "alerts: " + (", ".join(f"{k} {v:,}" for k, v in self.alerts.items()) or "none")
                 + ("; stored: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in self.alert_outcomes.items())
                    if self.alert_outcomes else ""),
                 f"drift: score PSI {self.score_psi:.3f}; "
                 + (f"drift warning on: {', '.join(self.drifted)}" if self.drifted else "no drift warning on a feature"),
                 f"written to {self.output} and the store"]
        return lines


def score_students(validated: Path, as_of: dt.date, *, bundle: ModelBundle, model_name: str, model_version: str,
                   store: Store, out: Path, settings: Settings, scoring: ScoringSettings,
                   progress: bool = True) -> ScoreReport:
    """Score, explain and store every student enrolled at ``as_of``; resumes an unfinished run."""
    started = time.perf_counter()
    point = AsOf(as_of)
    buckets = buckets_of(validated)
    run_id = find_unfinished_run(store, as_of=as_of, model_version=model_version) or start_run(
        store, as_of=as_of, term=point.term, model_name=model_name, model_version=model_version,
        settings=run_settings(bundle, scoring, drift=scoring.drift.model_dump()))
    parts = out.with_name(out.name + ".parts") / run_id
    parts.mkdir(parents=True, exist_ok=True)
    done = done_buckets(store, run_id)
    resumed = len(done & set(buckets))
    con = open_validated(validated, point, settings)
    reference = drift_reference(validated, con, point, bundle, settings, scoring.drift)
    # Planned once for the run; last term's attendance from its stored days when the term is over.
    plan = feature_plan(point, bundle.catalog)
    previous = last_term_days(con, validated, point, plan)
    read = functools.partial(_read_bucket, con, validated, point=point, bundle=bundle, plan=plan, previous=previous)
    todo = [b for b in buckets if not (b in done and (parts / f"bucket={b}.parquet").exists())]
    # Three stages, each on its own thread: the next bucket's features are read (DuckDB, its own
    # threads) while this one is scored and explained (the model and numpy) and the one before is
    # written (Parquet, then the store). Each holds Python's lock only between native calls, so on
    # 2 cores the stages fill each other's gaps. The writer takes buckets in order, one at a time,
    # so a bucket is in the store only after its part is on disk, as resuming expects.
    with Progress(enabled=progress) as bar, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="read") as reader, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="write") as writer:
        task = bar.add(f"scoring at {as_of}", total=len(buckets))
        bar.advance(task, resumed)

        def write(bucket: int, scored: _Bucket) -> None:
            _write_part(parts, bucket, scored.frame, scored.drift)
            write_bucket_scores(store, run_id, bucket, scored.frame, scored.context)
            bar.advance(task)

        upcoming = reader.submit(read, todo[0]) if todo else None
        written = None
        try:
            for i, bucket in enumerate(todo):
                features, hints = upcoming.result()
                upcoming = reader.submit(read, todo[i + 1]) if i + 1 < len(todo) else None
                scored = _score_bucket(features, hints, bundle, reference.profile, model_version, scoring)
                if written is not None:
                    written.result()  # at most one bucket waits to be written; its error stops the run
                written = writer.submit(write, bucket, scored)
            if written is not None:
                written.result()
        finally:
            reader.shutdown(cancel_futures=True)
            writer.shutdown(wait=True)
    files = [parts / f"bucket={b}.parquet" for b in buckets]
    drift = _drift(reference, parts, buckets, scoring)
    steps = {"score": time.perf_counter() - started}
    alerts = build_alerts(store, files, as_of=as_of, bundle=bundle, scoring=scoring)
    outcomes = write_alerts(store, run_id, alerts)
    steps["alerts"] = time.perf_counter() - started - steps["score"]
    areas = area_summaries(files)
    write_summaries(store, run_id, areas)
    students, classes, raised = _assemble(files, out)
    steps["summaries"] = time.perf_counter() - started - steps["score"] - steps["alerts"]
    if students == 0:
        raise RiskError(f"no student in {validated} is enrolled at {as_of}: check --as-of against the terms validated")
    finish_run(store, run_id, students=students, drift=drift)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return ScoreReport(run_id=run_id, as_of=as_of, term=point.term, model_version=model_version, students=students,
                       classes=classes, buckets=len(buckets), buckets_resumed=resumed,
                       alerts=alerts["kind"].value_counts().to_dict() if len(alerts) else {}, alert_outcomes=outcomes,
                       drifted=drift["warning_features"], score_psi=drift["score_psi"],
                       seconds=round(time.perf_counter() - started, 2), peak_rss_mb=round(peak, 1), output=str(out),
                       step_seconds={k: round(v, 2) for k, v in steps.items()},
                       flagged=classes["at_risk"] + classes["problem"], areas=len(areas), raised_by_rule=raised)


def _read_bucket(con: duckdb.DuckDBPyConnection, validated: Path, bucket: int, *, point: AsOf, bundle: ModelBundle,
                 plan: FeaturePlan, previous: PreviousTermDays | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One bucket's feature rows at ``point`` and its students' display hints and areas."""
    features = group_features(con, validated, (bucket,), point, bundle.catalog, plan=plan, previous=previous)
    hints = con.execute(
        """SELECT e.student_key, e.grade_level, e.classroom, e.sex, e.id_hint,
                  s.district_code, s.province_code, s.region
           FROM enrollments e LEFT JOIN schools s USING (school_id) WHERE e.term = ?""", [point.term]).df()
    return features, hints


@dataclass(frozen=True)
class _Bucket:
    """One scored bucket: score rows (:data:`SCORE_FILE_COLUMNS`), school context rows, drift counts."""

    frame: pd.DataFrame
    context: pd.DataFrame
    drift: dict[str, object]


def _score_bucket(features: pd.DataFrame, hints: pd.DataFrame, bundle: ModelBundle, profile: TrainingProfile,
                  model_version: str, scoring: ScoringSettings) -> _Bucket:
    """One bucket's score rows, its school context (:func:`bucket_context`) and its drift counts."""
    X = features[bundle.names].to_numpy(np.float64)
    if len(X) == 0:  # a bucket with no student enrolled at as_of
        return _Bucket(pd.DataFrame(columns=list(SCORE_FILE_COLUMNS)), bucket_context(pd.DataFrame()),
                       accumulator_state(DriftAccumulator(profile)))
    scored = explained_scores(bundle, X, scoring.reasons)
    if "raised_by" not in scored.columns:  # a scorer without rule marks: the model's class stands everywhere
        scored["raised_by"] = None
    frame = pd.concat([features[["student_key", "as_of", "term", "school_id"]], scored], axis=1)
    frame = frame.merge(hints.drop_duplicates("student_key"), on="student_key", how="left", validate="one_to_one")
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    frame["model_version"] = model_version
    frame["raised_by"] = frame["raised_by"].astype(object).where(frame["raised_by"].notna(), None)
    state = accumulator_state(DriftAccumulator(profile).add(X, scored["probability"].to_numpy()))
    return _Bucket(frame[list(SCORE_FILE_COLUMNS)], bucket_context(frame), state)


def run_settings(bundle: ModelBundle, scoring: ScoringSettings, **extra: object) -> dict[str, object]:
    """What a scoring run stores of its model and settings (``extra``: what one path adds, after the reasons)."""
    return {"reasons": scoring.reasons.model_dump(), **extra,
            "evaluation": bundle.meta.get("evaluation", {}), "trained": bundle.meta.get("split", {}),
            "catalog_version": bundle.meta.get("catalog_version"),
            # The term report explains the classes from it even when MLflow is out of reach.
            "policy": json.loads(bundle.policy.to_json())}
def bucket_context(frame: pd.DataFrame) -> pd.DataFrame:
    """A bucket's school context: one row per (school_id, code) with ``students``, ``en`` and ``th``.

    ``frame`` has a row per student with ``school_id`` and ``context_codes``,
    ``context_en``, ``context_th`` (JSON lists, aligned; ``[]`` for a student not
    explained). ``students`` counts the bucket's students carrying the code (each
    once); the texts are the first in text order, as :func:`risk.store.context.school_context`
    takes them across buckets. No context columns (an older scorer): no rows.
    """
    columns = ["school_id", "code", "students", "en", "th"]
    if frame.empty or "context_codes" not in frame.columns:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "students" else object) for c in columns})
    given = frame[["student_key", "school_id", "context_codes", "context_en", "context_th"]]
    given = given[given["context_codes"].notna() & (given["context_codes"] != "[]")]
    rows = [(key, school, code, en, th)
            for key, school, codes, texts_en, texts_th in given.itertuples(index=False)
            for code, en, th in zip(json.loads(codes), json.loads(texts_en), json.loads(texts_th), strict=True)]
    long = pd.DataFrame(rows, columns=["student_key", "school_id", "code", "en", "th"])
    long = long.drop_duplicates(["student_key", "school_id", "code"])
    out = (long.groupby(["school_id", "code"], sort=True)
           .agg(students=("student_key", "size"), en=("en", "min"), th=("th", "min")).reset_index())
    return out.astype({"students": "int64"})[columns]


def _write_part(parts: Path, bucket: int, frame: pd.DataFrame, state: dict[str, object]) -> None:
    """The bucket's Parquet part and drift counts, each written whole or not at all."""
    path = parts / f"bucket={bucket}.parquet"
    temporary = path.with_suffix(".partial")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if pa.types.is_null(table.schema.field("raised_by").type):  # no rule fired in this bucket: still a text column
        table = table.set_column(table.schema.get_field_index("raised_by"), "raised_by",
                                 table.column("raised_by").cast(pa.string()))
    pq.write_table(table, temporary, compression="zstd")
    drift = parts / f"bucket={bucket}.drift.json"
    drift.with_suffix(".partial").write_text(json.dumps(state), encoding="utf-8")
    drift.with_suffix(".partial").replace(drift)
    temporary.replace(path)


def _drift(reference: DriftReference, parts: Path, buckets: list[int], scoring: ScoringSettings) -> dict[str, object]:
    """The run's drift figures from each bucket's counts, with what they were compared with."""
    total = DriftAccumulator(reference.profile)
    for bucket in buckets:
        add_state(total, json.loads((parts / f"bucket={bucket}.drift.json").read_text(encoding="utf-8")))
    report = total.report(threshold=scoring.drift.threshold, warn=scoring.drift.warn, limits=reference.limits)
    if report.warning:  # the report's banner; features past their thresholds but not ringing are in the record
        log.warning("drift warning: check before acting on the scores", features=",".join(report.warning_features),
                    score_psi=round(report.score_psi, 3), reference=reference.label)
    return {**report.model_dump(mode="json"), "reference": reference.label}


def _assemble(files: list[Path], out: Path) -> tuple[int, dict[str, int], dict[str, int]]:
    """The parts as one Parquet file at ``out`` (written whole, then renamed); students, class counts, and
    the students a rule raised, by rule id."""
    temporary = out.with_name(out.name + ".partial")
    writer: pq.ParquetWriter | None = None
    classes: dict[str, int] = {"normal": 0, "at_risk": 0, "problem": 0}
    raised: dict[str, int] = {}
    students = 0
    for path in files:
        table = pq.read_table(path)
        if writer is None:
            writer = pq.ParquetWriter(temporary, table.schema, compression="zstd")
        writer.write_table(table.cast(writer.schema))
        students += table.num_rows
        for pair in pc.value_counts(table.column("risk_class")).to_pylist():
            classes[pair["values"]] += pair["counts"]
        for pair in pc.value_counts(pc.drop_null(table.column("raised_by"))).to_pylist():
            raised[pair["values"]] = raised.get(pair["values"], 0) + pair["counts"]
    if writer is None:
        raise RiskError("no bucket was scored: the validated folder holds no students")
    writer.close()
    if students == 0:
        temporary.unlink()
        return 0, classes, raised
    temporary.replace(out)
    return students, classes, raised
