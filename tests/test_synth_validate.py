"""The synthetic export through the validator: exactly the rows the generator broke are quarantined."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from risk.data.synth import SynthConfig, generate
from risk.data.validate import validate_sources

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "synth.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    # Chunks of 500 students: each student table comes in several part files.
    config = SynthConfig.from_yaml(CONFIG).model_copy(update={"chunk_size": 500})
    generate(root / "source", students=1500, terms=3, seed=5, config=config, progress=False)
    report = validate_sources(root / "source", root / "validated", key=b"synth-test-key-0123456789",
                              progress=False, buckets=4)
    return root, report


def test_quarantine_is_exactly_the_injected_rows_with_their_rule(run):
    root, _ = run
    injected = pd.read_parquet(root / "source" / "_injected.parquet")
    quarantined = pd.concat(
        [pd.read_parquet(f).assign(table=f.parent.name) for f in (root / "validated" / "quarantine").glob("*/*.parquet")],
        ignore_index=True,
    )
    merged = injected.merge(quarantined[["table", "_file", "_row", "rules"]], how="outer", indicator=True,
                            left_on=["table", "file", "row"], right_on=["table", "_file", "_row"])
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    assert all(kind in rules.split(";") for kind, rules in zip(merged["kind"], merged["rules"], strict=True))


def test_counts_add_up_for_every_table(run):
    _, report = run
    assert len(report.tables) == 9
    for table in report.tables:
        assert table.rows_in == table.used + table.quarantined


def _source_table(folder: Path) -> pd.DataFrame:
    parts = []
    for path in sorted(folder.iterdir()):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False) if path.suffix == ".csv" else pd.read_parquet(path)
        parts.append(frame.assign(_file=f"{folder.name}/{path.name}", _row=range(len(frame))))
    return pd.concat(parts, ignore_index=True)


def test_online_equals_batch_on_synthetic_students(run):
    """Parity on realistic data: a sample of students, every table, several terms of history."""
    import datetime as dt

    from conftest import assert_compared
    from online_frames import online_features, online_features_many

    from risk.config import Settings
    from risk.data.contract import TABLES
    from risk.data.export_payloads import student_payloads
    from risk.data.ids import pseudonyms
    from risk.features.batch import build_feature_matrix
    from risk.features.catalog import load_catalog

    root, _ = run
    key = b"synth-test-key-0123456789"
    catalog = load_catalog(CONFIG.parent / "features.yaml")
    as_of = dt.date(2026, 7, 24)
    build_feature_matrix(root / "validated", as_of, root / "features.parquet", settings=Settings(), catalog=catalog,
                         progress=False)
    matrix = pd.read_parquet(root / "features.parquet").set_index("student_key")
    injected = pd.read_parquet(root / "source" / "_injected.parquet")
    tables = {name: _source_table(root / "source" / name) for name, t in TABLES.items() if t.has_student}
    dirty = set()
    for name, frame in tables.items():
        marked = frame.merge(injected[injected["table"] == name], left_on=["_file", "_row"], right_on=["file", "row"])
        dirty |= set(marked["student_id"])
    enrolled = tables["enrollments"]
    candidates = enrolled.loc[~enrolled["student_id"].isin(dirty), "student_id"].drop_duplicates()
    candidates = candidates[pd.Series(pseudonyms(candidates, key), index=candidates.index).isin(matrix.index)]
    # 150 of the clean ones (the service's path is held to batch on every clean student in test_online_fast),
    # their payloads checked and built together in one call (online_features alone costs ~0.5 s a student),
    # and the first ten again each alone: a student's row does not depend on who shares the call.
    sample = candidates.sample(150, random_state=3)
    payloads = student_payloads({name: frame.drop(columns=["_file", "_row"]) for name, frame in tables.items()}, sample)
    together = online_features_many(payloads, as_of, validated=root / "validated", key=key, catalog=catalog,
                                    settings=Settings())
    keys = pseudonyms(sample, key)
    assert sorted(together["student_key"]) == sorted(keys)
    together = together.set_index("student_key")
    for student_key in keys:  # the pseudonym names a student who differs, never the ID
        online = together.loc[[student_key], catalog.names].to_numpy()
        np.testing.assert_array_equal(online, matrix.loc[[student_key], catalog.names].to_numpy(),
                                      err_msg=str(student_key))
    for student_key, payload in list(zip(keys, payloads, strict=True))[:10]:
        alone = online_features(payload, as_of, validated=root / "validated", key=key, catalog=catalog,
                                settings=Settings())
        assert len(alone) == 1
        np.testing.assert_array_equal(alone[catalog.names].to_numpy(),
                                      together.loc[[student_key], catalog.names].to_numpy(), err_msg=str(student_key))
    assert_compared(len(sample), catalog.names, floor=150)


def test_two_workers_give_the_same_validated_output(run, tmp_path):
    root, report = run
    assert {t.table: t.files for t in report.tables}["attendance_daily"] == 3  # so the pool is used
    again = validate_sources(root / "source", tmp_path / "validated", key=b"synth-test-key-0123456789",
                             progress=False, buckets=4, workers=2)
    assert again.tables == report.tables
    for table in ("attendance_daily", "enrollments", "grades"):
        one = pd.read_parquet(root / "validated" / table).sort_values(["student_key", *_sort_columns(table)])
        two = pd.read_parquet(tmp_path / "validated" / table).sort_values(["student_key", *_sort_columns(table)])
        pd.testing.assert_frame_equal(one.reset_index(drop=True), two.reset_index(drop=True))


def _sort_columns(table: str) -> list[str]:
    return {"attendance_daily": ["date"], "enrollments": ["term"], "grades": ["term", "subject_code"]}[table]
