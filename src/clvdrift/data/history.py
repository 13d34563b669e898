"""The transaction history: the one place where transactions live, and that every later step reads.

Layout: a folder of append-only Parquet part files (one per batch) plus the store table
``history_batches`` (one row per batch, :class:`clvdrift.store.tables.HistoryBatchRow`). Only part files
named by a batch row are history; anything else in the folder is ignored by :meth:`read`.

Rows are stored RAW, as :func:`clvdrift.data.load_transactions` returns them (before cleaning), so the
cleaning rules may change later and every reader applies the current ones.

Batch modes:

- ``snapshot``: the batch is the complete history; :meth:`TransactionHistory.read` returns the newest
  snapshot batch plus every ``append`` batch recorded after it.
- ``append``: the batch holds new transactions. A row that is an exact duplicate (all canonical columns
  equal, missing values equal to each other) of a row already in the history is not added again, so two
  exports overlapping by a few days give the same history as one export. Rows are counted as a multiset:
  a row the batch holds k times and the history n times is added max(0, k − n) times, so duplicates
  within a batch are kept as the source has them (the cleaning's ``exact_duplicate`` rule deals with
  those) and a genuine repeat of an overlapping row in a later export is not lost.

Deduplication never reads the history through SQL: each part stores a 64-bit hash per row
(``pandas.util.hash_pandas_object`` on the canonical columns, column ``_row_hash``), and a new batch is
compared with the hashes of the parts overlapping its date range only (that column, filtered by date).
Two distinct rows with the same 64-bit hash would make the second one look like a duplicate: about
n²/2⁶⁵, 3·10⁻⁶ for a 10M-row history.

Integrity: each batch row records the sha256 of its part (``part_sha256``); :meth:`read` checks it, and a
missing, corrupted or unreadable part is a :class:`clvdrift.errors.HistoryIntegrityError` (exit 3)
naming the part and its batch. :meth:`verify` checks every part, :meth:`drop` removes a batch (its part
moves to ``<root>/dropped/``).

A batch that adds nothing is not recorded (:meth:`add` returns ``None``): in ``append`` mode when every
row is in the history already, in ``snapshot`` mode when its rows are exactly the history's rows (the
same multiset, e.g. a re-export with other line endings).

Adding is atomic and serialized: under an ``flock`` on ``<root>/.history.lock`` the part is written to a
temporary name, fsynced and renamed to its final name (:func:`clvdrift.io.atomic_write`), then the batch
row is inserted in one transaction. A crash before the commit leaves an orphan part that readers ignore
and that a later :meth:`add` removes once its writer is dead or it is older than an hour. The lock also
keeps two concurrent overlapping appends from both adding the overlap; it is a local-host lock, so
processes on several machines sharing the folder (e.g. over NFS) are not serialized by it.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from clvdrift.data import schema
from clvdrift.errors import ConfigError, DataError, HistoryIntegrityError, RegistryError
from clvdrift.io import atomic_write, host_tag, owner_is_gone, remove_stale_temp_files, sha256_file
from clvdrift.store import session_scope
from clvdrift.store.tables import HistoryBatchRow

__all__ = [
    "HISTORY_SCHEMA",
    "ORPHAN_AGE_SECONDS",
    "BatchMode",
    "HistoryBatch",
    "PartProblem",
    "TransactionHistory",
    "current_batches",
]

BatchMode = Literal["snapshot", "append"]

ROW_HASH = "_row_hash"
ORPHAN_AGE_SECONDS = 3600.0
"""A part file no batch row names is removed by :meth:`TransactionHistory.add` after this long (or at
once when its writer's PID, in its name, is dead on this host)."""

LOCK_NAME = ".history.lock"
_CATEGORICAL = (schema.INVOICE, schema.STOCK_CODE, schema.CUSTOMER, schema.COUNTRY)
_FLOATS = (schema.QUANTITY, schema.UNIT_PRICE)
_DICT = pa.dictionary(pa.int32(), pa.string())
_STRING = pd.ArrowDtype(pa.string())  # Description, as load_transactions returns it
HISTORY_SCHEMA = pa.schema(
    [
        (name, _DICT if name in _CATEGORICAL else pa.float64() if name in _FLOATS else pa.string())
        for name in schema.CANONICAL_COLUMNS
        if name != schema.INVOICE_DATE
    ]
    + [(schema.INVOICE_DATE, pa.timestamp("ns")), (ROW_HASH, pa.uint64())]
)
"""The fixed Arrow schema of every part file, so parts written from different inputs read as one table."""


@dataclass(frozen=True)
class HistoryBatch:
    """One batch of the history as recorded in the store (``first_date``/``last_date``: of its input rows)."""

    batch_id: str
    source: str
    sha256: str
    mode: BatchMode
    part_file: str
    rows_in: int
    rows_added: int
    first_date: pd.Timestamp | None
    last_date: pd.Timestamp | None
    created_at: datetime
    part_sha256: str | None = None


@dataclass(frozen=True)
class PartProblem:
    """What :meth:`TransactionHistory.verify` found wrong with one batch's part file."""

    batch_id: str
    part_file: str
    source: str
    problem: str

    def message(self) -> str:
        return f"part {self.part_file} of batch {self.batch_id} (from {self.source}): {self.problem}"


class TransactionHistory:
    """Append-only Parquet parts in ``root`` plus the ``history_batches`` table of ``engine``."""

    def __init__(self, root: Path, engine: Engine) -> None:
        self.root = Path(root)
        self.engine = engine

    def add(self, frame: pd.DataFrame, *, source: str, sha256: str, mode: BatchMode) -> HistoryBatch | None:
        """Add a batch (see the module docstring for the modes); returns the batch as recorded, or
        ``None`` when it adds nothing to the history (nothing is recorded then).

        ``frame`` is what :func:`clvdrift.data.load_transactions` returns; ``source`` names where it came
        from (a file path or ``"api"``) and ``sha256`` is the content hash of that input.
        """
        if mode not in get_args(BatchMode):
            raise ConfigError(f"history batch mode {mode!r} is not one of {list(get_args(BatchMode))}")
        _check_fits(source=source, sha256=sha256)
        frame = _canonical(frame, source)
        hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
        first, last = _date_range(frame)
        with self._lock():
            self._remove_orphans()
            keep = np.ones(len(frame), dtype=bool)
            if mode == "append":
                keep = _beyond(hashes, self._existing_hashes(frame, first, last))
                if not keep.any():
                    return None
            elif self._same_rows(hashes):
                return None
            batch_id = _new_batch_id()
            part = self.root / f"part-{batch_id}.{os.getpid()}-{host_tag()}.parquet"
            part_sha256 = _write_part(part, frame[keep], hashes[keep])
            row = HistoryBatchRow(
                batch_id=batch_id,
                source=source,
                sha256=sha256,
                mode=mode,
                part_file=part.name,
                rows_in=len(frame),
                rows_added=int(keep.sum()),
                first_date=_to_utc(first),
                last_date=_to_utc(last),
                created_at=datetime.now(UTC),
                part_sha256=part_sha256,
            )
            try:
                with session_scope(self.engine) as session:
                    self._record(session, row)
            except BaseException:
                self._unlink_unrecorded(part, batch_id)
                raise
        return _batch(row)

    def read(self, *, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
        """The history in the canonical schema: rows dated on or before the day ``as_of`` (all without it).

        ``as_of`` covers its whole day; a timezone-aware ``as_of`` is taken in UTC (the loader stores UTC).
        Rows without a date are left out when ``as_of`` is given.
        """
        batches = current_batches(self.batches())
        paths = [self._checked_part(batch) for batch in batches]
        try:
            return read_parts(paths, as_of=as_of)
        except HistoryIntegrityError as exc:  # a part written before checksums, damaged since
            problems = [p for b in batches if (p := _part_problem(self.root, b)) is not None]
            raise _integrity_error(self.root, problems or [str(exc)]) from None

    def parts(self) -> list[Path]:
        """The part files the history is read from, in read order, each checked against its sha256
        (:class:`HistoryIntegrityError`): what an out-of-core engine scans instead of :meth:`read`."""
        return [self._checked_part(batch) for batch in current_batches(self.batches())]

    def customers(self) -> int:
        """How many distinct customer ids the history holds (reads that column only)."""
        batches = current_batches(self.batches())
        if not batches:
            return 0
        paths = [str(self.root / b.part_file) for b in batches]
        try:
            dataset = ds.dataset(paths, schema=HISTORY_SCHEMA, format="parquet")
            column = dataset.to_table(columns=[schema.CUSTOMER]).column(schema.CUSTOMER)
        except (pa.ArrowException, OSError) as exc:
            raise _integrity_error(self.root, [f"cannot read the history ({exc})"]) from None
        return int(pc.count_distinct(column.cast(pa.string()), mode="only_valid").as_py())

    def check(self) -> None:
        """Raise :class:`HistoryIntegrityError` when a part the history is read from is missing or
        differs from its sha256 (what :meth:`read` checks, without reading the rows)."""
        for batch in current_batches(self.batches()):
            self._checked_part(batch)

    def verify(self) -> list[PartProblem]:
        """Every recorded batch's part checked (present, matching its sha256, readable with its row
        count); the problems found, empty when the history is sound."""
        return [p for b in self.batches() if (p := _part_problem(self.root, b)) is not None]

    def drop(self, batch_id: str) -> HistoryBatch:
        """Remove the batch ``batch_id`` from the history: its row is deleted and its part (if any) moved
        to ``<root>/dropped/``. Reads then see the history without it (dropping the newest snapshot
        brings back the one before and the batches after that)."""
        with self._lock():
            with session_scope(self.engine) as session:
                row = session.scalar(select(HistoryBatchRow).where(HistoryBatchRow.batch_id == batch_id))
                if row is None:
                    known = ", ".join(b.batch_id for b in self.batches()) or "none"
                    raise ConfigError(f"history has no batch {batch_id!r} (batches: {known})")
                batch = _batch(row)
                session.delete(row)
            part = self.root / batch.part_file
            if part.exists():
                (self.root / "dropped").mkdir(exist_ok=True)
                os.replace(part, self.root / "dropped" / part.name)
        return batch

    def batches(self) -> list[HistoryBatch]:
        """Every recorded batch, oldest first (the order in which they were added)."""
        with session_scope(self.engine) as session:
            rows = session.scalars(select(HistoryBatchRow).order_by(HistoryBatchRow.id)).all()
            return [_batch(row) for row in rows]

    def _record(self, session: Session, row: HistoryBatchRow) -> None:
        """Insert the batch row (flushed; committed by the caller's transaction)."""
        session.add(row)
        session.flush()

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Exclusive ``flock`` on ``<root>/.history.lock``: one add at a time on this host."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(self.root / LOCK_NAME, "a")  # noqa: SIM115 - held for the whole block
        except OSError as exc:
            raise ConfigError(f"history folder {self.root}: cannot be written ({exc.strerror})") from exc
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _checked_part(self, batch: HistoryBatch) -> Path:
        """The part file of ``batch``, present and matching its sha256 (:class:`HistoryIntegrityError`)."""
        path = self.root / batch.part_file
        problem = _missing_or_changed(path, batch)
        if problem is not None:
            raise _integrity_error(
                self.root, [PartProblem(batch.batch_id, batch.part_file, batch.source, problem)]
            )
        return path

    def _same_rows(self, hashes: np.ndarray) -> bool:
        """Whether the current history holds exactly these row hashes (as a multiset)."""
        batches = current_batches(self.batches())
        if not batches or sum(b.rows_added for b in batches) != len(hashes):
            return False
        paths = [self._checked_part(b) for b in batches]
        dataset = ds.dataset(paths, schema=HISTORY_SCHEMA, format="parquet")
        stored = dataset.to_table(columns=[ROW_HASH]).column(ROW_HASH).to_numpy()
        return bool(np.array_equal(np.sort(stored), np.sort(hashes)))

    def _existing_hashes(
        self, frame: pd.DataFrame, first: pd.Timestamp | None, last: pd.Timestamp | None
    ) -> np.ndarray:
        """Row hashes of the current history that could equal a row of ``frame`` (same dates, or undated)."""
        undated = bool(frame[schema.INVOICE_DATE].isna().any())
        overlapping = [
            self._checked_part(b)
            for b in current_batches(self.batches())
            if undated or (first is not None and last is not None and _overlaps(b, first, last))
        ]
        if not overlapping:
            return np.empty(0, dtype=np.uint64)
        date, ns = ds.field(schema.INVOICE_DATE), pa.timestamp("ns")
        expr = date.is_null() if undated else None
        if first is not None and last is not None:
            dated = (date >= pa.scalar(first.to_datetime64(), ns)) & (
                date <= pa.scalar(last.to_datetime64(), ns)
            )
            expr = dated if expr is None else expr | dated
        dataset = ds.dataset(overlapping, schema=HISTORY_SCHEMA, format="parquet")
        return dataset.to_table(columns=[ROW_HASH], filter=expr).column(ROW_HASH).to_numpy()

    def _unlink_unrecorded(self, part: Path, batch_id: str) -> None:
        """After a failed insert: remove the part unless its row did commit (then it is history).

        When the store cannot even be asked, the part stays and a later add removes it as an orphan.
        """
        try:
            recorded = any(b.batch_id == batch_id for b in self.batches())
        except RegistryError:  # the store cannot be asked: leave it to the orphan sweep
            return
        if not recorded:
            part.unlink(missing_ok=True)

    def _remove_orphans(self) -> None:
        """Remove temporary files of dead writers and part files no batch row names (ORPHAN_AGE_SECONDS)."""
        remove_stale_temp_files(self.root)
        named = {b.part_file for b in self.batches()}
        now = time.time()
        for path in self.root.glob("part-*.parquet"):
            if path.name not in named and _orphan_is_dead(path, now):
                path.unlink(missing_ok=True)


def _orphan_is_dead(path: Path, now: float) -> bool:
    """Whether the writer of an unrecorded part file cannot still commit it (dead PID here, or too old)."""
    try:
        if now - path.stat().st_mtime > ORPHAN_AGE_SECONDS:
            return True
    except FileNotFoundError:
        return False
    writer = path.name.removesuffix(".parquet").rsplit(".", 1)[-1]
    pid, _, host = writer.partition("-")
    return pid.isdigit() and owner_is_gone(int(pid), host)


def _beyond(hashes: np.ndarray, existing: np.ndarray) -> np.ndarray:
    """Which rows of a batch are new as a multiset: the occurrences of each hash past the number of
    times ``existing`` (the history's overlapping hashes) holds it."""
    if len(existing) == 0 or len(hashes) == 0:
        return np.ones(len(hashes), dtype=bool)
    values, counts = np.unique(existing, return_counts=True)
    at = np.minimum(np.searchsorted(values, hashes), len(values) - 1)
    have = np.where(values[at] == hashes, counts[at], 0)
    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    first = np.r_[True, ordered[1:] != ordered[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(ordered)), 0))
    rank = np.empty(len(hashes), dtype=np.int64)
    rank[order] = np.arange(len(ordered)) - group_start  # 0 for a hash's first occurrence in the batch
    return rank >= have


def _overlaps(batch: HistoryBatch, first: pd.Timestamp, last: pd.Timestamp) -> bool:
    return (
        batch.first_date is not None
        and batch.last_date is not None
        and batch.first_date <= last
        and batch.last_date >= first
    )


def read_parts(paths: list[Path], *, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Part files (in order) as one frame in the canonical schema; ``as_of`` as in
    :meth:`TransactionHistory.read`. Unreadable parts are a :class:`HistoryIntegrityError`."""
    expr = None
    if as_of is not None:
        end = as_of_end(as_of)
        expr = ds.field(schema.INVOICE_DATE) < pa.scalar(end.to_datetime64(), pa.timestamp("ns"))
    try:
        dataset = ds.dataset([str(p) for p in paths], schema=HISTORY_SCHEMA, format="parquet")
        table = dataset.to_table(columns=list(schema.CANONICAL_COLUMNS), filter=expr)
    except (pa.ArrowException, OSError) as exc:
        check_parts(paths)  # names the part
        raise HistoryIntegrityError(f"cannot read the history ({exc})") from None
    return table.to_pandas(types_mapper=_pandas_type)


def _unreadable(path: Path, exc: BaseException) -> HistoryIntegrityError:
    detail = " ".join(str(exc).split()) or type(exc).__name__  # pyarrow's text may end in a newline
    return HistoryIntegrityError(f"cannot read the history's part {path} ({detail})")


def _column_problem(name: str, kind: pa.DataType | None) -> str | None:
    """What is wrong with a part's column ``name`` of Arrow type ``kind`` (None: absent), for every engine
    to read it alike: text columns are (dictionary-coded) strings, amounts integers or floats, the date a
    timestamp without a time zone."""
    if kind is None:
        return f"has no column {name}"
    text = (pa.types.is_string, pa.types.is_large_string)
    if pa.types.is_null(kind):  # every value missing: each engine reads missing values
        fits = True
    elif pa.types.is_dictionary(kind):
        kind_of_values = kind.value_type
        fits = any(test(kind_of_values) for test in text)
    elif name in _FLOATS:
        fits = pa.types.is_floating(kind) or pa.types.is_integer(kind)
    elif name == schema.INVOICE_DATE:
        fits = pa.types.is_timestamp(kind) and kind.tz is None
    else:
        fits = any(test(kind) for test in text)
    return None if fits else f"has column {name} of type {kind}"


def part_rows(path: Path) -> int:
    """The row count in a part file's metadata; :class:`HistoryIntegrityError` when it cannot be read
    (gone, truncated, not Parquet) or its columns are not the history's (a missing or misspelt column,
    ids as numbers, dates as text), which the engines would read differently."""
    try:
        part = pq.ParquetFile(path)
        columns = {field.name: field.type for field in part.schema_arrow}
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(path, exc) from None
    for name in schema.CANONICAL_COLUMNS:
        problem = _column_problem(name, columns.get(name))
        if problem:
            raise HistoryIntegrityError(
                f"cannot read the history's part {path}: it {problem}, unlike every part clvdrift writes "
                "(see `clvdrift history verify`)"
            )
    return int(part.metadata.num_rows)


def check_parts(parts: Sequence[Path]) -> None:
    """Read every part through (an engine that failed on the parts asks): a
    :class:`HistoryIntegrityError` naming the first part pyarrow cannot read."""
    for path in parts:
        try:
            for _ in pq.ParquetFile(path).iter_batches(batch_size=1 << 16):
                pass
        except (pa.ArrowException, OSError) as exc:
            raise _unreadable(path, exc) from None


def as_of_end(as_of: pd.Timestamp) -> pd.Timestamp:
    """The exclusive end (naive UTC) of the day ``as_of``: rows dated before it are read."""
    return _naive_utc(pd.Timestamp(as_of)).normalize() + pd.Timedelta(days=1)


def current_batches(batches: list[HistoryBatch]) -> list[HistoryBatch]:
    """The batches that make up the history: the newest snapshot and every batch after it."""
    snapshots = [i for i, b in enumerate(batches) if b.mode == "snapshot"]
    return batches[snapshots[-1] :] if snapshots else batches


def _check_fits(**values: str) -> None:
    """Refuse a text longer than its store column (PostgreSQL would refuse it half-way through an add)."""
    for name, value in values.items():
        limit: int | None = getattr(HistoryBatchRow.__table__.c[name].type, "length", None)
        if limit is not None and len(value) > limit:
            raise DataError(
                f"history batch {name} {value[:40]!r}...: {len(value)} characters, at most {limit}"
            )


def _canonical(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """The canonical columns of ``frame`` in the history's dtypes (so equal rows hash equally)."""
    missing = [c for c in schema.CANONICAL_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"history batch from {source}: missing column(s) {missing}; "
            f"expected {list(schema.CANONICAL_COLUMNS)}"
        )
    out = {}
    for name in schema.CANONICAL_COLUMNS:
        col = frame[name]
        try:
            out[name] = _as_history_dtype(name, col)
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"history batch from {source}: column {name} has dtype {col.dtype}, cannot be stored ({exc})"
            ) from exc
    return pd.DataFrame(out).reset_index(drop=True)


