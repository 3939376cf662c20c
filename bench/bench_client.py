"""Client CPU per request: the full send path (encode + ChargebeeClient + RateLimiter + retry)
against a plain httpx loop, both posting import_order to a local sandbox subprocess.

CPU is this process's CPU time (``time.process_time``) divided by requests; the sandbox runs in
its own process, so its work is not counted. Both sides run in one invocation, side by side.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx

from bench.common import figure, sandbox_process
from pipeline.api.client import ChargebeeClient
from pipeline.api.encode import to_form
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import RetryPolicy, send_with_retries
from pipeline.config import load_settings

CONCURRENCY = 16
TIME_LIMIT_S = 180.0
GOAL_CPU_MS = 1.0
BASE_TS = 1_672_531_200


def order_params(run: str, i: int) -> dict[str, Any]:
    """A realistic import_order payload (two addresses, eleven fields)."""
    ts = BASE_TS + i * 60
    return {
        "id": f"bc-{run}-{i}",
        "invoice_id": f"INV-{run}-{i}",
        "customer_id": f"CUST-{i % 97}",
        "status": "delivered",
        "created_at": ts,
        "order_date": ts,
        "shipping_date": ts + 86_400,
        "shipping_address": {
            "first_name": "Zoë",
            "city": "Kraków",
            "country": "PL",
            "zip": "30-001",
        },
        "billing_address": {"first_name": "Zoë", "city": "Kraków", "country": "PL"},
        "note": "migrated by order-import bench",
    }


async def _pool(n: int, one: Callable[[int], Awaitable[None]]) -> None:
    """Run ``one(i)`` for i < n on CONCURRENCY workers, bounded by TIME_LIMIT_S."""
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await one(i)

    with anyio.fail_after(TIME_LIMIT_S):
        async with anyio.create_task_group() as tg:
            for _ in range(CONCURRENCY):
                tg.start_soon(worker)


def _measure(fn: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    """(process CPU seconds, wall seconds) spent running ``fn``."""
    cpu, wall = time.process_time(), time.perf_counter()
    anyio.run(fn)
    return time.process_time() - cpu, time.perf_counter() - wall


def plain_httpx(base_url: str, key: str, run: str, n: int) -> tuple[float, float]:
    """Baseline: one pooled httpx.AsyncClient posting pre-encoded bodies, no limiter/retry."""
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    bodies = [urlencode(to_form(order_params(run, i))).encode() for i in range(n)]
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)

    async def main() -> None:
        async with httpx.AsyncClient(base_url=base_url + "/", limits=limits) as http:

            async def one(i: int) -> None:
                response = await http.post(
                    "orders/import_order",
                    content=bodies[i],
                    headers={
                        "Authorization": auth,
                        "Content-Type": "application/x-www-form-urlencoded",
                        "chargebee-idempotency-key": f"k-{run}-{i}",
                    },
                )
                response.raise_for_status()

            await _pool(n, one)

    return _measure(main)


def full_stack(base_url: str, key: str, run: str, n: int) -> tuple[float, float]:
    """Ours: encode + ChargebeeClient + RateLimiter slot + send_with_retries per request."""
    settings = load_settings(
        {"concurrency": CONCURRENCY},
        environ={"CHARGEBEE_API_KEY": key, "CHARGEBEE_BASE_URL": base_url},
    )
    params = [order_params(run, i) for i in range(n)]

    async def main() -> None:
        limiter = RateLimiter(1e9, burst=10_000, concurrency=CONCURRENCY)
        policy = RetryPolicy.from_settings(settings)
        async with ChargebeeClient(settings) as client:

            async def one(i: int) -> None:
                await send_with_retries(
                    lambda: client.import_order(params[i], idempotency_key=f"k-{run}-{i}"),
                    limiter=limiter,
                    policy=policy,
                    on_attempt=lambda info: None,
                )

            await _pool(n, one)

    return _measure(main)


def encode_only(n: int) -> float:
    """CPU microseconds per row for ``to_form`` + urlencode alone."""
    params = [order_params("enc", i) for i in range(n)]
    cpu = time.process_time()
    for p in params:
        urlencode(to_form(p))
    return (time.process_time() - cpu) / n * 1e6


def run(quick: bool = False) -> list[dict[str, object]]:
    """Measure both paths side by side on one sandbox; return the bench rows."""
    n = 300 if quick else 2000
    tag = uuid.uuid4().hex[:8]
    with sandbox_process() as box:
        box.configure(rate_limit_per_minute=None, concurrency_limit=None, latency_ms=0)
        # Warm-up (imports, first connections) outside the measurement.
        plain_httpx(box.base_url, box.api_key, f"{tag}w", 20)
        base_cpu, base_wall = plain_httpx(box.base_url, box.api_key, f"{tag}b", n)
        ours_cpu, ours_wall = full_stack(box.base_url, box.api_key, f"{tag}o", n)
        state = box.state()
    stored = sum(1 for o in state.get("orders", []) if f"-{tag}o-" in str(o.get("id", "")))
    ours_ms = ours_cpu / n * 1000.0
    base_ms = base_cpu / n * 1000.0
    rows = [
        figure(
            "client CPU per request (encode+client+limiter+retry)",
            ours_ms,
            "ms",
            goal=f"<= {GOAL_CPU_MS:g} ms",
            met=ours_ms <= GOAL_CPU_MS,
            note=f"{n} import_order POSTs, {CONCURRENCY} in flight, sandbox in a subprocess",
        ),
        figure("plain httpx CPU per request (same run)", base_ms, "ms", note="pre-encoded bodies"),
        figure("our CPU / plain httpx CPU", ours_ms / base_ms if base_ms else None, "x"),
        figure("our requests/s (no rate limit)", n / ours_wall, "req/s"),
        figure("plain httpx requests/s", n / base_wall, "req/s"),
        figure("to_form + urlencode per row", encode_only(n), "µs"),
        figure("orders stored by our run", stored, "orders", goal=f"== {n}", met=stored == n),
    ]
    for row in rows:
        row["benchmark"] = "client"
        row["metric"] = row["name"]
    return rows


if __name__ == "__main__":
    for row in run(quick=False):
        print(f"{row['metric']:<55} {row['value']!s:>12} {row['unit']}  {row['note']}")
