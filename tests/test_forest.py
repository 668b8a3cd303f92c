"""The compiled forest gives LightGBM's own raw scores, bit for bit, on every kind of split and value."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

import risk.models.forest as forest_module
from risk.models.forest import MIN_ROWS, CompiledForest, booster_probability

FEATURES = 8
CATEGORY = 5  # column 5 is categorical (codes 0..5)


def training_data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, FEATURES))
    X[rng.random((rows, FEATURES)) < 0.15] = np.nan
    X[:, 3] = np.where(rng.random(rows) < 0.4, 0.0, X[:, 3])  # many exact zeros (missing type Zero)
    X[:, CATEGORY] = rng.integers(0, 6, rows)
    X[:, 6] = rng.integers(0, 2, rows)
    logit = (np.nan_to_num(X[:, 0]) - np.nan_to_num(X[:, 1]) + 1.5 * np.isnan(X[:, 2]) + (X[:, CATEGORY] == 2)
             - (X[:, CATEGORY] == 4) + 0.8 * X[:, 6] + 0.7 * (X[:, 3] == 0) + rng.normal(size=rows))
    return X, (logit > 1.0).astype(int)


def awkward_rows(booster: lgb.Booster, rows: int, seed: int) -> np.ndarray:
    """Rows made of the values where a split can go wrong: every threshold itself and its neighbours,
    NaN, ±0, values within LightGBM's zero threshold, infinities, unseen, negative and fractional categories."""
    thresholds = [[] for _ in range(FEATURES)]

    def walk(node: dict) -> None:
        if "split_feature" in node:
            if node["decision_type"] == "<=":
                t = float(node["threshold"])
                thresholds[node["split_feature"]] += [t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf)]
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    special = [np.nan, 0.0, -0.0, 1e-36, -1e-36, 1e-35, -1e-35, 2e-35, np.inf, -np.inf, 1e300, -1e300]
    rng = np.random.default_rng(seed)
    X = np.empty((rows, FEATURES))
    for j in range(FEATURES):
        pool = np.array(thresholds[j] + special + list(rng.normal(size=20)))
        if j == CATEGORY:
            pool = np.array([0, 1, 2, 3, 4, 5, 2.7, 4.2, -0.5, -1.0, -3, 6, 7, 1000, np.nan, 0.0, -0.0])
        X[:, j] = rng.choice(pool, size=rows)
    return X


PARAMS = {
    "depth 3, categorical": {"num_leaves": 7, "max_depth": 3},
    "31 leaves": {"num_leaves": 31, "min_data_in_leaf": 20},
    "zero as missing": {"num_leaves": 12, "zero_as_missing": True},
    "missing values not used": {"num_leaves": 7, "use_missing": False},
    "64 leaves": {"num_leaves": 64, "min_data_in_leaf": 5},
}


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return training_data(20_000, seed=3)


def compiled_with_awkward_rows(data: tuple[np.ndarray, np.ndarray], shape: dict, monkeypatch: pytest.MonkeyPatch,
                               seed: int) -> tuple[lgb.Booster, CompiledForest, np.ndarray]:
    """A 40-tree booster of the given shape, its compiled forest (several blocks of rows, shared by two
    threads), and rows to check them on: 3,000 training rows and 3,000 awkward ones."""
    X, y = data
    params = {"objective": "binary", "learning_rate": 0.1, "verbose": -1, "num_threads": 2, "seed": 1,
              "max_bin": 63, **shape}
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=[CATEGORY]), num_boost_round=40)
    forest = CompiledForest.from_booster(booster)
    assert forest is not None
    monkeypatch.setattr(forest_module, "_BLOCK_ROWS", 1_000)
    return booster, forest, np.vstack([X[:3_000], awkward_rows(booster, 3_000, seed=seed)])