def _as_history_dtype(name: str, col: pd.Series) -> pd.Series:
    if name in _CATEGORICAL:
        if isinstance(col.dtype, pd.CategoricalDtype) and _object_strings(col.cat.categories):
            return col
        return col.astype("string").astype(object).astype("category")
    if name in _FLOATS:
        return col.astype(np.float64)
    if name == schema.INVOICE_DATE:
        return col.astype("datetime64[ns]")
    return col.astype(_STRING)


def _object_strings(categories: pd.Index) -> bool:
    """Whether categories are Python strings, as the loader makes them (integers hash unlike their text)."""
    return categories.dtype == object and categories.inferred_type in ("string", "empty")


def _pandas_type(arrow_type: pa.DataType) -> object:
    """Description reads back as the loader gives it (Arrow strings); other columns by default."""
    return _STRING if arrow_type == pa.string() else None


def _write_part(path: Path, frame: pd.DataFrame, hashes: np.ndarray) -> str:
    """Write the part file atomically; its sha256."""
    table = pa.Table.from_pandas(frame.assign(**{ROW_HASH: hashes}), preserve_index=False)
    table = table.select(HISTORY_SCHEMA.names).cast(HISTORY_SCHEMA).replace_schema_metadata(None)
    digest = []

    def write(tmp: Path) -> None:
        pq.write_table(table, tmp)
        digest.append(sha256_file(tmp))

    atomic_write(path, write)
    return digest[0]


