"""Group commits keep exactly-once: a row's POST leaves only after its ``in_flight`` mark is
durable, a row is counted or reported only after its outcome is durable, marks and outcomes of
many rows share transactions, and a stopping run leaves nothing in doubt.

The send runs through the library entry point ``run_batch`` with a real ledger, the real client
and limiter and an httpx transport seam standing in for Chargebee (no network); the ledger is
read from a second SQLite connection, which sees only what was committed.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import httpx
import pytest

from pipeline.config import load_settings
from pipeline.errors import LedgerError
from pipeline.ledger.ledger import Ledger
from pipeline.models import Outcome
from pipeline.send import runner
from pipeline.send.runner import RunRequest, run_batch
from tests.orders_factory import write_orders

BASE = "http://127.0.0.1:9/api/v2"
KEY = "group_commit_key"
BATCH = "gc"


def committed_states(ledger_path: Path) -> dict[str, str]:
    """Row key → state as committed (a separate connection: uncommitted work is invisible)."""
    conn = sqlite3.connect(ledger_path)
    try:
        return dict(conn.execute("SELECT row_key, state FROM rows WHERE batch = ?", (BATCH,)))
    finally:
        conn.close()


class Destination:
    """Answers import_order with 200 (an order per id), checking before each answer that the
    row is committed ``in_flight`` in the ledger (when ``check`` is on)."""

    def __init__(self, ledger_path: Path, *, check: bool = True) -> None:
        self.ledger_path = ledger_path
        self.check = check
        self.posts: Counter[str] = Counter()
        self.not_in_flight: list[tuple[str, str | None]] = []
        self._conn: sqlite3.Connection | None = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))
        order_id = form["id"]
        self.posts[order_id] += 1
        if self.check:
            if self._conn is None:
                self._conn = sqlite3.connect(self.ledger_path)
            found = self._conn.execute(
                "SELECT state FROM rows WHERE batch = ? AND json_extract(params, '$.id') = ?",
                (BATCH, order_id),
            ).fetchone()
            state = None if found is None else str(found[0])
            if state != "in_flight":
                self.not_in_flight.append((order_id, state))
        return httpx.Response(200, json={"order": {**form, "object": "order"}})

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class CountingLedger(Ledger):
    """The real ledger, counting group transactions and the row changes they carry; optionally
    failing (like a full disk) from its ``fail_at``-th transaction that records outcomes."""

    groups: ClassVar[list[tuple[int, int]]] = []
    fail_at: ClassVar[int | None] = None

    def commit_group(
        self,
        batch: str,
        outcomes: Sequence[Outcome],
        marks: Sequence[tuple[str, str]],
        *,
        run_id: int,
    ) -> tuple[int, ...]:
        if outcomes and self.fail_at is not None:
            with_outcomes = sum(1 for n, _ in CountingLedger.groups if n)
            if with_outcomes + 1 >= self.fail_at:
                raise LedgerError(f"{self.path}: ledger record outcome failed (disk I/O error)")
        left_out = super().commit_group(batch, outcomes, marks, run_id=run_id)
        CountingLedger.groups.append((len(outcomes), len(marks)))
        return left_out


class Recorder:
    """A Progress that keeps every row it is told about."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []

    def start(self, total: int, *, batch: str, phase: str) -> None:
        """Ignore."""

    def row(self, state: str, *, row_key: str, detail: dict[str, Any]) -> None:
        self.rows.append((row_key, state))

    def event(self, name: str, **detail: Any) -> None:
        """Ignore."""

    def close(self) -> None:
        """Ignore."""


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory; the runner opens a CountingLedger."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "Ledger", CountingLedger)
    monkeypatch.setattr(CountingLedger, "groups", [])
    monkeypatch.setattr(CountingLedger, "fail_at", None)
    return tmp_path


def run(
    work: Path, dest: Destination, source: Path, progress: Recorder, canary: int | None = None
) -> Any:
    """``run_batch`` of BATCH through ``dest`` with 16 workers and no rate limit to speak of."""
    settings = load_settings(
        {
            "ledger_path": str(work / "l.sqlite"),
            "report_dir": str(work / "reports"),
            "rate_per_minute": 600000.0,
            "concurrency": 16,
            "quiet": True,
            "preflight": False,  # the destination answers imports only (the subject here)
        },
        environ={"CHARGEBEE_API_KEY": KEY, "CHARGEBEE_BASE_URL": BASE},
    )
    request = RunRequest("run", BATCH, source, canary=canary)
    try:
        return run_batch(
            settings, request, transport=httpx.MockTransport(dest.handle), progress=progress
        )
    finally:
        dest.close()


def test_posts_leave_after_their_mark_is_durable_and_rows_share_transactions(work):
    """Every POST finds its row committed ``in_flight``; 300 rows take far fewer than the 600
    transactions of one mark and one record per row; every row POSTed once and succeeded."""
    source = write_orders(work / "o.csv", 300)
    dest = Destination(work / "l.sqlite")
    progress = Recorder()
    summary = run(work, dest, source, progress)
    assert dest.not_in_flight == []
    assert set(dest.posts.values()) == {1}
    assert len(dest.posts) == 300
    assert set(committed_states(work / "l.sqlite").values()) == {"succeeded"}
    assert summary.succeeded == 300
    assert len(progress.rows) == 300
    groups = CountingLedger.groups
    assert sum(n for n, _ in groups) == 300
    assert sum(m for _, m in groups) == 300
    assert len(groups) < 300, f"{len(groups)} transactions for 300 rows: nothing was grouped"
    assert max(n for n, _ in groups) > 1
    assert max(m for _, m in groups) > 1


