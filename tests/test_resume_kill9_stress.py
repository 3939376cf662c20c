"""Drill: resumes killed with kill -9 at several points — while they look up the rows an earlier
kill left in doubt, while they start sending, mid-send — then one resume to the end.

Every run that ends on its own (one the kill came too late for) exits 0 or 1, never 2: a resume
never stops over a row it already dealt with (the symptom: ``mark in flight`` refused a row
already ``succeeded``). Counted on the sandbox's request log: every order POSTed exactly once,
every row in doubt looked up before any resend, and the ledger holds every row ``succeeded``.

The real CLI in a subprocess, the real sandbox over HTTP (20 ms latency, 8 workers). Bounded:
5 runs killed, each waited for at most 60 s; the last resume at most 240 s.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.orders_factory import write_orders
from tests.support import (
    assert_clean_exit,
    assert_each_row_posted_once,
    assert_resumes_looked_up_first,
    cli,
    cli_env,
    expected_ids,
    imported_ids,
    kill9,
    request_log,
    wait_for_requests,
)

KEY = "resume_stress_key_93d1"
pytestmark = [pytest.mark.drill, pytest.mark.timeout(600)]
"""600 s: six CLI starts; on a machine loaded ~7x one start alone took 20 s."""
ROWS = 400
KILL_AFTER = (40, 1, 25, 2, 60)
"""Requests of each run the sandbox sees before the kill: 1-3 lands while the run looks up
the rows the previous kill left in doubt (its first requests), the others while it sends."""
RUN_TIMEOUT_S = 240


def run_cmd(source: Path, work: Path) -> list[str]:
    return cli(
        "run", str(source), "--batch", "rstress", "--quiet", "--concurrency", "8",
        "--ledger", str(work / "ledger.sqlite"), "--report-dir", str(work / "reports"),
        "--rate", "600000",
    )  # fmt: skip


def in_doubt(path: Path) -> int:
    """Rows committed ``in_flight`` (read after the process died)."""
    conn = sqlite3.connect(path)
    try:
        found = conn.execute("SELECT count(*) FROM rows WHERE state = 'in_flight'").fetchone()
        return int(found[0])
    finally:
        conn.close()


def states(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {str(s) for (s,) in conn.execute("SELECT DISTINCT state FROM rows")}
    finally:
        conn.close()


def test_resumes_killed_at_several_points_never_stop_and_land_every_row_once(
    make_sandbox, tmp_path
):
    server = make_sandbox(api_key=KEY, latency_ms=20)
    source = write_orders(tmp_path / "orders.csv", ROWS, prefix="RS")
    ledger = tmp_path / "ledger.sqlite"
    boundaries: list[int] = []
    killed = 0
    doubt_before_resume = 0
    ended: list[int] = []
    for count in KILL_AFTER:
        boundaries.append(len(request_log(server)))
        if ledger.exists():
            doubt_before_resume = max(doubt_before_resume, in_doubt(ledger))
        proc = subprocess.Popen(
            run_cmd(source, tmp_path),
            env=cli_env(server, KEY),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_requests(server, boundaries[-1] + count, proc)
        if kill9(proc):
            killed += 1
        else:
            ended.append(proc.returncode)
            assert proc.returncode in (0, 1), f"a run stopped with {proc.returncode}"
    assert killed >= len(KILL_AFTER) - 1, f"only {killed} runs were still going when killed"
    assert doubt_before_resume > 0, "no kill left a row in doubt for the next run"
    assert 0 < sum(imported_ids(server).values()) < ROWS, "the kills should leave it part-way"
    boundaries.append(len(request_log(server)))
    final = subprocess.run(
        run_cmd(source, tmp_path),
        env=cli_env(server, KEY),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert_clean_exit(final)
    assert "second time in this run" not in final.stdout + final.stderr
    expected = expected_ids("RS", ROWS)
    assert imported_ids(server) == expected
    log = request_log(server)
    assert_each_row_posted_once(log, expected)
    assert_resumes_looked_up_first(log, boundaries[1:])
    assert states(ledger) == {"succeeded"}
