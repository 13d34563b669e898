"""The compiled boosters (a few rows) and the binned, chunked scoring (more rows) give exactly
scikit-learn's predictions: on the bundled champion's reference rows, and on inputs shaped unlike them
(missing values everywhere, unknown and negative categories, values far outside the training range, values
equal to a split threshold, another loss, no categorical feature, many categories)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from clvdrift.model.compiled import COMPILED_MAX_ROWS, CompiledBooster


def _data(rng: np.random.Generator, n: int, categories: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.lognormal(2, 1.5, (n, 5))
    x[rng.random((n, 5)) < 0.1] = np.nan
    cat = rng.integers(0, categories, n).astype(np.float64)
    y = np.exp(0.3 * np.nan_to_num(np.log1p(x[:, 0])) + 0.2 * (cat % 3)) * rng.gamma(2, 1, n)
    return np.column_stack([x, cat]), y


def _odd_rows(rng: np.random.Generator, n: int, categories: int) -> np.ndarray:
    """Rows unlike the training data: huge, negative, missing, unknown or negative categories."""
    x = rng.normal(0, 1e6, (n, 5))
    x[rng.random((n, 5)) < 0.3] = np.nan
    cat = rng.choice([-1.0, np.nan, 0.0, categories - 1.0, categories + 5.0, 254.0], n)
    return np.column_stack([x, cat])


@pytest.mark.parametrize(
    ("loss", "categories", "categorical"),
    [("poisson", 5, True), ("squared_error", 5, True), ("poisson", 200, True), ("poisson", 5, False)],
)
def test_compiled_booster_equals_scikit_learn(loss, categories, categorical):
    rng = np.random.default_rng(categories)
    x, y = _data(rng, 3000, categories)
    model = HistGradientBoostingRegressor(
        loss=loss,
        max_iter=60,
        max_leaf_nodes=15,
        categorical_features=[5] if categorical else None,
        random_state=0,
    ).fit(x, y)
    compiled = CompiledBooster(model)
    for rows in (x[:1], x[:7], x[:COMPILED_MAX_ROWS], _odd_rows(rng, 64, categories), x[:500]):
        np.testing.assert_array_equal(compiled.predict(rows), model.predict(rows))
    if categorical:
        assert compiled.cat_nodes.size > 0  # the categorical splits were exercised


def _at_thresholds(model: HistGradientBoostingRegressor, rows: np.ndarray) -> np.ndarray:
    """``rows`` with one value per row set exactly to a numerical split threshold of the model (a value
    equal to the threshold goes left), and its neighbours just above and below."""
    out = rows.copy()
    splits = [
        (int(n["feature_idx"]), float(n["num_threshold"]))
        for (tree,) in model._predictors
        for n in tree.nodes
        if not n["is_leaf"] and not n["is_categorical"]
    ]
    for i in range(len(out)):
        feature, threshold = splits[i % len(splits)]
        out[i, feature] = np.nextafter(threshold, (-np.inf, threshold, np.inf)[i % 3])
    return out


@pytest.mark.parametrize(
    ("loss", "categories", "categorical"),
    [("poisson", 5, True), ("squared_error", 5, True), ("poisson", 200, True), ("poisson", 5, False)],
)
def test_binned_chunked_scoring_equals_scikit_learn(loss, categories, categorical):
    """What GbmModel uses above the compiled path's rows: bit for bit scikit-learn's predict, on one thread
    and in chunks on the pool, for several boosters at once."""
    from clvdrift.model.gbm import CHUNKED_MIN_ROWS, _predict_boosters

    rng = np.random.default_rng(categories + 1)
    x, y = _data(rng, 3000, categories)
    models = [
        HistGradientBoostingRegressor(
            loss=loss,
            max_iter=60,
            max_leaf_nodes=leaves,
            categorical_features=[5] if categorical else None,
            random_state=0,
        ).fit(x, y)
        for leaves in (15, 31)
    ]
    odd = _odd_rows(rng, CHUNKED_MIN_ROWS + 7, categories)
    for rows in (x[:65], x, odd, _at_thresholds(models[0], x), _at_thresholds(models[1], odd)):
        got = _predict_boosters([(m, rows) for m in models])
        for m, g in zip(models, got, strict=True):
            np.testing.assert_array_equal(g, m.predict(rows))


def test_a_booster_with_another_link_is_refused():
    from sklearn.ensemble import HistGradientBoostingClassifier

    from clvdrift.errors import ArtifactError

    rng = np.random.default_rng(0)
    x, y = _data(rng, 500, 3)
    classifier = HistGradientBoostingClassifier(max_iter=5).fit(x, (y > np.median(y)).astype(int))
    with pytest.raises(ArtifactError, match="link"):
        CompiledBooster(classifier)


def test_the_champion_predicts_the_same_by_columns_as_by_frame(trained):
    """The service's fast path (predict_columns: compiled, no DataFrame) on every reference row of the
    bundled champion, in chunks of the sizes it serves, equals predict on the frame bit for bit."""
    from clvdrift.model.artifacts import load_model

    root, registry, result = trained
    model = load_model(root / "models", result.version, expected=registry.get(result.version).artifacts)
    reference = pd.read_csv(root / "reference" / "reference_data.csv")
    features = reference[model.input_features]
    want = model.predict(features)
    for size in (1, 5, COMPILED_MAX_ROWS):
        got = np.concatenate(
            [
                model.predict_columns(
                    {c: (chunk[c].tolist() if c == "Country" else chunk[c].to_numpy()) for c in chunk}
                )
                for chunk in (features.iloc[i : i + size] for i in range(0, min(len(features), 640), size))
            ]
        )
        np.testing.assert_array_equal(got, want[: len(got)])
    unknown = features.iloc[:3].assign(Country="Atlantis")
    np.testing.assert_array_equal(
        model.predict_columns({c: unknown[c].tolist() for c in unknown}), model.predict(unknown)
    )
