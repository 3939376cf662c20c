"""CLI start-up: ``order-import --help`` wall time beside ``python -c pass``.

Each command runs in a fresh interpreter, round-robin (so a busy moment of the shared machine
hits every command alike), N times; the figures are medians and the ratio to a bare interpreter.
For scale, the last figure is what importing pandas, pandera and matplotlib costs on its own:
what every command paid before the CLI became lazy. Every run is bounded by a timeout.
``python -m bench.bench_cli [--quick]`` prints the table.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Figure, figure

RUNS = 15
QUICK_RUNS = 5
TIMEOUT_S = 60.0
HEAVY = "import pandas, pandera, matplotlib"


def _entry() -> list[str]:
    """The installed ``order-import`` script next to this interpreter, else ``-m pipeline``."""
    script = Path(sys.executable).with_name("order-import")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pipeline"]


def commands(work: Path) -> dict[str, list[str]]:
    """What is timed, by figure name."""
    cli = _entry()
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "order-import --help": [*cli, "--help"],
        "order-import status (no ledger)": [
            *cli,
            "status",
            "--batch",
            "b",
            "--ledger",
            str(work / "none.sqlite"),
        ],
        HEAVY: [sys.executable, "-c", HEAVY],
    }


def _wall(cmd: list[str], cwd: Path) -> float:
    """Seconds one run takes, start to exit."""
    started = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=TIMEOUT_S, check=False)
    return time.perf_counter() - started


def measure(runs: int) -> dict[str, float]:
    """Median wall seconds per command over ``runs`` round-robin rounds (one warm-up round)."""
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        work = Path(tmp)
        table = commands(work)
        for cmd in table.values():  # warm the OS file cache; not counted
            _wall(cmd, work)
        times: dict[str, list[float]] = {name: [] for name in table}
        for _ in range(runs):
            for name, cmd in table.items():
                times[name].append(_wall(cmd, work))
    return {name: statistics.median(values) for name, values in times.items()}


def run(quick: bool = False) -> list[Figure]:
    """The bench figures: medians in ms, ``--help`` and ``status`` as multiples of bare Python."""
    runs = QUICK_RUNS if quick else RUNS
    medians = measure(runs)
    bare = medians["python -c pass"]
    heavy = medians[HEAVY]
    rows = [figure("python -c pass", bare * 1000, "ms", note=f"median of {runs}")]
    for name in ("order-import --help", "order-import status (no ledger)"):
        value = medians[name]
        rows.append(
            figure(
                name,
                value * 1000,
                "ms",
                goal=f"< {HEAVY.removeprefix('import ')}",
                met=value < heavy,
                note=f"{value / bare:.1f}x python -c pass; median of {runs}",
            )
        )
    rows.append(
        figure(
            HEAVY,
            heavy * 1000,
            "ms",
            note=f"{heavy / bare:.1f}x python -c pass: what every command paid before lazy loading",
        )
    )
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(f"{row['name']:<40} {row['value']:>8.0f} {row['unit']:<3} {row['note']}")
