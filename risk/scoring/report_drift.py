"""The term report's drift section: the check's record in the reader's words (issue 28).

The drift check (risk.scoring.drift) owns its record; the report reads the fields it
shows. The banner is the check's own ``warning`` when the record has one (calibrated on
term-to-term variation), else the old rule; features are named by their catalog
description, Thai with English beside, the code kept for the analyst.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict

from risk.features.catalog import Catalog, installed_catalog

__all__ = ["DriftInput", "FeatureDriftInput", "drift_section", "feature_labels"]

DRIFT_STATUS_TH = {"stable": "คงที่", "watch": "เฝ้าดู", "drifted": "เปลี่ยนไป"}
DRIFT_RINGS_TH = {True: "นับ / counts",
                  False: "ไม่นับ (เปลี่ยนตามปฏิทิน หรือไม่ใช่ตัวแปรหลัก) / not counted (moves with the calendar)"}

class FeatureDriftInput(BaseModel):
    # The drift check owns its record; the report reads the fields it shows and ignores the rest.
    model_config = ConfigDict(extra="ignore")
    name: str
    psi: float
    status: str
    limit: float | None = None  # the feature's own threshold (calibrated checks); None: the run's threshold
    in_warning: bool = True  # False: it cannot raise the warning (moves with the calendar, or not the model's)


class DriftInput(BaseModel):
    """What the report shows of a drift check (``risk.scoring.drift.DriftReport.model_dump()`` fits)."""

    model_config = ConfigDict(extra="ignore")
    score_psi: float
    features: list[FeatureDriftInput]
    drifted: list[str]
    threshold: float
    score_status: str | None = None
    reference: str | None = None  # what the run was compared with (risk.scoring.drift_reference)
    # Set by drift checks since issue 28, calibrated on term-to-term variation; None in older runs.
    warning: bool | None = None
    warning_features: list[str] = []
    score_limit: float | None = None
    basis: str | None = None  # how the thresholds were set, in words

    @property
    def score_drifted(self) -> bool:
        return self.score_status == "drifted" or self.score_psi > (self.score_limit or self.threshold)

    @property
    def anything_drifted(self) -> bool:
        """Whether to show the banner: the check's own verdict, or the old rule for a record without one."""
        if self.warning is not None:
            return self.warning
        return bool(self.drifted) or self.score_drifted

    @property
    def named(self) -> list[str]:
        """The features the banner names."""
        return self.warning_features if self.warning is not None else self.drifted


def feature_labels(catalog: Catalog | None) -> dict[str, dict[str, str]]:
    """Each catalog feature's description, Thai and English, by code; loaded once per report."""
    catalog = catalog or installed_catalog()
    if catalog is None:  # a report read where the configs are not installed still shows the codes
        return {}
    return {f.name: {"th": f.description.th, "en": f.description.en} for f in catalog.features}


def drift_section(drift: DriftInput | None, catalog: Catalog | None = None) -> dict[str, Any] | None:
    if drift is None:
        return None
    features = sorted(drift.features, key=lambda f: -f.psi if not math.isnan(f.psi) else math.inf)
    named = set(drift.named)
    labels = feature_labels(catalog)

    def label(code: str) -> dict[str, Any]:
        """A feature in the reader's words, its code kept for the analyst; an unknown code stays a code."""
        found = labels.get(code)
        return {"code": code, "known": found is not None, **(found or {"th": code, "en": code})}

    return {
        "score_psi": f"{drift.score_psi:.3f}",
        "score_drifted": drift.score_drifted,
        "threshold": f"{drift.score_limit if drift.score_limit is not None else drift.threshold:.2f}",
        "reference": drift.reference,
        "basis": drift.basis,
        "warning": drift.anything_drifted,
        "named": [label(code) for code in drift.named],
        "calibrated": drift.warning is not None,
        "features": [{**label(f.name), "psi": f"{f.psi:.3f}", "drifted": f.name in named,
                      "limit": f"{f.limit if f.limit is not None else drift.threshold:.2f}",
                      "rings": DRIFT_RINGS_TH[f.in_warning],
                      "status": f"{DRIFT_STATUS_TH.get(f.status, f.status)} / {f.status}"}
                     for f in features],
    }  # fmt: skip
