"""Tests of the SQLite ledger: states, planning rules, durability, drift and schema guards."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import DriftError, LedgerError
from pipeline.keys import content_hash
from pipeline.ledger.ledger import ChangedRow, Ledger, PlanStats
from pipeline.ledger.schema import SCHEMA_VERSION
from pipeline.models import ROW_STATES, Attempt, Issue, Outcome, SourceRow

BATCH = "b1"


def make_row(i: int, *, total: int | None = None, invalid: bool = False) -> SourceRow:
    """A source row keyed ``k{i}`` at line i+2; ``invalid`` adds an error issue."""
    amount = 100 * i if total is None else total
    issues = (
        (Issue(i + 2, "currency", "currency_code", "XX", "enum", "unknown currency XX"),)
        if invalid
        else ()
    )
    return SourceRow(
        row_key=f"k{i}",
        source_file="orders.csv",
        sheet=None,
        source_line=i + 2,
        raw={"id": f"O{i}", "total": str(amount), "currency": "XX" if invalid else "USD"},
        params={"id": f"O{i}", "total": amount, "currency_code": "USD"},
        issues=issues,
    )


def open_import(led: Ledger, batch: str = BATCH) -> None:
    """Open ``batch`` as an import of orders.csv (the tests' one input and settings)."""
    led.open_batch(
        batch,
        operation="import",
        source_file="orders.csv",
        input_sha256="a" * 64,
        config_fingerprint="cfg",
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A fresh on-disk ledger with an open batch."""
    with Ledger(tmp_path / "ledger.sqlite") as led:
        open_import(led)
        yield led


def plan(led: Ledger, rows: list[SourceRow]) -> PlanStats:
    """Plan ``rows`` in a fresh run."""
    run_id = led.start_run(BATCH, command="run", settings_summary={})
    return led.plan(BATCH, rows, operation="import", run_id=run_id)


def send(led: Ledger, key: str, state: Any, **kw: Any) -> None:
    """Mark a row in flight and record ``state`` for it, as the runner does."""
    run_id = led.start_run(BATCH, command="run", settings_summary={})
    led.mark_in_flight(BATCH, key, run_id=run_id, idempotency_key=f"idem-{key}")
    led.record(Outcome(BATCH, key, run_id, state, attempts=1, **kw))


def states(led: Ledger) -> dict[str, str]:
    """Row key → state for the batch."""
    return {row.row_key: row.state for row in led.rows(BATCH)}


def test_new_rows_are_pending_or_invalid_with_issues_stored(ledger: Ledger) -> None:
    """plan() puts valid rows in pending, invalid ones in invalid with their findings."""
    stats = plan(ledger, [make_row(0), make_row(1, invalid=True)])
    assert (stats.new, stats.invalid, stats.total) == (1, 1, 2)
    rows = {r.row_key: r for r in ledger.rows(BATCH)}
    assert rows["k0"].state == "pending"
    assert rows["k1"].state == "invalid"
    assert rows["k1"].issues[0].rule == "enum"
    assert rows["k1"].issues[0].source_line == 3
    assert rows["k0"].content_hash == content_hash(make_row(0).params)
    assert rows["k0"].raw == {"id": "O0", "total": "0", "currency": "USD"}
    assert rows["k0"].order_id == "O0"


def test_counts_include_every_state_with_zeros(ledger: Ledger) -> None:
    """counts() returns all seven states, zeros included."""
    plan(ledger, [make_row(0), make_row(1, invalid=True)])
    counts = ledger.counts(BATCH)
    assert set(counts) == set(ROW_STATES)
    assert counts["pending"] == 1
    assert counts["invalid"] == 1
    assert counts["succeeded"] == 0


def test_succeeded_rows_are_never_replanned(ledger: Ledger) -> None:
    """A succeeded row is untouched by a later plan, even with changed content; the change is
    counted and handed over with both versions (never silently 0)."""
    plan(ledger, [make_row(0), make_row(1)])
    send(ledger, "k0", "succeeded", resolution="imported", order_id="O0")
    send(ledger, "k1", "succeeded", resolution="imported", order_id="O1")
    changed: list[ChangedRow] = []
    run_id = ledger.start_run(BATCH, command="run", settings_summary={})
    stats = ledger.plan(
        BATCH,
        [make_row(0, total=999), make_row(1)],
        operation="import",
        run_id=run_id,
        on_changed=changed.append,
    )
    assert (stats.changed_succeeded, stats.unchanged_succeeded) == (1, 1)
    assert [(c.row_key, c.order_id, c.sent["total"], c.now["total"]) for c in changed] == [
        ("k0", "O0", 0, 999)
    ]
    row = next(ledger.rows(BATCH))
    assert row.state == "succeeded"
    assert row.params["total"] == 0
    assert list(ledger.work(BATCH)) == []


def test_in_flight_rows_are_left_for_reconciliation(ledger: Ledger) -> None:
    """plan() leaves in_flight rows alone; in_flight() lists them."""
    plan(ledger, [make_row(0)])
    run_id = ledger.start_run(BATCH, command="run", settings_summary={})
    ledger.mark_in_flight(BATCH, "k0", run_id=run_id, idempotency_key="idem")
    stats = plan(ledger, [make_row(0, total=5)])
    assert stats.in_doubt == 1
    doubt = ledger.in_flight(BATCH)
    assert [item.row_key for item in doubt] == ["k0"]
    assert doubt[0].params["total"] == 0


def test_changed_failed_row_is_requeued_unchanged_stays_failed(ledger: Ledger) -> None:
    """A failed row goes back to pending only when its content changed."""
    plan(ledger, [make_row(0), make_row(1)])
    send(ledger, "k0", "failed", http_status=400, api_error_code="param_wrong_value")
    send(ledger, "k1", "failed", http_status=400, api_error_code="param_wrong_value")
    stats = plan(ledger, [make_row(0), make_row(1, total=7)])
    assert (stats.still_failed, stats.requeued_changed) == (1, 1)
    assert states(ledger) == {"k0": "failed", "k1": "pending"}


def test_changed_row_that_is_now_invalid_becomes_invalid(ledger: Ledger) -> None:
    """A failed row whose new content fails validation becomes invalid, not pending."""
    plan(ledger, [make_row(0)])
    send(ledger, "k0", "failed")
    plan(ledger, [make_row(0, total=3, invalid=True)])
    assert states(ledger) == {"k0": "invalid"}


def test_invalid_row_fixed_becomes_pending(ledger: Ledger) -> None:
    """An invalid row given again without errors is re-queued."""
    plan(ledger, [make_row(0, invalid=True)])
    stats = plan(ledger, [make_row(0)])
    assert stats.requeued_changed == 1
    assert states(ledger) == {"k0": "pending"}
    assert next(ledger.rows(BATCH)).issues == ()


def test_retryable_stays_retryable_and_is_in_work(ledger: Ledger) -> None:
    """An unchanged retryable row stays retryable and is handed out again by work()."""
    plan(ledger, [make_row(0), make_row(1)])
    send(ledger, "k0", "retryable", http_status=503)
    stats = plan(ledger, [make_row(0), make_row(1)])
    assert (stats.still_retryable, stats.still_pending) == (1, 1)
    assert [w.row_key for w in ledger.work(BATCH)] == ["k0", "k1"]


def test_pending_params_are_refreshed(ledger: Ledger) -> None:
    """A pending row planned with new content carries the new params and hash."""
    plan(ledger, [make_row(0)])
    plan(ledger, [make_row(0, total=42)])
    (item,) = list(ledger.work(BATCH))
    assert item.params["total"] == 42
    assert item.content_hash == content_hash(make_row(0, total=42).params)


def test_record_accumulates_attempts_and_keeps_order_id(ledger: Ledger) -> None:
    """record() adds this run's attempts to earlier ones and keeps the order id."""
    plan(ledger, [make_row(0)])
    send(ledger, "k0", "retryable", http_status=503)
    send(ledger, "k0", "succeeded", resolution="imported", http_status=200)
    row = next(ledger.rows(BATCH))
    assert (row.state, row.attempts, row.order_id, row.resolution) == (
        "succeeded",
        2,
        "O0",
        "imported",
    )
    assert row.idempotency_key == "idem-k0"


def test_forbidden_transitions_raise(ledger: Ledger) -> None:
    """Succeeded, failed and invalid rows cannot be sent; invalid rows cannot be recorded."""
    plan(ledger, [make_row(0), make_row(1, invalid=True), make_row(2)])
    send(ledger, "k0", "succeeded")
    send(ledger, "k2", "failed")
    for key in ("k0", "k1", "k2"):
        with pytest.raises(LedgerError):
            ledger.mark_in_flight(BATCH, key, run_id=1, idempotency_key="x")
    with pytest.raises(LedgerError):
        ledger.record(Outcome(BATCH, "k1", 1, "succeeded"))
    with pytest.raises(LedgerError):
        ledger.record(Outcome(BATCH, "k0", 1, "failed"))
    with pytest.raises(LedgerError):
        ledger.record(Outcome(BATCH, "nope", 1, "failed"))


def test_requeue_moves_failed_rows_to_pending(ledger: Ledger) -> None:
    """requeue() moves the chosen failed/conflict rows back to pending and counts them."""
    plan(ledger, [make_row(i) for i in range(4)])
    send(ledger, "k0", "failed")
    send(ledger, "k1", "conflict")
    send(ledger, "k2", "succeeded")
    assert ledger.requeue(BATCH, row_keys=["k1", "k2"]) == 1
    assert states(ledger) == {"k0": "failed", "k1": "pending", "k2": "succeeded", "k3": "pending"}
    assert ledger.requeue(BATCH) == 1
    assert states(ledger)["k0"] == "pending"
    with pytest.raises(LedgerError):
        ledger.requeue(BATCH, states=("succeeded",))


def test_work_streams_in_source_order_across_pages_while_writing(ledger: Ledger) -> None:
    """work() yields every sendable row once, in order, while the caller writes."""
    plan(ledger, [make_row(i, invalid=(i % 7 == 0)) for i in range(1300)])
    run_id = ledger.start_run(BATCH, command="run", settings_summary={})
    seen = []
    for item in ledger.work(BATCH):
        seen.append(item.row_key)
        ledger.mark_in_flight(BATCH, item.row_key, run_id=run_id, idempotency_key="i")
        # a transient failure moves it to retryable, a state work() also hands out
        ledger.record(Outcome(BATCH, item.row_key, run_id, "retryable", attempts=1))
    expected = [f"k{i}" for i in range(1300) if i % 7]
    assert seen == expected
    assert ledger.counts(BATCH)["retryable"] == len(expected)


def test_attempts_are_flushed_by_record_and_close(tmp_path: Path) -> None:
    """Logged attempts are readable after record() and survive close()."""
    path = tmp_path / "l.sqlite"
    with Ledger(path) as led:
        led.open_batch(
            BATCH, operation="import", source_file="f", input_sha256="s", config_fingerprint="c"
        )
        plan(led, [make_row(0), make_row(1)])
        led.log_attempt(
            Attempt(
                BATCH, "k0", 1, 1.0, 12.5, 429, "api_request_limit_exceeded", "send", "throttled"
            )
        )
        led.record(Outcome(BATCH, "k0", 1, "retryable", attempts=1))
        led.log_attempt(Attempt(BATCH, "k1", 1, 2.0, 30.0, 200, None, "send", "ok"))
    with Ledger(path) as led:
        got = list(led.attempts(BATCH))
    assert [(a.row_key, a.http_status, a.outcome) for a in got] == [
        ("k0", 429, "throttled"),
        ("k1", 200, "ok"),
    ]


def test_runs_record_settings_and_summary(ledger: Ledger) -> None:
    """start_run/finish_run store the settings summary, status, counts, rate and 429s."""
    plan(ledger, [make_row(0)])
    run_id = ledger.start_run(BATCH, command="retry", settings_summary={"rate": 150})
    ledger.finish_run(run_id, status="done", summary={"achieved_per_minute": 140.5, "throttled": 3})
    run = ledger.runs(BATCH)[-1]
    assert (run.command, run.status, run.rate_per_minute, run.throttled) == (
        "retry",
        "done",
        140.5,
        3,
    )
    assert run.settings == {"rate": 150}
    assert run.counts["pending"] == 1
    assert run.finished_at is not None
    assert run.finished_at >= run.started_at


def test_drift_is_refused_unless_allowed(ledger: Ledger) -> None:
    """Re-opening a batch with another input hash raises DriftError naming both hashes."""
    with pytest.raises(DriftError) as info:
        ledger.open_batch(
            BATCH,
            operation="import",
            source_file="orders.csv",
            input_sha256="b" * 64,
            config_fingerprint="cfg",
        )
    assert "a" * 64 in str(info.value)
    assert "b" * 64 in str(info.value)
    assert "--allow-drift" in str(info.value)
    again = ledger.open_batch(
        BATCH,
        operation="import",
        source_file="fixed.csv",
        input_sha256="b" * 64,
        config_fingerprint="cfg2",
        allow_drift=True,
    )
    assert again.input_sha256 == "a" * 64
    assert again.config_fingerprint == "cfg2"
    with pytest.raises(LedgerError, match="update"):
        ledger.open_batch(
            BATCH,
            operation="update",
            source_file="orders.csv",
            input_sha256="a" * 64,
            config_fingerprint="cfg",
        )
    assert [b.name for b in ledger.batches()] == [BATCH]
    assert ledger.get_batch("nope") is None


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    """A ledger written by a newer schema raises LedgerError with both versions."""
    path = tmp_path / "l.sqlite"
    Ledger(path).close()
    conn = sqlite3.connect(path)
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
    )
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match=f"version {SCHEMA_VERSION + 1} is newer"):
        Ledger(path)


