"""Training settings (``configs/train.yaml``), loaded once into typed models and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from risk.config import load_yaml_model
from risk.features.catalog import Texts

__all__ = ["ClassRule", "FeatureInputSettings", "PolicySettings", "TrainSettings", "load_train_settings"]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TRAIN_SETTINGS = REPO_ROOT / "configs" / "train.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SampleSettings(_Strict):
    weeks: list[int] = Field(default_factory=lambda: [4, 6, 8, 12])
    last_school_day: bool = True
    negative_share: float = Field(1.0, gt=0, le=1)
    max_eval_students: int = Field(150_000, ge=100)
    seed: int = 7
    # Training rows whose outcome the help may have changed (risk.models.treated): keep them,
    # down-weight them (sample weight times down_weight in the fit), or train without them
    # (the wait-list arm of a pilot term kept whole).
    treated_outcomes: Literal["keep", "down_weight", "untreated_only"] = "keep"
    down_weight: float = Field(0.3, gt=0, lt=1)

    @model_validator(mode="after")
    def _some_point(self) -> SampleSettings:
        if not self.weeks and not self.last_school_day:
            raise ValueError("weeks is empty and last_school_day is false: no point of the term to sample")
        if any(w < 1 or w > 30 for w in self.weeks):
            raise ValueError("weeks must lie between 1 and 30")
        return self


class SplitSettings(_Strict):
    calibration_terms: int = Field(1, ge=1)
    test_terms: int = Field(1, ge=1)
    min_train_terms: int = Field(1, ge=1)
    early_stopping_share: float = Field(0.15, gt=0, lt=0.5)
    early_stopping_max_rows: int = Field(250_000, ge=1_000)
    holdout_students: float = Field(0.3, ge=0, lt=1)


class LightGBMSettings(_Strict):
    params: dict[str, Any]
    max_trees: int = Field(400, ge=1)
    early_stopping_rounds: int = Field(40, ge=1)
    positive_weight: float = Field(1.0, gt=0)


class OptunaSettings(_Strict):
    trials: int = Field(0, ge=0)
    max_leaves: int = Field(31, ge=4)
    max_depth: int = Field(8, ge=2)


class CalibrationSettings(_Strict):
    methods: list[Literal["isotonic", "platt"]] = Field(default_factory=lambda: ["isotonic", "platt"], min_length=1)


class ClassRule(_Strict):
    """A rule that raises a student's class, and is a reason of its own (DESIGN.md "Classes")."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    feature: str
    below: float | None = None
    above: float | None = None
    raise_to: Literal["at_risk", "problem"]
    reason: Texts
    # The lowest grade (a category of grade_level, e.g. "P1") the rule means anything at: kindergarten
    # children sit no exams, so the 80% exam line does not raise them. None: every grade.
    min_grade: str | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> ClassRule:
        if (self.below is None) == (self.above is None):
            raise ValueError(f"rule {self.id}: give exactly one of below or above")
        return self


class PolicySettings(_Strict):
    problem_precision: float = Field(0.5, gt=0, lt=1)
    # When no threshold keeps its precision promise (with the margin below), the problem class is
    # the highest-scored share of students instead: the top-k capacity a school can follow up.
    problem_fallback_share: float = Field(0.01, gt=0, lt=1)
    # The margin: a threshold keeps the precision promise only when the one-sided lower confidence
    # bound (Wilson, this z; 1.645 = 95%) over the distinct students above it reaches the target,
    # and at least min_problem_dropouts of them dropped out.
    precision_z: float = Field(1.645, ge=0)
    min_problem_dropouts: int = Field(10, ge=1)
    # On the held-out term a class breaks its capacity promise when it flags more than
    # at_risk_capacity_share * (1 + this) of the students.
    held_out_capacity_slack: float = Field(0.5, ge=0)
    at_risk_recall: float = Field(0.6, gt=0, le=1)
    at_risk_capacity_share: float = Field(0.15, gt=0, le=1)
    rules: list[ClassRule] = Field(default_factory=list)
    thresholds_by: str | None = None
    min_group_rows: int = Field(1_000, ge=1)
    min_group_dropouts: int = Field(20, ge=1)


class EvaluationSettings(_Strict):
    lead_time_week: int = Field(6, ge=1)
    top_shares: list[float] = Field(default_factory=lambda: [0.05, 0.10, 0.20])
    transition_grades: list[str] = Field(default_factory=lambda: ["P6", "M3"])
    fairness_groups: list[str] = Field(default_factory=list)
    fairness_min_rows: int = Field(50, ge=1)
    baseline_max_rows: int = Field(300_000, ge=1_000)
    shap_sample_rows: int = Field(2_000, ge=10)
    profile_max_rows: int = Field(200_000, ge=1_000)
    # The other setting of features.protected_inputs is fitted on at most this many of the fitting rows
    # (a uniform sample of students past that; risk.models.protected).
    compare_max_rows: int = Field(500_000, ge=1_000)
    abc_attendance_below: float = Field(0.90, gt=0, le=1)
    context_features: list[str] = Field(default_factory=list)


class PromotionSettings(_Strict):
    max_auc_drop: float = Field(0.002, ge=0)
    max_ece_rise: float = Field(0.005, ge=0)
    max_recall_top10_drop: float = Field(0.01, ge=0)


class FeatureInputSettings(_Strict):
    # False: the protected-role features (sex, nationality, disability) are no model inputs (the
    # booster never splits on them); they stay in the data for fairness checks and drift.
    protected_inputs: bool = True
    # Train the other setting's booster as well (same split, params and trees, no early stopping)
    # so evaluation shows both side by side.
    compare_protected: bool = True


class MlflowSettings(_Strict):
    experiment: str = "dropout-risk"
    model_name: str = "dropout-risk"


class TrainSettings(_Strict):
    samples: SampleSettings = SampleSettings()
    split: SplitSettings = SplitSettings()
    lightgbm: LightGBMSettings
    optuna: OptunaSettings = OptunaSettings()
    calibration: CalibrationSettings = CalibrationSettings()
    policy: PolicySettings = PolicySettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    promotion: PromotionSettings = PromotionSettings()
    mlflow: MlflowSettings = MlflowSettings()
    features: FeatureInputSettings = FeatureInputSettings()


def load_train_settings(path: Path = DEFAULT_TRAIN_SETTINGS) -> TrainSettings:
    """Read ``configs/train.yaml``; a wrong value raises ConfigError naming the file and the section."""
    return load_yaml_model(path, TrainSettings, "training settings")
