"""The booster's trees evaluated tree by tree over blocks of rows with numpy: the same scores as
``booster.predict``, bit for bit, several times faster on the large batches of training and scoring.

Why: LightGBM predicts row by row, walking each tree with a data-dependent branch at every node;
with ~1,500 shallow trees the CPU mispredicts about half of those branches (~16 ns a row and tree
on 2 threads). Compiled predictors keep the branches (tl2cgen measured 1.1-1.2x here). Evaluated a
tree at a time over a block of rows, each split is one vectorised comparison of a column with a
threshold, with no branch at all.

How (QuickScorer, Lucchese et al., SIGIR 2015): a tree's leaves are numbered left to right and
each row carries one bit per leaf. A row that goes right at a split can reach none of the leaves
of that split's left subtree, so their bits are marked dead; the row's exit leaf is then the
leftmost leaf left alive, whatever the order the splits were looked at. Leaves per tree are
limited to 64 (one machine word); a model with a larger tree is predicted by LightGBM itself.

Exactness: the decisions follow LightGBM's ``Tree::NumericalDecision`` and
``Tree::CategoricalDecision`` (include/LightGBM/tree.h, 4.x): a value within 1e-35 of zero is
zero; NaN is 0 unless the split's missing type is NaN; a missing-type ``Zero`` or ``NaN`` split
sends zero or NaN its default way; a categorical value goes left when its integer part is in the
split's set, and NaN or a negative value goes right (x86). Each missing-value rule is folded into
one substituted copy of the feature (NaN read as 0, as -inf or as +inf...), so every split is
one ``>`` on a column. Tree outputs are added in tree order in float64, as ``GBDT::PredictRaw``
does, so the raw scores are the same doubles; the tests compare them with ``==``.

The tree shapes come from ``dump_model`` (JSON) and the thresholds from the model text, which
writes an infinite threshold (a split of every value from NaN) as ``inf`` where the JSON has 1e300.

TreeSHAP (:meth:`CompiledForest.contributions`): LightGBM's ``pred_contrib`` walks every path of
every tree for each row (~100x a prediction). For a tree of at most 10 splits, the contributions
depend on a row only through the pattern of its split outcomes, so they are tabulated per pattern
once and a row's are read with one lookup per feature of the tree: the same values as
``pred_contrib`` to within rounding (~1e-14 log-odds, summed in another order), 15-20x faster.
"""

from __future__ import annotations

import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CompiledForest", "MIN_EXPLAIN_ROWS", "MIN_ROWS", "booster_probability"]

# LightGBM's kZeroThreshold (1e-35f, a float): a value this close to zero is read as zero.
_ZERO = float(np.float32(1e-35))
# Below this many rows LightGBM's own predict is as fast (numpy's per-call cost dominates).
MIN_ROWS = 4096
# TreeSHAP costs LightGBM ~100x a prediction, so its tables pay off much sooner (measured on a 227-tree
# model: 64 rows 13 ms against LightGBM's 11, 256 rows 12 against 28, 4,096 rows 29 against 413).
MIN_EXPLAIN_ROWS = 256
# Rows evaluated together, a block per thread: each numpy call then does enough work to hide its
# own cost (measured on 300k rows × 1,400 trees, against booster.predict: 2.1x faster in blocks of
# 4,096 rows, 3.9x at 16,384, 5.9x at 32,768, 4.9x at 65,536 as the columns leave the cache).
_BLOCK_ROWS = 32_768
_MAX_LEAVES = 64
# A tree's TreeSHAP is tabulated per pattern of its split outcomes: 2^splits rows per feature.
_MAX_EXPLAINED_SPLITS = 10
_BITS = ((8, np.uint8), (16, np.uint16), (32, np.uint32), (64, np.uint64))
# How a split reads a missing or zero value, as a substitute value in the column it compares.
_NAN_AS_ZERO, _NAN_LEFT, _NAN_RIGHT, _ZERO_LEFT, _ZERO_RIGHT, _IS_NAN, _IS_ZERO_OR_NAN = range(7)


