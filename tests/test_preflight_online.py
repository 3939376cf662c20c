"""``validate --online`` asks its look-ups as a run does: several in flight at once, within the
configured ``concurrency`` (it used to hold them to one at a time).

The real CLI against the real sandbox with an added latency; the sandbox's request log tells
when each look-up arrived.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

from sandbox.server import SandboxServer
from tests import support
from tests.orders_factory import write_orders

LATENCY_S = 0.5
"""Each API request is answered after this long: look-ups asked one at a time arrive at least
this far apart."""


def _look_up_arrivals(server: SandboxServer) -> list[float]:
    return sorted(e["t"] for e in support.request_log(server) if e["method"] == "GET")


def _validate_online(server: SandboxServer, work: Path, concurrency: int) -> list[float]:
    (work / "order-import.toml").write_text(f"concurrency = {concurrency}\n", encoding="utf-8")
    result = support.run_cli(server, server.api_key, "validate", "orders.csv", "--online", cwd=work)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return _look_up_arrivals(server)


def test_online_look_ups_run_at_once_within_the_configured_concurrency(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    """120 rows (two parts of 100 and less, three kinds each): with the default concurrency several
    look-ups arrive within a fraction of the latency of each other; with ``concurrency = 1``
    every look-up waits for the one before (the setting still bounds them)."""
    write_orders(tmp_path / "orders.csv", 120, prefix="ON")
    parallel = _validate_online(make_sandbox(latency_ms=LATENCY_S * 1000), tmp_path, 32)
    serial = _validate_online(make_sandbox(latency_ms=LATENCY_S * 1000), tmp_path, 1)
    assert len(parallel) == len(serial) >= 4

    def gaps(times: list[float]) -> list[float]:
        return [b - a for a, b in pairwise(times)]

    assert min(gaps(serial)) >= LATENCY_S * 0.95, gaps(serial)
    assert sum(g < LATENCY_S / 2 for g in gaps(parallel)) >= 2, gaps(parallel)
