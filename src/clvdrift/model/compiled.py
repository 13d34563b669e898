"""A fitted ``HistGradientBoostingRegressor`` as flat numpy arrays, for predicting a few rows fast.

scikit-learn predicts tree by tree, with input validation, a ``ColumnTransformer`` for the categorical
column and an OpenMP region per tree: about 5 ms for one row of a 2 × 200-tree model, whatever the number
of rows up to a few hundred. :class:`CompiledBooster` walks every tree at once instead: the nodes of all
trees are concatenated into arrays and each step moves all trees one level down with a few vectorised
operations (the deepest tree decides the number of steps). For one row it takes a few hundred
microseconds; for large batches scikit-learn's own loop is faster, so callers use it for a few rows only
(:data:`COMPILED_MAX_ROWS`).

It reproduces scikit-learn's decision at every node exactly (``_predictor.pyx``,
``_predict_one_from_raw_data``): a missing value goes where the split sends missing values; a categorical
split sends a category in the node's bitset left, another known category right, and an unknown or
negative one where missing values go; a numerical value goes left when ``x <= threshold``. The raw score is
the baseline plus the leaves' values, added tree by tree in the same order, then the loss's inverse link
(``exp`` for the Poisson loss). ``tests/model/test_compiled.py`` checks equality with scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from clvdrift.errors import ArtifactError

__all__ = ["COMPILED_MAX_ROWS", "CompiledBooster"]

COMPILED_MAX_ROWS = 64
"""Up to this many rows the compiled path is used; above it, scikit-learn's own loop is faster."""


