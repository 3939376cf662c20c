"""Ctrl-C during a 429 pause: the run stops waiting at once, says what it is finishing, and the
rows that were waiting stay pending (they were never sent). Real CLI, real sandbox."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import anyio
import pytest

from pipeline.api.ratelimit import AdmissionHalted, RateLimiter
from tests.orders_factory import write_orders
from tests.support import cli, cli_env, expected_ids, imported_ids, request_log

KEY = "interrupt_test_key"
WINDOW_S = 120.0
"""The sandbox's window: after its 2 requests, every 429 says Retry-After ≈ this long."""


def _wait_for_429(server, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(r["status"] == 429 for r in request_log(server)):
            return
        assert proc.poll() is None, "the run ended before it was throttled"
        time.sleep(0.02)
    raise AssertionError(f"no 429 in {timeout} s")


def test_ctrl_c_during_a_429_pause_stops_waiting_and_leaves_rows_pending(make_sandbox, tmp_path):
    server = make_sandbox(
        api_key=KEY, rate_limit_per_minute=2, concurrency_limit=None, window_s=WINDOW_S
    )
    source = write_orders(tmp_path / "orders.csv", 6, prefix="W")
    ledger = str(tmp_path / "l.sqlite")
    proc = subprocess.Popen(
        cli(
            "run",
            str(source),
            "--batch",
            "w1",
            "--ledger",
            ledger,
            "--log-json",
            "--report-dir",
            str(tmp_path / "reports"),
            "--rate",
            "1000",
            "--concurrency",
            "4",
            # The sandbox's 2 requests must go to imports, so that rows wait for the pause in
            # the workers (pre-flight's look-ups would spend them first).
            "--no-preflight",
        ),
        env=cli_env(server, KEY),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_429(server, proc)
        time.sleep(0.3)  # every worker is now waiting for the pause
        retry_after = WINDOW_S - 5  # what the sandbox asked for, at least
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=retry_after)
        took = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    assert took < retry_after / 2, f"Ctrl-C took {took:.1f} s during a {retry_after:.0f} s pause"
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    stopping = [e for e in events if e["event"] == "stopping"]
    assert len(stopping) == 1, err
    assert stopping[0]["in_flight"] == 0
    assert stopping[0]["waiting"] >= 1
    assert "429 pause" in stopping[0]["message"]
    assert "stay pending" in stopping[0]["message"]
    assert "stay pending" in out  # the end-of-run note repeats it
    assert "run the same command again to resume" in out
    status = subprocess.run(
        cli("status", "--batch", "w1", "--ledger", ledger, "--json"),
        env=cli_env(server, KEY), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    counts = json.loads(status.stdout)["counts"]
    sent = sum(imported_ids(server).values())
    assert sent == 2  # the sandbox's budget
    assert counts["succeeded"] == sent
    assert counts.get("in_flight", 0) == 0
    assert counts.get("retryable", 0) == 0
    assert counts["pending"] == 6 - sent
    assert set(imported_ids(server)) < set(expected_ids("W", 6))


def test_halt_wakes_every_request_waiting_for_a_429_pause_at_once():
    """A 1-hour pause: halt() ends each waiter's wait with AdmissionHalted, none is admitted,
    and later requests are refused without waiting."""

    async def scenario() -> tuple[int, int]:
        limiter = RateLimiter(600, concurrency=4, max_throttle_wait=7200)
        limiter.throttled(3600.0)
        halted = admitted = 0

        async def one() -> None:
            nonlocal halted, admitted
            try:
                async with limiter.slot():
                    admitted += 1
            except AdmissionHalted:
                halted += 1

        with anyio.fail_after(10):  # bounded: a wait that ignores halt() never ends in time
            async with anyio.create_task_group() as group:
                for _ in range(6):
                    group.start_soon(one)
                await anyio.sleep(0.05)
                assert limiter.pause_left_s > 3000
                limiter.halt()
        with pytest.raises(AdmissionHalted):
            async with limiter.slot():
                pass
        return halted, admitted

    assert anyio.run(scenario) == (6, 0)
