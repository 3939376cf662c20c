"""Ledger guards: durability pragmas on every connection, no SQLite on the event loop, damaged
files and missing ledgers as clear errors (exit 2, no traceback)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from pipeline.errors import DriftError, LedgerError
from pipeline.keys import idempotency_key
from pipeline.ledger import _connection
from pipeline.ledger.ledger import Ledger
from pipeline.models import SourceRow
from tests import support
from tests.orders_factory import write_orders

KEY = "guards_test_key"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(server: Any, *args: str) -> Result:
    return support.invoke(server, KEY, *args)


def run(server: Any, source: Path, *more: str) -> Result:
    return invoke(server, "run", str(source), "--batch", "b1", "--quiet", "--rate", "6000", *more)


def row(i: int, raw: dict[str, str] | None = None) -> SourceRow:
    return SourceRow(f"k{i}", "f.csv", None, i + 2, raw or {"n": str(i)}, {"id": f"O{i}"})


# -- durability --------------------------------------------------------------------------------


@pytest.fixture
def pragmas_at_close(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, int]]:
    """Every ledger connection's (file, journal_mode, synchronous) read just before it closes."""
    seen: list[tuple[str, str, int]] = []
    real_close = _connection.Connection.close

    def close(self: _connection.Connection) -> None:
        if not self.closed:
            with self.guard("read pragmas") as conn:
                mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
                sync = int(conn.execute("PRAGMA synchronous").fetchone()[0])
            seen.append((self.path, mode, sync))
        real_close(self)

    monkeypatch.setattr(_connection.Connection, "close", close)
    return seen


def test_every_ledger_connection_of_a_real_run_is_wal_and_full_sync(
    make_sandbox: Any, workdir: Path, pragmas_at_close: list[tuple[str, str, int]]
) -> None:
    """Run, status and a resume through the real CLI: each connection the commands opened was
    in WAL mode with synchronous=FULL (2) when it closed, planning's NORMAL included."""
    server = make_sandbox(api_key=KEY)
    source = write_orders(workdir / "orders.csv", 4)
    assert run(server, source, "--canary", "2").exit_code == 0
    assert invoke(server, "status", "--batch", "b1", "--json").exit_code == 0
    assert run(server, source).exit_code == 0
    assert len(pragmas_at_close) >= 3
    assert {(mode, sync) for _, mode, sync in pragmas_at_close} == {("wal", 2)}


def test_planning_returns_to_full_sync_even_when_refused(tmp_path: Path) -> None:
    """Planning runs at synchronous=NORMAL (re-derivable); FULL is back after it, also after a
    refused plan."""
    with Ledger(tmp_path / "l.sqlite") as led:
        assert led.pragmas() == {"journal_mode": "wal", "synchronous": 2}
        led.open_batch(
            "b1", operation="import", source_file="f", input_sha256="s", config_fingerprint="c"
        )
        run_id = led.start_run("b1", command="run", settings_summary={})
        led.plan("b1", [row(0)], operation="import", run_id=run_id)
        assert led.pragmas()["synchronous"] == 2
        led.mark_in_flight("b1", "k0", run_id=run_id, idempotency_key="i")
        rekeyed = SourceRow("other", "f.csv", None, 2, {"n": "0"}, {"id": "X"})
        with pytest.raises(DriftError, match="already sent would get new row keys"):
            led.plan("b1", [row(1), rekeyed], operation="import", run_id=run_id)
        assert led.pragmas() == {"journal_mode": "wal", "synchronous": 2}
        assert {r.row_key for r in led.rows("b1")} == {"k0"}  # k1 was rolled back with it


# -- the event loop ----------------------------------------------------------------------------


