"""Scoring settings (``configs/scoring.yaml``): reasons, drift thresholds, alerts and suggested actions."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from risk.config import load_yaml_model
from risk.features.catalog import DOMAINS, Texts

__all__ = ["ScoringSettings", "load_scoring_settings"]

DEFAULT_SCORING_SETTINGS = Path(__file__).resolve().parents[2] / "configs" / "scoring.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReasonSettings(_Strict):
    top: int = Field(3, ge=1, le=10)
    for_classes: list[Literal["normal", "at_risk", "problem"]] = Field(default_factory=lambda: ["at_risk", "problem"])


class DriftSettings(_Strict):
    warn: float = Field(0.1, ge=0)
    threshold: float = Field(0.2, ge=0)


class AlertSettings(_Strict):
    left_register_action: Texts
    improved_action: Texts


class ReportSettings(_Strict):
    # An area with fewer students than this is marked in the term report's lists, not ranked:
    # 47 of 103 flagged is news, 3 of 5 is noise.
    min_area_students: int = Field(30, ge=1)


class ScoringSettings(_Strict):
    reasons: ReasonSettings = ReasonSettings()
    drift: DriftSettings = DriftSettings()
    report: ReportSettings = ReportSettings()
    actions: dict[str, Texts]
    alerts: AlertSettings

    @model_validator(mode="after")
    def _known_domains(self) -> ScoringSettings:
        unknown = sorted(set(self.actions) - set(DOMAINS))
        if unknown:
            raise ValueError(f"actions name unknown domains {', '.join(unknown)} (known: {', '.join(DOMAINS)})")
        return self


def load_scoring_settings(path: Path = DEFAULT_SCORING_SETTINGS) -> ScoringSettings:
    """Read ``configs/scoring.yaml``; a wrong value raises ConfigError naming the file and the section."""
    return load_yaml_model(path, ScoringSettings, "scoring settings")
