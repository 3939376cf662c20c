"""The async worker pool: reconcile rows left in doubt, then send pending rows exactly once.

For each row: commit ``in_flight`` → acquire the rate limiter → POST with a deterministic
idempotency key → hand the outcome to the group committer (no ``await`` between the answer and
the hand-over). Marks and outcomes of many rows share one durable transaction
(``send/commits.py``): a row is POSTed only once its mark is committed, and counted or reported
only once its outcome is. ``duplicate_entry`` on an id means "already there": verify with
``GET /orders/{id}``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pipeline.api.client import ApiResponse, ChargebeeClient
from pipeline.api.listing import Lister
from pipeline.api.ratelimit import AdmissionHalted, RateLimiter
from pipeline.api.retry import AttemptInfo, RetryPolicy, send_with_retries
from pipeline.errors import (
    ApiError,
    AuthError,
    PermanentApiError,
    PipelineError,
    ThrottleBudgetExceeded,
    TransientApiError,
    UnexpectedResponseError,
    first_error,
)
from pipeline.keys import idempotency_key
from pipeline.ledger.ledger import Ledger
from pipeline.models import Attempt, Operation, Outcome, Resolution, WorkItem
from pipeline.params import held_differences
from pipeline.preflight.check import Preflight, PreflightStats
from pipeline.progress import Progress
from pipeline.send.commits import GroupCommits
from pipeline.send.verification import verified_outcome

Dispatch = Callable[[ChargebeeClient, WorkItem, str], Awaitable[ApiResponse]]

STREAM_BUFFER = 64


@dataclass(slots=True)
class SendStats:
    """Counters for one run's send phase (mutable; owned by the sender)."""

    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    already_present: int = 0
    throttled: int = 0
    stop_reason: str | None = None
    auth_error: AuthError | None = None
    interrupted: bool = False
    canary_stopped: bool = False
    notes: list[str] = field(default_factory=list)
    preflight: PreflightStats | None = None
    """What pre-flight checked and held back (None when it did not run)."""


# Plain functions returning the client's coroutine (not ``async def`` wrappers): one coroutine
# frame less on every resume of every request.
def dispatch_import(client: ChargebeeClient, item: WorkItem, key: str) -> Awaitable[ApiResponse]:
    """POST /orders/import_order for one row."""
    return client.import_order(item.params, idempotency_key=key)


def dispatch_update(client: ChargebeeClient, item: WorkItem, key: str) -> Awaitable[ApiResponse]:
    """POST /orders/{id} for one row's correction (``params`` carry only changed fields).

    Raises ``PermanentApiError`` (when called: inside the attempt) for a row without an id."""
    if item.order_id is None:
        raise PermanentApiError("row has no order id to update", api_error_code="invalid_request")
    params = {k: v for k, v in item.params.items() if k != "id"}
    return client.update_order(item.order_id, params, idempotency_key=key)


DISPATCH: Mapping[Operation, Dispatch] = {"import": dispatch_import, "update": dispatch_update}


def answer_mismatch(item: WorkItem, order: Mapping[str, Any]) -> str | None:
    """Why a 2xx order is not about the row sent (another id or invoice), or None when it is."""
    if item.order_id is not None and str(order.get("id")) != item.order_id:
        return f"names order {str(order.get('id'))[:100]!r}, not {item.order_id!r}"
    invoice = item.params.get("invoice_id")
    if invoice not in (None, "") and str(order.get("invoice_id")) != str(invoice):
        return f"names invoice {str(order.get('invoice_id'))[:100]!r}, not {str(invoice)!r}"
    return None