@pytest.mark.parametrize("name", list(PARAMS))
def test_raw_scores_equal_lightgbm_bit_for_bit(name: str, data: tuple[np.ndarray, np.ndarray],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    booster, forest, rows = compiled_with_awkward_rows(data, PARAMS[name], monkeypatch, seed=4)
    expected = booster.predict(rows, raw_score=True)
    got = forest.raw_score(rows)
    assert np.array_equal(got, expected), f"{np.sum(got != expected)} of {len(rows)} rows differ"
    # The sigmoid is the C library's exp, as LightGBM's (numpy's AVX-512 exp differs in the last bit).
    probability = forest.predict(rows)
    assert np.array_equal(probability, booster.predict(rows)), "probabilities differ from booster.predict"


def test_a_model_of_single_leaf_trees_scores_its_constant(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    booster = lgb.train({"objective": "binary", "min_data_in_leaf": 100_000, "verbose": -1}, lgb.Dataset(X, y),
                        num_boost_round=3)
    forest = CompiledForest.from_booster(booster)
    assert forest is not None
    assert np.array_equal(forest.raw_score(X[:50]), booster.predict(X[:50], raw_score=True))


def test_what_it_does_not_cover_is_left_to_lightgbm(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    wide = lgb.train({"objective": "binary", "num_leaves": 100, "min_data_in_leaf": 5, "verbose": -1},
                     lgb.Dataset(X, y), num_boost_round=2)
    regression = lgb.train({"objective": "regression", "verbose": -1}, lgb.Dataset(X, y.astype(float)),
                           num_boost_round=2)
    assert max(t["num_leaves"] for t in wide.dump_model()["tree_info"]) > 64
    assert CompiledForest.from_booster(wide) is None
    assert CompiledForest.from_booster(regression) is None
    rows = X[:MIN_ROWS]
    assert np.array_equal(booster_probability(wide, rows, None), wide.predict(rows))


def test_a_matrix_of_the_wrong_width_is_refused(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, y), num_boost_round=2)
    forest = CompiledForest.from_booster(booster)
    with pytest.raises(ValueError, match="rows of 8 features"):
        forest.raw_score(X[:, :5])


# Models whose trees have at most 10 splits: their TreeSHAP is tabulated (split patterns ≤ 1,024).
EXPLAINED = {
    "depth 3, categorical": {"num_leaves": 7, "max_depth": 3},
    "depth 3, zero as missing": {"num_leaves": 8, "max_depth": 3, "zero_as_missing": True},
    "11 leaves, features repeated on a path": {"num_leaves": 11, "min_data_in_leaf": 20},
    "missing values not used": {"num_leaves": 7, "use_missing": False},
}


@pytest.mark.parametrize("name", list(EXPLAINED))
def test_contributions_equal_lightgbm_pred_contrib(name: str, data: tuple[np.ndarray, np.ndarray],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    booster, forest, rows = compiled_with_awkward_rows(data, EXPLAINED[name], monkeypatch, seed=5)
    assert forest.explains
    expected = booster.predict(rows, pred_contrib=True)
    got = forest.contributions(rows)
    assert got.shape == expected.shape == (len(rows), FEATURES + 1)
    # The same sums in another order: equal to the last few bits of a log-odds.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    if name == "11 leaves, features repeated on a path":
        paths = booster.dump_model()["tree_info"]
        assert any(_repeats_a_feature(t["tree_structure"], []) for t in paths), "no path repeats a feature"


def _repeats_a_feature(node: dict, seen: list[int]) -> bool:
    if "split_feature" not in node:
        return False
    if node["split_feature"] in seen:
        return True
    below = [*seen, node["split_feature"]]
    return _repeats_a_feature(node["left_child"], below) or _repeats_a_feature(node["right_child"], below)


def test_a_model_of_larger_trees_is_explained_by_lightgbm(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    booster = lgb.train({"objective": "binary", "num_leaves": 31, "min_data_in_leaf": 20, "verbose": -1},
                        lgb.Dataset(X, y), num_boost_round=3)
    forest = CompiledForest.from_booster(booster)
    assert forest is not None and not forest.explains  # it still predicts
    with pytest.raises(ValueError, match="more than 10 splits"):
        forest.contributions(X[:10])


def test_single_leaf_trees_contribute_only_their_value(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    booster = lgb.train({"objective": "binary", "min_data_in_leaf": 100_000, "verbose": -1}, lgb.Dataset(X, y),
                        num_boost_round=3)
    forest = CompiledForest.from_booster(booster)
    np.testing.assert_allclose(forest.contributions(X[:50]), booster.predict(X[:50], pred_contrib=True),
                               rtol=0, atol=1e-12)


def test_a_forest_pickled_before_its_first_explanation_explains_as_lightgbm(
        data: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    """The TreeSHAP tables are built on first use, possibly in another process than the one that compiled
    the forest (a model bundle pickled to a worker): what they read of each split must survive pickling."""
    import pickle

    booster, forest, rows = compiled_with_awkward_rows(data, EXPLAINED["depth 3, categorical"], monkeypatch, seed=6)
    copy = pickle.loads(pickle.dumps(forest))
    np.testing.assert_allclose(copy.contributions(rows), booster.predict(rows, pred_contrib=True), rtol=0, atol=1e-12)
