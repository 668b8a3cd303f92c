"""``risk score --engine spark`` gives ``risk score``'s scores and reasons for every student, and ``risk store load``
stores them with the same alerts and summaries (risk.spark, local mode).

Probabilities come from the registered pyfunc through ``mlflow.pyfunc.spark_udf`` and must
equal batch's within 1e-12; classes, rule marks and reason codes and texts must be identical.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from built_once import scored_copy, scored_report
from conftest import MODEL_NAME

from risk.config import load_settings
from risk.scoring.settings import load_scoring_settings
from risk.store import latest_scores, open_store, run_record, summaries
from risk.store.models import SUMMARY_LEVELS

pytestmark = [pytest.mark.slow, pytest.mark.spark,
              # PySpark 4.3 under pandas 3 (README, "Running on a Spark cluster"): ~3,000 lines a run, one per column
              # of each toPandas, nothing risk can act on.
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
              pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")]

AS_OF = dt.date(2026, 7, 24)  # ten weeks into the world's last term (2569-1), as tests/test_scoring.py
COMPARED = ("risk_class", "raised_by", "reason_codes", "reasons_en", "reasons_th", "school_id", "grade_level",
            "district_code", "id_hint", "model_version", "term")


@pytest.fixture(scope="module")
def both(spark, world, champion, tmp_path_factory):
    """(batch folder, Spark scores folder, Spark's summary) for the same model and date."""
    from risk.spark.scoring import score_students_spark

    _, version, bundle = champion
    batch = scored_copy(world, champion, AS_OF, tmp_path_factory, "spark-batch")
    out = tmp_path_factory.mktemp("spark-scores") / "scores"
    done = score_students_spark(spark, world / "validated", AS_OF, out, bundle=bundle,
                                model_uri=f"models:/{MODEL_NAME}/{version}", model_version=version,
                                settings=load_settings(), scoring=load_scoring_settings())
    return batch, out, done


def test_spark_scores_and_reasons_equal_risk_score_for_every_student(both):
    batch, out, done = both
    expected = pd.read_parquet(batch / "scores.parquet").set_index("student_key").sort_index()
    found = pd.read_parquet(out).set_index("student_key").sort_index()
    assert list(found.index) == list(expected.index) and done["students"] == len(expected)
    np.testing.assert_allclose(found["probability"], expected["probability"], rtol=1e-12, atol=1e-12)
    for column in COMPARED:
        a, b = expected[column].astype(object), found[column].astype(object)
        same = (a == b) | (a.isna() & b.isna())
        assert same.all(), (column, a[~same].head(3).tolist(), b[~same].head(3).tolist())
    assert (expected["risk_class"] != "normal").sum() > 0 and (expected["reason_codes"] != "[]").sum() > 0
    assert sorted(p.name for p in out.glob("bucket=*")) == [f"bucket={b}" for b in range(4)]


def test_store_load_stores_what_risk_score_stores(both, champion, tmp_path):
    from risk.spark.load import load_scores

    batch, out, _ = both
    _, _, bundle = champion
    expected = scored_report(batch)
    store = open_store(f"sqlite:///{tmp_path / 'risk.db'}")
    loaded = load_scores(store, out, bundle=bundle, model_name=MODEL_NAME, scoring=load_scoring_settings())
    assert run_record(store, loaded["run_id"])["status"] == "finished"
    stored = pd.concat(latest_scores(store, loaded["run_id"], columns=["student_key", "probability", "reason_codes"]))
    assert len(stored) == expected.students == loaded["students"]
    assert loaded["alerts"] == expected.alerts and loaded["areas"] == expected.areas
    theirs = open_store(f"sqlite:///{batch / 'risk.db'}")
    for level in SUMMARY_LEVELS:
        pd.testing.assert_frame_equal(summaries(store, loaded["run_id"], level), summaries(theirs, expected.run_id, level))
