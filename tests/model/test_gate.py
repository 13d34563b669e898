"""The champion/challenger gate's rule on hand-made metric sets: the tolerance boundary on each side for
every primary metric, NaN and missing values, and what a decision reports."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clvdrift.config import GateConfig, validated
from clvdrift.errors import ConfigError
from clvdrift.model.gate import REPORTED_METRICS, decide, worse_by


def metrics(spearman: float = 0.5, gini: float = 0.7, mae: float = 100.0) -> dict[str, float]:
    return {"spearman": spearman, "gini_normalized": gini, "mae": mae, "r2": 0.1}


@pytest.mark.parametrize(
    ("primary", "champion", "at_boundary", "beyond"),
    [
        # absolute tolerance for the ranking metrics, on values far from the bundled file's
        ("spearman", metrics(spearman=0.5), metrics(spearman=0.48), metrics(spearman=0.4799)),
        ("spearman", metrics(spearman=-0.3), metrics(spearman=-0.32), metrics(spearman=-0.3201)),
        ("gini_normalized", metrics(gini=0.91), metrics(gini=0.89), metrics(gini=0.8899)),
        # relative tolerance for MAE: 2% of the champion's, whatever the currency scale
        ("mae", metrics(mae=100.0), metrics(mae=102.0), metrics(mae=102.01)),
        ("mae", metrics(mae=2.5e6), metrics(mae=2.55e6), metrics(mae=2.5501e6)),
    ],
)
def test_tolerance_boundary_both_ways(primary, champion, at_boundary, beyond):
    config = GateConfig(primary_metric=primary, tolerance=0.02)
    accepted = decide(champion, at_boundary, config)
    rejected = decide(champion, beyond, config)
    assert accepted.promote, accepted.reason
    assert "promoted" in accepted.reason
    assert not rejected.promote
    assert "rejected" in rejected.reason and primary in rejected.reason


@pytest.mark.parametrize("primary", ["spearman", "gini_normalized", "mae"])
def test_better_challenger_is_promoted_even_with_zero_tolerance(primary):
    better = metrics(spearman=0.6, gini=0.8, mae=90.0)
    decision = decide(metrics(), better, GateConfig(primary_metric=primary, tolerance=0.0))
    assert decision.promote and "better" in decision.reason
    slightly_worse = metrics(spearman=0.4999, gini=0.6999, mae=100.01)
    assert not decide(metrics(), slightly_worse, GateConfig(primary_metric=primary, tolerance=0.0)).promote


def test_mae_against_a_perfect_champion():
    perfect = metrics(mae=0.0)
    assert decide(perfect, metrics(mae=0.0), GateConfig(primary_metric="mae")).promote
    assert not decide(perfect, metrics(mae=0.01), GateConfig(primary_metric="mae", tolerance=10)).promote


@pytest.mark.parametrize("undefined", [math.nan, None, "missing"])
def test_undefined_challenger_metric_is_rejected(undefined):
    challenger = metrics(spearman=0.99)
    if undefined == "missing":
        del challenger["spearman"]
    else:
        challenger["spearman"] = undefined
    decision = decide(metrics(), challenger, GateConfig())
    assert not decision.promote
    assert "challenger's spearman is undefined" in decision.reason


def test_undefined_champion_metric_promotes_a_defined_challenger_and_says_so():
    decision = decide(metrics(spearman=math.nan), metrics(spearman=0.05), GateConfig())
    assert decision.promote
    assert "champion's spearman is undefined" in decision.reason
    both_undefined = decide(metrics(spearman=math.nan), metrics(spearman=math.nan), GateConfig())
    assert not both_undefined.promote


def test_decision_reports_mae_and_gini_next_to_the_primary_and_is_json():
    champion, challenger = metrics(gini=math.nan), metrics(spearman=0.55, mae=140.0)
    decision = decide(champion, challenger, GateConfig(), window={"cutoff": "2023-01-01", "customers": 7})
    assert set(decision.champion) == set(decision.challenger) == set(REPORTED_METRICS)
    assert decision.challenger["mae"] == 140.0 and math.isnan(decision.champion["gini_normalized"])
    out = json.loads(json.dumps(decision.to_dict(), allow_nan=False))
    assert out["champion"]["gini_normalized"] is None
    assert out["window"] == {"cutoff": "2023-01-01", "customers": 7}
    assert out["primary_metric"] == "spearman" and out["tolerance"] == 0.02 and out["promote"] is True


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"tolerance": -0.01}, "tolerance"),
        ({"tolerance": math.inf}, "tolerance"),
        ({"primary_metric": "r2"}, "primary_metric"),
    ],
)
def test_invalid_gate_config_is_a_config_error(values, field):
    with pytest.raises(ConfigError, match=field):
        validated(GateConfig, "gate settings", **values)


finite = st.floats(min_value=-1, max_value=1, allow_nan=False)


@given(champion=finite, challenger=finite, tolerance=st.floats(min_value=0, max_value=0.5))
def test_spearman_rule_matches_its_definition(champion, challenger, tolerance):
    decision = decide(
        metrics(spearman=champion), metrics(spearman=challenger), GateConfig(tolerance=tolerance)
    )
    gap = champion - challenger
    if abs(gap - tolerance) > 1e-8:  # away from the float-noise band around the boundary
        assert decision.promote == (gap <= tolerance)
    assert worse_by(champion, challenger, "spearman") == pytest.approx(gap)
