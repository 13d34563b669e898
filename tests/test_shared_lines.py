"""SharedLines across threads (a replay runs a step's policies on two): each piece of work is done once
by the first thread that asks, others wait for it; a failure is not kept; the engine's table is read by one
thread at a time; a fit asked for by two threads at once is one fit."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from clvdrift.config import GbmParams, TrainConfig
from clvdrift.data import clean_transactions, load_transactions
from clvdrift.features import AggregateQuery, SharedLines, TransactionLines
from clvdrift.pipeline.train import fit_on_cutoff
from helpers import synthetic_history  # type: ignore[import-not-found]


def test_threads_asking_for_one_key_at_once_compute_it_once():
    shared = SharedLines(None)  # type: ignore[arg-type]  # the table is not read here
    calls, asked = [], threading.Barrier(4)

    def compute() -> object:
        calls.append(threading.get_ident())
        time.sleep(0.2)  # the other threads arrive while it runs
        return object()

    def ask(_: int) -> object:
        asked.wait()
        return shared.once("key", compute)

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(ask, range(4)))
    assert len(calls) == 1
    assert all(g is got[0] for g in got)


def test_a_failed_computation_is_not_kept():
    shared = SharedLines(None)  # type: ignore[arg-type]

    def fail() -> int:
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        shared.once("key", fail)
    assert shared.once("key", lambda: 7) == 7
    assert shared.once("key", fail) == 7  # kept now


class _Watched:
    """A line table that records how many threads are inside it at once."""

    def __init__(self, lines: TransactionLines) -> None:
        self.lines, self.inside, self.most = lines, 0, 0
        self._lock = threading.Lock()

    def _enter(self) -> None:
        with self._lock:
            self.inside += 1
            self.most = max(self.most, self.inside)

    def _leave(self) -> None:
        with self._lock:
            self.inside -= 1

    source = "watched"
    empty = False

    def first_day(self) -> pd.Timestamp:
        return self.lines.first_day()

    def last_day(self) -> pd.Timestamp:
        return self.lines.last_day()

    def aggregate(self, query: AggregateQuery) -> pd.DataFrame:
        self._enter()
        try:
            time.sleep(0.05)
            return self.lines.aggregate(query)
        finally:
            self._leave()

    def revenue(self, start, end, ids):  # type: ignore[no-untyped-def]
        self._enter()
        try:
            time.sleep(0.05)
            return self.lines.revenue(start, end, ids)
        finally:
            self._leave()


@pytest.fixture(scope="module")
def lines(tmp_path_factory) -> TransactionLines:
    path: Path = tmp_path_factory.mktemp("shared") / "tx.csv"
    synthetic_history(path, customers=150, days=400, seed=5)
    clean, _ = clean_transactions(load_transactions(path))
    return TransactionLines.from_frame(clean)


def test_the_engines_table_is_read_by_one_thread_at_a_time(lines):
    watched = _Watched(lines)
    shared = SharedLines(watched)  # type: ignore[arg-type]
    last = lines.last_day()

    def read(k: int) -> object:
        snapshot = last - pd.Timedelta(days=10 * k)
        agg = shared.aggregate(AggregateQuery(snapshot))
        shared.revenue(None, snapshot, agg.index)
        return agg

    with ThreadPoolExecutor(4) as pool:
        frames = list(pool.map(read, range(6)))
    assert watched.most == 1
    for k, frame in enumerate(frames):  # each thread got its own query's answer
        expected = lines.aggregate(AggregateQuery(last - pd.Timedelta(days=10 * k)))
        pd.testing.assert_frame_equal(frame, expected)


def test_a_fit_two_threads_ask_for_at_once_is_fitted_once(lines, monkeypatch):
    from clvdrift.model.gbm import GbmModel

    fits = []
    original = GbmModel.fit

    def counted(self, features, target):  # type: ignore[no-untyped-def]
        fits.append(len(features))
        return original(self, features, target)

    monkeypatch.setattr(GbmModel, "fit", counted)
    shared = SharedLines(lines)
    config = TrainConfig(horizon_days=60, gbm=GbmParams(max_iter=20))
    cutoff = lines.last_day() - pd.Timedelta(days=60)
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda _: fit_on_cutoff(shared, cutoff, config), range(2)))
    assert len(fits) == 1
    assert got[0] is got[1]
