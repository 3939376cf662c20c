"""httpx's default transport vs LeanTransport: client CPU per request and requests/s.

Both post the same pre-encoded import_order bodies through one ``httpx.AsyncClient`` to one
sandbox subprocess, in alternating rounds, at 16 and 32 requests in flight. CPU is this
process's ``time.process_time``; the sandbox's CPU is not counted.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlencode

import anyio
import httpx

from bench.bench_client import order_params
from bench.common import Figure, figure, sandbox_process
from pipeline.api.encode import to_form
from pipeline.api.transport import LeanTransport

TIME_LIMIT_S = 120.0
IN_FLIGHT = (16, 32)
Transport = Callable[[int], httpx.AsyncBaseTransport | None]
KINDS: dict[str, Transport] = {
    "httpx default": lambda size: None,
    "LeanTransport": lambda size: LeanTransport(max_connections=size),
}


def post_all(
    base_url: str, key: str, run: str, n: int, size: int, kind: str
) -> tuple[float, float]:
    """POST ``n`` import_orders with ``size`` in flight; (CPU seconds, wall seconds)."""
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    bodies = [urlencode(to_form(order_params(run, i))).encode() for i in range(n)]
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)

    async def main() -> None:
        transport = KINDS[kind](size)
        async with httpx.AsyncClient(
            base_url=base_url + "/", limits=limits, transport=transport, trust_env=False
        ) as http:
            counter = iter(range(n))

            async def worker() -> None:
                for i in counter:
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

            with anyio.fail_after(TIME_LIMIT_S):
                async with anyio.create_task_group() as tg:
                    for _ in range(size):
                        tg.start_soon(worker)

    cpu, wall = time.process_time(), time.perf_counter()
    anyio.run(main)
    return time.process_time() - cpu, time.perf_counter() - wall


def run(quick: bool = False) -> list[Figure]:
    """Measure both transports side by side on one sandbox; return the bench rows."""
    n = 300 if quick else 2000
    rounds = 1 if quick else 2
    tag = uuid.uuid4().hex[:8]
    totals: dict[tuple[str, int], list[float]] = {}
    with sandbox_process() as box:
        box.configure(rate_limit_per_minute=None, concurrency_limit=None, latency_ms=0)
        for kind in KINDS:  # warm-up: imports, first connections
            post_all(box.base_url, box.api_key, f"{tag}w{kind[0]}", 20, 4, kind)
        for r in range(rounds):
            for size in IN_FLIGHT:
                for kind in KINDS:
                    run_id = f"{tag}-{r}-{size}-{kind[0]}"
                    cpu, wall = post_all(box.base_url, box.api_key, run_id, n, size, kind)
                    acc = totals.setdefault((kind, size), [0.0, 0.0])
                    acc[0] += cpu
                    acc[1] += wall
        state = box.state(orders=False)
    sent = rounds * n
    created = int(state["counts"]["imports_created"])
    expected = 20 * len(KINDS) + sent * len(IN_FLIGHT) * len(KINDS)
    rows: list[Figure] = []
    for size in IN_FLIGHT:
        base_cpu, base_wall = totals[("httpx default", size)]
        lean_cpu, lean_wall = totals[("LeanTransport", size)]
        lean_ms, base_ms = lean_cpu / sent * 1e3, base_cpu / sent * 1e3
        note = f"{n} POSTs x {rounds} rounds, {size} in flight, sandbox subprocess, 0 ms latency"
        rows += [
            figure(f"httpx default CPU/request, {size} in flight", base_ms, "ms", note=note),
            figure(f"LeanTransport CPU/request, {size} in flight", lean_ms, "ms", note=note),
            figure(f"CPU ratio default/lean, {size} in flight", base_ms / lean_ms, "x"),
            figure(f"httpx default req/s, {size} in flight", sent / base_wall, "req/s"),
            figure(f"LeanTransport req/s, {size} in flight", sent / lean_wall, "req/s"),
        ]
    rows.append(
        figure(
            "orders created at the sandbox (both transports)",
            created,
            "orders",
            goal=f"== {expected}",
            met=created == expected,
        )
    )
    return rows


if __name__ == "__main__":
    for row in run(quick=False):
        print(f"{row['name']:<48} {row['value']:>10.3f} {row['unit']}  {row['note']}")
