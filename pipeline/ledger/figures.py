"""Reads (and one cache) behind ``status`` and ``report`` on big ledgers: no record per row.

Part of the ledger package (the only code that writes SQL); ``pipeline.report.attempts`` and
``pipeline.report.data`` turn what these return into figures. A run's attempts are read once
into three arrays (start times, kinds, latencies) and, once sorted, kept in ``run_figures``
under the key ``(first_attempt, last_attempt)``: the run's lowest and highest attempt id when they
were read. The attempts log is append-only and its ids only grow, so a run that has logged
anything since has another key, and its cache is recomputed, never used.
"""

from __future__ import annotations

import json
import sqlite3
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import LedgerError
from pipeline.ledger import reads
from pipeline.ledger.ledger import Ledger
from pipeline.models import ROW_STATES, Issue

ATTEMPT_KIND = (
    "CASE WHEN http_status = 429 OR outcome = 'throttled' THEN 1 "
    "WHEN outcome IN ('ok', 'replayed', 'not_found') THEN 0 ELSE 2 END"
)
"""An attempt's kind: 0 ok, 1 throttled (a 429 or outcome ``throttled``), 2 any other answer."""
IS_429 = 4
"""Added to an attempt's kind when its answer was a 429 (what ``accepted`` leaves out)."""
_FETCH = 50_000


@dataclass(frozen=True, slots=True)
class RunKey:
    """What identifies a run's attempts: its lowest and highest attempt id. The log is
    append-only and ids only grow (AUTOINCREMENT: never reused), so an attempt a run logs later
    always raises ``last_attempt``."""

    run_id: int
    first_attempt: int
    last_attempt: int


@dataclass(frozen=True, slots=True)
class RawAttempts:
    """One run's attempts in log order: start times, kinds (+``IS_429``), latencies (ms) of
    the attempts that have one."""

    starts: array[float]
    kinds: array[int]
    latencies: array[float]


@dataclass(frozen=True, slots=True)
class RunFigures:
    """A run's counts and its most requests in any 60 s (what is cached besides the arrays)."""

    key: RunKey
    attempts: int
    accepted: int
    throttled: int
    max_in_window: int
    first_start: float
    last_start: float


ARRAYS = ("starts", "kinds", "latencies")
"""The arrays cached per run: sorted start times (float64), their kinds (int8, aligned),
sorted latencies (float64), all in native byte order."""


def run_keys(ledger: Ledger, run_ids: Sequence[int]) -> list[RunKey]:
    """The key of each run that has attempts (written ones: the buffer is flushed first);
    two look-ups in ``attempts_run`` per run, whatever its size."""
    if ledger._db.buffered_attempts():
        ledger.flush_attempts()
    keys = []
    with ledger._db.guard("find a run's attempts") as conn:
        for run_id in run_ids:
            # Two subqueries: SQLite looks a lone min() or max() up in the index, but scans
            # the run's whole range for min() and max() in one select.
            first, last = conn.execute(
                "SELECT (SELECT min(id) FROM attempts INDEXED BY attempts_run WHERE run_id = ?), "
                "(SELECT max(id) FROM attempts INDEXED BY attempts_run WHERE run_id = ?)",
                (run_id, run_id),
            ).fetchone()
            if first is not None:
                keys.append(RunKey(run_id, int(first), int(last)))
    return keys


def cached(ledger: Ledger, key: RunKey) -> RunFigures | None:
    """The run's cached figures when they were computed for exactly these attempts."""
    with ledger._db.guard("read cached run figures") as conn:
        row = conn.execute(
            "SELECT attempts, accepted, throttled, max_in_window, first_start, last_start "
            "FROM run_figures WHERE run_id = ? AND first_attempt = ? AND last_attempt = ?",
            (key.run_id, key.first_attempt, key.last_attempt),
        ).fetchone()
    if row is None:
        return None
    return RunFigures(
        key=key,
        attempts=int(row["attempts"]),
        accepted=int(row["accepted"]),
        throttled=int(row["throttled"]),
        max_in_window=int(row["max_in_window"]),
        first_start=float(row["first_start"]),
        last_start=float(row["last_start"]),
    )


