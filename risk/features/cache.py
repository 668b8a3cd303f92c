"""The feature cache: the feature matrix at a date, built once and reused while its inputs are unchanged.

Matrices live under the validated folder
(``_derived/features/<catalog version>/<as_of>-<inputs hash>.parquet``). A point's key
hashes the feature and label settings and the validated files that can hold rows
dated on or before it (:class:`DataFiles`), so a new term's export leaves the
points of earlier terms cached; ``risk validate`` clears the cache when it
rewrites the tables. :func:`inputs_hash` is the coarser hash of a whole folder
(its validation report and the same settings) that names a training run's inputs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from risk.config import Settings
from risk.data.contract import TABLES, term_of_date
from risk.data.incremental import DERIVED
from risk.features.batch import build_feature_matrix
from risk.features.catalog import Catalog

__all__ = ["DataFiles", "cached_features", "feature_cache_path", "inputs_hash"]


def inputs_hash(validated: Path, settings: Settings) -> str:
    """A hash of what feature rows depend on: the validation report (it changes with the data) and the
    feature and label settings; 16 hex digits."""
    report = validated / "validation_report.json"
    digest = hashlib.sha256(report.read_bytes() if report.exists() else b"no report")
    digest.update(_settings_json(settings))
    return digest.hexdigest()[:16]


def cached_features(validated: Path, as_of: dt.date, *, settings: Settings, catalog: Catalog,
                    inputs: str | DataFiles) -> tuple[Path, bool]:
    """The feature matrix at ``as_of`` (built once, then reused) and whether it was reused.

    ``inputs`` is the :class:`DataFiles` of the folder (the cache key is then the files that
    can hold rows dated on or before ``as_of``, so a new term's export leaves the points of
    earlier terms cached), or a fixed hash.
    """
    path = feature_cache_path(validated, as_of, settings=settings, catalog=catalog, inputs=inputs)
    if path.exists():
        return path, True
    build_feature_matrix(validated, as_of, path, settings=settings, catalog=catalog, progress=False,
                         check_data=False)
    return path, False


def feature_cache_path(validated: Path, as_of: dt.date, *, settings: Settings, catalog: Catalog,
                       inputs: str | DataFiles) -> Path:
    """Where the feature matrix at ``as_of`` is cached (see :func:`cached_features`)."""
    key = inputs.point_hash(as_of, settings) if isinstance(inputs, DataFiles) else inputs
    return validated / DERIVED / "features" / catalog.version / f"{as_of.isoformat()}-{key}.parquet"


@dataclass(frozen=True)
class DataFiles:
    """The validated Parquet files with, from their statistics, the earliest date and term each holds.

    A feature point at ``as_of`` reads only rows dated on or before it (and terms up to its
    own), so its cache key needs only the files that hold such rows.
    """

    files: tuple[tuple[str, int, str, str], ...]  # (path, bytes, earliest date ISO, earliest term)

    @classmethod
    def scan(cls, validated: Path) -> DataFiles:
        """The validated tables' files under ``validated`` (quarantine, caches and stopped runs left out)."""
        rows = []
        for path in sorted(validated.glob("*/**/*.parquet")):
            relative = path.relative_to(validated)
            # Only the validated tables: quarantine, caches and stopped runs (failed_runs/) are not data.
            if relative.parts[0] not in TABLES:
                continue
            rows.append((str(relative), path.stat().st_size, *_earliest(path)))
        return cls(tuple(rows))

    def point_hash(self, as_of: dt.date, settings: Settings) -> str:
        """The cache key of the point at ``as_of``: the settings and the files that can touch it; 16 hex digits."""
        day, term = as_of.isoformat(), term_of_date(as_of)
        digest = hashlib.sha256(_settings_json(settings))
        for name, size, first_day, first_term in self.files:
            if first_day <= day or first_term <= term:
                digest.update(f"{name}:{size};".encode())
        return digest.hexdigest()[:16]


def _settings_json(settings: Settings) -> bytes:
    """The feature and label settings as canonical JSON: every cached matrix depends on them."""
    return json.dumps([settings.features.model_dump(mode="json"), settings.labels.model_dump(mode="json")],
                      sort_keys=True).encode()


def _earliest(path: Path) -> tuple[str, str]:
    """Earliest date and term in a file from its row-group statistics; "" (always relevant) when unknown."""
    meta = pq.ParquetFile(path).metadata
    days, terms = [], []
    for i in range(meta.num_columns):
        column = meta.schema.column(i)
        name = column.name
        is_date = column.logical_type.type == "DATE"
        is_term = name == "term"
        if not (is_date or is_term) or name == "birth_date":
            continue
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            stats = group.column(i).statistics
            if stats is not None and stats.has_null_count and stats.null_count == group.num_rows:
                continue  # all empty (a status_date column of students still studying): holds no date
            if stats is None or not stats.has_min_max:
                return "", ""
            (days if is_date else terms).append(str(stats.min))
    if "term=" in str(path):  # attendance's term lives in its folder name
        terms.append(str(path).split("term=", 1)[1].split("/", 1)[0])
    return (min(days) if days else "9999"), (min(terms) if terms else "9999")
