"""Reasons a teacher can read: which of a student's features pushed the score up.

Contributions come from the model (:meth:`risk.models.protocol.RiskModel.contributions`):
TreeSHAP for the LightGBM model, coefficient × distance from the training mean for a
logistic one, in the model's raw log-odds: for each row, one value per feature and,
last, the expected value; they add up to the row's raw score. Only their sign and
order matter here, so any model with an additive decomposition gives reasons.

A feature becomes a reason when, for that student,

* its contribution is above 0 (it pushed the risk up); reasons are ordered by
  contribution, largest first;
* its catalog ``role`` is ``child``: context (grade, transition year, the school's
  and district's past rates) is told once per school, not as a child's reason
  (``role="context"`` picks those for that purpose), and a ``protected`` feature
  (sex, nationality, disability) is never a reason: a child must never read that
  they are at risk because they are not Thai or disabled;
* its catalog ``direction`` is ``higher`` or ``lower`` (``none`` marks values
  with no risky side, such as region or the days so far);
* the child's grade is at least the feature's ``min_grade`` (the ``grade_level``
  column of X, a category index): nothing about the 80% exam line or มส goes to a
  kindergarten child, who sits no exams; with the grade missing, not at all;
* the value lies on the risky side of the training median stored in the model's
  :class:`~risk.models.profile.TrainingProfile`: below it for ``lower``, above it
  for ``higher`` (for a 0/1 flag with median 0, that means the flag is set).
  SHAP can credit a 98% attendance with some risk (it is lower than 100%), but
  "attended only 98%" would mislead, so the next contributor is taken instead;
* or the value is missing and the catalog entry has a ``missing_reason`` text;
  otherwise a missing value is never a reason of its own;
* it is the strongest eligible feature of its catalog ``group``: reasons that state
  one fact (attendance this term, over 20 days, and against the 80% line) are
  given once.

Fewer than ``k`` reasons per row is normal. Texts are the catalog's reason texts,
filled by :func:`~risk.features.catalog.reason_text`.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from risk.errors import ConfigError
from risk.features.catalog import GRADE_FEATURE, Catalog, FeatureSpec, reason_writer
from risk.models.profile import TrainingProfile, at_training_precision

__all__ = ["Reason", "reason_codes_json", "reasons_json", "top_reasons"]

LANGS = ("en", "th")
_DIRECTION = {"higher": 1, "lower": -1, "none": 0}
# Rows handled at once, so the (rows, features) masks stay small on a national run.
_BLOCK_ROWS = 65_536


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason for one student.

    ``code`` is the feature name, ``value`` the student's value (None when
    missing), ``contribution`` its contribution in log-odds (> 0), ``en``/``th``
    the texts a teacher reads.
    """

    code: str
    value: float | None
    contribution: float
    en: str
    th: str

    def text(self, lang: str) -> str:
        return self.en if lang == "en" else self.th


