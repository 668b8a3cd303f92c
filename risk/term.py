"""``risk term``: one school term's whole job, in order, resumable, one at a time per data folder.

validate → freshness → features → train → promote → score → alerts → summaries → report.

The freshness step checks that the validated store covers ``as_of`` (else the run
stops before training) and records each domain's freshness there; a stale or
missing domain is a warning in the step table, the log and the report, never a
failure (the loss gate of validation is what fails a run).

Each step is skipped when what it would make already exists for the same inputs:
an export already validated, feature points cached under the inputs hash, a model
registered with the same training key (data, catalog, settings), a finished scoring
run of the same model and date. So a run killed at any step, run again, goes on
from the step that did not finish, and a run that finished, run again, changes
nothing. A lock file keeps two runs off one data folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from risk.config import Settings
from risk.data.profile import SourceProfile
from risk.errors import RiskError
from risk.features.catalog import Catalog
from risk.features.freshness import DomainFreshness
from risk.locks import folder_lock
from risk.logs import get_logger
from risk.models.settings import TrainSettings
from risk.scoring.settings import ScoringSettings

__all__ = ["StepRecord", "TermJob", "TermLockedError", "run_term"]

log = get_logger(__name__)


class TermLockedError(RiskError):
    """Another ``risk term`` holds the data folder."""


@dataclass
class StepRecord:
    """One row of the step table."""

    step: str
    status: str = "ran"  # ran | reused; the freshness step: ok | warning
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    rows_in: str = ""
    rows_out: str = ""
    # CPU seconds of this process and the children it waited for: on a shared host, the figure load bends
    # least. The score step's holds its alerts and summaries (one call does all three; they are < 1 s).
    cpu_seconds: float = 0.0


@dataclass
class TermJob:
    """What ``risk term`` was asked to do and where everything lives."""

    source: Path
    as_of: dt.date
    data_dir: Path
    id_key: bytes
    settings: Settings
    train_settings: TrainSettings
    scoring: ScoringSettings
    catalog: Catalog
    catalog_yaml: bytes
    store_url: str | None = None
    truth: Path | None = None
    profile: SourceProfile | None = None  # how the export is written (risk validate --profile)
    accept_loss: frozenset[str] = frozenset()  # tables taken although they lost rows (--accept-loss)
    progress: bool = True
    steps: list[StepRecord] = field(default_factory=list)
    freshness: list[DomainFreshness] = field(default_factory=list)  # each domain at as_of, from the freshness step

    @property
    def validated(self) -> Path:
        return self.data_dir / "validated"


class _PeakMeter:
    """Peak RSS of this process and its children while a step runs (sampled every 0.2 s)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                rss = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
            except psutil.Error:
                rss = 0
            self.peak = max(self.peak, rss)
            self._stop.wait(0.2)

    def __enter__(self) -> _PeakMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _cpu_seconds() -> float:
    """CPU seconds (user and system) of this process and of its children that have been waited for."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


@contextmanager
def _step(job: TermJob, name: str) -> Iterator[StepRecord]:
    record = StepRecord(name)
    started, cpu = time.perf_counter(), _cpu_seconds()
    with _PeakMeter() as meter:
        yield record
    record.seconds = round(time.perf_counter() - started, 2)
    record.cpu_seconds = round(_cpu_seconds() - cpu, 2)
    record.peak_rss_mb = round(meter.peak / 2**20, 1)
    job.steps.append(record)
    log.info("term step done", step=name, status=record.status, seconds=record.seconds)


def _locked(data_dir: Path) -> contextlib.AbstractContextManager[None]:
    """Hold ``data_dir/.risk-term.lock``; a second run gets a clear error instead of a corrupt store."""
    return folder_lock(data_dir, ".risk-term.lock", lambda holder: TermLockedError(
        f"{data_dir} is in use by another `risk term` ({holder}); wait for it to finish"))


def run_term(job: TermJob) -> list[StepRecord]:
    """Run the term's job; returns the step table (also on ``job.steps``)."""
    from risk.models.tracking import configure_tracking

    with _locked(job.data_dir):
        configure_tracking(job.data_dir)
        _validate(job)
        _freshness(job)
        _features(job)
        _train(job)
        _promote(job)
        _score(job)
        _report(job)
    # The step table kept beside the report: what ran, how long, how much memory (benchmarks read it too).
    (job.data_dir / f"term-{job.as_of}.json").write_text(
        json.dumps([dataclasses.asdict(s) for s in job.steps], indent=2), encoding="utf-8")
    return job.steps