class Sender:
    """Runs one send phase for one batch over a client, a limiter and the ledger."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        client: ChargebeeClient,
        limiter: RateLimiter,
        policy: RetryPolicy,
        batch: str,
        run_id: int,
        operation: Operation,
        concurrency: int,
        progress: Progress,
        canary: int | None = None,
        key_salt: str = "",
        preflight: bool = False,
        several_per_invoice: bool = False,
    ) -> None:
        self.key_salt = key_salt
        self.preflight = preflight and operation == "import"
        """Check each page of rows against the site before it is fed (imports only)."""
        self.several_per_invoice = several_per_invoice
        self._canary_left = False
        """Pre-flight stopped reading rows at the canary count with rows still to send."""
        self.ledger = ledger
        self.client = client
        self.limiter = limiter
        self.policy = policy
        self.batch = batch
        self.run_id = run_id
        self.operation = operation
        self.concurrency = concurrency
        self.progress = progress
        self.canary = canary
        self.dispatch = DISPATCH[operation]
        self.stats = SendStats()
        self._stop = anyio.Event()
        self._active = 0
        """Rows marked ``in_flight`` by this sender and not yet recorded."""
        self._db = anyio.CapacityLimiter(1)
        """Ledger commits run one at a time on a worker thread (FULL sync stays off the loop)."""
        self.commits = GroupCommits(
            ledger=ledger,
            batch=batch,
            run_id=run_id,
            db=self._db,
            on_recorded=self._count,
            stopping=self._stop.is_set,
            fill=max(1, concurrency),
        )

    # -- control -------------------------------------------------------------------------

    def stop(self, reason: str, *, live: str = "", **detail: object) -> None:
        """Stop feeding new rows; rows already in flight finish and are recorded (drain).

        ``live`` is appended to the message shown while the run drains, not to the note the
        run's summary keeps."""
        if self.stats.stop_reason is None:
            self.stats.stop_reason = reason
            self.progress.event("stopping", message=reason + live, **detail)
        self._stop.set()

    def _interrupt(self) -> None:
        """First Ctrl-C: requests on the wire finish and are recorded; rows waiting for rate
        budget or a 429 pause stop waiting at once and stay pending (they were never sent)."""
        requests = self.limiter.in_flight
        waiting = max(0, self._active - requests)
        pause = self.limiter.pause_left_s
        parts = [f"interrupted: finishing {requests} request(s) in flight"]
        if waiting:
            what = f"the 429 pause ({pause:.0f} s left)" if pause > 0 else "rate budget"
            parts.append(f"{waiting} row(s) waiting for {what} stop waiting and stay pending")
        self.stop(
            "; ".join(parts),
            live=" (Ctrl-C again to abort)",
            in_flight=requests,
            waiting=waiting,
            pause_left_s=round(pause, 1),
        )
        self.limiter.halt()

    async def _watch_signals(self, group: TaskGroup) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                self.stats.interrupted = True
                if self._stop.is_set():
                    # Second Ctrl-C: abort. Rows still in flight stay ``in_flight`` and are
                    # reconciled by the next run before anything is resent.
                    group.cancel_scope.cancel()
                    return
                self._interrupt()

    # -- phases --------------------------------------------------------------------------

    async def run(
        self,
        plan: Callable[[], None] | None = None,
        plan_rest: Callable[[Callable[[], bool]], None] | None = None,
    ) -> SendStats:
        """Reconcile in-doubt rows, plan the input (``plan``, on the ledger's thread), then send
        pending/retryable rows with a worker pool.

        With ``plan_rest``, sending starts once ``plan`` returns while ``plan_rest(stopped)``
        plans the rest of the input on a thread of its own (it must ``Ledger.close_feed`` when
        it ends, and should return early once ``stopped()`` is true). A ``PipelineError`` it
        raises stops the run like Ctrl-C (rows on the wire finish and are recorded), then is
        raised.

        Raises:
            PipelineError: a run-level failure in any worker (e.g. the ledger's disk write
                failed), unwrapped from the task group so the CLI prints one clear line.
        """
        planning_failed: list[PipelineError] = []
        sending_ended = threading.Event()

        def stopped() -> bool:
            return self._stop.is_set() or sending_ended.is_set()

        async def planning(rest: Callable[[Callable[[], bool]], None]) -> None:
            try:
                await anyio.to_thread.run_sync(rest, stopped)
            except PipelineError as err:
                planning_failed.append(err)
                self.stop(f"stopping: planning the rest of the input failed: {err.message}")

        try:
            async with anyio.create_task_group() as outer:
                outer.start_soon(self._watch_signals, outer)
                outer.start_soon(self.commits.serve)
                try:
                    await self._reconcile_in_flight()
                    await self.commits.drain()  # rows found absent are pending before the plan
                    if plan is not None:
                        await anyio.to_thread.run_sync(plan, limiter=self._db)
                    async with anyio.create_task_group() as planner:
                        if plan_rest is not None:
                            planner.start_soon(planning, plan_rest)
                        try:
                            if not self._stop.is_set():
                                await self._send_all()
                        except BaseException:
                            sending_ended.set()  # a failed or aborted send: stop planning too
                            raise
                    await self.commits.drain()
                    if self.commits.stats.repeated_marks:
                        # The ledger left these out (commit_group): never sent twice, run goes on.
                        self.stats.notes.append(
                            f"{self.commits.stats.repeated_marks} row(s) came up to be sent a "
                            "second time in this run; sent once only (a bug: please report it)"
                        )
                    if planning_failed:
                        raise planning_failed[0]
                finally:
                    outer.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise first_error(group, PipelineError) or group from None
        finally:
            await self.commits.flush_left()
        return self.stats

    async def _reconcile_in_flight(self) -> None:
        doubtful = await anyio.to_thread.run_sync(
            self.ledger.in_flight, self.batch, limiter=self._db
        )
        if not doubtful:
            return
        self.progress.start(len(doubtful), batch=self.batch, phase="reconcile")
        for item in doubtful:
            if self._stop.is_set():
                return
            await self._reconcile_one(item)

    async def _reconcile_one(self, item: WorkItem) -> None:
        known, order = await self._look_up(item, "in doubt")
        if not known:
            return
        if self.operation == "update":
            # Never resent blindly (a newer correction would be overwritten): settled here only
            # when Chargebee holds what it sent; `order-import update` compares the rest with
            # what the order held before (pipeline/update/in_doubt.py) and resends or not.
            if order is not None and not held_differences(item.params, order):
                await self._finish(item, self._applied(item))
            else:
                self.stats.notes.append(
                    f"row {item.row_key} (order {item.order_id}) stays in doubt: Chargebee does "
                    f"not hold what it sent; run `order-import update FILE --batch {self.batch}` "
                    "again to compare and resend"
                )
            return
        if order is None:
            # Never created: back to pending, sent below in this same run.
            await self._finish(item, self._pending(item))
            return
        await self._finish(item, self._verified_outcome(item, order, resolution="reconciled"))

    async def _send_all(self) -> None:
        """Feed the rows to the workers, a page at a time; ``_work`` reads (and with pre-flight
        checks) the next page while this one is fed and sent, at most one page ahead."""
        counts = await anyio.to_thread.run_sync(self.ledger.counts, self.batch, limiter=self._db)
        total = counts.get("pending", 0) + counts.get("retryable", 0)
        if self.canary is not None:
            total = min(total, self.canary)
        self.progress.start(total, batch=self.batch, phase="send")
        checker = self._preflight(total) if self.preflight else None
        send_stream, receive_stream = anyio.create_memory_object_stream[WorkItem](STREAM_BUFFER)
        # Unbuffered: a page waits, checked, until the feeder takes it (one page ahead at most).
        pages_out, pages_in = anyio.create_memory_object_stream[list[WorkItem] | ApiError](0)
        async with anyio.create_task_group() as group:
            for _ in range(self.concurrency):
                group.start_soon(self._worker, receive_stream.clone())
            receive_stream.close()
            async with send_stream, anyio.create_task_group() as ahead:
                ahead.start_soon(self._work, checker, pages_out)
                try:
                    fed = await self._feed(pages_in, send_stream)
                finally:
                    # Stopped or done: no more look-ups for rows that will not be sent (a page
                    # checked but not fed stays pending; its held rows are already recorded).
                    ahead.cancel_scope.cancel()
            if self._canary_left and not self._stop.is_set() and not self.stats.canary_stopped:
                self.stats.canary_stopped = True
                self.progress.event(
                    "canary", message=f"canary: sent {fed} row(s); review them, then run again"
                )

    async def _feed(
        self,
        pages: MemoryObjectReceiveStream[list[WorkItem] | ApiError],
        out: MemoryObjectSendStream[WorkItem],
    ) -> int:
        """Hand the rows of each page to the workers until the pages end or the run stops; the
        rows fed. A look-up failure of the page ahead stops the run once this page is fed."""
        fed = 0
        async with pages:
            async for page in pages:
                if isinstance(page, ApiError):
                    self.stop(
                        f"stopping: pre-flight could not check the rows ({page.message}); "
                        "nothing of them was sent (run again, or --no-preflight to send without "
                        "the check)"
                    )
                    return fed
                for item in page:
                    if self._stop.is_set():
                        return fed
                    if self.canary is not None and fed >= self.canary:
                        self.stats.canary_stopped = True
                        self.progress.event(
                            "canary",
                            message=f"canary: sent {fed} row(s); review them, then run again",
                        )
                        return fed
                    try:
                        # No loop turn per row while the buffer has room (``send`` takes one
                        # even then); a full buffer waits as before.
                        out.send_nowait(item)
                    except anyio.WouldBlock:
                        await out.send(item)
                    fed += 1
        return fed

    async def _work(
        self, checker: Preflight | None, out: MemoryObjectSendStream[list[WorkItem] | ApiError]
    ) -> None:
        """The pages of rows to send, read on the ledger's thread (never on the loop) and, with
        pre-flight, checked (``_checked``) while the page before is fed and sent."""
        pages = self.ledger.work_pages(self.batch)
        empty: list[WorkItem] = []
        passed = 0
        left: list[WorkItem] = []
        async with out:
            while left or (
                left := await anyio.to_thread.run_sync(next, pages, empty, limiter=self._db)
            ):
                page, left = left, []
                if checker is not None:
                    if self._stop.is_set():
                        return  # stopping: no more look-ups for rows that will not be sent
                    if self.canary is not None:
                        # Only the rows about to be sent are checked; the rest wait (pending).
                        if passed >= self.canary:
                            self._canary_left = True
                            return
                        page, left = page[: self.canary - passed], page[self.canary - passed :]
                    checked = await self._checked(checker, page)
                    if checked is None:
                        return
                    if isinstance(checked, ApiError):
                        await out.send(checked)  # the feeder stops the run after this page
                        return
                    page = checked
                    passed += len(page)
                if page:
                    await out.send(page)

    def _preflight(self, total: int) -> Preflight:
        self.stats.preflight = PreflightStats()
        lister = Lister(self.client, self.limiter, self.policy, on_attempt=self._preflight_logger())
        checker = Preflight(
            lister,
            batch=self.batch,
            run_id=self.run_id,
            verify=lambda item, order: self._verified_outcome(
                item, order, resolution="already_present"
            ),
            several_per_invoice=self.several_per_invoice,
            expected_rows=total,
            parallel=self.concurrency,
        )
        checker.stats = self.stats.preflight
        return checker

    async def _checked(
        self, checker: Preflight, page: list[WorkItem]
    ) -> list[WorkItem] | ApiError | None:
        """The rows of ``page`` pre-flight lets through; the others are recorded at once
        (``blocked``, or ``succeeded``/``conflict`` when their order is already there).
        None when the run stops now (the key was refused, or Ctrl-C); the ``ApiError`` when
        the look-ups failed: the run stops once the page before is fed, nothing of this page
        is sent."""
        self.progress.event("preflight", message=f"pre-flight: checking {len(page)} row(s)")
        try:
            send, held = await checker.check(page)
        except AdmissionHalted:
            return None
        except AuthError as err:
            self._auth_failed(err)
            return None
        except ApiError as err:
            return err
        items = {item.row_key: item for item in page}
        for outcome in held:
            await self._finish(items[outcome.row_key], outcome)
        return send

    async def _worker(self, receive: MemoryObjectReceiveStream[WorkItem]) -> None:
        async with receive:
            while True:
                # A row waiting in the buffer is taken without a loop turn (``receive`` takes
                # one even then); the worker yields anyway at its mark (``_send_one``).
                try:
                    item = receive.receive_nowait()
                except anyio.WouldBlock:
                    try:
                        item = await receive.receive()
                    except anyio.EndOfStream:
                        return
                except anyio.EndOfStream:
                    return
                if self._stop.is_set():
                    continue  # drain the buffer without sending; rows stay pending
                await self._send_one(item)

    # -- one row -------------------------------------------------------------------------

    async def _send_one(self, item: WorkItem) -> None:
        key = idempotency_key(
            self.operation, self.batch, item.row_key, item.content_hash + self.key_salt
        )
        if not await self.commits.mark(item.row_key, key):
            return  # the run stopped before the mark was committed: the row stays pending
        self.stats.sent += 1
        self._active += 1
        try:
            await self._send_marked(item, key)
        finally:
            self._active -= 1

    async def _send_marked(self, item: WorkItem, key: str) -> None:
        try:
            response, attempts = await send_with_retries(
                lambda: self.dispatch(self.client, item, key),
                limiter=self.limiter,
                policy=self.policy,
                on_attempt=self._attempt_logger(item, "send"),
            )
        except AdmissionHalted:  # Ctrl-C while it waited for budget: never sent
            self.stats.sent -= 1
            await self._finish(item, self._pending(item))
            return
        except AuthError as err:
            await self._refused(item, err)
            return
        except ThrottleBudgetExceeded as err:
            await self._finish(item, self._error_outcome(item, err, "retryable"))
            self.stop(f"stopping: {err.message} (resume with the same command later)")
            return
        except PermanentApiError as err:
            if err.api_error_code == "duplicate_entry" and err.param == "id":
                await self._verify_duplicate(item, err)
                return
            await self._finish(item, self._error_outcome(item, err, "failed"))
            return
        except TransientApiError as err:
            await self._finish(item, self._error_outcome(item, err, "retryable"))
            return
        except UnexpectedResponseError as err:
            await self._look_up_in_doubt(item, err)
            return
        order = response.body.get("order") or {}
        problem = answer_mismatch(item, order)
        if problem is not None:
            await self._look_up_in_doubt(
                item,
                UnexpectedResponseError(
                    f"HTTP {response.status} {self.client.safe_text(problem)}",
                    status_code=response.status,
                    api_error_code="invalid_response",
                ),
            )
            return
        await self._finish(
            item,
            Outcome(
                self.batch,
                item.row_key,
                self.run_id,
                "succeeded",
                resolution="replayed" if response.replayed else "imported",
                order_id=str(order.get("id") or item.order_id or "") or None,
                http_status=response.status,
                latency_ms=response.latency_ms,
                attempts=attempts,
            ),
        )

    async def _look_up_in_doubt(self, item: WorkItem, err: UnexpectedResponseError) -> None:
        """A 2xx that cannot be trusted: whether the order was created is unknown, so the row is
        looked up like a row left in doubt by a crash. Found → verified against the row; not
        found → ``retryable`` (nothing was created); the look-up failing → the row stays
        ``in_flight`` (in doubt) for the next run to look up."""
        known, order = await self._look_up(item, f"untrusted answer ({err.message})")
        if not known:
            return
        if order is None:
            await self._finish(item, self._error_outcome(item, err, "retryable"))
            return
        await self._finish(item, self._verified_outcome(item, order, resolution="reconciled"))

    async def _look_up(self, item: WorkItem, why: str) -> tuple[bool, dict[str, Any] | None]:
        """GET the row's order: (True, the order or None when absent) when the answer is known;
        (False, None) when it is not (no id, key refused, look-up failed or untrusted): the row
        stays in doubt, with a note saying why."""
        if item.order_id is None:
            self.stats.notes.append(f"row {item.row_key}: {why}; no order id to look it up by")
            return False, None
        try:
            order, _ = await self._retrieve(item)
        except AdmissionHalted:
            self.stats.notes.append(f"row {item.row_key}: {why}; not looked up (interrupted)")
            return False, None
        except AuthError as err:
            self._auth_failed(err)
            return False, None
        except ApiError as err:
            self.stats.notes.append(f"row {item.row_key}: {why}; could not verify ({err.message})")
            return False, None
        return True, order

    async def _verify_duplicate(self, item: WorkItem, err: PermanentApiError) -> None:
        try:
            order, _ = await self._retrieve(item)
        except AdmissionHalted:  # interrupted before the look-up: checked again when resent
            await self._finish(item, self._error_outcome(item, err, "retryable"))
            return
        except AuthError as auth:
            await self._refused(item, auth)
            return
        except ApiError as verify_err:
            await self._finish(item, self._error_outcome(item, verify_err, "retryable"))
            return
        if order is None:
            await self._finish(item, self._error_outcome(item, err, "failed"))
            return
        await self._finish(item, self._verified_outcome(item, order, resolution="already_present"))

    def _verified_outcome(
        self, item: WorkItem, order: Mapping[str, Any], *, resolution: Resolution
    ) -> Outcome:
        return verified_outcome(self.batch, self.run_id, item, order, resolution)

    async def _retrieve(self, item: WorkItem) -> tuple[dict[str, Any] | None, int]:
        assert item.order_id is not None
        order_id = item.order_id
        return await send_with_retries(
            lambda: self.client.retrieve_order(order_id),
            limiter=self.limiter,
            policy=self.policy,
            on_attempt=self._attempt_logger(item, "verify"),
            status_of=lambda found: 404 if found is None else 200,
        )

    # -- bookkeeping ---------------------------------------------------------------------

    def _attempt_logger(self, item: WorkItem, kind: str) -> Callable[[AttemptInfo], None]:
        batch, row_key, run_id = self.batch, item.row_key, self.run_id
        log_row = self.ledger.log_attempt_row

        def log(info: AttemptInfo) -> None:
            if info.outcome == "throttled":
                self.stats.throttled += 1
                self.progress.event("throttled", row_key=row_key)
            # The fields of an ``Attempt``, in its order (``Ledger.log_attempt_row``).
            log_row(
                (
                    batch,
                    row_key,
                    run_id,
                    info.started_at,
                    info.latency_ms,
                    info.status,
                    info.api_error_code,
                    kind,
                    info.outcome,
                )
            )

        return log

    def _preflight_logger(self) -> Callable[[AttemptInfo], None]:
        """Pre-flight requests are attempts of their own kind (no row: ``row_key`` empty), so
        the rate figures and request counts include them."""

        def log(info: AttemptInfo) -> None:
            if info.outcome == "throttled":
                self.stats.throttled += 1
                self.progress.event("throttled", row_key="")
            self.ledger.log_attempt(
                Attempt(
                    batch=self.batch,
                    row_key="",
                    run_id=self.run_id,
                    started_at=info.started_at,
                    latency_ms=info.latency_ms,
                    http_status=info.status,
                    api_error_code=info.api_error_code,
                    kind="preflight",
                    outcome=info.outcome,
                )
            )

        return log

    def _error_outcome(self, item: WorkItem, err: ApiError, state: Any) -> Outcome:
        return Outcome(
            self.batch,
            item.row_key,
            self.run_id,
            state,
            order_id=item.order_id,
            http_status=err.status_code,
            api_error_code=err.api_error_code,
            error_code=err.error_code,
            param=err.param,
            message=err.message,
            attempts=err.attempts or 1,
        )

    async def _finish(self, item: WorkItem, outcome: Outcome) -> None:
        # Handed to the group committer without an await: the commit runs on the ledger's own
        # thread with other rows' changes, and the row is counted (``_count``) once it is durable.
        # Outcomes still waiting when a second Ctrl-C cancels the run are committed on the way
        # out (``GroupCommits.flush_left``), so an answer that already arrived is not dropped.
        self.commits.record(item, outcome)

    def _count(self, recorded: Sequence[tuple[WorkItem, Outcome]]) -> None:
        """Count and report rows whose outcomes are committed (never before)."""
        for item, outcome in recorded:
            self._count_one(item, outcome)

    def _count_one(self, item: WorkItem, outcome: Outcome) -> None:
        if outcome.state == "succeeded":
            self.stats.succeeded += 1
            if outcome.resolution in ("already_present", "reconciled"):
                self.stats.already_present += 1
        elif outcome.state in ("failed", "conflict"):
            self.stats.failed += 1
        if outcome.state != "pending":
            self.progress.row(
                outcome.state,
                row_key=item.row_key,
                detail={
                    "source_line": item.source_line,
                    "order_id": outcome.order_id,
                    "resolution": outcome.resolution,
                    "api_error_code": outcome.api_error_code,
                    "message": outcome.message,
                },
            )

    def _pending(self, item: WorkItem) -> Outcome:
        """The row goes back to pending: nothing was created for it."""
        return Outcome(self.batch, item.row_key, self.run_id, "pending")

    def _applied(self, item: WorkItem) -> Outcome:
        """An in-doubt update Chargebee holds as sent: succeeded, nothing resent."""
        return Outcome(
            self.batch,
            item.row_key,
            self.run_id,
            "succeeded",
            resolution="reconciled",
            order_id=item.order_id,
            http_status=200,
        )

    async def _refused(self, item: WorkItem, err: AuthError) -> None:
        """The key was refused for this row: nothing was created, so it goes back to pending,
        and the run stops."""
        await self._finish(item, self._pending(item))
        self._auth_failed(err)

    def _auth_failed(self, err: AuthError) -> None:
        if self.stats.auth_error is None:
            self.stats.auth_error = err
        self.progress.event("auth_failed", message=f"stopping: {err.message}")
        self.stop("authentication failed")
