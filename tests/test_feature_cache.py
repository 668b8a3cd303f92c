"""Feature points are cached by the files that can touch their date: a new term leaves earlier points cached."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import WORLD_KEY

from risk.config import load_settings
from risk.data.export_split import split_export
from risk.data.validate import validate_sources
from risk.features.cache import DataFiles, _earliest, feature_cache_path

EARLY = dt.date(2024, 12, 20)  # a point of term 2567-2
LATE = dt.date(2025, 12, 19)  # a point of term 2568-2


def test_a_new_terms_export_keeps_earlier_points_and_moves_later_ones(world, tmp_path):
    from risk.features.catalog import load_catalog
    from risk.models.settings import REPO_ROOT

    settings = load_settings()
    catalog = load_catalog(REPO_ROOT / "configs" / "features.yaml")
    exports = split_export(world / "source", tmp_path / "split")
    validated = tmp_path / "validated"
    for export in exports[:-2]:
        validate_sources(export, validated, key=WORLD_KEY, progress=False, buckets=4)
    before = DataFiles.scan(validated)
    validate_sources(exports[-2], validated, key=WORLD_KEY, progress=False, buckets=4)
    after = DataFiles.scan(validated)
    early = [feature_cache_path(validated, EARLY, settings=settings, catalog=catalog, inputs=f)
             for f in (before, after)]
    late = [feature_cache_path(validated, LATE, settings=settings, catalog=catalog, inputs=f)
            for f in (before, after)]
    assert exports[-2].name == "2568-2"
    assert early[0] == early[1]
    assert late[0] != late[1]


def test_a_date_column_with_no_values_does_not_tie_a_file_to_every_point(tmp_path):
    # A new term's enrollments where every student is still studying: status_date all empty.
    # Such a file holds no early date, so it must not change the keys of earlier terms' points.
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"term": ["2569-1", "2569-1"], "status_date": pa.array([None, None], pa.date32())}), empty)
    assert _earliest(empty) == ("9999", "2569-1")
    dated = tmp_path / "dated.parquet"
    pq.write_table(pa.table({"term": ["2569-1", "2569-1"],
                             "status_date": pa.array([None, dt.date(2026, 6, 3)], pa.date32())}), dated)
    assert _earliest(dated) == ("2026-06-03", "2569-1")
