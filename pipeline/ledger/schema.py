"""The ledger's SQLite schema: DDL, numbered migrations, and opening a file safely.

Part of the ledger (the only code that writes SQL). ``open_connection`` returns a connection in
WAL mode with ``synchronous=FULL``, at the current schema version, or raises ``LedgerError``.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

from pipeline.errors import LedgerError

SCHEMA_VERSION = 9
APPLICATION_ID = 0x4F494C47  # "OILG": marks the file as an order-import ledger
BUSY_TIMEOUT_MS = 5_000
CACHE_KIB = 65_536

_V1 = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE batches (
    name               TEXT PRIMARY KEY,
    operation          TEXT NOT NULL,
    source_file        TEXT NOT NULL,
    input_sha256       TEXT NOT NULL,
    config_fingerprint TEXT NOT NULL,
    created_at         REAL NOT NULL,
    updated_at         REAL NOT NULL,
    tool_version       TEXT NOT NULL
);
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    batch       TEXT NOT NULL REFERENCES batches(name),
    command     TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    status      TEXT NOT NULL DEFAULT 'running',
    counts      TEXT NOT NULL DEFAULT '{}',
    settings    TEXT NOT NULL DEFAULT '{}',
    summary     TEXT NOT NULL DEFAULT '{}',
    rate        REAL,
    throttled   INTEGER NOT NULL DEFAULT 0,
    tool_version TEXT NOT NULL
);
CREATE INDEX runs_batch ON runs (batch, id);
CREATE TABLE rows (
    batch           TEXT NOT NULL,
    row_key         TEXT NOT NULL,
    operation       TEXT NOT NULL,
    source_file     TEXT NOT NULL,
    sheet           TEXT,
    source_line     INTEGER NOT NULL,
    raw             TEXT NOT NULL,
    params          TEXT NOT NULL,
    content_hash    TEXT NOT NULL,
    order_id        TEXT,
    state           TEXT NOT NULL CHECK (state IN
                    ('invalid','pending','in_flight','succeeded','failed','retryable','conflict')),
    resolution      TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    http_status     INTEGER,
    api_error_code  TEXT,
    error_code      TEXT,
    param           TEXT,
    message         TEXT,
    latency_ms      REAL,
    issues          TEXT NOT NULL DEFAULT '[]',
    idempotency_key TEXT,
    updated_at      REAL NOT NULL,
    last_run_id     INTEGER,
    PRIMARY KEY (batch, row_key)
);
CREATE INDEX rows_batch_state ON rows (batch, state);
CREATE TABLE attempts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    batch          TEXT NOT NULL,
    row_key        TEXT NOT NULL,
    run_id         INTEGER NOT NULL,
    started_at     REAL NOT NULL,
    latency_ms     REAL,
    http_status    INTEGER,
    api_error_code TEXT,
    kind           TEXT NOT NULL,
    outcome        TEXT NOT NULL
);
CREATE INDEX attempts_batch ON attempts (batch, id);
"""


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run DDL statement by statement (``executescript`` would commit the open transaction)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_to_1(conn: sqlite3.Connection) -> None:
    _run_script(conn, _V1)


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    # Send times of recent attempts seed a new run's rate limiter (RateLimiter.seed).
    conn.execute("CREATE INDEX attempts_started ON attempts (started_at)")


def _migrate_to_3(conn: sqlite3.Connection) -> None:
    # What a batch was planned with, so retry and report can reuse it.
    for column in ("mapping_text", "encoding", "delimiter", "sheet"):
        conn.execute(f"ALTER TABLE batches ADD COLUMN {column} TEXT")
    # sha256 of a row's original columns: a record already sent that comes back under another
    # row key (the mapping changed how rows are keyed) is recognised before it is sent again.
    conn.execute("ALTER TABLE rows ADD COLUMN raw_hash INTEGER")
    conn.execute("CREATE INDEX rows_raw_hash ON rows (raw_hash)")


def _widen_state_check(conn: sqlite3.Connection, old: str, new: str) -> None:
    """Allow one more row state. Widening the state CHECK changes no stored row, so the table
    definition is edited in place (SQLite's documented procedure for such changes:
    writable_schema, a schema_version bump, then an integrity check)."""
    (sql,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type='table' AND name='rows'"
    ).fetchone()
    if old not in sql:
        raise sqlite3.DatabaseError("unexpected rows table definition (state check)")
    _edit_rows_table(conn, sql.replace(old, new))


