"""Write the hostile-input suite into a directory: ``python -m tests.hostile.generate DIR``.

Every case names the exit code DESIGN.md gives it (0 fine · 1 some rows invalid · 2 unusable,
nothing sent) for ``validate`` and for ``run``, and which order ids must land exactly once.
Nothing large is committed: files are generated (deterministically) where the caller asks.
"""

from __future__ import annotations

import codecs
import csv
import io
import random
import sys
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tests.orders_factory import BASE_TS, HEADER, order_row

ROWS = 6
"""Data rows in most files (small: the suite runs every file through validate and run)."""
SCRIPT = "<script>alert('xss')</script>"
IMG = "<img src=x onerror=alert(1)>"
FORMULAS = ("=cmd|' /C calc'!A0", '+HYPERLINK("http://evil")', "@SUM(1+1)", "-2+3+cmd|x")


@dataclass(frozen=True)
class Case:
    """One hostile file and what the tool must do with it."""

    name: str
    filename: str
    validate_exit: int
    run_exit: int
    build: Callable[[Path], None]
    landed: frozenset[str] = frozenset()
    """Order ids that must be in the sandbox exactly once after ``run``."""
    maybe: frozenset[str] = frozenset()
    """Ids allowed to land (at most once) or not: the suite does not pin which copy wins."""
    values: dict[str, dict[str, object]] = field(default_factory=dict)
    """id → {dotted field: value} the sandbox must hold (decoding and date checks)."""
    message: str = ""
    """A word the error message must contain (case-insensitive), besides the file name."""
    note: str = ""

    @property
    def unusable(self) -> bool:
        """Exit 2: nothing may be sent."""
        return self.run_exit == 2


def ids(prefix: str, count: int = ROWS, skip: Iterable[int] = ()) -> frozenset[str]:
    """The ids ``order_row`` gives rows ``0..count-1`` except ``skip``."""
    skipped = set(skip)
    return frozenset(f"{prefix}-{i:06d}" for i in range(count) if i not in skipped)


def rows(
    prefix: str, count: int = ROWS, bad: dict[int, dict[str, str]] | None = None
) -> list[dict[str, str]]:
    """Valid API-column rows with some cells overridden."""
    out = []
    for i in range(count):
        row = order_row(i, prefix=prefix)
        row.update((bad or {}).get(i, {}))
        out.append(row)
    return out


def csv_text(
    data: list[dict[str, str]],
    *,
    header: list[str] | None = None,
    delimiter: str = ",",
    newline: str = "\n",
) -> str:
    """Render rows as CSV text."""
    buf = io.StringIO()
    names = header or list(HEADER)
    writer = csv.DictWriter(
        buf, fieldnames=names, delimiter=delimiter, lineterminator=newline, extrasaction="ignore"
    )
    writer.writeheader()
    for row in data:
        writer.writerow({k: row.get(k, "") for k in names})
    return buf.getvalue()


def text_file(text: str, encoding: str = "utf-8", bom: bytes = b"") -> Callable[[Path], None]:
    """A builder writing ``bom`` + ``text`` encoded."""

    def build(path: Path) -> None:
        path.write_bytes(bom + text.encode(encoding))

    return build


def raw(data: bytes) -> Callable[[Path], None]:
    """A builder writing these exact bytes."""

    def build(path: Path) -> None:
        path.write_bytes(data)

    return build


def noise(size: int, seed: int) -> bytes:
    """Deterministic random bytes."""
    return random.Random(seed).randbytes(size)


