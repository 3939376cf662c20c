"""A row handed to the sender twice in one run is sent once, and the run goes on.

The symptom seen once in a kill -9 drill (a resume stopped with exit 2: ``mark in flight``
refused a row already ``succeeded``): the row came up a second time after this run had settled
it, the ledger refused the mark, and the refusal failed the whole group transaction and the run.
Now the ledger leaves such a mark out of the group (``Ledger.commit_group`` returns its
position), the row is not sent again, the rest of the group commits and the run goes on. A row
this run marked and has not answered yet is refused too (before, a second mark of a row
``in_flight`` was granted: two POSTs). Refusals of any other kind (a row settled by another run,
an invalid row) still fail the group (``test_group_commit.test_a_group_is_all_or_nothing``).

The work stream itself feeds each row at most once per run (keyset pages merged by rowid,
deduped): pinned here with pages of 3 rows and rows changing state between pages.

The send runs through ``run_batch`` with the real ledger, client and limiter and an httpx
transport seam standing in for Chargebee (``tests.test_group_commit.Destination``); the repeat
is made by a ledger whose work pages hand rows over again (the seam: no run of today's stream
does it).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from pipeline.config import load_settings
from pipeline.errors import LedgerError
from pipeline.ledger import reads
from pipeline.ledger.ledger import Ledger
from pipeline.models import Outcome, RowState, SourceRow, WorkItem
from pipeline.send import runner
from pipeline.send.runner import RunRequest, run_batch
from tests.orders_factory import write_orders
from tests.test_group_commit import BASE, BATCH, KEY, Destination, Recorder, committed_states


class RepeatingLedger(Ledger):
    """The real ledger; its work pages hand the first ``repeat`` rows over again: right after
    the first page (``at_end`` False: likely still in flight) or after the last page."""

    repeat: ClassVar[int] = 0
    at_end: ClassVar[bool] = True

    def work_pages(
        self,
        batch: str,
        *,
        states: Sequence[RowState] = ("pending", "retryable"),
        size: int = reads.PAGE,
    ) -> Iterator[list[WorkItem]]:
        pages = super().work_pages(batch, states=states, size=size)
        first = next(pages, [])
        again = first[: self.repeat]
        yield first
        if not self.at_end and again:
            yield list(again)
        yield from pages
        if self.at_end and again:
            yield list(again)


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "Ledger", RepeatingLedger)
    return tmp_path


def send(work: Path, rows: int, *, repeat: int, at_end: bool, concurrency: int) -> tuple[Any, Any]:
    """``run_batch`` of ``rows`` rows through a Destination; the first ``repeat`` rows are
    handed over twice. Returns (summary, destination)."""
    RepeatingLedger.repeat = repeat
    RepeatingLedger.at_end = at_end
    source = write_orders(work / "o.csv", rows)
    dest = Destination(work / "l.sqlite")
    settings = load_settings(
        {
            "ledger_path": str(work / "l.sqlite"),
            "report_dir": str(work / "reports"),
            "rate_per_minute": 600000.0,
            "concurrency": concurrency,
            "quiet": True,
            "preflight": False,
        },
        environ={"CHARGEBEE_API_KEY": KEY, "CHARGEBEE_BASE_URL": BASE},
    )
    try:
        summary = run_batch(
            settings,
            RunRequest("run", BATCH, source),
            transport=httpx.MockTransport(dest.handle),
            progress=Recorder(),
        )
    finally:
        dest.close()
    return summary, dest


def test_a_row_handed_over_again_after_it_succeeded_is_not_sent_and_the_run_goes_on(work):
    """One worker: the repeated rows were settled long before they come up again. Before the
    fix the run stopped with ``LedgerError`` ("is succeeded; only pending, ...")."""
    summary, dest = send(work, 40, repeat=3, at_end=True, concurrency=1)
    assert set(dest.posts.values()) == {1}
    assert len(dest.posts) == 40
    assert set(committed_states(work / "l.sqlite").values()) == {"succeeded"}
    assert summary.succeeded == 40
    assert summary.sent == 40
    assert any("second time in this run; sent once only" in note for note in summary.notes)


def test_a_row_handed_over_again_while_in_flight_is_posted_once(work):
    """Eight workers, the repeats right behind the first page: the second mark comes while
    the first is in flight (or its answer waits to be committed). Before the fix it was
    granted (two POSTs) or refused with the run stopping."""
    summary, dest = send(work, 60, repeat=8, at_end=False, concurrency=8)
    assert set(dest.posts.values()) == {1}, dest.posts.most_common(3)
    assert len(dest.posts) == 60
    assert dest.not_in_flight == []
    assert set(committed_states(work / "l.sqlite").values()) == {"succeeded"}
    assert summary.sent == 60


# -- the ledger's rule, directly ----------------------------------------------------------------


def source_row(n: int) -> SourceRow:
    return SourceRow(f"k{n}", "f.csv", None, n + 2, {"n": str(n)}, {"id": f"O{n}"})


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "l.sqlite") as led:
        led.open_batch(
            "b", operation="import", source_file="f", input_sha256="s", config_fingerprint="c"
        )
        yield led


def test_commit_group_leaves_out_marks_of_rows_the_run_already_sent_or_settled(ledger):
    """Run 1 marks k0 and k1 and settles k0; a group of run 1 marking k0, k1 (in flight), k2
    twice and k3 marks k2 once and k3, leaves out the rest, and commits its outcome."""
    ledger.plan("b", [source_row(n) for n in range(4)], operation="import", run_id=1)
    assert ledger.commit_group("b", [], [("k0", "i0"), ("k1", "i1")], run_id=1) == ()
    ledger.record(Outcome("b", "k0", 1, "succeeded", resolution="imported"))
    marks = [("k0", "i0"), ("k1", "i1"), ("k2", "i2"), ("k2", "i2"), ("k3", "i3")]
    outcome = Outcome("b", "k1", 1, "retryable", message="503")
    assert ledger.commit_group("b", [outcome], marks, run_id=1) == (0, 1, 3)
    states = {row.row_key: row.state for row in ledger.rows("b")}
    assert states == {"k0": "succeeded", "k1": "retryable", "k2": "in_flight", "k3": "in_flight"}
    with pytest.raises(LedgerError, match="already sent or settled by run 1"):
        ledger.mark_in_flight("b", "k2", run_id=1, idempotency_key="i2")
    # The next run may send what run 1 left retryable or in doubt, never what it settled.
    assert ledger.commit_group("b", [], [("k1", "i1"), ("k2", "i2")], run_id=2) == ()
    with pytest.raises(LedgerError, match="is succeeded"):
        ledger.commit_group("b", [], [("k0", "i0")], run_id=2)


# -- the work stream: each row at most once per call -------------------------------------------


def test_the_work_stream_feeds_each_row_once_while_rows_change_state_between_pages(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of 3 rows, pending and retryable rows interleaved; while the stream is read,
    each row fed is moved to retryable, then succeeded (behind the cursor), and rows not fed
    yet move from pending to retryable and back (ahead of it, on pages already read or not).
    Every row is fed at most once, in rowid order."""
    monkeypatch.setattr(reads, "PAGE", 3)
    ledger.plan("b", [source_row(n) for n in range(30)], operation="import", run_id=1)
    for n in range(0, 30, 4):  # a retryable stream of its own
        ledger.mark_in_flight("b", f"k{n}", run_id=1, idempotency_key="i")
        ledger.record(Outcome("b", f"k{n}", 1, "retryable"))
    runs = itertools.count(10)

    def settle(key: str, state: RowState) -> None:
        run_id = next(runs)  # a run of its own each time: no mark is a repeat within a run
        ledger.mark_in_flight("b", key, run_id=run_id, idempotency_key="i")
        ledger.record(Outcome("b", key, run_id, state, resolution="imported"))

    fed: list[str] = []
    for item in ledger.work("b"):
        fed.append(item.row_key)
        n = int(item.row_key[1:])
        settle(item.row_key, "retryable")
        settle(item.row_key, "succeeded")
        for ahead in (n + 2, n + 5):  # not fed yet: pending → retryable → pending
            if ahead < 30 and f"k{ahead}" not in fed:
                settle(f"k{ahead}", "retryable")
                if ahead % 3 == 0:
                    ledger.requeue("b", states=("retryable",), row_keys=[f"k{ahead}"])
    order = [int(key[1:]) for key in fed]
    assert order == sorted(set(order)), "a row fed twice, or out of rowid order"
    # A row moved between streamed states ahead of the cursor may wait for the next run (it
    # stays sendable); every row left alone until the stream reached it is fed.
    untouched = set(range(30)) - {n + d for n in order for d in (2, 5)}
    assert untouched <= set(order)
    assert len(order) > 15
