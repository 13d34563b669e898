"""File writing for the whole project: every file clvdrift writes goes through :func:`atomic_write`.

A temporary file beside the target is written, fsynced, given the permissions the process umask
allows (``mkstemp`` would leave 0600) and renamed over the target, so a reader sees the old file or
the new one, never half of one.

The temporary file is named ``.<target name>.<pid>-<host tag>.<random>.tmp``: a process killed while
writing leaves it behind, and :func:`remove_stale_temp_files` can tell from the name whether its
writer is still alive (the host tag keeps a writer on another machine sharing the directory safe).
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import re
import socket
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

__all__ = [
    "STALE_TEMP_AGE_SECONDS",
    "ProcessIdentity",
    "atomic_write",
    "atomic_write_text",
    "remove_stale_temp_files",
    "sha256_file",
]

STALE_TEMP_AGE_SECONDS = 86_400.0
"""A temporary file older than this is stale whatever its writer (a recycled PID cannot keep it)."""

_TEMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)-(?P<host>[0-9a-f]{6})\.[A-Za-z0-9_]+\.tmp$")
_LEGACY_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # mkstemp names before the PID was added


def sha256_file(path: Path) -> str:
    """sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def host_tag() -> str:
    """Six hex digits naming this host in temporary file names."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, rename it over ``path``, then
    fsync the folder (so the new name survives a power cut, not only a crash of the process)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.{os.getpid()}-{host_tag()}."
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    except OSError as exc:  # e.g. a read-only folder: name the file asked for, not a temporary name
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:  # a writer's error names no file: name the target
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    """fsync a folder's entry list (a rename is durable once its folder is); skipped where folders
    cannot be opened (not POSIX)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):  # some filesystems cannot fsync a folder
            raise
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write` of a UTF-8 text."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def owner_is_gone(pid: int, host: str) -> bool:
    """Whether process ``pid`` of host ``host`` (its :func:`host_tag`), named in a file or folder it left
    behind, has ended. Only this host's processes can be checked: another host's never count as gone."""
    return host == host_tag() and not _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs: it exists and is not a zombie (dead, not yet reaped by
    its parent: in a container whose PID 1 reaps nothing, a killed process stays one)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    return _process_state(pid) not in ("Z", "X")


def _process_state(pid: int) -> str | None:
    """The state letter of ``/proc/<pid>/stat`` (R, S, D, T, Z, X, …), ``None`` when it cannot be read."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or ``None``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()  # the command name, in parentheses, may hold spaces


def _process_started(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22), or
    ``None`` when it cannot be read (no such process, no ``/proc``)."""
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as another process can recognise it later: host, PID and start time (so a PID the
    kernel gave to a new process is not taken for the old one)."""

    host: str
    pid: int
    started: str | None

    @classmethod
    def current(cls) -> ProcessIdentity:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, _process_started(pid))

    def alive(self) -> bool | None:
        """``True``/``False`` for a process of this host; ``None`` when it runs elsewhere (cannot tell)."""
        if self.host != socket.gethostname():
            return None
        if not _pid_alive(self.pid):
            return False
        started = _process_started(self.pid)
        return self.started is None or started is None or started == self.started


def _is_stale(path: Path, now: float) -> bool:
    """Whether ``path`` is a temporary file of :func:`atomic_write` whose writer cannot finish it."""
    match = _TEMP_NAME.match(path.name)
    if match is None and _LEGACY_TEMP_NAME.match(path.name) is None:
        return False
    try:
        age = now - path.stat().st_mtime
    except FileNotFoundError:  # renamed or removed by its writer meanwhile
        return False
    if age > STALE_TEMP_AGE_SECONDS:
        return True
    return match is not None and owner_is_gone(int(match["pid"]), match["host"])


def remove_stale_temp_files(
    directory: Path, *, dry_run: bool = False, target: str | None = None
) -> list[Path]:
    """Remove the temporary files of :func:`atomic_write` in ``directory`` left by dead writers (with
    ``target``, only those of the file of that name).

    A temporary file is stale when its writer's PID (in its name) is not alive on this host, or when
    it is older than :data:`STALE_TEMP_AGE_SECONDS`. Files of live writers and of writers on other hosts
    (younger than that) are kept. Not recursive. Returns the stale files, sorted; ``dry_run`` only lists
    them.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    now = time.time()
    pattern = f".{glob.escape(target)}.*.tmp" if target is not None else ".*.tmp"
    stale = sorted(p for p in directory.glob(pattern) if p.is_file() and _is_stale(p, now))
    if not dry_run:
        for path in stale:
            path.unlink(missing_ok=True)
    return stale


_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class Recent(Generic[_K, _V]):
    """The last ``kept`` values put, by key (the least recently used is dropped first); thread-safe. What
    is loaded once per process by the checksum of its file: models, reference profiles."""

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self._items: OrderedDict[_K, _V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _K) -> _V | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: _K, value: _V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.kept:
                self._items.popitem(last=False)
