"""An independent check of the reasons a run gave: what a teacher must never read, counted.

Issue 28's acceptance, as code: over the flagged students (at-risk and problem) of a
scoring run, no reason may come from a ``protected`` feature (sex, nationality,
disability), none from ``context`` (the school's past rate, the transition year: told
once per school, not per child), none from a feature below its ``min_grade`` (the 80%
exam line or มส for a kindergarten child, who sits no exams; a rule's ``min_grade``
counts for its ``rule:<id>`` code), and no two from one catalog ``group`` (one fact said
twice). Codes the catalog does not know are counted too: nobody can vouch for them.

:func:`audit_reasons` reads a store's run: the stored reason codes and each score's
grade. The values behind a reason are not stored, so whether a reason contradicts the
child's value is checked by :func:`audit_explained`, over an in-memory
:class:`~risk.scoring.explained.Explained` with its feature matrix: a reason whose value
lies on the safe side of the training median (or at it), or is missing without a
``missing_reason``, contradicts the child (a rule's reason: its own line, not crossed).

Each check returns its count and a few examples (pseudonymous student keys only).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from risk.features.catalog import Catalog
from risk.models.policy import ClassPolicy
from risk.models.profile import TrainingProfile, at_training_precision
from risk.scoring.explained import Explained
from risk.store import Store, latest_scores

__all__ = ["CHECKS", "AuditCheck", "ReasonAudit", "audit_explained", "audit_reasons"]

# The checks, in the order a report lists them; "contradicts" needs the values (audit_explained).
CHECKS = ("protected", "context", "below_min_grade", "same_group", "unknown", "contradicts")
FLAGGED = ("at_risk", "problem")


@dataclass
class AuditCheck:
    """One check: how many reasons broke it, and up to ``limit`` examples (dicts of student, code, detail)."""

    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    limit: int = 5

    def add(self, student: Any, code: str, detail: str) -> None:
        self.count += 1
        if len(self.examples) < self.limit:
            self.examples.append({"student": student, "code": code, "detail": detail})


@dataclass
class ReasonAudit:
    """Counts per check over ``students`` flagged students and their ``reasons`` reasons."""

    students: int
    reasons: int
    checks: dict[str, AuditCheck]

    @property
    def clean(self) -> bool:
        """True when no check counted anything."""
        return all(check.count == 0 for check in self.checks.values())

    def counts(self) -> dict[str, int]:
        return {name: check.count for name, check in self.checks.items()}


class _Auditor:
    """The checks every reason list goes through, from the catalog and the policy's rules."""

    def __init__(self, catalog: Catalog, policy: ClassPolicy | None, checks: Sequence[str], examples: int) -> None:
        self.catalog = catalog
        self.specs = {spec.name: spec for spec in catalog.features}
        self.rules = {f"rule:{rule.id}": rule for rule in (policy.rules if policy is not None else [])}
        self.checks = {name: AuditCheck(limit=examples) for name in checks}
        self.students = 0
        self.reasons = 0

    def feature_of(self, code: str) -> str:
        rule = self.rules.get(code)
        return rule.feature if rule is not None else code

    def row(self, student: Any, codes: Iterable[str], grade: int | None) -> None:
        """Check one flagged student's reason codes; ``grade`` is the grade_level index (None: unknown)."""
        self.students += 1
        seen: dict[str, str] = {}
        for code in codes:
            self.reasons += 1
            spec = self.specs.get(self.feature_of(code))
            if spec is None:
                self.checks["unknown"].add(student, code, "the catalog has no such feature or rule")
                continue
            if spec.role == "protected":
                self.checks["protected"].add(student, code, "a protected feature given as a reason")
            elif spec.role == "context":
                self.checks["context"].add(student, code, "context given as a child's reason")
            rule = self.rules.get(code)
            min_grade = getattr(rule, "min_grade", None) if rule is not None else None
            min_grade = min_grade or spec.min_grade
            if min_grade is not None:
                floor = self.catalog.grade_index(min_grade)
                if grade is None or floor is None or grade < floor:
                    shown = self.catalog.grades[grade] if grade is not None else "unknown"
                    self.checks["below_min_grade"].add(student, code, f"grade {shown}, reason only from {min_grade}")
            if spec.group in seen:
                self.checks["same_group"].add(student, code, f"group {spec.group} already given by {seen[spec.group]}")
            else:
                seen[spec.group] = code

    def result(self) -> ReasonAudit:
        return ReasonAudit(self.students, self.reasons, self.checks)