def _edit_rows_table(conn: sqlite3.Connection, sql: str) -> None:
    """Replace the ``rows`` table's definition by ``sql``, which must accept every stored
    row as the old one did (only constraints change; the stored format does not)."""
    (version,) = conn.execute("PRAGMA schema_version").fetchone()
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.execute("UPDATE sqlite_master SET sql = ? WHERE type='table' AND name='rows'", (sql,))
        conn.execute(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")
    (check,) = conn.execute("PRAGMA integrity_check").fetchone()
    if check != "ok":
        raise sqlite3.DatabaseError(f"integrity check after the state migration: {check}")


def _migrate_to_4(conn: sqlite3.Connection) -> None:
    # Rows a mapping [[skip]] rule excludes get a state of their own, and [control] amounts (never
    # sent) are kept per row for the reports.
    conn.execute("ALTER TABLE rows ADD COLUMN control TEXT")
    _widen_state_check(conn, "'retryable','conflict')", "'retryable','conflict','skipped')")
    # Invoices that already have an order from this ledger (a second order on one would be a
    # duplicate): a partial index, so rows waiting to be sent cost nothing to plan.
    conn.execute(
        "CREATE INDEX rows_invoice_sent ON rows (json_extract(params, '$.invoice_id')) "
        "WHERE state IN ('succeeded', 'in_flight')"
    )


def _migrate_to_5(conn: sqlite3.Connection) -> None:
    # Rows pre-flight found the site would refuse (invoice missing, id or document number taken)
    # get a state of their own, ``blocked``: never sent, checked again by the next retry.
    _widen_state_check(conn, "'skipped')", "'skipped','blocked')")


def _migrate_to_6(conn: sqlite3.Connection) -> None:
    # A 64-bit fingerprint of each row's params (prepare.fingerprints), so a resume recognises
    # an unchanged row without encoding it as JSON. NULL for rows planned before (and rows
    # planned without one): those are compared by content hash, and get their fingerprint the
    # first time they are found unchanged.
    conn.execute("ALTER TABLE rows ADD COLUMN fingerprint INTEGER")


_RUN_FIGURES = """
CREATE TABLE run_figures (
    run_id        INTEGER PRIMARY KEY,
    batch         TEXT NOT NULL,
    first_attempt INTEGER NOT NULL,
    last_attempt  INTEGER NOT NULL,
    attempts      INTEGER NOT NULL,
    accepted      INTEGER NOT NULL,
    throttled     INTEGER NOT NULL,
    max_in_window INTEGER NOT NULL,
    first_start   REAL NOT NULL,
    last_start    REAL NOT NULL,
    starts        BLOB NOT NULL,
    kinds         BLOB NOT NULL,
    latencies     BLOB NOT NULL
)
"""


def _migrate_to_7(conn: sqlite3.Connection) -> None:
    # status and report on big ledgers (docs/ledger.md "Reports and status on big ledgers"):
    # a run's attempt figures, computed once and kept in run_figures under the key
    # (first_attempt, last_attempt): the ids of its first and last attempt when they were
    # computed. The log is append-only with growing ids, so a run that has logged anything
    # since has another key and its cache is recomputed, never used; attempts_run finds a
    # run's attempts (and that key, in two look-ups) without reading the batch's others.
    conn.execute(_RUN_FIGURES)
    conn.execute("CREATE INDEX attempts_run ON attempts (run_id, id)")
    # Partial indexes (rows outside them cost nothing to plan): succeeded rows by resolution
    # (status counts imported / already present from the index alone) and rows with findings
    # (validation.csv and the warnings by rule without reading every row).
    conn.execute(
        "CREATE INDEX rows_resolution ON rows (batch, resolution) WHERE state = 'succeeded'"
    )
    conn.execute("CREATE INDEX rows_with_issues ON rows (batch, state) WHERE issues != '[]'")


_STATE_IN = re.compile(r"CHECK \(state IN\s*\(((?:'[a-z_]+',?)+)\)\)")


def _migrate_to_8(conn: sqlite3.Connection) -> None:
    # The same state CHECK, spelled as a chain of ORs: SQLite checks ``state IN (9 values)``
    # by building a little table of the values for every row written, which was half the cost
    # of inserting a planned row (and is paid by every state change of the send path too).
    # The states allowed are exactly the same, so no stored row changes; a later migration
    # that allows one more state adds ``OR state = '...'`` to the chain.
    (sql,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type='table' AND name='rows'"
    ).fetchone()
    found = _STATE_IN.search(sql)
    if found is None:
        raise sqlite3.DatabaseError("unexpected rows table definition (state check)")
    chain = " OR ".join(f"state = {state}" for state in found.group(1).split(","))
    _edit_rows_table(conn, sql[: found.start()] + f"CHECK ({chain})" + sql[found.end() :])


def money_currency(params: str, control: str) -> str:
    """SQL for a row's ``currency`` column from its ``params`` and ``control`` JSON (columns or
    bound parameters): the ``[control]`` currency, else the params' ``currency_code``, ``''``
    for none; NULL for a row that counts in no currency total (no control and no ``total``).
    """
    return (
        f"CASE WHEN {control} IS NOT NULL OR json_extract({params}, '$.total') IS NOT NULL "
        f"THEN coalesce(json_extract({control}, '$.currency'), "
        f"json_extract({params}, '$.currency_code'), '') END"
    )


def money_amount(params: str, control: str) -> str:
    """SQL for a row's ``amount`` column: the ``[control]`` amount, else the params' ``total``,
    as SQLite's CAST to INTEGER reads it (NULL when neither is there)."""
    return (
        f"CAST(coalesce(json_extract({control}, '$.amount'), "
        f"json_extract({params}, '$.total')) AS INTEGER)"
    )


def _migrate_to_9(conn: sqlite3.Connection) -> None:
    # Amounts by currency (status --json, report) without decoding every row's JSON: each
    # row's currency and amount, as the reports read them from control/params, are stored
    # when it is planned (plan.py's INSERT and refresh compute them in SQL from the same JSON,
    # with these expressions) and read from a covering partial index. currency is NULL for a
    # row that counts in no total, '' for one without a currency (shown as "(none)").
    conn.execute("ALTER TABLE rows ADD COLUMN currency TEXT")
    conn.execute("ALTER TABLE rows ADD COLUMN amount INTEGER")
    conn.execute(
        f"UPDATE rows SET currency = {money_currency('params', 'control')}, "
        f"amount = {money_amount('params', 'control')}"
    )
    conn.execute(
        "CREATE INDEX rows_money ON rows (batch, currency, state, amount) "
        "WHERE currency IS NOT NULL"
    )


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _migrate_to_1,
    2: _migrate_to_2,
    3: _migrate_to_3,
    4: _migrate_to_4,
    5: _migrate_to_5,
    6: _migrate_to_6,
    7: _migrate_to_7,
    8: _migrate_to_8,
    9: _migrate_to_9,
}
"""Schema migrations by the version they produce; applied in order, each in one transaction."""