def cached_array(ledger: Ledger, key: RunKey, name: str) -> bytes:
    """One of a run's cached ``ARRAYS``."""
    if name not in ARRAYS:
        raise LedgerError(f"no cached array {name!r}")
    with ledger._db.guard("read cached run figures") as conn:
        row = conn.execute(
            f"SELECT {name} FROM run_figures WHERE run_id = ? AND first_attempt = ? "
            "AND last_attempt = ?",
            (key.run_id, key.first_attempt, key.last_attempt),
        ).fetchone()
    if row is None:
        raise LedgerError(f"{ledger.path}: the cached figures of run {key.run_id} went away")
    return bytes(row[0])


def raw_attempts(ledger: Ledger, key: RunKey) -> RawAttempts:
    """The run's attempts of ids ``key.first_attempt``..``key.last_attempt``, in log order."""
    starts: array[float] = array("d")
    kinds: array[int] = array("b")
    latencies: array[float] = array("d")
    with ledger._db.guard("read a run's attempts") as conn:
        cursor = conn.cursor()
        cursor.row_factory = None
        cursor.execute(
            f"SELECT started_at, ({ATTEMPT_KIND}) + {IS_429} * (http_status IS 429), latency_ms "
            "FROM attempts INDEXED BY attempts_run WHERE run_id = ? AND id BETWEEN ? AND ? "
            "ORDER BY id",
            (key.run_id, key.first_attempt, key.last_attempt),
        )
        while part := cursor.fetchmany(_FETCH):
            starts.extend(r[0] for r in part)
            kinds.extend(r[1] for r in part)
            latencies.extend(r[2] for r in part if r[2] is not None)
    return RawAttempts(starts, kinds, latencies)


def store(ledger: Ledger, batch: str, figures: RunFigures, arrays: Mapping[str, bytes]) -> bool:
    """Keep a run's figures and ``ARRAYS`` (replacing older ones); False when the ledger would
    not take the write now (busy, read-only, full): they are then computed again next time."""
    k = figures.key
    values: tuple[Any, ...] = (
        k.run_id,
        batch,
        k.first_attempt,
        k.last_attempt,
        figures.attempts,
        figures.accepted,
        figures.throttled,
        figures.max_in_window,
        figures.first_start,
        figures.last_start,
        *(sqlite3.Binary(arrays[name]) for name in ARRAYS),
    )
    try:
        with ledger._db.write("cache run figures") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO run_figures (run_id, batch, first_attempt, last_attempt, "
                "attempts, accepted, throttled, max_in_window, first_start, last_start, "
                f"{', '.join(ARRAYS)}) VALUES ({', '.join('?' * (10 + len(ARRAYS)))})",
                values,
            )
    except LedgerError:
        return False
    return True


def outcome_counts(
    ledger: Ledger, batch: str, states: Sequence[str]
) -> tuple[dict[str, int], dict[str | None, int]]:
    """(rows by state, succeeded rows by resolution) from indexes alone, succeeded rows read
    once: counted by resolution in the partial index ``rows_resolution``, the other states
    (few rows) in ``rows_batch_state``. Every state of ``states`` is present, zeros included."""
    others = [s for s in states if s != "succeeded"]
    with ledger._db.guard("count rows") as conn:
        by_resolution = conn.execute(
            "SELECT resolution, count(*) AS n FROM rows INDEXED BY rows_resolution "
            "WHERE batch = ? AND state = 'succeeded' GROUP BY resolution ORDER BY n DESC",
            (batch,),
        ).fetchall()
        by_state = conn.execute(
            "SELECT state, count(*) FROM rows INDEXED BY rows_batch_state WHERE batch = ? "
            f"AND state IN ({','.join('?' * len(others))}) GROUP BY state",
            (batch, *others),
        ).fetchall()
    resolutions = {r[0]: int(r[1]) for r in by_resolution}
    found = {str(r[0]): int(r[1]) for r in by_state}
    found["succeeded"] = sum(resolutions.values())
    return {state: found.get(state, 0) for state in states}, resolutions


