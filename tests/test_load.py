"""Loading: encodings, BOMs, delimiters, multi-line cells, ragged rows, Excel quirks, bad files."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import InputError
from pipeline.load.csv_reader import CsvReader
from pipeline.load.excel_reader import cell_text
from pipeline.load.reader import input_sha256, open_source, sniff_delimiter

FIX = Path(__file__).parent / "fixtures" / "input"


def _rows(name: str, **kw: object) -> tuple[list[str], list[dict[Any, Any]], list[int]]:
    source = open_source(FIX / name, **kw)  # type: ignore[arg-type]
    records: list[dict[Any, Any]] = []
    lines: list[int] = []
    for chunk in source.chunks():
        records += chunk.frame.to_dict("records")
        lines += chunk.lines.tolist()
    return source.header, records, lines


@pytest.mark.parametrize(
    ("name", "encoding", "delimiter"),
    [
        ("utf8.csv", "utf-8", ","),
        ("utf8_bom_semicolon.csv", "utf-8-sig", ";"),
        ("utf16_bom_tab.csv", "utf-16", "\t"),
        ("cp1252_pipe.csv", "cp1252", "|"),
    ],
)
def test_detects_encoding_and_delimiter(name: str, encoding: str, delimiter: str) -> None:
    """Each fixture's encoding and delimiter are detected and accented text survives intact."""
    source = open_source(FIX / name)
    assert (source.encoding, source.delimiter) == (encoding, delimiter)
    header, records, _ = _rows(name)
    assert header[0] == "id"  # no BOM glued to the first header
    assert [r["shipping_address[city]"] for r in records] == ["Köln", "Málaga"]


def test_encoding_override_is_used() -> None:
    """--encoding wins over detection (latin-1 reads the cp1252 file's accents the same)."""
    source = open_source(FIX / "cp1252_pipe.csv", encoding="latin-1")
    assert source.encoding == "latin-1"


def test_multiline_cells_keep_physical_start_lines() -> None:
    """A quoted three-line cell keeps its text; later records report the line they start on."""
    _, records, lines = _rows("multiline.csv")
    assert records[0]["note"] == "first line\nsecond line\nthird"
    assert lines == [2, 5, 7]


def test_ragged_rows_are_reported_with_their_line() -> None:
    """Short rows are padded, long rows cut, and both are parse issues naming the line."""
    source = open_source(FIX / "ragged.csv")
    chunk = next(source.chunks())
    found = {(issue.source_line, issue.rule) for _, issue in chunk.issues}
    assert found == {(4, "ragged_row"), (5, "ragged_row")}
    assert chunk.frame.iloc[2]["shipping_date"] == ""


def test_chunks_stream_in_the_configured_size() -> None:
    """chunk_rows bounds each chunk and the line numbers continue across chunks."""
    source = open_source(FIX / "multiline.csv", chunk_rows=2)
    sizes = [(len(c.frame), c.lines.tolist()) for c in source.chunks()]
    assert sizes == [(2, [2, 5]), (1, [7])]


@pytest.mark.parametrize("system", [1900, 1904])
def test_excel_cells_are_text_without_lost_digits(system: int) -> None:
    """Leading zeros, 15-digit ids, date cells (ISO text) and serials survive as text."""
    source = open_source(FIX / f"excel_{system}.xlsx")
    assert source.excel_date_system == system
    assert source.sheet == "Orders"
    row = next(source.chunks()).frame.iloc[0].to_dict()
    assert row["id"] == "000123"
    assert row["invoice_id"] == "123456789012345"
    assert row["created_at"] == "2023-04-05T14:22:00"
    assert row["order_date"] == "45021.5"
    assert row["shipping_address[zip]"] == "02134"


def test_sheet_by_name_and_index() -> None:
    """--sheet selects by name or 0-based index; an unknown sheet lists the real ones."""
    assert open_source(FIX / "excel_1900.xlsx", sheet="Second").header == ["only", "one"]
    assert open_source(FIX / "excel_1900.xlsx", sheet="1").sheet == "Second"
    with pytest.raises(InputError, match="Orders, Second"):
        open_source(FIX / "excel_1900.xlsx", sheet="Nope")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty.csv", "empty"),
        ("header_only.csv", "no data rows"),
        ("binary.csv", "binary"),
        ("not_a_workbook.xlsx", "not a readable workbook"),
        ("missing.csv", "not found"),
    ],
)
def test_unusable_files_raise_input_error_naming_the_file(name: str, message: str) -> None:
    """Each unusable file raises InputError carrying the path and a plain reason."""
    with pytest.raises(InputError, match=message) as info:
        open_source(FIX / name)
    assert info.value.path == str(FIX / name)


def test_directory_is_refused() -> None:
    """A directory is an InputError, not an IsADirectoryError traceback."""
    with pytest.raises(InputError, match="directory"):
        open_source(FIX)


