"""The sandbox's own ceiling: import requests/s with limits off, measured against a sandbox in a
subprocess (client and server do not share a GIL), plus the server's CPU cost per request and the
keep-alive latency (which shows whether TCP_NODELAY is in effect). Side by side in the same run:
the same burst against a sandbox seeded with invoices (``--generate-invoices``: every import
looks its invoice up and copies currency and totals), as a ratio to the unseeded one.

Run: ``python -m bench.bench_sandbox [--quick]``. Bounded in count and in time.

``python -m bench.bench_sandbox --ab ../old [--quick]``: the server's CPU per request of this
tree's sandbox against another checkout's (its ``.venv``), both running at once and measured in
alternating rounds: imports as the CLI sends them (event headers, idempotency key, escaped
address fields) and pre-flight look-ups (``GET /orders?id[in]``, ``GET /invoices?id[in]``,
``GET /orders?invoice_id[in]``, 100 ids each, none stored yet).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import anyio
import httpx

API_KEY = "test_sandbox_key"
CONCURRENCY = 32
GOAL_RPS = 1500.0
"""The sandbox must never be the importer's bottleneck: at least this many imports/s on one core."""
_TICKS = os.sysconf("SC_CLK_TCK")


@contextmanager
def _sandbox(*extra: str, tree: Path | None = None) -> Iterator[tuple[str, int]]:
    """A sandbox subprocess with limits off (plus ``extra`` flags): yields (base URL, pid).

    Args:
        tree: another checkout whose sandbox to run (its ``.venv``, from its folder, so that
            its own ``sandbox`` package is the one imported); default: this interpreter's.
    """
    python = sys.executable if tree is None else str(tree / ".venv" / "bin" / "python")
    process = subprocess.Popen(
        [
            python,
            "-m",
            "sandbox",
            "--port=0",
            "--rate-limit=0",
            "--concurrency-limit=0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tree,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("Sandbox listening on "):
            raise RuntimeError(f"sandbox did not start: {line!r}")
        base_url = line.split()[3]
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(base_url.replace("/api/v2", "/__sandbox/config"), timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield base_url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _order(n: int, prefix: str, seeded: bool = False) -> dict[str, str]:
    return {
        "id": f"{prefix}-{n}",
        "invoice_id": f"INV-{n:06d}" if seeded else f"INV-{n}",
        "status": "delivered",
        "created_at": "1600000000",
        "order_date": "1600000000",
        "shipping_date": "1600086400",
        "shipping_address[city]": "Lisbon",
        "shipping_address[country]": "PT",
    }


async def _burst(base_url: str, count: int, max_s: float, prefix: str) -> tuple[int, float, int]:
    """POST up to ``count`` imports with CONCURRENCY in flight (stop after ``max_s``).

    Returns:
        (requests done, wall seconds, non-200 answers)
    """
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    done = failed = 0
    next_n = 0
    deadline = time.monotonic() + max_s
    async with httpx.AsyncClient(
        base_url=base_url, auth=(API_KEY, ""), limits=limits, timeout=30
    ) as client:

        async def worker() -> None:
            nonlocal done, failed, next_n
            while next_n < count and time.monotonic() < deadline:
                n = next_n
                next_n += 1
                response = await client.post("/orders/import_order", data=_order(n, prefix))
                done += 1
                failed += response.status_code != 200

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(CONCURRENCY):
                group.start_soon(worker)
        return done, time.perf_counter() - started, failed


async def _raw_burst(
    base_url: str, count: int, max_s: float, prefix: str, seeded: bool = False
) -> tuple[int, float, int]:
    """Like ``_burst`` but with a minimal keep-alive HTTP/1.1 client on asyncio streams.

    httpx spends ~several ms of CPU per request; this client spends ~0.1 ms, so the wall rate it
    reaches is the server's, not the client's.
    """
    path = urlsplit(base_url).path
    auth = base64.b64encode(f"{API_KEY}:".encode()).decode()

    def make(host: str, n: int) -> bytes:
        body = urlencode(_order(n, prefix, seeded)).encode()
        head = (
            f"POST {path}/orders/import_order HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Basic {auth}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}"
            "\r\n\r\n"
        )
        return head.encode() + body

    started = time.perf_counter()
    done, failed = await _requests(base_url, make, count, max_s)
    return done, time.perf_counter() - started, failed


def _latency_ms(base_url: str, count: int) -> tuple[float, float]:
    """Sequential keep-alive requests: median ms of a POST import and of a GET retrieve."""
    posts, gets = [], []
    with httpx.Client(base_url=base_url, auth=(API_KEY, "")) as client:
        for n in range(count):
            started = time.perf_counter()
            client.post("/orders/import_order", data=_order(n, "LAT"))
            posts.append(time.perf_counter() - started)
            started = time.perf_counter()
            client.get(f"/orders/LAT-{n}")
            gets.append(time.perf_counter() - started)
    return statistics.median(posts) * 1000, statistics.median(gets) * 1000


def run(quick: bool = False) -> list[dict[str, object]]:
    """Measure the sandbox ceiling; rows of {"benchmark", "metric", "value", "note"}."""
    count, httpx_count, max_s = (4_000, 1_000, 15.0) if quick else (30_000, 5_000, 60.0)
    with _sandbox() as (base_url, pid):
        asyncio.run(_raw_burst(base_url, 500, 10.0, "WARM"))
        cpu_before, client_before = _cpu_seconds(pid), time.process_time()
        done, wall, failed = asyncio.run(_raw_burst(base_url, count, max_s, "RAW"))
        server_cpu = _cpu_seconds(pid) - cpu_before
        client_cpu = time.process_time() - client_before
        h_done, h_wall, h_failed = anyio.run(_burst, base_url, httpx_count, max_s, "HTTPX")
        post_ms, get_ms = _latency_ms(base_url, 100 if quick else 300)
    seeded_count = count // 2
    with _sandbox(f"--generate-invoices={seeded_count + 500}") as (seeded_url, seeded_pid):
        asyncio.run(_raw_burst(seeded_url, 500, 10.0, "WARM", seeded=True))
        seeded_before = _cpu_seconds(seeded_pid)
        s_done, s_wall, s_failed = asyncio.run(
            _raw_burst(seeded_url, seeded_count, max_s, "SEED", seeded=True)
        )
        seeded_cpu = _cpu_seconds(seeded_pid) - seeded_before
    if failed or h_failed or s_failed:
        raise RuntimeError(f"{failed + h_failed + s_failed} imports were not answered 200")
    per_cpu = done / server_cpu if server_cpu > 0 else float("nan")
    seeded_per_cpu = s_done / seeded_cpu if seeded_cpu > 0 else float("nan")
    wall_rate = done / wall
    return [
        _row(
            "import req/s (wall, raw keep-alive client)",
            round(wall_rate, 1),
            f"{done} imports, {CONCURRENCY} connections, limits off, server in a subprocess;"
            f" client used {client_cpu / wall:.2f} of a core",
            GOAL_RPS,
        ),
        _row(
            "import req per server CPU-second",
            round(per_cpu, 1),
            f"the one-core ceiling; server used {server_cpu / wall:.2f} of a core in that burst",
            GOAL_RPS,
        ),
        _row(
            "seeded import req per server CPU-second",
            round(seeded_per_cpu, 1),
            f"{s_done} imports against --generate-invoices (invoice looked up, totals copied);"
            f" {seeded_per_cpu / per_cpu:.2f}× the unseeded figure, same run;"
            f" {s_done / s_wall:.0f} req/s wall",
            GOAL_RPS,
        ),
        _row(
            "import req/s (wall, httpx.AsyncClient)",
            round(h_done / h_wall, 1),
            f"{h_done} imports, {CONCURRENCY} in flight: here the client is the limit",
        ),
        _row(
            "keep-alive median ms (import / retrieve)",
            f"{post_ms:.2f} / {get_ms:.2f}",
            "sequential httpx; ~40 ms would mean Nagle + delayed ACK (no TCP_NODELAY)",
        ),
    ]


def _row(
    metric: str, value: float | str, note: str, goal: float | None = None
) -> dict[str, object]:
    """A row both for this module's table and for ``python -m bench`` (name/unit/goal/met)."""
    met = None if goal is None or not isinstance(value, float) else value >= goal
    return {
        "benchmark": "sandbox ceiling",
        "metric": metric,
        "name": f"sandbox: {metric}",
        "value": value,
        "unit": "",
        "goal": None if goal is None else f">= {goal:,.0f} req/s",
        "met": met,
        "note": note,
    }


_CLI_HEADERS = (
    "accept-encoding: gzip, deflate\r\nconnection: keep-alive\r\naccept: application/json\r\n"
    "user-agent: order-import/0.1.0\r\nchargebee-event-email: all-disabled\r\n"
    "chargebee-event-webhook: all-disabled\r\n"
)


def _cli_import(prefix: str, host: str, n: int) -> bytes:
    """An import_order request as the CLI sends it (tests/orders_factory.py's row ``n``)."""
    ts = 1_672_531_200 + n * 3600
    form = {
        "created_at": str(ts),
        "customer_id": f"CUST-{n % 97:04d}",
        "document_number": f"{prefix}DOC{n:06d}",
        "id": f"{prefix}-{n:06d}",
        "invoice_id": f"INV-{prefix}{n:06d}",
        "order_date": str(ts),
        "shipping_address[city]": "Kraków",
        "shipping_address[country]": "PL",
        "shipping_address[first_name]": "Zoë",
        "shipping_date": str(ts + 86_400),
        "status": ("delivered", "shipped", "queued", "awaiting_shipment")[n % 4],
    }
    body = urlencode(form).encode()
    key = "oi-i-" + hashlib.sha256(f"{prefix}:{n}".encode()).hexdigest()
    auth = base64.b64encode(f"{API_KEY}:".encode()).decode()
    head = (
        f"POST /api/v2/orders/import_order HTTP/1.1\r\nhost: {host}\r\n{_CLI_HEADERS}"
        f"authorization: Basic {auth}\r\nchargebee-idempotency-key: {key}\r\n"
        f"content-type: application/x-www-form-urlencoded\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _lookup(prefix: str, host: str, n: int) -> bytes:
    """A pre-flight look-up of 100 ids (orders by id, invoices by id, orders by invoice id in
    turn), for rows not sent yet."""
    first = (n // 3) * 100
    path, field, values = (
        ("/orders", "id[in]", [f"{prefix}-{i:06d}" for i in range(first, first + 100)]),
        ("/invoices", "id[in]", [f"INV-{prefix}{i:06d}" for i in range(first, first + 100)]),
        ("/orders", "invoice_id[in]", [f"INV-{prefix}{i:06d}" for i in range(first, first + 100)]),
    )[n % 3]
    query = urlencode({field: json.dumps(values, separators=(",", ":")), "limit": "100"})
    auth = base64.b64encode(f"{API_KEY}:".encode()).decode()
    head = (
        f"GET /api/v2{path}?{query} HTTP/1.1\r\nhost: {host}\r\n{_CLI_HEADERS}"
        f"authorization: Basic {auth}\r\n\r\n"
    )
    return head.encode()


async def _requests(
    base_url: str, make: Callable[[str, int], bytes], count: int, max_s: float
) -> tuple[int, int]:
    """Send up to ``count`` requests ``make(host, n)`` on CONCURRENCY keep-alive connections
    (stop after ``max_s``); (answered, not 200)."""
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    done = failed = next_n = 0
    deadline = time.monotonic() + max_s

    async def worker() -> None:
        nonlocal done, failed, next_n
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_n < count and time.monotonic() < deadline:
                n = next_n
                next_n += 1
                writer.write(make(f"{host}:{port}", n))
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                done += 1
                failed += status_line.split()[1] != b"200"
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done, failed


def ab(other: Path, quick: bool = False) -> list[dict[str, object]]:
    """Server CPU per import and per pre-flight look-up: this tree's sandbox against
    ``other``'s, both started at once, in alternating rounds (order flipped every round).

    Returns:
        Rows for ``_print``: µs of server CPU per request each side, and new / old.
    """
    imports, lookups, rounds = (1_500, 150, 6) if quick else (3_000, 300, 12)
    max_s = 60.0
    cpu = {"new": [0.0, 0.0], "old": [0.0, 0.0]}
    done = {"new": [0, 0], "old": [0, 0]}
    with _sandbox() as new, _sandbox(tree=other) as old:
        servers = {"new": new, "old": old}
        for base_url, _pid in servers.values():
            asyncio.run(_requests(base_url, partial(_cli_import, "WARM"), 500, max_s))
            asyncio.run(_requests(base_url, partial(_lookup, "WARM"), 30, max_s))
        for r in range(rounds):
            for side in ("new", "old") if r % 2 == 0 else ("old", "new"):
                base_url, pid = servers[side]
                prefix = f"R{r}"
                before = _cpu_seconds(pid)
                n_imports, bad = asyncio.run(
                    _requests(base_url, partial(_cli_import, prefix), imports, max_s)
                )
                middle = _cpu_seconds(pid)
                n_lookups, bad_lookups = asyncio.run(
                    _requests(base_url, partial(_lookup, "N" + prefix), lookups, max_s)
                )
                after = _cpu_seconds(pid)
                if bad or bad_lookups:
                    raise RuntimeError(f"{side}: {bad + bad_lookups} answers were not 200")
                cpu[side][0] += middle - before
                cpu[side][1] += after - middle
                done[side][0] += n_imports
                done[side][1] += n_lookups
    rows = []
    for i, what in enumerate(("import", "pre-flight look-up (100 ids)")):
        new_us, old_us = (1e6 * cpu[s][i] / max(1, done[s][i]) for s in ("new", "old"))
        rows.append(
            _row(
                f"server µs CPU per {what}, this tree / {other}",
                f"{new_us:.0f} / {old_us:.0f}",
                f"{done['new'][i]} / {done['old'][i]} requests in {rounds} alternating rounds;"
                f" new/old = {new_us / old_us:.2f}",
            )
        )
    return rows


def _print(rows: list[dict[str, object]]) -> None:
    width = max(len(str(row["metric"])) for row in rows)
    print(f"{'metric':<{width}}  {'value':>14}  note")
    for row in rows:
        print(f"{row['metric']!s:<{width}}  {row['value']!s:>14}  {row['note']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument(
        "--ab", type=Path, metavar="OTHER", help="A/B against another checkout's sandbox"
    )
    args = parser.parse_args()
    _print(ab(args.ab.resolve(), quick=args.quick) if args.ab else run(quick=args.quick))