def rule_counts(
    ledger: Ledger, batch: str, state_is_invalid: bool, severity: str
) -> list[tuple[str, int]]:
    """Rows with at least one finding of ``severity`` by rule (a rule counts once per row),
    of the invalid rows or of the others; most rows first, ties in the order first met (row
    by row in source order, findings in their order). Reads the partial index of rows with
    findings and decodes their JSON in SQLite."""
    state_test = "r.state = 'invalid'" if state_is_invalid else "r.state != 'invalid'"
    with ledger._db.guard("tally rules") as conn:
        found = conn.execute(
            "SELECT rule, count(*) AS n, min(seen) AS first FROM ("
            "SELECT json_extract(j.value, '$.rule') AS rule, "
            "min(r.rowid * 65536 + j.key) AS seen "
            "FROM rows AS r INDEXED BY rows_with_issues, json_each(r.issues) AS j "
            f"WHERE r.batch = ? AND r.issues != '[]' AND {state_test} "
            "AND json_extract(j.value, '$.severity') = ? GROUP BY r.rowid, rule"
            ") GROUP BY rule ORDER BY n DESC, first",
            (batch, severity),
        ).fetchall()
    return [(str(r[0]), int(r[1])) for r in found]


# -- the report's problem rows and findings, read without a full record per row -------------

_PROBLEM_COLUMNS = (
    "batch, row_key, source_line, state, raw, issues, param, error_code, api_error_code, message"
)


@dataclass(frozen=True, slots=True)
class ProblemRow:
    """What failures.csv/.xlsx and report.html's table show of a row (``LedgerRow``'s names)."""

    row_key: str
    source_line: int
    state: str
    raw: Mapping[str, Any]
    issues: tuple[Issue, ...]
    param: str | None
    error_code: str | None
    api_error_code: str | None
    message: str | None


def _problem(row: sqlite3.Row) -> ProblemRow:
    text = row["issues"]
    return ProblemRow(
        row_key=row["row_key"],
        source_line=row["source_line"],
        state=row["state"],
        raw=json.loads(row["raw"]),
        issues=reads.issues(text) if text != "[]" else (),
        param=row["param"],
        error_code=row["error_code"],
        api_error_code=row["api_error_code"],
        message=row["message"],
    )


def problem_rows(ledger: Ledger, batch: str, states: Sequence[str]) -> Iterator[ProblemRow]:
    """The batch's rows in ``states``, in source order (rowid), paged as ``Ledger.rows``."""
    for r in reads.merged(ledger._db, batch, states, _PROBLEM_COLUMNS, "read problem rows"):
        yield reads.decoded(ledger._db, r, _problem)


def problem_columns(ledger: Ledger, batch: str, states: Sequence[str]) -> list[str]:
    """The original column names of the rows in ``states``, in the order first met (row by row
    in source order, each row's columns in their order), listed by SQLite."""
    marks = ",".join("?" * len(states))
    with ledger._db.guard("list the problem rows' columns") as conn:
        found = conn.execute(
            "SELECT j.key FROM rows AS r, json_each(r.raw) AS j WHERE r.batch = ? "
            f"AND r.state IN ({marks}) GROUP BY j.key ORDER BY min(r.rowid * 1000000 + j.id)",
            (batch, *states),
        ).fetchall()
    return [str(r[0]) for r in found]


@dataclass(frozen=True, slots=True)
class FindingRow:
    """A row with validation findings, as validation.csv lists it."""

    source_file: str
    sheet: str | None
    issues: tuple[Issue, ...]


def _finding(row: sqlite3.Row) -> FindingRow:
    return FindingRow(row["source_file"], row["sheet"], reads.issues(row["issues"]))


