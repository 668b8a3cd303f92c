"""One bucket of students → probability, class and reasons a teacher can read (th/en).

Reasons come from the model's contributions (:class:`~risk.models.protocol.RiskModel`:
TreeSHAP for the LightGBM model, LightGBM's ``pred_contrib`` for a few rows and the compiled
forest's tables for batches) on the students whose class asks for them (at-risk and problem
by default), filtered by the catalog (:func:`risk.models.explain.top_reasons`: the child's
own features only, one per group, exam-line ones from P1). A class-raising policy rule that
fired is a reason of its own and comes first; it states its feature's group, so no model
reason of that group follows it ("under the 80% line" is not followed by "attended only 71%").

Each explained row also carries its context (grade, transition year, the school's and
district's past rates) apart from its reasons: the school is told those once, not each
child. Protected features (sex, nationality, disability) appear in neither. A row the
class policy's rule lifted above the class its probability gives is marked with the
rule's id (``raised_by``), so pages and reports show it as rule-raised, not model-flagged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from risk.features.catalog import FeatureSpec, format_value
from risk.models.bundle import ModelBundle
from risk.models.explain import top_reasons
from risk.models.policy import CLASSES, ClassPolicy
from risk.scoring.settings import ReasonSettings

__all__ = ["Explained", "explain_rows", "explained_scores", "raised_by_rule", "reason_value"]

Line = tuple[str, str, str]  # (code, en, th)


@dataclass(frozen=True)
class Explained:
    """Rows' probability (n,), class names (n,), and per row its reasons: (code, en, th), most important first.

    ``raised_by`` (n,) object: the id of the class rule that raised the row above the class its
    probability gives, else None. ``context`` per row: the context features (code, en, th) that
    pushed its risk up, strongest first; never among ``reasons``, never protected features.
    """

    probability: np.ndarray
    risk_class: np.ndarray
    reasons: list[list[Line]]
    raised_by: np.ndarray
    context: list[list[Line]]


def explain_rows(bundle: ModelBundle, X: np.ndarray, reasons: ReasonSettings) -> Explained:
    """Probability, class and reasons of rows ``X`` (n, f) in the bundle's feature order (the service's form)."""
    names = bundle.names
    probability, codes, hits = bundle.classify(X)
    raised = raised_by_rule(bundle.policy, codes, bundle.policy.model_codes(probability, X, names), hits)
    wanted = np.isin(codes, [CLASSES.index(c) for c in reasons.for_classes])
    out: list[list[Line]] = [[] for _ in range(len(X))]
    context: list[list[Line]] = [[] for _ in range(len(X))]
    rows = np.flatnonzero(wanted)
    if len(rows):
        x = X[rows]
        contribs = bundle.contributions(x)
        rules, blocked = _rule_reasons(bundle, x, hits[rows])
        chosen = top_reasons(contribs, x, names, bundle.catalog, bundle.profile, k=reasons.top, blocked=blocked)
        n_context = sum(bundle.catalog.get(name).role == "context" for name in names)
        surroundings = top_reasons(contribs, x, names, bundle.catalog, bundle.profile, k=max(n_context, 1),
                                   role="context")
        for row, rule_reasons, model_reasons, around in zip(rows, rules, chosen, surroundings, strict=True):
            found = rule_reasons[:reasons.top]
            found += [(r.code, r.en, r.th) for r in model_reasons[:reasons.top - len(found)]]
            out[row] = found
            context[row] = [(r.code, r.en, r.th) for r in around]
    return Explained(probability, bundle.class_names(codes), out, raised, context)


def explained_scores(bundle: ModelBundle, X: np.ndarray, reasons: ReasonSettings) -> pd.DataFrame:
    """Scores of rows ``X`` (n, f) in the bundle's feature order, as the batch scorer stores them.

    Returns a frame of n rows: ``probability``, ``risk_class``, ``reasons_en``, ``reasons_th``,
    ``reason_codes`` as JSON lists (``[]`` for a student not explained), ``raised_by`` (the rule id,
    or None), and ``context_codes``, ``context_en``, ``context_th`` as JSON lists.
    """
    explained = explain_rows(bundle, X, reasons)
    columns = {name: np.full(len(X), "[]", dtype=object) for name in
               ("reasons_en", "reasons_th", "reason_codes", "context_codes", "context_en", "context_th")}
    for lines, (codes, en, th) in ((explained.reasons, ("reason_codes", "reasons_en", "reasons_th")),
                                   (explained.context, ("context_codes", "context_en", "context_th"))):
        codes, en, th = columns[codes], columns[en], columns[th]
        for row, found in enumerate(lines):
            if found:
                codes[row] = json.dumps([code for code, _, _ in found])
                en[row] = json.dumps([text for _, text, _ in found], ensure_ascii=False)
                th[row] = json.dumps([text for _, _, text in found], ensure_ascii=False)
    return pd.DataFrame({"probability": explained.probability, "risk_class": explained.risk_class,
                         "reasons_en": columns["reasons_en"], "reasons_th": columns["reasons_th"],
                         "reason_codes": columns["reason_codes"], "raised_by": explained.raised_by,
                         "context_codes": columns["context_codes"], "context_en": columns["context_en"],
                         "context_th": columns["context_th"]})


def raised_by_rule(policy: ClassPolicy, codes: np.ndarray, model_codes: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """Per row (n,) object: the id of the rule that raised the class above ``model_codes``, else None.

    ``codes`` are the final class codes, ``model_codes`` those of the probability alone, ``hits``
    (n, rules) which rules fired. Of several fired rules the first, in the policy's order, that
    raises to the final class names it.
    """
    raised = np.full(len(codes), None, dtype=object)
    lifted = codes > model_codes
    for j in reversed(range(len(policy.rules))):  # reversed: the first rule in order is written last
        rule = policy.rules[j]
        rows = lifted & hits[:, j] & (codes == CLASSES.index(rule.raise_to))
        raised[rows] = rule.id
    return raised


def _rule_reasons(bundle: ModelBundle, X: np.ndarray, hits: np.ndarray) -> tuple[list[list[Line]], np.ndarray]:
    """Per row, the (code, en, th) of each policy rule that fired, with the student's value filled in,
    and the (n, f) mask of features whose group a fired rule already states (one rule per group)."""
    out: list[list[Line]] = [[] for _ in range(len(X))]
    names = bundle.names
    groups = np.array([bundle.catalog.get(name).group for name in names], dtype=object)
    blocked = np.zeros((len(X), len(names)), dtype=bool)
    for j, rule in enumerate(bundle.policy.rules):
        spec = bundle.catalog.get(rule.feature)
        column = names.index(rule.feature)
        same_group = groups == spec.group
        for row in np.flatnonzero(hits[:, j]):
            if blocked[row, column]:  # an earlier rule already said this fact
                continue
            value = float(X[row, column])
            out[row].append((
                f"rule:{rule.id}",
                rule.reason.en.format(value=reason_value(spec, value, "en")),
                rule.reason.th.format(value=reason_value(spec, value, "th")),
            ))
            blocked[row] |= same_group
    return out, blocked


def reason_value(spec: FeatureSpec, value: float, lang: str) -> str:
    """The value as a rule's reason shows it: the catalog's formatting of the feature (e.g. ``71%``)."""
    return format_value(value, spec.unit, lang, spec.categories)
