"""``retry --batch B --missing``: send again the orders the last reconciliation found missing.

A reconciliation records, in its ledger run, the row keys of every ``missing`` finding (the
ledger says succeeded; Chargebee has no such order, or has it deleted). ``reopen_missing`` puts
those rows back in doubt (``in_flight``), so the retry that follows goes the exactly-once way:
each order is looked up first (``GET /orders/{id}``), and only one Chargebee still does not hold
is sent again. The resend carries an idempotency key of its own (``key_salt``): Chargebee
remembers the original request's key for 30 minutes and would answer a resend with the old
reply, creating nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.ledger.ledger import Ledger
from pipeline.ledger.lock import run_lock

MISSING_KEYS = "missing_row_keys"
"""Key of a reconcile run's summary: the row keys it found missing."""


@dataclass(frozen=True, slots=True)
class Reopened:
    """What ``reopen_missing`` did."""

    reconcile_run: int
    """The reconciliation the missing rows come from."""
    found: int
    """Rows it found missing."""
    reopened: int
    """Of those, rows still succeeded in the ledger, now in doubt (looked up, then resent)."""

    @property
    def key_salt(self) -> str:
        """Mixed into the resend's idempotency keys: one resend per reconciliation."""
        return f":missing:{self.reconcile_run}"


def reopen_missing(settings: Settings, batch: str) -> Reopened:
    """Put the rows the batch's last reconciliation found missing back in doubt.

    Raises:
        ConfigError: no ledger, no such batch, not an import batch, or never reconciled.
    """
    if not settings.ledger_path.is_file():
        raise ConfigError(f"no ledger at {settings.ledger_path}", hint="pass --ledger PATH")
    with run_lock(settings.ledger_path), Ledger(settings.ledger_path) as ledger:
        info = ledger.get_batch(batch)
        if info is None:
            raise ConfigError(f"no batch named {batch!r} in {settings.ledger_path}")
        if info.operation != "import":
            raise ConfigError(
                f"--missing re-sends imported orders; {batch!r} is an {info.operation} batch",
                hint="reconcile and retry the import batch the orders came from",
            )
        last = next(
            (
                run
                for run in reversed(ledger.runs(batch))
                if run.command == "reconcile" and MISSING_KEYS in run.summary
            ),
            None,
        )
        if last is None:
            raise ConfigError(
                f"batch {batch!r} has no reconciliation that lists missing orders",
                hint=f"run `order-import reconcile --batch {batch}` first",
            )
        keys = [str(k) for k in last.summary.get(MISSING_KEYS) or []]
        run_id = ledger.start_run(batch, command="reopen-missing", settings_summary={})
        moved = ledger.reopen_missing(batch, keys, run_id=run_id) if keys else 0
        ledger.finish_run(
            run_id,
            status="finished",
            summary={"reconcile_run": last.id, "missing": len(keys), "reopened": moved},
        )
    return Reopened(last.id, len(keys), moved)
