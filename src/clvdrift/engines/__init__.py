"""One feature definition, several engines.

An engine turns raw transactions (a loaded frame, or the history's Parquet part files) into clean lines
(the cleaning rules of :mod:`clvdrift.data.clean`) held as a :class:`clvdrift.features.LineTable`, plus
the :class:`~clvdrift.data.clean.CleaningReport`. Every feature, target and baseline of
:mod:`clvdrift.features` is computed from the table's integer aggregates
(:class:`~clvdrift.features.AggregateQuery`), so every engine gives the same customers, the same
integer features and the same floats (one division per value, done by the same numpy code).

==========  =======================================================================================
``pandas``  the reference: the rows in memory as numpy arrays (:class:`~clvdrift.features.TransactionLines`)
``duckdb``  out of core: the rules in SQL over the part files, spilling to a temporary folder past its
            memory limit; the aggregates over its invoice groups (:mod:`clvdrift.engines.duckdb`)
``dask``    a ``dask.distributed`` cluster (``CLVDRIFT_DASK_SCHEDULER``) or a local one: rows shuffled by
            customer, the pandas definition run per partition (:mod:`clvdrift.engines.dask`)
``auto``    pandas below :data:`AUTO_DUCKDB_ROWS` raw rows, duckdb from there on (one machine)
==========  =======================================================================================

:func:`open_lines` is the one entry point; what it opened is closed by :meth:`OpenLines.close` (or a
``with`` block).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from clvdrift.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from clvdrift.data.clean import CleaningReport
    from clvdrift.features import LineTable

__all__ = [
    "AUTO_DUCKDB_ROWS",
    "ENGINES",
    "EngineChoice",
    "EngineName",
    "OpenLines",
    "Source",
    "choose_engine",
    "open_lines",
]

EngineName = Literal["auto", "pandas", "duckdb", "dask"]
ENGINES: tuple[str, ...] = get_args(EngineName)
AUTO_DUCKDB_ROWS = 1_000_000
"""``engine="auto"`` uses pandas below this many raw rows and DuckDB from there on. On 2026-12-07, for
the features at a cutoff: at the bundled file's 541,909 rows both took 0.41–0.48 s; at 1M rows pandas
0.97 s (a frame) / 1.07 s (history parts, 0.50 GB), DuckDB 0.80 s / 0.70 s (0.33 GB); at 2M pandas
2.4 / 2.5 s, DuckDB 1.4 / 1.0 s."""


@dataclass(frozen=True)
class Source:
    """Raw transactions: a frame as :func:`clvdrift.data.load_transactions` returns it, or the
    history's part files in read order (:meth:`clvdrift.data.history.TransactionHistory.parts`) with
    rows dated up to the day ``as_of``."""

    name: str
    frame: pd.DataFrame | None = field(default=None, repr=False)
    parts: tuple[Path, ...] = ()
    as_of: pd.Timestamp | None = None

    @classmethod
    def of_frame(cls, frame: pd.DataFrame) -> Source:
        return cls(name=str(frame.attrs.get("source", "transactions")), frame=frame)

    @classmethod
    def of_parts(cls, parts: list[Path], *, name: str, as_of: pd.Timestamp | None = None) -> Source:
        # absolute: a Dask worker runs in a folder of its own (on a cluster, the history's folder must
        # be at the same path on every worker, e.g. a shared file system)
        return cls(name=name, parts=tuple(Path(p).resolve() for p in parts), as_of=as_of)

    def until(self, day: pd.Timestamp) -> Source:
        """The rows dated up to the day ``day`` (rows without a date left out), as
        :meth:`clvdrift.data.history.TransactionHistory.read` reads them with ``as_of``."""
        import dataclasses

        from clvdrift.data import schema
        from clvdrift.data.history import as_of_end

        if self.frame is None:
            as_of = day if self.as_of is None else min(pd_timestamp(day), pd_timestamp(self.as_of))
            return dataclasses.replace(self, as_of=as_of)
        kept = self.frame.loc[self.frame[schema.INVOICE_DATE] < as_of_end(day)]
        kept.attrs = dict(self.frame.attrs)
        return dataclasses.replace(self, frame=kept)

    def rows(self) -> int:
        """How many raw rows (for the parts: before the ``as_of`` filter; from their metadata)."""
        if self.frame is not None:
            return len(self.frame)
        from clvdrift.data.history import part_rows

        return sum(part_rows(p) for p in self.parts)

    def read(self) -> pd.DataFrame:
        """The rows as one pandas frame (what the pandas engine cleans)."""
        if self.frame is not None:
            return self.frame
        from clvdrift.data.history import read_parts

        frame = read_parts(list(self.parts), as_of=self.as_of)
        frame.attrs["source"] = self.name
        return frame


@dataclass(frozen=True)
class EngineChoice:
    """Which engine to use and where (the settings ``engine``, ``dask_scheduler`` and
    ``duckdb_memory_limit``; their defaults live in :class:`clvdrift.settings.Settings`)."""

    engine: str = "auto"
    dask_scheduler: str | None = None
    duckdb_memory_limit: str | None = None

    def open(self, data: pd.DataFrame | Source, *, today: pd.Timestamp | None = None) -> OpenLines:
        """:func:`open_lines` with this choice (a frame is taken as a :meth:`Source.of_frame`)."""
        import pandas as pd

        source = Source.of_frame(data) if isinstance(data, pd.DataFrame) else data
        return open_lines(
            source,
            engine=self.engine,
            today=today,
            dask_scheduler=self.dask_scheduler,
            memory_limit=self.duckdb_memory_limit,
        )


@dataclass
class OpenLines:
    """What :func:`open_lines` returns: the clean lines, the cleaning report, the engine that made them
    (``auto`` resolved) and why it was chosen."""

    lines: LineTable
    cleaning: CleaningReport
    engine: str
    reason: str
    rows: int
    _close: Callable[[], None] = field(default=lambda: None, repr=False)

    def close(self) -> None:
        self._close()

    def __enter__(self) -> OpenLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pd_timestamp(value: object) -> pd.Timestamp:
    import pandas as pd

    return pd.Timestamp(value)  # type: ignore[arg-type]


def choose_engine(engine: str, rows: int) -> tuple[str, str]:
    """The engine to use for ``rows`` raw rows and why (``auto``: by :data:`AUTO_DUCKDB_ROWS`)."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    if engine != "auto":
        return engine, "chosen"
    if rows >= AUTO_DUCKDB_ROWS:
        return "duckdb", f"auto: {rows:,} rows ≥ {AUTO_DUCKDB_ROWS:,}"
    return "pandas", f"auto: {rows:,} rows < {AUTO_DUCKDB_ROWS:,}"


