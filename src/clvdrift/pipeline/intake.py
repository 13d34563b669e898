"""Taking new files in: which files of ``current_dir`` are ready, and what happened to each.

Every entry of ``current_dir`` ends with one :class:`FileOutcome`, so nothing is passed over without a
word:

- ``processed``: validated and added to the transaction history (its rows are checked by this run);
- ``unchanged``: valid, but it adds no row to the history (a re-export of the same rows): recorded in
  the ledger, nothing to check;
- ``quarantined``: it failed validation (or, as a snapshot, it would empty or shrink the history): the
  ledger records why, then it moves to ``quarantine_dir`` (recorded first, so a kill in between loses
  nothing; a move that fails leaves it in place, said in the reason);
- ``unreadable``: it cannot be read (permissions, I/O error): left in place and tried again next cycle;
- ``waiting``: it is still being written: a temporary name (``*.tmp``, ``*.part``, …), a process of
  this host has it open for writing, or its size or mtime changed within ``settle_seconds``; it is taken
  in by a later cycle;
- ``ignored``: not a transactions file (another extension, a folder, a hidden file);
- ``seen before``: its content (sha256) is in the ledger already;
- ``recheck``: taken in by an earlier run that did not finish its check (failed, killed, stopped).

Writing a file as ``name.part`` (or ``.tmp``) and renaming it when complete is the safe way to drop a
file (docs/operations.md); the settle check protects the plain ``cp``.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from clvdrift.data import clean_transactions, load_transactions
from clvdrift.data.schema import SUPPORTED_SUFFIXES
from clvdrift.errors import DataError
from clvdrift.faults import fault_point
from clvdrift.io import sha256_file
from clvdrift.jsonable import dataclass_dict
from clvdrift.store.ledger import display_path

if TYPE_CHECKING:
    from clvdrift.data.history import TransactionHistory
    from clvdrift.store.ledger import Ledger

BatchMode = Literal["snapshot", "append"]
IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart", ".download", ".inprogress")
"""A file named like this is being written; it is taken in once renamed."""
_HINTS = {
    ".xls": "old Excel format: save it as .xlsx",
    ".tsv": "rename it to .txt (tab-delimited text is read)",
    ".bz2": "decompress it, or recompress it with gzip (.csv.gz)",
    ".zip": "unzip it",
    ".xz": "decompress it, or recompress it with gzip (.csv.gz)",
    ".json": "export it as CSV, XLSX or Parquet",
}
NOT_TAKEN_IN = ("quarantined", "unreadable")
"""Outcomes of a new file the cycle could not use: they make a run ``partial`` or ``rejected``."""


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one entry of ``current_dir`` (module docstring); ``path`` is printable text."""

    path: str
    sha256: str | None
    status: str
    reason: str | None = None
    rows_added: int | None = None

    def __post_init__(self) -> None:  # any text from a file name (error messages quote it) is printable
        object.__setattr__(self, "path", display_path(self.path))
        if self.reason is not None:
            object.__setattr__(self, "reason", display_path(self.reason))

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


@dataclass(frozen=True)
class NewData:
    """The files a cycle looked at, and the runs it found dead (their files are rechecked)."""

    files: list[FileOutcome]
    reaped: list[str] | None = None

    def with_status(self, *statuses: str) -> list[FileOutcome]:
        return [f for f in self.files if f.status in statuses]

    @property
    def to_check(self) -> list[FileOutcome]:
        """The files whose rows this run must check: those it took in, and those it rechecks."""
        return self.with_status("processed", "recheck")

    @property
    def not_taken_in(self) -> list[FileOutcome]:
        return self.with_status(*NOT_TAKEN_IN)

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def _supported(name: str) -> bool:
    return name.strip().lower().endswith(SUPPORTED_SUFFIXES)


def _classify(path: Path) -> FileOutcome | None:
    """The outcome of an entry that is not a candidate (ignored, waiting), or ``None`` for a candidate."""
    name, shown = path.name, display_path(path)
    lower = name.strip().lower()
    if lower.endswith(IN_PROGRESS_SUFFIXES):
        return FileOutcome(
            shown, None, "waiting", "a temporary name: being written (rename it when complete)"
        )
    if name.startswith("."):
        return FileOutcome(shown, None, "ignored", "a hidden file")
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return FileOutcome(shown, None, "ignored", "removed while the cycle looked (or a broken link)")
    except OSError as exc:
        return FileOutcome(shown, None, "unreadable", f"cannot be read ({exc.strerror})")
    if stat.S_ISDIR(mode):
        return FileOutcome(shown, None, "ignored", "a folder (files in subfolders are not read)")
    if not stat.S_ISREG(mode):
        return FileOutcome(shown, None, "ignored", "not a regular file")
    if not _supported(name):
        suffix = Path(lower).suffix
        hint = _HINTS.get(suffix, f"supported: {', '.join(SUPPORTED_SUFFIXES)}")
        return FileOutcome(
            shown, None, "ignored", f"not a transactions file ({suffix or 'no extension'}; {hint})"
        )
    return None


