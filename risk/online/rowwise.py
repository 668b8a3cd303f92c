"""The catalog evaluated on one student's records with numpy: the service's fast feature engine.

Batch builds features with the SQL of the domain modules (:mod:`risk.features.build`);
that SQL is the definition. Run on one student, DuckDB's fixed cost per statement
(~180 operators planned and started for a few hundred rows) is ~50 ms, twice the
whole budget of an online score. This module evaluates the same catalog entries —
the same compute kinds with the same parameters — on a student's records held as
arrays, in well under a millisecond.

The parts (:mod:`risk.online.rowwise_parts`) and the compute kinds
(:mod:`risk.online.rowwise_kinds`, a table kind → function) each name the SQL they
mirror and keep its rules: NULL is NaN and propagates as SQL's NULL does; an
aggregate over no rows is NULL, a count 0; a part with no rows for the student
leaves all its features NULL (the LEFT JOIN of the plan).
``tests/test_online_rowwise.py`` holds the two side by side on every student of
generated worlds for the shipped catalog, ``tests/test_parity_kinds.py`` for a
catalog of every kind, so a change to one that the other lacks fails.

A student the evaluator cannot place raises :class:`NeedsSql`: the one case the
design leaves to the SQL plan. Any other exception is a bug.

Input is :class:`StudentRecords` (:mod:`risk.online.rowwise_records`): one
student's *valid* records in the validated layout, as arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from risk.features.base import AsOf
from risk.features.catalog import Catalog, FeatureSpec
from risk.features.enrollment import LEFT
from risk.online.rowwise_kinds import FAMILY_OF, KINDS
from risk.online.rowwise_parts import PART_OF, PARTS
from risk.online.rowwise_records import Moment, RowReferences, StudentRecords, records_from_frames

__all__ = ["NeedsSql", "RowEvaluator", "RowReferences", "StudentRecords", "records_from_frames"]


class NeedsSql(Exception):
    """The evaluator cannot compute this student the way SQL would: the builder sends the payload the full way.

    ``reason`` is a short phrase (no IDs) for the fallback metric and log.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RowEvaluator:
    """The enabled features of ``catalog`` at ``as_of``, one student at a time (see the module docstring).

    Built once per (catalog, as_of); :meth:`evaluate` is safe to call from many threads.
    Raises ValueError when the catalog holds a domain or kind the evaluator does not implement.
    """

    def __init__(self, catalog: Catalog, as_of: AsOf, refs: RowReferences) -> None:
        self.catalog = catalog
        self.as_of = as_of
        self.refs = refs
        self.moment = Moment.of(as_of, refs)
        self._features: list[tuple[str, Callable[[Any], float]]] = [
            (PART_OF[spec.domain], self._compiled(spec)) for spec in catalog.enabled]

    def cohort_row(self, rec: StudentRecords) -> dict[str, Any] | None:
        """The student's enrollment of the term of ``as_of`` if they had not left by then (``cohort_sql``).

        Raises NeedsSql when the student has two such rows (the contract's unique key forbids it).
        """
        enr = rec.table("enrollments")
        if not len(enr.get("term", ())):
            return None
        status_date, day = enr["status_date"], self.moment.day
        left = np.array([s in LEFT for s in enr["status"]], dtype=bool) & ~np.isnat(status_date) & (
            status_date <= day)
        rows = np.flatnonzero((enr["term"] == self.moment.term) & ~left)
        if len(rows) > 1:
            raise NeedsSql("enrollments the evaluator leaves to SQL")
        if not len(rows):
            return None
        return {column: values[rows[0]] for column, values in enr.items()}

    def evaluate(self, rec: StudentRecords) -> tuple[dict[str, Any], np.ndarray] | None:
        """(cohort row, feature vector in catalog order), or None when the student is not in the cohort.

        Raises NeedsSql for a student only the SQL plan can compute.
        """
        cohort = self.cohort_row(rec)
        if cohort is None:
            return None
        parts: dict[str, Any] = {}
        out = np.empty(len(self._features), dtype=np.float64)
        for i, (part, feature) in enumerate(self._features):
            if part not in parts:
                parts[part] = PARTS[part](self.moment, rec, cohort)
            data = parts[part]
            out[i] = np.nan if data is None else feature(data)
        return cohort, out

    def _compiled(self, spec: FeatureSpec) -> Callable[[Any], float]:
        """The feature of one catalog entry: its kind's maker from :data:`risk.online.rowwise_kinds.KINDS`."""
        kinds = KINDS[FAMILY_OF[spec.domain]]
        kind = spec.compute["kind"]
        if kind not in kinds:
            raise ValueError(f"feature {spec.name!r}: the row-wise evaluator has no {spec.domain} kind {kind!r}")
        return kinds[kind](spec, self.moment)
