"""Where the send path spends its CPU: ``python -m bench.profile_send [ROWS] [TOP]``.

Runs the real ``order-import run`` under ``cProfile`` against a sandbox subprocess (0 ms
latency, no rate limit) and prints the functions with the most own time and the most cumulative
time. The profiler's clock is the main thread's CPU time (``time.thread_time``), so a shared,
loaded machine does not charge other processes' time to whatever was running: it sees the event
loop's thread (every request, the workers, the committer's scheduling), not the ledger's commit
thread. A tool for finding what to remove, not a figure: ``bench_import`` measures.
"""

from __future__ import annotations

import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import BENCH_KEY, sandbox_process
from tests import support
from tests.orders_factory import write_orders

PROFILE_TIMEOUT_S = 600.0
WRAPPER = """
import cProfile, runpy, sys, time
out = sys.argv[1]
sys.argv = ["order-import", *sys.argv[2:]]
profiler = cProfile.Profile(time.thread_time)
profiler.enable()
try:
    runpy.run_module("pipeline", run_name="__main__")
except SystemExit as done:
    code = done.code
else:
    code = 0
profiler.disable()
profiler.dump_stats(out)
sys.exit(code)
"""


def profile(rows: int, top: int) -> None:
    """Profile one run of ``rows`` rows and print the top ``top`` functions twice."""
    with (
        tempfile.TemporaryDirectory(prefix="profile-send-") as tmp,
        sandbox_process(api_key=BENCH_KEY, latency_ms=0) as box,
    ):
        work = Path(tmp)
        source = write_orders(work / "p.csv", rows, prefix="P")
        out = work / "run.prof"
        args = [
            "run", str(source), "--batch", "p", "--quiet", "--ledger", str(work / "p.sqlite"),
            "--report-dir", str(work / "r"), "--rate", "1000000", "--concurrency", "32",
        ]  # fmt: skip
        cmd = [sys.executable, "-c", WRAPPER, str(out), *args]
        started = time.perf_counter()
        done = subprocess.run(
            cmd,
            env=support.cli_env(box.base_url, box.api_key),
            capture_output=True,
            text=True,
            timeout=PROFILE_TIMEOUT_S,
            check=False,
        )
        wall = time.perf_counter() - started
        print(f"{rows} rows, exit {done.returncode}, {wall:.1f} s wall ({rows / wall:.0f} rows/s)")
        if done.returncode != 0:
            print(done.stderr[-2000:])
            return
        stats = pstats.Stats(str(out))
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)


if __name__ == "__main__":
    profile(
        int(sys.argv[1]) if len(sys.argv) > 1 else 5000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 40,
    )
