"""One run per ledger file, whatever name reaches it (issue 12).

The lock used to be a sidecar named after the path, so a second run through a symlink or a hard
link proceeded at once (and through a hard link both finished on one file). Now the lock is an
``flock`` on the ledger file itself. The cross-name tests run two real CLI processes against
the sandbox: the first is slowed by the sandbox's latency (1.5 s an answer, so it holds the lock
longer than a loaded machine takes to start the second), the second is started while the first
holds the lock.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import LedgerError
from pipeline.ledger.ledger import Ledger
from pipeline.ledger.lock import held, run_lock
from tests import support
from tests.orders_factory import write_orders

KEY = "lock_test_key"


def start(server: Any, cwd: Path, *args: str) -> subprocess.Popen[str]:
    """The CLI in a subprocess aimed at ``server``, output captured."""
    return subprocess.Popen(
        support.cli(*args),
        cwd=cwd,
        env=support.cli_env(server, KEY),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_until_locked(path: Path, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    """Bounded wait until some process holds the flock on ``path``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        if path.exists():
            fd = os.open(path, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        time.sleep(0.05)
    raise AssertionError("the first run never took the lock")


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_a_second_run_through_another_name_of_the_ledger_is_refused(
    make_sandbox: Any, tmp_path: Path, link: str
) -> None:
    server = make_sandbox(api_key=KEY, latency_ms=1500)
    source = write_orders(tmp_path / "orders.csv", 6)
    ledger = tmp_path / "order-import.sqlite"
    Ledger(ledger).close()  # the file exists, so a hard link can be made to it
    other = tmp_path / "elsewhere" / "other-name.sqlite"
    other.parent.mkdir()
    if link == "symlink":
        other.symlink_to(ledger)
    else:
        os.link(ledger, other)
    common = ("--batch", "b1", "--quiet", "--concurrency", "1", "--rate", "6000")
    first = start(server, tmp_path, "run", str(source), "--ledger", str(ledger), *common)
    try:
        wait_until_locked(ledger, first)
        second = start(server, tmp_path, "run", str(source), "--ledger", str(other), *common)
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 2, out
        assert "another order-import run is using the ledger" in out
        assert "Traceback" not in out
        out, _ = first.communicate(timeout=120)
        assert first.returncode == 0, out
    finally:
        support.kill9(first)
    conn = sqlite3.connect(ledger)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert (
            conn.execute("SELECT count(*) FROM rows WHERE state = 'succeeded'").fetchone()[0] == 6
        )
    finally:
        conn.close()
    assert support.import_posts(support.request_log(server)) == support.expected_ids("T", 6)


def test_run_lock_is_reentrant_on_one_thread_and_refused_on_another(tmp_path: Path) -> None:
    """``update`` holds the lock around its own writes and the run it starts (same thread);
    another thread of the process is refused, through any name."""
    path = tmp_path / "l.sqlite"
    alias = tmp_path / "alias.sqlite"
    alias.symlink_to(path)
    refused: list[str] = []

    def other_thread() -> None:
        try:
            with run_lock(alias):
                pass
        except LedgerError as err:
            refused.append(err.message)

    with run_lock(path):
        with run_lock(alias), Ledger(alias) as led:
            assert led.batches() == []
        assert held(path)
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join(timeout=10)
    assert not held(path)
    assert refused
    assert "another order-import run" in refused[0]
    with run_lock(alias):  # released: free again
        assert held(path)


def test_update_takes_the_lock_before_its_first_write(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another process holds the ledger, ``update`` is refused (exit 2) before it records
    anything, even rows it would record as unchanged without a request."""
    from click.testing import CliRunner

    from pipeline.cli import main

    monkeypatch.chdir(tmp_path)
    server = make_sandbox(api_key=KEY)
    env = {"CHARGEBEE_API_KEY": KEY, "CHARGEBEE_BASE_URL": server.base_url}
    source = write_orders(tmp_path / "orders.csv", 2)
    imported = CliRunner().invoke(
        main, ["run", str(source), "--batch", "b1", "--quiet"], env=env, catch_exceptions=False
    )
    assert imported.exit_code == 0, imported.output
    fixes = tmp_path / "fixes.csv"
    fixes.write_text("id,status\nT-000000,delivered\nT-000001,delivered\n", encoding="utf-8")
    args = ["update", str(fixes), "--batch", "fixes", "--quiet"]
    with open("order-import.sqlite", "rb") as other:  # another process's run, as the lock sees it
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        refused = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    assert refused.exit_code == 2, refused.output
    assert "another order-import run" in refused.output
    with Ledger("order-import.sqlite") as led:
        assert [b.name for b in led.batches()] == ["b1"]
    applied = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    assert applied.exit_code == 0, applied.output
