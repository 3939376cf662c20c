"""Load legacy order files as text: CSV (encoding/BOM/delimiter detection) and workbooks, in chunks.

Owns reading bytes into string DataFrame chunks with exact source line numbers; nothing about
params or rules. Workbooks are read by ``pipeline.load_excel``. Imports errors, models only.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from pipeline.config import Settings
from pipeline.errors import InputError
from pipeline.models import Issue, truncate_value

SourceKind = Literal["csv", "workbook"]
SAMPLE_BYTES = 1 << 20
DELIMITERS = (",", ";", "\t", "|")
WORKBOOK_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xlsb", ".xls", ".ods"})
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_CONTROL_BYTES = frozenset(range(9)) | frozenset(range(14, 32))
STRING_DTYPE = "str"


@dataclass(frozen=True, slots=True)
class RawChunk:
    """A block of source records as text, with where each record starts in the file."""

    frame: pd.DataFrame
    """One column per header name; every value a string, ``""`` for an empty cell."""
    lines: np.ndarray
    """int64 source line of each record (CSV: physical line where it starts; Excel: row)."""
    issues: list[tuple[int, Issue]] = field(default_factory=list)
    """(row position in this chunk, issue) for problems found while reading (ragged rows)."""


@dataclass(slots=True)
class Source:
    """An opened input file: its header and a chunk iterator. Built by ``open_source``."""

    path: Path
    kind: SourceKind
    header: list[str]
    header_line: int
    sheet: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    excel_date_system: int | None = None
    """1900 or 1904 for workbooks (serial dates), None for CSV."""
    _chunks: Iterator[RawChunk] | None = None
    _first: RawChunk | None = None

    def chunks(self) -> Iterator[RawChunk]:
        """Yield the data records in chunks (the first one was read by ``open_source``)."""
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        if self._chunks is not None:
            yield from self._chunks


def input_sha256(path: Path) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB blocks (the ledger's drift guard)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(SAMPLE_BYTES), b""):
                digest.update(block)
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror or exc})", path=str(path)) from None
    return digest.hexdigest()


def open_input(path: Path, settings: Settings, *, chunk_rows: int | None = None) -> Source:
    """``open_source`` with the reading options of ``settings`` (encoding, delimiter, sheet,
    chunk size unless ``chunk_rows`` overrides it)."""
    return open_source(
        path,
        encoding=settings.encoding,
        delimiter=settings.delimiter,
        sheet=settings.sheet,
        chunk_rows=settings.chunk_rows if chunk_rows is None else chunk_rows,
    )


def open_source(
    path: Path,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
    chunk_rows: int = 100_000,
) -> Source:
    """Open a CSV or workbook, read its header and first chunk, and check it is usable.

    Raises:
        InputError: missing, a directory, unreadable, not a workbook, binary, empty, header only.
    """
    head = _check_file(path)
    suffix = path.suffix.lower()
    if head.startswith((_ZIP_MAGIC, _OLE_MAGIC)) or suffix in WORKBOOK_SUFFIXES:
        from pipeline.load_excel import open_workbook

        source = open_workbook(path, sheet=sheet, chunk_rows=chunk_rows)
    else:
        source = _open_csv(path, head, encoding, delimiter, chunk_rows)
    assert source._chunks is not None
    first = next(source._chunks, None)
    if first is None:
        raise InputError(
            "no data rows (the file has a header but no records)",
            path=str(path),
            hint="export the orders again; only the header line was found",
        )
    source._first = first
    return source


def _check_file(path: Path) -> bytes:
    if not path.exists():
        raise InputError("file not found", path=str(path))
    if path.is_dir():
        raise InputError("is a directory, not a file", path=str(path))
    try:
        with path.open("rb") as fh:
            head = fh.read(SAMPLE_BYTES)
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror or exc})", path=str(path)) from None
    if not head.strip():
        raise InputError("the file is empty", path=str(path))
    return head


def detect_encoding(sample: bytes, path: Path) -> str:
    """Pick a text encoding: BOM first, then strict UTF-8, then charset-normalizer (cp1252 bias).

    Raises:
        InputError: the bytes look binary (NUL or many control bytes) rather than text.
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in sample or _looks_binary(sample):
        raise InputError(
            "looks like a binary file, not CSV text",
            path=str(path),
            hint="pass a CSV, XLSX, XLS or ODS export (UTF-16 text needs its byte-order mark)",
        )
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    return _guess_single_byte(sample)


