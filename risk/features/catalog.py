"""The feature catalog (``configs/features.yaml``): what each feature is, in Thai and English.

Each entry names a feature, its domain, how it is computed (a ``compute`` kind and
its parameters, from a fixed menu per domain, so an analyst can add a window or
an aggregation of an existing column without writing Python), the direction that
means more risk, and the reason text a teacher reads when the feature drives a
score. Reason texts take ``{value}`` (the student's value, formatted by its unit)
and ``{singular|plural}`` word forms chosen by the value (English: "1 subject",
"3 subjects"); a feature whose value can fall below zero (a change, a margin, a
z-score) gives ``reason_negative`` (and may give ``reason_zero``), where
``{value}`` is then the size of the value, so texts say "fell by 4 points", never
"-4%".

Who may read a feature as a reason is the entry's ``role``: ``child`` (the child's
own attendance, grades, household, health, behaviour, assistance), ``context``
(grade, transition year, school and area rates: told once per school, never as a
child's reason) or ``protected`` (sex, nationality, disability: never a reason).
Reasons that state one fact share a ``group`` (one reason per group), a reason
that only means something from a grade up names its ``min_grade``, and each child
reason names its suggested ``action`` (an id into ``configs/scoring.yaml``).
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from risk.errors import ConfigError
from risk.features.kinds import check_compute

__all__ = ["GRADE_FEATURE", "INSTALLED_CATALOG", "ROLES", "Catalog", "FeatureSpec", "Texts", "format_value", "installed_catalog", "load_catalog", "reason_text",
           "reason_writer", "value_formatter"]

DOMAINS = ("attendance", "grades", "enrollment", "household", "health", "behaviour", "assistance", "context")
ROLES = ("child", "context", "protected")
# The feature whose categories order the grades, for min_grade (K1 < ... < M6).
GRADE_FEATURE = "grade_level"
Unit = Literal["share", "share_change", "days", "count", "baht", "km", "kg", "percent", "z", "years", "months",
               "grade_points", "credits", "score", "flag", "category", "rate", "people", "points"]
# {singular|plural}: the English word form for the value; Thai has none, so its texts need no such form.
_PLURAL = re.compile(r"\{([^{}|]*)\|([^{}|]*)\}")


class Texts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    en: str
    th: str


def _check_template(texts: Texts | None, field: str) -> None:
    """A template may hold only ``{value}`` and ``{singular|plural}``; anything else in braces is a typo."""
    if texts is None:
        return
    for lang in ("en", "th"):
        rest = _PLURAL.sub("", getattr(texts, lang).replace("{value}", ""))
        if "{" in rest or "}" in rest:
            raise ValueError(f"{field}.{lang} has a placeholder other than {{value}} or {{singular|plural}}: "
                             f"{getattr(texts, lang)!r}")


class FeatureSpec(BaseModel):
    """One feature. ``compute`` is ``{kind: ..., <params>}``, one of its domain's kinds (:mod:`risk.features.kinds`)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$")
    domain: Literal[DOMAINS]  # type: ignore[valid-type]
    compute: dict[str, Any]
    unit: Unit
    direction: Literal["higher", "lower", "none"] = Field(
        description="which values mean more risk: higher, lower, or none (categorical / context)"
    )
    role: Literal[ROLES] = Field(  # type: ignore[valid-type]
        description="child: may be a child's reason; context: shown once per school; protected: never a reason")
    group: str = Field("", description="reasons about the same fact share a group (one per child); default the name")
    min_grade: str | None = Field(None, description="a reason only from this grade up (a grade_level category)")
    action: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$",
                               description="the suggested action's id in configs/scoring.yaml `actions:`")
    description: Texts
    reason: Texts
    reason_negative: Texts | None = Field(
        None, description="the reason when the value is below 0; {value} is then its size (\"fell by 4 points\")")
    reason_zero: Texts | None = Field(None, description="the reason when the value is exactly 0")
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

    @model_validator(mode="after")
    def _reason_rules(self) -> FeatureSpec:
        if not self.group:
            self.group = self.name
        for field in ("reason", "reason_negative", "reason_zero", "missing_reason"):
            _check_template(getattr(self, field), field)
        # A child's reason without a suggested action leaves the teacher with nothing to do.
        if self.role == "child" and self.direction != "none" and self.action is None:
            raise ValueError("a child feature with a direction needs an action (an id in scoring.yaml actions:)")
        if self.role == "protected" and self.action is not None:
            raise ValueError("a protected feature is never a reason, so it takes no action")
        return self

    @property
    def is_reason(self) -> bool:
        """True when the feature may be one of a child's reasons."""
        return self.role == "child" and self.direction != "none"


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

    @model_validator(mode="after")
    def _known_grades(self) -> Catalog:
        wanted = {f.name: f.min_grade for f in self.features if f.min_grade is not None}
        if not wanted:
            return self
        grades = self.grades
        unknown = {name: grade for name, grade in wanted.items() if grade not in grades}
        if unknown:
            raise ValueError(f"min_grade names no {GRADE_FEATURE} category: "
                             + ", ".join(f"{name}: {grade!r}" for name, grade in unknown.items())
                             + f" (known: {', '.join(grades) or 'none, the catalog has no grade_level feature'})")
        return self

    @property
    def enabled(self) -> list[FeatureSpec]:
        return [f for f in self.features if f.enabled]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.enabled]

    @property
    def grades(self) -> list[str]:
        """The grade codes in order (the categories of ``grade_level``), or [] without that feature."""
        for feature in self.features:
            if feature.name == GRADE_FEATURE:
                return list(feature.categories or [])
        return []

    def grade_index(self, grade: str | None) -> int | None:
        """The position of a grade code among :attr:`grades` (the value the grade_level feature takes), or None."""
        grades = self.grades
        return grades.index(grade) if grade in grades else None

    def by_domain(self, domain: str) -> list[FeatureSpec]:
        return [f for f in self.enabled if f.domain == domain]

    def get(self, name: str) -> FeatureSpec:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)


