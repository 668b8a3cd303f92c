"""A registered model's record, read back from MLflow for review (``notebooks/model_review.ipynb``).

Nothing here computes a metric: :func:`model_record` reads the registry and the
training run (tags and params written by :mod:`risk.models.tracking`), and
:func:`review_tables` downloads the run's ``evaluation/`` artifacts and reads its
tables. Point MLflow at the store first with
:func:`risk.models.tracking.configure_tracking`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from risk.models.tracking import TrackingError

__all__ = ["ModelRecord", "ReviewTables", "model_record", "review_tables"]

# Tables and images that ``log_training`` writes under the run's ``evaluation/`` folder.
TABLES = ("evaluation", "fairness", "lead_time", "class_counts")
IMAGES = ("calibration", "lead_time", "shap_summary")
# Columns of the evaluation table an analyst reads first; the CSV holds more.
OVERALL_COLUMNS = ["model", "rows", "positives", "base_rate", "roc_auc", "pr_auc", "precision_top10",
                   "recall_top10", "recall_top5", "recall_top20", "brier", "ece", "auc_ratio_to_oracle"]


@dataclass
class ModelRecord:
    """Where a registered model version came from: its run, data window and versions."""

    name: str
    alias: str
    version: str
    run_id: str
    created: str
    data_window: dict[str, list[str]]
    code_version: str
    inputs_hash: str
    catalog_version: str
    evaluated_champion_version: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """The record as a two-column table (``item``, ``value``), one row per fact."""
        window = {f"{role} terms": ", ".join(terms) for role, terms in self.data_window.items()}
        facts = {"model": f"{self.name} version {self.version} (alias {self.alias})", "run id": self.run_id,
                 "trained at": self.created, **window, "code version": self.code_version,
                 "inputs hash": self.inputs_hash, "feature catalog": self.catalog_version,
                 "calibration": self.params.get("calibration", ""), "trees": self.params.get("trees", ""),
                 "judged beside champion": self.evaluated_champion_version or "none (first model)"}
        return pd.DataFrame({"item": list(facts), "value": [str(v) for v in facts.values()]})


@dataclass
class ReviewTables:
    """The run's evaluation artifacts, read: tables as frames, images and the model card as files."""

    folder: Path
    evaluation: pd.DataFrame
    fairness: pd.DataFrame
    lead_time: pd.DataFrame
    class_counts: pd.DataFrame
    images: dict[str, Path]
    model_card: Path

    def overall(self) -> pd.DataFrame:
        """The evaluation's ``overall`` slice: one row per model (ours, oracle, baselines, champion)."""
        rows = self.evaluation[self.evaluation["slice"] == "overall"]
        return rows[[c for c in OVERALL_COLUMNS if c in rows.columns]].reset_index(drop=True)

    def by_group(self, group: str, metric: str) -> pd.DataFrame:
        """``metric`` by slice value of ``group`` (rows) and model (columns), e.g. ``("grade", "roc_auc")``."""
        rows = self.evaluation[self.evaluation["group"] == group]
        models = list(pd.unique(rows["model"]))
        return rows.pivot(index="value", columns="model", values=metric)[models].rename_axis(group)

    def lead_time_recall(self) -> pd.DataFrame:
        """Recall in the top 10% by point of the term (rows, earliest first) and model (columns)."""
        lead = self.lead_time
        table = lead.pivot(index="week", columns="model", values="recall_top10")[list(pd.unique(lead["model"]))]
        return table.loc[sorted(table.index, key=_term_order)]

    def flagged(self) -> pd.DataFrame:
        """The fairness rows whose ratio to the best group lies outside 0.8–1.25."""
        return self.fairness[self.fairness["flagged_disparity"].astype(bool)].reset_index(drop=True)


def model_record(model_name: str, alias: str = "champion") -> ModelRecord:
    """The registered version behind ``alias`` (or a version number) and its training run's record."""
    client = MlflowClient()
    try:
        version = (client.get_model_version(model_name, alias) if alias.isdigit()
                   else client.get_model_version_by_alias(model_name, alias))
        run = client.get_run(version.run_id)
    except MlflowException as exc:
        raise TrackingError(f"the registry at {mlflow.get_tracking_uri()} has no {model_name!r} "
                            f"{'version' if alias.isdigit() else 'alias'} {alias}: train one with `risk train` "
                            "(and `risk promote` for the champion)") from exc
    tags = run.data.tags
    return ModelRecord(
        name=model_name, alias=alias, version=str(version.version), run_id=run.info.run_id,
        created=pd.Timestamp(run.info.start_time, unit="ms", tz="UTC").isoformat(timespec="seconds"),
        data_window=json.loads(tags.get("data_window", "{}")), code_version=tags.get("code_version", ""),
        inputs_hash=tags.get("inputs_hash", ""), catalog_version=tags.get("catalog_version", ""),
        evaluated_champion_version=tags.get("evaluated_champion_version", ""),
        params=dict(run.data.params), metrics=dict(run.data.metrics))


def review_tables(run_id: str, folder: Path) -> ReviewTables:
    """Download the run's ``evaluation/`` artifacts into ``folder`` and read them.

    Raises TrackingError when the run has no such artifacts (it was not logged by ``risk train``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    try:
        local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="evaluation",
                                                         dst_path=str(folder)))
    except (MlflowException, OSError) as exc:
        raise TrackingError(f"run {run_id} has no evaluation artifacts to review ({exc})") from exc
    absent = [f"{n}.csv" for n in TABLES if not (local / f"{n}.csv").exists()]
    absent += [f"{n}.png" for n in IMAGES if not (local / f"{n}.png").exists()]
    if absent:
        raise TrackingError(f"run {run_id}'s evaluation artifacts lack {', '.join(absent)}: "
                            "it was not logged by `risk train`")
    tables = {n: pd.read_csv(local / f"{n}.csv") for n in TABLES}
    return ReviewTables(folder=local, **tables, images={n: local / f"{n}.png" for n in IMAGES},
                        model_card=local / "model_card.html")


def _term_order(point: str) -> float:
    """``week 4`` before ``week 12`` before ``last day`` (labels of :class:`risk.models.term_split.SamplePoint`)."""
    word, _, number = str(point).partition(" ")
    return float(number) if word == "week" and number.isdigit() else float("inf")