def open_lines(
    source: Source,
    *,
    engine: str = "auto",
    today: pd.Timestamp | None = None,
    dask_scheduler: str | None = None,
    memory_limit: str | None = None,
) -> OpenLines:
    """Clean ``source`` with ``engine`` (``today``: see :func:`clvdrift.data.clean_transactions`).

    ``dask_scheduler`` is the address of a ``dask.distributed`` scheduler for ``engine="dask"`` (a
    local cluster of two worker processes when ``None``); ``memory_limit`` is DuckDB's (e.g. ``"2GB"``).
    Raises :class:`~clvdrift.errors.DataError` as the cleaning does, with the same messages.
    """
    rows = source.rows()
    name, reason = choose_engine(engine, rows)
    if source.frame is not None:  # files are read as text; a frame from the API may hold 1 and "1"
        from clvdrift.data.clean import check_text_columns

        check_text_columns(source.frame, source.name)
    if name == "pandas":
        from clvdrift.engines import pandas as chosen

        return chosen.open_lines(source, today=today, reason=reason, rows=rows)
    if name == "duckdb":
        from clvdrift.engines import duckdb as chosen_duckdb

        return chosen_duckdb.open_lines(
            source, today=today, reason=reason, rows=rows, memory_limit=memory_limit
        )
    import clvdrift.engines.dask as chosen_dask

    return chosen_dask.open_lines(source, today=today, reason=reason, rows=rows, scheduler=dask_scheduler)
