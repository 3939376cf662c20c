"""Import throughput: the real ``order-import run`` CLI against a sandbox subprocess, side by side
with a plain loop over the official ``chargebee`` SDK on the same sandbox, and CLI CPU per row.

Figures: end-to-end rows/s (start-up, validation, ledger, sending, reports) at 0 ms and 100 ms
latency with no rate limit, the send phase's rows/s as the sandbox saw it, the SDK loop's
rows/s, their ratio, and CPU per row (whole CLI process, and the send path alone = run minus a
dry run of the same file) next to a bare httpx loop's CPU per request measured in the same run.
Row counts amortise start-up (20,000 rows at 0 ms); every run is bounded in time.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_KEY,
    ChildRun,
    Figure,
    SandboxProcess,
    figure,
    run_child,
    sandbox_process,
)
from tests import support
from tests.orders_factory import order_row, write_orders
from tests.support import api_requests

GOAL_RATIO = 25.0
GOAL_CPU_MS = 1.0
GOAL_ROWS_S = 1500.0
"""Issue 16: end-to-end rows/s at 0 ms latency, no rate limit, on the 2-core machine."""
CLI_TIMEOUT_S = 300.0
SDK_TIME_LIMIT_S = 60.0
HTTPX_REQUESTS = 3000
"""Requests of the bare httpx loop (pre-encoded bodies) the send path's CPU is compared with."""


def cli_run(
    box: SandboxProcess,
    source: Path,
    work: Path,
    batch: str,
    *more: str,
    python: str = sys.executable,
) -> ChildRun:
    """One ``order-import run`` subprocess (limits off client-side: --rate 1e6); ``python`` is
    the interpreter whose installed ``pipeline`` runs (another checkout's venv for an A/B)."""
    cmd = [
        python, "-m", "pipeline", "run", str(source), "--batch", batch, "--quiet",
        "--ledger", str(work / f"{batch}.sqlite"), "--report-dir", str(work / f"r-{batch}"),
        "--rate", "1000000", *more,
    ]  # fmt: skip
    env = support.cli_env(box.base_url, box.api_key)
    done = run_child(cmd, env=env, timeout=CLI_TIMEOUT_S, cwd=work)
    if done.returncode != 0:
        raise RuntimeError(f"order-import run exited {done.returncode}: {done.stderr[-500:]}")
    return done


def sdk_params(row: dict[str, str]) -> dict[str, Any]:
    """The factory row as SDK params (nested address dict, like a developer would write it)."""
    params: dict[str, Any] = {k: v for k, v in row.items() if "[" not in k}
    params["shipping_address"] = {
        "first_name": row["shipping_address[first_name]"],
        "city": row["shipping_address[city]"],
        "country": row["shipping_address[country]"],
    }
    return params


def sdk_loop(box: SandboxProcess, prefix: str, count: int) -> tuple[int, float]:
    """Plain loop over ``chargebee`` SDK v3 ``Order.import_order``; (rows done, seconds)."""
    from chargebee import Chargebee

    Chargebee.verify_ca_certs = False  # lets the SDK speak plain http to 127.0.0.1
    cb = Chargebee(
        api_key=box.api_key,
        site="127",
        chargebee_domain=f"0.0.1:{box.port}",
        protocol="http",
    )
    started = time.perf_counter()
    done = 0
    for i in range(count):
        if time.perf_counter() - started > SDK_TIME_LIMIT_S:
            break
        cb.Order.import_order(sdk_params(order_row(i, prefix=prefix)))
        done += 1
    return done, time.perf_counter() - started


def send_phase_rate(box: SandboxProcess, since: float) -> tuple[int, float]:
    """(import_order POSTs after ``since``, their rate per second at the sandbox)."""
    posts = [
        r["t"]
        for r in api_requests(box.state(orders=False), path_part="import_order")
        if r["t"] >= since
    ]
    span = (max(posts) - min(posts)) if len(posts) > 1 else 0.0
    return len(posts), (len(posts) - 1) / span if span > 0 else 0.0


def created(box: SandboxProcess) -> int:
    """Orders the sandbox created so far (exact counter)."""
    return int(box.state(orders=False)["counts"]["imports_created"])


