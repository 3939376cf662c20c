"""Every read of a ledger, as functions over its connection; rows are read by column name.

Private to the ledger package (``Ledger`` calls these). Streams page by keyset (``PAGE`` rows per
query) and hold no read transaction between pages, so the runner can write while it iterates.
A row whose stored JSON does not decode (a tampered file) raises ``LedgerError`` naming the
batch, row and column, never a traceback.
"""

from __future__ import annotations

import heapq
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import fields
from types import MappingProxyType
from typing import Any, TypeVar, cast

import orjson

from pipeline.errors import LedgerError
from pipeline.ledger._connection import Connection
from pipeline.ledger.records import BatchInfo, LedgerRow, RunInfo
from pipeline.ledger.schema import corrupted
from pipeline.models import ROW_STATES, Attempt, Issue, RowState, WorkItem

PAGE = 500
"""Rows per page when streaming reads (no read transaction is held between pages)."""
ROW_COLUMNS = (
    "batch, row_key, operation, source_file, sheet, source_line, raw, params, content_hash, "
    "order_id, state, resolution, attempts, http_status, api_error_code, error_code, param, "
    "message, latency_ms, issues, idempotency_key, updated_at, last_run_id, control"
)
WORK_COLUMNS = "batch, row_key, source_line, order_id, params, content_hash, state, attempts"
TALLY_COLUMNS = frozenset(
    {
        "state",
        "resolution",
        "api_error_code",
        "error_code",
        "http_status",
        "param",
        "source_file",
        "message",
    }
)
WITH_ISSUES = " AND issues != '[]'"
"""The condition of the partial index ``rows_with_issues`` (rows with validation findings)."""
_ATTEMPT_COLUMNS = (
    "id, batch, row_key, run_id, started_at, latency_ms, http_status, api_error_code, kind, outcome"
)

T = TypeVar("T")


def decoded(db: Connection, row: sqlite3.Row, build: Callable[[sqlite3.Row], T]) -> T:
    """``build(row)``; a value that does not decode means the file was tampered with."""
    try:
        return build(row)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        keys = row.keys()
        where = (
            f"row {row['row_key']!r} of batch {row['batch']!r}"
            if "row_key" in keys and "batch" in keys
            else "a record"
        )
        raise corrupted(db.path, f"{where} does not decode: {exc}") from None


# -- mappers: one sqlite3.Row to one record, by column name ----------------------------------


def issues(text: str) -> tuple[Issue, ...]:
    return tuple(Issue(**item) for item in json.loads(text))


_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls))
    return names


def _record(
    cls: type[T],
    row: sqlite3.Row,
    decode: Mapping[str, Callable[[Any], Any]] = MappingProxyType({}),
    columns: Mapping[str, str] = MappingProxyType({}),
) -> T:
    """``cls`` built from the row: each field from the column of its name (or ``columns[f]``),
    through ``decode[f]`` when given (JSON columns). A field with no such column keeps its
    default (a field added to a record before the schema has it)."""
    values: dict[str, Any] = {}
    for name in _field_names(cls):
        try:
            value = row[columns.get(name, name)]
        except IndexError:
            continue
        values[name] = decode[name](value) if name in decode else value
    return cls(**values)


def batch_info(row: sqlite3.Row) -> BatchInfo:
    return _record(BatchInfo, row)


def run_info(row: sqlite3.Row) -> RunInfo:
    json_columns = dict.fromkeys(("counts", "settings", "summary"), json.loads)
    return _record(RunInfo, row, json_columns, {"rate_per_minute": "rate"})


