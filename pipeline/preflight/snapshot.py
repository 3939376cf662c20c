"""``order-import snapshot FILE``: the site's invoices, read-only, into a sandbox seed file.

Pages ``GET /invoices?limit=100`` (``next_offset``, bounded) through the same client, rate
limiter and retry policy as a run, and writes the seed file ``python -m sandbox --invoices``
/ ``order-import sandbox --invoices`` reads: CSV, UTF-8, header
``id,customer_id,subscription_id,currency_code,total`` (total in minor units). A rehearsal on
a sandbox seeded from it fails exactly where a run on the site would (docs/preflight.md).
"""

from __future__ import annotations

import csv
import os
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from pipeline.api.client import ChargebeeClient
from pipeline.api.listing import Lister
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import RetryPolicy
from pipeline.config import Settings
from pipeline.errors import ConfigError, PermanentApiError
from pipeline.progress import Progress, make_progress

if TYPE_CHECKING:
    import httpx

__all__ = ["MAX_SNAPSHOT_PAGES", "SEED_COLUMNS", "SnapshotResult", "snapshot_invoices"]

SEED_COLUMNS = ("id", "customer_id", "subscription_id", "currency_code", "total")
"""The seed file's header (the sandbox's contract)."""
MAX_SNAPSHOT_PAGES = 100_000
"""Pages read before the snapshot is given up on (10 million invoices)."""


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    """What a snapshot wrote."""

    path: Path
    invoices: int
    requests: int


def snapshot_invoices(
    settings: Settings,
    path: Path,
    *,
    max_pages: int = MAX_SNAPSHOT_PAGES,
    progress: Progress | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> SnapshotResult:
    """Read every invoice of the configured site into the seed file ``path`` (replaced whole,
    only once the listing is complete).

    Raises:
        ConfigError: no key, a live site without ``--live``, or ``path`` cannot be written.
        ApiError: the site could not be read (nothing is written).
    """
    settings.check_target()
    settings.require_api_key()
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir() or not folder.is_dir():
        raise ConfigError(f"{path}: cannot write the snapshot there (not a file in a folder)")
    progress = progress or make_progress(quiet=settings.quiet, log_json=settings.log_json)
    partial = folder / f".{path.name}.{os.getpid()}.part"
    try:
        try:
            handle = partial.open("w", encoding="utf-8", newline="")
        except OSError as err:
            raise ConfigError(f"{path}: cannot write the snapshot ({err.strerror})") from None
        with handle:
            writer = csv.writer(handle)
            writer.writerow(SEED_COLUMNS)
            count, requests = anyio.run(_read, settings, writer, max_pages, progress, transport)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
        progress.close()
    return SnapshotResult(path, count, requests)


async def _read(
    settings: Settings,
    writer: Any,
    max_pages: int,
    progress: Progress,
    transport: httpx.AsyncBaseTransport | None,
) -> tuple[int, int]:
    limiter = RateLimiter.from_settings(settings)
    count = 0
    async with ChargebeeClient(settings, transport=transport) as client:
        lister = Lister(client, limiter, RetryPolicy.from_settings(settings))
        progress.event("snapshot", message="snapshot: reading the site's invoices")
        async with aclosing(lister.pages("invoice", {}, max_pages=max_pages)) as pages:
            async for page in pages:
                for invoice in page:
                    writer.writerow(_seed_row(client, invoice))
                count += len(page)
                progress.event("snapshot", message=f"snapshot: {count:,} invoice(s) read")
        if not lister.complete:
            raise PermanentApiError(
                f"GET /invoices still had a next_offset after {max_pages} pages; stopped "
                "(nothing written)",
                api_error_code="paging_loop",
            )
    return count, lister.requests


def _seed_row(client: ChargebeeClient, invoice: dict[str, Any]) -> list[str]:
    """One seed line: text scrubbed of the key and made printable; total an integer or blank."""
    cells: list[str] = []
    for name in SEED_COLUMNS:
        value = invoice.get(name)
        if name == "total":
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            cells.append(str(value) if ok else "")
        else:
            cells.append("" if value is None else client.safe_text(str(value))[:100])
    return cells
