"""Load legacy order files as text: CSV (encoding/BOM/delimiter detection) and workbooks, in chunks.

Owns reading bytes into string DataFrame chunks with exact source line numbers; nothing about
params or rules. Workbooks are read by ``pipeline.load.excel_reader``. Imports errors, models only.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import InputError
from pipeline.load.rows import Source

SAMPLE_BYTES = 1 << 20
DELIMITERS = (",", ";", "\t", "|")
WORKBOOK_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xlsb", ".xls", ".ods"})
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_CONTROL_BYTES = frozenset(range(9)) | frozenset(range(14, 32))


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
        from pipeline.load.excel_reader import open_workbook

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
    from pipeline.load.csv_reader import CsvReader

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