@dataclass(frozen=True)
class _Tree:
    """One tree: numeric splits (column, threshold, dead bits when going right), categorical splits
    (column, per-category "goes right" table, dead bits), and leaf values indexed by exit position + 1."""

    numeric: list[tuple[int, float, Any]]
    categorical: list[tuple[int, np.ndarray, Any]]
    leaf_by_run: np.ndarray
    dtype: type
    constant: float | None = None
    # For TreeSHAP (see _shap_table, built on the first explanation): the tree's dump and each split's
    # bit in a row's pattern of split outcomes (numeric splits first, then categorical, in the order above).
    root: dict[str, Any] | None = None
    bit_of: dict[int, int] | None = None


class CompiledForest:
    """A binary LightGBM booster's trees as arrays; :meth:`raw_score` equals ``booster.predict(X, raw_score=True)``."""

    def __init__(self, columns: list[tuple[int, int]], categories: list[int], category_sizes: dict[int, int],
                 trees: list[_Tree], sigmoid: float, n_features: int, threads: int) -> None:
        self._columns = columns
        self._categories = categories
        self._category_sizes = category_sizes
        self._trees = trees
        self._sigmoid = sigmoid
        self.n_features = n_features
        self.threads = max(1, threads)
        self._tables: list[tuple[float, list[int] | None, np.ndarray | None]] | None = None

    @classmethod
    def from_booster(cls, booster: Any, threads: int = 2) -> CompiledForest | None:
        """The booster's trees compiled, or None when it is not a binary model this evaluator covers
        (another objective, linear trees, a tree of more than 64 leaves): the caller then uses LightGBM."""
        model = booster.dump_model()
        objective = str(model.get("objective", ""))
        if not objective.startswith("binary") or model.get("num_tree_per_iteration", 1) != 1:
            return None
        sigmoid = 1.0
        for part in objective.split()[1:]:
            if part.startswith("sigmoid:"):
                sigmoid = float(part.split(":", 1)[1])
        columns: dict[tuple[int, int], int] = {}
        category_sizes: dict[int, int] = {}
        categories: dict[int, int] = {}
        thresholds = _text_thresholds(booster.model_to_string())
        trees = []
        for info in model["tree_info"]:
            if info.get("is_linear") or info["num_leaves"] > _MAX_LEAVES:
                return None
            trees.append(_compile_tree(info["tree_structure"], thresholds.get(info["tree_index"], []), columns,
                                       categories, category_sizes))
        by_index = list(categories)
        for tree in trees:  # every table of a feature has one length: its column is shared
            for i, (column, members, bits) in enumerate(tree.categorical):
                goes_right = np.ones(category_sizes[by_index[column]] + 1, dtype=bool)
                goes_right[members] = False
                tree.categorical[i] = (column, goes_right, bits)
        return cls(sorted(columns, key=columns.get), sorted(categories, key=categories.get), category_sizes, trees,
                   sigmoid, model["max_feature_idx"] + 1, threads)

    def raw_score(self, X: np.ndarray) -> np.ndarray:
        """Raw scores (log-odds) of rows ``X`` (n, f), shape (n,)."""
        X = self._checked(X)
        out = np.empty(len(X), dtype=np.float64)
        self._in_blocks(len(X), lambda start: out.__setitem__(
            slice(start, start + _BLOCK_ROWS), self._block(X[start:start + _BLOCK_ROWS])))
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Probabilities, as ``booster.predict(X)`` gives them for a binary objective."""
        # math.exp is the C library's exp, as LightGBM's; numpy's own (SIMD on AVX-512 hosts) can differ
        # from it in the last bit, and then so would the probabilities.
        z = (-self._sigmoid * self.raw_score(X)).tolist()
        return 1.0 / (1.0 + np.fromiter(map(math.exp, z), np.float64, len(z)))

    @property
    def explains(self) -> bool:
        """Whether :meth:`contributions` covers this model (every tree has at most 10 splits)."""
        return all(len(t.numeric) + len(t.categorical) <= _MAX_EXPLAINED_SPLITS for t in self._trees)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """TreeSHAP contributions of rows ``X`` (n, f), as ``booster.predict(X, pred_contrib=True)``
        gives them (n, f + 1; the last column the expected value), equal to within rounding.

        Path-dependent TreeSHAP (Lundberg et al. 2020) of a leaf depends on a row only through which
        of the leaf's path conditions the row meets; for a tree of m splits that is one of 2^m patterns
        of split outcomes, so each tree's contributions are tabulated per pattern (once, on the first
        call; FastTreeSHAP's v2 idea, Yang 2021) and a row's are one table lookup per feature of the tree.
        """
        if not self.explains:
            raise ValueError(f"a tree of this model has more than {_MAX_EXPLAINED_SPLITS} splits: explain it with pred_contrib")
        X = self._checked(X)
        if self._tables is None:  # tabulated once, on first use: training never explains
            self._tables = [(t.constant, None, None) if t.constant is not None else _shap_table(t.root, t.bit_of)
                            for t in self._trees]
        out = np.empty((len(X), self.n_features + 1), dtype=np.float64)
        self._in_blocks(len(X), lambda start: out.__setitem__(
            slice(start, start + _BLOCK_ROWS), self._contribution_block(X[start:start + _BLOCK_ROWS]).T))
        return out

    def _contribution_block(self, X: np.ndarray) -> np.ndarray:
        columns, categories = self._substituted(X)
        n = len(X)
        phi = np.zeros((self.n_features + 1, n), dtype=np.float64)
        right = np.empty(n, dtype=bool)
        pattern = np.empty(n, dtype=np.uint16)
        bit = np.empty(n, dtype=np.uint16)
        value = np.empty(n, dtype=np.float64)
        for tree, (expected, features, table) in zip(self._trees, self._tables, strict=True):
            phi[-1] += expected
            if tree.constant is not None:
                continue
            pattern.fill(0)
            splits = [(columns[c], t) for c, t, _ in tree.numeric]
            for k, (column, threshold) in enumerate(splits):
                np.greater(column, threshold, out=right)
                np.left_shift(right, k, out=bit, dtype=np.uint16)
                np.bitwise_or(pattern, bit, out=pattern)
            for k, (column, goes_right, _) in enumerate(tree.categorical, start=len(splits)):
                np.take(goes_right, categories[column], out=right)
                np.left_shift(right, k, out=bit, dtype=np.uint16)
                np.bitwise_or(pattern, bit, out=pattern)
            for feature, contribution in zip(features, table, strict=True):
                np.take(contribution, pattern, out=value)
                phi[feature] += value
        return phi

    def _checked(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got shape {X.shape}")
        return X

    def _in_blocks(self, rows: int, block: Any) -> None:
        """``block(start)`` for each block of rows, on up to ``threads`` threads."""
        starts = range(0, rows, _BLOCK_ROWS)
        threads = min(self.threads, len(starts), os.cpu_count() or 1)
        if threads <= 1:
            for start in starts:
                block(start)
        else:  # numpy releases the GIL inside each operation; the threads share the blocks
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="forest") as pool:
                list(pool.map(block, starts))

    def _block(self, X: np.ndarray) -> np.ndarray:
        columns, categories = self._substituted(X)
        n = len(X)
        out = np.zeros(n, dtype=np.float64)
        right = np.empty(n, dtype=bool)
        scratch = {dtype: (np.empty(n, dtype), np.empty(n, dtype)) for _, dtype in _BITS}
        run = np.empty(n, dtype=np.uint8)
        value = np.empty(n, dtype=np.float64)
        for tree in self._trees:
            if tree.constant is not None:
                out += tree.constant
                continue
            dead, spare = scratch[tree.dtype]
            dead.fill(0)
            for column, threshold, bits in tree.numeric:
                np.greater(columns[column], threshold, out=right)
                np.multiply(right, bits, out=spare)
                np.bitwise_or(dead, spare, out=dead)
            for column, goes_right, bits in tree.categorical:
                np.take(goes_right, categories[column], out=right)
                np.multiply(right, bits, out=spare)
                np.bitwise_or(dead, spare, out=dead)
            # The exit leaf is the lowest live bit: dead ^ (dead + 1) sets the trailing dead bits and
            # that one, so its bit count is the exit position + 1.
            np.add(dead, tree.dtype(1), out=spare)
            np.bitwise_xor(dead, spare, out=spare)
            np.bitwise_count(spare, out=run)
            np.take(tree.leaf_by_run, run, out=value)
            out += value
        return out

    def _substituted(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The block's columns with each numeric split's missing-value rule applied, one row per
        (feature, rule), and each categorical feature as an index into its splits' tables."""
        x = X.T.copy()
        x[np.abs(x) <= _ZERO] = 0.0
        nan = np.isnan(x)
        categories = np.empty((len(self._categories), len(X)), dtype=np.intp)
        for i, feature in enumerate(self._categories):
            v, size = x[feature], self._category_sizes[feature]
            # the integer part indexes the tables; NaN, negative and unseen values read the last entry
            index = np.trunc(np.where(nan[feature] | (v <= -1) | (v >= size), size, v))
            categories[i] = index
        columns = np.empty((len(self._columns), len(X)), dtype=np.float64)
        for i, (feature, rule) in enumerate(self._columns):
            v, missing, column = x[feature], nan[feature], columns[i]
            column[:] = v
            if rule == _NAN_AS_ZERO:
                column[missing] = 0.0
            elif rule in (_NAN_LEFT, _NAN_RIGHT):
                column[missing] = -np.inf if rule == _NAN_LEFT else np.inf
            elif rule in (_ZERO_LEFT, _ZERO_RIGHT):
                column[missing | (v == 0.0)] = -np.inf if rule == _ZERO_LEFT else np.inf
            else:  # 1.0 where the value goes its split's default way (right), else 0.0
                column[:] = missing if rule == _IS_NAN else missing | (v == 0.0)
        return columns, categories


