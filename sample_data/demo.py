"""`make demo`: a real import of sample_data/ against a local sandbox, with reports.

Starts the sandbox on a free loopback port (as a subprocess), validates the sample export, imports
it, runs the same command again to show that nothing is sent twice, imports the file with known
errors to show the failure reports, then checks the sandbox holds every valid order exactly once.
Everything it writes goes under .demo/ (git-ignored).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "sample_data"
WORK = ROOT / ".demo"
CLI = [sys.executable, "-m", "pipeline"]
API_KEY = "demo_sandbox_key"
RATE = 3000  # the sandbox plays a site allowing 3,000 requests/minute; the run targets 2,900


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(root: str, deadline_s: float = 20.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"{root}/__sandbox/state?requests=0", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("demo: the sandbox did not start within 20 s")


def step(title: str, args: list[str], env: dict[str, str], expect: set[int]) -> int:
    print(f"\n=== {title}\n$ order-import {' '.join(args)}", flush=True)
    code = subprocess.call([*CLI, *args], env=env, cwd=ROOT)
    print(f"(exit code {code})", flush=True)
    if code not in expect:
        raise SystemExit(f"demo: unexpected exit code {code} for: {title}")
    return code


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    sandbox = subprocess.Popen(
        [*CLI, "sandbox", "--port", str(port), "--api-key", API_KEY, "--rate-limit", str(RATE)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_ready(root)
        env = {
            **os.environ,
            "CHARGEBEE_API_KEY": API_KEY,
            "CHARGEBEE_BASE_URL": f"{root}/api/v2",
        }
        env.pop("ORDER_IMPORT_CONFIG", None)
        mapping = str(DATA / "legacy_orders.mapping.toml")
        ledger = str(WORK / "ledger.sqlite")
        common = ["--mapping", mapping, "--ledger", ledger, "--rate", str(RATE - 100)]
        source = str(DATA / "legacy_orders.csv")
        step(
            "Validate the legacy export",
            ["validate", source, "--mapping", mapping, "--report-dir", str(WORK / "validation")],
            env,
            {0},
        )
        step(
            "Import it",
            [
                "run",
                source,
                "--batch",
                "demo",
                *common,
                "--report-dir",
                str(WORK / "reports" / "demo"),
            ],
            env,
            {0},
        )
        step(
            "Run the same command again: nothing is sent twice",
            [
                "run",
                source,
                "--batch",
                "demo",
                *common,
                "--report-dir",
                str(WORK / "reports" / "demo"),
            ],
            env,
            {0},
        )
        step(
            "Import the first 100 orders again, 16 of them broken: invalid rows are reported,"
            " not sent; the valid ones are verified against Chargebee (already present, or a"
            " conflict where their content differs), never duplicated",
            [
                "run",
                str(DATA / "legacy_orders_with_errors.csv"),
                "--batch",
                "demo-errors",
                *common,
                "--report-dir",
                str(WORK / "reports" / "demo-errors"),
            ],
            env,
            {1},
        )
        step(
            "Status of the first batch", ["status", "--batch", "demo", "--ledger", ledger], env, {0}
        )
        with urllib.request.urlopen(f"{root}/__sandbox/state", timeout=10) as answer:
            state = json.load(answer)
        ids = Counter(order["id"] for order in state["orders"])
        duplicates = [order_id for order_id, n in ids.items() if n > 1]
        print(f"\nSandbox holds {len(ids)} orders, duplicates: {len(duplicates)}")
        if duplicates:
            raise SystemExit("demo: duplicated orders found")
        print(f"Reports: {WORK / 'reports' / 'demo' / 'report.html'}")
        print(f"         {WORK / 'reports' / 'demo-errors' / 'failures.csv'}")
    finally:
        sandbox.terminate()
        try:
            sandbox.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sandbox.kill()


if __name__ == "__main__":
    main()
