"""A sandbox run as a person runs it: ``python -m sandbox ...`` in a process of its own.

For tests that restart a sandbox (same state file, a fuller invoice seed) or start one from a
command the tool printed. ``Running`` has the ``support.Server`` protocol (``base_url``,
``state``). The fixture ``sandboxes`` (tests/conftest.py) stops every one a test started.
"""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.orders_factory import order_row

KEY = "test_sandbox_key"
START_TIMEOUT_S = 30.0
SEED_HEADER = ["id", "customer_id", "subscription_id", "currency_code", "total"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Running:
    """A sandbox process (the ``support.Server`` protocol: ``base_url`` and ``state``)."""

    def __init__(self, argv: Sequence[str], port: int, cwd: Path) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.root}/__sandbox/state?orders=false", timeout=2)
                return
            except httpx.TransportError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        output = self.stop()
        raise AssertionError(f"sandbox did not start: {' '.join(argv)}\n{output}")

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/api/v2"

    def state(
        self, *, orders: bool = True, events: bool = True, requests: bool = True
    ) -> dict[str, Any]:
        flags = {"orders": orders, "events": events, "requests": requests}
        query = "&".join(f"{k}={'true' if v else 'false'}" for k, v in flags.items())
        found: dict[str, Any] = httpx.get(f"{self.root}/__sandbox/state?{query}", timeout=30).json()
        return found

    def invoices(self) -> list[dict[str, Any]]:
        """Every invoice the sandbox lists (``GET /invoices``, paged)."""
        found: list[dict[str, Any]] = []
        offset: str | None = None
        with httpx.Client(base_url=self.base_url, auth=(KEY, ""), timeout=30) as http:
            for _ in range(1000):
                params = {"limit": "100", **({"offset": offset} if offset else {})}
                page = http.get("/invoices", params=params).json()
                found += [entry["invoice"] for entry in page["list"]]
                offset = page.get("next_offset")
                if not offset:
                    return found
        raise AssertionError("GET /invoices kept paging")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            output, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            output, _ = self.proc.communicate(timeout=30)
        return output or ""


def python_sandbox(
    sandboxes: list[Running], work: Path, seed: Path, *, state: Path | None = None, port: int = 0
) -> Running:
    port = port or free_port()
    argv = [sys.executable, "-m", "sandbox", "--port", str(port), "--invoices", str(seed)]
    argv += ["--rate-limit", "0", "--concurrency-limit", "0"]
    if state is not None:
        argv += ["--state", str(state)]
    server = Running(argv, port, work)
    sandboxes.append(server)
    return server


def seed_invoices(path: Path, ids: Sequence[int]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(SEED_HEADER)
        for i in ids:
            row = order_row(i, prefix="SB")
            writer.writerow([row["invoice_id"], row["customer_id"], "", "EUR", str(1000 + i)])
    return path
