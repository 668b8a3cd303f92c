"""The features a pilot term was scored on, for the per-action estimate to adjust for.

Teachers choose whom to help from what they see of a child, and much of that (attendance, grades,
the family's income) is in the feature matrix the engine scored. The per-action estimate adjusts
for it besides the score, so this module rebuilds that matrix: the feature cache's point
(:func:`risk.features.cache.cached_features`) at the ``as_of`` of the term's last finished scoring
run in the store, the run whose alerts the schools acted on last.

Out: :class:`ScoredFeatures` — ``frame`` with ``student_key`` (int64, pseudonym) and one float
column per numeric catalog feature, named ``feature:<name>`` so no feature shadows a column of the
outcomes frame (NaN stays NaN: "not measured" is itself a signal the estimate may use);
or ``None`` and a note saying why no point could be built.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from risk.config import Settings
from risk.errors import RiskError
from risk.features.cache import DataFiles, cached_features
from risk.features.catalog import load_catalog
from risk.store import Store, last_scoring_date

__all__ = ["FEATURE_PREFIX", "ScoredFeatures", "scored_features"]

FEATURE_PREFIX = "feature:"


@dataclass(frozen=True)
class ScoredFeatures:
    """The term's features at its last scoring date (module docstring); ``frame`` None when none could be built,
    ``note`` says what was used or why not."""

    frame: pd.DataFrame | None
    as_of: dt.date | None
    note: str


def _numeric(path: Path, names: list[str]) -> pd.DataFrame:
    """``student_key`` and the numeric (or boolean) catalog features of the matrix at ``path``, as floats."""
    present = set(pq.read_schema(path).names)
    matrix = pd.read_parquet(path, columns=["student_key", *[n for n in names if n in present]])
    numeric = [n for n in matrix.columns[1:] if pd.api.types.is_numeric_dtype(matrix[n])
               or pd.api.types.is_bool_dtype(matrix[n])]
    out = matrix[numeric].astype("float64").add_prefix(FEATURE_PREFIX)
    out.insert(0, "student_key", matrix["student_key"].astype("int64"))
    return out.drop_duplicates("student_key")


def scored_features(store: Store, validated: Path, term: str, settings: Settings) -> ScoredFeatures:
    """The feature matrix of ``term`` at its last scoring date (built into the cache if it is not there yet).

    Never raises for missing data: a term never scored, a catalog that cannot be read or data the point
    cannot be built from give ``frame=None`` and a note (the estimate then adjusts for less).
    """
    as_of = last_scoring_date(store, term)
    if as_of is None:
        return ScoredFeatures(None, None, f"no finished scoring run of {term} in the store")
    try:
        catalog = load_catalog(settings.resolve(settings.features.catalog))
        path, _ = cached_features(validated, as_of, settings=settings, catalog=catalog,
                                  inputs=DataFiles.scan(validated))
        frame = _numeric(path, list(catalog.names))
    except (RiskError, OSError) as exc:
        return ScoredFeatures(None, as_of, f"the feature matrix at {as_of} could not be built ({exc})")
    return ScoredFeatures(frame, as_of, f"{frame.shape[1] - 1} features of the matrix at {as_of} "
                                        f"(the last scoring run of {term})")
