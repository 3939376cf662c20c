"""Rate window, concurrency cap and lock_timeout (FACTS §1): unit tests of the window with an
injected clock, and contract tests over real HTTP with small windows.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from sandbox.limits import RateWindow

IMPORT = "/orders/import_order"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_window_admits_limit_then_refuses_with_honest_retry_after():
    """N requests pass; the next gets Retry-After = time until the oldest leaves the window."""
    clock = FakeClock()
    window = RateWindow(3, 60.0, clock=clock)
    assert [window.admit() for _ in range(2)] == [None, None]
    clock.now += 10
    assert window.admit() is None
    clock.now += 5  # oldest requests are 15 s old: they leave in 45 s
    assert window.admit() == 45
    clock.now += 44.5
    assert window.admit() == 1  # never 0: ceil of what is left
    clock.now += 0.5
    assert window.admit() is None


def test_window_is_rolling_not_fixed():
    """Requests leave the window one by one as they age past it (no fixed-minute reset)."""
    clock = FakeClock()
    window = RateWindow(2, 60.0, clock=clock)
    window.admit()
    clock.now += 30
    window.admit()
    clock.now += 30.1  # the first left, the second is 30.1 s old
    assert window.admit() is None
    assert window.admit() == 30  # the second leaves at t+90: 29.9 s away → 30


def test_rejected_requests_do_not_count_by_default():
    """Refused requests occupy no slot, so waiting Retry-After is always enough."""
    clock = FakeClock()
    window = RateWindow(1, 10.0, clock=clock)
    window.admit()
    for _ in range(50):
        clock.now += 0.1
        window.admit()
    clock.now = 1010.0
    assert window.admit() is None


def test_counting_rejected_requests_prolongs_the_block():
    """With count_rejected, each refused request fills the window again; Retry-After covers it."""
    clock = FakeClock()
    window = RateWindow(1, 10.0, count_rejected=True, clock=clock)
    window.admit()
    clock.now += 5
    assert window.admit() == 10  # refused at t+5, which now occupies the window until t+15
    clock.now += 5
    assert window.admit() == 10  # hammering again at t+10 pushes the block to t+20
    clock.now += 9.9
    assert window.admit() == 10  # even one request too early restarts the block
    clock.now += 10.0  # honouring that Retry-After with nothing sent in between
    assert window.admit() is None


def test_window_off():
    """limit=None admits everything."""
    window = RateWindow(None)
    assert all(window.admit() is None for _ in range(1000))


def test_http_429_over_the_window_with_retry_after(make_sandbox, valid_order):
    """Over the per-window limit: 429 operation_failed/api_request_limit_exceeded, Retry-After in
    whole seconds; after waiting it, requests pass again."""
    sb = make_sandbox(rate_limit_per_minute=3, window_s=1.5)
    with httpx.Client(base_url=sb.base_url, auth=(sb.api_key, "")) as client:
        statuses = [client.post(IMPORT, data=valid_order()).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        refused = client.get("/orders")
        assert refused.status_code == 429
        body = refused.json()
        assert (body["type"], body["api_error_code"]) == (
            "operation_failed",
            "api_request_limit_exceeded",
        )
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= 2
        time.sleep(retry_after + 0.05)
        assert client.get("/orders").status_code == 200
    counts = sb.state()["counts"]
    assert (counts["status_429"], counts["rate_limited"]) == (1, 1)


def test_control_endpoints_are_not_rate_limited(make_sandbox):
    """/__sandbox/* and downloads do not count toward the API window."""
    sb = make_sandbox(rate_limit_per_minute=1)
    for _ in range(3):
        sb.state()
    with httpx.Client(base_url=sb.base_url, auth=(sb.api_key, "")) as client:
        assert client.get("/orders").status_code == 200


def _concurrent(sb, requests: list[tuple[str, str, dict[str, Any]]]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(requests))

    def send(spec: tuple[str, str, dict[str, Any]]) -> httpx.Response:
        method, path, data = spec
        with httpx.Client(base_url=sb.base_url, auth=(sb.api_key, ""), timeout=10) as client:
            barrier.wait(timeout=5)
            return client.request(method, path, data=data or None)

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(send, requests))


def test_concurrency_limit(make_sandbox):
    """Beyond concurrency_limit requests in flight, the extra ones get 429 with Retry-After."""
    sb = make_sandbox(concurrency_limit=2, latency_ms=400)
    responses = _concurrent(sb, [("GET", "/orders", {})] * 5)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429, 429]
    refused = [r for r in responses if r.status_code == 429]
    assert all(r.json()["api_error_code"] == "api_request_limit_exceeded" for r in refused)
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    assert sb.state()["counts"]["concurrency_limited"] == 3


def test_concurrent_writes_to_one_order_lock_timeout(make_sandbox, valid_order):
    """Two concurrent updates of one order: one passes, one is 429 lock_timeout."""
    sb = make_sandbox(latency_ms=400)
    with httpx.Client(base_url=sb.base_url, auth=(sb.api_key, "")) as client:
        client.post(IMPORT, data=valid_order())
    update = ("POST", "/orders/ORD-1", {"note": "x"})
    responses = _concurrent(sb, [update, update])
    assert sorted(r.status_code for r in responses) == [200, 429]
    refused = next(r for r in responses if r.status_code == 429)
    assert (refused.json()["type"], refused.json()["api_error_code"]) == (
        "operation_failed",
        "lock_timeout",
    )


def test_concurrent_imports_of_one_id_lock_timeout(make_sandbox, valid_order):
    """Two concurrent imports of the same id: one stored, the other 429 lock_timeout."""
    sb = make_sandbox(latency_ms=400)
    params = valid_order()
    responses = _concurrent(sb, [("POST", IMPORT, params), ("POST", IMPORT, params)])
    assert sorted(r.status_code for r in responses) == [200, 429]
    assert len(sb.state()["orders"]) == 1


def test_concurrent_writes_to_different_orders_pass(make_sandbox, valid_order):
    """Writes to different orders do not lock each other; lock_timeout can be switched off."""
    sb = make_sandbox(latency_ms=300)
    responses = _concurrent(sb, [("POST", IMPORT, valid_order()) for _ in range(4)])
    assert [r.status_code for r in responses] == [200] * 4
    off = make_sandbox(latency_ms=300, lock_timeout_enabled=False)
    update = ("POST", "/orders/ORD-1", {"note": "x"})
    with httpx.Client(base_url=off.base_url, auth=(off.api_key, "")) as client:
        client.post(IMPORT, data=valid_order(id="ORD-1"))
    assert [r.status_code for r in _concurrent(off, [update, update])] == [200, 200]
