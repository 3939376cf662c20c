"""Ids that cannot be looked up safely as one URL path segment are refused at validation, so
no request ever carries them (``update`` of id ``.`` once POSTed to the deprecated create)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests import support

UNSAFE = [".", "..", "a/b", "a?b", "a#b", "tab\tin"]
HEADER = "id,invoice_id,status,order_date,created_at,shipping_date\n"


@pytest.fixture
def ids_file(tmp_path: Path) -> Path:
    lines = [f'"{value}",INV-{i},delivered,1514764800,1514764800,1514764800\n'
             for i, value in enumerate([*UNSAFE, "OK-1"])]  # fmt: skip
    path = tmp_path / "ids.csv"
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    return path


def test_unsafe_ids_are_invalid_and_never_sent(make_sandbox, ids_file: Path, tmp_path: Path):
    """Every unsafe id is an ``unsafe_id`` error naming its line; only the safe row is sent."""
    server = make_sandbox()
    result = support.run_cli(
        server, server.api_key,
        "run", str(ids_file), "--batch", "ids", "--ledger", str(tmp_path / "l.sqlite"),
        "--report-dir", str(tmp_path / "r"), "--quiet", "--rate", "6000",
    )  # fmt: skip
    support.assert_clean_exit(result, 1)
    with (tmp_path / "r" / "validation.csv").open(encoding="utf-8-sig", newline="") as handle:
        findings = list(csv.DictReader(handle))
    assert [(int(f["source_line"]), f["rule"]) for f in findings] == [
        (line, "unsafe_id") for line in range(2, 2 + len(UNSAFE))
    ]
    log = support.request_log(server)
    assert [entry["path"] for entry in log if entry["method"] == "POST"] == [support.IMPORT_PATH]
    # Besides it, only the pre-flight list look-ups: no unsafe id ever in a path.
    assert {e["path"] for e in log if e["method"] != "POST"} <= {
        "/api/v2/orders",
        "/api/v2/invoices",
    }
    assert set(support.imported_ids(server)) == {"OK-1"}
