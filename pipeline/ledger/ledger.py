"""The resumable per-row ledger (SQLite, WAL): the single source of truth of a migration.

``Ledger`` is the package's one public face: writes are its methods, reads are functions of
``ledger.reads`` over the private connection (``ledger._connection``), planning rules live in
``ledger.plan`` and the schema in ``ledger.schema``. Every state change is its own committed
transaction, made durable (``synchronous=FULL``) before the method returns, so a row committed
``in_flight`` before its POST survives ``kill -9`` and power loss. The API key is never handed
to, or stored by, it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from importlib import metadata
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pipeline.errors import DriftError, LedgerError
from pipeline.ledger import reads
from pipeline.ledger._connection import Connection, on_event_loop
from pipeline.ledger.plan import plan_chunk
from pipeline.ledger.reads import PAGE, dumps
from pipeline.ledger.records import BatchInfo, ChangedRow, LedgerRow, PlanStats, RunInfo
from pipeline.models import Attempt, Operation, Outcome, RowState, SourceRow, WorkItem

__all__ = ["BatchInfo", "ChangedRow", "Ledger", "LedgerRow", "PlanStats", "RunInfo"]

PLAN_CHUNK = 2_000
"""Rows per planning transaction while the batch's rows are being sent (``open_feed``): a few
milliseconds of holding the write lock, so a send commit waits no longer than that."""
PLAN_BULK = 50_000
"""Rows per planning transaction when nothing is sent meanwhile: 25 times fewer commits, and
each index page (the row-identity index is random) written once per 50,000 rows, not per
2,000 (measured: 3x faster for a million new rows with 20,000; 50,000 then took 13% less wall
clock than 20,000 for a million rows at the same CPU: fewer index pages written). Every
statement of a chunk binds its keys as one JSON array, so the size is not bound by SQLite's
parameter limit."""
ATTEMPT_BUFFER = 200
"""Attempts buffered before ``log_attempt`` off an event loop flushes them itself."""

SENDABLE: frozenset[str] = frozenset({"pending", "retryable", "in_flight"})
"""States ``mark_in_flight`` accepts: never a succeeded, failed, invalid or conflict row."""
UNSENT: frozenset[str] = frozenset({"pending", "invalid"})
"""States of rows that never reached Chargebee (every other state may have)."""
_RECORDABLE_FROM_SUCCEEDED: frozenset[str] = frozenset({"succeeded", "conflict"})
_SETTLED_OR_SENT_BY_RUN: frozenset[str] = frozenset(
    {"in_flight", "retryable", "succeeded", "failed", "conflict", "blocked"}
)
"""States in which a mark for a row whose ``last_run_id`` is the marking run is left out (not
sent, the run goes on): that run already sent or settled the row."""


class _Feed:
    """A batch being planned while its rows are sent: ``work()`` waits at the end of the
    planned rows for the next planned chunk instead of ending, until planning closes."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.generation = 0
        self.open = True

    def snapshot(self) -> tuple[int, bool]:
        with self._cond:
            return self.generation, self.open

    def bump(self) -> None:
        with self._cond:
            self.generation += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.open = False
            self._cond.notify_all()

    def wait(self, seen: int) -> None:
        """Block until a chunk planned after generation ``seen`` committed, or planning closed."""
        with self._cond:
            while self.open and self.generation == seen:
                self._cond.wait()


def tool_version() -> str:
    try:
        return metadata.version("order-import")
    except metadata.PackageNotFoundError:
        return "unknown"