def booster_probability(booster: Any, X: np.ndarray, forest: CompiledForest | None, threads: int = 2) -> np.ndarray:
    """``booster.predict(X)`` (probabilities), by the compiled forest when there is one and ``X`` has
    enough rows for it to be faster; the same numbers either way."""
    if forest is not None and len(X) >= MIN_ROWS:
        return forest.predict(X)
    return booster.predict(X, num_threads=threads)


def _text_thresholds(text: str) -> dict[int, list[float]]:
    """Each tree's split thresholds as its model text writes them (by split index), exact to the double."""
    found: dict[int, list[float]] = {}
    tree = None
    for line in text.splitlines():
        if line.startswith("Tree="):
            tree = int(line[5:])
        elif line.startswith("threshold=") and tree is not None:
            found[tree] = [float(t) for t in line[10:].split()]
    return found


def _compile_tree(root: dict[str, Any], thresholds: list[float], columns: dict[tuple[int, int], int],
                  categories: dict[int, int], category_sizes: dict[int, int]) -> _Tree:
    if "leaf_value" in root:
        return _Tree([], [], np.zeros(0), np.uint8, constant=float(root["leaf_value"]))
    leaves: list[float] = []
    splits: list[tuple[dict[str, Any], list[int]]] = []

    def walk(node: dict[str, Any]) -> list[int]:
        if "leaf_value" in node:
            leaves.append(float(node["leaf_value"]))
            return [len(leaves) - 1]
        left = walk(node["left_child"])
        splits.append((node, left))
        return left + walk(node["right_child"])

    walk(root)
    dtype = next(d for width, d in _BITS if len(leaves) <= width)
    numeric, categorical = [], []
    for node, left in splits:
        feature = int(node["split_feature"])
        bits = dtype(sum(1 << i for i in left))  # going right: no leaf of the left subtree can be reached
        if node["decision_type"] == "==":
            members = [int(c) for c in str(node["threshold"]).split("||")]
            size = max(max(members) + 1, category_sizes.get(feature, 0))
            category_sizes[feature] = size
            categorical.append((categories.setdefault(feature, len(categories)), members, bits))
        else:
            rule = {"None": _NAN_AS_ZERO, "NaN": _NAN_LEFT if node["default_left"] else _NAN_RIGHT,
                    "Zero": _ZERO_LEFT if node["default_left"] else _ZERO_RIGHT}[node["missing_type"]]
            threshold = thresholds[node["split_index"]]
            if rule in (_NAN_RIGHT, _ZERO_RIGHT) and threshold == np.inf:
                # every value goes left but the missing ones, which no substitute value can send past +inf
                rule, threshold = (_IS_NAN if rule == _NAN_RIGHT else _IS_ZERO_OR_NAN), 0.5
            numeric.append((columns.setdefault((feature, rule), len(columns)), threshold, bits))
    leaf_by_run = np.concatenate([[np.nan], leaves])
    # The pattern's bit of each split: numeric splits first, then categorical, as _contribution_block reads them.
    # Keyed by LightGBM's split_index (unique in a tree), not id(): the tables are built on first use,
    # possibly after the forest was pickled (a model bundle sent to another process), when ids differ.
    numeric_nodes = [int(node["split_index"]) for node, _ in splits if node["decision_type"] != "=="]
    categorical_nodes = [int(node["split_index"]) for node, _ in splits if node["decision_type"] == "=="]
    bit_of = {node: k for k, node in enumerate(numeric_nodes + categorical_nodes)}
    return _Tree(numeric, categorical, leaf_by_run, dtype, root=root, bit_of=bit_of)


