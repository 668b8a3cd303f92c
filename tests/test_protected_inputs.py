"""features.protected_inputs: a protected column hidden while LightGBM bins the rows is never split on."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from risk.features.catalog import load_catalog
from risk.models.booster import training_datasets
from risk.models.protected import hidden, protected_columns
from risk.models.samples import Samples
from risk.models.settings import LightGBMSettings, SplitSettings

CATALOG = load_catalog(Path(__file__).resolve().parent.parent / "configs" / "features.yaml")
PARAMS = {"objective": "binary", "num_leaves": 4, "min_data_in_leaf": 20, "verbose": -1, "num_threads": 1, "seed": 1}


def samples_led_by(name: str, rows: int = 3_000) -> Samples:
    """Random rows over the catalog's features whose outcome follows ``name`` alone."""
    rng = np.random.default_rng(3)
    X = rng.random((rows, len(CATALOG.names))).astype(np.float32)
    column = CATALOG.names.index(name)
    X[:, column] = rng.integers(0, 2, rows)
    y = (rng.random(rows) < np.where(X[:, column] > 0, 0.6, 0.05)).astype(np.int8)
    meta = pd.DataFrame({"student_key": np.arange(rows, dtype=np.int64)})
    return Samples(X, y, np.ones(rows, dtype=np.float32), meta, CATALOG.names)


def splits_on(samples: Samples, hide: list[int], name: str) -> int:
    with hidden(samples.X, hide):
        fit, _, _ = training_datasets(samples, CATALOG, LightGBMSettings(params=PARAMS), SplitSettings(), 7)
    booster = lgb.train(PARAMS, fit, num_boost_round=20)
    return int(booster.feature_importance("split")[samples.names.index(name)])


def test_the_protected_features_are_sex_nationality_and_disability():
    assert sorted(CATALOG.names[i] for i in protected_columns(CATALOG, CATALOG.names)) == [
        "has_disability", "non_thai", "sex"]


def test_a_hidden_protected_column_is_never_split_on_and_comes_back_unchanged():
    samples = samples_led_by("non_thai")
    before = samples.X.copy()
    assert splits_on(samples, [], "non_thai") > 0
    assert splits_on(samples, protected_columns(CATALOG, samples.names), "non_thai") == 0
    np.testing.assert_array_equal(samples.X, before)


def test_the_other_setting_is_fitted_on_a_sample_of_students_past_compare_max_rows():
    from risk.models.booster import stopping_rows
    from risk.models.protected import _fit_dataset
    from risk.models.settings import TrainSettings

    samples = samples_led_by("non_thai", rows=6_000)
    before = samples.X.copy()
    hide = protected_columns(CATALOG, samples.names)
    fit_rows = int((~stopping_rows(samples.meta["student_key"].to_numpy(), SplitSettings(), 7)).sum())
    whole = TrainSettings(lightgbm=LightGBMSettings(params=PARAMS))
    dataset, rows, main_rows = _fit_dataset(samples, CATALOG, whole, hide)
    assert rows == main_rows == fit_rows == dataset.construct().num_data()
    capped = whole.model_copy(update={"evaluation": whole.evaluation.model_copy(update={"compare_max_rows": 2_000})})
    dataset, rows, main_rows = _fit_dataset(samples, CATALOG, capped, hide)
    assert main_rows == fit_rows and rows == dataset.construct().num_data() and 1_500 < rows < 2_500
    booster = lgb.train(PARAMS, dataset, num_boost_round=20)
    assert booster.feature_importance("split")[samples.names.index("non_thai")] == 0
    np.testing.assert_array_equal(samples.X, before)
