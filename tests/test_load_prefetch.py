"""The CSV reader reads the next chunk in a background thread (``load.rows.Prefetch``): order
kept, errors raised where they happened, bounded read-ahead, and the thread stops when the
consumer goes away (unit tests of the one class, with plain generators as input)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.load.reader import open_source
from pipeline.load.rows import Prefetch

WAIT_S = 5.0


def _wait_for(condition: object, timeout: float = WAIT_S) -> bool:
    """Poll ``condition()`` until true or ``timeout`` (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_items_arrive_in_order_then_the_error_where_it_happened() -> None:
    """Every item before the failure is delivered, then the producer's exception itself."""

    def items() -> Iterator[int]:
        yield from range(5)
        raise InputError("broken record", path="x.csv", line=7)

    stream = Prefetch(items())
    assert [next(stream) for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(InputError, match="broken record"):
        next(stream)
    assert list(stream) == []


def test_reads_at_most_depth_items_ahead() -> None:
    """With depth 1 the thread has produced at most one item the consumer has not taken."""
    produced: list[int] = []

    def items() -> Iterator[int]:
        for i in range(10):
            produced.append(i)
            yield i

    stream = Prefetch(items(), depth=1)
    assert next(stream) == 0
    assert _wait_for(lambda: len(produced) == 2)
    time.sleep(0.3)  # give a runaway reader time to show itself
    assert len(produced) == 2
    assert list(stream) == list(range(1, 10))


def test_thread_stops_when_the_consumer_closes_or_drops_it() -> None:
    """close() and garbage collection both end the reader thread and close the generator."""
    for how in ("close", "drop"):
        closed = threading.Event()

        def items(flag: threading.Event = closed) -> Iterator[int]:
            try:
                yield from range(1_000_000)
            finally:
                flag.set()

        stream = Prefetch(items())
        thread = stream._thread
        assert next(stream) == 0
        if how == "close":
            stream.close()
        else:
            del stream
        thread.join(WAIT_S)
        assert not thread.is_alive(), how
        assert closed.is_set(), how


def test_close_returns_only_after_the_item_being_read_is_finished() -> None:
    """close() while the thread is inside a slow read waits for that read to end (the thread
    has ended when close returns): a process that exits with an input error must not leave the
    thread inside pyarrow's C++ reader, which can abort the process at exit."""
    reading, finished = threading.Event(), threading.Event()

    def items() -> Iterator[int]:
        yield 0
        reading.set()
        time.sleep(0.5)  # the next chunk, still being parsed when the consumer gives up
        finished.set()
        yield 1

    stream = Prefetch(items())
    assert next(stream) == 0
    assert reading.wait(WAIT_S)
    stream.close()
    assert finished.is_set()
    assert not stream._thread.is_alive()


def test_csv_rows_through_the_reader_thread_are_complete(tmp_path: Path) -> None:
    """A CSV read in chunks of 7 through the thread gives every row once, in file order."""
    path = tmp_path / "rows.csv"
    path.write_text("a,b\n" + "".join(f"{i},v{i}\n" for i in range(1, 101)), encoding="utf-8")
    chunks = list(open_source(path, chunk_rows=7).chunks())
    assert [a for c in chunks for a in c.frame["a"].tolist()] == [str(i) for i in range(1, 101)]
    assert [line for c in chunks for line in c.lines.tolist()] == list(range(2, 102))