def _missing_or_changed(path: Path, batch: HistoryBatch) -> str | None:
    """Why the part of ``batch`` cannot be used as recorded (missing, other sha256), else ``None``."""
    try:
        if batch.part_sha256 is None:
            return None if path.is_file() else "the file is missing"
        actual = sha256_file(path)
    except FileNotFoundError:
        return "the file is missing"
    except OSError as exc:
        return f"the file cannot be read ({exc.strerror})"
    if actual != batch.part_sha256:
        return f"its sha256 is {actual[:12]}…, {batch.part_sha256[:12]}… was recorded (corrupted)"
    return None


def _part_problem(root: Path, batch: HistoryBatch) -> PartProblem | None:
    """What is wrong with ``batch``'s part: missing, changed, unreadable or not its recorded row count."""
    path = root / batch.part_file
    problem = _missing_or_changed(path, batch)
    if problem is None:
        try:
            rows = pq.read_metadata(path).num_rows
            pq.read_table(path, columns=[ROW_HASH])
        except (pa.ArrowException, OSError) as exc:
            problem = (
                f"unreadable as Parquet ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            )
        else:
            if rows != batch.rows_added:
                problem = f"{rows} rows, {batch.rows_added} were recorded"
    return None if problem is None else PartProblem(batch.batch_id, batch.part_file, batch.source, problem)


def _integrity_error(root: Path, problems: list[PartProblem] | list[str]) -> HistoryIntegrityError:
    first = problems[0]
    text = first.message() if isinstance(first, PartProblem) else first
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    repair = (
        f"; run `clvdrift history drop {first.batch_id}` and put its source file back to re-import it"
        if isinstance(first, PartProblem)
        else ""
    )
    return HistoryIntegrityError(
        f"transaction history {root}: {text}{more}{repair} (see `clvdrift history verify`)"
    )


def _date_range(frame: pd.DataFrame) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    dates = frame[schema.INVOICE_DATE]
    first, last = dates.min(), dates.max()
    return (None, None) if pd.isna(first) else (first, last)


def _new_batch_id() -> str:
    """A unique, time-ordered batch id: UTC timestamp to the microsecond plus 8 random hex digits."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"


def _to_utc(value: pd.Timestamp | None) -> datetime | None:
    return None if value is None else value.tz_localize(UTC).to_pydatetime()


def _naive_utc(value: pd.Timestamp) -> pd.Timestamp:
    return value if value.tzinfo is None else value.tz_convert(UTC).tz_localize(None)


def _from_store(value: datetime | None) -> pd.Timestamp | None:
    """A stored date as the naive UTC Timestamp the transactions use (SQLite returns it naive already)."""
    return None if value is None else _naive_utc(pd.Timestamp(value))


def _batch(row: HistoryBatchRow) -> HistoryBatch:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return HistoryBatch(
        batch_id=row.batch_id,
        source=row.source,
        sha256=row.sha256,
        mode=row.mode,  # type: ignore[arg-type]
        part_file=row.part_file,
        rows_in=row.rows_in,
        rows_added=row.rows_added,
        first_date=_from_store(row.first_date),
        last_date=_from_store(row.last_date),
        created_at=created,
        part_sha256=row.part_sha256,
    )
