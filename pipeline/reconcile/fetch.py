"""Fetch what Chargebee holds for a reconciliation: an orders export, or paging ``GET /orders``.

Every request goes through the shared ``RateLimiter`` and ``send_with_retries``. Export polls
are spaced by ``poll_seconds`` (Chargebee asks for at least 10 s, FACTS §7.2).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio

from pipeline.api.client import ChargebeeClient
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import RetryPolicy, send_with_retries
from pipeline.errors import PermanentApiError
from pipeline.reconcile.export import read_export_zip

T = TypeVar("T")
PAGE_LIMIT = 100
ID_CHUNK = 50
"""Ids per ``id[in]`` probe."""
MAX_PAGES = 100_000
"""Pages of ``GET /orders`` before a listing is given up on (10 million orders)."""
MAX_POLLS = 50
"""Polls before an export is given up on (the Python SDK's limit)."""

Sleep = Callable[[float], Awaitable[None]]


class Fetcher:
    """One client, limiter and retry policy, shared by every request of a reconciliation."""

    def __init__(
        self,
        client: ChargebeeClient,
        limiter: RateLimiter,
        policy: RetryPolicy,
        *,
        sleep: Sleep | None = None,
    ) -> None:
        self.client = client
        self.limiter = limiter
        self.policy = policy
        self.sleep = sleep or anyio.sleep
        self.requests = 0

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        async def attempt() -> T:
            self.requests += 1
            return await fn()

        result, _ = await send_with_retries(attempt, limiter=self.limiter, policy=self.policy)
        return result

    async def via_list(
        self, filters: dict[str, Any], *, max_pages: int = MAX_PAGES
    ) -> list[dict[str, Any]]:
        """Every order matching ``filters`` (``limit`` 100, following ``next_offset``).

        Raises:
            PermanentApiError: the server named an offset it had already given (paging would
                never end) or paged past ``max_pages`` (``paging_loop``).
        """
        found: list[dict[str, Any]] = []
        offset: str | None = None
        seen: set[str] = set()
        for page_number in range(1, max_pages + 1):
            page, offset = await self._call(functools.partial(self._page, filters, offset))
            found.extend(page)
            if offset is None:
                return found
            if offset in seen:
                raise PermanentApiError(
                    f"GET /orders page {page_number} gave next_offset {offset[:60]!a} again: "
                    "the listing would never end, so it was stopped",
                    api_error_code="paging_loop",
                )
            seen.add(offset)
        raise PermanentApiError(
            f"GET /orders still had a next_offset after {max_pages} pages; stopped",
            api_error_code="paging_loop",
        )

    async def _page(
        self, filters: dict[str, Any], offset: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        return await self.client.list_orders_page(filters, limit=PAGE_LIMIT, offset=offset)

    async def by_ids(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Orders with these ids, deleted ones included (``id[in]`` in chunks of ``ID_CHUNK``)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), ID_CHUNK):
            part = list(ids[start : start + ID_CHUNK])
            found.extend(await self.via_list({"id": {"in": part}, "include_deleted": True}))
        return found

    async def via_export(
        self, filters: dict[str, Any], *, poll_seconds: float, max_polls: int = MAX_POLLS
    ) -> list[dict[str, Any]]:
        """Trigger ``POST /exports/orders``, poll until completed, download and read the zip.

        Raises:
            PermanentApiError: the export failed, took too long, or its CSV layout is unknown.
        """
        export = await self._call(lambda: self.client.export_orders(filters))
        export_id = str(export.get("id"))
        for _ in range(max_polls):
            if export.get("status") == "completed":
                break
            if export.get("status") == "failed":
                raise PermanentApiError(
                    f"export {export_id} failed in Chargebee", api_error_code="export_failed"
                )
            await self.sleep(poll_seconds)
            export = await self._call(lambda: self.client.retrieve_export(export_id))
        else:
            raise PermanentApiError(
                f"export {export_id} still in process after {max_polls} polls",
                api_error_code="export_timeout",
            )
        url = str((export.get("download") or {}).get("download_url") or "")
        if not url:
            raise PermanentApiError(
                f"export {export_id} completed without a download URL",
                api_error_code="export_layout_unknown",
            )
        data = await self._call(lambda: self.client.download(url))
        return read_export_zip(data)
