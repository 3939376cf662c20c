"""Frozen values the ledger hands out: batch, run and row records, and planning statistics.

Part of the ledger (imports only ``models``); kept apart so the SQL modules stay about SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.models import Issue, Operation, Resolution, RowState


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """One batch: a named import of one input file, resumable across runs."""

    name: str
    operation: Operation
    source_file: str
    """The input file the batch was started with, as given on the command line."""
    input_sha256: str
    """sha256 of that input file, for the drift guard."""
    config_fingerprint: str
    """``Settings.fingerprint()`` when the batch was (last) opened."""
    created_at: float
    updated_at: float
    tool_version: str
    """order-import version that created (or last opened) the batch."""
    mapping_text: str | None = None
    """The mapping file's content the batch was planned with (None: API column names)."""
    encoding: str | None = None
    """The ``encoding`` setting the batch was planned with (None: detected, or not recorded)."""
    delimiter: str | None = None
    """The ``delimiter`` setting the batch was planned with (None: sniffed, or not recorded)."""
    sheet: str | None = None
    """The ``sheet`` setting the batch was planned with (None: the first sheet, or not
    recorded)."""


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One command run against a batch (``run``, ``retry``, ``update``, ``reconcile``...)."""

    id: int
    batch: str
    command: str
    started_at: float
    finished_at: float | None
    """None while running, or when the process died before ``finish_run``."""
    status: str
    """``running`` until finished; then what the runner reported (``done``, ``interrupted``...)."""
    counts: Mapping[str, int]
    """Rows of the batch by state when the run finished."""
    settings: Mapping[str, Any]
    """The settings summary the runner stored (never the API key)."""
    summary: Mapping[str, Any]
    """Whatever the runner passed to ``finish_run``."""
    rate_per_minute: float | None
    """Achieved requests per minute, when the runner reported it."""
    throttled: int
    """429 answers seen during the run, when the runner reported it."""


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """Every column of one ledger row, with ``raw``, ``params`` and ``issues`` decoded."""

    batch: str
    row_key: str
    operation: Operation
    source_file: str
    sheet: str | None
    source_line: int
    raw: Mapping[str, str]
    params: Mapping[str, Any]
    content_hash: str
    order_id: str | None
    state: RowState
    resolution: Resolution | None
    attempts: int
    http_status: int | None
    api_error_code: str | None
    error_code: str | None
    param: str | None
    message: str | None
    latency_ms: float | None
    issues: tuple[Issue, ...]
    idempotency_key: str | None
    updated_at: float
    last_run_id: int | None
    control: Mapping[str, Any] | None = None
    """``[control]`` fields of the row (never sent): ``amount`` (minor units) and ``currency``."""


@dataclass(frozen=True, slots=True)
class PlanStats:
    """What one ``plan()`` call did, counted over the rows it was given."""

    new: int = 0
    """Rows the ledger had never seen, now ``pending``."""
    unchanged_succeeded: int = 0
    """Already ``succeeded``: left untouched, never re-sent, no rate budget spent."""
    requeued_changed: int = 0
    """Were failed/retryable/conflict/invalid; content changed (or now valid): ``pending``."""
    invalid: int = 0
    """Rows that are ``invalid`` after planning (new or re-validated)."""
    skipped: int = 0
    """Rows a mapping ``[[skip]]`` rule excludes: ``skipped`` with their reason, never sent."""
    still_failed: int = 0
    """``failed`` or ``conflict`` with unchanged content: left as they were."""
    total: int = 0
    """Rows given to ``plan()``."""
    still_pending: int = 0
    """Were ``pending`` and stay ``pending`` (params refreshed)."""
    still_retryable: int = 0
    """``retryable`` with unchanged content: the runner re-sends them."""
    in_doubt: int = 0
    """``in_flight`` rows (left by a crash): untouched, the runner reconciles them."""
    rekeyed_unsent: int = 0
    """Never-sent rows that came back under a new row key (the mapping changed how rows are
    keyed): their old entries left the batch, the records are planned under the new keys."""
    changed_succeeded: int = 0
    """Already ``succeeded`` but the file now says something else: not re-sent (an import
    cannot change an order); see ``ChangedRow`` and ``order-import update``."""


@dataclass(frozen=True, slots=True)
class ChangedRow:
    """A succeeded row whose content in the file now differs from what was sent."""

    row_key: str
    order_id: str | None
    source_line: int
    sent: Mapping[str, Any]
    """The params Chargebee was sent (and holds)."""
    now: Mapping[str, Any]
    """The params the file gives today."""