def test_undecodable_bytes_name_the_line(tmp_path: Path) -> None:
    """Forcing UTF-8 on cp1252 bytes fails with the line and an --encoding hint."""
    path = tmp_path / "x.csv"
    path.write_bytes(b"a,b\n1,2\n3,caf\xe9\n")
    with pytest.raises(InputError, match="line 3") as info:
        for _ in open_source(path, encoding="utf-8").chunks():
            pass
    assert "--encoding" in str(info.value)


def test_duplicate_header_is_refused(tmp_path: Path) -> None:
    """Two columns with one name are ambiguous: InputError naming the column and line."""
    path = tmp_path / "dup.csv"
    path.write_text("a,b,a\n1,2,3\n", encoding="utf-8")
    with pytest.raises(InputError, match="column 'a'"):
        open_source(path)


def test_sniffer_prefers_consistent_splits() -> None:
    """Commas inside a semicolon file do not fool the sniffer."""
    assert sniff_delimiter("a;b;c\n1,5;2;3\n4;5,5;6\n") == ";"


def test_cell_text_renders_numbers_without_exponent() -> None:
    """Integral floats print all digits; fractions round-trip; bools and None are text."""
    assert cell_text(1.23456789012e11) == "123456789012"
    assert cell_text(0.1) == "0.1"
    assert cell_text(True) == "TRUE"
    assert cell_text(None) == ""


def test_input_sha256_streams_whole_file(tmp_path: Path) -> None:
    """The digest covers every byte (a change at the end changes it)."""
    path = tmp_path / "f.csv"
    path.write_bytes(b"x" * 3_000_000)
    first = input_sha256(path)
    path.write_bytes(b"x" * 2_999_999 + b"y")
    assert input_sha256(path) != first
    assert len(first) == 64


cells = st.text(alphabet=st.sampled_from(list('ab é,;|\t"\n\r')), max_size=6)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    table=st.lists(st.lists(cells, min_size=3, max_size=3), min_size=1, max_size=25),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    crlf=st.booleans(),
    blanks=st.lists(st.integers(min_value=0, max_value=25), max_size=4),
    chunk_rows=st.integers(min_value=1, max_value=7),
)
def test_fast_path_matches_exact_csv_path(
    tmp_path: Path,
    table: list[list[str]],
    delimiter: str,
    crlf: bool,
    blanks: list[int],
    chunk_rows: int,
) -> None:
    """pyarrow + line scan gives the same cells and start lines as Python's csv module."""
    buffer = io.StringIO()
    newline = "\r\n" if crlf else "\n"
    csv.writer(buffer, delimiter=delimiter, lineterminator=newline).writerows(
        [["h1", "h2", "h3"], ["x", "y", "z"], *table]
    )
    records = buffer.getvalue().split(newline)
    # blank lines between records (only at record boundaries: split on the terminator is safe
    # because embedded newlines are quoted and csv.writer never emits the terminator inside)
    text = newline.join(records)
    for pos in sorted(blanks, reverse=True):
        cut = [m.end() for m in re.finditer(re.escape(newline), text)]
        if cut and pos < len(cut):
            at = cut[pos]
            if text[:at].count('"') % 2 == 0:
                text = text[:at] + newline + text[at:]
    path = tmp_path / "p.csv"
    path.write_bytes(text.encode("utf-8"))
    fast = open_source(path, delimiter=delimiter, chunk_rows=chunk_rows)
    got = [(c.frame.to_dict("records"), c.lines.tolist()) for c in fast.chunks()]
    exact = CsvReader(path, "utf-8", delimiter, 10_000)
    exact.read_header()
    want = [(c.frame.to_dict("records"), c.lines.tolist()) for c in exact._exact()]
    flat_got = [(r, line) for frame, lines in got for r, line in zip(frame, lines, strict=True)]
    flat_want = [(r, line) for frame, lines in want for r, line in zip(frame, lines, strict=True)]
    assert flat_got == flat_want


def test_stray_quote_falls_back_with_exact_lines(tmp_path: Path) -> None:
    """A quote inside an unquoted cell (5" screen) hands over to csv with lines intact."""
    path = tmp_path / "q.csv"
    path.write_text('a,b\n1,"x\ny"\n2,5" screen\n3,z\n', encoding="utf-8")
    chunk = next(open_source(path).chunks())
    assert chunk.frame["b"].tolist() == ["x\ny", '5" screen', "z"]
    assert chunk.lines.tolist() == [2, 4, 5]


def test_ragged_row_after_first_chunk_continues_exactly(tmp_path: Path) -> None:
    """A ragged row deep in the file switches paths without losing or repeating rows."""
    body = "".join(f"{i},v{i}\n" for i in range(1, 50)) + "50,v50,extra\n51,v51\n"
    path = tmp_path / "r.csv"
    path.write_text("a,b\n" + body, encoding="utf-8")
    chunks = list(open_source(path, chunk_rows=20).chunks())
    ids = [a for c in chunks for a in c.frame["a"].tolist()]
    assert ids == [str(i) for i in range(1, 52)]
    lines = [line for c in chunks for line in c.lines.tolist()]
    assert lines == list(range(2, 53))
    assert [(i.source_line, i.rule) for c in chunks for _, i in c.issues] == [(51, "ragged_row")]
