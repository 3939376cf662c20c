"""Control endpoints (/__sandbox/*), the SandboxServer API, the CLI command and the socket setup."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
from click.testing import CliRunner

from pipeline.cli import main
from sandbox.app import create_app
from sandbox.config import SandboxConfig
from sandbox.server import _bind

IMPORT = "/orders/import_order"


def test_state_document_shape(sandbox, sandbox_client, valid_order):
    """GET /__sandbox/state lists orders (deleted too), exact counts, events and the request log."""
    sandbox_client.post(IMPORT, data=valid_order(), headers={"chargebee-idempotency-key": "s1"})
    sandbox_client.post("/orders/ORD-1/delete")
    sandbox_client.get("/orders/nope")
    started = time.time()
    state = httpx.get(f"{sandbox.root_url}/__sandbox/state").json()
    assert state == sandbox.state()
    assert set(state) == {"orders", "counts", "events", "requests"}
    assert [o["deleted"] for o in state["orders"]] == [True]
    counts = state["counts"]
    assert (counts["requests"], counts["status_2xx"], counts["status_4xx"]) == (3, 2, 1)
    assert (counts["imports_created"], counts["orders_deleted"]) == (1, 1)
    first = state["requests"][0]
    assert set(first) == {
        "t",
        "method",
        "path",
        "status",
        "idempotency_key",
        "replayed",
        "business_entity_id",
        "order_id",
        "api_error_code",
    }
    assert (first["method"], first["path"], first["status"]) == ("POST", "/api/v2" + IMPORT, 200)
    assert first["idempotency_key"] == "s1"
    assert (first["order_id"], first["api_error_code"]) == ("ORD-1", None)
    assert [(r["order_id"], r["api_error_code"]) for r in state["requests"][1:]] == [
        ("ORD-1", None),
        ("nope", "resource_not_found"),
    ]
    assert started - 30 < first["t"] <= started
    assert [r["status"] for r in state["requests"]] == [200, 200, 404]
    slim = sandbox.state(orders=False, requests=False, events=False)
    assert (slim["orders"], slim["requests"], slim["events"]) == ([], [], [])
    assert slim["counts"] == counts


def test_request_log_is_bounded_but_counts_exact(make_sandbox):
    """The request log keeps the last request_log_size entries; counters stay exact."""
    sb = make_sandbox(request_log_size=5)
    with httpx.Client(base_url=sb.base_url, auth=(sb.api_key, "")) as client:
        for _ in range(12):
            client.get("/orders")
    state = sb.state()
    assert len(state["requests"]) == 5
    assert state["counts"]["requests"] == 12


def test_reset_forgets_everything(sandbox, sandbox_client, valid_order):
    """POST /__sandbox/reset empties orders, keys, counters, events and the log."""
    sandbox_client.post(IMPORT, data=valid_order(), headers={"chargebee-idempotency-key": "r"})
    assert httpx.post(f"{sandbox.root_url}/__sandbox/reset").json() == {"reset": True}
    state = sandbox.state()
    assert (state["orders"], state["events"], state["requests"]) == ([], [], [])
    assert set(state["counts"].values()) == {0}
    again = sandbox_client.post(
        IMPORT, data=valid_order(id="ORD-1"), headers={"chargebee-idempotency-key": "r"}
    )
    assert "chargebee-idempotency-replayed" not in again.headers


def test_config_endpoint_changes_runtime_knobs(sandbox, sandbox_client):
    """POST /__sandbox/config changes runtime knobs; unknown or static knobs are 400."""
    url = f"{sandbox.root_url}/__sandbox/config"
    answer = httpx.post(url, json={"rate_limit_per_minute": 1, "latency_ms": 5}).json()
    assert answer["config"]["rate_limit_per_minute"] == 1
    assert sandbox_client.get("/orders").status_code == 200
    assert sandbox_client.get("/orders").status_code == 429
    assert httpx.post(url, json={"api_key": "other"}).status_code == 400
    assert httpx.post(url, json={"fault_rate": 2}).status_code == 400
    assert httpx.get(url).json()["config"]["api_key"] == "test_sandbox_key"
    assert (
        sandbox.reconfigure(rate_limit_per_minute=None)["config"]["rate_limit_per_minute"] is None
    )
    assert sandbox_client.get("/orders").status_code == 200


def test_unknown_paths(sandbox, sandbox_client):
    """Unknown API paths are 404 JSON; unknown control paths are 404."""
    assert sandbox_client.get("/customers").status_code == 404
    assert httpx.get(f"{sandbox.root_url}/__sandbox/nothing").status_code == 404
    assert httpx.get(f"{sandbox.root_url}/").status_code == 404


def test_create_app_exposes_store_for_in_process_use(valid_order):
    """create_app(config) is an ASGI app usable through httpx.ASGITransport; app.store is live."""
    app = create_app(SandboxConfig(rate_limit_per_minute=None, concurrency_limit=None))

    async def run() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://sandbox/api/v2", auth=("test_sandbox_key", "")
        ) as client:
            response = await client.post(IMPORT, data=valid_order())
            return response.status_code

    assert anyio.run(run) == 200
    assert list(app.store.orders) == ["ORD-1"]


def test_listening_socket_disables_nagle():
    """The listening socket is TCP with TCP_NODELAY, so asyncio keeps Nagle off per connection."""
    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()


def test_cli_help_lists_knobs():
    """order-import sandbox --help documents the knobs."""
    result = CliRunner().invoke(main, ["sandbox", "--help"])
    assert result.exit_code == 0
    for flag in ("--port", "--rate-limit", "--concurrency-limit", "--fault-rate", "--state"):
        assert flag in result.output


def test_cli_rejects_bad_knobs(tmp_path: Path):
    """A bad knob value or a missing strict-invoices file is a usage error, exit 2."""
    result = CliRunner().invoke(main, ["sandbox", "--fault-rate", "3"])
    assert result.exit_code == 2
    assert "fault_rate" in result.output
    missing = str(tmp_path / "missing.txt")
    assert CliRunner().invoke(main, ["sandbox", "--strict-invoices", missing]).exit_code == 2


def test_cli_serves_and_stops_on_ctrl_c(tmp_path: Path):
    """order-import sandbox prints its base URL, serves with the key, stops cleanly on SIGINT."""
    command = [sys.executable, "-c", "from pipeline.cli import main; main()"]
    process = subprocess.Popen(
        [*command, "sandbox", "--port", "0", "--api-key", "k_cli", "--rate-limit", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Sandbox listening on http://127.0.0.1:")
        assert "(API key: k_cli)" in line
        base_url = line.split()[3]
        assert base_url.endswith("/api/v2")
        deadline = time.monotonic() + 10
        while True:
            try:
                response = httpx.get(f"{base_url}/orders", auth=("k_cli", ""))
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "Sandbox stopped." in out
    assert "Traceback" not in err


def test_echo_headers_switch_pastes_the_authorization_header_and_key_into_errors(make_sandbox):
    """echo_headers_in_errors: every error message carries the request headers and the key
    (the careless server the key-scrubbing proofs need); off by default."""
    sb = make_sandbox()
    with httpx.Client(base_url=sb.base_url, auth=(sb.api_key, ""), timeout=10) as client:
        quiet = client.get("/orders/nope").json()["message"]
        sb.reconfigure(echo_headers_in_errors=True)
        loud = client.get("/orders/nope").json()
        ok = client.get("/orders", params={"limit": "1"})
    assert sb.api_key not in quiet
    assert "authorization" not in quiet
    assert "authorization" in loud["message"]
    assert "Basic " in loud["message"]
    assert sb.api_key in loud["message"]
    assert loud["api_error_code"] == "resource_not_found"
    assert ok.status_code == 200
    assert sb.api_key not in ok.text
