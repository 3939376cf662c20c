"""Shared bench helpers: a sandbox subprocess on a free port, readiness, CPU. The CLI's
environment and the request-log maths are ``tests.support``'s (shared with the tests).

Every loop here is bounded in count and time; servers bind 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_KEY = "bench_sandbox_key"
READY_TIMEOUT_S = 30.0
Figure = dict[str, Any]


def figure(
    name: str,
    value: float | int | str | None,
    unit: str = "",
    *,
    goal: str | None = None,
    met: bool | None = None,
    note: str = "",
) -> Figure:
    """One row of the bench table (the shape every bench module's ``run()`` returns).

    Args:
        name: what was measured, e.g. "import rows/s, 100 ms latency".
        value: the measured number (or a short text when the figure is not a number).
        unit: e.g. "rows/s", "%", "ms".
        goal: the target this figure is judged against, e.g. ">= 25x"; None if none.
        met: whether the goal was met; None if there is no goal.
        note: anything a reader needs to interpret the figure.
    """
    return {"name": name, "value": value, "unit": unit, "goal": goal, "met": met, "note": note}


def free_port() -> int:
    """An ephemeral TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(
    url: str, *, method: str = "GET", body: dict[str, Any] | None = None, timeout: float = 10.0
) -> Any:
    """GET/POST JSON to a control endpoint (urllib: no client library needed)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


@dataclass
class SandboxProcess:
    """A ``python -m sandbox`` subprocess on 127.0.0.1 and a free port.

    Knobs not settable on its command line are applied through ``POST /__sandbox/config``.
    """

    port: int
    proc: subprocess.Popen[bytes]
    api_key: str = BENCH_KEY
    log: Path | None = None
    knobs: dict[str, Any] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The API base URL the CLI takes in ``CHARGEBEE_BASE_URL``."""
        return f"{self.origin}/api/v2"

    def state(self, *, orders: bool = True) -> dict[str, Any]:
        """The sandbox's ``GET /__sandbox/state`` (orders, counts, request log)."""
        query = "" if orders else "?orders=false&events=false"
        result: dict[str, Any] = http_json(f"{self.origin}/__sandbox/state{query}", timeout=60.0)
        return result

    def configure(self, **knobs: Any) -> None:
        """Change runtime knobs (``POST /__sandbox/config``)."""
        http_json(f"{self.origin}/__sandbox/config", method="POST", body=knobs)
        self.knobs.update(knobs)

    def reset(self) -> None:
        """Forget orders and the request log (``POST /__sandbox/reset``) if the sandbox has it."""
        http_json(f"{self.origin}/__sandbox/reset", method="POST", body={})

    def stop(self) -> None:
        """Terminate the subprocess (bounded wait, then kill)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def wait_ready(
    origin: str, proc: subprocess.Popen[bytes], timeout: float = READY_TIMEOUT_S
) -> None:
    """Poll ``/__sandbox/state`` until it answers (bounded), or fail with the reason."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"sandbox exited early with code {proc.returncode}")
        try:
            http_json(f"{origin}/__sandbox/state", timeout=2.0)
            return
        except (OSError, urllib.error.URLError, ValueError):
            time.sleep(0.05)
    raise RuntimeError(f"sandbox at {origin} not ready after {timeout:.0f}s")


@contextlib.contextmanager
def sandbox_process(
    *, api_key: str = BENCH_KEY, log_dir: Path | None = None, **knobs: Any
) -> Iterator[SandboxProcess]:
    """Start ``python -m sandbox`` on a free port, apply ``knobs``, yield it, always stop it.

    Args:
        api_key: the key the sandbox accepts.
        log_dir: where its stdout/stderr go (default: discarded).
        **knobs: runtime knobs (``latency_ms``, ``rate_limit_per_minute``, ``window_s``, ...),
            applied via the control endpoint once it is up.
    """
    port = free_port()
    cmd = [sys.executable, "-m", "sandbox", "--port", str(port), "--api-key", api_key]
    cmd += ["--rate-limit", "0", "--concurrency-limit", "0"]  # off unless knobs set them
    out: Any = subprocess.DEVNULL
    log = None
    if log_dir is not None:
        log = log_dir / f"sandbox-{port}.log"
        out = log.open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGEBEE_")}
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    box = SandboxProcess(port=port, proc=proc, api_key=api_key, log=log)
    try:
        wait_ready(box.origin, proc)
        if knobs:
            box.configure(**knobs)
        yield box
    finally:
        box.stop()
        if log_dir is not None:
            out.close()


@dataclass(frozen=True)
class ChildRun:
    """A finished subprocess: exit code, wall seconds, CPU seconds (user + system), output."""

    returncode: int
    wall_s: float
    cpu_s: float
    stdout: str
    stderr: str


def children_cpu() -> float:
    """User + system CPU seconds of every waited-for child process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_child(
    cmd: Sequence[str], *, env: dict[str, str], timeout: float, cwd: Path | None = None
) -> ChildRun:
    """Run a subprocess to completion (bounded by ``timeout``) and measure its wall and CPU time.

    CPU comes from ``RUSAGE_CHILDREN`` before/after, so only children waited for in between
    count: run nothing else concurrently (the sandbox subprocess is still running, so it
    does not count).
    """
    cpu0 = children_cpu()
    t0 = time.perf_counter()
    done = subprocess.run(
        list(cmd), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    wall = time.perf_counter() - t0
    return ChildRun(done.returncode, wall, children_cpu() - cpu0, done.stdout, done.stderr)


def machine() -> dict[str, str]:
    """What the figures were measured on: cores, CPU model, Python, platform."""
    import platform

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ""
    with contextlib.suppress(OSError):
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return {
        "nproc": str(os.cpu_count() or "?"),
        "cpu": model or platform.processor() or "?",
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "loadavg": load,
    }