def _signature(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def open_for_writing(paths: list[Path]) -> set[Path]:
    """Those of ``paths`` that a process of this host has open for writing (read from ``/proc``; an
    empty set where ``/proc`` cannot be read)."""
    wanted = {}
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        wanted[(st.st_dev, st.st_ino)] = p
    found: set[Path] = set()
    if not wanted:
        return found
    try:
        pids = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return found
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # gone, or not ours to read
            continue
        for fd in fds:
            try:
                st = os.stat(f"{fd_dir}/{fd}")
                key = (st.st_dev, st.st_ino)
                if key not in wanted:
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                    flags = next((int(line.split()[1], 8) for line in info if line.startswith("flags:")), 0)
            except (OSError, ValueError):
                continue
            if flags & (os.O_WRONLY | os.O_RDWR):
                found.add(wanted[key])
    return found


def ready_files(paths: list[Path], settle_seconds: float) -> tuple[list[Path], list[FileOutcome]]:
    """The candidates that are complete, and a ``waiting`` outcome for each one still being written.

    Complete: no process of this host has it open for writing, and its size and mtime did not change
    over ``settle_seconds`` (one pause for all files, only as long as the youngest needs).
    """
    waiting: list[FileOutcome] = []
    writing = open_for_writing(paths)
    before: dict[Path, tuple[int, int, int]] = {}
    for p in paths:
        if p in writing:
            waiting.append(
                FileOutcome(display_path(p), None, "waiting", "open for writing by another process")
            )
            continue
        try:
            before[p] = _signature(p)
        except OSError:
            continue  # removed meanwhile: nothing left to report
    now = time.time_ns()
    pause = max((settle_seconds - (now - sig[2]) / 1e9 for sig in before.values()), default=0.0)
    if pause > 0:
        time.sleep(min(pause, settle_seconds))
    still = open_for_writing(list(before))
    ready = []
    for p, sig in before.items():
        try:
            same = _signature(p) == sig
        except OSError:
            same = False
        if same and p not in still:
            ready.append(p)
        else:
            waiting.append(FileOutcome(display_path(p), None, "waiting", "still changing (being written)"))
    return ready, waiting


def take_in_files(
    current_dir: Path,
    quarantine_dir: Path,
    *,
    ledger: Ledger,
    history: TransactionHistory,
    mode: BatchMode,
    run_id: str,
    settle_seconds: float,
    suspect_settle_seconds: float,
    max_snapshot_shrink: float,
    baseline_rows: int | None,
    date_format: str | None = None,
    columns: dict[str, str] | None = None,
) -> list[FileOutcome]:
    """One outcome per entry of ``current_dir`` (module docstring), good files added to ``history``.

    A file is known by its content (sha256), so a re-run never processes a file twice and a file
    rewritten with new content is new. An error of one file (unreadable, invalid, cannot be moved) is
    that file's outcome; the other files still go through. ``baseline_rows``: the rows of the history a
    snapshot replaces (``None``: no check of its size).
    """
    try:
        entries = sorted(Path(current_dir).iterdir())
    except FileNotFoundError:  # a typo, a vanished mount: said, never a quiet "no new data"
        return [FileOutcome(display_path(current_dir), None, "unreadable", "the folder does not exist")]
    except OSError as exc:
        return [
            FileOutcome(
                display_path(current_dir), None, "unreadable", f"folder cannot be read ({exc.strerror})"
            )
        ]
    outcomes: list[FileOutcome] = []
    candidates = []
    for path in entries:
        outcome = _classify(path)
        if outcome is None:
            candidates.append(path)
        else:
            outcomes.append(outcome)
    ready, waiting = ready_files(candidates, settle_seconds)
    outcomes += waiting
    for path in ready:
        outcome = _take_in(
            path,
            quarantine_dir,
            ledger=ledger,
            history=history,
            mode=mode,
            run_id=run_id,
            suspect_settle_seconds=suspect_settle_seconds,
            max_snapshot_shrink=max_snapshot_shrink,
            baseline_rows=baseline_rows,
            date_format=date_format,
            columns=columns,
        )
        if outcome.status == "processed" and mode == "snapshot":
            baseline_rows = outcome.rows_added
        outcomes.append(outcome)
    order = {display_path(p): i for i, p in enumerate(entries)}
    return sorted(outcomes, key=lambda o: order.get(o.path, len(order)))


def _take_in(
    path: Path,
    quarantine_dir: Path,
    *,
    ledger: Ledger,
    history: TransactionHistory,
    mode: BatchMode,
    run_id: str,
    suspect_settle_seconds: float,
    max_snapshot_shrink: float,
    baseline_rows: int | None,
    date_format: str | None,
    columns: dict[str, str] | None,
) -> FileOutcome:
    shown = display_path(path)
    try:
        signature = _signature(path)
        digest = sha256_file(path)
    except FileNotFoundError:
        return FileOutcome(shown, None, "ignored", "removed while the cycle read it")
    except OSError as exc:
        return FileOutcome(shown, None, "unreadable", f"cannot be read ({exc.strerror or exc})")
    known = ledger.get(digest)
    if known is not None:
        if known.status == "quarantined":
            moved = _move_to_quarantine(path, quarantine_dir, digest)  # a kill came between record and move
            return FileOutcome(shown, digest, "seen before", f"quarantined earlier: {known.reason}{moved}")
        return FileOutcome(shown, digest, "seen before")
    added = next((b for b in history.batches() if b.sha256 == digest), None)
    if added is not None:  # added by a run killed before its ledger entry
        ledger.record(digest, shown, "processed", run_id=run_id)
        why = "in the history already (its run was stopped)"
        return FileOutcome(shown, digest, "processed", why, rows_added=added.rows_added)
    problem: DataError | None = None
    try:
        frame = load_transactions(path, date_format=date_format, columns=columns)
        if mode == "snapshot":
            _check_snapshot(frame, path, max_snapshot_shrink, baseline_rows)
    except DataError as exc:
        problem = exc
    except OSError as exc:
        return FileOutcome(shown, digest, "unreadable", f"cannot be read ({exc.strerror or exc})")
    try:  # what was read is what was hashed, and the writer is done: else judge it next cycle
        changed = _signature(path) != signature
    except OSError:
        changed = True
    if changed:
        return FileOutcome(shown, None, "waiting", "changed while it was read (being written)")
    age = time.time() - signature[2] / 1e9  # negative: an mtime in the future, judged now (no waiting)
    cut_off = (
        "it is invalid"
        if problem is not None
        else "its last line has no line break"
        if _open_line(path)
        else ""
    )
    if cut_off and 0 <= age < suspect_settle_seconds:  # a writer closing between chunks may just pause
        return FileOutcome(
            shown,
            None,
            "waiting",
            f"{cut_off}, and it changed {age:.0f} s ago: judged once unchanged for "
            f"{suspect_settle_seconds:g} s (CLVDRIFT_LOOP__SUSPECT_SETTLE_SECONDS)"
            + (f"; now: {problem}" if problem is not None else ""),
        )
    if problem is not None:  # the loader names the file first: the outcome names it already
        reason = display_path(str(problem))
        reason = reason[len(shown) :].removeprefix(":").strip() if reason.startswith(shown) else reason
        return _quarantine(path, shown, digest, reason, quarantine_dir, ledger, run_id)
    batch = history.add(frame, source=shown, sha256=digest, mode=mode)
    fault_point("intake.history_added")
    if batch is None:
        ledger.record(digest, shown, "processed", reason="no new row", run_id=run_id, checked_by=run_id)
        return FileOutcome(shown, digest, "unchanged", "adds no row to the history", rows_added=0)
    ledger.record(digest, shown, "processed", run_id=run_id)
    return FileOutcome(shown, digest, "processed", rows_added=batch.rows_added)


def _open_line(path: Path) -> bool:
    """Whether ``path`` is plain text (CSV/TXT, not compressed) whose last byte is not a line break."""
    if not path.name.strip().lower().endswith((".csv", ".txt")):
        return False
    try:
        with open(path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) not in (b"\n", b"\r")
    except OSError:  # empty (no last byte) or unreadable: the loader has judged it
        return False


def _check_snapshot(frame: Any, path: Path, max_shrink: float, baseline_rows: int | None) -> None:
    """Refuse a snapshot that would leave the history with no usable row, or shrink it too much."""
    clean_transactions(frame)  # a DataError when cleaning leaves no row (e.g. every row dated 2099)
    if baseline_rows and len(frame) < (1 - max_shrink) * baseline_rows:
        raise DataError(
            f"{display_path(path)}: a snapshot of {len(frame):,} rows would replace a history of "
            f"{baseline_rows:,} rows (more than {max_shrink:.0%} fewer; CLVDRIFT_LOOP__MAX_SNAPSHOT_SHRINK); "
            "if it is meant to, set that to 1 for one cycle, or use --mode append for new rows only"
        )


def _quarantine(
    path: Path, shown: str, digest: str, reason: str, quarantine_dir: Path, ledger: Ledger, run_id: str
) -> FileOutcome:
    """Record the file as quarantined, then move it (a kill in between leaves it recorded, not lost)."""
    reason = display_path(reason)
    ledger.record(digest, shown, "quarantined", reason=reason, run_id=run_id)
    fault_point("intake.quarantine_recorded")
    return FileOutcome(
        shown, digest, "quarantined", reason + _move_to_quarantine(path, quarantine_dir, digest)
    )


def _move_to_quarantine(path: Path, quarantine_dir: Path, digest: str) -> str:
    """Move ``path`` into ``quarantine_dir``; ``""``, or why it stays where it is."""
    target = Path(quarantine_dir) / f"{digest[:12]}-{path.name.strip()}"
    try:
        if not path.exists():
            return ""
        Path(quarantine_dir).mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target)
    except OSError as exc:
        why = "no space left" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
        return (
            f" (left in {display_path(path.parent)}: cannot move it to {display_path(quarantine_dir)}: {why})"
        )
    return ""