def workbook(
    prefix: str, *, date1904: bool = False, formulas: bool = False, count: int = ROWS
) -> Callable[[Path], None]:
    """A real .xlsx (openpyxl) with date cells; optionally the 1904 date system and formulas."""

    def build(path: Path) -> None:
        from openpyxl import Workbook

        wb = Workbook()
        if date1904:
            wb.epoch = datetime(1904, 1, 1)
        ws = wb.active
        assert ws is not None
        header = [*HEADER, "legacy_total"] if formulas else list(HEADER)
        ws.append(header)
        for i, row in enumerate(rows(prefix, count)):
            cells: list[object] = [row[h] for h in HEADER]
            # Real date cells (stored as serial numbers) instead of Unix seconds.
            cells[HEADER.index("order_date")] = datetime(2023, 1, 1 + i, 12, 0)
            cells[HEADER.index("shipping_date")] = datetime(2023, 1, 2 + i, 9, 30)
            if formulas:
                cells.append(f"=SUM({i},1)")
            ws.append(cells)
        wb.save(path)

    return build


def zip_posing_as_workbook(path: Path) -> None:
    """A valid zip archive that is not a workbook."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "this is not a spreadsheet\n" * 50)
        zf.writestr("data.bin", noise(2048, 7))


def truncated_workbook(path: Path) -> None:
    """The first half of a real workbook."""
    whole = path.with_suffix(".whole.xlsx")
    workbook("TW")(whole)
    data = whole.read_bytes()
    whole.unlink()
    path.write_bytes(data[: len(data) // 2])


def empty_workbook(path: Path) -> None:
    """A workbook whose only sheet is empty."""
    from openpyxl import Workbook

    Workbook().save(path)


def header_only_workbook(path: Path) -> None:
    """A workbook with a header row and nothing else."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(list(HEADER))
    wb.save(path)


def directory(path: Path) -> None:
    """A directory whose name ends in .csv."""
    path.mkdir(exist_ok=True)


def missing(path: Path) -> None:
    """Nothing: the file does not exist."""


def many_columns(path: Path) -> None:
    """The API columns plus 3,000 unknown ones."""
    extra = [f"legacy_col_{j:04d}" for j in range(3000)]
    data = rows("MC")
    for row in data:
        row.update({c: str(j) for j, c in enumerate(extra)})
    path.write_text(csv_text(data, header=[*HEADER, *extra]), encoding="utf-8")


def multi_mb_cell(path: Path) -> None:
    """A 3 MB cell (beyond any order field; typically a broken quote swallowing the file)."""
    data = rows("MB")
    data[2]["shipping_address[first_name]"] = "A" * (3 << 20)
    path.write_text(csv_text(data), encoding="utf-8")


def html_filename_rows(path: Path) -> None:
    """Valid rows in a file whose *name* is an HTML payload."""
    path.write_text(csv_text(rows("HF")), encoding="utf-8")


def crlf_blank_lines(path: Path) -> None:
    """CRLF endings, blank lines between records, padded header names."""
    text = csv_text(rows("CR"), newline="\r\n")
    lines = text.split("\r\n")
    lines[0] = ",".join(f"  {name} " for name in HEADER)
    path.write_bytes("\r\n\r\n".join(lines).encode("utf-8"))


def quoted_multiline(path: Path) -> None:
    """Quoted cells with embedded newlines, quotes and delimiters."""
    data = rows("QM")
    data[1]["shipping_address[first_name]"] = 'Anne "Nan", Jr.'
    data[3]["shipping_address[city]"] = "Saint-Denis\nCedex"
    path.write_text(csv_text(data), encoding="utf-8")


def _ragged(path: Path) -> None:
    text = csv_text(rows("RG")).splitlines()
    text[3] = text[3] + ",surprise,extra"  # row 2: two non-empty extra cells
    text[5] = ",".join(text[5].split(",")[:4])  # row 4: cut after 4 cells
    path.write_text("\n".join(text) + "\n", encoding="utf-8")


def _nul_in_cell(path: Path) -> None:
    data = rows("NU")
    data[1]["shipping_address[first_name]"] = "Zo\x00ë"
    path.write_text(csv_text(data), encoding="utf-8")


