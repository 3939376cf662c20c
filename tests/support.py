"""Helpers shared by tests and bench: CLI subprocesses aimed at a sandbox, and the maths that
reads the sandbox's request log (what reached the server, per order id, in time order).

Imports nothing from ``bench`` (bench may import this module, never the other way round) and
nothing from ``pipeline`` at module level, so a subprocess-only test stays light. Every wait here
is bounded in time.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from click.testing import Result

IMPORT_PATH = "/api/v2/orders/import_order"
CONTRACT_PATH = Path(__file__).parent / "data" / "orders_contract.json"
"""Chargebee's published contract for the order endpoints (an OpenAPI extract; see its NOTES)."""
RUN_TIMEOUT_S = 180.0


class Server(Protocol):
    """What these helpers need of a sandbox (``sandbox.server.SandboxServer`` has it)."""

    @property
    def base_url(self) -> str:
        """The API base URL (``http://127.0.0.1:PORT/api/v2``)."""
        ...

    def state(
        self, *, orders: bool = True, events: bool = True, requests: bool = True
    ) -> dict[str, Any]:
        """``GET /__sandbox/state``."""
        ...


# -- the published contract ----------------------------------------------------------------


@functools.cache
def contract() -> dict[str, Any]:
    """``tests/data/orders_contract.json``, parsed once."""
    data: dict[str, Any] = json.loads(CONTRACT_PATH.read_text(encoding="utf-8"))
    return data


def contract_enum(operation: str, param: str) -> tuple[str, ...]:
    """The values the contract lists for one param of one operation (expected values for
    sandbox tests: never the sandbox's own constants)."""
    return tuple(contract()["operations"][operation]["params"][param]["enum"])


# -- the CLI in a subprocess -----------------------------------------------------------------


def base_url_of(target: Server | str) -> str:
    """The API base URL of a sandbox, or ``target`` itself when it is already a URL."""
    return target if isinstance(target, str) else target.base_url


def cli_env(target: Server | str, key: str) -> dict[str, str]:
    """Environment for a CLI subprocess aimed at ``target`` (a sandbox or a base URL): this
    process's environment without any host ``CHARGEBEE_*`` / ``ORDER_IMPORT*`` variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHARGEBEE_", "ORDER_IMPORT"))}
    env.update({"CHARGEBEE_API_KEY": key, "CHARGEBEE_BASE_URL": base_url_of(target)})
    return env


def cli(*args: str) -> list[str]:
    """The ``order-import`` command line for a subprocess (this interpreter, this checkout)."""
    return [sys.executable, "-m", "pipeline", *args]


def run_cli(
    server: Server,
    key: str,
    *args: str,
    timeout: float = RUN_TIMEOUT_S,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (bounded), output captured; in ``cwd`` when given (where the
    default ledger and ``reports/`` land, as for a person running it in that folder)."""
    return subprocess.run(
        cli(*args),
        cwd=cwd,
        env=cli_env(server, key),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def invoke(
    target: Server | str, key: str, *args: str, extra_env: dict[str, str] | None = None
) -> Result:
    """The CLI in-process (click's runner) aimed at ``target`` (a sandbox or a base URL);
    exceptions propagate."""
    from click.testing import CliRunner

    from pipeline.cli import main

    env = {"CHARGEBEE_API_KEY": key, "CHARGEBEE_BASE_URL": base_url_of(target)}
    env.update(extra_env or {})
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def kill9(proc: subprocess.Popen[Any]) -> bool:
    """SIGKILL the process if it is still going (then reap it, bounded); True if it was killed."""
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    return killed


def assert_clean_exit(result: subprocess.CompletedProcess[str], code: int = 0) -> None:
    """Exit code as expected and no traceback in the output."""
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text
    assert result.returncode == code, text


# -- the sandbox's state ---------------------------------------------------------------------


def request_log(server: Server) -> list[dict[str, Any]]:
    """The sandbox's request log (API requests, arrival order)."""
    return list(server.state(orders=False, events=False)["requests"])


def imported_ids(server: Server) -> Counter[str]:
    """Live (not deleted) orders per id in the sandbox."""
    return Counter(o["id"] for o in server.state(events=False, requests=False)["orders"]
                   if not o.get("deleted"))  # fmt: skip


def expected_ids(prefix: str, count: int) -> Counter[str]:
    """``{prefix}-000000..`` once each: what ``tests.orders_factory.write_orders`` writes."""
    return Counter({f"{prefix}-{i:06d}": 1 for i in range(count)})


def wait_until_answering(base_url: str, timeout: float, what: str = "sandbox") -> None:
    """Poll the control API of the sandbox serving ``base_url`` (``.../api/v2``) until it
    answers; AssertionError naming ``what`` after ``timeout`` seconds."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(base_url.replace("/api/v2", "/__sandbox/config"), timeout=2)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"{what}: never answered"
            time.sleep(0.05)


def wait_for_requests(
    server: Server,
    at_least: int,
    proc: subprocess.Popen[Any] | None = None,
    timeout: float = 60.0,
) -> bool:
    """Wait (bounded) until the sandbox logged ``at_least`` requests; False if ``proc`` ended
    first. Raises AssertionError on timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if len(request_log(server)) >= at_least:
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.01)
    raise AssertionError(f"sandbox saw fewer than {at_least} requests in {timeout}s")