def test_a_run_does_no_sqlite_work_on_the_event_loop_thread(
    make_sandbox: Any, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the ledger refusing SQL on any thread running an event loop, a whole run (a row in
    doubt to reconcile, planning, 600 rows over two work pages, records, attempts) succeeds."""
    server = make_sandbox(api_key=KEY)
    source = write_orders(workdir / "orders.csv", 600)
    assert run(server, source, "--dry-run").exit_code == 0
    with Ledger("order-import.sqlite") as ledger:
        item = next(iter(ledger.work("b1")))
        key = idempotency_key("import", "b1", item.row_key, item.content_hash)
        ledger.mark_in_flight("b1", item.row_key, run_id=1, idempotency_key=key)
    monkeypatch.setattr(_connection, "FORBID_ON_LOOP", True)
    result = run(server, source)
    assert result.exit_code == 0, result.output
    assert len([o for o in server.state()["orders"] if not o.get("deleted")]) == 600


def test_the_loop_guard_can_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seam itself: SQL from a coroutine raises when the guard is on."""
    import anyio

    monkeypatch.setattr(_connection, "FORBID_ON_LOOP", True)
    with Ledger(tmp_path / "l.sqlite") as led:

        async def on_loop() -> None:
            led.batches()

        with pytest.raises(LedgerError, match="event loop"):
            anyio.run(on_loop)
        assert led.batches() == []


# -- damaged and missing ledgers ---------------------------------------------------------------


def _ledger_with_batch(path: Path) -> None:
    with Ledger(path) as led:
        led.open_batch(
            "b1", operation="import", source_file="f", input_sha256="s", config_fingerprint="c"
        )
        run_id = led.start_run("b1", command="run", settings_summary={})
        led.plan("b1", [row(0), row(1)], operation="import", run_id=run_id)


def test_garbage_bytes_in_the_ledger_is_a_clear_error(make_sandbox: Any, workdir: Path) -> None:
    server = make_sandbox(api_key=KEY)
    source = write_orders(workdir / "orders.csv", 2)
    Path("order-import.sqlite").write_bytes(b"\x00garbage, not SQLite\xff" * 300)
    result = run(server, source)
    assert result.exit_code == 2
    assert "damaged or is not an order-import ledger" in result.output
    assert "restore the file from a backup" in result.output
    assert server.state()["requests"] == []


def test_a_ledger_without_its_schema_version_is_damaged_not_a_sql_error(
    make_sandbox: Any, workdir: Path
) -> None:
    """The meta row gone (today: 'table meta already exists'): named as damage."""
    server = make_sandbox(api_key=KEY)
    _ledger_with_batch(workdir / "order-import.sqlite")
    conn = sqlite3.connect("order-import.sqlite")
    conn.execute("DELETE FROM meta")
    conn.commit()
    conn.close()
    result = run(server, write_orders(workdir / "orders.csv", 2))
    assert result.exit_code == 2
    assert "damaged" in result.output
    assert "no schema_version" in result.output
    assert "already exists" not in result.output


def test_a_tampered_row_is_named_not_a_traceback(make_sandbox: Any, workdir: Path) -> None:
    """A row whose stored JSON was edited: the library and the CLI name the row as damaged."""
    server = make_sandbox(api_key=KEY)
    source = write_orders(workdir / "orders.csv", 3)
    assert run(server, source, "--dry-run").exit_code == 0
    conn = sqlite3.connect("order-import.sqlite")
    conn.execute("UPDATE rows SET params = '{not json' WHERE row_key = 'T-000001'")
    conn.commit()
    conn.close()
    with (
        Ledger("order-import.sqlite") as led,
        pytest.raises(LedgerError, match="row 'T-000001' of batch 'b1' does not decode"),
    ):
        list(led.rows("b1"))
    result = run(server, source)
    assert result.exit_code == 2, result.output
    assert "damaged" in result.output
    assert "T-000001" in result.output


def test_open_existing_never_creates_a_ledger(tmp_path: Path) -> None:
    """What read-only commands use: a missing or empty file is refused and stays absent."""
    missing = tmp_path / "none.sqlite"
    with pytest.raises(LedgerError, match="no ledger here"):
        Ledger.open_existing(missing)
    assert not missing.exists()
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    with pytest.raises(LedgerError, match="no ledger here"):
        Ledger.open_existing(empty)
    assert empty.stat().st_size == 0
    _ledger_with_batch(tmp_path / "l.sqlite")
    with Ledger.open_existing(tmp_path / "l.sqlite") as led:
        assert led.counts("b1")["pending"] == 2
