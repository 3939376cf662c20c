"""Typed, frozen values shared by every stage: rows, issues, outcomes, summaries, row states.

Imports nothing from the package but ``errors``. These are the contracts between load/validate,
the ledger, the client, the runner and the reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

RowState = Literal[
    "invalid",  # failed validation; never sent
    "pending",  # valid, waiting to be sent (new, or re-queued after its content changed)
    "in_flight",  # committed just before the POST; after a crash its outcome is unknown (in doubt)
    "succeeded",  # Chargebee holds this order (imported, replayed, or found already present)
    "failed",  # permanent API rejection (a 4xx other than 401/403/429); fix the data and retry
    "retryable",  # transient failures exhausted their retries in this run; the next run resends
    "conflict",  # Chargebee holds a *different* order under this row's id; needs a human
    "skipped",  # a mapping [[skip]] rule matched: never sent, by design (the reason is kept)
    "blocked",  # pre-flight found the site would refuse it (invoice missing, id or document
    # number taken): never sent; the next retry (or run) checks it again
]
ROW_STATES: tuple[RowState, ...] = (
    "invalid",
    "pending",
    "in_flight",
    "succeeded",
    "failed",
    "retryable",
    "conflict",
    "skipped",
    "blocked",
)

Operation = Literal[
    "import",  # POST /orders/import_order
    "update",  # POST /orders/{id}: post-import corrections
]

Resolution = Literal[
    "imported",  # our POST created it
    "replayed",  # Chargebee replayed a stored answer for our idempotency key
    "already_present",  # duplicate_entry, and the order held matches this row
    "reconciled",  # an in-doubt row found present by GET /orders/{id} on resume
    "unchanged",  # update: Chargebee already held these values, nothing sent
]

Severity = Literal["error", "warning"]
ISSUE_VALUE_LIMIT = 200
"""Characters of an offending value kept in a finding (reports show the rest as ``…``)."""


def truncate_value(text: str) -> str:
    """``text`` cut to ``ISSUE_VALUE_LIMIT`` characters, ending in ``…`` when cut."""
    return text if len(text) <= ISSUE_VALUE_LIMIT else text[: ISSUE_VALUE_LIMIT - 1] + "…"


Stage = Literal["parse", "schema", "rule", "api"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One validation finding for one row and (usually) one field."""

    source_line: int
    """1-based line in the source file (the header is line 1), or the Excel row number."""
    column: str | None
    """The source column as named in the file, when one column is at fault."""
    param: str | None
    """The API parameter in form naming (``shipping_address[city]``), when known."""
    value: str | None
    """The offending value as read, truncated to 200 characters."""
    rule: str
    """Machine name of the rule: ``required``, ``max_length``, ``enum``, ``country``, ..."""
    message: str
    """Plain-English explanation a person can act on."""
    severity: Severity = "error"
    """``error`` blocks the row; ``warning`` is reported and the row is still sent."""
    stage: Stage = "schema"
    """Where it was found: parse (reading), schema (one field), rule (cross-field), api."""


@dataclass(frozen=True, slots=True)
class SourceRow:
    """A source record after loading, mapping and validation: what the ledger plans from."""

    row_key: str
    """Stable identity of the record across runs and corrected files (see README, row keys)."""
    source_file: str
    """The file it came from, as given on the command line."""
    sheet: str | None
    """Worksheet name for Excel input, else None."""
    source_line: int
    """1-based line in the source (header = line 1)."""
    raw: Mapping[str, str]
    """The original columns and their text exactly as read (for reports and failures.csv)."""
    params: Mapping[str, Any]
    """API parameters, nested: scalars as ``str``/``int``/``bool``, addresses as sub-dicts,
    ``order_line_items`` as a list of dicts. Timestamps are ``int`` Unix seconds."""
    issues: tuple[Issue, ...] = ()
    """Validation findings (errors and warnings)."""
    lines: tuple[int, ...] = ()
    """Every source line of a grouped order (``[orders] group_by``), first = ``source_line``;
    empty for a one-line row."""
    skip_reason: str | None = None
    """Set when a mapping ``[[skip]]`` rule matched: the row is never sent (state ``skipped``)."""
    control: Mapping[str, Any] | None = None
    """Control fields mapped in ``[control]``, never sent: ``amount`` (int minor units or None)
    and ``currency`` (text or None)."""
    fingerprint: int | None = None
    """64-bit content fingerprint of ``params`` (set by prepare, vectorised): equal
    fingerprints mean equal params, so the ledger recognises an unchanged row without encoding
    it; None: the ledger compares content hashes instead."""

    @property
    def is_valid(self) -> bool:
        """True when no finding has severity ``error``."""
        return not any(issue.severity == "error" for issue in self.issues)

    @property
    def order_id(self) -> str | None:
        """The order id this row will be imported (or updated) under."""
        value = self.params.get("id")
        return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class WorkItem:
    """A row the runner must send (or reconcile), as read back from the ledger."""

    batch: str
    row_key: str
    source_line: int
    order_id: str | None
    params: Mapping[str, Any]
    content_hash: str
    state: RowState
    attempts: int
    """HTTP attempts made for this row in all earlier runs."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP attempt, appended to the ledger's attempts log (never updated)."""

    batch: str
    row_key: str
    run_id: int
    started_at: float
    """Unix time (seconds, float) the request started."""
    latency_ms: float | None
    http_status: int | None
    api_error_code: str | None
    kind: str
    """``send`` (import/update POST), ``verify`` (GET /orders/{id}), ``retry`` (a resend)."""
    outcome: str
    """``ok``, ``throttled``, ``transient``, ``permanent``, ``not_found``, ``replayed``."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The final state of a row for this run, recorded right after its last attempt."""

    batch: str
    row_key: str
    run_id: int
    state: RowState
    resolution: Resolution | None = None
    order_id: str | None = None
    http_status: int | None = None
    api_error_code: str | None = None
    error_code: str | None = None
    param: str | None = None
    message: str | None = None
    latency_ms: float | None = None
    attempts: int = 0
    """HTTP attempts made for this row in this run."""