# -- request-log maths -----------------------------------------------------------------------


def api_requests(state: dict[str, Any], *, method: str = "POST", path_part: str = "") -> list[Any]:
    """The request-log entries of API calls (control endpoints excluded)."""
    return [
        r
        for r in state.get("requests", [])
        if r.get("method") == method
        and "/api/" in str(r.get("path", ""))
        and path_part in str(r.get("path", ""))
    ]


def max_in_window(times: Sequence[float], window_s: float) -> int:
    """The most timestamps in any half-open window ``[t, t + window_s)`` (two pointers, O(n))."""
    ordered = sorted(times)
    best = 0
    left = 0
    for right, t in enumerate(ordered):
        while ordered[left] <= t - window_s:
            left += 1
        best = max(best, right - left + 1)
    return best


def is_import(entry: dict[str, Any]) -> bool:
    """A ``POST /orders/import_order`` (the only request that can create an order)."""
    return bool(entry["method"] == "POST" and entry["path"] == IMPORT_PATH)


def is_lookup(entry: dict[str, Any], order_id: str) -> bool:
    """A ``GET /orders/{order_id}``."""
    return entry["method"] == "GET" and entry.get("order_id") == order_id


def import_posts(log: Iterable[dict[str, Any]]) -> Counter[str]:
    """How many import POSTs reached the server per order id, not counting 429 answers (the
    sandbox refuses those before it reads the request: nothing can have been created)."""
    return Counter(str(r["order_id"]) for r in log if is_import(r) and r["status"] != 429)