# The catalog this installation ships (configs/features.yaml): read by whatever must describe features
# without a model at hand, and by old model packages (see _from_installed).
INSTALLED_CATALOG = Path(__file__).resolve().parents[2] / "configs" / "features.yaml"


@functools.cache
def installed_catalog() -> Catalog | None:
    """The installed catalog, read once per process; None where the configs are not installed (or broken)."""
    try:
        return load_catalog(INSTALLED_CATALOG)
    except ConfigError:
        return None


def load_catalog(path: Path, *, installed: Catalog | None = None) -> Catalog:
    """Read and check the catalog; its version is a hash of the file's bytes.

    ``installed``: the catalog in use, for reading a catalog stored in a model package
    written before features had a ``role`` (see :func:`_from_installed`).

    Raises ConfigError naming the file and the entry at fault.
    """
    try:
        raw = path.read_bytes()
        data = yaml.safe_load(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the feature catalog ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("features"), list):
        raise ConfigError(f"{path}: expected a mapping with a 'features' list")
    if installed is not None:
        data["features"] = [_from_installed(entry, installed) for entry in data["features"]]
    version = f"{data.get('name', 'catalog')}-{hashlib.sha256(raw).hexdigest()[:12]}"
    try:
        catalog = Catalog(version=version, features=data["features"])
    except ValidationError as exc:
        first = exc.errors()[0]
        where = first["loc"]
        entry = data["features"][where[1]] if len(where) > 1 and isinstance(where[1], int) else None
        name = entry.get("name", "?") if isinstance(entry, dict) else "?"
        if len(where) < 2:  # a check across entries
            raise ConfigError(f"{path}: {first['msg'].removeprefix('Value error, ')}") from exc
        raise ConfigError(f"{path}: feature {name!r}: {'.'.join(map(str, where[2:])) or 'entry'}: {first['msg']}") from exc
    for feature in catalog.features:
        try:
            check_compute(feature.domain, feature.compute, feature.categories)
        except ValueError as exc:
            raise ConfigError(f"{path}: feature {feature.name!r}: {exc}") from exc
    return catalog


def _from_installed(entry: Any, installed: Catalog) -> Any:
    """An entry of a catalog written before roles, read with what the installed catalog says of it.

    Models registered before reasons had roles keep their catalog as it was. Such an
    entry takes the installed entry of the same name and computation whole (the same
    feature, with today's role, group, grade floor, action and texts), so an old champion
    never shows a protected attribute or a context line as a child's reason. A feature the
    installed catalog no longer describes becomes ``protected``: never a reason at all,
    which is the one safe reading of a feature whose role nobody wrote down.
    """
    if not isinstance(entry, dict) or "role" in entry:
        return entry
    name = entry.get("name")
    for spec in installed.features:
        if spec.name == name and spec.compute == entry.get("compute"):
            return {**spec.model_dump(exclude_defaults=True), "enabled": entry.get("enabled", True)}
    return {**entry, "role": "protected"}


# Unit words: English (singular, plural), Thai (no plural). A share's change is in percentage points:
# 75% → 71% is "4 points", not "4%" (which would be 4% of 75%); in Thai จุดเปอร์เซ็นต์, as a bare
# จุด reads as a score point or a place.
_UNIT_EN = {"days": ("day", "days"), "baht": ("baht", "baht"), "km": ("km", "km"), "kg": ("kg", "kg"),
            "years": ("year", "years"), "months": ("month", "months"), "credits": ("credit", "credits"),
            "people": ("person", "people"), "points": ("point", "points"),
            "share_change": ("point", "points")}  # fmt: skip
