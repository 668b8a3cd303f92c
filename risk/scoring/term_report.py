"""``risk report``: the term report of a finished scoring run, from the store (and MLflow when at hand).

The store gives the run (its date, drift check and the model's evaluation and class
policy kept in its settings), the area summaries, the alerts, and the scores from
which the class mix by grade and the rule-raised counts per area are counted. When
the run's MLflow store can be found (``MLFLOW_TRACKING_URI``, a tracking URI this
process set, or ``mlflow.db`` beside the validated folder, as ``risk score`` uses it)
the report also links the model card and reads the baselines' metrics from the
model's training run; without it the report says where the card is.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from risk.config import Settings
from risk.errors import RiskError
from risk.features.freshness import DomainFreshness, domain_freshness
from risk.scoring.report import ReportInputs, write_report
from risk.scoring.report_impact import impact_section
from risk.scoring.settings import ReportSettings, ScoringSettings
from risk.store import (
    Store,
    alert_counts,
    latest_finished_run,
    latest_scores,
    previous_finished_run,
    run_record,
    summaries,
)

__all__ = ["model_run_facts", "term_report"]

LEVELS = ("nation", "region", "province", "district", "school")
# Score column naming each level's area (the nation is one area, "TH"), as risk.scoring.summaries counts them.
AREA_COLUMNS = {"region": "region", "province": "province_code", "district": "district_code", "school": "school_id"}
CLASSES = ("normal", "at_risk", "problem")


def term_report(store: Store, out: Path, run_id: str | None = None, *, validated: Path | None = None,
                settings: Settings | None = None, scoring: ScoringSettings | None = None) -> Path:
    """Write the report of ``run_id`` (default: the newest finished run) to ``out``; returns the path.

    With ``validated`` (the folder the run scored), the report shows each domain's freshness at the
    run's as_of, checked now against ``settings`` (rows dated after as_of never count, so a later
    validation changes it only by rows that arrived late). ``scoring`` gives the smallest area the
    lists rank (``report.min_area_students``; default that of :class:`ReportSettings`).
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
             "trained window": kept.get("trained", {}), "catalog": kept.get("catalog_version")}
    found = model_run_facts(run["model_name"], run["model_version"], validated)
    evaluation = {**kept.get("evaluation", {}), **found.get("evaluation", {})}
    by_grade, raised = _counts_from_scores(store, run_id)
    inputs = ReportInputs(
        as_of=run["as_of"], term=run["term"], generated_at=dt.datetime.now(dt.UTC), model=model,
        summaries=_all_levels(store, run_id),
        previous_summaries=_all_levels(store, previous) if previous else None,
        by_grade=by_grade, raised=raised, drift=run["drift"], alerts=alert_counts(store, run_id),
        alerts_by_rule=alert_counts(store, run_id, raised_only=True),
        freshness=_freshness(validated, run["as_of"], settings),
        evaluation=evaluation or None, policy=kept.get("policy") or found.get("policy"),
        model_card=found.get("card"), impact=impact_section(store, run["term"], _action_names(scoring)),
        min_area_students=(scoring.report if scoring is not None else ReportSettings()).min_area_students)
    return write_report(inputs, out)


def _freshness(validated: Path | None, as_of: dt.date, settings: Settings | None) -> list[DomainFreshness] | None:
    """Each domain's freshness at ``as_of``; None without a validated folder at hand (a store read from afar)."""
    if validated is None or not validated.is_dir():
        return None
    return domain_freshness(validated, as_of, settings or Settings())


def _action_names(scoring: ScoringSettings | None) -> dict[str, tuple[str, str]]:
    """Action code -> (th, en) words from the scoring settings (none given: the codes stand for themselves)."""
    return {} if scoring is None else {code: (t.th, t.en) for code, t in scoring.action_codes.items()}


def _all_levels(store: Store, run_id: str) -> pd.DataFrame:
    return pd.concat([summaries(store, run_id, level) for level in LEVELS], ignore_index=True)


