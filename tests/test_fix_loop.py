"""The README's fix loop, walked literally with the real CLI against the sandbox.

run with a mapping → edit failures.csv → the printed retry command → reconcile → an order deleted
behind the tool's back → the printed ``retry --missing`` → reconcile clean. Every command the tool
prints as a next step is run exactly as printed (``shlex.split`` of the printed text, in the
folder the user would be in), and the request log proves nothing was sent twice.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
import subprocess
from collections import Counter
from pathlib import Path

import httpx
import pytest

from sandbox.server import SandboxServer
from tests import support

pytestmark = pytest.mark.slow

MAPPING = """\
version = 1

[columns]
"Order #" = "document_number"
"Invoice No" = "invoice_id"
"State" = "status"
"Ordered" = ["order_date", "created_at", "shipping_date"]

[dates]
timezone = "Europe/Berlin"
formats = ["%d.%m.%Y"]

[values.status]
"geliefert" = "delivered"
"versandt" = "shipped"

[id]
source = "document_number"
prefix = "FIX-"
"""


def _write_inputs(folder: Path) -> None:
    rows = [
        ("1001", "INV-1001", "geliefert", "03.01.2018"),
        ("1002", "INV-1002", "versandt", "04.01.2018"),
        ("1003", "INV-1003", "verloren", "05.01.2018"),  # unknown status: invalid
        ("1004", "INV-1004", "geliefert", "06.01.2018"),
        ("1005", "INV-1005", "unterwegs", "07.01.2018"),  # unknown status: invalid
    ]
    with (folder / "orders.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Order #", "Invoice No", "State", "Ordered"])
        writer.writerows(rows)


def _cli(folder: Path, server: SandboxServer, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``order-import ARGV`` in ``folder`` (where the ledger and reports/ live), bounded."""
    assert argv[0] == "order-import", argv
    result = support.run_cli(server, server.api_key, *argv[1:], cwd=folder)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def _next_commands(output: str) -> list[str]:
    """The commands of the ``next:`` lines the CLI printed, exactly as printed."""
    found = []
    for line in output.splitlines():
        match = re.match(r"\s*next: .*?: (order-import .*)$", line)
        if match:
            found.append(match.group(1))
    return found


def test_the_readme_fix_loop_runs_as_printed(make_sandbox, tmp_path: Path) -> None:
    """Each next step the tool prints is the command that moves the batch on, run verbatim."""
    server = make_sandbox()
    _write_inputs(tmp_path)
    (tmp_path / "mapping.toml").write_text(MAPPING, encoding="utf-8")

    first = _cli(
        tmp_path,
        server,
        ["order-import", "run", "orders.csv", "--batch", "fix loop", "--mapping", "mapping.toml"],
    )
    assert first.returncode == 1, first.stdout + first.stderr
    retry = [c for c in _next_commands(first.stdout) if " retry " in c]
    assert retry == ["order-import retry --batch 'fix loop' reports/fix_loop/failures.csv"], (
        first.stdout
    )
    assert sorted(support.imported_ids(server)) == ["FIX-1001", "FIX-1002", "FIX-1004"]

    # The person fixes the two statuses in failures.csv, keeping every other column.
    failures = tmp_path / "reports" / "fix_loop" / "failures.csv"
    with failures.open(encoding="utf-8-sig", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert sorted(r["State"] for r in table) == ["unterwegs", "verloren"]
    for row in table:
        row["State"] = "versandt"
    with failures.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)

    second = _cli(tmp_path, server, shlex.split(retry[0]))
    assert second.returncode == 0, second.stdout + second.stderr
    reconcile = _next_commands(second.stdout)
    assert reconcile == ["order-import reconcile --batch 'fix loop'"], second.stdout
    assert sorted(support.imported_ids(server)) == [f"FIX-100{i}" for i in range(1, 6)]

    clean = _cli(tmp_path, server, shlex.split(reconcile[0]))
    assert clean.returncode == 0, clean.stdout + clean.stderr

    # An order disappears behind the tool's back.
    with httpx.Client(base_url=server.base_url, auth=(server.api_key, ""), timeout=10) as http:
        assert http.post("/orders/FIX-1002/delete").status_code == 200
    found = _cli(tmp_path, server, shlex.split(reconcile[0]))
    assert found.returncode == 1, found.stdout + found.stderr
    missing = re.findall(r"order-import retry [^\n`]*--missing", found.stdout)
    assert missing == ["order-import retry --batch 'fix loop' --missing"], found.stdout
    status = _cli(tmp_path, server, ["order-import", "status", "--batch", "fix loop"])
    assert _next_commands(status.stdout) == missing, status.stdout

    resent = _cli(tmp_path, server, shlex.split(missing[0]))
    assert resent.returncode == 0, resent.stdout + resent.stderr
    assert support.imported_ids(server)["FIX-1002"] == 1

    final = _cli(tmp_path, server, shlex.split(reconcile[0]))
    assert final.returncode == 0, final.stdout + final.stderr
    report = json.loads((tmp_path / "reports" / "fix_loop" / "summary.json").read_text("utf-8"))
    assert report["succeeded"] == 5
    # Exactly one accepted creating POST per order, and a second one only for the deleted order.
    assert support.import_posts(support.request_log(server)) == Counter(
        {"FIX-1001": 1, "FIX-1002": 2, "FIX-1003": 1, "FIX-1004": 1, "FIX-1005": 1}
    )


README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_fix_loop() -> list[str]:
    """The lines of the README's fix-loop block (commands and the one comment telling to fix)."""
    section = README.read_text(encoding="utf-8").split("## The fix loop", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_the_readme_fix_loop_block_runs_as_written(make_sandbox, tmp_path: Path) -> None:
    """The README's fix-loop commands, run in order exactly as written, import every order once."""
    server = make_sandbox()
    _write_inputs(tmp_path)
    (tmp_path / "mapping.toml").write_text(MAPPING, encoding="utf-8")
    expected_codes = iter([1, 0, 0, 0, 0])
    for line in _readme_fix_loop():
        if line.startswith("#"):
            assert "reports/jan/failures.csv" in line
            failures = tmp_path / "reports" / "jan" / "failures.csv"
            text = failures.read_text(encoding="utf-8-sig")
            fixed = text.replace("verloren", "versandt").replace("unterwegs", "versandt")
            failures.write_text(fixed, encoding="utf-8-sig")
            continue
        argv = shlex.split(line, comments=True)
        result = _cli(tmp_path, server, argv)
        assert result.returncode == next(expected_codes), (line, result.stdout + result.stderr)
    assert next(expected_codes, None) is None
    assert sorted(support.imported_ids(server)) == [f"FIX-100{i}" for i in range(1, 6)]
    assert support.import_posts(support.request_log(server)) == Counter(
        {f"FIX-100{i}": 1 for i in range(1, 6)}
    )
