"""The feature catalog (``configs/features.yaml``): what each feature is, in Thai and English.

Each entry names a feature, its domain, how it is computed (a ``compute`` kind and
its parameters, from a fixed menu per domain, so an analyst can add a window or
an aggregation of an existing column without writing Python), the direction that
means more risk, and the reason text a teacher reads when the feature drives a
score. Reason texts take ``{value}`` (the student's value, formatted by its unit).
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from risk.errors import ConfigError

__all__ = ["Catalog", "FeatureSpec", "Texts", "format_value", "load_catalog"]

DOMAINS = ("attendance", "grades", "enrollment", "household", "health", "behaviour", "assistance", "context")
Unit = Literal["share", "days", "count", "baht", "km", "kg", "percent", "z", "years", "months", "grade_points",
               "credits", "score", "flag", "category", "rate", "people", "points"]


class Texts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    en: str
    th: str


class FeatureSpec(BaseModel):
    """One feature. ``compute`` is ``{kind: ..., <params>}``; the domain module checks it."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$")
    domain: Literal[DOMAINS]  # type: ignore[valid-type]
    compute: dict[str, Any]
    unit: Unit
    direction: Literal["higher", "lower", "none"] = Field(
        description="which values mean more risk: higher, lower, or none (categorical / context)"
    )
    description: Texts
    reason: Texts
    missing_reason: Texts | None = Field(
        None, description="what a teacher reads when a missing value drives a score; without it, missing is never a reason"
    )
    categories: list[str] | None = None
    enabled: bool = True

    @field_validator("compute")
    @classmethod
    def _has_kind(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "kind" not in value:
            raise ValueError("compute needs a 'kind'")
        return value

    @model_validator(mode="after")
    def _category_unit(self) -> FeatureSpec:
        if (self.unit == "category") != (self.categories is not None):
            raise ValueError("a feature has categories exactly when its unit is 'category'")
        return self


class Catalog(BaseModel):
    """The enabled features, in file order, and a version that changes with the file's content."""

    version: str
    features: list[FeatureSpec]

    @model_validator(mode="after")
    def _unique_names(self) -> Catalog:
        names = [f.name for f in self.features]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"feature names appear twice: {', '.join(repeated)}")
        return self

    @property
    def enabled(self) -> list[FeatureSpec]:
        return [f for f in self.features if f.enabled]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.enabled]

    def by_domain(self, domain: str) -> list[FeatureSpec]:
        return [f for f in self.enabled if f.domain == domain]

    def get(self, name: str) -> FeatureSpec:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)


def load_catalog(path: Path) -> Catalog:
    """Read and check the catalog; its version is a hash of the file's bytes.

    Raises ConfigError naming the file and the entry at fault.
    """
    try:
        raw = path.read_bytes()
        data = yaml.safe_load(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the feature catalog ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("features"), list):
        raise ConfigError(f"{path}: expected a mapping with a 'features' list")
    version = f"{data.get('name', 'catalog')}-{hashlib.sha256(raw).hexdigest()[:12]}"
    try:
        catalog = Catalog(version=version, features=data["features"])
    except ValidationError as exc:
        first = exc.errors()[0]
        where = first["loc"]
        entry = data["features"][where[1]] if len(where) > 1 and isinstance(where[1], int) else None
        name = entry.get("name", "?") if isinstance(entry, dict) else "?"
        raise ConfigError(f"{path}: feature {name!r}: {'.'.join(map(str, where[2:])) or 'entry'}: {first['msg']}") from exc
    from risk.features.registry import check_compute  # the domain modules know their kinds

    for feature in catalog.features:
        try:
            check_compute(feature)
        except ValueError as exc:
            raise ConfigError(f"{path}: feature {feature.name!r}: {exc}") from exc
    return catalog


_UNIT_EN = {"days": "days", "baht": "baht", "km": "km", "kg": "kg", "years": "years", "months": "months",
            "credits": "credits", "people": "people", "points": "points"}  # fmt: skip
_UNIT_TH = {"days": "วัน", "baht": "บาท", "km": "กม.", "kg": "กก.", "years": "ปี", "months": "เดือน",
            "credits": "หน่วยกิต", "people": "คน", "points": "คะแนน"}  # fmt: skip


def format_value(value: float | None, unit: str, lang: str = "en", categories: list[str] | None = None) -> str:
    """A feature value as a teacher reads it: ``0.62`` share → ``62%``; ``2500`` baht → ``2,500 baht``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—" if lang == "en" else "ไม่มีข้อมูล"
    if unit == "category" and categories is not None:
        index = int(value)
        return categories[index] if 0 <= index < len(categories) else "?"
    if unit in ("share", "rate"):
        return f"{value:.0%}"
    if unit == "percent":
        return f"{value:+.0f}%"
    if unit == "flag":
        yes = bool(value)
        return ("yes" if yes else "no") if lang == "en" else ("ใช่" if yes else "ไม่")
    if unit == "z":
        return f"{value:+.1f} SD"
    if unit in ("baht",):
        text = f"{value:,.0f}"
    elif unit in ("days", "count", "people", "months") and float(value).is_integer():
        text = f"{int(value):,}"
    else:
        text = re.sub(r"\.0$", "", f"{value:,.1f}")
    words = (_UNIT_EN if lang == "en" else _UNIT_TH).get(unit, "")
    return f"{text} {words}".strip()
