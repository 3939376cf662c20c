"""The ledger's connection handling and read side: guards, batches, rows, attempts, runs.

Part of the ledger (the only code that touches SQL); ``ledger.ledger.Ledger`` adds writes.
Every read pages by keyset and holds no read transaction between pages.
"""

from __future__ import annotations

import heapq
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from pipeline.errors import LedgerError
from pipeline.ledger.records import BatchInfo, LedgerRow, RunInfo
from pipeline.ledger.schema import open_connection
from pipeline.models import ROW_STATES, Attempt, Issue, RowState, WorkItem

PAGE = 500
"""Rows per page when streaming reads (no read transaction is held between pages)."""
_ROW_COLUMNS = (
    "batch, row_key, operation, source_file, sheet, source_line, raw, params, content_hash, "
    "order_id, state, resolution, attempts, http_status, api_error_code, error_code, param, "
    "message, latency_ms, issues, idempotency_key, updated_at, last_run_id"
)
_TALLY_COLUMNS = frozenset(
    {"state", "resolution", "api_error_code", "error_code", "http_status", "param", "source_file"}
)
WORK_COLUMNS = "batch, row_key, source_line, order_id, params, content_hash, state, attempts"


def tool_version() -> str:
    try:
        return metadata.version("order-import")
    except metadata.PackageNotFoundError:
        return "unknown"


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _issues_from(text: str) -> tuple[Issue, ...]:
    return tuple(Issue(**item) for item in json.loads(text))


