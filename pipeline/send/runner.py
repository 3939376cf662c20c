"""One run of a batch: prepare the input, plan it into the ledger, send, report.

``run_batch`` is the library's sync entry point (``anyio.run`` inside). The first run of a new
batch starts sending once the whole file passed its file-level checks and its first chunk is
planned; the rest is planned while rows are sent (see docs/ledger.md, "Time to first request").
Every other run (a resume, ``retry``, ``--dry-run``) plans the whole file before the first
request, so unusable input stops it with nothing sent, and succeeded rows are skipped before
they cost any rate-limit budget.
"""

from __future__ import annotations

import shlex
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import anyio

from pipeline.api.client import ChargebeeClient
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import RetryPolicy
from pipeline.config import Settings
from pipeline.errors import ConfigError, InputError, PipelineError
from pipeline.ledger.ledger import ChangedRow, Ledger
from pipeline.ledger.lock import run_lock
from pipeline.load.reader import WORKBOOK_SUFFIXES, input_sha256, is_failures_file
from pipeline.models import Operation, RunSummary, SourceRow
from pipeline.prepare.prepare import prepare_rows, several_per_invoice
from pipeline.progress import Progress, make_progress
from pipeline.report.data import batch_next_steps, default_report_dir
from pipeline.report.rates import rate_figures
from pipeline.send.corrections import write_corrections
from pipeline.send.workers import Sender, SendStats

if TYPE_CHECKING:
    import httpx

    from pipeline.report.write import ReportPaths

Command = Literal["run", "retry", "update"]
FIRST_SLICE_ROWS = 1_000
"""A new batch's first request waits for the first chunk (``chunk_rows`` records) to be read,
mapped and validated whole (uniqueness included), as before, but for only this many of its rows
to be built and planned; the rest of the chunk follows in 2x, 4x, ... rows while rows are sent."""
RowSource = Iterable[list[SourceRow]]


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What the user asked for on the command line."""

    command: Command
    batch: str
    source: Path | None = None
    """Input file; optional only for ``retry``."""
    operation: Operation = "import"
    dry_run: bool = False
    """Validate and plan; send nothing."""
    canary: int | None = None
    """Send this many rows, then stop for review."""
    write_reports: bool = True
    key_salt: str = ""
    """Mixed into every idempotency key of this run: a resend of rows Chargebee lost
    (``retry --missing``) must not be answered from the original request's memory."""


