"""date_order compares days when either side is a day without a time of day, and every
message shows both values; which cells are days comes from the parser (vectorised)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.models import ValidationRules
from pipeline.prepare.dates import DateCells, DatePolicy, parse_dates
from pipeline.prepare.validation import FileState, validate_chunk

POLICY = DatePolicy(formats=("%d.%m.%Y %H:%M", "%d.%m.%Y"), timezone="Europe/Berlin")
MAPPING = """\
version = 1

[columns]
"Order" = "document_number"
"Invoice" = "invoice_id"
"Status" = "status"
"Ordered" = "order_date"
"Shipped" = "shipping_date"
"Created" = "created_at"

[dates]
timezone = "Europe/Berlin"
formats = ["%d.%m.%Y %H:%M", "%d.%m.%Y"]
"""


def test_the_parser_marks_cells_without_a_time_of_day() -> None:
    """Day-only formats, ISO days and whole Excel serials are days; times, offsets and Unix
    seconds are instants."""
    text = pd.Series(
        ["02.06.2019", "02.06.2019 18:30", "2019-06-02", "2019-06-02T18:30:00Z", "43618",
         "43618.5", "1559498400", None, "nonsense"],
        dtype="str",
    )  # fmt: skip
    parsed = parse_dates(text, POLICY)
    assert parsed.date_only.tolist() == [True, False, True, False, True, False, False, False, False]


def _date_order(ordered: list[str], shipped: list[str]) -> list[str]:
    cells = {}
    frame = {}
    for name, values in (("order_date", ordered), ("shipping_date", shipped)):
        parsed = parse_dates(pd.Series(values, dtype="str"), POLICY)
        frame[name] = parsed.seconds.reset_index(drop=True)
        cells[name] = DateCells(parsed.date_only, POLICY.timezone)
    n = len(ordered)
    frame["created_at"] = frame["order_date"]
    frame["invoice_id"] = pd.Series([f"INV-{i}" for i in range(n)], dtype="str")
    frame["status"] = pd.Series(["shipped"] * n, dtype="str")
    found = validate_chunk(
        pd.DataFrame(frame),
        np.arange(2, n + 2),
        [f"k{i}" for i in range(n)],
        sources={},
        rules=ValidationRules(),
        state=FileState(),
        now=2_000_000_000,
        dates=cells,
    )
    return [f"{i.source_line}: {i.message}" for _, i in found if i.rule == "date_order"]


def test_a_day_compared_with_a_timestamp_compares_days() -> None:
    """A shipping day on the order's own day is fine whatever the order's time; the day before
    is not, and two timestamps still compare to the second."""
    found = _date_order(
        ["02.06.2019 18:30", "02.06.2019 18:30", "02.06.2019", "02.06.2019 18:30"],
        ["02.06.2019", "01.06.2019", "02.06.2019 00:10", "02.06.2019 18:29"],
    )
    assert found == [
        "3: shipping_date 2019-06-01 is before order_date 2019-06-02 18:30",
        "5: shipping_date 2019-06-02 18:29 is before order_date 2019-06-02 18:30",
    ]


def test_days_are_compared_in_the_zone_of_the_day() -> None:
    """23:30 in Berlin is already the next day in UTC: the order's Berlin day counts."""
    found = _date_order(["02.06.2019 23:30"], ["02.06.2019"])
    assert found == []


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_validate_cli_accepts_same_day_and_shows_both_values(in_tmp: Path) -> None:
    """Through `order-import validate`: the same-day row is valid, the day before is refused
    with both values in the message (terminal and validation.csv)."""
    (in_tmp / "map.toml").write_text(MAPPING, encoding="utf-8")
    (in_tmp / "orders.csv").write_text(
        "Order,Invoice,Status,Ordered,Shipped,Created\n"
        "A1,INV-1,shipped,02.06.2019 18:30,02.06.2019,02.06.2019 18:30\n"
        "A2,INV-2,shipped,02.06.2019 18:30,01.06.2019,02.06.2019 18:30\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        main,
        ["validate", "orders.csv", "--mapping", "map.toml", "--report-dir", "out"],
        env={"ORDER_IMPORT_CONFIG": ""},
    )
    assert result.exit_code == 1, result.output
    assert "1 valid, 1 invalid" in result.output
    message = "shipping_date 2019-06-01 is before order_date 2019-06-02 18:30"
    assert message in result.output
    report = (in_tmp / "out" / "validation.csv").read_text(encoding="utf-8")
    assert message in report
    assert report.count("date_order") == 1


def test_canonical_text_is_what_strftime_gives() -> None:
    """The strict date check builds canonical text from fields for numeric formats; it must
    equal pyarrow's strftime (the slow reference), or rolled-over days like 31/02 slip in."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from pipeline.prepare.dates import _canonical

    seconds = np.random.default_rng(3).integers(-2_000_000_000, 4_000_000_000, 5_000)
    stamps = pa.array(seconds * 1, type=pa.timestamp("s"))
    for fmt in ("%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M:%S", "%d.%m.%Y", "%Y%m%d", "%b %d, %Y %I:%M %p"):
        assert _canonical(stamps, fmt).equals(pc.strftime(stamps, format=fmt)), fmt
    policy = DatePolicy(formats=("%d/%m/%Y",), timezone="UTC")
    parsed = parse_dates(pd.Series(["31/02/2024", "29/02/2024", "5/3/2024"], dtype="str"), policy)
    assert parsed.seconds.isna().tolist() == [True, False, False]
