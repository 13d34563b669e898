"""The customers every registered version leaves out (`pipeline.train.held_out`): chosen by a hash of
the id, so two versions fitted on different data hold out the same customers and can be compared on
them (the gate, model drift, and the replay's paired figures rely on it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clvdrift.config import TrainConfig
from clvdrift.pipeline.train import held_out


def _ids(n: int, offset: int = 0) -> pd.Index:
    return pd.Index([str(i) for i in range(offset, offset + n)])


def test_a_customer_is_held_out_or_not_whatever_the_other_customers_and_their_order():
    config = TrainConfig()
    ids = _ids(20_000, offset=10_000)
    whole = pd.Series(held_out(ids, config), index=ids)
    rng = np.random.default_rng(3)
    part = ids[rng.permutation(len(ids))[:5_000]]  # another customer set, in another order
    assert (held_out(part, config) == whole.loc[part].to_numpy()).all()
    numeric = pd.Index(ids.astype(int))  # ids read as numbers are the same customers
    assert (held_out(numeric, config) == whole.to_numpy()).all()


@pytest.mark.parametrize("share", [0.1, 0.2, 0.5])
def test_the_share_held_out_is_the_configured_one(share):
    out = held_out(_ids(40_000), TrainConfig(test_size=share))
    assert out.mean() == pytest.approx(share, abs=0.01)


def test_another_random_state_holds_out_other_customers():
    ids = _ids(10_000)
    a, b = held_out(ids, TrainConfig(random_state=42)), held_out(ids, TrainConfig(random_state=7))
    assert (a & b).mean() == pytest.approx(0.2 * 0.2, abs=0.01)  # independent draws


@pytest.mark.parametrize("n", [2, 3, 5, 10, 12, 20, 37])
def test_a_few_customers_hold_out_enough_to_be_judged_and_keep_one_to_train_on(n):
    import math

    for offset in range(0, 400, 7):  # many small sets, some with few or no hashes below the share
        out = held_out(_ids(n, offset), TrainConfig())
        assert min(3, math.ceil(0.2 * n), n - 1) <= out.sum() <= n - 1


def test_the_held_out_customers_of_two_sets_are_nested_on_their_common_customers():
    """Held out = a prefix of one hash order: of the customers two sets share, those held out of the
    smaller threshold are held out of the other too (so two versions always share unseen customers)."""
    config = TrainConfig()
    for n in (8, 15, 60, 500):
        a, b = _ids(n, 1000), _ids(n, 1000 + n // 2)  # overlapping by half
        out_a = pd.Series(held_out(a, config), index=a)
        out_b = pd.Series(held_out(b, config), index=b)
        common = a.intersection(b)
        both = out_a[common] & out_b[common]
        assert both.sum() >= min(out_a[common].sum(), out_b[common].sum()) - 1  # nested up to the one kept
