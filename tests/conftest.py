"""Shared fixtures: the anyio backend and live sandboxes (uvicorn on 127.0.0.1, ephemeral port).

Sandbox fixtures (see docs/sandbox.md for every knob):

* ``sandbox`` — a started ``sandbox.server.SandboxServer`` with the default config but limits OFF
  (``rate_limit_per_minute=None, concurrency_limit=None``) so tests run fast. Use
  ``sandbox.base_url`` (``http://127.0.0.1:PORT/api/v2``) as the Chargebee base URL and
  ``sandbox.api_key`` (``test_sandbox_key``) as the key; ``sandbox.state()`` returns
  ``GET /__sandbox/state``.
* ``make_sandbox(**config_kwargs) -> SandboxServer`` — a factory for sandboxes with other knobs
  (``SandboxConfig`` fields, e.g. ``make_sandbox(rate_limit_per_minute=5, window_s=2)``); each is
  started on its own ephemeral port. Limits are OFF unless passed explicitly. All are stopped at
  teardown.
* ``sandbox_client`` — an ``httpx.Client`` on ``sandbox.base_url``, the sandbox key as Basic auth.
* ``valid_order(**overrides) -> dict[str, str]`` — form params of a valid import_order request
  (unique ``id`` ``ORD-<n>``, invoice ``INV-<n>``, status ``delivered``, Unix-second dates);
  pass ``name=None`` to leave a parameter out.

Under ``CI=true`` a skipped test fails (``pytest_runtest_makereport`` below): a proof that
cannot run in CI (no Chromium, a missing dev dependency) must not pass silently. Shared
helpers for tests and bench live in ``tests/support.py``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Generator, Iterator
from typing import Any

import httpx
import pytest

from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer
from tests.sandbox_process import Running


def ci_forbids_skips() -> bool:
    """True under ``CI=true`` (GitHub Actions, GitLab and ``.ci/run`` set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Under CI, turn a skip (not an expected failure) into a failure naming the reason."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and ci_forbids_skips():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every proof: {reason}"


FAST_LIMITS: dict[str, Any] = {"rate_limit_per_minute": None, "concurrency_limit": None}
"""Limits off: what the ``sandbox`` fixture and ``make_sandbox`` use unless told otherwise."""


@pytest.fixture
def anyio_backend() -> str:
    """Run anyio tests on asyncio only (the tool's runtime)."""
    return "asyncio"


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """Factory ``make_sandbox(**SandboxConfig kwargs) -> started SandboxServer`` (limits off by
    default); every sandbox it made is stopped at teardown."""
    servers: list[SandboxServer] = []

    def factory(**config_kwargs: Any) -> SandboxServer:
        config = SandboxConfig(**{**FAST_LIMITS, **config_kwargs})
        server = SandboxServer(config).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    """A started sandbox with default knobs and limits off; stopped at teardown."""
    return make_sandbox()


@pytest.fixture
def sandbox_client(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """An httpx client on the ``sandbox`` fixture's base URL, authenticated with its key."""
    with httpx.Client(base_url=sandbox.base_url, auth=(sandbox.api_key, ""), timeout=10) as client:
        yield client


@pytest.fixture
def valid_order() -> Callable[..., dict[str, str]]:
    """Factory of valid import_order form params; overrides replace (None removes) a param."""
    counter = itertools.count(1)

    def factory(**overrides: Any) -> dict[str, str]:
        n = next(counter)
        params: dict[str, Any] = {
            "id": f"ORD-{n}",
            "invoice_id": f"INV-{n}",
            "status": "delivered",
            "created_at": "1600000000",
            "order_date": "1600000000",
            "shipping_date": "1600086400",
        }
        params.update(overrides)
        return {k: str(v) for k, v in params.items() if v is not None}

    return factory


@pytest.fixture
def sandboxes() -> Iterator[list[Running]]:
    """Sandbox processes a test started (``tests/sandbox_process.py``); all stopped at teardown."""
    started: list[Running] = []
    yield started
    for server in started:
        server.stop()
