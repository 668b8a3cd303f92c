"""One feature definition: the online vector of a student equals the batch vector, exactly."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import STUDENTS, assert_compared, clean_tables, write_source
from online_frames import online_features

from risk.config import Settings
from risk.data.ids import pseudonym
from risk.data.validate import validate_sources
from risk.errors import ContractError
from risk.features.batch import build_feature_matrix
from risk.features.catalog import load_catalog

CATALOG = load_catalog(Path(__file__).resolve().parent.parent / "configs" / "features.yaml")
AS_OF = dt.date(2024, 6, 6)


@pytest.fixture(scope="module")
def batch(tmp_path_factory, ) -> tuple[Path, pd.DataFrame, bytes]:
    key = b"parity-key-0123456789"
    root = tmp_path_factory.mktemp("parity")
    source = write_source(clean_tables(), root / "source")
    validate_sources(source, root / "validated", key=key, progress=False, buckets=2)
    build_feature_matrix(root / "validated", AS_OF, root / "features.parquet", settings=Settings(),
                         catalog=CATALOG, progress=False)
    return root / "validated", pd.read_parquet(root / "features.parquet"), key


def payload_of(student_id: str) -> dict[str, list[dict]]:
    """The contract's student tables for one student, as the JSON an upstream system sends."""
    tables = {}
    for name, frame in clean_tables().items():
        if "student_id" in frame.columns:
            rows = frame[frame["student_id"] == student_id]
            tables[name] = json.loads(rows.to_json(orient="records", date_format="iso"))
    # JSON dates arrive as text: keep only the date part, as an export would.
    for rows in tables.values():
        for row in rows:
            for column, value in row.items():
                if isinstance(value, str) and value.endswith("T00:00:00.000"):
                    row[column] = value[:10]
    return tables


@pytest.mark.parametrize("student_id", STUDENTS)
def test_online_vector_equals_batch_vector(batch, student_id):
    validated, matrix, key = batch
    online = online_features(payload_of(student_id), AS_OF, validated=validated, key=key, catalog=CATALOG,
                             settings=Settings())
    expected = matrix[matrix["student_key"] == pseudonym(student_id, key)]
    assert len(online) == len(expected) == 1
    np.testing.assert_array_equal(online[CATALOG.names].to_numpy(), expected[CATALOG.names].to_numpy())
    assert online["student_key"].iloc[0] == expected["student_key"].iloc[0]
    keys = ("student_key", "as_of", "term", "school_id")
    assert_compared(len(online), [c for c in online.columns if c in expected.columns and c not in keys], floor=1)


def test_the_students_compared_are_every_student_of_the_world(batch):
    _, matrix, key = batch
    assert sorted(matrix["student_key"]) == sorted(pseudonym(s, key) for s in STUDENTS)


def test_a_bad_payload_record_is_a_clear_error(batch):
    validated, _, key = batch
    tables = payload_of(STUDENTS[0])
    tables["attendance_daily"][0]["status"] = "Present"
    with pytest.raises(ContractError, match=r"attendance_daily, record 0: status = Present: not_allowed"):
        online_features(tables, AS_OF, validated=validated, key=key, catalog=CATALOG, settings=Settings())


def test_a_payload_mixing_students_is_refused(batch):
    validated, _, key = batch
    tables = payload_of(STUDENTS[0])
    tables["health"] = payload_of(STUDENTS[1])["health"]
    with pytest.raises(ContractError, match="one student"):
        online_features(tables, AS_OF, validated=validated, key=key, catalog=CATALOG, settings=Settings())
