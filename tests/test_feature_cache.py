"""Feature points are cached by the files that can touch their date: a new term leaves earlier points cached."""

from __future__ import annotations

import datetime as dt

from conftest import WORLD_KEY

from risk.config import load_settings
from risk.data.split import split_export
from risk.data.validate import validate_sources
from risk.models.samples import DataFiles, SamplePoint, feature_cache_path

EARLY = SamplePoint("2567-2", dt.date(2024, 12, 20), 8)
LATE = SamplePoint("2568-2", dt.date(2025, 12, 19), 8)


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
