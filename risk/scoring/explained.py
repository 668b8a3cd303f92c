"""One bucket of students → probability, class and reasons a teacher can read (th/en).

Reasons come from TreeSHAP on the students whose class asks for them (at-risk and
problem by default): LightGBM's ``pred_contrib`` for a few rows, the compiled forest's
tables for batches (the same values: ``ModelBundle.contributions``), filtered by the
catalog's direction (:func:`risk.models.explain.top_reasons`). A class-raising policy rule
that fired is a reason of its own and comes first; the SHAP reason on the same
feature is then not repeated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from risk.features.catalog import format_value
from risk.models.bundle import ModelBundle
from risk.models.explain import top_reasons
from risk.models.policy import CLASSES
from risk.scoring.settings import ReasonSettings

__all__ = ["Explained", "explain_rows", "explained_scores"]


@dataclass(frozen=True)
class Explained:
    """Rows' probability (n,), class names (n,), and per row its reasons: (code, en, th), most important first."""

    probability: np.ndarray
    risk_class: np.ndarray
    reasons: list[list[tuple[str, str, str]]]


def explain_rows(bundle: ModelBundle, X: np.ndarray, reasons: ReasonSettings) -> Explained:
    """Probability, class and reasons of rows ``X`` (n, f) in the bundle's feature order (the service's form)."""
    probability, codes, hits = bundle.classify(X)
    wanted = np.isin(codes, [CLASSES.index(c) for c in reasons.for_classes])
    out: list[list[tuple[str, str, str]]] = [[] for _ in range(len(X))]
    rows = np.flatnonzero(wanted)
    if len(rows):
        contribs = bundle.contributions(X[rows])
        chosen = top_reasons(contribs, X[rows], bundle.names, bundle.catalog, bundle.profile, k=reasons.top)
        rules = _rule_reasons(bundle, X[rows], hits[rows])
        for row, model_reasons, rule_reasons in zip(rows, chosen, rules, strict=True):
            found = list(rule_reasons)
            fired = {bundle.policy.rules[j].feature for j in np.flatnonzero(hits[row])}
            for reason in model_reasons:
                if len(found) >= reasons.top:
                    break
                if reason.code in fired:
                    continue
                found.append((reason.code, reason.en, reason.th))
            out[row] = found
    return Explained(probability, bundle.class_names(codes), out)


def explained_scores(bundle: ModelBundle, X: np.ndarray, reasons: ReasonSettings) -> pd.DataFrame:
    """Scores of rows ``X`` (n, f) in the bundle's feature order, as the batch scorer stores them.

    Returns a frame of n rows: ``probability``, ``risk_class``, and ``reasons_en``,
    ``reasons_th``, ``reason_codes`` as JSON lists (``[]`` for a student not explained).
    """
    explained = explain_rows(bundle, X, reasons)
    texts_en = np.full(len(X), "[]", dtype=object)
    texts_th = np.full(len(X), "[]", dtype=object)
    reason_codes = np.full(len(X), "[]", dtype=object)
    for row, found in enumerate(explained.reasons):
        if found:
            texts_en[row] = json.dumps([en for _, en, _ in found], ensure_ascii=False)
            texts_th[row] = json.dumps([th for _, _, th in found], ensure_ascii=False)
            reason_codes[row] = json.dumps([code for code, _, _ in found])
    return pd.DataFrame({"probability": explained.probability, "risk_class": explained.risk_class,
                         "reasons_en": texts_en, "reasons_th": texts_th, "reason_codes": reason_codes})


def _rule_reasons(bundle: ModelBundle, X: np.ndarray, hits: np.ndarray) -> list[list[tuple[str, str, str]]]:
    """Per row, the (code, en, th) of each policy rule that fired, with the student's value filled in."""
    out: list[list[tuple[str, str, str]]] = [[] for _ in range(len(X))]
    for j, rule in enumerate(bundle.policy.rules):
        spec = bundle.catalog.get(rule.feature)
        column = bundle.names.index(rule.feature)
        for row in np.flatnonzero(hits[:, j]):
            value = float(X[row, column])
            out[row].append((
                f"rule:{rule.id}",
                rule.reason.en.format(value=format_value(value, spec.unit, "en", spec.categories)),
                rule.reason.th.format(value=format_value(value, spec.unit, "th", spec.categories)),
            ))
    return out
