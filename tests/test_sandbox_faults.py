"""Fault injection, latency, restarts and the --state file, over real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer

IMPORT = "/orders/import_order"
KEY = "chargebee-idempotency-key"


def _client(sb) -> httpx.Client:
    return httpx.Client(base_url=sb.base_url, auth=(sb.api_key, ""), timeout=10)


def test_before_commit_fault_is_503_and_stores_nothing(make_sandbox, valid_order):
    """before_commit: 503 internal_temporary_error and no order, no key remembered."""
    sb = make_sandbox(fault_rate=1.0, faults=("before_commit",))
    with _client(sb) as client:
        response = client.post(IMPORT, data=valid_order(), headers={KEY: "f1"})
        assert response.status_code == 503
        body = response.json()
        assert (body["api_error_code"], body["type"]) == (
            "internal_temporary_error",
            "operation_failed",
        )
        sb.reconfigure(fault_rate=0)
        retried = client.post(IMPORT, data=valid_order(id="ORD-1"), headers={KEY: "f1"})
        assert retried.status_code == 200
        assert "chargebee-idempotency-replayed" not in retried.headers
    counts = sb.state()["counts"]
    assert (counts["fault_before_commit"], counts["imports_created"], counts["status_5xx"]) == (
        1,
        1,
        1,
    )


def test_after_commit_fault_is_500_but_order_is_stored(make_sandbox, valid_order):
    """after_commit: the order is stored, the answer is 500 internal_error; a retry with the
    same key replays the 200, a retry without it is duplicate_entry."""
    sb = make_sandbox(fault_rate=1.0, faults=("after_commit",))
    params = valid_order()
    with _client(sb) as client:
        response = client.post(IMPORT, data=params, headers={KEY: "f2"})
        assert (response.status_code, response.json()["api_error_code"]) == (500, "internal_error")
        sb.reconfigure(fault_rate=0)
        assert client.get(f"/orders/{params['id']}").status_code == 200
        replay = client.post(IMPORT, data=params, headers={KEY: "f2"})
        assert replay.status_code == 200
        assert replay.headers["chargebee-idempotency-replayed"] == "true"
        fresh = client.post(IMPORT, data=params)
        assert fresh.json()["api_error_code"] == "duplicate_entry"


def test_drop_after_commit_breaks_the_connection_after_storing(make_sandbox, valid_order):
    """drop_after_commit: the order is stored, then the connection dies mid-answer."""
    sb = make_sandbox(fault_rate=1.0, faults=("drop_after_commit",))
    params = valid_order()
    with _client(sb) as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.post(IMPORT, data=params)
        sb.reconfigure(fault_rate=0)
        assert client.get(f"/orders/{params['id']}").status_code == 200
    state = sb.state()
    assert state["counts"]["fault_drop_after_commit"] == 1
    assert state["requests"][0]["status"] is None


def test_faults_are_seeded_and_reproducible(make_sandbox, valid_order):
    """The same fault_seed gives the same sequence of outcomes; roughly fault_rate are faulted."""

    def outcomes(seed: int) -> list[int]:
        sb = make_sandbox(fault_rate=0.5, faults=("before_commit", "after_commit"), fault_seed=seed)
        with _client(sb) as client:
            return [client.post(IMPORT, data=valid_order()).status_code for _ in range(40)]

    first, second, other = outcomes(7), outcomes(7), outcomes(8)
    assert first == second
    assert first != other
    assert set(first) == {200, 500, 503}
    assert 8 <= sum(status != 200 for status in first) <= 32


def test_reads_are_not_faulted_unless_asked(make_sandbox):
    """With fault_on_reads off, GETs never fault even at fault_rate 1; on, they do."""
    sb = make_sandbox(fault_rate=1.0, faults=("before_commit",))
    with _client(sb) as client:
        assert client.get("/orders").status_code == 200
        sb.reconfigure(fault_on_reads=True)
        assert client.get("/orders").status_code == 503


def test_latency_is_added(make_sandbox):
    """latency_ms delays every API answer by at least that much (a lower bound only)."""
    sb = make_sandbox(latency_ms=150)
    with _client(sb) as client:
        started = time.perf_counter()
        client.get("/orders")
        assert time.perf_counter() - started >= 0.15


def test_restart_keeps_store_and_refuses_connections_while_down(sandbox, valid_order):
    """restart(downtime_s): same port, connections refused meanwhile, orders kept."""
    port = sandbox.port
    with _client(sandbox) as client:
        client.post(IMPORT, data=valid_order())
    refused: list[bool] = []

    def probe() -> None:
        time.sleep(0.15)
        try:
            httpx.get(f"{sandbox.root_url}/__sandbox/state", timeout=1)
            refused.append(False)
        except httpx.ConnectError:
            refused.append(True)

    thread = threading.Thread(target=probe)
    thread.start()
    sandbox.restart(downtime_s=0.5)
    thread.join(timeout=5)
    assert refused == [True]
    assert sandbox.port == port
    with _client(sandbox) as client:
        assert client.get("/orders/ORD-1").status_code == 200


def test_state_file_survives_a_clean_restart(tmp_path, valid_order):
    """--state: orders, idempotency keys and counters come back in a new process-like server."""
    state = str(tmp_path / "sandbox.state")
    config = SandboxConfig(rate_limit_per_minute=None, concurrency_limit=None, state_file=state)
    params = valid_order()
    with SandboxServer(config) as sb, _client(sb) as client:
        first = client.post(IMPORT, data=params, headers={KEY: "p1"})
        client.post(f"/orders/{params['id']}", data={"status": "returned"})
        client.post(IMPORT, data=valid_order())
        client.post("/orders/ORD-2/delete")
    with SandboxServer(config) as sb, _client(sb) as client:
        restored = sb.state()
        assert [o["id"] for o in restored["orders"]] == ["ORD-1", "ORD-2"]
        assert restored["orders"][0]["status"] == "returned"
        assert restored["orders"][1]["deleted"] is True
        assert restored["counts"]["imports_created"] == 2
        replay = client.post(IMPORT, data=params, headers={KEY: "p1"})
        assert replay.headers["chargebee-idempotency-replayed"] == "true"
        assert replay.content == first.content
        assert client.post(IMPORT, data=valid_order(id=None)).json()["order"]["id"] == "1"


def test_journal_replay_matches_live_order(tmp_path, valid_order):
    """Replaying the journal (no clean stop) rebuilds the same list order, re-imports included."""
    state = str(tmp_path / "sandbox.state")
    config = SandboxConfig(rate_limit_per_minute=None, concurrency_limit=None, state_file=state)
    first = SandboxServer(config).start()
    with _client(first) as client:
        client.post(IMPORT, data=valid_order(id="A"))
        client.post(IMPORT, data=valid_order(id="B"))
        client.post("/orders/A/delete")
        client.post(IMPORT, data=valid_order(id="A"))  # a new order reusing a deleted id
        live = [item["order"]["id"] for item in client.get("/orders").json()["list"]]
    first.stop(close_store=False)  # like a crash: the journal is not compacted
    with SandboxServer(config) as second, _client(second) as client:
        replayed = [item["order"]["id"] for item in client.get("/orders").json()["list"]]
    first.store.journal.close()
    assert live == replayed == ["B", "A"]


def test_state_file_ignores_a_torn_last_line(tmp_path, valid_order):
    """A journal line cut short by a crash is ignored; everything before it loads."""
    state = tmp_path / "sandbox.state"
    config = SandboxConfig(
        rate_limit_per_minute=None, concurrency_limit=None, state_file=str(state)
    )
    with SandboxServer(config) as sb, _client(sb) as client:
        client.post(IMPORT, data=valid_order())
    with state.open("a", encoding="utf-8") as handle:
        handle.write('{"op":"order","order":{"id":"half')
    with SandboxServer(config) as sb:
        assert [o["id"] for o in sb.state()["orders"]] == ["ORD-1"]


def _start_subprocess(state: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "--port",
            "0",
            "--rate-limit",
            "0",
            "--state",
            str(state),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("Sandbox listening on "), line
    return process, line.split()[3]


def _wait_ready(base_url: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(base_url.replace("/api/v2", "/__sandbox/config"), timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("sandbox subprocess never answered")


def test_kill_9_never_loses_an_order_answered_200(tmp_path, valid_order):
    """Every order answered 200 before a SIGKILL is there after a restart from the state file."""
    state = tmp_path / "sandbox.state"
    process, base_url = _start_subprocess(state)
    answered: list[str] = []
    try:
        _wait_ready(base_url)
        with httpx.Client(base_url=base_url, auth=("test_sandbox_key", "")) as client:
            for _ in range(60):
                response = client.post(IMPORT, data=valid_order())
                assert response.status_code == 200
                answered.append(response.json()["order"]["id"])
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    process, base_url = _start_subprocess(state)
    try:
        _wait_ready(base_url)
        with httpx.Client(base_url=base_url, auth=("test_sandbox_key", "")) as client:
            restored = client.get("/orders", params={"limit": 100}).json()["list"]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    assert [item["order"]["id"] for item in restored] == answered