def _validate(job: TermJob) -> None:
    from risk.data.validate import validate_sources

    with _step(job, "validate") as record:
        data = job.settings.data
        report = validate_sources(job.source, job.validated, key=job.id_key, chunk_rows=data.chunk_rows,
                                  buckets=data.student_buckets, memory_limit=data.duckdb_memory_limit,
                                  workers=data.workers, progress=job.progress, profile=job.profile,
                                  accept_loss=job.accept_loss, loss_warn_share=data.loss_warn_share,
                                  loss_fail_share=data.loss_fail_share)
        rows_in = sum(t.rows_in for t in report.tables)
        used = sum(t.used for t in report.tables)
        record.rows_in, record.rows_out = f"{rows_in:,} rows", f"{used:,} used"
        if getattr(report, "skipped", False):
            record.status = "reused"


def _freshness(job: TermJob) -> None:
    """Refuse an as_of the store does not cover; record each domain's freshness there (warnings only)."""
    from risk.features.freshness import check_as_of_in_data, domain_freshness, log_freshness

    with _step(job, "freshness") as record:
        check_as_of_in_data(job.validated, job.as_of)
        job.freshness = domain_freshness(job.validated, job.as_of, job.settings)
        log_freshness(job.freshness, "term")
        late = [f"{f.name_en} {f.status}" for f in job.freshness if f.status != "fresh"]
        record.status = "warning" if late else "ok"
        record.rows_in = f"{len(job.freshness)} domains at {job.as_of}"
        record.rows_out = ", ".join(late) or "all fresh"


def _features(job: TermJob) -> None:
    """Every feature point training needs, built once and cached under the inputs hash.

    The points not cached yet are built together (:func:`~risk.features.batch.build_feature_matrices`:
    a small store's student tables are read once for all of them), each where the cache keeps it.
    """
    from risk.features.batch import build_feature_matrices
    from risk.features.cache import DataFiles, feature_cache_path
    from risk.models.samples import outcome_connection
    from risk.models.term_split import known_outcome_terms, sample_points

    with _step(job, "features") as record:
        con = outcome_connection(job.validated, job.settings)
        samples = job.train_settings.samples
        lead = job.train_settings.evaluation.lead_time_week
        points = [p for term in known_outcome_terms(con)
                  for p in sample_points(con, term, sorted({*samples.weeks, lead}), samples.last_school_day)]
        con.close()
        files = DataFiles.scan(job.validated)
        paths = {feature_cache_path(job.validated, p.as_of, settings=job.settings, catalog=job.catalog,
                                    inputs=files): p.as_of for p in points}
        missing = [(as_of, path) for path, as_of in paths.items() if not path.exists()]
        build_feature_matrices(job.validated, missing, settings=job.settings, catalog=job.catalog,
                               progress=job.progress)
        reused = len(paths) - len(missing)
        record.rows_in = f"{len(paths)} points"
        record.rows_out = f"{len(missing)} built, {reused} reused"
        record.status = "reused" if paths and not missing else "ran"