def run_batch(
    settings: Settings,
    request: RunRequest,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Progress | None = None,
    rows: RowSource | None = None,
) -> RunSummary:
    """Prepare, plan, send and report one batch; return what happened.

    Args:
        settings: resolved settings (config file < env < flags).
        request: the command's intent.
        transport: an httpx transport seam for tests (default: real network).
        progress: where progress goes (default: from ``settings.quiet``/``log_json``).
        rows: prepared rows instead of reading ``request.source`` (``update`` plans its own).

    Raises:
        InputError, ConfigError, LedgerError, DriftError: nothing was sent.
        AuthError: the key was refused; the run stopped at once.
    """
    if request.canary is not None and request.canary < 1:
        raise ConfigError("--canary must be at least 1")
    if not request.dry_run:
        settings.check_target()
        settings.require_api_key()
    progress = progress or make_progress(quiet=settings.quiet, log_json=settings.log_json)
    started = time.monotonic()
    # The run lock is taken before the Ledger opens and released after it closes (see lock.py).
    with (
        run_lock(settings.ledger_path),
        Ledger(settings.ledger_path) as ledger,
        tempfile.TemporaryDirectory(prefix="order-import-") as scratch,
    ):
        request = _resolve_operation(ledger, request)
        settings = _batch_reading(ledger, settings, request, Path(scratch))
        run_id, plan, planned, plan_rest = _open(ledger, settings, request, rows, progress)
        stats = SendStats()
        senders: list[SendStats] = []
        try:
            if request.dry_run:
                plan()
            else:
                # Rows left in doubt are reconciled *before* the file is planned, so a row
                # corrected since the crash is re-planned with its new content (see Sender.run).
                try:
                    stats = anyio.run(
                        _send,
                        ledger,
                        settings,
                        request,
                        run_id,
                        progress,
                        transport,
                        plan,
                        plan_rest,
                        senders,
                    )
                except PipelineError as err:
                    stats = senders[0] if senders else stats
                    if plan_rest is not None and stats.sent:
                        _sent_before(err, stats.sent)
                    raise
        finally:
            progress.close()
            counts = {str(k): v for k, v in ledger.counts(request.batch).items()}
            duration = time.monotonic() - started
            attempts = ledger.run_attempts(request.batch, run_id)
            rate = rate_figures(((s, code) for s, code, _ in attempts), [settings.effective_rate])
            canary_ids = (
                tuple(dict.fromkeys(order_id for _, _, order_id in attempts if order_id))
                if stats.canary_stopped
                else ()
            )
            status = "interrupted" if stats.interrupted else "finished"
            ledger.finish_run(
                run_id,
                status=status,
                summary={
                    "counts": counts,
                    "sent": stats.sent,
                    "throttled": stats.throttled,
                    "achieved_per_minute": rate.per_minute,
                    "rate": rate.to_dict(),
                    "canary_stopped": stats.canary_stopped,
                    "canary_order_ids": list(canary_ids),
                    "preflight": _preflight_summary(stats),
                },
            )
        reports = _reports(ledger, settings, request, planned.notes)
        _offer_corrections(settings, request, planned)
        if stats.auth_error is not None:
            raise stats.auth_error
    steps = batch_next_steps(reports.summary, settings, reports.out_dir) if reports else []
    return RunSummary(
        batch=request.batch,
        operation=request.operation,
        run_id=run_id,
        counts=counts,
        sent=stats.sent,
        succeeded=stats.succeeded,
        failed=stats.failed,
        already_present=stats.already_present,
        throttled=stats.throttled,
        duration_s=duration,
        achieved_per_minute=rate.per_minute,
        rate_text=rate.text(),
        interrupted=stats.interrupted,
        dry_run=request.dry_run,
        canary_stopped=stats.canary_stopped,
        canary_order_ids=canary_ids,
        report_dir=str(reports.out_dir) if reports else None,
        notes=tuple(planned.notes)
        + ((stats.preflight.text(),) if stats.preflight and stats.preflight.requests else ())
        + tuple(stats.notes)
        + ((stats.stop_reason,) if stats.stop_reason else ()),
        next_steps=tuple((step.text, step.command) for step in steps),
    )


def _resolve_operation(ledger: Ledger, request: RunRequest) -> RunRequest:
    """``retry`` continues the batch's own operation (an update batch retries updates)."""
    if request.command != "retry":
        return request
    info = ledger.get_batch(request.batch)
    if info is None or info.operation == request.operation:
        return request
    if request.source is not None:
        raise ConfigError(
            f"batch {request.batch!r} is an {info.operation} batch: retry takes no file for it",
            hint="send corrected values as a new `order-import update FILE --batch NEW`",
        )
    return replace(request, operation=info.operation)


def _batch_reading(
    ledger: Ledger, settings: Settings, request: RunRequest, scratch: Path
) -> Settings:
    """``retry FILE`` reads FILE the way the batch was planned: with the batch's recorded
    mapping (its content) unless ``--mapping`` is given, and with its encoding, delimiter and
    sheet unless given. The tool's own failures file is read as what it is (UTF-8 with a BOM,
    commas), with the batch's mapping, since it carries the source's own columns."""
    if request.command != "retry" or request.source is None:
        return settings
    info = ledger.get_batch(request.batch)
    if info is None:
        return settings
    update: dict[str, object] = {}
    if settings.mapping_path is None and info.mapping_text is not None:
        recorded = scratch / "batch-mapping.toml"
        recorded.write_text(info.mapping_text, encoding="utf-8")
        update["mapping_path"] = recorded
    if is_failures_file(request.source):
        if request.source.suffix.lower() not in WORKBOOK_SUFFIXES:
            update["encoding"] = settings.encoding or "utf-8-sig"
            update["delimiter"] = settings.delimiter or ","
    elif request.source.suffix.lower() in WORKBOOK_SUFFIXES:
        update["sheet"] = settings.sheet if settings.sheet is not None else info.sheet
    else:
        update["encoding"] = settings.encoding or info.encoding
        update["delimiter"] = settings.delimiter or info.delimiter
    return settings.model_copy(update=update)