_UNIT_TH = {"days": "วัน", "baht": "บาท", "km": "กม.", "kg": "กก.", "years": "ปี", "months": "เดือน",
            "credits": "หน่วยกิต", "people": "คน", "points": "คะแนน", "share_change": "จุดเปอร์เซ็นต์"}  # fmt: skip


def format_value(value: float | None, unit: str, lang: str = "en", categories: list[str] | None = None,
                 *, signed: bool = True) -> str:
    """A feature value as a teacher reads it: ``0.62`` share → ``62%``; ``2500`` baht → ``2,500 baht``.

    English unit words agree with the number ("1 day", "2 days"). ``signed=False`` gives
    the size only (a reason text whose words carry the sign: "fell by 4 points").
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—" if lang == "en" else "ไม่มีข้อมูล"
    return value_formatter(unit, lang, categories, signed=signed)(value)


def value_formatter(unit: str, lang: str = "en", categories: list[str] | None = None, *,
                    signed: bool = True) -> Callable[[float], str]:
    """:func:`format_value` for one unit and language, as a function of a present value.

    Made once per feature, so a national run's million reasons do not take the unit's
    branches a million times.
    """
    if unit == "category" and categories is not None:
        return lambda value: categories[int(value)] if 0 <= int(value) < len(categories) else "?"
    if unit == "flag":
        yes, no = ("yes", "no") if lang == "en" else ("ใช่", "ไม่")
        return lambda value: yes if value else no
    size: Callable[[float], float] = (lambda value: value) if signed else abs
    if unit in ("share", "rate"):
        return lambda value: f"{size(value):.0%}"
    if unit == "percent":
        return (lambda value: f"{value:+.0f}%") if signed else (lambda value: f"{abs(value):.0f}%")
    if unit == "z":
        return (lambda value: f"{value:+.1f} SD") if signed else (lambda value: f"{abs(value):.1f} SD")
    if unit == "share_change":
        def number(value: float) -> str:
            points = 100 * size(value)
            # Under half a point would read "0 points" beside a text that says it fell: keep one decimal.
            return f"{points:.1f}" if points != 0 and round(points) == 0 else f"{points:.0f}"
    elif unit == "baht":
        def number(value: float) -> str:
            return f"{size(value):,.0f}"
    elif unit in ("days", "count", "people", "months"):
        def number(value: float) -> str:
            value = size(value)
            return f"{int(value):,}" if float(value).is_integer() else _one_decimal(value)
    else:
        def number(value: float) -> str:
            return _one_decimal(size(value))
    if lang == "en":
        singular, plural = _UNIT_EN.get(unit, ("", ""))
        if not singular:
            return number
        return lambda value: (f"{text} {singular}" if _is_one(text := number(value)) else f"{text} {plural}")
    word = _UNIT_TH.get(unit, "")
    return (lambda value: f"{number(value)} {word}") if word else number


def _one_decimal(value: float) -> str:
    text = f"{value:,.1f}"
    return text[:-2] if text.endswith(".0") else text


def reason_text(spec: FeatureSpec, value: float | None, lang: str) -> str:
    """The reason a teacher reads for ``spec`` at ``value`` (None or NaN: missing) in ``lang`` (en/th).

    The template follows the value's sign (``reason_negative`` below 0, ``reason_zero`` at 0,
    ``reason`` otherwise; a template given for the sign gets the value's size), then
    ``{singular|plural}`` follows the number shown and ``{value}`` is filled.
    """
    return reason_writer(spec, lang)(value)


def reason_writer(spec: FeatureSpec, lang: str) -> Callable[[float | None], str]:
    """:func:`reason_text` for one feature and language, as a function of the value (made once per feature)."""
    missing = _PLURAL.sub(lambda m: m.group(2), getattr(spec.missing_reason or spec.reason, lang)).replace(
        "{value}", format_value(None, spec.unit, lang))
    signed = spec.reason_negative is None
    shown = value_formatter(spec.unit, lang, spec.categories, signed=signed)

    def forms(texts: Texts | None) -> tuple[str, str] | None:
        """The template with its {singular|plural} forms resolved for one, and for any other number."""
        if texts is None:
            return None
        template = getattr(texts, lang)
        return (_PLURAL.sub(lambda m: m.group(1), template), _PLURAL.sub(lambda m: m.group(2), template))

    above, below, zero = forms(spec.reason), forms(spec.reason_negative), forms(spec.reason_zero)

    def write(value: float | None) -> str:
        if value is None or value != value:  # NaN: missing
            return missing
        one, other = (below if value < 0 and below else zero if value == 0 and zero else above)  # type: ignore[misc]
        text = shown(value)
        return (one if _is_one(text.split(" ", 1)[0].rstrip("%")) else other).replace("{value}", text)

    return write


def _is_one(number: str) -> bool:
    """True when a number as shown is one: English takes the singular ("1 day", "1.0" never shown)."""
    return number == "1" or number == "+1" or number == "-1"
