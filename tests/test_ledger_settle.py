"""Unchanged rows decided inside SQLite (``plan._settle``) are decided exactly as in Python.

A resume counts rows whose fingerprint and stored state alone decide them in one SQL statement
per chunk; every other row takes the Python path. These tests plan the same row against the
same stored row twice, once as shipped and once with ``_settle`` switched off (the Python path
for every row, as before), and require the same counts and the same stored rows, for every
stored state, every kind of incoming row and an equal, different or missing fingerprint.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pipeline.ledger import plan as plan_module
from pipeline.ledger.ledger import Ledger
from pipeline.ledger.records import PlanStats
from pipeline.models import Issue, SourceRow
from tests.test_ledger import BATCH, open_import, plan
from tests.test_ledger_fingerprint import digests_counted, row

STATES = (
    "pending",
    "invalid",
    "skipped",
    "in_flight",
    "succeeded",
    "failed",
    "retryable",
    "conflict",
    "blocked",
)
ERROR = Issue(3, "currency", "currency_code", "XX", "enum", "unknown currency XX")


def incoming(kind: str, content: str) -> SourceRow:
    """Row k1 as read again: ``kind`` valid/invalid/skipped, ``content`` same/changed/unprinted."""
    made = row(1, city="Kraków" if content != "changed" else "Gdańsk")
    if content == "unprinted":
        made = replace(made, fingerprint=None)
    if kind == "invalid":
        made = replace(made, issues=(ERROR,))
    elif kind == "skipped":
        made = replace(made, skip_reason="rule 1")
    return made


def _stored(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT row_key, state, params, content_hash, issues, fingerprint, raw, message "
            "FROM rows ORDER BY rowid"
        ).fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A ledger per stored state: row k1 (and k2, a new-row neighbour) planned, then k1 set
    to the state."""
    made: dict[str, Path] = {}
    for state in STATES:
        path = tmp_path_factory.mktemp(state) / "l.sqlite"
        with Ledger(path) as led:
            open_import(led)
            plan(led, [row(1), row(2)])
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("UPDATE rows SET state = ? WHERE row_key = 'k1'", (state,))
        conn.close()
        made[state] = path
    return made


def _plan_copy(source: Path, target: Path, rows: list[SourceRow]) -> tuple[PlanStats, list[Any]]:
    shutil.copy(source, target)
    with Ledger(target) as led:
        stats = plan(led, rows)
    return stats, _stored(target)


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("kind", ["valid", "invalid", "skipped"])
@pytest.mark.parametrize("content", ["same", "changed", "unprinted"])
def test_sql_and_python_decide_alike(
    planned: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    state: str,
    kind: str,
    content: str,
) -> None:
    rows = [incoming(kind, content), row(3)]  # k3: a new row in the same chunk
    fast = _plan_copy(planned[state], tmp_path / "fast.sqlite", rows)
    monkeypatch.setattr(plan_module, "_settle", lambda *args: None)
    slow = _plan_copy(planned[state], tmp_path / "slow.sqlite", rows)
    assert fast == slow


def test_the_fast_path_takes_the_rows_it_may(
    planned: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unchanged rows whose state decides them never reach the Python loop's JSON (so the
    comparison above compares two paths, not one path twice)."""
    calls = digests_counted(monkeypatch)
    stats, _ = _plan_copy(planned["pending"], tmp_path / "l.sqlite", [row(1), row(2), row(3)])
    assert (stats.still_pending, stats.new) == (2, 1)
    assert calls == ["k3"]


def test_an_invoice_taken_since_is_not_decided_unchanged(tmp_path: Path) -> None:
    """A pending row, unchanged, whose invoice another batch has since imported becomes
    invalid (``invoice_already_imported``), though its fingerprint and state would decide it."""
    with_invoice = replace(row(1), params={**row(1).params, "invoice_id": "INV-1"}, fingerprint=123)
    other = replace(with_invoice, row_key="x1", fingerprint=456)
    with Ledger(tmp_path / "l.sqlite") as led:
        for batch in (BATCH, "other"):
            open_import(led, batch)
        plan(led, [with_invoice])
        run_id = led.start_run("other", command="run", settings_summary={})
        led.plan("other", [other], operation="import", run_id=run_id)
        led.mark_in_flight("other", "x1", run_id=run_id, idempotency_key="i")
        stats = plan(led, [with_invoice])
    assert (stats.still_pending, stats.invalid) == (0, 1)
    assert [(r[0], r[1]) for r in _stored(tmp_path / "l.sqlite")] == [
        ("k1", "invalid"),
        ("x1", "in_flight"),
    ]