def measure(
    box: SandboxProcess, work: Path, latency: int, rows: int, sdk_rows: int, concurrency: int
) -> tuple[list[Figure], Path, ChildRun]:
    """CLI and SDK at one latency, side by side; checks every row landed once. Also returns
    the input file and the CLI run (for CPU per row)."""
    box.reset()  # an empty site: the runs share invoice ids, which pre-flight would hold back
    box.configure(latency_ms=latency)
    tag = f"L{latency}C{concurrency}"
    source = write_orders(work / f"{tag}.csv", rows, prefix=tag)
    before = created(box)
    since = time.time()
    cli = cli_run(box, source, work, tag, "--concurrency", str(concurrency))
    start_s, _, tail_s = split(box, since, time.time())
    sent, send_rate = send_phase_rate(box, since)
    landed = created(box) - before
    if landed != rows:
        raise RuntimeError(f"{tag}: sandbox created {landed} orders for {rows} rows")
    sdk_done, sdk_s = sdk_loop(box, f"S{tag}", sdk_rows)
    sdk_rate = sdk_done / sdk_s
    cli_rate = rows / cli.wall_s
    ratio = cli_rate / sdk_rate
    where = f"{latency} ms latency, concurrency {concurrency}"
    figures = [
        figure(
            f"import rows/s, {where}",
            cli_rate,
            "rows/s",
            goal=f">= {GOAL_ROWS_S:,.0f} rows/s" if latency == 0 else None,
            met=cli_rate >= GOAL_ROWS_S if latency == 0 else None,
            note=f"{rows} rows end to end (start-up, validation, ledger, reports); exit 0, "
            f"{landed} created once",
        ),
        figure(
            f"send phase at the sandbox, {where}",
            send_rate,
            "req/s",
            note=f"{sent} import_order POSTs seen by the sandbox",
        ),
        figure(
            f"seconds to the first request, {rows:,} rows, {where}",
            start_s,
            "s",
            note="from the CLI process start to its first API request (a new batch)",
        ),
        figure(
            f"seconds after the last request, {rows:,} rows, {where}",
            tail_s,
            "s",
            note="from the last import_order POST to the CLI's exit (reports, ledger close)",
        ),
        figure(
            f"official SDK plain loop, {latency} ms latency",
            sdk_rate,
            "rows/s",
            note=f"{sdk_done} rows in {sdk_s:.1f}s, chargebee SDK Order.import_order",
        ),
        figure(
            f"steady-state ratio (send phase / SDK loop), {where}",
            send_rate / sdk_rate,
            "x",
            note="what a long import converges to once start-up is amortised",
        ),
        figure(
            f"ratio order-import / SDK loop, {where}",
            ratio,
            "x",
            goal=f">= {GOAL_RATIO:.0f}x" if latency == 100 else None,
            met=ratio >= GOAL_RATIO if latency == 100 else None,
            note="end-to-end CLI rows/s over SDK rows/s, same sandbox, same run",
        ),
    ]
    return figures, source, cli


def measure_cpu(
    box: SandboxProcess, work: Path, source: Path, real: ChildRun, rows: int
) -> list[Figure]:
    """CLI CPU per row: the whole process, and the send path (``real`` minus a dry run of the
    same file), next to a bare httpx loop's CPU per request in this process."""
    from bench.bench_client import plain_httpx

    box.configure(latency_ms=0)
    dry = cli_run(box, source, work, "cpu-dry", "--dry-run")
    total_ms = real.cpu_s / rows * 1000
    send_ms = max(real.cpu_s - dry.cpu_s, 0.0) / rows * 1000
    plain_httpx(box.base_url, box.api_key, "bi-warm", 50)
    httpx_cpu, _ = plain_httpx(box.base_url, box.api_key, "bi", HTTPX_REQUESTS)
    httpx_ms = httpx_cpu / HTTPX_REQUESTS * 1000
    return [
        figure(
            "client CPU per imported row, send path",
            send_ms,
            "ms",
            goal=f"<= {GOAL_CPU_MS:g} ms",
            met=send_ms <= GOAL_CPU_MS,
            note=f"(CPU of run − CPU of --dry-run on the same {rows} rows) / rows; "
            "RUSAGE_CHILDREN user+sys; ledger commits, retries, limiter and reports included",
        ),
        figure(
            "bare httpx loop CPU per request (same run)",
            httpx_ms,
            "ms",
            note=f"{HTTPX_REQUESTS} pre-encoded import_order POSTs, httpx.AsyncClient, "
            "16 in flight, no ledger, no limiter",
        ),
        figure(
            "send path CPU per row / bare httpx CPU per request",
            send_ms / httpx_ms if httpx_ms else None,
            "x",
            note="below 1: the whole send path costs less CPU than httpx's own client loop",
        ),
        figure(
            "CLI CPU per row, whole process",
            total_ms,
            "ms",
            note=f"{real.cpu_s:.2f}s CPU for {rows} rows incl. interpreter start-up, "
            f"validation, ledger and reports (dry run alone {dry.cpu_s:.2f}s)",
        ),
    ]


def run(quick: bool = False) -> list[Figure]:
    """All import figures in one run: 0 ms and 100 ms latency, then CPU per row."""
    rows_0ms, rows_100ms = (2000, 1000) if quick else (20_000, 6000)
    sdk_small, sdk_big = (15, 40) if quick else (40, 150)
    figures: list[Figure] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-import-") as tmp,
        sandbox_process(api_key=BENCH_KEY, latency_ms=0) as box,
    ):
        work = Path(tmp)
        found, source, fast = measure(box, work, 0, rows_0ms, sdk_big, 32)
        figures += found
        figures += measure(box, work, 100, rows_100ms, sdk_small, 32)[0]
        figures += measure_cpu(box, work, source, fast, rows_0ms)
    return figures