_DAMAGE_WORDS = ("malformed", "not a database", "file is encrypted", "corrupt")


def damaged(exc: BaseException) -> bool:
    """True when a sqlite3 error says the file's bytes are damaged (not locked, not full)."""
    return isinstance(exc, sqlite3.DatabaseError) and any(
        word in str(exc).lower() for word in _DAMAGE_WORDS
    )


def corrupted(path: str, exc: BaseException | str) -> LedgerError:
    """The error for a ledger file whose bytes, tables or rows are damaged."""
    return LedgerError(
        f"{path}: the ledger file is damaged or is not an order-import ledger ({exc})",
        hint=(
            "restore the file from a backup, or move it aside and start a new ledger "
            "(`sqlite3 FILE 'PRAGMA integrity_check'` shows the damage)"
        ),
    )


def open_connection(
    path: str | Path,
    *,
    busy_timeout: float = BUSY_TIMEOUT_MS / 1000,
    max_pages: int | None = None,
    must_exist: bool = False,
) -> sqlite3.Connection:
    """Open a ledger at ``path`` and bring its schema up to date.

    Args:
        path: the ledger file, or ``":memory:"``.
        busy_timeout: seconds to wait for another process's write lock before giving up.
        max_pages: cap on the file's size in pages (a seam: tests simulate a full disk).
        must_exist: refuse a missing or empty file instead of creating a ledger (read-only
            commands never create one).

    Raises:
        LedgerError: missing (with ``must_exist``), not a database, damaged, not an
            order-import ledger, a newer schema than this version reads, unreadable, locked, or
            the disk refused the write.
    """
    where = str(path)
    if must_exist and where != ":memory:":
        file = Path(where)
        if not file.is_file() or file.stat().st_size == 0:
            raise LedgerError(
                f"{where}: no ledger here",
                hint="pass --ledger PATH (or set ledger_path) to the ledger the batch used",
            )
    try:
        conn = sqlite3.connect(
            where, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise LedgerError(f"{where}: cannot open the ledger ({exc})") from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        if where != ":memory:":
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise LedgerError(f"{where}: the ledger could not switch to WAL mode ({mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = OFF")
        # Up to 64 MiB of page cache (default 2 MiB): the indexes of a million-row batch stay
        # in memory while it is planned, instead of being re-read from the OS for each chunk.
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        _upgrade(conn, where)
        if max_pages is not None:
            conn.execute(f"PRAGMA max_page_count = {int(max_pages)}")
    except LedgerError:
        conn.close()
        raise
    except sqlite3.Error as exc:
        conn.close()
        if damaged(exc):
            raise corrupted(where, exc) from None
        raise LedgerError(f"{where}: cannot use the ledger ({exc})") from None
    return conn


def _upgrade(conn: sqlite3.Connection, where: str) -> None:
    version = _current_version(conn, where)
    if version > SCHEMA_VERSION:
        raise LedgerError(
            f"{where}: ledger schema version {version} is newer than this order-import reads "
            f"(up to {SCHEMA_VERSION})",
            hint="upgrade order-import, or use a different --ledger file",
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[target](conn)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(target),),
            )
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _current_version(conn: sqlite3.Connection, where: str) -> int:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return 0
    if "meta" not in tables:
        raise LedgerError(
            f"{where}: this SQLite file is not an order-import ledger (no meta table)",
            hint="point --ledger at a new file or at an existing order-import ledger",
        )
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        raise corrupted(where, "its meta table has no schema_version")
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise corrupted(where, f"unreadable schema version {row[0]!r}") from None
