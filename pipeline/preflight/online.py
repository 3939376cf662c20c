"""``validate --online``: the pre-flight checks for a file's valid rows, read-only, no ledger.

The rows are checked exactly as a run would check them (``Preflight``), through the same
client, limiter and retry policy; nothing is written to a ledger and nothing is sent. What
pre-flight would hold back goes to ``preflight.csv`` next to validation.csv.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from pipeline.api.client import ChargebeeClient
from pipeline.api.listing import Lister
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import RetryPolicy
from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.models import Outcome, WorkItem
from pipeline.preflight.check import Preflight, PreflightStats, Verify
from pipeline.safety import safe_cell

if TYPE_CHECKING:
    import httpx

__all__ = ["PREFLIGHT_COLUMNS", "OnlineResult", "check_online", "write_preflight_csv"]

PREFLIGHT_COLUMNS = ("source_line", "row_key", "order_id", "state", "code", "param", "message")
"""Columns of preflight.csv (one line per row pre-flight would not send)."""


@dataclass(frozen=True, slots=True)
class OnlineResult:
    """What the online checks found for a file's valid rows."""

    stats: PreflightStats
    held: list[tuple[WorkItem, Outcome]]
    """Rows pre-flight would not send, with the outcome a run would record, in file order."""


def check_online(
    settings: Settings,
    items: Sequence[WorkItem],
    *,
    verify: Verify,
    several_per_invoice: bool,
    transport: httpx.AsyncBaseTransport | None = None,
) -> OnlineResult:
    """Run the pre-flight look-ups for ``items`` (read-only).

    Raises:
        ConfigError: no key, or a live site without ``--live``.
        ApiError: a look-up failed after its retries.
    """
    settings.check_target()
    settings.require_api_key()
    return anyio.run(_check, settings, items, verify, several_per_invoice, transport)


async def _check(
    settings: Settings,
    items: Sequence[WorkItem],
    verify: Verify,
    several_per_invoice: bool,
    transport: httpx.AsyncBaseTransport | None,
) -> OnlineResult:
    limiter = RateLimiter.from_settings(settings, concurrency=settings.concurrency)
    async with ChargebeeClient(settings, transport=transport) as client:
        lister = Lister(client, limiter, RetryPolicy.from_settings(settings))
        checker = Preflight(
            lister,
            batch="",
            run_id=0,
            verify=verify,
            several_per_invoice=several_per_invoice,
            expected_rows=len(items),
            parallel=settings.concurrency,
        )
        _, held = await checker.check(items)
    by_key = {item.row_key: item for item in items}
    return OnlineResult(checker.stats, [(by_key[o.row_key], o) for o in held])


def write_preflight_csv(result: OnlineResult, path: Path) -> None:
    """Write preflight.csv (UTF-8 with a BOM, like validation.csv).

    Raises:
        ConfigError: the file cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8-sig") as handle:
            writer = csv.writer(handle)
            writer.writerow(PREFLIGHT_COLUMNS)
            for item, outcome in result.held:
                cells = [
                    item.source_line,
                    item.row_key,
                    item.order_id or "",
                    outcome.state,
                    outcome.error_code or outcome.resolution or "",
                    outcome.param or "",
                    outcome.message or "",
                ]
                writer.writerow([safe_cell(c) for c in cells])
    except OSError as err:
        raise ConfigError(f"{path}: cannot write ({err.strerror})") from None