AB_ROUNDS = 2
AB_LATENCIES = (0, 100)
AB_SDK_ROWS = {0: 40, 100: 15}
"""Rows of the SDK loop per latency in the A/B (the loop waits for each answer)."""


def split(box: SandboxProcess, started: float, ended: float) -> tuple[float, float, float]:
    """Where a CLI run's wall time went, from the sandbox's request log: (seconds from the
    process start to its first API request, the send phase from the first to the last
    import_order POST, seconds from that POST to the process exit)."""
    log = box.state(orders=False)
    first = min((r["t"] for r in log["requests"] if "/api/" in str(r["path"])), default=ended)
    posts = [r["t"] for r in api_requests(log, path_part="import_order")] or [first]
    return first - started, max(posts) - min(posts), ended - max(posts)


def ab(other: Path, rows: int = 5000, rounds: int = AB_ROUNDS) -> list[Figure]:
    """This checkout against ``other`` (a checkout with its own ``.venv``), side by side in one
    run on one sandbox, 32 in flight, at 0 ms and 100 ms latency: end-to-end rows/s, the
    wall-time split (start-up to the first request, send phase, tail), the ratio to the SDK
    loop at the same latency, send-path CPU per row (run − dry run of the same file) and that
    CPU over a bare httpx loop's, measured between the rounds. Rounds alternate which side
    goes first, so load drifts hit both alike."""
    from bench.bench_client import plain_httpx

    sides = {"this": sys.executable, "other": str(other / ".venv" / "bin" / "python")}
    seen: dict[tuple[str, int], list[tuple[float, float, tuple[float, float, float]]]] = {
        (name, latency): [] for name in sides for latency in AB_LATENCIES
    }
    httpx_ms: list[float] = []
    sdk: dict[int, float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp,
        sandbox_process(api_key=BENCH_KEY, latency_ms=0) as box,
    ):
        work = Path(tmp)
        plain_httpx(box.base_url, box.api_key, "ab-warm", 50)
        for latency in AB_LATENCIES:
            for n in range(rounds):
                order = list(sides.items()) if n % 2 == 0 else list(sides.items())[::-1]
                for name, python in order:
                    box.reset()
                    box.configure(latency_ms=latency)
                    tag = f"AB{latency}r{n}{name}"
                    source = write_orders(work / f"{tag}.csv", rows, prefix=tag)
                    started = time.time()
                    real = cli_run(box, source, work, tag, "--concurrency", "32", python=python)
                    parts = split(box, started, time.time())
                    if created(box) != rows:
                        raise RuntimeError(f"{tag}: sandbox created {created(box)} for {rows} rows")
                    cpu = math.nan
                    if latency == 0:
                        dry = cli_run(box, source, work, tag + "dry", "--dry-run", python=python)
                        cpu = (real.cpu_s - dry.cpu_s) / rows * 1000
                    seen[name, latency].append((rows / real.wall_s, cpu, parts))
                if latency == 0:
                    box.configure(latency_ms=0)
                    cpu_s, _ = plain_httpx(box.base_url, box.api_key, f"ab{n}", HTTPX_REQUESTS)
                    httpx_ms.append(cpu_s / HTTPX_REQUESTS * 1000)
            box.configure(latency_ms=latency)
            done, spent = sdk_loop(box, f"ABsdk{latency}", AB_SDK_ROWS[latency])
            sdk[latency] = done / spent
    bare = sorted(httpx_ms)[len(httpx_ms) // 2]
    figures: list[Figure] = []
    for latency in AB_LATENCIES:
        for name in sides:
            runs = seen[name, latency]
            best = max(runs, key=lambda run: run[0])
            rates = [round(r, 1) for r, _, _ in runs]
            where = f"{name}, {latency} ms"
            start, send, tail = best[2]
            figures += [
                figure(
                    f"A/B import rows/s, {where}",
                    best[0],
                    "rows/s",
                    note=f"{sides[name]}; {rows} rows; runs {rates}",
                ),
                figure(
                    f"A/B wall split, {where}",
                    f"{start:.1f} + {send:.1f} + {tail:.1f}",
                    "s",
                    note="best run: start to first request + send phase + tail to exit",
                ),
                figure(
                    f"A/B ratio to the SDK loop, {where}",
                    best[0] / sdk[latency],
                    "x",
                    note=f"SDK loop {sdk[latency]:.1f} rows/s in the same run",
                ),
            ]
            if latency == 0:
                cpu = min(c for _, c, _ in runs)
                figures += [
                    figure(f"A/B send-path CPU per row, {name}", cpu, "ms"),
                    figure(f"A/B send-path CPU / bare httpx, {name}", cpu / bare, "x"),
                ]
    figures.append(figure("A/B bare httpx CPU per request", bare, "ms", note=f"runs {httpx_ms}"))
    return figures


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--ab":
        more = [int(a) for a in sys.argv[3:5]]
        for row in ab(Path(sys.argv[2]), *more):
            print(f"{row['name']:<45} {row['value']!s:>12} {row['unit']}  {row.get('note', '')}")