class LedgerBase:
    """Opening, closing, error translation and every read of a ledger file."""

    def __init__(
        self, path: str | Path, *, busy_timeout: float = 5.0, max_pages: int | None = None
    ) -> None:
        """Open (or create) the ledger.

        Args:
            path: the SQLite file, or ``":memory:"``.
            busy_timeout: seconds to wait when another process holds the write lock.
            max_pages: cap on the file size in pages; a seam for tests of a full disk.
        """
        self.path = str(path)
        self._conn = open_connection(path, busy_timeout=busy_timeout, max_pages=max_pages)
        self._lock = threading.RLock()
        self._pending_attempts: list[tuple[Any, ...]] = []
        # A lock of its own: appending an attempt never waits behind a commit's fsync.
        self._attempts_lock = threading.Lock()
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Flush buffered attempts and close the file. Idempotent."""
        if self._closed:
            return
        try:
            if self._pending_attempts:
                with self._write("flush attempts"):
                    self._flush_attempts()
        finally:
            self._closed = True
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _guard(self, action: str) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise LedgerError(f"{self.path}: the ledger is closed")
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise LedgerError(
                    f"{self.path}: ledger {action} failed ({exc})",
                    hint="check free disk space and permissions; the batch resumes from here",
                ) from None

    @contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        """One committed transaction; rolled back (and re-raised as LedgerError) on failure."""
        with self._guard(action) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def get_batch(self, batch: str) -> BatchInfo | None:
        """The batch, or None when the ledger has never seen it."""
        with self._guard("read batch") as conn:
            row = conn.execute("SELECT * FROM batches WHERE name = ?", (batch,)).fetchone()
        return None if row is None else batch_info(row)

    def batches(self) -> list[BatchInfo]:
        """Every batch in the ledger, oldest first."""
        with self._guard("list batches") as conn:
            rows = conn.execute("SELECT * FROM batches ORDER BY created_at, name").fetchall()
        return [batch_info(row) for row in rows]

    def _require_batch(self, conn: sqlite3.Connection, batch: str) -> None:
        if conn.execute("SELECT 1 FROM batches WHERE name = ?", (batch,)).fetchone() is None:
            raise LedgerError(f"{self.path}: no batch named {batch!r} in this ledger")

    def runs(self, batch: str) -> list[RunInfo]:
        """Every run of the batch, oldest first."""
        with self._guard("read runs") as conn:
            rows = conn.execute(
                "SELECT id, batch, command, started_at, finished_at, status, counts, settings, "
                "summary, rate, throttled FROM runs WHERE batch = ? ORDER BY id",
                (batch,),
            ).fetchall()
        return [
            RunInfo(
                id=r[0],
                batch=r[1],
                command=r[2],
                started_at=r[3],
                finished_at=r[4],
                status=r[5],
                counts=json.loads(r[6]),
                settings=json.loads(r[7]),
                summary=json.loads(r[8]),
                rate_per_minute=r[9],
                throttled=r[10],
            )
            for r in rows
        ]

    def _merged(
        self, batch: str, states: Sequence[str], columns: str, action: str, extra: str = ""
    ) -> Iterator[Sequence[Any]]:
        """Rows in ``states`` by rowid: one keyset-paged stream per state, merged, deduped."""
        streams = [
            self._state_stream(batch, state, columns, action, extra)
            for state in dict.fromkeys(states)
        ]
        last = 0
        for r in heapq.merge(*streams, key=lambda r: int(r[0])):
            if r[0] <= last:
                continue
            last = r[0]
            yield r

    def _state_stream(
        self, batch: str, state: str, columns: str, action: str, extra: str
    ) -> Iterator[Sequence[Any]]:
        cursor = 0
        while True:
            with self._guard(action) as conn:
                page = conn.execute(
                    f"SELECT rowid, {columns} FROM rows WHERE batch = ? AND state = ? "
                    f"AND rowid > ?{extra} ORDER BY rowid LIMIT ?",
                    (batch, state, cursor, PAGE),
                ).fetchall()
            yield from page
            if len(page) < PAGE:
                return
            cursor = page[-1][0]

    def _flush_attempts(self) -> None:
        """Insert buffered attempts; call inside a write transaction."""
        with self._attempts_lock:
            pending, self._pending_attempts = self._pending_attempts, []
        if not pending:
            return
        try:
            self._conn.executemany(
                "INSERT INTO attempts (batch, row_key, run_id, started_at, latency_ms, "
                "http_status, api_error_code, kind, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                pending,
            )
        except BaseException:
            with self._attempts_lock:
                self._pending_attempts[:0] = pending
            raise

    def _state_of(self, conn: sqlite3.Connection, batch: str, row_key: str) -> str:
        row = conn.execute(
            "SELECT state FROM rows WHERE batch = ? AND row_key = ?", (batch, row_key)
        ).fetchone()
        if row is None:
            raise LedgerError(f"{self.path}: batch {batch!r} has no row {row_key!r}")
        return str(row[0])

    # -- reading -----------------------------------------------------------------------------

    def counts(self, batch: str) -> dict[RowState, int]:
        """Rows of the batch by state; every state present, zeros included."""
        with self._guard("count rows") as conn:
            return cast(dict[RowState, int], self._counts(conn, batch))

    @staticmethod
    def _counts(conn: sqlite3.Connection, batch: str) -> dict[str, int]:
        found = dict(
            conn.execute(
                "SELECT state, count(*) FROM rows WHERE batch = ? GROUP BY state", (batch,)
            ).fetchall()
        )
        return {state: int(found.get(state, 0)) for state in ROW_STATES}

    def rows(
        self,
        batch: str,
        *,
        states: Sequence[RowState] | None = None,
        with_issues: bool = False,
    ) -> Iterator[LedgerRow]:
        """Stream every column of the batch's rows, in source order.

        Args:
            batch: the batch.
            states: only rows in these states (default: all).
            with_issues: only rows carrying validation findings (errors or warnings).
        """
        wanted = list(states) if states is not None else list(ROW_STATES)
        extra = " AND issues != '[]'" if with_issues else ""
        for r in self._merged(batch, wanted, _ROW_COLUMNS, "read rows", extra):
            yield _ledger_row(r[1:])

    def tally(
        self, batch: str, column: str, *, states: Sequence[RowState] | None = None
    ) -> dict[str | None, int]:
        """Rows of the batch counted by one column (``resolution``, ``api_error_code``...)."""
        if column not in _TALLY_COLUMNS:
            raise LedgerError(f"cannot tally rows by {column!r}")
        wanted = list(states) if states is not None else list(ROW_STATES)
        marks = ",".join("?" * len(wanted))
        with self._guard("tally rows") as conn:
            found = conn.execute(
                f"SELECT {column}, count(*) FROM rows WHERE batch = ? AND state IN ({marks}) "
                f"GROUP BY {column} ORDER BY count(*) DESC",
                (batch, *wanted),
            ).fetchall()
        return {key: int(n) for key, n in found}

    def totals_by_currency(self, batch: str) -> list[tuple[str | None, str, int, int]]:
        """(currency_code, state, rows, sum of ``total`` in minor units) for the batch."""
        with self._guard("sum totals") as conn:
            found = conn.execute(
                "SELECT json_extract(params, '$.currency_code') AS cur, state, count(*), "
                "coalesce(sum(CAST(json_extract(params, '$.total') AS INTEGER)), 0) "
                "FROM rows WHERE batch = ? GROUP BY cur, state ORDER BY cur, state",
                (batch,),
            ).fetchall()
        return [(cur, state, int(n), int(total)) for cur, state, n, total in found]

    def attempts(self, batch: str) -> Iterator[Attempt]:
        """Stream the batch's attempts log in the order it was written."""
        if self._pending_attempts:
            with self._write("flush attempts"):
                self._flush_attempts()
        cursor = 0
        while True:
            with self._guard("read attempts") as conn:
                page = conn.execute(
                    "SELECT id, batch, row_key, run_id, started_at, latency_ms, http_status, "
                    "api_error_code, kind, outcome FROM attempts WHERE batch = ? AND id > ? "
                    "ORDER BY id LIMIT ?",
                    (batch, cursor, PAGE * 10),
                ).fetchall()
            for r in page:
                yield Attempt(*r[1:])
            if len(page) < PAGE * 10:
                return
            cursor = page[-1][0]


def batch_info(row: Sequence[Any]) -> BatchInfo:
    return BatchInfo(
        name=row[0],
        operation=row[1],
        source_file=row[2],
        input_sha256=row[3],
        config_fingerprint=row[4],
        created_at=row[5],
        updated_at=row[6],
        tool_version=row[7],
    )


def work_item(r: Sequence[Any]) -> WorkItem:
    return WorkItem(
        batch=r[1],
        row_key=r[2],
        source_line=r[3],
        order_id=r[4],
        params=json.loads(r[5]),
        content_hash=r[6],
        state=r[7],
        attempts=r[8],
    )


def _ledger_row(r: Sequence[Any]) -> LedgerRow:
    return LedgerRow(
        batch=r[0],
        row_key=r[1],
        operation=r[2],
        source_file=r[3],
        sheet=r[4],
        source_line=r[5],
        raw=json.loads(r[6]),
        params=json.loads(r[7]),
        content_hash=r[8],
        order_id=r[9],
        state=r[10],
        resolution=r[11],
        attempts=r[12],
        http_status=r[13],
        api_error_code=r[14],
        error_code=r[15],
        param=r[16],
        message=r[17],
        latency_ms=r[18],
        issues=_issues_from(r[19]),
        idempotency_key=r[20],
        updated_at=r[21],
        last_run_id=r[22],
    )