@dataclass(slots=True)
class Planned:
    """What planning left for the end of the run (filled in by the deferred planning step)."""

    notes: list[str] = field(default_factory=list)
    changed: list[ChangedRow] = field(default_factory=list)
    """Succeeded rows the input now gives differently (offered to ``update``)."""


PlanRest = Callable[[Callable[[], bool]], None]
"""Plans the rest of the input while rows are sent; its argument says when to stop early."""


def _sent_before(err: PipelineError, sent: int) -> None:
    """The run failed after sending had started (first run of a new batch, planning the rest of
    the input while sending): say what was sent. Only an unusable later part of the input asks
    for a fixed file (and so ``--allow-drift``); any other failure (the ledger, the site) is
    resumed by running the same command again."""
    said = (
        f"sending had started: {sent:,} row(s) from before that point were sent and are "
        "recorded in the ledger; "
    )
    if isinstance(err, InputError):
        said += (
            "fix the file and run the same command again with --allow-drift (rows already "
            "sent are not sent twice)"
        )
    else:
        said += "run the same command again to resume (rows already sent are not sent twice)"
    err.hint = f"{said}; {err.hint}" if err.hint else said


def _open(
    ledger: Ledger,
    settings: Settings,
    request: RunRequest,
    rows: RowSource | None,
    progress: Progress,
) -> tuple[int, Callable[[], None], Planned, PlanRest | None]:
    """Open the batch and start a run; return the run id, the (deferred) planning step, what
    planning leaves for the summary, and (first run of a new batch) the step that plans the rest
    of the input while rows are sent (None: the first step plans it all)."""
    planned = Planned()
    notes = planned.notes
    if request.source is None:
        if request.command != "retry" and rows is None:
            raise ConfigError(f"{request.command} needs an input file")
        if ledger.get_batch(request.batch) is None:
            raise ConfigError(f"no batch named {request.batch!r} in {settings.ledger_path}")
        run_id = ledger.start_run(
            request.batch, command=request.command, settings_summary=_settings_summary(settings)
        )

        def requeue_all() -> None:
            if request.command == "retry":
                ledger.requeue(request.batch)

        return run_id, requeue_all, planned, None
    before = ledger.get_batch(request.batch)
    streaming = rows is None and request.command == "run" and not request.dry_run and before is None
    chunks = _first_chunk_eagerly(
        rows
        if rows is not None
        else prepare_rows(
            request.source, settings, first_rows=FIRST_SLICE_ROWS if streaming else None
        )
    )
    new_sha = input_sha256(request.source)
    adopting = (
        settings.allow_drift
        and request.command == "run"
        and before is not None
        and before.input_sha256 != new_sha
    )
    ledger.open_batch(
        request.batch,
        operation=request.operation,
        source_file=str(request.source),
        input_sha256=new_sha,
        config_fingerprint=settings.fingerprint(),
        allow_drift=settings.allow_drift or request.command == "retry",
        adopt_input=settings.allow_drift and request.command == "run",
    )
    run_id = ledger.start_run(
        request.batch, command=request.command, settings_summary=_settings_summary(settings)
    )

    unique_invoice = rows is not None or not several_per_invoice(settings)

    def plan_chunk(chunk: list[SourceRow]) -> None:
        ledger.plan(
            request.batch,
            [_own_key(row) for row in chunk],
            operation=request.operation,
            run_id=run_id,
            on_changed=planned.changed.append,
            unique_invoice=unique_invoice,
        )

    def record_reading() -> None:
        ledger.planned_with(
            request.batch,
            mapping_text=_mapping_text(settings),
            encoding=settings.encoding,
            delimiter=settings.delimiter,
            sheet=settings.sheet,
        )

    if streaming:
        # A new batch: nothing of it was sent, so no later chunk can be a record sent under
        # another key or a changed succeeded row, and uniqueness within the file is decided in
        # file order (a repeat is flagged on its own line, never the earlier row). Send from
        # the first planned chunk on; plan the rest while rows are sent.
        def plan_first() -> None:
            first = next(chunks, None)
            if first is not None:
                plan_chunk(first)
            record_reading()
            ledger.open_feed(request.batch)

        def plan_rest(stopped: Callable[[], bool]) -> None:
            try:
                for chunk in chunks:
                    if stopped():
                        notes.append(
                            "stopped before the whole input was planned: the next run of the "
                            "same command plans and sends the rest"
                        )
                        return
                    plan_chunk(chunk)
                progress.event("planned", batch=request.batch, while_sending=True)
            finally:
                ledger.close_feed(request.batch)
            if request.write_reports and not stopped():
                _load_reporting()

        return run_id, plan_first, planned, plan_rest

    def plan() -> None:
        keys: set[str] = set()
        rekeyed = 0
        for chunk in chunks:
            own = [_own_key(row) for row in chunk]
            stats = ledger.plan(
                request.batch,
                own,
                operation=request.operation,
                run_id=run_id,
                on_changed=planned.changed.append,
                unique_invoice=unique_invoice,
            )
            rekeyed += stats.rekeyed_unsent
            if request.command == "retry":
                keys.update(row.row_key for row in own)
            if adopting:
                ledger.remember_keys(row.row_key for row in own)
        if request.command == "retry":
            ledger.requeue(request.batch, row_keys=keys)
        if adopting:
            dropped = ledger.drop_unseen(request.batch)
            if dropped:
                notes.append(
                    f"{dropped} unsent row(s) no longer in the input were removed from the batch"
                )
        if rekeyed:
            notes.append(
                f"{rekeyed} unsent row(s) are keyed differently now (the mapping changed how "
                "rows are keyed): planned again under their new keys"
            )
        if rows is None and request.source is not None:
            record_reading()
        progress.event("planned", batch=request.batch, while_sending=False)

    return run_id, plan, planned, None


