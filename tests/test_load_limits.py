"""Loader limits: one huge cell makes its row invalid (not the file unusable); pipes are refused.

Issue 12: a CSV whose one ``note`` cell held 5 MB was refused whole (``field larger than field
limit (131072)``, exit 2), and a FIFO as input hung. Both run through the real CLI in a
subprocess, bounded in time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.load.reader import input_sha256, open_source
from tests.support import assert_clean_exit, cli

HEADER = "id,invoice_id,status,created_at,order_date,shipping_date,note\n"
BIG = 5_000_000


def _huge_cell_file(tmp_path: Path, rows: int = 6, big_row: int = 3, size: int = BIG) -> Path:
    path = tmp_path / "huge.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(HEADER)
        for i in range(1, rows + 1):
            note = "n" * size if i == big_row else f"note {i}"
            fh.write(f"A-{i},INV-{i},delivered,1680688800,1680688800,1680775200,{note}\n")
    return path


def test_a_5mb_cell_is_read_whole_with_exact_lines(tmp_path: Path) -> None:
    """The huge cell arrives intact; every other row and every line number is unchanged."""
    path = _huge_cell_file(tmp_path, rows=2500, big_row=1200)
    ids: list[str] = []
    lines: list[int] = []
    longest = 0
    for chunk in open_source(path, chunk_rows=1000).chunks():
        ids += chunk.frame["id"].tolist()
        lines += chunk.lines.tolist()
        longest = max(longest, int(chunk.frame["note"].str.len().max()))
    assert longest == BIG
    assert ids == [f"A-{i}" for i in range(1, 2501)]
    assert lines == list(range(2, 2502))


def test_a_huge_quoted_multiline_cell_in_the_header_sample(tmp_path: Path) -> None:
    """A 2 MB quoted cell with newlines inside the first MiB: sniffing and lines still hold."""
    path = tmp_path / "q.csv"
    cell = ("word " * 1000 + "\n") * 400
    path.write_text(f'a;b\n1;"{cell}"\n2;x\n', encoding="utf-8")
    source = open_source(path)
    assert source.delimiter == ";"
    chunk = next(source.chunks())
    assert chunk.frame["b"].tolist() == [cell, "x"]
    assert chunk.lines.tolist() == [2, 3 + cell.count("\n")]


def test_validate_cli_marks_only_the_huge_row_invalid(tmp_path: Path) -> None:
    """Real CLI: exit 1 (not 2), one max_length error on line 4, the other rows valid."""
    path = _huge_cell_file(tmp_path)
    result = subprocess.run(
        cli("validate", str(path), "--report-dir", str(tmp_path / "rep")),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert_clean_exit(result, 1)
    assert "6 rows read, 5 valid, 1 invalid" in result.stdout
    assert "field limit" not in result.stdout + result.stderr
    report = (tmp_path / "rep" / "validation.csv").read_text(encoding="utf-8")
    found = [line for line in report.splitlines()[1:] if line]
    assert len(found) == 1
    assert ",4,note,note," in found[0]
    assert ",max_length,error," in found[0]
    assert len(found[0]) < 2000  # the value is cut in the report, not 5 MB


def test_reading_a_huge_cell_keeps_memory_proportional_to_the_cell(tmp_path: Path) -> None:
    """Peak memory while reading a 40 MB cell stays within a fixed multiple of the cell."""
    size = 40_000_000
    path = _huge_cell_file(tmp_path, rows=50, big_row=10, size=size)
    probe = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from pipeline.load.reader import open_source\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "rows = sum(len(c.frame) for c in open_source(Path(sys.argv[1])).chunks())\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(rows, (peak - base) * 1024)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows, grown = (int(x) for x in result.stdout.split())
    assert rows == 50
    # Python's csv module holds a cell as 4-byte characters while it grows; 12x leaves room
    # for that and the pandas copy, and is far below what reading the file twice would cost.
    assert grown < 12 * size, f"{grown / 1e6:.0f} MB for a {size / 1e6:.0f} MB cell"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("command", ["validate", "mapping"])
def test_a_fifo_is_refused_without_hanging(tmp_path: Path, command: str) -> None:
    """Real CLI: a named pipe with no writer is refused at once with exit 2, not a hang."""
    fifo = tmp_path / "orders.csv"
    os.mkfifo(fifo)
    args = ["validate", str(fifo)]
    if command == "mapping":
        args = ["mapping", "init", str(fifo), "--out", str(tmp_path / "m.toml")]
    result = subprocess.run(cli(*args), capture_output=True, text=True, timeout=60, check=False)
    assert_clean_exit(result, 2)
    assert "named pipe" in result.stderr
    assert str(fifo) in result.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_and_devices_are_refused_before_opening(tmp_path: Path) -> None:
    """open_source and input_sha256 (the drift guard) refuse pipes and devices, naming them."""
    fifo = tmp_path / "p.csv"
    os.mkfifo(fifo)
    for call in (open_source, input_sha256):
        with pytest.raises(InputError, match="named pipe") as info:
            call(fifo)
        assert info.value.path == str(fifo)
    if Path("/dev/null").exists():
        with pytest.raises(InputError, match="a device"):
            open_source(Path("/dev/null"))


@pytest.mark.parametrize("big_row", [1, 700, 2500])
def test_the_fast_path_grows_its_block_instead_of_giving_up(tmp_path: Path, big_row: int) -> None:
    """pyarrow restarts at the huge record's byte offset with a larger block: no hand-over to
    the slow csv path (no Unsafe), same cells and lines as the exact path, BOM or not."""
    from pipeline.load.arrow import fast_tables

    path = _huge_cell_file(tmp_path, rows=2500, big_row=big_row, size=3_000_000)
    for bom in (False, True):
        if bom:
            path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
        ids: list[str] = []
        lines: list[int] = []
        notes: dict[str, int] = {}
        for table, starts in fast_tables(path, "utf-8-sig" if bom else "utf-8", ",", 7):
            ids += table.column(0).to_pylist()
            lines += starts.tolist()
            keys, texts = table.column(0).to_pylist(), table.column(6).to_pylist()
            notes.update((key, len(note)) for key, note in zip(keys, texts, strict=True))
        assert ids == [f"A-{i}" for i in range(1, 2501)]
        assert lines == list(range(2, 2502))
        assert notes[f"A-{big_row}"] == 3_000_000