def _counts_from_scores(store: Store, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The class mix by grade, and per area the at-risk and problem students a rule raised (one pass)."""
    columns = ["grade_level", "risk_class", "raised_by", *AREA_COLUMNS.values()]
    grades: pd.Series | None = None
    raised: dict[str, pd.DataFrame] = {}
    for chunk in latest_scores(store, run_id, columns=columns, chunk_rows=500_000):
        part = chunk.groupby(["grade_level", "risk_class"]).size()
        grades = part if grades is None else grades.add(part, fill_value=0)
        by_rule = chunk.loc[chunk["raised_by"].notna()].assign(area_TH="TH")
        for level, column in {"nation": "area_TH", **AREA_COLUMNS}.items():
            counts = by_rule.groupby([by_rule[column].astype(str), "risk_class"]).size().unstack(fill_value=0)
            raised[level] = counts if level not in raised else raised[level].add(counts, fill_value=0)
    if grades is None:
        by_grade = pd.DataFrame(columns=["grade_level", *CLASSES])
    else:
        by_grade = grades.unstack(fill_value=0).reindex(columns=list(CLASSES), fill_value=0).astype(int).reset_index()
    frames = [counts.reindex(columns=["at_risk", "problem"], fill_value=0).astype(int)
              .rename_axis("area_code").reset_index().assign(level=level) for level, counts in raised.items()]
    if not frames:
        return by_grade, pd.DataFrame(columns=["level", "area_code", "at_risk", "problem"])
    return by_grade, pd.concat(frames, ignore_index=True)[["level", "area_code", "at_risk", "problem"]]


def _tracking_uri(validated: Path | None) -> str | None:
    """The MLflow store the run's model came from, if it can be found without guessing (never creates one)."""
    import mlflow

    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if mlflow.tracking.is_tracking_uri_set():
        return mlflow.get_tracking_uri()
    # `risk score --data DIR` keeps its MLflow store in DIR's parent (risk.models.tracking.configure_tracking).
    beside = validated.resolve().parent / "mlflow.db" if validated is not None else None
    return f"sqlite:///{beside}" if beside is not None and beside.is_file() else None


def model_run_facts(model_name: str, version: str, validated: Path | None = None) -> dict[str, Any]:
    """What MLflow holds about a model version: ``card`` (its model card's URI), ``evaluation`` (held-out
    metrics of every model and baseline, ``"logistic.roc_auc"``) and ``policy`` (the class policy JSON).

    Empty when no MLflow store is at hand or the version is not in it: the report then says where the card is.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = _tracking_uri(validated)
    if uri is None:
        return {}
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        found = client.get_model_version(model_name, version)
        run = client.get_run(found.run_id)
    except (MlflowException, OSError):
        return {}
    facts: dict[str, Any] = {
        "card": f"{run.info.artifact_uri.rstrip('/')}/evaluation/model_card.html",
        "evaluation": {k.removeprefix("test."): v for k, v in run.data.metrics.items() if k.startswith("test.")},
    }
    # The test split's rows and dropouts: the AUC tie tolerance the card uses (report_model.tolerance) needs them.
    facts["evaluation"].update({f"model.{k}": float(run.data.params[f"rows.test.{k}"]) for k in ("rows", "positives")
                                if f"rows.test.{k}" in run.data.params})
    policy = _logged_policy(client, model_name, version, uri)
    if policy is not None:
        facts["policy"] = policy
    return facts


def _logged_policy(client: Any, model_name: str, version: str, uri: str) -> dict[str, Any] | None:
    """The class policy file of a registered model version (a few kB; the booster is not downloaded).

    The version's artifact folder is asked of ``client`` first: a ``models:/`` URI handed to the
    download would be resolved against the default registry, which may not be this one.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    # MLflow's download bars would drown the one line `risk report` prints.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        folder = client.get_model_version_download_uri(model_name, version).rstrip("/")
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=f"{folder}/artifacts/policy.json",
                                                       dst_path=tmp, tracking_uri=uri)
            return json.loads(Path(local).read_text(encoding="utf-8"))
    except (MlflowException, OSError, ValueError):
        return None