def _train(job: TermJob) -> None:
    from risk.features.cache import inputs_hash
    from risk.models.tracking import champion_bundle, log_training, trained_version, training_key
    from risk.models.train import train_model
    from risk.models.treated import treatment_fingerprint
    from risk.store import default_store_url, open_store

    ts = job.train_settings
    with _step(job, "train") as record:
        dump = ts.model_dump(mode="json")
        # The store's alerts and actions mark the training rows the help may have changed.
        store = open_store(job.store_url or default_store_url(job.data_dir))
        try:
            # Where the help changes the training rows, the store's help is an input of the model too.
            if ts.samples.treated_outcomes != "keep":
                dump = {**dump, "help": treatment_fingerprint(store)}
            key = training_key(inputs_hash(job.validated, job.settings), job.catalog.version, dump)
            version = trained_version(ts.mlflow.model_name, ts.mlflow.experiment, key)
            if version is not None:
                record.status, record.rows_out = "reused", f"model version {version}"
                return
            result = train_model(job.validated, settings=job.settings, train_settings=ts, catalog=job.catalog,
                                 catalog_yaml=job.catalog_yaml, truth=job.truth,
                                 id_key=job.id_key if job.truth else None,
                                 champion=champion_bundle(ts.mlflow.model_name), progress=job.progress, store=store)
        finally:
            store.close()
        registered = log_training(result, data_dir=job.data_dir, experiment=ts.mlflow.experiment,
                                  model_name=ts.mlflow.model_name, settings_dump=dump)
        record.rows_in = f"{result.rows['train']['rows']:,} training rows"
        record.rows_out = (f"model version {registered['version']} "
                           f"(AUC {result.evaluation.metric('model', 'roc_auc'):.3f})")


def _promote(job: TermJob) -> None:
    from risk.models.promotion import promote

    with _step(job, "promote") as record:
        decision = promote(job.train_settings.mlflow.model_name, job.train_settings.promotion)
        record.rows_in = f"challenger {decision.challenger}"
        champion = decision.challenger if decision.promoted else decision.champion_before
        record.rows_out = f"champion {champion}" + ("" if decision.promoted else " (kept)")
        if not decision.promoted and decision.champion_before == decision.challenger:
            record.status = "reused"
        for reason in decision.reasons:
            log.info("promotion", reason=reason)


def _score(job: TermJob) -> None:
    from risk.models.tracking import resolve_model
    from risk.scoring.batch import score_students
    from risk.store import default_store_url, finished_run, open_store, run_record

    store = open_store(job.store_url or default_store_url(job.data_dir))
    name = job.train_settings.mlflow.model_name
    version, bundle = resolve_model(name, "champion")
    done = finished_run(store, as_of=job.as_of, model_version=version)
    if done is not None:
        run = run_record(store, done)
        for step in ("score", "alerts", "summaries"):
            job.steps.append(StepRecord(step, "reused", rows_out=f"run {done[:8]}, {run['students']:,} students"))
        return
    cpu = _cpu_seconds()
    with _PeakMeter() as meter:
        report = score_students(job.validated, job.as_of, bundle=bundle, model_name=name, model_version=version,
                                store=store, out=job.data_dir / "scores.parquet", settings=job.settings,
                                scoring=job.scoring, progress=job.progress)
    peak = round(meter.peak / 2**20, 1)
    seconds = report.step_seconds
    job.steps += [
        StepRecord("score", "ran", seconds.get("score", 0.0), peak, f"model version {version}",
                   f"{report.students:,} students, {report.flagged:,} flagged"
                   + (f" ({report.buckets_resumed} buckets resumed)" if report.buckets_resumed else ""),
                   cpu_seconds=round(_cpu_seconds() - cpu, 2)),
        StepRecord("alerts", "ran", seconds.get("alerts", 0.0), peak, f"{report.students:,} scores",
                   f"{sum(report.alerts.values()):,} alerts"),
        StepRecord("summaries", "ran", seconds.get("summaries", 0.0), peak, f"{report.students:,} scores",
                   f"{report.areas:,} areas"),
    ]


def _report(job: TermJob) -> None:
    from risk.scoring.term_report import term_report
    from risk.store import default_store_url, open_store

    with _step(job, "report") as record:
        path = term_report(open_store(job.store_url or default_store_url(job.data_dir)),
                           job.data_dir / "report.html", validated=job.validated, settings=job.settings,
                           scoring=job.scoring)
        record.rows_out = str(path)