def params_of(text: Any) -> Any:
    """A row's stored params, as ``json.loads`` reads them: orjson (a fifth of ``json``'s time
    on a row's params, read for every row sent) when what it read holds no float, since orjson
    reads an integer beyond 64 bits as one; ``json`` for the rest and for what orjson refuses
    (NaN, a lone surrogate). Text neither reads raises ``ValueError``."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
    kind = type(value)
    if kind is float or ((kind is dict or kind is list) and _holds_float(value)):
        return json.loads(text)
    return value


def _holds_float(value: Any) -> bool:
    """Whether a dict or list read from JSON holds a float, nested too (types gathered in C)."""
    items = value.values() if type(value) is dict else value
    kinds = set(map(type, items))
    if float in kinds:
        return True
    if dict in kinds or list in kinds:
        return any(_holds_float(v) for v in items if type(v) is dict or type(v) is list)
    return False


def work_item(row: sqlite3.Row) -> WorkItem:
    # By hand, not ``_record``: read for every row sent, and every field is a column of
    # ``WORK_COLUMNS`` (``test_ledger_json`` pins that the two agree).
    return WorkItem(
        row["batch"],
        row["row_key"],
        row["source_line"],
        row["order_id"],
        params_of(row["params"]),
        row["content_hash"],
        row["state"],
        row["attempts"],
    )


def ledger_row(row: sqlite3.Row) -> LedgerRow:
    return _record(
        LedgerRow,
        row,
        {"raw": json.loads, "params": json.loads, "issues": issues, "control": _control},
    )


def _control(value: str | None) -> Mapping[str, Any] | None:
    found = json.loads(value) if value else None
    return found if isinstance(found, dict) else None


def attempt(row: sqlite3.Row) -> Attempt:
    return _record(Attempt, row)


# -- reads --------------------------------------------------------------------------------------


def get_batch(db: Connection, batch: str) -> BatchInfo | None:
    with db.guard("read batch") as conn:
        row = conn.execute("SELECT * FROM batches WHERE name = ?", (batch,)).fetchone()
    return None if row is None else decoded(db, row, batch_info)


def batches(db: Connection) -> list[BatchInfo]:
    with db.guard("list batches") as conn:
        rows = conn.execute("SELECT * FROM batches ORDER BY created_at, name").fetchall()
    return [decoded(db, row, batch_info) for row in rows]


def require_batch(db: Connection, conn: sqlite3.Connection, batch: str) -> None:
    if conn.execute("SELECT 1 FROM batches WHERE name = ?", (batch,)).fetchone() is None:
        raise LedgerError(f"{db.path}: no batch named {batch!r} in this ledger")


def runs(db: Connection, batch: str) -> list[RunInfo]:
    with db.guard("read runs") as conn:
        rows = conn.execute("SELECT * FROM runs WHERE batch = ? ORDER BY id", (batch,)).fetchall()
    return [decoded(db, row, run_info) for row in rows]


def state_of(db: Connection, conn: sqlite3.Connection, batch: str, row_key: str) -> str:
    row = conn.execute(
        "SELECT state FROM rows WHERE batch = ? AND row_key = ?", (batch, row_key)
    ).fetchone()
    if row is None:
        raise LedgerError(f"{db.path}: batch {batch!r} has no row {row_key!r}")
    return str(row["state"])


def count_states(conn: sqlite3.Connection, batch: str) -> dict[str, int]:
    """Rows of the batch by state; every state present, zeros included."""
    found = {
        r["state"]: r["n"]
        for r in conn.execute(
            "SELECT state, count(*) AS n FROM rows WHERE batch = ? GROUP BY state", (batch,)
        )
    }
    return {state: int(found.get(state, 0)) for state in ROW_STATES}


def counts(db: Connection, batch: str) -> dict[RowState, int]:
    with db.guard("count rows") as conn:
        return cast(dict[RowState, int], count_states(conn, batch))


def merged(
    db: Connection,
    batch: str,
    states: Sequence[str],
    columns: str,
    action: str,
    extra: str = "",
    after: int = 0,
    index: str = "",
) -> Iterator[sqlite3.Row]:
    """Rows in ``states`` by rowid (above ``after``): one keyset-paged stream per state,
    merged, deduped. ``index``: an ``INDEXED BY`` clause for the streams (a partial index whose
    condition ``extra`` states)."""
    streams = [
        _state_stream(db, batch, state, columns, action, extra, after, index)
        for state in dict.fromkeys(states)
    ]
    last = after
    for r in heapq.merge(*streams, key=lambda r: int(r["rowid"])):
        if r["rowid"] <= last:
            continue
        last = r["rowid"]
        yield r


def _state_stream(
    db: Connection,
    batch: str,
    state: str,
    columns: str,
    action: str,
    extra: str,
    after: int = 0,
    index: str = "",
) -> Iterator[sqlite3.Row]:
    cursor = after
    while True:
        with db.guard(action) as conn:
            page = conn.execute(
                f"SELECT rowid AS rowid, {columns} FROM rows{index} WHERE batch = ? AND state = ? "
                f"AND rowid > ?{extra} ORDER BY rowid LIMIT ?",
                (batch, state, cursor, PAGE),
            ).fetchall()
        yield from page
        if len(page) < PAGE:
            return
        cursor = page[-1]["rowid"]


def work(db: Connection, batch: str, states: Sequence[str]) -> Iterator[WorkItem]:
    for r in merged(db, batch, states, WORK_COLUMNS, "read work"):
        yield decoded(db, r, work_item)


def work_after(
    db: Connection, batch: str, states: Sequence[str], after: int
) -> Iterator[tuple[int, WorkItem]]:
    """``work`` from rowid ``after`` on, each row with its rowid (the cursor to go on from)."""
    for r in merged(db, batch, states, WORK_COLUMNS, "read work", after=after):
        yield int(r["rowid"]), decoded(db, r, work_item)


def rows(
    db: Connection, batch: str, states: Sequence[str] | None, with_issues: bool
) -> Iterator[LedgerRow]:
    wanted = list(states) if states is not None else list(ROW_STATES)
    extra, index = (WITH_ISSUES, " INDEXED BY rows_with_issues") if with_issues else ("", "")
    for r in merged(db, batch, wanted, ROW_COLUMNS, "read rows", extra, index=index):
        yield decoded(db, r, ledger_row)


def tally(
    db: Connection, batch: str, column: str, states: Sequence[str] | None
) -> dict[str | None, int]:
    if column not in TALLY_COLUMNS:
        raise LedgerError(f"cannot tally rows by {column!r}")
    wanted = list(states) if states is not None else list(ROW_STATES)
    marks = ",".join("?" * len(wanted))
    with db.guard("tally rows") as conn:
        found = conn.execute(
            f"SELECT {column} AS value, count(*) AS n FROM rows WHERE batch = ? "
            f"AND state IN ({marks}) GROUP BY {column} ORDER BY count(*) DESC",
            (batch, *wanted),
        ).fetchall()
    return {r["value"]: int(r["n"]) for r in found}


def totals_by_currency(db: Connection, batch: str) -> list[tuple[str | None, str, int, int]]:
    """(currency, state, rows, sum of amounts) of the rows that count in a currency total: the
    stored ``currency``/``amount`` columns (schema v9), read from the covering index
    ``rows_money`` alone. A row without a currency is listed under None."""
    with db.guard("sum totals") as conn:
        found = conn.execute(
            "SELECT currency AS cur, state, count(*) AS n, coalesce(sum(amount), 0) AS total "
            "FROM rows INDEXED BY rows_money WHERE batch = ? AND currency IS NOT NULL "
            "GROUP BY currency, state ORDER BY currency, state",
            (batch,),
        ).fetchall()
    return [(r["cur"] or None, r["state"], int(r["n"]), int(r["total"])) for r in found]


def attempts(db: Connection, batch: str) -> Iterator[Attempt]:
    cursor = 0
    size = PAGE * 10
    while True:
        with db.guard("read attempts") as conn:
            page = conn.execute(
                f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE batch = ? AND id > ? "
                "ORDER BY id LIMIT ?",
                (batch, cursor, size),
            ).fetchall()
        for r in page:
            yield decoded(db, r, attempt)
        if len(page) < size:
            return
        cursor = page[-1]["id"]


def recent_attempt_times(db: Connection, since: float) -> list[float]:
    """Start times of attempts (every batch) since ``since``, written and buffered."""
    with db.guard("read recent attempts") as conn:
        found = conn.execute(
            "SELECT started_at FROM attempts WHERE started_at >= ? ORDER BY started_at", (since,)
        ).fetchall()
    buffered = [a[3] for a in db.buffered_attempts() if a[3] >= since]
    return [float(r["started_at"]) for r in found] + buffered


def run_attempts(db: Connection, batch: str, run_id: int) -> list[tuple[float, int | None, str]]:
    """``(started_at, http_status, order_id)`` of one run's written attempts."""
    with db.guard("read a run's attempts") as conn:
        found = conn.execute(
            "SELECT a.started_at, a.http_status, coalesce(r.order_id, '') AS order_id "
            "FROM attempts a LEFT JOIN rows r ON r.batch = a.batch AND r.row_key = a.row_key "
            "WHERE a.batch = ? AND a.run_id = ? ORDER BY a.id",
            (batch, run_id),
        ).fetchall()
    return [(float(r["started_at"]), r["http_status"], str(r["order_id"])) for r in found]


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode
"""One reused encoder: json.dumps with options builds a new encoder per call."""


def dumps(value: Any) -> str:
    """Compact JSON for the ledger's JSON columns."""
    return _COMPACT(value)


# -- aggregates for reports on big ledgers (no record per row) --------------------------------

_KIND = (
    "CASE WHEN http_status = 429 OR outcome = 'throttled' THEN 1 "
    "WHEN outcome IN ('ok', 'replayed', 'not_found') THEN 0 ELSE 2 END"
)
"""An attempt's kind for the timeline: 0 ok, 1 throttled (429), 2 any other answer."""