def _mapping_text(settings: Settings) -> str | None:
    """The mapping file's content (prepare has read it already: it is readable)."""
    if settings.mapping_path is None:
        return None
    try:
        return settings.mapping_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None


def _offer_corrections(settings: Settings, request: RunRequest, planned: Planned) -> None:
    """Rows already imported whose content changed: count them, write the update file."""
    if not planned.changed:
        return
    count = len(planned.changed)
    lead = (
        f"{count} row(s) already imported differ from the input now; an import never changes "
        "an order, so they were not sent"
    )
    try:
        made = write_corrections(planned.changed, default_report_dir(settings, request.batch))
    except PipelineError as err:
        planned.notes.append(f"{lead} (the corrections file could not be written: {err})")
        return
    parts = [lead]
    if made.path is not None:
        parts.append(
            f"to change the {made.rows} order(s) in Chargebee: "
            f"order-import update {shlex.quote(str(made.path))} "
            f"--batch {shlex.quote(request.batch + '-corrections')}"
        )
    if made.not_updatable:
        parts.append(f"changes to {', '.join(made.not_updatable)} cannot be made by an update")
    planned.notes.append("; ".join(parts))


def _own_key(row: SourceRow) -> SourceRow:
    """A row repeating an earlier row's key is planned under a key of its own.

    It is invalid (``duplicate_row_key``) and must never replace the first row in the ledger,
    or a valid row would be lost.
    """
    if any(issue.rule == "duplicate_row_key" for issue in row.issues):
        return replace(row, row_key=f"{row.row_key}#line{row.source_line}")
    return row


