"""Batch path: the feature matrix of every enrolled student, one bucket of students at a time.

Validated student tables are split into buckets by pseudonym (``bucket=N``
folders), so each step reads only its bucket's files and memory stays bounded
whatever the national size.
"""

from __future__ import annotations

import datetime as dt
import resource
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from risk.config import Settings
from risk.errors import ContractError
from risk.features.base import AsOf
from risk.features.build import build_features
from risk.features.catalog import Catalog
from risk.features.context_rates import open_validated
from risk.features.freshness import (
    DomainFreshness,
    check_as_of_in_data,
    domain_freshness,
    warnings_of,
)
from risk.features.sources import view_validated
from risk.progress import Progress

__all__ = ["FeatureRunReport", "build_feature_matrix", "buckets_of"]


class FeatureRunReport(BaseModel):
    as_of: dt.date
    term: str
    students: int
    features: int
    catalog_version: str
    missing_share: dict[str, float]
    seconds: float
    peak_rss_mb: float
    output: str
    # Each student domain's newest row and status at as_of (risk.features.freshness).
    freshness: list[DomainFreshness] = []

    def summary_lines(self) -> list[str]:
        worst = sorted(self.missing_share.items(), key=lambda kv: -kv[1])[:5]
        return [
            f"features at {self.as_of} (term {self.term}): {self.students:,} students × {self.features} features",
            f"catalog {self.catalog_version}; {self.seconds:.1f} s; peak RSS {self.peak_rss_mb:,.0f} MB",
            "most often missing: " + ", ".join(f"{n} {s:.0%}" for n, s in worst),
            *(f"warning: {sentence}" for sentence in warnings_of(self.freshness)),
            f"written to {self.output}",
        ]


def buckets_of(validated: Path) -> list[int]:
    """The student buckets present in a validated folder."""
    folder = validated / "enrollments"
    if not folder.is_dir():
        raise ContractError(f"{validated} holds no validated enrollments: run `risk validate` first")
    buckets = sorted(int(p.name.split("=", 1)[1]) for p in folder.glob("bucket=*") if p.is_dir())
    if not buckets:
        raise ContractError(f"{folder} has no bucket=N folders: was it written by `risk validate`?")
    return buckets


def build_feature_matrix(validated: Path, as_of: dt.date, out: Path, *, settings: Settings, catalog: Catalog,
                         progress: bool = True, check_data: bool = True) -> FeatureRunReport:
    """Write the feature matrix at ``as_of`` to ``out`` (Parquet, pseudonymous keys, catalog version).

    An ``as_of`` the store does not cover raises :class:`~risk.features.freshness.AsOfOutsideDataError`
    before anything is written; a stale or missing domain is a warning in the report and the log.
    ``check_data=False`` skips both, for callers whose points come from the store's own
    calendar (training samples: dozens of past points, each inside the data by construction).
    """
    started = time.perf_counter()
    point = AsOf(as_of)
    buckets = buckets_of(validated)
    freshness: list[DomainFreshness] = []
    if check_data:
        check_as_of_in_data(validated, as_of)
        freshness = domain_freshness(validated, as_of, settings)
    con = open_validated(validated, point, settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    writer: pq.ParquetWriter | None = None
    rows = 0
    missing = pd.Series(0.0, index=catalog.names)
    with Progress(enabled=progress) as bar:
        task = bar.add(f"features at {as_of}", total=len(buckets))
        for bucket in buckets:
            view_validated(con, validated, bucket=bucket)
            frame = build_features(con, point, catalog, keep_shared=True)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                meta = {b"risk.catalog_version": catalog.version.encode(), b"risk.as_of": as_of.isoformat().encode(),
                        b"risk.term": point.term.encode()}
                writer = pq.ParquetWriter(partial, table.schema.with_metadata(meta), compression="zstd")
            writer.write_table(table.cast(writer.schema))
            rows += len(frame)
            missing += frame[catalog.names].isna().sum()
            bar.advance(task)
    if writer is not None:
        writer.close()
    if rows == 0:  # enrolled in the term, but every one had left by as_of: an empty matrix is no answer
        partial.unlink(missing_ok=True)
        raise ContractError(f"no student of term {point.term} in {validated} is still enrolled at {as_of}")
    partial.replace(out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return FeatureRunReport(
        as_of=as_of, term=point.term, students=rows, features=len(catalog.names), catalog_version=catalog.version,
        missing_share={k: round(v / max(rows, 1), 4) for k, v in missing.items()},
        seconds=round(time.perf_counter() - started, 2), peak_rss_mb=round(peak, 1), output=str(out),
        freshness=freshness,
    )
