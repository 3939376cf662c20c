"""Fast CSV path: pyarrow's streaming parser for the cells, a numpy byte scan for the line numbers.

pyarrow does not report source lines, so the scan finds where each record starts: a newline ends
a record when an even number of quote bytes precede it (valid for ASCII-compatible encodings).
Anything the scan cannot vouch for (a stray quote inside an unquoted cell, bare-CR line ends) or
pyarrow refuses (a ragged row) hands over to the exact Python ``csv`` path, from that record on.
A record larger than pyarrow's parse block (one huge cell) is not a refusal: the parser restarts
at that record's byte offset (the scan knows it) with a larger block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

SCAN_BLOCK = 1 << 22
FIRST_BLOCK = 1 << 20
"""pyarrow's parse block; a record must fit in one, so a larger record grows it 4x at a time."""
MAX_BLOCK = 1 << 30
_QUOTE, _LF, _CR = 0x22, 0x0A, 0x0D
STR_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)


class Unsafe(Exception):
    """The fast path cannot guarantee exact lines or cells from here on; use the csv module."""


class LineScanner:
    """Start lines (1-based) of the non-blank CSV records of a file, in order, block by block."""

    def __init__(self, path: Path, delimiter: str, block: int = SCAN_BLOCK) -> None:
        self.path = path
        self.delim = ord(delimiter)
        self.block = block

    def starts(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (start lines, start byte offsets) of records; raise Unsafe on bytes the scan
        cannot interpret."""
        parity = 0
        lines_before = 0
        pending_line = 1
        pending_len = 0
        pending_off = 0
        base = 0  # file offset of the block's first byte
        last = _LF  # the byte before the file: acts like a record boundary
        with self.path.open("rb") as fh:
            data = fh.read(self.block)
            if data.startswith(b"\xef\xbb\xbf"):
                data, base, pending_off = data[3:], 3, 3
            while data:
                b = np.frombuffer(data, dtype=np.uint8)
                quote = b == _QUOTE
                nl = b == _LF
                self._check_quotes(b, quote, last)
                if (b[:-1] == _CR).any() and ((b[:-1] == _CR) & ~nl[1:]).any():
                    raise Unsafe("bare carriage return line ends")
                qpos = np.flatnonzero(quote)
                npos = np.flatnonzero(nl)
                # a newline ends a record when an even number of quotes precede it
                inside = (parity + np.searchsorted(qpos, npos)) & 1
                index = np.flatnonzero(inside == 0)
                bpos = npos[index]
                if bpos.size:
                    prev = np.empty(bpos.size, dtype=np.int64)
                    prev[0] = -1
                    prev[1:] = bpos[:-1]
                    length = bpos - prev - 1
                    length[0] += pending_len
                    before = np.where(bpos > 0, b[np.maximum(bpos - 1, 0)], last)
                    blank = (length == 0) | ((length == 1) & (before == _CR))
                    start = np.empty(bpos.size, dtype=np.int64)
                    start[0] = pending_line
                    start[1:] = lines_before + index[:-1] + 2  # newlines up to the previous end
                    offset = np.empty(bpos.size, dtype=np.int64)
                    offset[0] = pending_off
                    offset[1:] = base + bpos[:-1] + 1
                    yield start[~blank], offset[~blank]
                    pending_line = int(lines_before + index[-1] + 2)
                    pending_len = int(b.size - bpos[-1] - 1)
                    pending_off = int(base + bpos[-1] + 1)
                else:
                    pending_len += int(b.size)
                lines_before += int(npos.size)
                parity = int((parity + qpos.size) & 1)
                last = int(b[-1])
                base += int(b.size)
                data = fh.read(self.block)
        if pending_len and not (pending_len == 1 and last == _CR):
            yield np.asarray([pending_line], np.int64), np.asarray([pending_off], np.int64)

    def _check_quotes(self, b: np.ndarray, quote: np.ndarray, last: int) -> None:
        """A quote must open or close a cell (next to a delimiter, line end or another quote)."""
        pos = np.flatnonzero(quote)
        if pos.size == 0:
            return
        ok_prev = (self.delim, _LF, _CR, _QUOTE)
        prev = np.where(pos > 0, b[np.maximum(pos - 1, 0)], last)
        nxt = np.where(pos + 1 < b.size, b[np.minimum(pos + 1, b.size - 1)], _LF)
        good = np.isin(prev, ok_prev) | np.isin(nxt, ok_prev)
        if not good.all():
            raise Unsafe("a quote inside an unquoted cell")


class _Lines:
    """Hands out start lines in the amounts the parser produced rows."""

    def __init__(self, starts: Iterator[tuple[np.ndarray, np.ndarray]]) -> None:
        self._it = starts
        self._buf = np.empty(0, dtype=np.int64)
        self._off = np.empty(0, dtype=np.int64)

    def _fill(self, count: int) -> bool:
        while self._buf.size < count:
            more = next(self._it, None)
            if more is None:
                return False
            self._buf = np.concatenate([self._buf, more[0]])
            self._off = np.concatenate([self._off, more[1]])
        return True

    def take(self, count: int) -> np.ndarray:
        if not self._fill(count):
            raise Unsafe("the parser found more records than the line scan")
        out, self._buf, self._off = self._buf[:count], self._buf[count:], self._off[count:]
        return out

    def next_offset(self) -> int | None:
        """Byte offset where the next record not yet handed out starts (None: no more)."""
        return int(self._off[0]) if self._fill(1) else None


def fast_tables(
    path: Path, encoding: str, delimiter: str, width: int
) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Yield (table of string columns f0..f{width-1}, start lines) for the data records.

    The header record is dropped; all-empty records are dropped. A record larger than the
    parser's block (one huge cell) restarts the parser at the next record not yet yielded, with
    a block four times larger, up to ``MAX_BLOCK``. Raises Unsafe (possibly after some yields)
    when the rest of the file must be read by the exact path.
    """
    lines = _Lines(LineScanner(path, delimiter).starts())
    names = [f"f{i}" for i in range(width)]
    arrow_encoding = (
        "utf8" if encoding.replace("-", "").lower() in ("utf8", "utf8sig") else encoding
    )
    block = FIRST_BLOCK
    header_pending = True
    with contextlib.ExitStack() as files:
        reader = _open_reader(path, block, names, arrow_encoding, delimiter)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                offset = lines.next_offset()
                if "straddl" not in str(exc) or block >= MAX_BLOCK or offset is None:
                    raise Unsafe(str(exc)) from None
                block = min(block * 4, MAX_BLOCK)
                stream = files.enter_context(pa.OSFile(str(path)))
                stream.seek(offset)
                reader = _open_reader(stream, block, names, arrow_encoding, delimiter)
                continue
            starts = lines.take(batch.num_rows)
            table = pa.Table.from_batches([batch])
            if header_pending:
                table, starts = table.slice(1), starts[1:]
                header_pending = False
            if table.num_rows == 0:
                continue
            blank = _blank_rows(table)
            if blank.size:
                keep = np.ones(table.num_rows, dtype=bool)
                keep[blank] = False
                table, starts = table.filter(pa.array(keep)), starts[keep]
            yield table, starts


def _blank_rows(table: pa.Table) -> np.ndarray:
    """Positions of the records whose every cell is empty (``,,,``): the first column's empty
    cells, narrowed column by column (a few lookups per batch, not three kernels per column)."""
    rows = np.flatnonzero(
        pc.equal(pc.binary_length(table.column(0)), 0).to_numpy(zero_copy_only=False)
    )
    for column in table.columns[1:]:
        if not rows.size:
            break
        cells = pc.binary_length(column.take(pa.array(rows)))
        rows = rows[pc.equal(cells, 0).to_numpy(zero_copy_only=False)]
    return rows


def _open_reader(
    source: Path | pa.NativeFile,
    block: int,
    names: list[str],
    encoding: str,
    delimiter: str,
) -> pcsv.CSVStreamingReader:
    """pyarrow's streaming CSV reader over ``source`` (a path, or a file positioned at offset)."""

    def refuse(_row: object) -> str:
        return "error"

    try:
        return pcsv.open_csv(
            source,
            read_options=pcsv.ReadOptions(
                column_names=names,
                encoding=encoding,
                block_size=block,
            ),
            parse_options=pcsv.ParseOptions(
                delimiter=delimiter,
                newlines_in_values=True,
                ignore_empty_lines=True,
                invalid_row_handler=refuse,
            ),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                null_values=[],
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise Unsafe(str(exc)) from None


def table_frame(table: pa.Table, header: list[str]) -> pd.DataFrame:
    """String columns of a pyarrow table as a DataFrame (pandas ``str`` dtype, no copies)."""
    return pd.DataFrame(
        {name: pd.Series(table.column(i), dtype=STR_DTYPE) for i, name in enumerate(header)}
    )
