"""Scoring settings (``configs/scoring.yaml``): reasons, drift thresholds, alerts and suggested actions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from risk.config import load_yaml_model
from risk.errors import ConfigError
from risk.features.catalog import INSTALLED_CATALOG, Catalog, Texts, load_catalog

__all__ = ["ScoringSettings", "load_scoring_settings"]

DEFAULT_SCORING_SETTINGS = Path(__file__).resolve().parents[2] / "configs" / "scoring.yaml"
DEFAULT_CATALOG = INSTALLED_CATALOG


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReasonSettings(_Strict):
    top: int = Field(3, ge=1, le=10)
    for_classes: list[Literal["normal", "at_risk", "problem"]] = Field(default_factory=lambda: ["at_risk", "problem"])


class DriftSettings(_Strict):
    """PSI lines of the drift check (risk.scoring.drift, risk.scoring.drift_reference)."""

    warn: float = Field(0.05, ge=0)
    threshold: float = Field(0.1, ge=0)  # the floor of every threshold
    # A feature's threshold is max(threshold, term_multiple x its PSI between two past terms of the
    # same semester at the same school day): what an unchanged population shows from year to year.
    term_multiple: float = Field(2.0, ge=1)
    min_features: int = Field(2, ge=1)  # model-relevant features past their thresholds that raise the warning
    strong_multiple: float = Field(5.0, ge=1)  # ...or one of them this many times past its threshold
    min_importance: float = Field(0.01, ge=0, le=1)  # share of the booster's gain that makes a feature relevant
    left_out: list[str] = Field(default_factory=list)  # never ring the warning (see risk.scoring.drift_reference)

    @model_validator(mode="after")
    def _warn_under_threshold(self) -> DriftSettings:
        if self.warn > self.threshold:
            raise ValueError(f"warn ({self.warn}) is above threshold ({self.threshold})")
        return self


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
    # Suggested actions by id (home_visit, cct_referral, ...); each feature of the catalog names its own.
    actions: dict[str, Texts]
    # What a school can record it did (acknowledgements, imported actions): suggested action ids
    # with a short label each; none configured means none can be recorded, only free text.
    action_codes: dict[str, Texts] = Field(default_factory=dict)
    alerts: AlertSettings

    @model_validator(mode="after")
    def _action_ids(self) -> ScoringSettings:
        wrong = sorted(a for a in self.actions if not re.fullmatch(r"[a-z][a-z0-9_]*", a))
        if wrong:
            raise ValueError(f"action ids are lower_snake_case words: {', '.join(wrong)}")
        unknown = sorted(set(self.action_codes) - set(self.actions))
        if unknown:
            raise ValueError(f"action_codes {', '.join(unknown)} are not suggested actions (under `actions:`: "
                             f"{', '.join(self.actions)})")
        return self

    def check_actions(self, catalog: Catalog, source: str = "scoring settings") -> None:
        """Raise ConfigError unless every action the catalog's features name is in :attr:`actions`."""
        missing = {f.name: f.action for f in catalog.features if f.action is not None and f.action not in self.actions}
        if missing:
            named = ", ".join(f"{name} → {action}" for name, action in missing.items())
            raise ConfigError(f"{source}: actions: the feature catalog {catalog.version} names actions this file "
                              f"does not define ({named}); add them under `actions:` with en and th texts "
                              f"(defined: {', '.join(self.actions) or 'none'})")


def load_scoring_settings(path: Path = DEFAULT_SCORING_SETTINGS, catalog: Catalog | None = None) -> ScoringSettings:
    """Read ``configs/scoring.yaml``; a wrong value raises ConfigError naming the file and the section.

    The actions are checked against ``catalog`` (default: ``configs/features.yaml``): every action
    a feature names must be defined, so no reason reaches a teacher without its suggested action.
    """
    settings = load_yaml_model(path, ScoringSettings, "scoring settings")
    settings.check_actions(catalog if catalog is not None else load_catalog(DEFAULT_CATALOG), str(path))
    return settings