def test_rows_are_counted_only_once_their_outcome_is_committed(work):
    """The ledger fails its 3rd outcome transaction (a disk error): the run stops with the
    ledger's error, and exactly the rows whose outcomes were committed were reported done;
    rows answered but not committed stay ``in_flight`` (in doubt), none is lost."""
    CountingLedger.fail_at = 3
    source = write_orders(work / "o.csv", 200)
    dest = Destination(work / "l.sqlite", check=False)
    progress = Recorder()
    with pytest.raises(LedgerError, match="disk I/O error"):
        run(work, dest, source, progress)
    states = committed_states(work / "l.sqlite")
    succeeded = {key for key, state in states.items() if state == "succeeded"}
    reported = {key for key, _ in progress.rows}
    assert len(progress.rows) == len(reported)
    assert reported == succeeded, "rows reported done differ from rows committed succeeded"
    assert 0 < len(succeeded) < sum(dest.posts.values()), "no answered row was left uncommitted"
    # Every row that reached the destination is either committed succeeded or in doubt.
    for order_id in dest.posts:
        assert states[order_id] in ("succeeded", "in_flight"), order_id  # row key == order id


def test_a_canary_run_leaves_nothing_in_flight(work):
    """``--canary 5`` with 16 workers: 5 POSTs, 5 succeeded, every other row still pending."""
    source = write_orders(work / "o.csv", 60)
    dest = Destination(work / "l.sqlite")
    run(work, dest, source, Recorder(), canary=5)
    assert sum(dest.posts.values()) == 5
    assert dest.not_in_flight == []
    assert Counter(committed_states(work / "l.sqlite").values()) == {
        "succeeded": 5,
        "pending": 55,
    }


def test_a_group_is_all_or_nothing(tmp_path):
    """A group with one row that may not be sent commits none of its changes."""
    source = write_orders(tmp_path / "o.csv", 3)
    dest = Destination(tmp_path / "l.sqlite", check=False)
    settings = load_settings(
        {"ledger_path": str(tmp_path / "l.sqlite"), "quiet": True},
        environ={"CHARGEBEE_API_KEY": KEY, "CHARGEBEE_BASE_URL": BASE},
    )
    request = RunRequest("run", BATCH, source, dry_run=True, write_reports=False)
    run_batch(settings, request, transport=httpx.MockTransport(dest.handle))
    with Ledger(tmp_path / "l.sqlite") as ledger:
        keys = sorted(committed_states(tmp_path / "l.sqlite"))
        ledger.commit_group(BATCH, [], [(keys[0], "k0")], run_id=1)
        ledger.record(Outcome(BATCH, keys[0], 1, "succeeded", resolution="imported"))
        with pytest.raises(LedgerError, match="is succeeded"):  # settled by another run
            ledger.commit_group(BATCH, [], [(keys[1], "k1"), (keys[0], "k0")], run_id=2)
        with pytest.raises(LedgerError, match="cannot become failed"):
            ledger.commit_group(
                BATCH,
                [Outcome(BATCH, keys[2], 1, "retryable"), Outcome(BATCH, keys[0], 1, "failed")],
                [],
                run_id=1,
            )
    assert committed_states(tmp_path / "l.sqlite") == {
        keys[0]: "succeeded",
        keys[1]: "pending",
        keys[2]: "pending",
    }


class GroupRecorder:
    """Stands in for ``Ledger.commit_group`` in unit tests of the committer: records how many
    outcomes and marks each transaction carried."""

    def __init__(self) -> None:
        self.groups: list[tuple[int, int]] = []

    def commit_group(
        self, batch: str, outcomes: Sequence[Outcome], marks: Sequence[Any], *, run_id: int
    ) -> tuple[int, ...]:
        self.groups.append((len(outcomes), len(marks)))
        return ()


def _handed_over(count: int, *, fill: int, linger_s: float) -> list[tuple[int, int]]:
    """Hand ``count`` outcomes to a committer one loop turn apart, drain; the groups made."""
    import anyio
    import anyio.lowlevel

    from pipeline.models import WorkItem
    from pipeline.send.commits import GroupCommits

    ledger = GroupRecorder()

    async def main() -> None:
        commits = GroupCommits(
            ledger=ledger,  # type: ignore[arg-type]
            batch=BATCH,
            run_id=1,
            db=anyio.CapacityLimiter(1),
            on_recorded=lambda recorded: None,
            stopping=lambda: False,
            fill=fill,
            linger_s=linger_s,
        )
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(commits.serve)
                for n in range(count):
                    item = WorkItem(BATCH, f"r{n}", n, None, {}, "h", "in_flight", 0)
                    commits.record(item, Outcome(BATCH, f"r{n}", 1, "succeeded"))
                    await anyio.lowlevel.checkpoint()
                await commits.drain()
                group.cancel_scope.cancel()

    anyio.run(main)
    return ledger.groups


def test_a_commit_gathers_changes_until_its_group_is_full():
    """With a linger, outcomes handed over a loop turn apart share one transaction once
    ``fill`` wait (the linger is not waited out: it is a minute here and the run is bounded);
    without it the committer takes the first outcome alone."""
    assert _handed_over(8, fill=8, linger_s=60.0) == [(8, 0)]
    assert _handed_over(8, fill=8, linger_s=0.0)[0][0] < 8


def test_a_group_short_of_fill_is_committed_after_the_linger():
    """Fewer changes than ``fill``: committed once the (bounded) linger passes, never held."""
    groups = _handed_over(3, fill=32, linger_s=0.05)
    assert sum(n for n, _ in groups) == 3
