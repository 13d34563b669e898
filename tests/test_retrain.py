"""retrain_and_gate: the time split, the gate against real and deliberately bad models, the champion's
training customers kept out of the comparison, and the refusal of too short a history.

A "bad" model is fitted on targets shuffled across customers: the same features and the same target
values, with the link between them destroyed.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from clvdrift.config import GbmParams, RfParams, TrainConfig
from clvdrift.data import clean_transactions, load_transactions, schema
from clvdrift.errors import ConfigError, DataError
from clvdrift.features import TransactionLines, build_training_set
from clvdrift.model.base import TrainingRecord
from clvdrift.model.rf import RfModel
from clvdrift.pipeline.retrain import MIN_FEATURE_DAYS, gate_window, retrain_and_gate
from clvdrift.pipeline.train import ChampionToBeat, fit_on_cutoff, fit_version
from conftest import BUNDLED
from helpers import synthetic_history

SYNTHETIC_H = 60  # another horizon than the default, on a history of another shape


@pytest.fixture(scope="module")
def bundled_clean() -> pd.DataFrame:
    return clean_transactions(load_transactions(BUNDLED))[0]


@pytest.fixture(scope="module")
def synthetic_clean(tmp_path_factory) -> pd.DataFrame:
    path = tmp_path_factory.mktemp("retrain") / "history.csv"
    synthetic_history(path, customers=400, start="2019-03-18", days=420, seed=7)
    return clean_transactions(load_transactions(path))[0]


def shuffled_model(clean: pd.DataFrame, cutoff: pd.Timestamp, config: TrainConfig, seed: int = 0):
    """A model fitted on the holdout targets at ``cutoff`` permuted across customers."""
    ts = build_training_set(clean, horizon_days=config.horizon_days, cutoff=cutoff)
    shuffled = pd.Series(np.random.default_rng(seed).permutation(ts.target.to_numpy()), index=ts.target.index)
    return RfModel(RfParams(n_estimators=30)).fit(ts.features, shuffled)


def champion(model, training: dict | TrainingRecord | None = None, customers=None, version: str = "c"):
    record = training if isinstance(training, TrainingRecord) else TrainingRecord.from_dict(training or {})
    return ChampionToBeat(
        version, model, record, None if customers is None else frozenset(map(str, customers))
    )


def test_a_challenger_is_rejected_against_a_champion_that_saw_the_windows_labels(bundled_clean):
    """A champion fitted with the evaluation window's labels, its training customers unknown: the
    comparison is not clean and biased toward it, so the mistake rejects, never promotes."""
    config = TrainConfig()
    window = gate_window(bundled_clean, config.horizon_days)
    seen, _ = fit_on_cutoff(TransactionLines.from_frame(bundled_clean), window.evaluation_cutoff, config)
    outcome = retrain_and_gate(bundled_clean, champion=champion(seen, {}), train_config=config)
    assert not outcome.promoted and "rejected" in outcome.decision.reason
    assert "NOT clean" in outcome.decision.reason
    assert outcome.decision.champion["spearman"] > outcome.decision.challenger["spearman"]
    # the gate reports error and ranking next to the primary metric
    assert set(outcome.decision.champion) == {"spearman", "gini_normalized", "mae"}
    assert outcome.final is None and outcome.challenger.training.gate is None


@pytest.mark.parametrize("data", ["bundled_clean", "synthetic_clean"])
def test_real_challenger_is_promoted_over_a_shuffled_champion_and_refitted(data, request):
    clean = request.getfixturevalue(data)
    config = TrainConfig() if data == "bundled_clean" else TrainConfig(horizon_days=SYNTHETIC_H)
    window = gate_window(clean, config.horizon_days)
    # a bad champion trained long before the window: its labels do not overlap (T − H, T]
    old_cutoff = window.challenger_cutoff - pd.Timedelta(days=config.horizon_days // 2)
    bad = shuffled_model(clean, old_cutoff, config)
    training = {"target": "holdout", "cutoff": str(old_cutoff.date()), "horizon_days": 45}
    outcome = retrain_and_gate(clean, champion=champion(bad, training, version="bad"), train_config=config)
    assert outcome.promoted, outcome.decision.reason
    # its 45-day horizon is not the retraining's: the ranks are compared, and the reason says so
    assert "note: the champion predicts 45 days of revenue" in outcome.decision.reason
    assert outcome.decision.window["clean"] and outcome.decision.window["customers_excluded"] == 0
    final = outcome.final
    assert final is not None
    assert final.training.cutoff == window.evaluation_cutoff.date().isoformat()
    assert final.training.family == "gbm" and final.training.stacked_cutoffs > 1
    assert final.training.target_days_covered == config.horizon_days
    assert final.evaluation["split"] == "time"
    assert final.evaluation["random_split"]["customers"] == final.training.test_customers
    reference = final.reference()
    assert (reference["split"] == "test").sum() == final.training.test_customers
    assert reference["prediction"].notna().all()
    json.dumps(outcome.to_dict(), allow_nan=False)


def assert_same_fit(a, b) -> None:
    """Two fitted models are the same: their documents and every pickled object, byte for byte."""
    assert a.document() == b.document()
    assert pickle.dumps(a.state()) == pickle.dumps(b.state())


def rewrite_after(clean: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    """``clean`` with every line after ``day`` changed: 13 × the quantity, moved to another customer."""
    after = (clean[schema.INVOICE_DATE] >= day + pd.Timedelta(days=1)).to_numpy()
    customers = clean[schema.CUSTOMER].cat
    codes = customers.codes.to_numpy()
    moved = np.where(after, (codes + 1) % len(customers.categories), codes)
    return clean.assign(
        **{
            schema.QUANTITY: clean[schema.QUANTITY].where(~after, clean[schema.QUANTITY] * 13),
            schema.CUSTOMER: pd.Categorical.from_codes(moved, categories=customers.categories),
        }
    )


@pytest.mark.parametrize("data", ["bundled_clean", "synthetic_clean"])
def test_challenger_never_sees_revenue_after_t_minus_h(data, request):
    clean = request.getfixturevalue(data)
    small = GbmParams(max_iter=50)  # what the challenger reads is tested, not how well it fits: 4x faster
    config = TrainConfig(gbm=small, horizon_days=90 if data == "bundled_clean" else SYNTHETIC_H)
    window = gate_window(clean, config.horizon_days)
    bad = champion(shuffled_model(clean, window.challenger_cutoff, config))
    runs = [
        retrain_and_gate(frame, champion=bad, train_config=config)
        for frame in (clean, rewrite_after(clean, window.evaluation_cutoff))
    ]
    assert runs[0].challenger.training.cutoff == window.challenger_cutoff.date().isoformat()
    # the evaluation window did change (so the rewrite reached the data) but the challenger did not
    assert runs[0].decision.challenger != runs[1].decision.challenger
    assert_same_fit(runs[0].challenger.model, runs[1].challenger.model)


def test_champion_training_customers_are_kept_out_of_an_overlapping_window(synthetic_clean):
    config = TrainConfig(horizon_days=SYNTHETIC_H)
    window = gate_window(synthetic_clean, config.horizon_days)
    # the champion was trained like `train` on this very data: its labels ARE the evaluation window
    fitted = fit_version(synthetic_clean, config=config, cutoff=window.evaluation_cutoff)
    trained_on = fitted.split.index[fitted.split == "train"]
    kept_out = retrain_and_gate(
        synthetic_clean, champion=champion(fitted.model, fitted.training, trained_on), train_config=config
    )
    window_info = kept_out.decision.window
    assert window_info["clean"] and window_info["customers_excluded"] == len(trained_on)
    assert window_info["customers"] == fitted.training.test_customers
    # scored on its held-out customers, the champion's window metrics are its secondary test metrics
    assert kept_out.champion_evaluation["model"] == fitted.evaluation["random_split"]["model"]

    unknown = retrain_and_gate(
        synthetic_clean, champion=champion(fitted.model, fitted.training), train_config=config
    )
    assert not unknown.decision.window["clean"]
    assert unknown.decision.window["customers"] == len(fitted.training_set.features)
    assert "NOT clean" in unknown.decision.reason
    # a champion that saw the labels looks better on them than on its held-out customers
    assert (
        unknown.champion_evaluation["model"]["spearman"] > kept_out.champion_evaluation["model"]["spearman"]
    )


def test_champion_without_labels_in_the_window_is_scored_on_everyone_and_a_bad_cutoff_refused(
    synthetic_clean,
):
    config = TrainConfig(horizon_days=SYNTHETIC_H)
    window = gate_window(synthetic_clean, config.horizon_days)
    bad = shuffled_model(synthetic_clean, window.challenger_cutoff, config)
    evaluation_cutoff = str(window.evaluation_cutoff.date())
    # a formula-target champion never saw revenue after its cutoff: nobody is excluded, even given ids
    formula = retrain_and_gate(
        synthetic_clean,
        champion=champion(bad, {"target": "formula", "cutoff": evaluation_cutoff}, ["90001", "90002"]),
        train_config=config,
    )
    assert formula.decision.window["clean"] and formula.decision.window["customers_excluded"] == 0
    with pytest.raises(ConfigError, match="cutoff '2023-02-30' is not a valid date"):
        retrain_and_gate(
            synthetic_clean,
            champion=champion(bad, {"target": "holdout", "cutoff": "2023-02-30"}),
            train_config=config,
        )


def test_a_window_without_held_out_customers_is_refused(synthetic_clean):
    config = TrainConfig(horizon_days=SYNTHETIC_H)
    window = gate_window(synthetic_clean, config.horizon_days)
    everyone = build_training_set(synthetic_clean, horizon_days=SYNTHETIC_H, cutoff=window.evaluation_cutoff)
    with pytest.raises(DataError, match=r"only 0 customer\(s\) at the evaluation cutoff"):
        retrain_and_gate(
            synthetic_clean,
            champion=champion(
                shuffled_model(synthetic_clean, window.evaluation_cutoff, config),
                {"target": "holdout", "cutoff": str(window.evaluation_cutoff.date())},
                everyone.features.index,
            ),
            train_config=config,
        )


def test_history_shorter_than_two_horizons_and_some_days_is_refused(synthetic_clean):
    first = synthetic_clean[schema.INVOICE_DATE].min().normalize()
    span = (synthetic_clean[schema.INVOICE_DATE].max().normalize() - first).days
    longest = (span - MIN_FEATURE_DAYS) // 2
    assert gate_window(synthetic_clean, longest).challenger_cutoff >= first + pd.Timedelta(
        days=MIN_FEATURE_DAYS
    )
    with pytest.raises(DataError, match=rf"\({span} days\): retraining with a gate needs at least"):
        gate_window(synthetic_clean, longest + 1)
    with pytest.raises(DataError, match="needs at least 2 × 30"):
        retrain_and_gate(
            synthetic_clean.loc[synthetic_clean[schema.INVOICE_DATE] < first + pd.Timedelta(days=80)],
            champion=champion(shuffled_model(synthetic_clean, first + pd.Timedelta(days=200), TrainConfig())),
            train_config=TrainConfig(horizon_days=30),
        )