def _load_reporting() -> None:
    """Import the report writer (jinja2, matplotlib, openpyxl: about a third of the CLI's
    imports) on the planning thread once the input is planned, while rows are still being sent,
    rather than after the last request. An import that fails here is left to fail again, with
    its own message, where the reports are written."""
    try:
        import pipeline.report.write  # noqa: F401
    except ImportError:
        return


def _first_chunk_eagerly(chunks: RowSource) -> Iterator[list[SourceRow]]:
    """Pull the first chunk now, so file-level InputErrors surface before the ledger is touched."""
    iterator = iter(chunks)
    first = next(iterator, None)

    def rest() -> Iterator[list[SourceRow]]:
        if first is not None:
            yield first
        yield from iterator

    return rest()


async def _send(
    ledger: Ledger,
    settings: Settings,
    request: RunRequest,
    run_id: int,
    progress: Progress,
    transport: httpx.AsyncBaseTransport | None,
    plan: Callable[[], None],
    plan_rest: PlanRest | None,
    senders: list[SendStats],
) -> SendStats:
    limiter = RateLimiter.from_settings(settings, concurrency=settings.concurrency)
    # Requests an earlier run made in the last minute still count against the site's budget.
    now = time.time()
    recent = await anyio.to_thread.run_sync(ledger.recent_attempt_times, now - 61.0)
    limiter.seed(now - t for t in recent)
    async with ChargebeeClient(settings, transport=transport) as client:
        sender = Sender(
            ledger=ledger,
            client=client,
            limiter=limiter,
            policy=RetryPolicy.from_settings(settings),
            batch=request.batch,
            run_id=run_id,
            operation=request.operation,
            concurrency=settings.concurrency,
            progress=progress,
            canary=request.canary,
            key_salt=request.key_salt,
            preflight=settings.preflight,
            several_per_invoice=request.operation == "import" and several_per_invoice(settings),
        )
        senders.append(sender.stats)
        return await sender.run(plan, plan_rest)


def _preflight_summary(stats: SendStats) -> dict[str, object] | None:
    """What pre-flight did in this run, for the run's summary in the ledger."""
    found = stats.preflight
    if found is None:
        return None
    return {
        "requests": found.requests,
        "requests_by_kind": dict(found.by_kind),
        "checked": found.checked,
        "blocked": dict(found.blocked),
        "already_present": found.already_present,
        "conflict": found.conflict,
        "scanned_orders": found.scanned_orders,
        "scan_complete": found.scan_complete,
    }


def _settings_summary(settings: Settings) -> dict[str, object]:
    """What the ledger keeps about the settings of a run: never the API key."""
    return {
        "site_kind": settings.site_kind if settings.base_url_override or settings.site else None,
        "rate_per_minute": settings.effective_rate,
        "concurrency": settings.concurrency,
        "events_disabled": settings.events_disabled,
        "preflight": settings.preflight,
        "business_entity_id": settings.business_entity_id,
        "mapping": str(settings.mapping_path) if settings.mapping_path else None,
        "fingerprint": settings.fingerprint(),
    }


def _reports(
    ledger: Ledger, settings: Settings, request: RunRequest, notes: list[str]
) -> ReportPaths | None:
    """Write the batch's reports. Rows were (maybe) sent by now, so a report that cannot be
    written is a note, never the exit code 2 that means "unusable input, nothing sent"."""
    if not request.write_reports:
        return None
    # Imported here, not with this module: matplotlib, openpyxl and jinja2 are a third of the
    # CLI's imports, and the first request need not wait for them (issue 16).
    from pipeline.report.write import write_reports

    out = default_report_dir(settings, request.batch)
    try:
        return write_reports(ledger, request.batch, out, settings=settings)
    except PipelineError as err:
        notes.append(
            f"the reports could not be written ({err}); the ledger holds every outcome: "
            f"rebuild them with order-import report --batch {shlex.quote(request.batch)} "
            "--out DIR"
        )
        return None