@dataclass(frozen=True, slots=True)
class ValidationRules:
    """Cross-field rules, each switchable because Chargebee does not document them all."""

    cancellation_reason_only_with_cancelled: bool = True
    """``cancellation_reason`` is an error unless ``status`` is ``cancelled``."""
    date_order: bool = True
    """``order_date <= shipping_date`` and ``shipped_at <= delivered_at``."""
    queued_without_fulfilment: bool = True
    """Warn when a ``queued`` order carries ``reference_id`` or ``fulfillment_status``."""
    unique_in_file: bool = True
    """Duplicate ``id`` or ``document_number`` inside one file is an error."""
    document_number_prefix: str | None = None
    """Order Configuration series prefix (e.g. ``ORDER``); None switches the series rule off."""
    document_number_start: int | None = None
    """Series starting number: with ``ORDER``/1000 only up to ``ORDER999`` may be imported."""
    min_year: int = 1990
    """Timestamps before this year are implausible for order history (error)."""
    max_future_days: int = 366
    """Timestamps more than this many days in the future are implausible (error)."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run did, for the CLI to render and to choose the exit code from."""

    batch: str
    operation: Operation
    run_id: int | None
    counts: Mapping[str, int]
    """Rows of the whole batch by state (after this run)."""
    sent: int = 0
    """Rows this run sent at least one request for."""
    succeeded: int = 0
    failed: int = 0
    already_present: int = 0
    throttled: int = 0
    """429 answers seen in this run."""
    duration_s: float = 0.0
    achieved_per_minute: float | None = None
    """Accepted requests per minute over this run's send phase; None under a minute of sending."""
    rate_text: str = ""
    """This run's rate in words (``report.rates``): the same text status and reports use."""
    interrupted: bool = False
    dry_run: bool = False
    canary_stopped: bool = False
    canary_order_ids: tuple[str, ...] = ()
    """The orders a canary run sent, to review in Chargebee before the rest go."""
    report_dir: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    next_steps: tuple[tuple[str, str | None], ...] = ()
    """(what to do, the exact command or None), derived from the batch's state after the run."""

    @property
    def exit_code(self) -> int:
        """Exit codes of DESIGN.md: 0 done, 1 invalid/failed rows, 3 in doubt, 130 interrupted.

        A dry run or a canary stop leaves rows ``pending`` on purpose; that alone is not a failure.
        """
        return exit_code_for(
            self.counts,
            interrupted=self.interrupted,
            pending_ok=self.dry_run or self.canary_stopped,
        )


def exit_code_for(
    counts: Mapping[str, int], *, interrupted: bool = False, pending_ok: bool = False
) -> int:
    """Map a batch's state counts to the documented exit code.

    130 interrupted; 3 rows in doubt (``in_flight``); 1 rows invalid, failed, in conflict, left
    retryable, blocked by pre-flight, or still pending when they should have been sent; 0 every
    row done. Rows the mapping skips are done by design: they never make the exit code 1.
    """
    if interrupted:
        return 130
    if counts.get("in_flight", 0):
        return 3
    unfinished: tuple[str, ...] = ("invalid", "failed", "retryable", "conflict", "blocked")
    if not pending_ok:
        unfinished += ("pending",)
    if any(counts.get(state, 0) for state in unfinished):
        return 1
    return 0