class CompiledBooster:
    """One fitted booster as arrays (module docstring). Input: the booster's raw feature matrix (the
    columns it was fitted on, the categorical one as its numeric codes)."""

    def __init__(self, booster: Any) -> None:
        from sklearn._loss.link import IdentityLink, LogLink

        if getattr(booster, "n_trees_per_iteration_", 1) != 1:
            raise ArtifactError("only single-output boosters can be compiled")
        link = booster._loss.link
        self._inverse: Callable[[np.ndarray], np.ndarray]
        if isinstance(link, LogLink):
            self._inverse = np.exp
        elif isinstance(link, IdentityLink):
            self._inverse = lambda x: x
        else:
            raise ArtifactError(f"cannot compile a booster with the {type(link).__name__} link")
        n_features = int(booster.n_features_in_)
        pre = booster._preprocessor
        self.order = np.arange(n_features)
        self.categories: dict[int, dict[float, float]] = {}
        if pre is not None:
            masks = {name: np.asarray(mask, dtype=bool) for name, _, mask in pre.transformers_}
            categorical = np.flatnonzero(masks["encoder"])
            self.order = np.concatenate([categorical, np.flatnonzero(masks["numerical"])])
            encoder = pre.named_transformers_["encoder"]
            for j, values in enumerate(encoder.categories_):  # output column j: the j-th categorical
                self.categories[j] = {float(v): float(code) for code, v in enumerate(values)}
        known, f_idx_map = booster._bin_mapper.make_known_categories_bitsets()
        self.baseline = float(np.asarray(booster._baseline_prediction).ravel()[0])
        fields: dict[str, list[np.ndarray]] = {
            k: [] for k in ("feature", "threshold", "missing_left", "left", "right", "leaf", "value", "cat")
        }
        roots, bitsets, cat_bitset, cat_known = [], [], [], []
        offset = n_bitsets = 0
        for (predictor,) in booster._predictors:
            nodes = predictor.nodes
            roots.append(offset)
            fields["feature"].append(nodes["feature_idx"].astype(np.intp))
            fields["threshold"].append(nodes["num_threshold"].astype(np.float64))
            fields["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
            fields["left"].append(nodes["left"].astype(np.intp) + offset)
            fields["right"].append(nodes["right"].astype(np.intp) + offset)
            fields["leaf"].append(nodes["is_leaf"].astype(bool))
            fields["value"].append(nodes["value"].astype(np.float64))
            fields["cat"].append(nodes["is_categorical"].astype(bool))
            cat_bitset.append(nodes["bitset_idx"].astype(np.intp) + n_bitsets)
            cat_known.append(f_idx_map[nodes["feature_idx"]].astype(np.intp))
            bitsets.append(np.asarray(predictor.raw_left_cat_bitsets, dtype=np.uint32).reshape(-1, 8))
            offset += len(nodes)
            n_bitsets += bitsets[-1].shape[0]
        self.n_trees = len(roots)
        self.roots = np.asarray(roots, dtype=np.intp)
        self.feature = np.concatenate(fields["feature"])
        self.threshold = np.concatenate(fields["threshold"])
        self.missing_left = np.concatenate(fields["missing_left"])
        # a leaf points to itself, so walking on from a leaf stays there
        index = np.arange(offset, dtype=np.intp)
        leaf = np.concatenate(fields["leaf"])
        self.leaf = leaf
        self.left = np.where(leaf, index, np.concatenate(fields["left"]))
        self.right = np.where(leaf, index, np.concatenate(fields["right"]))
        self.value = np.concatenate(fields["value"])
        self.cat = np.concatenate(fields["cat"])
        self.cat_nodes = np.flatnonzero(self.cat & ~leaf)
        self.cat_bitset = np.concatenate(cat_bitset)
        self.cat_known = np.concatenate(cat_known)
        self.left_bitsets = np.concatenate(bitsets) if n_bitsets else np.zeros((1, 8), dtype=np.uint32)
        self.known_bitsets = np.asarray(known, dtype=np.uint32).reshape(-1, 8)
        if not len(self.known_bitsets):
            self.known_bitsets = np.zeros((1, 8), dtype=np.uint32)
        self.depth = max(int(p.nodes["depth"].max()) for (p,) in booster._predictors)
        table = self._categorical_table()
        cat_features = self.feature[self.cat_nodes]
        self.cat_groups = [  # per categorical feature: its nodes, and their decisions by value (257 × nodes)
            (int(f), self.cat_nodes[cat_features == f], np.ascontiguousarray(table[cat_features == f].T))
            for f in np.unique(cat_features)
        ]

    def _categorical_table(self) -> np.ndarray:
        """Where each categorical node sends each value, decided once: row k (the k-th of ``cat_nodes``),
        column = the category code 0-255 (a larger one, which the encoder never makes, counts as 255),
        column 256 = missing or negative. A code in the node's left bitset goes left; any other known code
        goes right; an unknown one goes where missing values go."""
        c = self.cat_nodes
        codes = np.arange(256)
        shifts = (codes % 32).astype(np.uint32)
        in_left = ((self.left_bitsets[self.cat_bitset[c]][:, codes // 32] >> shifts) & 1).astype(bool)
        known = ((self.known_bitsets[self.cat_known[c]][:, codes // 32] >> shifts) & 1).astype(bool)
        missing_left = self.missing_left[c][:, None]
        decided = np.where(in_left | known, in_left, missing_left)
        return np.concatenate([decided, missing_left], axis=1)

    def _transform(self, raw: np.ndarray) -> np.ndarray:
        """scikit-learn's preprocessing: columns reordered, categories to their ordinal codes (unknown:
        NaN)."""
        x = np.asarray(raw, dtype=np.float64)[:, self.order]
        for j, codes in self.categories.items():
            x[:, j] = [codes.get(float(v), np.nan) for v in x[:, j]]
        return x

    def raw_predict(self, raw: np.ndarray) -> np.ndarray:
        """The raw scores (before the inverse link) of the rows of ``raw`` (n × features).

        Every node's decision is computed at once for each row (one vectorised pass over all nodes of
        all trees), then all trees are walked together, one level per step: a few numpy calls per
        level instead of a few per node."""
        x = self._transform(raw)
        n = x.shape[0]
        v = x[:, self.feature]  # n × nodes: the value each node tests
        missing = np.isnan(v)
        with np.errstate(invalid="ignore"):
            go_left = v <= self.threshold
        go_left = np.where(missing, self.missing_left, go_left)
        for feature, nodes, decisions in self.cat_groups:
            values = np.nan_to_num(x[:, feature], nan=-1.0)
            slot = np.where(values < 0, 256, np.minimum(values, 255)).astype(np.intp)
            go_left[:, nodes] = decisions[slot]
        step = np.where(go_left, self.left, self.right)  # n × nodes: where each node sends each row
        if n == 1:
            row_step = step[0]
            node = self.roots
            for _ in range(self.depth):
                node = row_step[node]
            leaves = self.value[node][None, :]
        else:
            node = np.broadcast_to(self.roots, (n, self.n_trees))
            for _ in range(self.depth):
                node = np.take_along_axis(step, node, axis=1)
            leaves = self.value[node]
        # baseline, then tree by tree: the order of scikit-learn's additions (cumsum is sequential)
        summed = np.concatenate([np.full((n, 1), self.baseline), leaves], axis=1)
        return np.asarray(np.cumsum(summed, axis=1)[:, -1])

    def predict(self, raw: np.ndarray) -> np.ndarray:
        return np.asarray(self._inverse(self.raw_predict(raw)), dtype=np.float64)
