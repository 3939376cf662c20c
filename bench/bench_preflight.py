"""What pre-flight costs: the real ``order-import run`` with pre-flight (the default) and with
``--no-preflight`` on the same sandbox subprocess, side by side in one run, at 100 ms and 0 ms
latency; and the CPU of one list page of 100 orders next to the per-string key scrub it skips.

Figures: end-to-end rows/s both ways and their ratio (1.0 = pre-flight costs nothing in time:
the next page is checked while this one is sent), and list-page CPU in ms. The two runs of a
latency alternate (with, without, with, without) and each starts on an empty sandbox, so a
load change on the shared machine hits both; every run is bounded in time.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

from bench.bench_import import cli_run, created
from bench.common import BENCH_KEY, Figure, SandboxProcess, figure, sandbox_process
from pipeline.api import client as client_module
from pipeline.api.client import ChargebeeClient
from pipeline.config import load_settings
from tests.orders_factory import order_row, write_orders

GOAL_RATIO = 0.9
"""Pre-flight on keeps at least 90% of the rows/s of --no-preflight at 100 ms latency."""
ROUNDS = 2
LIST_PAGES = 200
"""List pages timed for the CPU figure (each kind of walk)."""


def timed_run(
    box: SandboxProcess, work: Path, latency: int, rows: int, tag: str, *more: str
) -> float:
    """rows/s of one ``order-import run`` of ``rows`` fresh rows on an empty sandbox."""
    box.reset()
    box.configure(latency_ms=latency)
    source = write_orders(work / f"{tag}.csv", rows, prefix=tag)
    before = created(box)
    cli = cli_run(box, source, work, tag, "--concurrency", "32", *more)
    landed = created(box) - before
    if landed != rows:
        raise RuntimeError(f"{tag}: sandbox created {landed} orders for {rows} rows")
    return rows / cli.wall_s


def measure(box: SandboxProcess, work: Path, latency: int, rows: int) -> list[Figure]:
    """With and without pre-flight at one latency, alternating, ``ROUNDS`` each."""
    on: list[float] = []
    off: list[float] = []
    for n in range(ROUNDS):
        on.append(timed_run(box, work, latency, rows, f"P{latency}R{n}"))
        off.append(timed_run(box, work, latency, rows, f"N{latency}R{n}", "--no-preflight"))
    with_pf = sum(on) / len(on)
    without = sum(off) / len(off)
    where = f"{latency} ms latency, concurrency 32, {rows} rows"
    runs = ", ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(on, off, strict=True))
    return [
        figure(
            f"import rows/s with pre-flight, {where}", with_pf, "rows/s", note=f"mean of {ROUNDS}"
        ),
        figure(
            f"import rows/s with --no-preflight, {where}",
            without,
            "rows/s",
            note=f"mean of {ROUNDS}",
        ),
        figure(
            f"pre-flight on / off, {where}",
            with_pf / without,
            "x",
            goal=f">= {GOAL_RATIO:g}x" if latency == 100 else None,
            met=with_pf / without >= GOAL_RATIO if latency == 100 else None,
            note=f"end-to-end rows/s, runs alternated (on/off each round: {runs})",
        ),
    ]


def list_page_cpu(box: SandboxProcess) -> list[Figure]:
    """CPU of ``list_page`` on a sandbox page of 100 orders (answered in memory, so the figure
    is the client's own work), next to the same pages also walked string by string."""
    box.reset()
    with httpx.Client(base_url=box.base_url, auth=(box.api_key, ""), timeout=30) as http:
        for i in range(100):
            http.post("/orders/import_order", data=order_row(i, prefix="LP")).raise_for_status()
        body = http.get("/orders", params={"limit": 100}).json()
    raw = json.dumps(body).encode()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=raw, headers={"Content-Type": "application/json"})

    settings = load_settings(
        {},
        environ={"CHARGEBEE_API_KEY": BENCH_KEY, "CHARGEBEE_BASE_URL": "http://127.0.0.1:9/api/v2"},
    )
    ids = {"id": {"in": [f"LP-{i:06d}" for i in range(100)]}}

    async def pages(walk: bool) -> float:
        async with ChargebeeClient(settings, transport=httpx.MockTransport(answer)) as client:
            secrets = client_module._secret_forms(BENCH_KEY)
            started = time.thread_time()
            for _ in range(LIST_PAGES):
                found, _ = await client.list_page("order", ids)
                if walk:
                    [client_module._scrub_all(order, secrets) for order in found]
            return (time.thread_time() - started) / LIST_PAGES * 1000

    now = walked = 0.0
    for _ in range(2):  # alternate, keep the second (warm) pair
        now = anyio.run(pages, False)
        walked = anyio.run(pages, True)
    return [
        figure(
            "list_page CPU per page of 100 orders",
            now,
            "ms",
            note=f"{len(raw):,} bytes a page, id[in] of 100 ids, in-memory answer, "
            f"{LIST_PAGES} pages; thread CPU time",
        ),
        figure(
            "same pages + the per-string key scrub (what list_page did before)",
            walked,
            "ms",
            note=f"ratio {walked / now:.1f}x; the scrub still runs when a key form is in the page",
        ),
    ]


def run(quick: bool = False) -> list[Figure]:
    """Pre-flight on/off at 100 ms and 0 ms latency, then the list-page CPU."""
    rows_100ms, rows_0ms = (1000, 600) if quick else (6000, 3000)
    figures: list[Any] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-preflight-") as tmp,
        sandbox_process(api_key=BENCH_KEY, latency_ms=0) as box,
    ):
        work = Path(tmp)
        figures += measure(box, work, 100, rows_100ms)
        figures += measure(box, work, 0, rows_0ms)
        box.configure(latency_ms=0)
        figures += list_page_cpu(box)
    return figures
