"""Paged reads of Chargebee's list endpoints (``GET /orders``, ``GET /invoices``) for pre-flight
and the invoice snapshot: every page one request through the shared ``RateLimiter`` and
``send_with_retries``, ``limit=100``, ``next_offset`` followed a bounded number of times.

Filters use the list conventions of FACTS §4: ``id[in]=["a","b"]`` (a JSON array of strings),
at most ``MAX_IDS`` values per request.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.api.client import ChargebeeClient
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import AttemptInfo, RetryPolicy, send_with_retries
from pipeline.errors import PermanentApiError

__all__ = ["MAX_IDS", "PAGE_LIMIT", "Lister", "Listing", "chunks"]

PAGE_LIMIT = 100
"""The largest page the list endpoints give (FACTS §8)."""
MAX_IDS = 100
"""Values per ``[in]`` filter in one request."""
MAX_PAGES_PER_LOOKUP = 100
"""Pages followed for one ``[in]`` look-up (100 invoices with many orders each) before it is
given up on: a bound, never reached by a normal site."""

Resource = Literal["order", "invoice"]


def chunks(values: Sequence[str], size: int = MAX_IDS) -> Iterator[list[str]]:
    """``values`` without repeats (first seen first), in lists of at most ``size``."""
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


@dataclass(slots=True)
class _Paging:
    """One listing's own state (a ``Lister`` may run several listings at once)."""

    complete: bool = False


@dataclass(frozen=True, slots=True)
class Listing:
    """What a bounded listing found."""

    items: list[dict[str, Any]]
    complete: bool
    """False when ``max_pages`` pages were read and the server still had a ``next_offset``."""
    pages: int


class Lister:
    """Reads list endpoints page by page; counts every HTTP attempt in ``requests``.

    Args:
        client: the open client.
        limiter: the run's rate limiter (pre-flight spends the same budget as the sends).
        policy: the retry policy (429s, transient errors) of every other request.
        on_attempt: called after every attempt (the runner logs it in the ledger).
    """

    def __init__(
        self,
        client: ChargebeeClient,
        limiter: RateLimiter,
        policy: RetryPolicy,
        *,
        on_attempt: Callable[[AttemptInfo], None] | None = None,
    ) -> None:
        self.client = client
        self.limiter = limiter
        self.policy = policy
        self.on_attempt = on_attempt
        self.requests = 0
        """HTTP attempts of every listing of this ``Lister`` (per call: ``on_request``)."""
        self.complete = False
        """Whether the last ``pages`` listing reached its last page."""

    async def _call(
        self,
        fn: Callable[[], Awaitable[tuple[list[dict[str, Any]], str | None]]],
        on_request: Callable[[], None] | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        def counted(info: AttemptInfo) -> None:
            self.requests += 1
            if on_request is not None:
                on_request()
            if self.on_attempt is not None:
                self.on_attempt(info)

        result, _ = await send_with_retries(
            fn, limiter=self.limiter, policy=self.policy, on_attempt=counted
        )
        return result

    async def pages(
        self,
        resource: Resource,
        filters: Mapping[str, Any],
        *,
        max_pages: int,
        on_request: Callable[[], None] | None = None,
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """Yield each page of ``resource`` matching ``filters``, following ``next_offset`` for
        up to ``max_pages`` pages; ``self.complete`` tells afterwards whether the listing ended
        (one listing at a time: concurrent listings use ``listing``, which keeps its own).

        Args:
            on_request: called once per HTTP attempt this listing makes (per-call request
                accounting that stays exact when listings of one ``Lister`` run concurrently).

        Raises:
            PermanentApiError: ``paging_loop``: the server repeated a ``next_offset`` (the
                listing would never end).
            ApiError: a request failed after its retries.
        """
        paging = _Paging()
        self.complete = False
        found = self._pages(
            resource, filters, max_pages=max_pages, paging=paging, on_request=on_request
        )
        async with aclosing(found):
            async for page in found:
                yield page
        self.complete = paging.complete

    async def _pages(
        self,
        resource: Resource,
        filters: Mapping[str, Any],
        *,
        max_pages: int,
        paging: _Paging,
        on_request: Callable[[], None] | None,
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """``pages``, with whether the listing ended kept in ``paging`` (one per listing)."""
        offset: str | None = None
        seen: set[str] = set()
        for page_number in range(1, max_pages + 1):
            page, offset = await self._call(
                functools.partial(
                    self.client.list_page, resource, filters, limit=PAGE_LIMIT, offset=offset
                ),
                on_request,
            )
            yield page
            if offset is None:
                paging.complete = True
                return
            if offset in seen:
                raise PermanentApiError(
                    f"GET /{resource}s page {page_number} gave next_offset {offset[:60]!a} "
                    "again: the listing would never end, so it was stopped",
                    api_error_code="paging_loop",
                )
            seen.add(offset)

    async def listing(
        self,
        resource: Resource,
        filters: Mapping[str, Any],
        *,
        max_pages: int,
        strict: bool = True,
        on_request: Callable[[], None] | None = None,
    ) -> Listing:
        """Every ``resource`` matching ``filters`` (``pages`` collected). Safe to run
        concurrently with other listings of this ``Lister``.

        Args:
            strict: past ``max_pages`` raise instead of returning ``complete=False``.
            on_request: called once per HTTP attempt of this listing (see ``pages``).

        Raises:
            PermanentApiError: ``paging_loop``: a repeated ``next_offset``, or (``strict``) the
                server still had pages after ``max_pages``.
            ApiError: a request failed after its retries.
        """
        found: list[dict[str, Any]] = []
        count = 0
        paging = _Paging()
        pages = self._pages(
            resource, filters, max_pages=max_pages, paging=paging, on_request=on_request
        )
        async with aclosing(pages):
            async for page in pages:
                found.extend(page)
                count += 1
        if not paging.complete and strict:
            raise PermanentApiError(
                f"GET /{resource}s still had a next_offset after {max_pages} pages; stopped",
                api_error_code="paging_loop",
            )
        return Listing(found, paging.complete, count)

    async def by_values(
        self,
        resource: Resource,
        field: str,
        values: Sequence[str],
        *,
        max_pages: int = MAX_PAGES_PER_LOOKUP,
        on_request: Callable[[], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Every ``resource`` whose ``field`` is one of ``values``: one ``field[in]`` request
        per ``MAX_IDS`` values (more only when one look-up's answer spans pages); safe to run
        concurrently, ``on_request`` as in ``pages``."""
        found: list[dict[str, Any]] = []
        for part in chunks(values):
            result = await self.listing(
                resource, {field: {"in": part}}, max_pages=max_pages, on_request=on_request
            )
            found.extend(result.items)
        return found
