"""The resumable per-row ledger (SQLite, WAL): the single source of truth of a migration.

The only module that writes SQL. Every state change is its own committed transaction, made
durable (``synchronous=FULL``) before the method returns, so a row committed ``in_flight`` before
its POST survives ``kill -9`` and power loss. The API key is never handed to, or stored by, it.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

from pipeline.errors import DriftError, LedgerError
from pipeline.ledger._connection import (
    PAGE,
    WORK_COLUMNS,
    LedgerBase,
    batch_info,
    dumps,
    tool_version,
    work_item,
)
from pipeline.ledger.plan import plan_chunk
from pipeline.ledger.records import BatchInfo, LedgerRow, PlanStats, RunInfo
from pipeline.models import Attempt, Operation, Outcome, RowState, SourceRow, WorkItem

__all__ = ["BatchInfo", "Ledger", "LedgerRow", "PlanStats", "RunInfo"]

PLAN_CHUNK = 500
"""Rows per planning transaction."""
ATTEMPT_BUFFER = 200
"""Attempts buffered before they are flushed on their own."""

SENDABLE: frozenset[str] = frozenset({"pending", "retryable", "in_flight"})
"""States ``mark_in_flight`` accepts: never a succeeded, failed, invalid or conflict row."""
_RECORDABLE_FROM_SUCCEEDED: frozenset[str] = frozenset({"succeeded", "conflict"})


class Ledger(LedgerBase):
    """A ledger file (or ``":memory:"``). Synchronous; safe to share between threads.

    Raises ``LedgerError`` (never a raw ``sqlite3`` error) when the file is unreadable, locked,
    not a ledger, of a newer schema, or when the disk refuses a write.
    """

    # -- batches -----------------------------------------------------------------------------

    def open_batch(
        self,
        batch: str,
        *,
        operation: Operation,
        source_file: str,
        input_sha256: str,
        config_fingerprint: str,
        allow_drift: bool = False,
        adopt_input: bool = False,
    ) -> BatchInfo:
        """Create the batch, or re-open it after checking it is the same job.

        ``retry --batch B fixed.csv`` legitimately reads a different file: call it with
        ``allow_drift=True`` (the corrected rows are re-planned by content hash).
        ``adopt_input=True`` (``run --allow-drift``) also makes the new file the batch's input,
        so later runs of the corrected file need no ``--allow-drift``.

        Raises:
            LedgerError: the batch exists with a different operation.
            DriftError: the input file's sha256 changed and ``allow_drift`` is False.
        """
        now = time.time()
        with self._write("open batch") as conn:
            row = conn.execute("SELECT * FROM batches WHERE name = ?", (batch,)).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        batch,
                        operation,
                        source_file,
                        input_sha256,
                        config_fingerprint,
                        now,
                        now,
                        tool_version(),
                    ),
                )
            else:
                existing = batch_info(row)
                if existing.operation != operation:
                    raise LedgerError(
                        f"{self.path}: batch {batch!r} is a {existing.operation!r} batch, "
                        f"not {operation!r}",
                        hint="use a new --batch name for a different operation",
                    )
                if existing.input_sha256 != input_sha256 and not allow_drift:
                    raise DriftError(
                        f"batch {batch!r}: the input changed since the batch started "
                        f"(was sha256 {existing.input_sha256}, now {input_sha256})",
                        hint="--allow-drift or a new --batch",
                    )
                conn.execute(
                    "UPDATE batches SET config_fingerprint = ?, updated_at = ?, tool_version = ? "
                    "WHERE name = ?",
                    (config_fingerprint, now, tool_version(), batch),
                )
                if adopt_input and existing.input_sha256 != input_sha256:
                    conn.execute(
                        "UPDATE batches SET input_sha256 = ?, source_file = ? WHERE name = ?",
                        (input_sha256, source_file, batch),
                    )
        info = self.get_batch(batch)
        assert info is not None
        return info

    # -- runs --------------------------------------------------------------------------------

    def start_run(self, batch: str, *, command: str, settings_summary: Mapping[str, Any]) -> int:
        """Record the start of a command run; returns its id."""
        with self._write("start run") as conn:
            self._require_batch(conn, batch)
            cursor = conn.execute(
                "INSERT INTO runs (batch, command, started_at, settings, tool_version) "
                "VALUES (?, ?, ?, ?, ?)",
                (batch, command, time.time(), dumps(dict(settings_summary)), tool_version()),
            )
            run_id = cursor.lastrowid
        assert run_id is not None
        return run_id

    def finish_run(self, run_id: int, *, status: str, summary: Mapping[str, Any]) -> None:
        """Close a run: status, the runner's summary, and the batch's counts at this moment.

        ``summary`` keys ``achieved_per_minute`` and ``throttled``, when present, fill the
        run's rate and 429 columns; ``counts`` defaults to the ledger's own counts.
        """
        with self._write("finish run") as conn:
            row = conn.execute("SELECT batch FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise LedgerError(f"{self.path}: no run with id {run_id}")
            counts = summary.get("counts") or self._counts(conn, row[0])
            rate = summary.get("achieved_per_minute")
            conn.execute(
                "UPDATE runs SET finished_at = ?, status = ?, counts = ?, summary = ?, rate = ?, "
                "throttled = ? WHERE id = ?",
                (
                    time.time(),
                    status,
                    dumps(dict(counts)),
                    dumps(dict(summary)),
                    None if rate is None else float(rate),
                    int(summary.get("throttled") or 0),
                    run_id,
                ),
            )

    # -- planning ----------------------------------------------------------------------------

    def plan(
        self, batch: str, rows: Iterable[SourceRow], *, operation: Operation, run_id: int
    ) -> PlanStats:
        """Merge source rows into the ledger, in transactions of ``PLAN_CHUNK`` rows.

        New valid rows become ``pending``, new invalid ones ``invalid``. ``succeeded`` and
        ``in_flight`` rows are never touched. ``failed``/``retryable``/``conflict``/``invalid``
        rows whose content hash changed go back to ``pending`` (or ``invalid``); invalid rows
        are always re-validated; unchanged failed/conflict rows stay as they were; ``pending``
        rows stay pending with refreshed params.
        """
        totals: dict[str, int] = {}
        chunk: list[SourceRow] = []
        with self._guard("plan") as conn:
            self._require_batch(conn, batch)
            conn.execute("PRAGMA synchronous = NORMAL")  # re-derivable from the source file
        try:
            for row in rows:
                chunk.append(row)
                if len(chunk) >= PLAN_CHUNK:
                    self._plan_chunk(batch, chunk, operation, run_id, totals)
                    chunk = []
            if chunk:
                self._plan_chunk(batch, chunk, operation, run_id, totals)
        finally:
            with self._guard("plan") as conn:
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # syncs the planned rows
        return PlanStats(**totals, per_state={str(k): v for k, v in self.counts(batch).items()})

    def _plan_chunk(
        self,
        batch: str,
        chunk: list[SourceRow],
        operation: Operation,
        run_id: int,
        totals: dict[str, int],
    ) -> None:
        with self._write("plan") as conn:
            for name, value in plan_chunk(conn, batch, chunk, operation, run_id).items():
                totals[name] = totals.get(name, 0) + value

    def requeue(
        self,
        batch: str,
        *,
        states: Sequence[RowState] = ("failed", "retryable", "conflict"),
        row_keys: Collection[str] | None = None,
    ) -> int:
        """Move rows in ``states`` (optionally only ``row_keys``) back to ``pending``.

        Returns the number of rows moved. ``succeeded``, ``in_flight`` and ``invalid`` are
        refused: those are never blindly re-sent.
        """
        bad = set(states) - {"failed", "retryable", "conflict", "pending"}
        if bad:
            raise LedgerError(f"requeue cannot move rows in state(s) {sorted(bad)}")
        marks = ",".join("?" * len(states))
        sql = (
            f"UPDATE rows SET state = 'pending', updated_at = ? "
            f"WHERE batch = ? AND state IN ({marks})"
        )
        moved = 0
        with self._write("requeue") as conn:
            if row_keys is None:
                moved = conn.execute(sql, (time.time(), batch, *states)).rowcount
            else:
                keys = list(row_keys)
                for start in range(0, len(keys), PAGE):
                    part = keys[start : start + PAGE]
                    moved += conn.execute(
                        sql + f" AND row_key IN ({','.join('?' * len(part))})",
                        (time.time(), batch, *states, *part),
                    ).rowcount
        return moved

    def remember_keys(self, row_keys: Iterable[str]) -> None:
        """Note row keys seen in the current input (a temporary table; see ``drop_unseen``)."""
        with self._write("remember input keys") as conn:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS seen_keys (k TEXT PRIMARY KEY)")
            rows = ((k,) for k in row_keys)
            conn.executemany("INSERT OR IGNORE INTO seen_keys VALUES (?)", rows)

    def drop_unseen(self, batch: str) -> int:
        """Remove the batch's never-sent rows (``pending``, ``invalid``) whose key was not
        remembered: rows the user deleted from a corrected input. Returns how many.

        Rows that may have reached Chargebee (any other state) are never removed.
        """
        with self._write("drop rows no longer in the input") as conn:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS seen_keys (k TEXT PRIMARY KEY)")
            dropped = conn.execute(
                "DELETE FROM rows WHERE batch = ? AND state IN ('pending', 'invalid') "
                "AND row_key NOT IN (SELECT k FROM seen_keys)",
                (batch,),
            ).rowcount
            conn.execute("DELETE FROM seen_keys")
        return int(dropped)

    # -- sending -----------------------------------------------------------------------------

    def work(
        self, batch: str, *, states: Sequence[RowState] = ("pending", "retryable")
    ) -> Iterator[WorkItem]:
        """Stream the rows to send, in source order, each at most once per call.

        Pages of ``PAGE`` rows per state are merged by insertion order; no read transaction is
        held between pages, so the runner can write while it iterates. A row that moves into
        one of ``states`` behind the cursor during the iteration is not yielded again.
        """
        for r in self._merged(batch, states, WORK_COLUMNS, "read work"):
            yield work_item(r)

    def in_flight(self, batch: str) -> list[WorkItem]:
        """Rows left ``in_flight`` by a crash: in doubt, to reconcile before any resend."""
        return list(self.work(batch, states=("in_flight",)))

    def mark_in_flight(
        self, batch: str, row_key: str, *, run_id: int, idempotency_key: str
    ) -> None:
        """Commit (durably) that the row is about to be sent. Call before the POST."""
        with self._write("mark in flight") as conn:
            state = self._state_of(conn, batch, row_key)
            if state not in SENDABLE:
                raise LedgerError(
                    f"{self.path}: row {row_key!r} of batch {batch!r} is {state}; "
                    "only pending, retryable or in-doubt rows may be sent"
                )
            conn.execute(
                "UPDATE rows SET state = 'in_flight', idempotency_key = ?, last_run_id = ?, "
                "updated_at = ? WHERE batch = ? AND row_key = ?",
                (idempotency_key, run_id, time.time(), batch, row_key),
            )

    def record(self, outcome: Outcome) -> None:
        """Commit a row's final state for this run (and any attempts logged for it).

        ``attempts`` becomes the previous count plus ``outcome.attempts``; ``order_id`` is kept
        when the outcome carries none. An ``invalid`` row cannot be recorded (it was never
        sent), and a ``succeeded`` row can only be re-confirmed or marked ``conflict``.
        """
        if outcome.state in ("invalid", "in_flight"):
            raise LedgerError(f"record() cannot set state {outcome.state!r}")
        with self._write("record outcome") as conn:
            self._flush_attempts()
            state = self._state_of(conn, outcome.batch, outcome.row_key)
            if state == "invalid" or (
                state == "succeeded" and outcome.state not in _RECORDABLE_FROM_SUCCEEDED
            ):
                raise LedgerError(
                    f"{self.path}: row {outcome.row_key!r} of batch {outcome.batch!r} is "
                    f"{state}; it cannot become {outcome.state}"
                )
            conn.execute(
                "UPDATE rows SET state = ?, resolution = ?, order_id = COALESCE(?, order_id), "
                "http_status = ?, api_error_code = ?, error_code = ?, param = ?, message = ?, "
                "latency_ms = ?, attempts = attempts + ?, last_run_id = ?, updated_at = ? "
                "WHERE batch = ? AND row_key = ?",
                (
                    outcome.state,
                    outcome.resolution,
                    outcome.order_id,
                    outcome.http_status,
                    outcome.api_error_code,
                    outcome.error_code,
                    outcome.param,
                    outcome.message,
                    outcome.latency_ms,
                    outcome.attempts,
                    outcome.run_id,
                    time.time(),
                    outcome.batch,
                    outcome.row_key,
                ),
            )

    def recent_attempt_times(self, since: float) -> list[float]:
        """Unix start times of HTTP attempts (every batch: the site's budget is shared) since
        ``since``: what the rate limiter of a new run must still count."""
        with self._guard("read recent attempts") as conn:
            rows = conn.execute(
                "SELECT started_at FROM attempts WHERE started_at >= ? ORDER BY started_at",
                (since,),
            ).fetchall()
        with self._attempts_lock:
            buffered = [a[3] for a in self._pending_attempts if a[3] >= since]
        return [float(r[0]) for r in rows] + buffered

    def log_attempt(self, attempt: Attempt) -> None:
        """Append one HTTP attempt to the log (buffered; flushed by record() and close())."""
        with self._attempts_lock:
            self._pending_attempts.append(
                (
                    attempt.batch,
                    attempt.row_key,
                    attempt.run_id,
                    attempt.started_at,
                    attempt.latency_ms,
                    attempt.http_status,
                    attempt.api_error_code,
                    attempt.kind,
                    attempt.outcome,
                )
            )
            full = len(self._pending_attempts) >= ATTEMPT_BUFFER
        if full:
            with self._write("log attempts"):
                self._flush_attempts()