def _serial_in_csv(path: Path) -> None:
    data = rows("XS")
    data[0]["order_date"] = "44927"  # 2023-01-01
    data[1]["order_date"] = "44927.5"  # 2023-01-01 12:00
    data[2]["order_date"] = "60"  # 1900-02-29: a day that never existed
    path.write_text(csv_text(data), encoding="utf-8")


def _mixed_dates(path: Path) -> None:
    data = rows("MD")
    data[0]["order_date"] = "2023-03-01"
    data[1]["order_date"] = "2023-03-01T10:00:00Z"
    data[2]["order_date"] = "2023-03-01T12:00:00+02:00"
    data[3]["order_date"] = "yesterday"
    data[4]["order_date"] = "2023/03/01 junk"
    for row in data:
        row["shipping_date"] = "2023-03-05"  # after every order_date above
    path.write_text(csv_text(data), encoding="utf-8")


def _duplicate_ids(path: Path) -> None:
    data = rows("DU")
    data[3]["id"] = data[0]["id"]
    data[5]["id"] = data[0]["id"]
    path.write_text(csv_text(data), encoding="utf-8")


def _formula_injection(path: Path) -> None:
    data = rows("FI", bad={0: {"status": FORMULAS[0]}, 1: {"customer_id": FORMULAS[1] * 5}})
    data[2]["shipping_address[first_name]"] = FORMULAS[2]
    data[3]["shipping_address[first_name]"] = FORMULAS[3]
    path.write_text(csv_text(data), encoding="utf-8")


def _html_injection(path: Path) -> None:
    data = rows("HI", bad={0: {"status": SCRIPT}, 1: {"shipping_address[country]": IMG}})
    data[2]["shipping_address[first_name]"] = SCRIPT
    path.write_text(csv_text(data), encoding="utf-8")


ENC_VALUES: dict[str, object] = {
    "shipping_address.city": "Kraków",
    "shipping_address.first_name": "Zoë",
}
P = "T"  # shorthand below


