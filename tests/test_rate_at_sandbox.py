"""The configured rate, measured at the sandbox: never exceeded in any 60 s window.

Time-scaled (x10) so a 2.5-minute run takes 15 s: the limiter's clock runs ten times faster and
the sandbox enforces its limit over a 6 s window, exactly as ``bench/bench_rate.py`` does (both
drive the send path with ``tests.support.drive``).
"""

from __future__ import annotations

import time

import anyio
import pytest

from tests.support import RateCase, api_requests, drive, max_in_window

pytestmark = pytest.mark.drill
LIMIT = 600


def test_configured_rate_is_never_exceeded_in_any_window_and_nearly_reached(make_sandbox):
    """At 600/min (x10 time), no 60 s window at the sandbox holds more than 600 accepted
    requests, there are no 429s, and the limiter does not starve (most of the budget is used)."""
    case = RateCase(per_minute=LIMIT, scale=10.0, windows=2.5)
    server = make_sandbox(
        rate_limit_per_minute=LIMIT, window_s=case.window_real_s, concurrency_limit=None
    )
    started = time.time()
    sent, errors = anyio.run(drive, server.base_url, server.api_key, case, "RATE")
    log = [r for r in api_requests(server.state(orders=False, events=False)) if r["t"] >= started]
    accepted = [r["t"] for r in log if 200 <= r["status"] < 300]
    assert errors == 0
    assert sent == len(accepted)
    assert [r for r in log if r["status"] == 429] == []
    assert max_in_window(accepted, case.window_real_s) <= LIMIT
    # A limiter that sent nothing would pass the bound above; it must also use its budget.
    assert len(accepted) >= 0.8 * LIMIT * case.windows
