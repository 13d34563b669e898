"""The engines' tests share one real Dask ``LocalCluster`` (two worker processes on 127.0.0.1) per module,
started and closed here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()