def _looks_binary(sample: bytes) -> bool:
    window = sample[:65536]
    controls = sum(1 for byte in window if byte in _CONTROL_BYTES)
    return controls > max(8, len(window) // 100)


# Encodings charset-normalizer may name that are genuinely not Western European; anything else
# it names for a non-UTF-8 sample (hp_roman8, latin-1, mac_roman...) is read as cp1252.
NON_WESTERN = frozenset(
    {
        "cp1250",
        "cp1251",
        "cp1253",
        "cp1254",
        "cp1255",
        "cp1256",
        "cp1257",
        "cp1258",
        "cp866",
        "koi8_r",
        "koi8_u",
        "iso8859_2",
        "iso8859_5",
        "iso8859_7",
        "iso8859_8",
        "iso8859_9",
        "mac_cyrillic",
        "shift_jis",
        "cp932",
        "euc_jp",
        "gb2312",
        "gbk",
        "gb18030",
        "big5",
        "euc_kr",
        "cp949",
        "tis_620",
        "cp874",
    }
)


def _guess_single_byte(sample: bytes) -> str:
    from charset_normalizer import from_bytes

    best = from_bytes(sample[:65536]).best()
    guess = best.encoding if best is not None else None
    if guess in NON_WESTERN:
        return str(guess)
    # Legacy Western exports are overwhelmingly Windows-1252; on short samples charset-normalizer
    # often names an exotic sibling (hp_roman8, mac_roman, latin-1), so prefer cp1252.
    try:
        sample.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def sniff_delimiter(text: str) -> str:
    """The delimiter among , ; TAB | giving the most consistent, widest split of the first lines."""
    lines = text.splitlines()[:50]
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample may cut the last line short
    best, best_score = ",", (0, 0)
    for cand in DELIMITERS:
        try:
            rows = [r for r in csv.reader(lines, delimiter=cand) if r]
        except csv.Error:
            continue
        if not rows:
            continue
        width = len(rows[0])
        consistent = sum(1 for r in rows if len(r) == width)
        score = (consistent if width > 1 else 0, width)
        if score > best_score:
            best, best_score = cand, score
    return best


def _open_csv(
    path: Path, head: bytes, encoding: str | None, delimiter: str | None, chunk_rows: int
) -> Source:
    enc = encoding or detect_encoding(head, path)
    try:
        codecs.lookup(enc)
    except LookupError:
        raise InputError(f"unknown encoding {enc!r}", path=str(path)) from None
    try:
        text = codecs.getincrementaldecoder(enc)(errors="replace").decode(head, final=False)
    except UnicodeDecodeError:  # pragma: no cover - errors="replace" does not raise
        text = ""
    delim = delimiter or sniff_delimiter(text.lstrip("\ufeff"))
    if delim in ("\\t", "tab", "TAB"):
        delim = "\t"
    if len(delim) != 1:
        raise InputError(f"the delimiter must be one character, got {delim!r}", path=str(path))
    from pipeline.load_csv import CsvReader

    reader = CsvReader(path, enc, delim, chunk_rows)
    header, header_line = reader.read_header()
    return Source(
        path=path,
        kind="csv",
        header=header,
        header_line=header_line,
        encoding=enc,
        delimiter=delim,
        _chunks=reader.chunks(),
    )


def clean_header(names: list[str], path: Path, line: int) -> list[str]:
    """Strip whitespace/BOM from header cells, name blank ones, refuse duplicates."""
    out: list[str] = []
    seen: set[str] = set()
    for pos, name in enumerate(names, start=1):
        clean = name.replace("\ufeff", "").strip() or f"(column {pos})"
        if clean in seen:
            raise InputError(
                "duplicate column name in the header",
                path=str(path),
                line=line,
                column=clean,
                hint="rename one of the columns so each name appears once",
            )
        seen.add(clean)
        out.append(clean)
    return out


def frame_from_rows(header: list[str], rows: list[list[str]]) -> pd.DataFrame:
    """Build a string DataFrame from equal-length rows (column-wise, no per-cell work)."""
    if not rows:
        return pd.DataFrame({name: pd.Series([], dtype=STRING_DTYPE) for name in header})
    columns = list(zip(*rows, strict=True))
    return pd.DataFrame(
        {
            name: pd.Series(col, dtype=STRING_DTYPE)
            for name, col in zip(header, columns, strict=True)
        }
    )


def fit_row(
    cells: list[str], width: int, line: int, issues: list[tuple[int, Issue]], pos: int
) -> list[str]:
    """Pad or cut a record to the header's width, reporting a ragged row with its line."""
    got = len(cells)
    if got > width:
        extra = cells[width:]
        if any(cell.strip() for cell in extra):
            issues.append(
                (
                    pos,
                    Issue(
                        source_line=line,
                        column=None,
                        param=None,
                        value=truncate_value(" | ".join(extra)),
                        rule="ragged_row",
                        message=f"row has {got} cells but the header has {width}; "
                        "the extra cells are ignored (a stray delimiter or unquoted text?)",
                        stage="parse",
                    ),
                )
            )
        return cells[:width]
    issues.append(
        (
            pos,
            Issue(
                source_line=line,
                column=None,
                param=None,
                value=None,
                rule="ragged_row",
                message=f"row has {got} cells but the header has {width}; "
                "the missing cells are read as empty (a cut or shifted row?)",
                stage="parse",
            ),
        )
    )
    return cells + [""] * (width - got)
