"""Four real export layouts go from file to the sandbox with a mapping file and no other code.

Each export is written by ``tests/exports.py`` (which also says which orders it must become),
then the real ``order-import run`` CLI imports it into a real sandbox over HTTP with a preset
(Shopify, WooCommerce, Magento 2) or a hand-written mapping (a German cp1252 ERP file).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from tests.exports import (
    Export,
    write_german_erp,
    write_magento,
    write_shopify,
    write_woocommerce,
)

KEY = "exports_e2e_key"
PRESETS = Path(__file__).resolve().parent.parent / "pipeline" / "prepare" / "presets"
ERP_MAPPING = (
    Path(__file__).resolve().parent / "fixtures" / "exports" / "erp_auftraege.mapping.toml"
)

CASES: dict[str, tuple[Callable[[Path], Export], str, Path]] = {
    "shopify": (write_shopify, "orders_export_1.csv", PRESETS / "shopify.toml"),
    "woocommerce": (write_woocommerce, "orders.xlsx", PRESETS / "woocommerce.toml"),
    "magento": (write_magento, "export.csv", PRESETS / "magento.toml"),
    "german_erp": (write_german_erp, "auftraege.csv", ERP_MAPPING),
}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run every CLI call from an empty directory (no stray order-import.toml)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _orders(server: Any) -> dict[str, dict[str, Any]]:
    held: dict[str, dict[str, Any]] = {}
    for order in server.state()["orders"]:
        if not order.get("deleted"):
            assert order["id"] not in held, f"{order['id']} imported twice"
            held[order["id"]] = order
    return held


@pytest.mark.parametrize("layout", sorted(CASES))
def test_export_imports_with_a_mapping_file_alone(
    layout: str, make_sandbox: Callable[..., Any], workdir: Path
) -> None:
    """Exactly the expected orders land: one per order (not per line item), right statuses,
    dates and invoices, accented cities intact, skipped rows never sent."""
    write, name, mapping = CASES[layout]
    export = write(workdir / name)
    server = make_sandbox(api_key=KEY)
    env = {"CHARGEBEE_API_KEY": KEY, "CHARGEBEE_BASE_URL": server.base_url}
    args = ["run", str(export.path), "--mapping", str(mapping), "--batch", layout, "--quiet"]
    result = CliRunner().invoke(main, [*args, "--rate", "6000"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    held = _orders(server)
    for want in export.orders:
        got = held.get(want.id)
        assert got is not None, f"{want.id} was not imported: {sorted(held)}"
        assert got["status"] == want.status, want.id
        assert int(got["order_date"]) == want.order_date, want.id
        assert got["invoice_id"] == want.invoice_id, want.id
        assert got["shipping_address"]["city"] == want.city, want.id
    if layout == "german_erp":
        assert "Genève" in {o["shipping_address"]["city"] for o in held.values()}
    if layout == "shopify":
        assert export.lines > len(export.orders) + len(export.skipped)  # line items exist
    assert set(held) == {want.id for want in export.orders}
    # Skipped rows are in the ledger with their reason, never sent, and counted in the reports.
    summary = json.loads((workdir / "reports" / layout / "summary.json").read_text("utf-8"))
    assert summary["skipped"] == len(export.skipped)
    assert summary["counts"]["skipped"] == len(export.skipped)