def test_foreign_and_garbage_files_are_refused(tmp_path: Path) -> None:
    """A non-ledger SQLite file, a non-database file and a directory raise LedgerError."""
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    for path in (other, garbage, tmp_path):
        with pytest.raises(LedgerError, match=str(path)):
            Ledger(path)


def test_full_disk_surfaces_as_ledger_error(tmp_path: Path) -> None:
    """SQLITE_FULL while planning is a LedgerError naming the file, and nothing half-commits."""
    path = tmp_path / "l.sqlite"
    with Ledger(path, max_pages=40) as led:
        led.open_batch(
            BATCH, operation="import", source_file="f", input_sha256="s", config_fingerprint="c"
        )
        run_id = led.start_run(BATCH, command="run", settings_summary={})
        with pytest.raises(LedgerError, match=str(path)):
            led.plan(BATCH, (make_row(i) for i in range(5000)), operation="import", run_id=run_id)
        planned = sum(led.counts(BATCH).values())
    assert planned % 500 == 0  # whole chunks only


def test_locked_ledger_is_a_ledger_error(tmp_path: Path) -> None:
    """A ledger whose write lock another process holds fails with LedgerError, not sqlite3."""
    path = tmp_path / "l.sqlite"
    with Ledger(path) as led:
        led.open_batch(
            BATCH, operation="import", source_file="f", input_sha256="s", config_fingerprint="c"
        )
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with Ledger(path, busy_timeout=0.1) as led, pytest.raises(LedgerError, match="locked"):
            led.start_run(BATCH, command="run", settings_summary={})
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_in_flight_survives_kill_9(tmp_path: Path) -> None:
    """A row committed in_flight by a process killed with SIGKILL is in_flight on reopen."""
    path = tmp_path / "l.sqlite"
    script = textwrap.dedent(
        f"""
        import os, signal
        from pipeline.ledger.ledger import Ledger
        from pipeline.models import SourceRow
        led = Ledger({str(path)!r})
        led.open_batch("b1", operation="import", source_file="f", input_sha256="s",
                       config_fingerprint="c")
        run = led.start_run("b1", command="run", settings_summary={{}})
        row = SourceRow("k0", "f", None, 2, {{"id": "O0"}}, {{"id": "O0"}})
        led.plan("b1", [row], operation="import", run_id=run)
        led.mark_in_flight("b1", "k0", run_id=run, idempotency_key="idem-k0")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], timeout=60, check=False)
    assert proc.returncode == -9
    with Ledger(path) as led:
        doubt = led.in_flight("b1")
        assert [(d.row_key, d.state) for d in doubt] == [("k0", "in_flight")]
        assert next(led.rows("b1")).idempotency_key == "idem-k0"


def test_api_key_never_reaches_the_file(tmp_path: Path) -> None:
    """No Ledger method takes a key, and a sentinel key in the environment is not in the file."""
    import inspect

    for name, member in inspect.getmembers(Ledger, inspect.isfunction):
        params = inspect.signature(member).parameters
        assert not any(
            "key" in p and p not in ("row_key", "row_keys", "idempotency_key") for p in params
        ), name
    sentinel = "test_SENTINEL_KEY_4f9a1c"
    env = {**os.environ, "CHARGEBEE_API_KEY": sentinel}
    path = tmp_path / "l.sqlite"
    script = textwrap.dedent(
        f"""
        from pipeline.config import load_settings
        from pipeline.ledger.ledger import Ledger
        from pipeline.models import Outcome, SourceRow
        s = load_settings({{"base_url_override": "http://127.0.0.1:1/api/v2"}})
        assert s.api_key is not None
        with Ledger({str(path)!r}) as led:
            led.open_batch("b1", operation="import", source_file="f", input_sha256="s",
                           config_fingerprint=s.fingerprint())
            run = led.start_run("b1", command="run", settings_summary={{"settings": s}})
            led.plan("b1", [SourceRow("k0", "f", None, 2, {{"id": "O"}}, {{"id": "O"}})],
                     operation="import", run_id=run)
            led.finish_run(run, status="done", summary={{"api_key": s.api_key}})
        """
    )
    subprocess.run([sys.executable, "-c", script], timeout=60, check=True, env=env)
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert sentinel.encode() not in blob
    assert b"SENTINEL" not in blob


def test_memory_ledger_and_closed_ledger(tmp_path: Path) -> None:
    """':memory:' works; a closed ledger raises LedgerError instead of sqlite3 errors."""
    led = Ledger(":memory:")
    led.open_batch(
        BATCH, operation="update", source_file="f", input_sha256="s", config_fingerprint="c"
    )
    assert led.get_batch(BATCH) is not None
    led.close()
    led.close()
    with pytest.raises(LedgerError, match="closed"):
        led.counts(BATCH)


def test_planning_many_rows_in_chunks(ledger: Ledger) -> None:
    """Planning 20k rows twice: every row lands once; the second pass changes nothing."""
    rows = [make_row(i, invalid=(i % 50 == 0)) for i in range(20_000)]
    first = plan(ledger, rows)
    second = plan(ledger, rows)
    assert first.new == 19_600
    assert first.invalid == 400
    assert second.still_pending == 19_600
    assert second.new == 0
    assert sum(ledger.counts(BATCH).values()) == 20_000


row_spec = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 3), st.booleans()), min_size=1, max_size=40
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=row_spec,
    outcomes=st.lists(
        st.sampled_from(["succeeded", "failed", "retryable", "conflict", None]),
        min_size=40,
        max_size=40,
    ),
)
def test_plan_is_idempotent(spec: list[tuple[int, int, bool]], outcomes: list[Any]) -> None:
    """Planning the same rows twice (after any outcomes) changes no row."""
    rows = {i: make_row(i, total=t, invalid=bad) for i, t, bad in spec}
    with Ledger(":memory:") as led:
        led.open_batch(
            BATCH, operation="import", source_file="f", input_sha256="s", config_fingerprint="c"
        )
        plan(led, list(rows.values()))
        for (_i, row), outcome in zip(sorted(rows.items()), outcomes, strict=False):
            if outcome and not row.issues:
                send(led, row.row_key, outcome)
        plan(led, list(rows.values()))
        before = [(r.row_key, r.state, r.content_hash, r.attempts) for r in led.rows(BATCH)]
        plan(led, list(rows.values()))
        after = [(r.row_key, r.state, r.content_hash, r.attempts) for r in led.rows(BATCH)]
    assert before == after


def test_recent_attempt_times_span_batches_and_include_the_buffer(tmp_path: Path) -> None:
    """Seed for the rate limiter: attempt start times since a moment, all batches, buffered too."""
    from pipeline.models import Attempt

    with Ledger(tmp_path / "l.sqlite") as ledger:
        for batch, t in (("a", 100.0), ("b", 200.0), ("a", 300.0)):
            ledger.log_attempt(Attempt(batch, "r", 1, t, 5.0, 200, None, "send", "ok"))
        assert ledger.recent_attempt_times(150.0) == [200.0, 300.0]
    with Ledger(tmp_path / "l.sqlite") as ledger:
        assert ledger.recent_attempt_times(0.0) == [100.0, 200.0, 300.0]


def test_version_1_ledger_is_upgraded_in_place(tmp_path: Path) -> None:
    """A ledger written by schema version 1 gains the attempts index (v2) and the batch's
    planning record and the rows their raw hash (v3); old batches read with nothing recorded."""
    from pipeline.ledger.schema import MIGRATIONS

    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[1](conn)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.execute("INSERT INTO batches VALUES ('old', 'import', 'f.csv', 's', 'c', 1.0, 1.0, 'x')")
    conn.close()
    with Ledger(path) as led:
        info = led.get_batch("old")
    assert info is not None
    assert (info.mapping_text, info.encoding, info.delimiter, info.sheet) == (None,) * 4
    conn = sqlite3.connect(path)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    conn.close()
    assert "attempts_started" in indexes
    assert version == str(SCHEMA_VERSION) == "9"
    conn = sqlite3.connect(path)  # v5: a row may be ``blocked`` (the state CHECK allows it)
    with conn:
        conn.execute(
            "INSERT INTO rows (batch, row_key, operation, source_file, source_line, raw, params,"
            " content_hash, state, updated_at) VALUES"
            " ('old', 'k', 'import', 'f.csv', 2, '{}', '{}', 'h', 'blocked', 1.0)"
        )
    conn.close()


def test_drop_unseen_removes_only_never_sent_rows(ledger: Ledger) -> None:
    """Rows missing from a corrected input leave the batch only if never sent (pending/invalid)."""
    plan(ledger, [make_row(0), make_row(1, invalid=True), make_row(2), make_row(3), make_row(4)])
    send(ledger, "k2", "failed")
    send(ledger, "k3", "succeeded")
    ledger.mark_in_flight(BATCH, "k4", run_id=1, idempotency_key="idem-k4")
    ledger.remember_keys([])
    assert ledger.drop_unseen(BATCH) == 2
    assert states(ledger) == {"k2": "failed", "k3": "succeeded", "k4": "in_flight"}
    plan(ledger, [make_row(5)])
    ledger.remember_keys(["k5"])
    assert ledger.drop_unseen(BATCH) == 0


def test_skipped_rows_are_kept_with_their_reason_and_never_worked(tmp_path: Path) -> None:
    """A row a mapping skips is planned ``skipped`` with its reason; work() never yields it, and
    a later plan that no longer skips it makes it pending."""
    from dataclasses import replace as _replace

    from pipeline.models import SourceRow

    base = SourceRow(
        row_key="k1",
        source_file="f.csv",
        sheet=None,
        source_line=2,
        raw={"a": "1"},
        params={"invoice_id": "INV-1"},
    )
    with Ledger(tmp_path / "l.sqlite") as led:
        led.open_batch(
            "b", operation="import", source_file="f.csv", input_sha256="s", config_fingerprint="c"
        )
        run = led.start_run("b", command="run", settings_summary={})
        skipped = _replace(
            base, skip_reason="never paid", control={"amount": 1250, "currency": "EUR"}
        )
        stats = led.plan("b", [skipped], operation="import", run_id=run)
        assert stats.skipped == 1
        assert led.counts("b")["skipped"] == 1
        assert list(led.work("b")) == []
        assert led.tally("b", "message", states=("skipped",)) == {"never paid": 1}
        assert led.totals_by_currency("b") == [("EUR", "skipped", 1, 1250)]
        led.plan("b", [base], operation="import", run_id=run)
        assert led.counts("b")["pending"] == 1


def test_an_invoice_this_ledger_already_imported_is_refused_before_sending(tmp_path: Path) -> None:
    """A new row naming an invoice another row already imported is invalid, not a second order;
    the row itself (same key) and a ledger allowing several orders per invoice are not flagged."""
    from pipeline.models import SourceRow

    def row(key: str, line: int) -> SourceRow:
        return SourceRow(
            row_key=key,
            source_file="f.csv",
            sheet=None,
            source_line=line,
            raw={"k": key},
            params={"invoice_id": "INV-7", "id": f"MIG-{key}"},
        )

    with Ledger(tmp_path / "l.sqlite") as led:
        for name in ("jan", "feb"):
            led.open_batch(
                name, operation="import", source_file="f.csv", input_sha256="s",
                config_fingerprint="c",
            )  # fmt: skip
        run = led.start_run("jan", command="run", settings_summary={})
        led.plan("jan", [row("a", 2)], operation="import", run_id=run)
        with sqlite3.connect(tmp_path / "l.sqlite") as conn:
            conn.execute("UPDATE rows SET state = 'succeeded' WHERE row_key = 'a'")
        again = led.plan("jan", [row("a", 2)], operation="import", run_id=run)
        assert again.invalid == 0
        stats = led.plan("feb", [row("b", 2)], operation="import", run_id=run)
        assert stats.invalid == 1
        (invalid,) = list(led.rows("feb", states=("invalid",)))
        assert [i.rule for i in invalid.issues] == ["invoice_already_imported"]
        assert "MIG-a" in invalid.issues[0].message
        assert "'jan'" in invalid.issues[0].message
        allowed = led.plan("feb", [row("c", 3)], operation="import", run_id=run,
                           unique_invoice=False)  # fmt: skip
        assert allowed.new == 1
