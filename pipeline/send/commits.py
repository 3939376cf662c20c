"""Group commits for the worker pool: many rows' ledger changes in one durable transaction.

Workers never touch SQLite. A worker asks for its row to be marked ``in_flight``
(``GroupCommits.mark``) and waits; it hands a row's outcome over (``GroupCommits.record``) and
goes on to its next row. One committer task (``serve``) takes everything waiting and commits it
in ONE transaction on the ledger's worker thread (``Ledger.commit_group``, ``synchronous=FULL``):
the outcomes (with the attempts log), then the marks. Only when that transaction is durable are
the marked rows' POSTs let go and the recorded rows counted and reported (``on_recorded``).

Commits run back to back while there is work, each gathering for at most ``GROUP_LINGER_S``
while fewer than ``fill`` changes wait (the Sender's concurrency: half its workers): a change waits
at most for the commit in progress, that linger and its own commit (each ≤ ``GROUP_MAX_ROWS``
outcomes plus ≤ ``GROUP_MAX_ROWS`` marks). Without the linger a fast disk made a commit, and a
hop to the ledger's thread, per one or two rows at 0 ms latency, and that hop was the largest
single cost of the send loop (issue 16). A crash at any point leaves each row either recorded
or ``in_flight`` (looked up by the next run before anything is resent): a row is never POSTed
before its mark is durable, and never counted before its outcome is.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio

from pipeline.ledger.ledger import Ledger
from pipeline.models import Outcome, WorkItem

GROUP_MAX_ROWS = 256
"""Most outcomes, and most marks, one group transaction carries."""
GROUP_LINGER_S = 0.002
"""Longest a commit waits for more changes while fewer than ``fill`` wait (never when stopping)."""


@dataclass(slots=True)
class _MarkGroup:
    """Rows waiting to be marked ``in_flight`` together; ``done`` once the commit is decided."""

    marks: list[tuple[str, str]] = field(default_factory=list)
    done: anyio.Event = field(default_factory=anyio.Event)
    granted: bool = False
    left_out: tuple[int, ...] = ()
    """Positions in ``marks`` the ledger left out: rows this run already sent or settled."""


@dataclass(slots=True)
class CommitStats:
    """What the committer did (for the bench and the tests)."""

    commits: int = 0
    outcomes: int = 0
    marks: int = 0
    refused_marks: int = 0
    """Marks dropped because the run was stopping: those rows stay pending, never sent."""
    repeated_marks: int = 0
    """Marks the ledger left out because this run had already sent or settled the row (the row
    was handed over twice): not sent again, and the run goes on."""
    longest_s: float = 0.0
    """The longest group transaction (thread hop included)."""


class GroupCommits:
    """The group committer of one send phase (see the module docstring)."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        batch: str,
        run_id: int,
        db: anyio.CapacityLimiter,
        on_recorded: Callable[[Sequence[tuple[WorkItem, Outcome]]], None],
        stopping: Callable[[], bool],
        max_rows: int = GROUP_MAX_ROWS,
        fill: int = 1,
        linger_s: float = GROUP_LINGER_S,
    ) -> None:
        self.ledger = ledger
        self.batch = batch
        self.run_id = run_id
        self.stats = CommitStats()
        self._db = db
        self._on_recorded = on_recorded
        self._stopping = stopping
        self._max = max_rows
        self._fill = min(fill, max_rows)
        self._linger_s = linger_s
        self._outcomes: list[tuple[WorkItem, Outcome]] = []
        self._groups: deque[_MarkGroup] = deque()
        self._wake = anyio.Event()
        self._settled = anyio.Event()
        self._settled.set()
        self._failed = False

    # -- what workers call -----------------------------------------------------------------

    async def mark(self, row_key: str, key: str) -> bool:
        """Wait until the row is durably ``in_flight`` with ``key``: True, send it now; False,
        the run is stopping and the row was left ``pending`` (do not send it)."""
        group = self._groups[-1] if self._groups else None
        if group is None or len(group.marks) >= self._max:
            group = _MarkGroup()
            self._groups.append(group)
        position = len(group.marks)
        group.marks.append((row_key, key))
        self._poke()
        await group.done.wait()
        return group.granted and position not in group.left_out

    def record(self, item: WorkItem, outcome: Outcome) -> None:
        """Hand a row's outcome over; it is counted (``on_recorded``) once committed."""
        self._outcomes.append((item, outcome))
        self._poke()

    async def drain(self) -> None:
        """Wait until everything handed over so far is committed (and counted)."""
        while self._outcomes or self._groups or not self._settled.is_set():
            self._poke()
            await self._settled.wait()

    # -- the committer ---------------------------------------------------------------------

    async def serve(self) -> None:
        """The committer task: commit whatever waits, back to back, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            while self._outcomes or self._groups:
                await self._gather()
                await self._commit_once()
            self._settled.set()

    def _waiting(self) -> int:
        return len(self._outcomes) + sum(len(group.marks) for group in self._groups)

    async def _gather(self) -> None:
        """Let more changes join the next commit: until ``fill`` wait, the run stops, or
        ``linger_s`` passed (a bounded wait: one timer per commit, none when the group is full)."""
        if self._linger_s <= 0 or self._waiting() >= self._fill or self._stopping():
            return
        with anyio.move_on_after(self._linger_s):
            while self._waiting() < self._fill and not self._stopping():
                await self._wake.wait()
                self._wake = anyio.Event()

    async def flush_left(self) -> None:
        """Commit outcomes still waiting when the run was cancelled (a second Ctrl-C), so an
        answer that arrived is not dropped; marks still waiting are refused (never sent)."""
        if self._failed:
            return
        with anyio.CancelScope(shield=True):
            while self._groups:
                self._decide(self._groups.popleft(), granted=False)
            while self._outcomes:
                await self._commit_once()

    def _poke(self) -> None:
        if self._settled.is_set():
            self._settled = anyio.Event()
        self._wake.set()

    def _decide(self, group: _MarkGroup, *, granted: bool) -> None:
        group.granted = granted
        if not granted:
            self.stats.refused_marks += len(group.marks)
        group.done.set()

    async def _commit_once(self) -> None:
        outcomes, self._outcomes = self._outcomes[: self._max], self._outcomes[self._max :]
        group = self._groups.popleft() if self._groups else None
        if group is not None and self._stopping():
            self._decide(group, granted=False)  # the run stops: these rows stay pending
            group = None
        if not outcomes and group is None:
            return
        marks = group.marks if group is not None else []
        started = time.perf_counter()
        left_out: tuple[int, ...] = ()
        try:
            # Shielded: a second Ctrl-C cannot drop a commit half-way (the thread would finish
            # it anyway) nor leave its rows uncounted.
            with anyio.CancelScope(shield=True):
                left_out = await anyio.to_thread.run_sync(
                    functools.partial(
                        self.ledger.commit_group,
                        self.batch,
                        [outcome for _, outcome in outcomes],
                        marks,
                        run_id=self.run_id,
                    ),
                    limiter=self._db,
                )
        except BaseException:
            self._failed = True  # nothing of this group is counted, nothing of it is sent
            raise
        self.stats.commits += 1
        self.stats.outcomes += len(outcomes)
        self.stats.marks += len(marks)
        self.stats.longest_s = max(self.stats.longest_s, time.perf_counter() - started)
        if group is not None:
            group.left_out = left_out or ()
            self.stats.repeated_marks += len(group.left_out)
            self._decide(group, granted=True)
        if outcomes:
            self._on_recorded(outcomes)
