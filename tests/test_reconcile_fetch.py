"""Fetching for reconciliation: export polling pace, failures, and the list fallback over HTTP."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import RetryPolicy
from pipeline.cli import main
from pipeline.config import load_settings
from pipeline.errors import PermanentApiError
from pipeline.reconcile.fetch import Fetcher
from pipeline.reconcile.reconcile import poll_interval, reconcile_batch
from tests.orders_factory import write_orders

KEY = "fetch_test_key"


class StubExports:
    """A client stand-in for the export endpoints (unit test of the fetcher only)."""

    def __init__(self, statuses: list[str]) -> None:
        self.statuses = statuses
        self.polls = 0

    async def export_orders(self, filters: dict[str, Any]) -> dict[str, Any]:
        """The export job, in process."""
        return {"id": "E1", "status": "in_process"}

    async def retrieve_export(self, export_id: str) -> dict[str, Any]:
        """The next status in the script; completed ones carry a download URL."""
        status = self.statuses[min(self.polls, len(self.statuses) - 1)]
        self.polls += 1
        body: dict[str, Any] = {"id": export_id, "status": status}
        if status == "completed":
            body["download"] = {"download_url": "http://127.0.0.1/x.zip"}
        return body

    async def download(self, url: str) -> bytes:
        """A zip with one orders.csv."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("orders.csv", "id,status\nA-1,shipped\n")
        return buffer.getvalue()


def fetcher(client: StubExports, sleeps: list[float]) -> Fetcher:
    """A fetcher over the stub, recording its sleeps."""

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    limiter = RateLimiter(6000, burst=10, concurrency=1, max_throttle_wait=1)
    return Fetcher(client, limiter, RetryPolicy(), sleep=sleep)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_export_polls_are_spaced_by_the_poll_interval():
    """Every poll after the trigger waits poll_seconds first; the CSV is read at the end."""
    sleeps: list[float] = []
    client = StubExports(["in_process", "in_process", "completed"])
    orders = await fetcher(client, sleeps).via_export({}, poll_seconds=10.0)
    assert orders == [{"id": "A-1", "status": "shipped"}]
    assert sleeps == [10.0, 10.0, 10.0]
    assert client.polls == 3


@pytest.mark.anyio
async def test_failed_or_endless_exports_raise_permanent_errors():
    """A failed export and one still running after max_polls are clear PermanentApiErrors."""
    with pytest.raises(PermanentApiError, match="failed"):
        await fetcher(StubExports(["failed"]), []).via_export({}, poll_seconds=0)
    with pytest.raises(PermanentApiError, match="still in process") as info:
        await fetcher(StubExports(["in_process"]), []).via_export({}, poll_seconds=0, max_polls=3)
    assert info.value.api_error_code == "export_timeout"


def test_poll_interval_is_never_below_ten_seconds_off_loopback():
    """A real Chargebee site is polled at most every 10 s; the sandbox as configured."""
    live = load_settings({"export_poll_seconds": 0.1}, environ={"CHARGEBEE_SITE": "acme-test"})
    local = load_settings(
        {"export_poll_seconds": 0.1},
        environ={"CHARGEBEE_BASE_URL": "http://127.0.0.1:9/api/v2"},
    )
    assert poll_interval(live) == 10.0
    assert poll_interval(local) == 0.1


class UnknownLayoutTransport(httpx.AsyncBaseTransport):
    """Real HTTP to the sandbox, except the export download, which has unknown columns."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Swap the zip's CSV for one without any recognisable column."""
        if request.url.path.endswith(".zip"):
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                archive.writestr("orders.csv", "Col A,Col B\n1,2\n")
            return httpx.Response(200, content=buffer.getvalue())
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the real transport."""
        await self.inner.aclose()


def test_auto_falls_back_to_the_list_when_the_export_layout_is_unknown(
    make_sandbox, tmp_path, monkeypatch
):
    """--via auto: an unreadable export is noted and GET /orders is used; --via export fails."""
    monkeypatch.chdir(tmp_path)
    server = make_sandbox(api_key=KEY, export_delay_s=0.05)
    env = {"CHARGEBEE_API_KEY": KEY, "CHARGEBEE_BASE_URL": server.base_url}
    source = write_orders(tmp_path / "orders.csv", 5)
    ran = CliRunner().invoke(
        main, ["run", str(source), "--batch", "b1", "--quiet"], env=env, catch_exceptions=False
    )
    assert ran.exit_code == 0, ran.output
    settings = load_settings({"export_poll_seconds": 0.05}, environ=env)
    result = reconcile_batch(
        settings, "b1", via="auto", out_dir=Path("out"), transport=UnknownLayoutTransport()
    )
    assert result.source == "list"
    assert result.exit_code == 0
    assert result.matched == 5
    assert any("export unusable" in note for note in result.notes)
    document = json.loads(result.json_path.read_text(encoding="utf-8"))
    assert document["source"] == "list"
    with pytest.raises(PermanentApiError, match="no order id column"):
        reconcile_batch(
            settings, "b1", via="export", out_dir=Path("out"), transport=UnknownLayoutTransport()
        )
