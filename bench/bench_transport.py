"""End to end, LeanTransport vs httpx's own transport: the real ``order-import run`` CLI.

The rule (issue 10): LeanTransport stays only if it gives at least 1.5x the end-to-end rows/s
of httpx's own transport on sandbox rehearsals. So both run the same thing a user runs: the
``order-import run`` subprocess (start-up, validation, ledger, sending, reports) against one
``order-import sandbox`` subprocess with no rate limit, on the same file, in alternating rounds
(lean, httpx, lean, httpx ...) so machine load hits both alike. Each round is a fresh batch and
ledger; every row must be created exactly once at the sandbox.

The transport is chosen with the config file's ``http_transport`` setting, when the build still
has it; a build without it has only httpx, and the bench then reports that single figure.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from bench.bench_import import created
from bench.common import (
    BENCH_KEY,
    Figure,
    SandboxProcess,
    figure,
    run_child,
    sandbox_process,
)
from tests import support
from tests.orders_factory import write_orders

GOAL_SPEEDUP = 1.5
CLI_TIMEOUT_S = 300.0
KINDS = ("lean", "httpx")


def has_lean() -> bool:
    """True when this build still ships LeanTransport (and the setting that selects it)."""
    try:
        import pipeline.api.transport  # noqa: F401
    except ImportError:
        return False
    return True


def one_run(
    box: SandboxProcess, source: Path, work: Path, batch: str, kind: str | None, concurrency: int
) -> float:
    """One ``order-import run`` of ``source``; its wall seconds. Raises on a non-zero exit."""
    config = work / f"{batch}.toml"
    config.write_text(f'http_transport = "{kind}"\n' if kind else "", encoding="utf-8")
    cmd = [
        sys.executable, "-m", "pipeline", "run", str(source), "--batch", batch, "--quiet",
        "--config", str(config), "--ledger", str(work / f"{batch}.sqlite"),
        "--report-dir", str(work / f"r-{batch}"), "--rate", "1000000",
        "--concurrency", str(concurrency),
    ]  # fmt: skip
    done = run_child(cmd, env=support.cli_env(box.base_url, box.api_key), timeout=CLI_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"order-import run ({kind}) exited {done.returncode}: {done.stderr}")
    return done.wall_s


def measure(
    box: SandboxProcess, work: Path, rows: int, rounds: int, latency: int, concurrency: int
) -> list[Figure]:
    """Both transports, alternating, ``rounds`` times each; median rows/s per transport."""
    box.configure(latency_ms=latency)
    kinds: tuple[str | None, ...] = KINDS if has_lean() else (None,)
    walls: dict[str | None, list[float]] = {kind: [] for kind in kinds}
    for r in range(rounds):
        for kind in kinds:
            tag = f"L{latency}C{concurrency}{kind or 'only'}{r}"
            source = write_orders(work / f"{tag}.csv", rows, prefix=tag)
            before = created(box)
            walls[kind].append(one_run(box, source, work, tag, kind, concurrency))
            landed = created(box) - before
            if landed != rows:
                raise RuntimeError(f"{tag}: sandbox created {landed} orders for {rows} rows")
    where = f"{latency} ms latency, concurrency {concurrency}"
    note = f"{rows} rows end to end, median of {rounds} alternating runs, every row created once"
    rates = {kind: rows / statistics.median(w) for kind, w in walls.items()}
    rows_out = [
        figure(f"{kind or 'httpx'} transport: run rows/s, {where}", rate, "rows/s", note=note)
        for kind, rate in rates.items()
    ]
    if len(rates) == 2:
        speedup = rates["lean"] / rates["httpx"]
        rows_out.append(
            figure(
                f"end-to-end speed-up lean/httpx, {where}",
                speedup,
                "x",
                goal=f">= {GOAL_SPEEDUP}x to keep LeanTransport",
                met=speedup >= GOAL_SPEEDUP,
                note="same file size, same sandbox, alternating runs",
            )
        )
    return rows_out


def run(quick: bool = False) -> list[Figure]:
    """End-to-end rows/s per transport at 0 ms and 100 ms sandbox latency, concurrency 32."""
    rows = 600 if quick else 3000
    rounds = 1 if quick else 3
    figures: list[Figure] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-transport-") as tmp,
        sandbox_process(api_key=BENCH_KEY, latency_ms=0) as box,
    ):
        work = Path(tmp)
        figures += measure(box, work, rows, rounds, 0, 32)
        figures += measure(box, work, rows, rounds, 100, 32)
    return figures


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(f"{row['name']:<60} {row['value']:>10.3f} {row['unit']}  {row['note']}")