def top_reasons(
    contribs: NDArray[np.float64],
    X: NDArray[np.float64],
    names: list[str],
    catalog: Catalog,
    profile: TrainingProfile,
    k: int = 3,
    *,
    role: str = "child",
    blocked: NDArray[np.bool_] | None = None,
) -> list[list[Reason]]:
    """Up to ``k`` reasons per row, the strongest first, at most one per catalog group.

    Parameters
    ----------
    contribs : ndarray of shape (n_samples, n_features + 1)
        From the model's ``contributions`` (:class:`~risk.models.protocol.RiskModel`); the last
        column (expected value) is ignored.
    X : ndarray of shape (n_samples, n_features)
        The same rows' feature values; NaN is missing.
    names : list of str, length n_features
        Column names, each a catalog feature and in the profile.
    catalog : Catalog
        Directions and reason texts.
    profile : TrainingProfile
        Training medians, which decide the risky side.
    k : int, default 3
    role : {"child", "context"}, default "child"
        Which features may be reasons: a child's own, or the context a school is told once.
        Protected features are never reasons.
    blocked : ndarray of bool, shape (n_samples, n_features), optional
        True where a feature may not be that row's reason (a fired class rule already
        states its group).

    Returns
    -------
    list of length n_samples of lists of at most ``k`` :class:`Reason`
    """
    contribs = np.asarray(contribs, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    n, f = len(X), len(names)
    if X.shape != (n, f) or contribs.shape != (n, f + 1):
        raise ValueError(f"need X of shape (n, {len(names)}) and contribs of shape (n, {len(names) + 1}), "
                         f"got {X.shape} and {contribs.shape}")
    if k < 1:
        raise ValueError(f"k is {k}, expected at least 1")
    if role not in ("child", "context"):
        raise ValueError(f"role is {role!r}, expected 'child' or 'context' (protected features are never reasons)")
    if blocked is not None and np.shape(blocked) != (n, f):
        raise ValueError(f"blocked has shape {np.shape(blocked)}, expected {(n, f)}")
    specs = _specs(catalog, names)
    profiled = set(profile.names)
    unprofiled = [name for name in names if name not in profiled]
    if unprofiled:
        raise ConfigError(f"the model's training profile lacks features {', '.join(unprofiled)}")
    if n == 0:
        return []
    rule = _Rule(specs, profile.medians(names), catalog, names, role)
    # Pick the reasons block by block with numpy, then make texts only for those picked.
    picked = [rule.pick(contribs[i:i + _BLOCK_ROWS, :f], X[i:i + _BLOCK_ROWS], min(k, f),
                        None if blocked is None else blocked[i:i + _BLOCK_ROWS])
              for i in range(0, n, _BLOCK_ROWS)]
    per_row, feature, strength, value = (np.concatenate(part) for part in zip(*picked, strict=True))
    with _gc_paused():
        en, th = _texts(specs, feature, value)
        flat = [Reason(names[j], None if v != v else v, c, e, t)
                for j, v, c, e, t in zip(feature.tolist(), value.tolist(), strength.tolist(), en, th, strict=True)]
        ends = np.cumsum(per_row).tolist()
        return [flat[stop - count:stop] for stop, count in zip(ends, per_row.tolist(), strict=True)]


def reasons_json(reasons: list[list[Reason]], lang: str) -> list[str]:
    """Each row's reason texts in ``lang`` (``en`` or ``th``) as a JSON list, Thai unescaped."""
    if lang not in LANGS:
        raise ValueError(f"lang is {lang!r}, expected one of {LANGS}")
    return [json.dumps([r.text(lang) for r in row], ensure_ascii=False) for row in reasons]


def reason_codes_json(reasons: list[list[Reason]]) -> list[str]:
    """Each row's reason codes (feature names) as a JSON list."""
    return [json.dumps([r.code for r in row]) for row in reasons]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small objects.

    A national run makes over a million reasons; each batch of allocations sets
    off a collection that walks them all again, which doubles the time. They
    hold no reference cycles, so nothing is lost by not looking.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _specs(catalog: Catalog, names: list[str]) -> list[FeatureSpec]:
    by_name = {spec.name: spec for spec in catalog.features}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ConfigError(f"the model uses features the catalog does not describe: {', '.join(unknown)}")
    return [by_name[name] for name in names]


class _Rule:
    """Which (row, feature) pairs may be reasons, and the strongest of them per row."""

    def __init__(self, specs: list[FeatureSpec], medians: NDArray[np.float64], catalog: Catalog, names: list[str],
                 role: str) -> None:
        direction = np.array([_DIRECTION[spec.direction] for spec in specs])
        allowed = np.array([spec.role == role for spec in specs]) & (direction != 0)
        self.higher = (direction > 0) & allowed
        self.lower = (direction < 0) & allowed
        self.medians = at_training_precision(medians)
        self.missing_ok = np.array([spec.missing_reason is not None for spec in specs]) & allowed
        # min_grade as the grade_level category index (NaN: any grade); no grade column means no grade known.
        self.min_grade = np.array([np.nan if spec.min_grade is None else float(catalog.grade_index(spec.min_grade))
                                   for spec in specs])
        self.graded = np.flatnonzero(~np.isnan(self.min_grade))
        self.grade_column = names.index(GRADE_FEATURE) if GRADE_FEATURE in names else None
        # Columns of each group with more than one candidate: of these a row keeps only its strongest.
        groups: dict[str, list[int]] = {}
        for j, spec in enumerate(specs):
            if allowed[j]:
                groups.setdefault(spec.group, []).append(j)
        self.groups = [np.array(columns) for columns in groups.values() if len(columns) > 1]

    def pick(self, contribs: NDArray[np.float64], x: NDArray[np.float64], k: int,
             blocked: NDArray[np.bool_] | None = None
             ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64], NDArray[np.float64]]:
        """Up to ``k`` reasons per row, strongest first, one per group.

        Returns the number of reasons of each row, shape ``(rows,)``, and, row after
        row, each reason's feature index, contribution and value, shape ``(reasons,)``.
        """
        # Comparisons with a NaN value or a NaN median are False: neither side is risky. Both at the
        # training precision: 47/49 in float64 lies just below its float32 copy, the stored median.
        at = at_training_precision(x)
        risky = (self.higher & (at > self.medians)) | (self.lower & (at < self.medians))
        eligible = (contribs > 0) & (risky | (np.isnan(x) & self.missing_ok))
        if blocked is not None:
            eligible &= ~blocked
        if self.graded.size:
            grade = x[:, self.grade_column] if self.grade_column is not None else np.full(len(x), np.nan)
            # A missing grade compares False: the feature is no reason for that row.
            eligible[:, self.graded] &= grade[:, None] >= self.min_grade[self.graded]
        masked = np.where(eligible, contribs, -np.inf)
        rows = np.arange(len(masked))
        for columns in self.groups:
            strongest = columns[np.argmax(masked[:, columns], axis=1)]
            kept = masked[rows, strongest]
            masked[:, columns] = -np.inf
            masked[rows, strongest] = kept
        if k < masked.shape[1]:
            top = np.argpartition(-masked, k - 1, axis=1)[:, :k]
        else:
            top = np.broadcast_to(np.arange(masked.shape[1]), masked.shape)
        strength = np.take_along_axis(masked, top, axis=1)
        order = np.argsort(-strength, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        strength = np.take_along_axis(strength, order, axis=1)
        chosen = strength > -np.inf  # sorted, so each row's chosen slots come first
        values = np.take_along_axis(x, top, axis=1)
        return chosen.sum(axis=1), top[chosen], strength[chosen], values[chosen]


def _texts(specs: list[FeatureSpec], feature: NDArray[np.intp], value: NDArray[np.float64]
           ) -> tuple[list[str], list[str]]:
    """English and Thai texts of each (feature, value), writing each distinct value once."""
    en = np.empty(feature.size, dtype=object)
    th = np.empty(feature.size, dtype=object)
    for j in np.unique(feature).tolist():
        spec = specs[j]
        where = np.flatnonzero(feature == j)
        # np.unique puts NaN (missing, only for features with a missing_reason) last, once.
        distinct, inverse = np.unique(value[where], return_inverse=True)
        for lang, out in (("en", en), ("th", th)):
            write = reason_writer(spec, lang)
            out[where] = np.array([write(v) for v in distinct.tolist()], dtype=object)[inverse]
    return en.tolist(), th.tolist()