def finding_rows(ledger: Ledger, batch: str) -> Iterator[FindingRow]:
    """Every row of the batch with findings, in source order, from ``rows_with_issues``."""
    for r in reads.merged(
        ledger._db,
        batch,
        ROW_STATES,
        "batch, row_key, source_file, sheet, issues",
        "read findings",
        reads.WITH_ISSUES,
        index=" INDEXED BY rows_with_issues",
    ):
        yield reads.decoded(ledger._db, r, _finding)


# -- failures.csv/.xlsx and validation.csv as plain tuples, by windows of rowids -------------

WINDOW = 200_000
"""Rowids per query of ``problem_tuples`` / ``finding_lines``: each query reads one window of
the batch's rows in source order (sorted by SQLite), and no read transaction is held between
windows, so the runner can write meanwhile; a window holds at most this many rows."""
PROBLEM_TUPLE = (
    "row_key",
    "source_line",
    "state",
    "raw",
    "issues",
    "param",
    "error_code",
    "api_error_code",
    "message",
)
"""The fields of a ``problem_tuples`` tuple, after its rowid."""


def _windows(ledger: Ledger, sql: str, args: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
    """Rows of ``sql`` (whose last two parameters bound a rowid window) window by window."""
    with ledger._db.guard("find the last row") as conn:
        (top,) = conn.execute("SELECT coalesce(max(rowid), 0) FROM rows").fetchone()
    low = 0
    while low < top:
        with ledger._db.guard("read report rows") as conn:
            cursor = conn.cursor()
            cursor.row_factory = None
            page = cursor.execute(sql, (*args, low, low + WINDOW)).fetchall()
        yield from page
        low += WINDOW


def problem_tuples(ledger: Ledger, batch: str, states: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    """``(rowid, *PROBLEM_TUPLE)`` of the batch's rows in ``states``, in source order (rowid):
    what ``problem_rows`` reads, undecoded (``raw`` and ``issues`` are JSON text)."""
    wanted = list(dict.fromkeys(states))
    marks = ",".join("?" * len(wanted))
    sql = (
        f"SELECT rowid, {', '.join(PROBLEM_TUPLE)} FROM rows INDEXED BY rows_batch_state "
        f"WHERE batch = ? AND state IN ({marks}) AND rowid > ? AND rowid <= ? ORDER BY rowid"
    )
    return _windows(ledger, sql, (batch, *wanted))


def finding_lines(ledger: Ledger, batch: str) -> Iterator[tuple[Any, ...]]:
    """``(row_key, whole, *cells)`` (cells: validation.csv's columns, ``prepare.findings``'
    ``REPORT_COLUMNS``, as stored) of every finding of the batch's rows, rows in source
    order, each row's findings in their order: validation.csv's lines, extracted from the JSON
    by SQLite (the rows from ``rows_with_issues``). ``whole`` is false for a finding that is
    not an object with every field ``Issue`` requires (a tampered file); a missing severity
    reads as ``Issue``'s default, ``error``."""
    marks = ",".join("?" * len(ROW_STATES))
    present = " AND ".join(
        f"json_type(r.issues, j.fullkey || '.{name}') IS NOT NULL"
        for name in ("source_line", "column", "param", "value", "rule", "message")
    )
    fields = ", ".join(
        f"json_extract(r.issues, j.fullkey || '.{name}')"
        for name in ("source_line", "column", "param", "value", "rule")
    )
    sql = (
        f"SELECT r.row_key, j.type = 'object' AND {present}, r.source_file, r.sheet, {fields}, "
        "CASE WHEN json_type(r.issues, j.fullkey || '.severity') IS NULL THEN 'error' "
        "ELSE json_extract(r.issues, j.fullkey || '.severity') END, "
        "json_extract(r.issues, j.fullkey || '.message') "
        "FROM rows AS r INDEXED BY rows_with_issues, json_each(r.issues) AS j "
        f"WHERE r.batch = ? AND r.state IN ({marks}) AND r.issues != '[]' "
        "AND r.rowid > ? AND r.rowid <= ? ORDER BY r.rowid, j.key"
    )
    return _windows(ledger, sql, (batch, *ROW_STATES))