class Ledger:
    """A ledger file (or ``":memory:"``). Synchronous; safe to share between threads.

    Raises ``LedgerError`` (never a raw ``sqlite3`` error) when the file is unreadable, locked,
    damaged, not a ledger, of a newer schema, or when the disk refuses a write. It does not take
    the one-run lock: writers hold ``ledger.lock.run_lock(path)`` around it.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 5.0,
        max_pages: int | None = None,
        must_exist: bool = False,
    ) -> None:
        """Open (or create) the ledger.

        Args:
            path: the SQLite file, or ``":memory:"``.
            busy_timeout: seconds to wait when another process holds the write lock.
            max_pages: cap on the file size in pages; a seam for tests of a full disk.
            must_exist: refuse a missing or empty file instead of creating a ledger.
        """
        self.path = str(path)
        self._db = Connection(
            path, busy_timeout=busy_timeout, max_pages=max_pages, must_exist=must_exist
        )
        self._feeds: dict[str, _Feed] = {}

    @classmethod
    def open_existing(cls, path: str | Path, *, busy_timeout: float = 5.0) -> Self:
        """Open a ledger that must already exist: what read-only commands (``status``,
        ``report``) use, so they never create an empty ledger where there was none.

        Raises:
            LedgerError: no ledger file at ``path`` (naming it), or any error of ``Ledger()``.
        """
        return cls(path, busy_timeout=busy_timeout, must_exist=True)

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Flush buffered attempts and close the file. Idempotent."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def pragmas(self) -> dict[str, Any]:
        """``journal_mode`` and ``synchronous`` of this connection (durability, as tested)."""
        with self._db.guard("read pragmas") as conn:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            sync = conn.execute("PRAGMA synchronous").fetchone()[0]
        return {"journal_mode": str(mode).lower(), "synchronous": int(sync)}

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
        with self._db.write("open batch") as conn:
            row = conn.execute("SELECT * FROM batches WHERE name = ?", (batch,)).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO batches (name, operation, source_file, input_sha256, "
                    "config_fingerprint, created_at, updated_at, tool_version) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
                existing = reads.decoded(self._db, row, reads.batch_info)
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

    def planned_with(
        self,
        batch: str,
        *,
        mapping_text: str | None,
        encoding: str | None,
        delimiter: str | None,
        sheet: str | None,
    ) -> None:
        """Record what the batch's rows were (last) planned with: the mapping file's content
        (None: API column names) and the reading options (None: detected / the first sheet).
        Call after ``plan()`` succeeded, so a refused plan never replaces them; ``retry`` and
        ``report`` read them back from ``BatchInfo``."""
        with self._db.write("record planning settings") as conn:
            reads.require_batch(self._db, conn, batch)
            conn.execute(
                "UPDATE batches SET mapping_text = ?, encoding = ?, delimiter = ?, sheet = ? "
                "WHERE name = ?",
                (mapping_text, encoding, delimiter, sheet, batch),
            )

    # -- runs --------------------------------------------------------------------------------

    def start_run(self, batch: str, *, command: str, settings_summary: Mapping[str, Any]) -> int:
        """Record the start of a command run; returns its id."""
        with self._db.write("start run") as conn:
            reads.require_batch(self._db, conn, batch)
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
        with self._db.write("finish run") as conn:
            row = conn.execute("SELECT batch FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise LedgerError(f"{self.path}: no run with id {run_id}")
            counts = summary.get("counts") or reads.count_states(conn, row[0])
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
        self,
        batch: str,
        rows: Iterable[SourceRow],
        *,
        operation: Operation,
        run_id: int,
        on_changed: Callable[[ChangedRow], None] | None = None,
        unique_invoice: bool = True,
    ) -> PlanStats:
        """Merge source rows into the ledger, in transactions of ``PLAN_BULK`` rows
        (``PLAN_CHUNK`` while the batch's rows are being sent: ``open_feed``).

        New valid rows become ``pending``, new invalid ones ``invalid``. ``succeeded`` and
        ``in_flight`` rows are never touched. ``failed``/``retryable``/``conflict``/``invalid``
        rows whose content hash changed go back to ``pending`` (or ``invalid``); invalid rows
        are always re-validated; unchanged failed/conflict rows stay as they were; ``pending``
        rows stay pending with refreshed params.

        A valid ``succeeded`` row whose content now differs from what was sent is counted
        (``PlanStats.changed_succeeded``) and handed to ``on_changed`` with both versions: an
        import cannot change an order, so the caller offers the difference to ``update``.

        With ``unique_invoice`` (the default), a valid import row naming an invoice that another
        row of this ledger already imported (or may have: ``in_flight``) becomes ``invalid``
        (``invoice_already_imported``) before anything is sent.
        """
        totals: dict[str, int] = {}
        inserted: list[str] = []
        with self._db.guard("plan") as conn:
            reads.require_batch(self._db, conn, batch)
        source = iter(rows)
        try:
            # Whole slices of the input, not row by row: the size is chosen per transaction.
            while chunk := list(islice(source, PLAN_CHUNK if batch in self._feeds else PLAN_BULK)):
                self._plan_chunk(batch, chunk, operation, run_id, totals, on_changed, inserted,
                                 unique_invoice)  # fmt: skip
        except DriftError:
            self._forget(batch, inserted)  # a refused plan leaves no rows under the new keys
            raise
        finally:
            with self._db.guard("plan") as conn:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # syncs the planned rows
        return PlanStats(**totals)  # counts(batch) has the batch's rows by state

    def _plan_chunk(
        self,
        batch: str,
        chunk: list[SourceRow],
        operation: Operation,
        run_id: int,
        totals: dict[str, int],
        on_changed: Callable[[ChangedRow], None] | None,
        inserted: list[str],
        unique_invoice: bool,
    ) -> None:
        changed: list[ChangedRow] = []
        # Planned rows are re-derivable from the source file: their transaction commits at
        # synchronous=NORMAL. The switch is made and undone under the connection's lock, so a
        # commit of the send path running next to planning (mark_in_flight) is always FULL.
        with self._db.guard("plan") as conn:
            conn.execute("PRAGMA synchronous = NORMAL")
            try:
                with self._db.write("plan") as conn:
                    stats = plan_chunk(
                        conn, batch, chunk, operation, run_id, changed, inserted, unique_invoice
                    )
            finally:
                conn.execute("PRAGMA synchronous = FULL")
        feed = self._feeds.get(batch)
        if feed is not None:
            feed.bump()
        for name, value in stats.items():
            totals[name] = totals.get(name, 0) + value
        if on_changed is not None:
            for row in changed:
                on_changed(row)

    def _forget(self, batch: str, row_keys: list[str]) -> None:
        """Remove never-sent rows planned by a plan that was then refused."""
        with self._db.write("undo a refused plan") as conn:
            for start in range(0, len(row_keys), PAGE):
                part = row_keys[start : start + PAGE]
                marks = ",".join("?" * len(part))
                conn.execute(
                    "DELETE FROM rows WHERE batch = ? AND state IN ('invalid', 'pending', "
                    f"'skipped') AND row_key IN ({marks})",
                    (batch, *part),
                )

    def requeue(
        self,
        batch: str,
        *,
        states: Sequence[RowState] = ("failed", "retryable", "conflict", "blocked"),
        row_keys: Collection[str] | None = None,
    ) -> int:
        """Move rows in ``states`` (optionally only ``row_keys``) back to ``pending``.

        Returns the number of rows moved. ``succeeded``, ``in_flight`` and ``invalid`` are
        refused: those are never blindly re-sent. ``blocked`` rows go back too: pre-flight
        checks them again before anything is sent.
        """
        bad = set(states) - {"failed", "retryable", "conflict", "blocked", "pending"}
        if bad:
            raise LedgerError(f"requeue cannot move rows in state(s) {sorted(bad)}")
        marks = ",".join("?" * len(states))
        sql = (
            f"UPDATE rows SET state = 'pending', updated_at = ? "
            f"WHERE batch = ? AND state IN ({marks})"
        )
        moved = 0
        with self._db.write("requeue") as conn:
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
        with self._db.write("remember input keys") as conn:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS seen_keys (k TEXT PRIMARY KEY)")
            rows = ((k,) for k in row_keys)
            conn.executemany("INSERT OR IGNORE INTO seen_keys VALUES (?)", rows)

    def drop_unseen(self, batch: str) -> int:
        """Remove the batch's never-sent rows (``pending``, ``invalid``) whose key was not
        remembered: rows the user deleted from a corrected input. Returns how many.

        Rows that may have reached Chargebee (any other state) are never removed.
        """
        with self._db.write("drop rows no longer in the input") as conn:
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
        feed = self._feeds.get(batch)
        if feed is None:
            return reads.work(self._db, batch, states)
        return self._follow(batch, states, feed)

    def _follow(self, batch: str, states: Sequence[RowState], feed: _Feed) -> Iterator[WorkItem]:
        """``work()`` while the batch is still being planned: at the end of the planned rows,
        wait for the next planned chunk (rows planned later have higher rowids); after planning
        closed, one last pass from the cursor, then the end."""
        last = 0
        while True:
            seen, still_open = feed.snapshot()
            for rowid, item in reads.work_after(self._db, batch, states, last):
                last = rowid
                yield item
            if not still_open:
                return
            feed.wait(seen)

    def open_feed(self, batch: str) -> None:
        """Planning of ``batch`` goes on while its rows are sent: from now until
        ``close_feed(batch)``, ``work()``/``work_pages()`` of the batch wait at the end of the
        planned rows for more instead of ending. Every ``plan()`` chunk committed wakes them."""
        self._feeds[batch] = _Feed()

    def close_feed(self, batch: str) -> None:
        """Planning of ``batch`` is over (done, stopped or failed): readers finish the rows
        planned so far and end. Idempotent."""
        feed = self._feeds.pop(batch, None)
        if feed is not None:
            feed.close()

    def work_pages(
        self, batch: str, *, states: Sequence[RowState] = ("pending", "retryable"), size: int = PAGE
    ) -> Iterator[list[WorkItem]]:
        """``work()`` in lists of up to ``size`` rows: an event loop pulls each list with one
        hop to a worker thread (``anyio.to_thread.run_sync(next, pages, [])``), so no SQLite
        read runs on the loop. The last list may be shorter; an exhausted stream stops."""
        items = self.work(batch, states=states)
        while True:
            page = [item for _, item in zip(range(size), items, strict=False)]
            if not page:
                return
            yield page

    def in_flight(self, batch: str) -> list[WorkItem]:
        """Rows left ``in_flight`` by a crash: in doubt, to reconcile before any resend."""
        return list(reads.work(self._db, batch, ("in_flight",)))

    def mark_in_flight(
        self, batch: str, row_key: str, *, run_id: int, idempotency_key: str
    ) -> None:
        """Commit (durably) that the row is about to be sent. Call before the POST.

        Raises ``LedgerError`` when the row may not be sent (see ``commit_group``)."""
        if self.commit_group(batch, [], [(row_key, idempotency_key)], run_id=run_id):
            raise LedgerError(
                f"{self.path}: row {row_key!r} of batch {batch!r} was already sent or settled "
                f"by run {run_id}; it is not sent again"
            )

    def commit_group(
        self,
        batch: str,
        outcomes: Sequence[Outcome],
        marks: Sequence[tuple[str, str]],
        *,
        run_id: int,
    ) -> tuple[int, ...]:
        """One durable transaction for a group of rows (the sender's group commit): record
        ``outcomes`` (with every buffered attempt), then mark ``marks`` — ``(row_key,
        idempotency_key)`` pairs — ``in_flight`` for ``run_id``. Call before any of the marked
        rows' POSTs leaves; count an outcome as done only after this returns.

        All or nothing: a row that may not take its change (see ``mark_in_flight`` and
        ``record``) or any SQLite failure raises ``LedgerError`` and nothing of the group is
        committed. One exception, so a resume never stops over a row it already dealt with:
        a mark for a row that ``run_id`` itself already marked or settled (the same row handed
        over twice in one run) is left out, never sent twice; the other changes commit.

        Returns the positions in ``marks`` left out that way (usually none): those rows must
        not be sent.
        """
        for outcome in outcomes:
            if outcome.state in ("invalid", "in_flight"):
                raise LedgerError(f"record() cannot set state {outcome.state!r}")
        action = "record outcome" if outcomes else "mark in flight"
        with self._db.write(action) as conn:
            self._db.flush_attempts()
            if outcomes:
                self._record_in(conn, outcomes)
            if marks:
                return self._mark_in(conn, batch, marks, run_id)
        return ()

    _MARK = (
        "UPDATE rows SET state = 'in_flight', idempotency_key = ?, last_run_id = ?, "
        "updated_at = ? WHERE batch = ? AND row_key = ? AND (state = 'pending' "
        # Retryable or in doubt from an earlier run: sendable. Marked or answered in *this* run:
        # already sent by it, so a second mark in the same run is refused (never sent twice).
        "OR (state IN ('retryable', 'in_flight') AND coalesce(last_run_id, -1) != ?))"
    )

    def _mark_in(
        self, conn: Any, batch: str, marks: Sequence[tuple[str, str]], run_id: int
    ) -> tuple[int, ...]:
        now = time.time()
        conn.execute("SAVEPOINT marks")
        changed = conn.executemany(
            self._MARK, [(key, run_id, now, batch, row_key, run_id) for row_key, key in marks]
        ).rowcount
        if changed == len(marks):
            conn.execute("RELEASE marks")
            return ()
        # Some row refused: undo the marks, then decide row by row, in order. A row this run
        # already marked or settled (handed over twice) is left out; any other refusal (a row
        # settled by another run, invalid, unknown) names the row and fails the whole group.
        conn.execute("ROLLBACK TO marks")
        conn.execute("RELEASE marks")
        left_out: list[int] = []
        seen: set[str] = set()
        for index, (row_key, key) in enumerate(marks):
            found = conn.execute(
                "SELECT state, last_run_id FROM rows WHERE batch = ? AND row_key = ?",
                (batch, row_key),
            ).fetchone()
            if found is None:
                raise LedgerError(f"{self.path}: batch {batch!r} has no row {row_key!r}")
            state, last_run = str(found["state"]), found["last_run_id"]
            if row_key in seen or (last_run == run_id and state in _SETTLED_OR_SENT_BY_RUN):
                left_out.append(index)
                continue
            if state not in SENDABLE:
                raise LedgerError(
                    f"{self.path}: row {row_key!r} of batch {batch!r} is {state}; "
                    "only pending, retryable or in-doubt rows may be sent"
                )
            seen.add(row_key)
            conn.execute(self._MARK, (key, run_id, now, batch, row_key, run_id))
        return tuple(left_out)

    def reopen_missing(self, batch: str, row_keys: Collection[str], *, run_id: int) -> int:
        """Put ``succeeded`` rows that Chargebee no longer holds back in doubt (``in_flight``).

        For ``retry --missing``: the next send looks each one up (``GET /orders/{id}``) before
        anything is resent, exactly like a row left in doubt by a crash. Returns rows moved.
        """
        keys = list(row_keys)
        moved = 0
        with self._db.write("reopen missing rows") as conn:
            for start in range(0, len(keys), PAGE):
                part = keys[start : start + PAGE]
                moved += conn.execute(
                    "UPDATE rows SET state = 'in_flight', resolution = NULL, last_run_id = ?, "
                    "message = 'missing in Chargebee at the last reconciliation', updated_at = ? "
                    f"WHERE batch = ? AND state = 'succeeded' AND row_key IN "
                    f"({','.join('?' * len(part))})",
                    (run_id, time.time(), batch, *part),
                ).rowcount
        return moved

    def record(self, outcome: Outcome) -> None:
        """Commit a row's final state for this run (and any attempts logged for it).

        ``attempts`` becomes the previous count plus ``outcome.attempts``; ``order_id`` is kept
        when the outcome carries none. An ``invalid`` row cannot be recorded (it was never
        sent), and a ``succeeded`` row can only be re-confirmed or marked ``conflict``.
        """
        self.commit_group(outcome.batch, [outcome], [], run_id=outcome.run_id)

    def _record_in(self, conn: Any, outcomes: Sequence[Outcome]) -> None:
        now = time.time()
        changed = conn.executemany(
            "UPDATE rows SET state = ?, resolution = ?, order_id = COALESCE(?, order_id), "
            "http_status = ?, api_error_code = ?, error_code = ?, param = ?, message = ?, "
            "latency_ms = ?, attempts = attempts + ?, last_run_id = ?, updated_at = ? "
            "WHERE batch = ? AND row_key = ? AND state != 'invalid' "
            "AND (state != 'succeeded' OR ? IN ('succeeded', 'conflict'))",
            [
                (
                    o.state,
                    o.resolution,
                    o.order_id,
                    o.http_status,
                    o.api_error_code,
                    o.error_code,
                    o.param,
                    o.message,
                    o.latency_ms,
                    o.attempts,
                    o.run_id,
                    now,
                    o.batch,
                    o.row_key,
                    o.state,
                )
                for o in outcomes
            ],
        ).rowcount
        if changed == len(outcomes):
            return
        for o in outcomes:  # name the row that refused (rolled back by the caller)
            state = reads.state_of(self._db, conn, o.batch, o.row_key)
            if state == "invalid" or (
                state == "succeeded" and o.state not in _RECORDABLE_FROM_SUCCEEDED
            ):
                raise LedgerError(
                    f"{self.path}: row {o.row_key!r} of batch {o.batch!r} is "
                    f"{state}; it cannot become {o.state}"
                )
        raise LedgerError(f"{self.path}: {len(outcomes) - changed} outcome(s) not recorded")

    def log_attempt(self, attempt: Attempt) -> None:
        """Append one HTTP attempt to the log (buffered).

        On an event loop thread it never touches SQLite: the buffer is written in the
        transaction of the next ``record()`` (which the worker pool runs on a thread),
        ``flush_attempts()`` or ``close()``. Elsewhere a full buffer (``ATTEMPT_BUFFER``) is
        flushed at once.
        """
        self.log_attempt_row(
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

    def log_attempt_row(
        self, row: tuple[str, str, int, float, float | None, int | None, str | None, str, str]
    ) -> None:
        """``log_attempt`` of the fields of an ``Attempt`` in their order, for the send path
        (no record built per request only to be taken apart here)."""
        if self._db.buffer_attempt(row) >= ATTEMPT_BUFFER and not on_event_loop():
            self.flush_attempts()

    def flush_attempts(self) -> None:
        """Write the buffered attempts now (one committed transaction)."""
        with self._db.write("log attempts"):
            self._db.flush_attempts()

    # -- reading -------------------------------------------------------------------------------

    def get_batch(self, batch: str) -> BatchInfo | None:
        """The batch, or None when the ledger has never seen it."""
        return reads.get_batch(self._db, batch)

    def batches(self) -> list[BatchInfo]:
        """Every batch in the ledger, oldest first."""
        return reads.batches(self._db)

    def runs(self, batch: str) -> list[RunInfo]:
        """Every run of the batch, oldest first."""
        return reads.runs(self._db, batch)

    def counts(self, batch: str) -> dict[RowState, int]:
        """Rows of the batch by state; every state present, zeros included."""
        return reads.counts(self._db, batch)

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
        return reads.rows(self._db, batch, states, with_issues)

    def tally(
        self, batch: str, column: str, *, states: Sequence[RowState] | None = None
    ) -> dict[str | None, int]:
        """Rows of the batch counted by one column (``resolution``, ``api_error_code``...)."""
        return reads.tally(self._db, batch, column, states)

    def totals_by_currency(self, batch: str) -> list[tuple[str | None, str, int, int]]:
        """(currency_code, state, rows, sum of ``total`` in minor units) for the batch."""
        return reads.totals_by_currency(self._db, batch)

    def attempts(self, batch: str) -> Iterator[Attempt]:
        """Stream the batch's attempts log in the order it was written (buffered ones first
        written)."""
        if self._db.buffered_attempts():
            self.flush_attempts()
        return reads.attempts(self._db, batch)

    def run_attempts(self, batch: str, run_id: int) -> list[tuple[float, int | None, str]]:
        """``(started_at, http_status, order_id)`` of every HTTP attempt one run made."""
        if self._db.buffered_attempts():
            self.flush_attempts()
        return reads.run_attempts(self._db, batch, run_id)

    def recent_attempt_times(self, since: float) -> list[float]:
        """Unix start times of HTTP attempts (every batch: the site's budget is shared) since
        ``since``: what the rate limiter of a new run must still count."""
        return reads.recent_attempt_times(self._db, since)
