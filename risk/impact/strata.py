"""Strata of a pilot plan: OBEC's school-size classes, joined labels, and merging strata too small for both arms."""

from __future__ import annotations

import numpy as np
import pandas as pd

from risk.errors import ConfigError, ContractError

__all__ = ["POOLED_STRATUM", "SIZE_BUCKETS", "merge_small_strata", "size_bucket", "stratum_labels"]

# OBEC's school-size classes by enrolled students (สพฐ. เกณฑ์ขนาดโรงเรียน): small up to
# 120, medium 121-600, large 601-1,500, extra large above. Small schools are where
# dropout and merging policy differ, so the classes are the natural strata.
SIZE_BUCKETS: tuple[tuple[str, int], ...] = (
    ("small", 120),
    ("medium", 600),
    ("large", 1500),
    ("extra_large", np.iinfo(np.int64).max),
)


def size_bucket(students: pd.Series) -> pd.Series:
    """OBEC size class of each school from its student count.

    Parameters
    ----------
    students : Series of shape (n_schools,)
        Enrolled students per school (a count; NaN is not allowed).

    Returns
    -------
    Series of shape (n_schools,), same index, of ``"small"`` (≤120), ``"medium"``
    (121–600), ``"large"`` (601–1,500) or ``"extra_large"`` (>1,500).
    """
    counts = pd.to_numeric(students, errors="raise")
    if counts.isna().any() or (counts < 0).any():
        raise ContractError("schools: column 'size' must be a student count (≥0) for every school")
    edges = [-1] + [upper for _, upper in SIZE_BUCKETS]
    labels = [name for name, _ in SIZE_BUCKETS]
    return pd.cut(counts, bins=edges, labels=labels).astype(str)


def stratum_labels(schools: pd.DataFrame, strata: list[str]) -> pd.Series:
    """One label per school joining its strata values (``size`` bucketed), e.g. ``"Nan|small"``."""
    if not strata:
        return pd.Series("all", index=schools.index)
    parts = []
    for name in strata:
        if name not in schools.columns:
            raise ConfigError(f"stratify: no column {name!r} in the schools table "
                              f"(columns: {', '.join(map(str, schools.columns))})")
        values = size_bucket(schools[name]) if name == "size" else schools[name].astype(str)
        parts.append(values.to_numpy(dtype=object))
    joined = parts[0]
    for values in parts[1:]:
        joined = joined + "|" + values
    return pd.Series(joined, index=schools.index)


POOLED_STRATUM = "pooled"


def _too_small(labels: pd.Series, share: float) -> pd.Series:
    """Per school: is its stratum too small to hold a school in each arm for sure?"""
    sizes = labels.map(labels.value_counts())
    return sizes * min(share, 1.0 - share) < 1.0


def merge_small_strata(labels: pd.Series, share: float) -> pd.Series:
    """Merge the strata too small to hold both arms into coarser ones.

    A stratum that can hold only one arm (n·min(share, 1−share) < 1, e.g. one
    school at share 0.5) compares nothing: with strata fixed effects its school
    drops out of the estimate, and when most strata are so small the effect is
    not identified at all (the estimate comes out 0 ± 0). Such strata lose their
    last part first (``"Nan|small"`` -> ``"Nan"``), so a province keeps its own
    stratum where it can; what is still too small is pooled into ``"pooled"``.
    """
    merged = labels.astype(str).copy()
    while True:
        small = _too_small(merged, share)
        coarser = small & merged.str.contains("|", regex=False)
        if not coarser.any():
            break
        merged[coarser] = merged[coarser].str.rsplit("|", n=1).str[0]
    merged[_too_small(merged, share)] = POOLED_STRATUM
    return merged
