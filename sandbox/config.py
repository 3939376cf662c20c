"""The sandbox's knobs: one frozen ``SandboxConfig`` value. Imports nothing from ``pipeline``.

Every knob has a default that makes the sandbox behave like a Chargebee *test* site.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

DEFAULT_API_KEY = "test_sandbox_key"
"""The fixed, documented fake API key the sandbox accepts unless told otherwise."""

FAULT_KINDS = ("before_commit", "after_commit", "drop_after_commit")
"""Fault kinds: 503 with nothing stored · stored then 500 · stored then the connection dropped."""

RUNTIME_KNOBS = frozenset(
    {
        "fault_rate",
        "faults",
        "fault_seed",
        "latency_ms",
        "rate_limit_per_minute",
        "concurrency_limit",
        "idempotency_window_s",
        "window_s",
        "export_delay_s",
        "lock_timeout_enabled",
        "count_rejected_requests",
        "fault_on_reads",
        "echo_headers_in_errors",
    }
)
"""Knobs that may change while the sandbox runs (``reconfigure`` / ``POST /__sandbox/config``)."""


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Behaviour of one sandbox instance.

    Attributes:
        api_key: The only API key accepted (HTTP Basic user name, blank password).
        rate_limit_per_minute: Requests admitted per rolling window (``window_s``); None = off.
        concurrency_limit: API requests allowed in flight at once; None = off.
        latency_ms: Added to every API request (an async sleep, so it holds a concurrency slot).
        fault_rate: Probability (0..1) that a write request gets a fault.
        faults: Fault kinds a faulted request draws from (see ``FAULT_KINDS``).
        fault_seed: Seed of the fault RNG, so drills are reproducible.
        fault_on_reads: Also inject faults into GET API requests (off: writes only).
        idempotency_window_s: How long an idempotency key is remembered (Chargebee: 30 min).
        strict_invoices_file: File of known invoice ids (one a line); unknown ones → 404. Kept
            for old scripts: the same as a seed file with an ``id`` column only.
        invoices_file: Seed CSV of known invoices (``id,customer_id,subscription_id,
            currency_code,total``); unknown ones → 404, orders take currency and totals.
        generate_invoices: Seed this many generated invoices (``INV-000000``...); 0 = none.
        eu_vat: The site has EU VAT / Brexit configuration: ``XI`` is a valid country.
        doc_series_prefix: Order number series prefix (e.g. "ORDER"); None = no series rule.
        doc_series_start: Next number of that series; imported numbers must stay below it.
        unique_document_numbers: Reject a document_number another live order already has.
        export_delay_s: Seconds an export stays ``in_process`` before it completes.
        max_exports_in_process: Exports allowed ``in_process`` at once (Chargebee: 5).
        state_file: Persist the store here (journal + snapshot) to survive restarts.
        lock_timeout_enabled: Concurrent writes to one order id → 429 ``lock_timeout``.
        window_s: Length of the rolling rate window (60 s like Chargebee; tests shrink it).
        count_rejected_requests: Count 429-rejected requests toward the window (off).
        status_rules: Enforce undocumented status-dependent rules (off; see docs/sandbox.md).
        request_log_size: How many request-log and event entries the state keeps.
        echo_headers_in_errors: Paste every request header (Authorization included) and the
            decoded API key into each error message, as a careless server might (off).
    """

    api_key: str = DEFAULT_API_KEY
    rate_limit_per_minute: int | None = 150
    concurrency_limit: int | None = 50
    latency_ms: float = 0
    fault_rate: float = 0.0
    faults: tuple[str, ...] = FAULT_KINDS
    fault_seed: int = 0
    fault_on_reads: bool = False
    idempotency_window_s: float = 1800
    strict_invoices_file: str | None = None
    invoices_file: str | None = None
    generate_invoices: int = 0
    eu_vat: bool = False
    doc_series_prefix: str | None = None
    doc_series_start: int | None = None
    unique_document_numbers: bool = True
    export_delay_s: float = 2.0
    max_exports_in_process: int = 5
    state_file: str | None = None
    lock_timeout_enabled: bool = True
    window_s: float = 60.0
    count_rejected_requests: bool = False
    status_rules: bool = False
    request_log_size: int = 200_000
    echo_headers_in_errors: bool = False

    def __post_init__(self) -> None:
        """Reject knob values that cannot work."""
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be between 0 and 1, got {self.fault_rate}")
        unknown = [kind for kind in self.faults if kind not in FAULT_KINDS]
        if unknown or not self.faults:
            raise ValueError(
                f"faults must be a non-empty subset of {FAULT_KINDS}, got {self.faults}"
            )
        for name in ("rate_limit_per_minute", "concurrency_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be ≥ 1 or None (off), got {value}")
        if self.latency_ms < 0 or self.idempotency_window_s < 0 or self.export_delay_s < 0:
            raise ValueError("latency_ms, idempotency_window_s and export_delay_s must be ≥ 0")
        if self.generate_invoices < 0:
            raise ValueError(f"generate_invoices must be ≥ 0, got {self.generate_invoices}")
        if self.window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {self.window_s}")

    def replace(self, **knobs: Any) -> SandboxConfig:
        """Return a copy with ``knobs`` changed (any field; validation runs again)."""
        if "faults" in knobs:
            knobs["faults"] = tuple(knobs["faults"])
        return dataclasses.replace(self, **knobs)


def runtime_changes(knobs: dict[str, Any]) -> dict[str, Any]:
    """Check that ``knobs`` only names runtime-changeable knobs; return them.

    Raises:
        ValueError: A knob that cannot change at runtime (or does not exist).
    """
    bad = sorted(set(knobs) - RUNTIME_KNOBS)
    if bad:
        raise ValueError(f"not runtime knobs: {', '.join(bad)} (allowed: {sorted(RUNTIME_KNOBS)})")
    return dict(knobs)