def _shap_table(root: dict[str, Any], bit_of: dict[int, int]) -> tuple[float, list[int], np.ndarray]:
    """A tree's expected value and TreeSHAP contributions per pattern of split outcomes.

    For a leaf of value v whose path splits on the distinct features U (d of them), feature j's
    "zero fraction" z_j is the product over its splits on the path of the child's share of the
    parent's training rows, and its "one fraction" o_j is 1 when the row goes the path's way at all
    of them. Path-dependent TreeSHAP gives feature i of U the leaf's share
        v * sum over S within U - {i} of |S|! (d - |S| - 1)! / d! * (o_i - z_i) * prod_S o_j * prod_(U-S-i) z_j
    (Lundberg et al. 2020, Algorithm 2, in closed form), and the tree's contribution is the sum over
    its leaves. A row's o_j follow from the bit pattern of its split outcomes (bit set: goes right).
    The expected value is the leaves' mean weighted by training rows, as LightGBM's ``ExpectedValue``.
    Returns (expected, the features split on, table of shape (features, 2^splits)).
    """
    leaves: list[tuple[float, list[tuple[int, int, bool, float]]]] = []  # value, path of (feature, bit, right, share)

    def walk(node: dict[str, Any], path: list[tuple[int, int, bool, float]]) -> None:
        if "leaf_value" in node:
            leaves.append((float(node["leaf_value"]), path))
            return
        count = float(node["internal_count"])
        for child, went_right in ((node["left_child"], False), (node["right_child"], True)):
            share = float(child.get("internal_count", child.get("leaf_count"))) / count
            walk(child, [*path, (int(node["split_feature"]), bit_of[int(node["split_index"])], went_right, share)])

    walk(root, [])
    expected = sum(value * math.prod(share for *_, share in path) for value, path in leaves)
    features = sorted({feature for _, path in leaves for feature, *_ in path})
    patterns = np.arange(1 << len(bit_of))
    table = np.zeros((len(features), len(patterns)), dtype=np.float64)
    for value, path in leaves:
        distinct = sorted({feature for feature, *_ in path})
        d = len(distinct)
        zero = np.array([math.prod(share for f, _, _, share in path if f == j) for j in distinct])
        one = np.ones((len(patterns), d))
        for position, j in enumerate(distinct):
            for f, bit, went_right, _ in path:
                if f == j:
                    one[:, position] *= ((patterns >> bit) & 1) == went_right
        for i in range(d):
            others = [k for k in range(d) if k != i]
            total_i = np.zeros(len(patterns))
            for size in range(d):
                weight = math.factorial(size) * math.factorial(d - size - 1) / math.factorial(d)
                for chosen in itertools.combinations(others, size):
                    term = np.full(len(patterns), weight)
                    for k in others:
                        term = term * (one[:, k] if k in chosen else zero[k])
                    total_i += term
            table[features.index(distinct[i])] += value * (one[:, i] - zero[i]) * total_i
    return expected, features, table
