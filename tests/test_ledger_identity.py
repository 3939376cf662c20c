"""A batch's row identity and sent content, against the real CLI and sandbox (issue 12).

Changing how rows are keyed between runs of one batch must never import a record twice, and a
correction to a row Chargebee already holds is never dropped silently: it is counted and written
as a ready file for ``order-import update``. Every count is taken from the sandbox's own request
log and order store.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from pipeline.ledger.ledger import Ledger
from tests import support

KEY = "identity_test_key"
HEADER = ["ref", "invoice_id", "status", "created_at", "order_date", "shipping_date", "city"]
MAPPING = """\
[columns]
ref = "reference_id"
invoice_id = "invoice_id"
status = "status"
created_at = "created_at"
order_date = "order_date"
shipping_date = "shipping_date"
city = "shipping_address.city"

[id]
key_columns = {keys}
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_csv(path: Path, count: int, *, city: dict[int, str] | None = None) -> Path:
    """``count`` orders with no id and no document number: only the mapping keys them."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in range(count):
            ts = 1_672_531_200 + i * 3600
            town = (city or {}).get(i, "Lyon")
            writer.writerow([f"R{i}", f"INV-{i}", "delivered", ts, ts, ts + 86_400, town])
    return path


def mapping(path: Path, keys: list[str]) -> Path:
    path.write_text(MAPPING.format(keys=json.dumps(keys)), encoding="utf-8")
    return path


def invoke(server, *args: str) -> Result:
    return support.invoke(server, KEY, *args)


def run(server, source: Path, mapping_file: Path, *more: str) -> Result:
    return invoke(
        server,
        "run",
        str(source),
        "--batch",
        "b1",
        "--mapping",
        str(mapping_file),
        "--rate",
        "6000",
        *more,
    )


def live_orders(server) -> list[dict[str, Any]]:
    return [o for o in server.state()["orders"] if not o.get("deleted")]


def import_posts(server) -> int:
    """POSTs to import_order that reached the sandbox (its request log)."""
    return sum(support.import_posts(support.request_log(server)).values())


def test_changing_key_columns_after_a_canary_never_imports_a_row_twice(make_sandbox, workdir):
    """The issue's scenario: canary with key_columns [ref], the rest with [ref, invoice_id].

    Today 5 rows became 10 orders. Now the second run is refused (exit 2, naming the change),
    with or without --allow-drift, and nothing is sent; back on the batch's mapping, the rest
    is imported: 5 rows, 5 orders, 5 import requests."""
    server = make_sandbox(api_key=KEY)
    source = write_csv(workdir / "orders.csv", 5)
    first = mapping(workdir / "a.toml", ["ref"])
    canary = run(server, source, first, "--canary", "2")
    assert canary.exit_code == 0, canary.output
    assert len(live_orders(server)) == 2
    second = mapping(workdir / "b.toml", ["ref", "invoice_id"])
    for extra in ((), ("--allow-drift",)):
        refused = run(server, source, second, *extra)
        assert refused.exit_code == 2, refused.output
        assert "2 row(s) already sent would get new row keys" in refused.output
        assert "sent as 'R0', order MIG-" in refused.output
        assert "now keyed 'R0|INV-0'" in refused.output
        assert "Traceback" not in refused.output
        assert import_posts(server) == 2
    with Ledger("order-import.sqlite") as ledger:
        keys = {row.row_key for row in ledger.rows("b1")}
    assert keys == {"R0", "R1", "R2", "R3", "R4"}  # the refused plan left no new-key rows
    rest = run(server, source, first)
    assert rest.exit_code == 0, rest.output
    assert len(live_orders(server)) == 5
    assert import_posts(server) == 5


def test_rekeying_before_anything_was_sent_replans_instead_of_doubling(make_sandbox, workdir):
    """A dry run under one keying, then the real run under another: the never-sent rows of the
    old keys leave the batch, so 5 rows are 5 orders (not 10)."""
    server = make_sandbox(api_key=KEY)
    source = write_csv(workdir / "orders.csv", 5)
    dry = run(server, source, mapping(workdir / "a.toml", ["ref"]), "--dry-run")
    assert dry.exit_code == 0, dry.output
    real = run(server, source, mapping(workdir / "b.toml", ["ref", "invoice_id"]))
    assert real.exit_code == 0, real.output
    assert "5 unsent row(s) are keyed differently now" in real.output
    assert len(live_orders(server)) == 5
    assert import_posts(server) == 5
    status = json.loads(invoke(server, "status", "--batch", "b1", "--json").output)
    assert sum(status["counts"].values()) == 5


def test_a_changed_row_already_imported_is_counted_and_offered_to_update(make_sandbox, workdir):
    """The file is corrected after the import: the run says how many imported rows differ and
    writes corrections-for-update.csv; that file, as printed, applies the change."""
    server = make_sandbox(api_key=KEY)
    keys = mapping(workdir / "a.toml", ["ref"])
    assert run(server, write_csv(workdir / "orders.csv", 3), keys).exit_code == 0
    fixed = write_csv(workdir / "orders.csv", 3, city={1: "Paris"})
    again = run(server, fixed, keys, "--allow-drift")
    assert again.exit_code == 0, again.output
    assert "1 row(s) already imported differ from the input now" in again.output
    assert import_posts(server) == 3  # nothing re-sent
    corrections = workdir / "reports" / "b1" / "corrections-for-update.csv"
    with corrections.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    order_id = rows[0]["id"]
    assert rows == [{"id": order_id, "shipping_address[city]": "Paris"}]
    command = "order-import update reports/b1/corrections-for-update.csv --batch b1-corrections"
    assert command in again.output
    update = invoke(server, *command.split()[1:], "--rate", "6000")
    assert update.exit_code == 0, update.output
    held = {o["id"]: o for o in live_orders(server)}
    assert held[order_id]["shipping_address"]["city"] == "Paris"
    assert len(held) == 3


def test_the_batch_records_its_mapping_and_reading_options(make_sandbox, workdir):
    """What a batch was planned with is in the ledger for retry and report to reuse."""
    server = make_sandbox(api_key=KEY)
    keys = mapping(workdir / "a.toml", ["ref"])
    source = write_csv(workdir / "orders.csv", 2)
    assert run(server, source, keys, "--dry-run", "--encoding", "utf-8").exit_code == 0
    with Ledger("order-import.sqlite") as ledger:
        info = ledger.get_batch("b1")
    assert info is not None
    assert info.mapping_text == keys.read_text(encoding="utf-8")
    assert (info.encoding, info.delimiter, info.sheet) == ("utf-8", None, None)