def audit_reasons(store: Store, run_id: str, catalog: Catalog, policy: ClassPolicy | None = None, *,
                  classes: Sequence[str] = FLAGGED, examples: int = 5,
                  values: pd.DataFrame | None = None, profile: TrainingProfile | None = None) -> ReasonAudit:
    """Audit the stored reasons of a run's flagged students (``classes``), from their codes and grades.

    ``catalog`` and ``policy`` are the run's model's (``bundle.catalog``, ``bundle.policy``); the
    policy's rules resolve ``rule:<id>`` codes. Checks: protected, context, below_min_grade,
    same_group, unknown. The values behind the reasons are not stored: given ``values`` (the
    feature matrix of the run's date, with ``student_key``, as ``risk features`` writes it) and
    the model's ``profile``, each reason is also checked against the child's own value
    ("contradicts"); a flagged student missing from ``values`` counts there too.
    """
    with_values = values is not None and profile is not None
    auditor = _Auditor(catalog, policy, CHECKS if with_values else CHECKS[:-1], examples)
    lookup = _ValueLookup(values, profile, auditor) if with_values else None
    columns = ["student_key", "grade_level", "risk_class", "reason_codes"]
    for chunk in latest_scores(store, run_id, columns=columns):
        flagged = chunk[chunk["risk_class"].isin(list(classes))]
        for student, grade, codes in zip(flagged["student_key"], flagged["grade_level"], flagged["reason_codes"],
                                         strict=True):
            auditor.row(int(student), codes or [], catalog.grade_index(grade if isinstance(grade, str) else None))
            if lookup is not None:
                lookup.check(int(student), codes or [])
    return auditor.result()


class _ValueLookup:
    """Each student's feature values by pseudonym, to check stored reasons against them."""

    def __init__(self, values: pd.DataFrame, profile: TrainingProfile, auditor: _Auditor) -> None:
        if "student_key" not in values.columns:
            raise ValueError("the feature values need a student_key column")
        self.auditor = auditor
        self.rows = {int(key): i for i, key in enumerate(values["student_key"].to_numpy())}
        self.values = values
        known = [name for name in values.columns if name in auditor.specs and name in set(profile.names)]
        self.medians = dict(zip(known, at_training_precision(profile.medians(known)).tolist(), strict=True))

    def check(self, student: int, codes: Iterable[str]) -> None:
        contradicts = self.auditor.checks["contradicts"]
        row = self.rows.get(student)
        for code in codes:
            feature = self.auditor.feature_of(code)
            spec = self.auditor.specs.get(feature)
            if spec is None:
                continue
            if row is None or feature not in self.medians:
                contradicts.add(student, code, "no feature value to check the reason against")
                continue
            value = float(self.values[feature].iat[row])
            why = _contradiction(spec.direction, spec.missing_reason is not None, value, self.medians[feature],
                                 self.auditor.rules.get(code))
            if why:
                contradicts.add(student, code, why)


def audit_explained(explained: Explained, X: np.ndarray, names: list[str], catalog: Catalog,
                    profile: TrainingProfile, policy: ClassPolicy | None = None, *,
                    classes: Sequence[str] = FLAGGED, examples: int = 5) -> ReasonAudit:
    """Audit an in-memory explanation of rows ``X`` (n, f) in ``names`` order: every check, and contradictions.

    A reason contradicts the child when its feature's value lies at or on the safe side of the
    training median in ``profile`` (at the training precision, as reasons are chosen), or is
    missing without a ``missing_reason``; a rule's reason when its value does not cross the rule's
    line. Students are identified by their row index.
    """
    auditor = _Auditor(catalog, policy, CHECKS, examples)
    column = {name: j for j, name in enumerate(names)}
    grades = X[:, column["grade_level"]] if "grade_level" in column else np.full(len(X), np.nan)
    medians = dict(zip(names, at_training_precision(profile.medians(names)).tolist(), strict=True))
    contradicts = auditor.checks["contradicts"]
    for row in np.flatnonzero(np.isin(explained.risk_class, list(classes))).tolist():
        codes = [code for code, _, _ in explained.reasons[row]]
        grade = None if np.isnan(grades[row]) else int(grades[row])
        auditor.row(row, codes, grade)
        for code in codes:
            feature = auditor.feature_of(code)
            spec = auditor.specs.get(feature)
            if spec is None or feature not in column:
                continue
            value = float(X[row, column[feature]])
            why = _contradiction(spec.direction, spec.missing_reason is not None, value, medians[feature],
                                 auditor.rules.get(code))
            if why:
                contradicts.add(row, code, why)
    return auditor.result()


def _contradiction(direction: str, missing_ok: bool, value: float, median: float, rule: Any) -> str | None:
    """Why a reason with this value contradicts the child, or None when it does not."""
    if rule is not None:
        line, below = (rule.below, True) if rule.below is not None else (rule.above, False)
        crossed = value < line if below else value > line
        return None if crossed else f"value {value:g} does not cross the rule's line {line:g}"
    if value != value:
        return None if missing_ok else "missing value, and the catalog gives no missing_reason"
    at = float(at_training_precision(np.array([value]))[0])
    if direction == "higher" and at > median or direction == "lower" and at < median:
        return None
    if direction == "none":
        return "a feature with no risky side"
    return f"value {value:g} is on the safe side of the training median {median:g} ({direction} is riskier)"