def cases() -> list[Case]:
    """Every hostile case, in a stable order."""
    utf8 = csv_text(rows("U8"))
    return [
        # --- fine: exit 0, every row lands once --------------------------------------------
        Case("baseline_utf8", "baseline.csv", 0, 0, text_file(utf8), ids("U8")),
        Case(
            "utf8_bom_header",
            "utf8_bom.csv",
            0,
            0,
            text_file(csv_text(rows("UB")), bom=codecs.BOM_UTF8),
            ids("UB"),
            values={"UB-000001": ENC_VALUES},
        ),
        Case(
            "utf16le_bom",
            "utf16le.csv",
            0,
            0,
            text_file(csv_text(rows("LE")), "utf-16-le", codecs.BOM_UTF16_LE),
            ids("LE"),
            values={"LE-000001": ENC_VALUES},
        ),
        Case(
            "utf16be_bom",
            "utf16be.csv",
            0,
            0,
            text_file(csv_text(rows("BE")), "utf-16-be", codecs.BOM_UTF16_BE),
            ids("BE"),
            values={"BE-000001": ENC_VALUES},
        ),
        Case(
            "cp1252",
            "cp1252.csv",
            0,
            0,
            text_file(
                csv_text(rows("WN", bad={0: {"shipping_address[first_name]": "Zoë €"}})), "cp1252"
            ),
            ids("WN"),
            values={"WN-000000": {"shipping_address.first_name": "Zoë €"}, "WN-000001": ENC_VALUES},
        ),
        Case(
            "latin1",
            "latin1.csv",
            0,
            0,
            text_file(csv_text(rows("L1")), "latin-1"),
            ids("L1"),
            values={"L1-000001": ENC_VALUES},
        ),
        Case(
            "semicolon",
            "semicolon.csv",
            0,
            0,
            text_file(csv_text(rows("SC"), delimiter=";")),
            ids("SC"),
        ),
        Case("tab", "tab.tsv", 0, 0, text_file(csv_text(rows("TB"), delimiter="\t")), ids("TB")),
        Case("pipe", "pipe.csv", 0, 0, text_file(csv_text(rows("PP"), delimiter="|")), ids("PP")),
        Case("crlf_blank_lines_padded_header", "crlf.csv", 0, 0, crlf_blank_lines, ids("CR")),
        Case(
            "quoted_multiline_cells",
            "quoted.csv",
            0,
            0,
            quoted_multiline,
            ids("QM"),
            values={"QM-000001": {"shipping_address.first_name": 'Anne "Nan", Jr.'}},
        ),
        Case(
            "unknown_columns_ignored",
            "unknown_cols.csv",
            0,
            0,
            text_file(
                csv_text(
                    [dict(r, legacy_notes="n", colour="red") for r in rows("UC")],
                    header=[*HEADER, "legacy_notes", "colour"],
                )
            ),
            ids("UC"),
        ),
        Case("three_thousand_columns", "wide.csv", 0, 0, many_columns, ids("MC")),
        Case(
            "formula_text_in_valid_cells",
            "formula_values.csv",
            0,
            0,
            text_file(
                csv_text(
                    rows(
                        "FV",
                        bad={
                            0: {"shipping_address[first_name]": "=1+1"},
                            1: {"shipping_address[first_name]": "@home"},
                        },
                    )
                )
            ),
            ids("FV"),
            values={"FV-000000": {"shipping_address.first_name": "=1+1"}},
        ),
        Case("html_payload_in_file_name", f"{IMG}.csv", 0, 0, html_filename_rows, ids("HF")),
        Case(
            "xlsx_date_cells",
            "dates.xlsx",
            0,
            0,
            workbook("XL"),
            ids("XL"),
            values={"XL-000000": {"order_date": 1_672_574_400}},
        ),  # 2023-01-01 12:00 UTC
        Case(
            "xlsx_1904_dates",
            "dates1904.xlsx",
            0,
            0,
            workbook("X4", date1904=True),
            ids("X4"),
            values={"X4-000002": {"order_date": 1_672_747_200}},
        ),  # 2023-01-03 12:00 UTC
        Case("xlsx_formulas", "formulas.xlsx", 0, 0, workbook("XF", formulas=True), ids("XF")),
        # --- some rows invalid: exit 1, the valid ones land ----------------------------------
        Case(
            "excel_serial_in_csv",
            "serials.csv",
            1,
            1,
            _serial_in_csv,
            ids("XS", skip=[2]),
            values={
                "XS-000000": {"order_date": BASE_TS},
                "XS-000001": {"order_date": BASE_TS + 43_200},
            },
            note="44927 = 2023-01-01; serial 60 is the fictitious 1900-02-29",
        ),
        Case(
            "impossible_dates",
            "impossible.csv",
            1,
            1,
            text_file(
                csv_text(
                    rows(
                        "ID",
                        bad={
                            0: {"order_date": "2023-02-30"},
                            1: {"order_date": "2023-13-01"},
                            2: {"shipping_date": "2023-02-29"},
                        },
                    )
                )
            ),
            ids("ID", skip=[0, 1, 2]),
        ),
        Case(
            "mixed_dates",
            "mixed_dates.csv",
            1,
            1,
            _mixed_dates,
            ids("MD", skip=[3, 4]),
            values={
                "MD-000001": {"order_date": 1_677_664_800},
                "MD-000002": {"order_date": 1_677_664_800},
            },
        ),
        Case(
            "duplicate_ids",
            "dupes.csv",
            1,
            1,
            _duplicate_ids,
            ids("DU", skip=[0, 3, 5]),
            maybe=frozenset({"DU-000000"}),
        ),
        Case(
            "ragged_rows",
            "ragged.csv",
            1,
            1,
            _ragged,
            ids("RG", skip=[2, 4]),
            maybe=frozenset({"RG-000002"}),
            note="extra cells: warning or error; cut row: invalid",
        ),
        Case(
            "oversized_row",
            "oversized.csv",
            1,
            1,
            text_file(
                csv_text(rows("OV", bad={1: {"shipping_address[first_name]": "B" * 100_000}}))
            ),
            ids("OV", skip=[1]),
        ),
        Case("formula_injection", "formulas.csv", 1, 1, _formula_injection, ids("FI", skip=[0, 1])),
        Case("html_injection", "html.csv", 1, 1, _html_injection, ids("HI", skip=[0, 1])),
        Case(
            "overflowing_numbers",
            "overflow.csv",
            1,
            1,
            text_file(
                csv_text(rows("OF", bad={0: {"created_at": "9" * 40}, 1: {"order_date": "-1e308"}}))
            ),
            ids("OF", skip=[0, 1]),
        ),
        # --- unusable: exit 2, nothing sent --------------------------------------------------
        Case("empty_file", "empty.csv", 2, 2, raw(b""), message="empty"),
        Case("whitespace_only", "blank.csv", 2, 2, raw(b" \r\n\n\t\n"), message="empty"),
        Case("header_only", "header_only.csv", 2, 2, text_file(",".join(HEADER) + "\n")),
        Case(
            "bom_header_only_crlf",
            "bom_header_only.csv",
            2,
            2,
            raw(codecs.BOM_UTF8 + (",".join(HEADER) + "\r\n").encode()),
        ),
        Case("missing_file", "missing.csv", 2, 2, missing, message="not found"),
        Case("directory_named_csv", "folder.csv", 2, 2, directory, message="directory"),
        Case("binary_garbage", "garbage.csv", 2, 2, raw(noise(65536, 1)), message="binary"),
        Case(
            "pdf_named_csv",
            "invoice.csv",
            2,
            2,
            raw(b"%PDF-1.4\n" + noise(8192, 2)),
            message="binary",
        ),
        Case(
            "utf16_without_bom",
            "utf16_nobom.csv",
            2,
            2,
            text_file(utf8, "utf-16-le"),
            message="binary",
        ),
        Case("nul_bytes_in_cell", "nul.csv", 2, 2, _nul_in_cell, message="binary"),
        Case("zip_posing_as_xlsx", "orders.xlsx", 2, 2, zip_posing_as_workbook),
        Case("truncated_xlsx", "truncated.xlsx", 2, 2, truncated_workbook),
        Case("garbage_named_xlsx", "garbage.xlsx", 2, 2, raw(noise(4096, 3))),
        Case("empty_workbook", "empty.xlsx", 2, 2, empty_workbook),
        Case("header_only_workbook", "header_only.xlsx", 2, 2, header_only_workbook),
        Case(
            "duplicate_header",
            "dup_header.csv",
            2,
            2,
            text_file(csv_text(rows("DH"), header=[*HEADER, "status"])),
            message="duplicate",
        ),
        Case("no_api_columns", "foreign.csv", 2, 2, text_file("foo,bar,baz\n1,2,3\n4,5,6\n")),
        Case(
            "missing_required_column",
            "no_invoice.csv",
            2,
            2,
            text_file(csv_text(rows("NR"), header=[h for h in HEADER if h != "invoice_id"])),
            message="invoice_id",
        ),
        Case(
            "multi_megabyte_cell",
            "huge_cell.csv",
            1,
            1,
            multi_mb_cell,
            ids("MB", skip=[2]),
            note="a 3 MB cell is read whole; its row is invalid by max_length, the rest import",
        ),
    ]


def generate(directory_path: Path) -> list[tuple[Case, Path]]:
    """Write every case into ``directory_path``; return (case, path) pairs."""
    directory_path.mkdir(parents=True, exist_ok=True)
    out = []
    for case in cases():
        path = directory_path / case.filename
        case.build(path)
        out.append((case, path))
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-out")
    for case, path in generate(target):
        print(f"{case.validate_exit} {case.run_exit}  {path}")
