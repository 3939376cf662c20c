"""The ledger's one SQLite connection: thread-safe guards, transactions, error translation.

Private to the ledger package. ``Connection`` owns the ``sqlite3`` connection (rows come back as
``sqlite3.Row``, read by column name), serialises every use behind one lock, turns every
``sqlite3`` failure into a ``LedgerError`` that names the file (and says so plainly when the file
is damaged), and buffers the HTTP attempts log so appending an attempt never touches SQLite.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.errors import LedgerError
from pipeline.ledger.schema import corrupted, damaged, open_connection

FORBID_ON_LOOP = False
"""When True, SQL attempted on a thread running an asyncio event loop raises ``LedgerError``.

A test seam: the suite sets it to prove that a run does no SQLite work on the event loop (every
ledger call of the send path goes through a worker thread)."""

_INSERT_ATTEMPT = (
    "INSERT INTO attempts (batch, row_key, run_id, started_at, latency_ms, http_status, "
    "api_error_code, kind, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def on_event_loop() -> bool:
    """True when called from a thread that is running an asyncio event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Connection:
    """One open ledger file. Every method is safe to call from any thread."""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float,
        max_pages: int | None,
        must_exist: bool,
    ) -> None:
        self.path = str(path)
        self._conn = open_connection(
            path, busy_timeout=busy_timeout, max_pages=max_pages, must_exist=must_exist
        )
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._attempts: list[tuple[Any, ...]] = []
        # A lock of its own: appending an attempt never waits behind a commit's fsync.
        self._attempts_lock = threading.Lock()
        self.closed = False

    def close(self) -> None:
        """Flush buffered attempts and close the file. Idempotent."""
        if self.closed:
            return
        try:
            if self._attempts:
                with self.write("flush attempts"):
                    self.flush_attempts()
        finally:
            self.closed = True
            self._conn.close()

    @contextmanager
    def guard(self, action: str) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; any sqlite3 failure becomes a LedgerError."""
        if self.closed:
            raise LedgerError(f"{self.path}: the ledger is closed")
        if FORBID_ON_LOOP and on_event_loop():
            raise LedgerError(f"{self.path}: ledger {action} ran on the event loop thread")
        with self._lock:
            try:
                yield self._conn
            except sqlite3.DatabaseError as exc:
                if damaged(exc):
                    raise corrupted(self.path, exc) from None
                raise LedgerError(
                    f"{self.path}: ledger {action} failed ({exc})",
                    hint="check free disk space and permissions; the batch resumes from here",
                ) from None
            except sqlite3.Error as exc:
                raise LedgerError(
                    f"{self.path}: ledger {action} failed ({exc})",
                    hint="check free disk space and permissions; the batch resumes from here",
                ) from None

    @contextmanager
    def write(self, action: str) -> Iterator[sqlite3.Connection]:
        """One committed transaction; rolled back (and re-raised as LedgerError) on failure."""
        with self.guard(action) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # -- the attempts log ------------------------------------------------------------------

    def buffer_attempt(self, values: tuple[Any, ...]) -> int:
        """Append one attempt row to the buffer (no SQL); returns the buffer's length."""
        with self._attempts_lock:
            self._attempts.append(values)
            return len(self._attempts)

    def buffered_attempts(self) -> list[tuple[Any, ...]]:
        """A copy of the attempts not yet written."""
        with self._attempts_lock:
            return list(self._attempts)

    def flush_attempts(self) -> None:
        """Insert buffered attempts; call inside a write transaction."""
        with self._attempts_lock:
            pending, self._attempts = self._attempts, []
        if not pending:
            return
        try:
            self._conn.executemany(_INSERT_ATTEMPT, pending)
        except BaseException:
            with self._attempts_lock:
                self._attempts[:0] = pending
            raise
