"""status/report on big ledgers: cached per-run figures are exact, never stale, and an old
ledger prints what the old code printed.

``tests/data/ledger_v6.sqlite`` and ``tests/data/ledger_v6_expected/`` were written by the code
of schema v6 (``tests/status_history.py``): a batch with invalid rows, warnings, API failures,
retryables, hostile cells, four runs of which two were killed (no end, rows in flight).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from pipeline.ledger.ledger import Ledger
from pipeline.models import Attempt
from pipeline.report import attempts
from pipeline.report.data import summarize
from tests import status_history
from tests.support import cli

DATA = Path(__file__).resolve().parent / "data"
V6 = DATA / "ledger_v6.sqlite"
EXPECTED = DATA / "ledger_v6_expected"
TIMEOUT_S = 300


def _cli(folder: Path, *args: str) -> str:
    done = subprocess.run(
        cli(*args, "--batch", status_history.BATCH, "--ledger", "ledger.sqlite"),
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _cached_runs(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT run_id FROM run_figures ORDER BY run_id")]


def test_v6_ledger_upgrades_and_prints_what_the_old_code_printed(tmp_path: Path) -> None:
    """A v6 ledger (written by the old code) opens, is upgraded, and status (text, JSON) and
    report print exactly what the old code printed from it: before the cache exists, and again
    when the figures come from it."""
    shutil.copy(V6, tmp_path / "ledger.sqlite")
    want_json = json.loads((EXPECTED / "status.json").read_text("utf-8"))
    for turn in range(2):
        assert _cli(tmp_path, "status") == (EXPECTED / "status.txt").read_text("utf-8"), turn
        assert json.loads(_cli(tmp_path, "status", "--json")) == want_json, turn
        # runs 1-3 are over (finished, or killed and followed by a later run); run 4 was
        # killed and is the last: it is read again each time, never cached.
        assert _cached_runs(tmp_path / "ledger.sqlite") == [1, 2, 3]
    with sqlite3.connect(tmp_path / "ledger.sqlite") as conn:
        (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert int(version) >= 7
    _cli(tmp_path, "report", "--out", "report")
    report = tmp_path / "report"
    for name in ("failures.csv", "validation.csv", "summary.md"):
        assert (report / name).read_bytes() == (EXPECTED / name).read_bytes(), name
    want_summary = json.loads((EXPECTED / "summary.json").read_text("utf-8"))
    assert status_history.comparable_summary(report) == want_summary
    want_cells = json.loads((EXPECTED / "failures.xlsx.json").read_text("utf-8"))
    assert status_history.xlsx_cells(report / "failures.xlsx") == want_cells


def _history(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.sqlite"
    status_history.build(path)
    return path


@pytest.mark.parametrize("vectorise", [False, True])
def test_figures_from_the_cache_equal_the_figures_from_the_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vectorise: bool
) -> None:
    """summarize from cached runs equals summarize from the attempts log, in plain Python and
    with numpy (the path of big runs)."""
    if vectorise:
        monkeypatch.setattr(attempts, "VECTORISE_FROM", 1)
    path = _history(tmp_path)
    with Ledger(path) as led:
        fresh = summarize(led, status_history.BATCH).to_dict()
    assert _cached_runs(path) == [1, 2, 3]
    with Ledger(path) as led:
        cached = summarize(led, status_history.BATCH).to_dict()
    assert cached == fresh
    monkeypatch.setattr(attempts, "VECTORISE_FROM", 10**9 if vectorise else 1)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM run_figures")
    with Ledger(path) as led:
        other_path = summarize(led, status_history.BATCH).to_dict()
    assert other_path == fresh


def test_a_run_that_logs_more_attempts_is_never_read_from_a_stale_cache(tmp_path: Path) -> None:
    """A cached run that gets another attempt (a later write, or a run resumed under the same
    id) has a new key: its figures count the new attempt."""
    path = _history(tmp_path)
    with Ledger(path) as led:
        before = summarize(led, status_history.BATCH)
        assert _cached_runs(path) == [1, 2, 3]
        late = max(r.started_at for r in led.attempts(status_history.BATCH)) + 1.0
        led.log_attempt(
            Attempt(status_history.BATCH, "H-0001", 1, late, 99_999.0, 429, None, "send", "x")
        )
        led.flush_attempts()
        after = summarize(led, status_history.BATCH)
    assert after.requests == before.requests + 1
    assert after.throttled == before.throttled + 1
    assert after.latency_ms["max"] == 99_999.0
    run1 = {r["id"]: r for r in after.runs}[1]["rate"]
    assert run1["requests"] == {r["id"]: r for r in before.runs}[1]["rate"]["requests"] + 1


def test_the_last_killed_run_is_read_live(tmp_path: Path) -> None:
    """The last run without an end may still be going: its attempts are read each time, so one
    logged after a status is in the next status."""
    path = _history(tmp_path)
    with Ledger(path) as led:
        before = summarize(led, status_history.BATCH, full=False)
        led.log_attempt(
            Attempt(status_history.BATCH, "H-0001", 4, 1.0, 1.0, 200, None, "send", "ok")
        )
        led.flush_attempts()
        after = summarize(led, status_history.BATCH, full=False)
    assert 4 not in _cached_runs(path)
    assert after.requests == before.requests + 1
    assert after.rate.send_seconds > before.rate.send_seconds
