"""One run per ledger file: the run lock is an ``flock`` on the ledger file itself.

A lock named after the path (``order-import.sqlite.lock``) let a second run in through a symlink
or a hard link. ``flock`` locks the file (its inode), whatever name it was opened by, so every
path that reaches the same ledger meets the same lock. SQLite's own locks are POSIX record locks,
which ``flock`` does not touch.

One rule keeps SQLite's locks safe: closing *any* descriptor of a file drops every POSIX lock
the process holds on it, so the lock's descriptor is opened before any ``Ledger`` on the file
and closed after the last one (``with run_lock(path), Ledger(path) as ledger:``). The lock is
re-entrant on one thread (``update`` holds it around its own writes and the run it starts),
and re-entering never opens a second descriptor.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import LedgerError


@dataclass(slots=True)
class _Held:
    fd: int
    thread: int
    depth: int


_HELD: dict[tuple[int, int], _Held] = {}
_REGISTRY = threading.Lock()


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LedgerError(f"{path}: cannot reach the ledger ({exc.strerror})") from None
    return (st.st_dev, st.st_ino)


def _busy(path: str) -> LedgerError:
    real = os.path.realpath(path)
    same = "" if real == os.path.abspath(path) else f" (the file {real})"
    return LedgerError(
        f"another order-import run is using the ledger {path}{same}",
        hint="wait for it to finish; running one ledger twice at once is refused",
    )


@contextmanager
def run_lock(path: str | Path) -> Iterator[None]:
    """Hold the ledger's one-run lock (creating the file if needed) for the ``with`` block.

    Raises:
        LedgerError: another process (or another thread) holds it, or the file cannot be
            opened.
    """
    where = str(path)
    if where == ":memory:":
        yield
        return
    me = threading.get_ident()
    with _REGISTRY:
        found = _identity(where)
        held = _HELD.get(found) if found is not None else None
        if held is not None:
            if held.thread != me:
                raise _busy(where)
            held.depth += 1
        else:
            held = _acquire(where, me)
            _HELD[_fd_identity(held.fd)] = held
        ident = _fd_identity(held.fd)
    try:
        yield
    finally:
        with _REGISTRY:
            held.depth -= 1
            if held.depth == 0:
                del _HELD[ident]
                fcntl.flock(held.fd, fcntl.LOCK_UN)
                os.close(held.fd)


def _fd_identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino)


def _acquire(path: str, thread: int) -> _Held:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise LedgerError(f"{path}: cannot open the ledger to lock it ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise _busy(path) from None
    return _Held(fd=fd, thread=thread, depth=1)


def held(path: str | Path) -> bool:
    """True when this process holds the run lock of the file at ``path``."""
    ident = _identity(str(path))
    with _REGISTRY:
        return ident is not None and ident in _HELD