def keys_per_id(log: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    """The idempotency keys each order id's import POSTs carried."""
    found: dict[str, set[str]] = defaultdict(set)
    for r in log:
        if is_import(r):
            found[str(r["order_id"])].add(str(r["idempotency_key"]))
    return dict(found)


def duplicate_answers(log: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Import POSTs answered ``duplicate_entry``."""
    return [r for r in log if is_import(r) and r.get("api_error_code") == "duplicate_entry"]


def replayed_answers(log: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Requests answered with a stored answer (``chargebee-idempotency-replayed``)."""
    return [r for r in log if r.get("replayed")]


def duplicates_not_looked_up(log: Sequence[dict[str, Any]]) -> list[str]:
    """Order ids with a ``duplicate_entry`` answer that no later ``GET /orders/{id}`` followed."""
    missing: list[str] = []
    for i, r in enumerate(log):
        if is_import(r) and r.get("api_error_code") == "duplicate_entry":
            oid = str(r["order_id"])
            if not any(is_lookup(later, oid) for later in log[i + 1 :]):
                missing.append(oid)
    return missing


def posted_before_lookup(log: Sequence[dict[str, Any]], boundary: int) -> list[str]:
    """Order ids POSTed before ``boundary`` (a resume's first log index) whose first request
    from ``boundary`` on was another POST, not a ``GET /orders/{id}``: rows in doubt that were
    resent without being looked up first."""
    earlier = {str(r["order_id"]) for r in log[:boundary] if is_import(r)}
    first_after: dict[str, dict[str, Any]] = {}
    for r in log[boundary:]:
        oid = r.get("order_id")
        if oid is not None and str(oid) in earlier and str(oid) not in first_after:
            first_after[str(oid)] = r
    return sorted(oid for oid, r in first_after.items() if is_import(r))


def assert_each_row_posted_once(log: Sequence[dict[str, Any]], expected: Counter[str]) -> None:
    """Fault-free runs (kills and resumes allowed): exactly one import POST per row reached the
    server, none answered ``duplicate_entry``, none answered by replay."""
    posts = import_posts(log)
    twice = {oid: n for oid, n in posts.items() if n > 1}
    assert not twice, f"rows POSTed more than once: {dict(list(twice.items())[:10])}"
    assert posts == expected, "import POSTs per id differ from one per row"
    dups = [r["order_id"] for r in duplicate_answers(log)]
    assert dups == [], f"duplicate_entry answers: {dups[:10]}"
    replays = [r["order_id"] for r in replayed_answers(log)]
    assert replays == [], f"replayed answers: {replays[:10]}"


def assert_resumes_looked_up_first(
    log: Sequence[dict[str, Any]], boundaries: Sequence[int]
) -> None:
    """After each resume (a request-log index where a run started), every row an earlier run
    had POSTed was looked up (GET) before any new POST of it: in-doubt rows never resent blind."""
    for boundary in boundaries:
        assert posted_before_lookup(log, boundary) == [], f"in-doubt rows resent at {boundary}"


def assert_one_key_per_row(log: Sequence[dict[str, Any]]) -> None:
    """Every import POST of one order id carried the same idempotency key (retries and resumes
    of an unchanged row reuse it)."""
    many = {oid: keys for oid, keys in keys_per_id(log).items() if len(keys) > 1}
    assert not many, f"rows sent under several idempotency keys: {dict(list(many.items())[:5])}"


def assert_duplicates_looked_up(log: Sequence[dict[str, Any]]) -> None:
    """Every ``duplicate_entry`` answer was followed by a ``GET /orders/{id}`` of that id."""
    missing = duplicates_not_looked_up(log)
    assert missing == [], f"duplicate_entry answers never verified with a GET: {missing[:10]}"


def spans(times: Sequence[float]) -> list[float]:
    """Seconds from the first timestamp to each one (sorted)."""
    ordered = sorted(times)
    return [t - ordered[0] for t in ordered]


# -- the real send path at a scaled clock (tests/test_rate_at_sandbox.py, bench/bench_rate.py) --

RATE_WORKERS = 16


class ScaledClock:
    """A clock running ``scale`` times faster than the event loop's (sleeps shrink to match)."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def now(self) -> float:
        """Scaled monotonic seconds."""
        import anyio

        return anyio.current_time() * self.scale

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of scaled time."""
        import anyio

        await anyio.sleep(seconds / self.scale)


@dataclass(frozen=True)
class RateCase:
    """One limit and its time scale."""

    per_minute: int
    scale: float
    windows: float
    """Run length in (scaled) minutes."""

    @property
    def window_real_s(self) -> float:
        """One scaled minute in real seconds."""
        return 60.0 / self.scale


def rate_params(tag: str, i: int) -> dict[str, Any]:
    """A valid import_order payload with a unique id."""
    from tests.orders_factory import BASE_TS

    return {
        "id": f"{tag}-{i:06d}",
        "invoice_id": f"INV-{tag}-{i}",
        "status": "delivered",
        "created_at": BASE_TS,
        "order_date": BASE_TS,
        "shipping_date": BASE_TS + 86_400,
    }


async def drive(
    base_url: str, key: str, case: RateCase, tag: str, workers: int = RATE_WORKERS
) -> tuple[int, int]:
    """The real send path (RateLimiter + ChargebeeClient + send_with_retries, ``workers``
    tasks) posting import_order as fast as the scaled limiter allows until the run's end;
    (sent, api errors). Bounded by the run's length plus 60 s."""
    import anyio

    from pipeline.api.client import ChargebeeClient
    from pipeline.api.ratelimit import RateLimiter
    from pipeline.api.retry import RetryPolicy, send_with_retries
    from pipeline.config import load_settings
    from pipeline.errors import ApiError

    settings = load_settings(
        {"concurrency": workers},
        environ={"CHARGEBEE_API_KEY": key, "CHARGEBEE_BASE_URL": base_url},
    )
    limiter = RateLimiter(
        case.per_minute, concurrency=workers, clock=ScaledClock(case.scale), max_throttle_wait=600
    )
    policy = RetryPolicy(max_attempts=3, max_elapsed=30.0)
    deadline = time.monotonic() + case.windows * case.window_real_s
    counter = iter(range(10_000_000))
    sent = errors = 0

    async with ChargebeeClient(settings) as client:

        async def worker() -> None:
            nonlocal sent, errors
            for i in counter:
                if time.monotonic() >= deadline:
                    return
                call = functools.partial(
                    client.import_order, rate_params(tag, i), idempotency_key=f"{tag}-{i}"
                )
                try:
                    await send_with_retries(call, limiter=limiter, policy=policy)
                    sent += 1
                except ApiError:
                    errors += 1

        with anyio.fail_after(case.windows * case.window_real_s + 60):
            async with anyio.create_task_group() as group:
                for _ in range(workers):
                    group.start_soon(worker)
    return sent, errors
