"""Pre-flight end to end: the real CLI against a real sandbox for orders, fronted by a small
invoices server on 127.0.0.1 (``GET /invoices`` answered from a dict the test controls, every
other request forwarded to the sandbox unchanged).

The front stands in for the sandbox's own ``GET /invoices`` (built in parallel, contract in
docs/preflight.md); ``tests/test_preflight_sandbox.py`` runs the same loop against the sandbox
alone once it has invoices. What reached the server is counted in the sandbox's request log (the
imports) and in the front's log (the invoice look-ups).
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import re
import shlex
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from sandbox.server import SandboxServer
from tests import support
from tests.orders_factory import order_row, write_orders
from tests.test_hostile_servers import HostileServer, Seen, answer


@dataclass
class Front:
    """A ``HostileServer`` (asyncio, 127.0.0.1, bounded) answering ``GET /api/v2/invoices``
    from ``invoices`` and proxying every other request to ``sandbox`` unchanged.
    ``fail_invoices`` makes the invoice list answer that status instead."""

    sandbox: SandboxServer
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_invoices: int | None = None
    server: HostileServer | None = None
    _client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))
    """One pooled client for the forwarding (a client per request, with its own TLS context and
    connection, held a 250-row run to ~9 requests/s)."""

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return self.server.base_url

    @property
    def seen(self) -> list[tuple[str, str]]:
        """(method, path with query) of every request, in arrival order."""
        assert self.server is not None
        return [(s.method, s.path) for s in self.server.seen]

    def invoice_lookups(self) -> list[dict[str, str]]:
        """The query of every ``GET /invoices`` seen."""
        return [
            dict(parse_qsl(urlsplit(path).query))
            for method, path in self.seen
            if method == "GET" and urlsplit(path).path == "/api/v2/invoices"
        ]

    def __enter__(self) -> Front:
        self.server = HostileServer(self._handle).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.__exit__()
        self._client.close()

    def _invoices(self, query: str) -> tuple[int, dict[str, Any]]:
        if self.fail_invoices is not None:
            return self.fail_invoices, {"message": "down", "api_error_code": "internal_error"}
        params = dict(parse_qsl(query))
        assert params.get("limit") == "100"
        if "id[in]" not in params:  # the whole list, 100 a page, an opaque offset
            start = int(params.get("offset", "0").removeprefix("page-"))
            page = list(self.invoices.values())[start : start + 100]
            body: dict[str, Any] = {"list": [{"invoice": inv} for inv in page]}
            if start + 100 < len(self.invoices):
                body["next_offset"] = f"page-{start + 100}"
            return 200, body
        wanted = json.loads(params["id[in]"])
        assert len(wanted) <= 100, "more than 100 ids in one id[in] filter"
        found = [self.invoices[i] for i in wanted if i in self.invoices]
        return 200, {"list": [{"invoice": inv} for inv in found]}

    async def _handle(self, seen: Seen, writer: asyncio.StreamWriter) -> bool:
        parts = urlsplit(seen.path)
        if seen.method == "GET" and parts.path == "/api/v2/invoices":
            writer.write(answer(*self._invoices(parts.query)))
            return True
        status, data, content_type = await asyncio.to_thread(self._forward, seen)
        writer.write(answer(status, data, {"Content-Type": content_type}))
        return True

    def _forward(self, seen: Seen) -> tuple[int, bytes, str]:
        keep = {
            k: v
            for k, v in seen.headers.items()
            if k not in ("host", "content-length", "connection")
        }
        target = self.sandbox.base_url.removesuffix("/api/v2") + seen.path
        response = self._client.request(seen.method, target, headers=keep, content=seen.body)
        return (
            response.status_code,
            response.content,
            response.headers.get("content-type", "application/json"),
        )


@pytest.fixture
def front(make_sandbox: Callable[..., SandboxServer]) -> Iterator[Front]:
    """A sandbox behind an invoices front that knows no invoice yet."""
    with Front(make_sandbox()) as server:
        yield server


def _invoice(invoice_id: str, **fields: str) -> dict[str, Any]:
    return {"id": invoice_id, "currency_code": "USD", "total": 0, "object": "invoice", **fields}


def _cli(front: Front, work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = support.cli_env(front.base_url, front.sandbox.api_key)
    result = subprocess.run(
        support.cli(*args),
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=support.RUN_TIMEOUT_S,
        check=False,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def _next_commands(output: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"next: .*?: (order-import [^\n]*)", output)]


def _orders_lists(front: Front) -> Counter[str]:
    """GET /orders look-ups seen by the front, by the filter they used."""
    kinds: Counter[str] = Counter()
    for method, path in front.seen:
        parts = urlsplit(path)
        if method != "GET" or parts.path != "/api/v2/orders":
            continue
        query = dict(parse_qsl(parts.query))
        if "id[in]" in query:
            kinds["id"] += 1
        elif "invoice_id[in]" in query:
            kinds["invoice_id"] += 1
        else:
            kinds["scan"] += 1
    return kinds


def _failures(work: Path, batch: str) -> list[dict[str, str]]:
    with (work / "reports" / batch / "failures.csv").open(encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_missing_invoices_are_never_sent_and_retry_imports_exactly_them(
    front: Front, tmp_path: Path
) -> None:
    """250 rows, 7 of whose invoices are not on the site: no import for those 7, the reason in
    failures.csv, at most ⌈N/100⌉ look-ups per check kind; once the invoices are there, the
    printed retry command imports exactly them."""
    count = 250
    missing = {3, 50, 101, 150, 199, 200, 249}
    front.invoices = {
        f"INV-{i:06d}": _invoice(f"INV-{i:06d}") for i in range(count) if i not in missing
    }
    write_orders(tmp_path / "orders.csv", count, prefix="PF")
    # The site's plan (found in the folder, so the printed commands run as printed): at the
    # default 150/min the run would spend 100 s pacing 250 POSTs, which proves nothing here.
    (tmp_path / "order-import.toml").write_text("rate_per_minute = 60000\n", encoding="utf-8")

    first = _cli(front, tmp_path, "run", "orders.csv", "--batch", "pf", "--quiet")
    assert first.returncode == 1, first.stdout + first.stderr
    imported = support.imported_ids(front.sandbox)
    assert set(imported) == {f"PF-{i:06d}" for i in range(count) if i not in missing}
    assert max(imported.values()) == 1
    # Pre-flight cost: at most ⌈N/100⌉ requests per check kind.
    bound = math.ceil(count / 100)
    assert len(front.invoice_lookups()) <= bound
    kinds = _orders_lists(front)
    assert kinds["id"] <= bound
    assert kinds["invoice_id"] <= bound
    assert kinds["scan"] <= bound
    assert kinds["id"] >= 1
    assert kinds["invoice_id"] >= 1
    assert len(front.invoice_lookups()) >= 1
    assert "pre-flight:" in first.stdout
    assert "invoice_not_found 7" in first.stdout

    table = _failures(tmp_path, "pf")
    assert sorted(r["id"] for r in table) == sorted(f"PF-{i:06d}" for i in missing)
    assert {r["oi:state"] for r in table} == {"blocked"}
    assert {r["oi:rule"] for r in table} == {"invoice_not_found"}
    row = next(r for r in table if r["id"] == "PF-000003")
    assert row["oi:message"] == "invoice INV-000003 not found in Chargebee: import invoices first"
    summary = json.loads((tmp_path / "reports" / "pf" / "summary.json").read_text("utf-8"))
    assert summary["blocked"] == 7
    assert summary["blocked_reasons"] == [{"code": "invoice_not_found", "rows": 7}]
    assert summary["preflight_requests"] == len(front.invoice_lookups()) + sum(kinds.values())
    assert "blocked" in (tmp_path / "reports" / "pf" / "report.html").read_text("utf-8")

    status = _cli(front, tmp_path, "status", "--batch", "pf")
    assert "blocked 7" in status.stdout
    assert "pre-flight:" in status.stdout
    retry = [c for c in _next_commands(first.stdout) if " retry " in c]
    assert retry == ["order-import retry --batch pf"], first.stdout

    # Still missing: retry checks them again and sends nothing.
    again = _cli(front, tmp_path, *shlex.split(retry[0])[1:], "--quiet")
    assert again.returncode == 1, again.stdout
    assert support.imported_ids(front.sandbox) == imported

    # The invoices are imported into the site: the same retry imports exactly the 7 rows.
    front.invoices.update({f"INV-{i:06d}": _invoice(f"INV-{i:06d}") for i in missing})
    done = _cli(front, tmp_path, *shlex.split(retry[0])[1:], "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    after = support.imported_ids(front.sandbox)
    assert after - imported == Counter({f"PF-{i:06d}": 1 for i in missing})
    assert max(after.values()) == 1


@pytest.mark.slow
def test_ids_and_document_numbers_taken_by_other_orders_are_refused_before_sending(
    front: Front, tmp_path: Path
) -> None:
    """Orders the batch did not create hold an id, a document number and an invoice of rows
    in the file: those rows are refused with the holder named and never posted; a row whose
    order is already there exactly as in the file is recorded as already present."""
    count = 6
    front.invoices = {f"INV-{i:06d}": _invoice(f"INV-{i:06d}") for i in range(count + 10)}
    front.invoices["INV-000004"] = _invoice("INV-000004", customer_id="SOMEONE-ELSE")
    write_orders(tmp_path / "orders.csv", count, prefix="TK")
    same = order_row(0, prefix="TK")
    with httpx.Client(
        base_url=front.sandbox.base_url, auth=(front.sandbox.api_key, ""), timeout=10
    ) as http:
        taken = [
            same,  # row 0's own order, exactly as in the file
            {**order_row(1, prefix="TK"), "invoice_id": "INV-000011", "document_number": "X1"},
            {**order_row(9, prefix="ZZ"), "document_number": "TKDOC000002"},
            {**order_row(3, prefix="ZZ"), "document_number": "X3"},  # holds INV-000003
        ]
        for params in taken:
            response = http.post("/orders/import_order", data=params)
            assert response.status_code == 200, response.text
    before = support.import_posts(support.request_log(front.sandbox))

    result = _cli(front, tmp_path, "run", "orders.csv", "--batch", "tk", "--quiet")
    assert result.returncode == 1, result.stdout + result.stderr
    posts = support.import_posts(support.request_log(front.sandbox)) - before
    assert posts == Counter({"TK-000005": 1}), posts

    table = {r["id"]: r for r in _failures(tmp_path, "tk")}
    assert sorted(table) == ["TK-000001", "TK-000002", "TK-000003", "TK-000004"]
    assert table["TK-000001"]["oi:rule"] == "order_id_taken"
    assert "order TK-000001 already exists in Chargebee" in table["TK-000001"]["oi:message"]
    assert table["TK-000002"]["oi:rule"] == "document_number_taken"
    assert table["TK-000002"]["oi:message"] == (
        "order ZZ-000009 already holds document number TKDOC000002 in Chargebee"
    )
    assert table["TK-000003"]["oi:rule"] == "invoice_has_order"
    assert (
        "order ZZ-000003 already exists in Chargebee for invoice INV-000003"
        in (table["TK-000003"]["oi:message"])
    )
    assert table["TK-000004"]["oi:rule"] == "invoice_customer_mismatch"
    assert "belongs to customer SOMEONE-ELSE" in table["TK-000004"]["oi:message"]
    summary = json.loads((tmp_path / "reports" / "tk" / "summary.json").read_text("utf-8"))
    assert summary["already_present"] == 1
    assert summary["imported"] == 1
    assert summary["blocked"] == 4


@pytest.mark.slow
def test_no_preflight_sends_without_looking_up(front: Front, tmp_path: Path) -> None:
    """``--no-preflight``: no look-up at all, every row posted (the invoices front knows none)."""
    write_orders(tmp_path / "orders.csv", 5, prefix="NP")
    result = _cli(front, tmp_path, "run", "orders.csv", "--batch", "np", "--no-preflight", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    assert front.invoice_lookups() == []
    assert not [s for m, s in front.seen if m == "GET"]
    assert sorted(support.imported_ids(front.sandbox)) == [f"NP-{i:06d}" for i in range(5)]


@pytest.mark.slow
def test_canary_checks_only_the_rows_it_sends(front: Front, tmp_path: Path) -> None:
    """``--canary 3`` with a blocked row among the first: the canary still sends 3 rows, and
    only the rows it looked at were checked (invoices of rows 0 to 3)."""
    front.invoices = {f"INV-{i:06d}": _invoice(f"INV-{i:06d}") for i in range(10) if i != 1}
    write_orders(tmp_path / "orders.csv", 10, prefix="CN")
    result = _cli(front, tmp_path, "run", "orders.csv", "--batch", "cn", "--canary", "3", "-q")
    assert result.returncode == 1, result.stdout + result.stderr  # the blocked row
    assert "canary: paused after 3 order(s)" in result.stdout, result.stdout
    assert sorted(support.imported_ids(front.sandbox)) == ["CN-000000", "CN-000002", "CN-000003"]
    asked = [json.loads(q["id[in]"]) for q in front.invoice_lookups()]
    assert sorted(i for ids in asked for i in ids) == [f"INV-{i:06d}" for i in range(4)]


@pytest.mark.slow
def test_a_failing_lookup_stops_the_run_with_nothing_sent(front: Front, tmp_path: Path) -> None:
    """The invoice list answering 500 (retries exhausted): one clear note, no import, rows stay
    pending for the next run."""
    front.fail_invoices = 500
    config = tmp_path / "order-import.toml"
    config.write_text("max_attempts = 2\nmax_row_seconds = 5\n", encoding="utf-8")
    write_orders(tmp_path / "orders.csv", 4, prefix="FL")
    result = _cli(
        front, tmp_path, "run", "orders.csv", "--batch", "fl", "--config", "order-import.toml"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pre-flight could not check the rows" in result.stdout
    assert support.imported_ids(front.sandbox) == Counter()
    assert "pending 4" in result.stdout


def test_snapshot_writes_every_invoice_of_the_site_as_a_seed_file(
    front: Front, tmp_path: Path
) -> None:
    """``snapshot FILE`` pages the invoice list (3 pages for 250 invoices) into the seed file,
    then prints the count and the sandbox command to run next."""
    front.invoices = {
        f"INV-{i:04d}": _invoice(
            f"INV-{i:04d}",
            customer_id=f"C-{i % 7}",
            **({"subscription_id": f"S-{i}"} if i % 2 else {}),
        )
        | {"total": i * 100, "currency_code": ("EUR", "USD")[i % 2]}
        for i in range(250)
    }
    result = _cli(front, tmp_path, "snapshot", "seed.csv", "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "snapshot: 250 invoice(s) written to seed.csv (3 request(s))" in result.stdout
    assert _next_commands(result.stdout) == ["order-import sandbox --invoices seed.csv"]
    assert len(front.invoice_lookups()) == 3
    with (tmp_path / "seed.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["id", "customer_id", "subscription_id", "currency_code", "total"]
    expected = [
        [
            inv["id"],
            inv["customer_id"],
            inv.get("subscription_id", ""),
            inv["currency_code"],
            str(inv["total"]),
        ]
        for inv in front.invoices.values()
    ]
    assert rows[1:] == expected


def test_snapshot_writes_nothing_when_the_site_cannot_be_read(front: Front, tmp_path: Path) -> None:
    """The invoice list failing: one clear line, exit code of an API failure, no file left."""
    front.fail_invoices = 500
    (tmp_path / "order-import.toml").write_text("max_attempts = 1\n", encoding="utf-8")
    result = _cli(front, tmp_path, "snapshot", "seed.csv", "--config", "order-import.toml", "-q")
    assert result.returncode != 0
    assert result.stderr.startswith("order-import: error:"), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["order-import.toml"]


def test_validate_online_reports_what_a_run_would_hold_back(front: Front, tmp_path: Path) -> None:
    """``validate --online``: the same look-ups, read-only: nothing imported, no ledger, the
    reasons printed and in preflight.csv, exit code 1."""
    front.invoices = {f"INV-{i:06d}": _invoice(f"INV-{i:06d}") for i in range(5) if i != 2}
    write_orders(tmp_path / "orders.csv", 5, prefix="VO")
    result = _cli(front, tmp_path, "validate", "orders.csv", "--online")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 row(s) blocked (invoice_not_found 1)" in result.stdout
    assert "line 4: blocked (invoice_not_found): invoice INV-000002 not found" in result.stdout
    assert support.imported_ids(front.sandbox) == Counter()
    assert not (tmp_path / "order-import.sqlite").exists()
    found = list(tmp_path.glob("reports/*/preflight.csv"))
    assert len(found) == 1
    with found[0].open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["row_key"], r["code"]) for r in rows] == [("VO-000002", "invoice_not_found")]
    front.invoices["INV-000002"] = _invoice("INV-000002")
    clean = _cli(front, tmp_path, "validate", "orders.csv", "--online")
    assert clean.returncode == 0, clean.stdout + clean.stderr


@pytest.mark.slow
def test_a_key_echoed_in_a_list_answer_is_never_stored_or_shown(
    front: Front, tmp_path: Path
) -> None:
    """The site names the API key (and an escape sequence) as an invoice's customer: the blocked
    row's message shows ``***``; the key is in no output, report or ledger byte."""
    key = front.sandbox.api_key
    front.invoices = {
        "INV-000000": _invoice("INV-000000", customer_id=f"X{key}\x1b[2J"),
        "INV-000001": _invoice("INV-000001"),
    }
    write_orders(tmp_path / "orders.csv", 2, prefix="KE")
    result = _cli(front, tmp_path, "run", "orders.csv", "--batch", "ke", "--quiet")
    assert result.returncode == 1, result.stdout + result.stderr
    table = _failures(tmp_path, "ke")
    assert [r["oi:rule"] for r in table] == ["invoice_customer_mismatch"]
    assert "belongs to customer X***\\x1b[2J in Chargebee" in table[0]["oi:message"]
    assert key not in result.stdout + result.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "orders.csv":
            assert key.encode() not in path.read_bytes(), path
