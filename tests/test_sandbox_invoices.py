"""The sandbox's invoices over real HTTP: GET /invoices (paging, id[in], id[is], customer and
subscription filters), GET /invoices/{id}, seeding from a CSV file / ids file / generator,
import refusing unknown invoices when seeded, orders taking currency and totals from their
invoice, seeded invoices surviving restarts (and a fuller seed adding to them), bad seed files
as one-line errors with exit 2 on both entry points."""

from __future__ import annotations

import csv
import io
import shlex
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from sandbox.server import SandboxServer
from tests.support import IMPORT_PATH, request_log, wait_until_answering

IMPORT = "/orders/import_order"
SEED = (
    "id,customer_id,subscription_id,currency_code,total\n"
    "INV-1,CUST-1,SUB-1,EUR,1999\n"
    "INV-2,CUST-1,,GBP,500\n"
    "INV-3,CUST-2,SUB-2,,\n"
    "INV-4,,,USD,0\n"
    "INV-5,CUST-3,,JPY,120000\n"
)
SEED_IDS = ["INV-1", "INV-2", "INV-3"]
"""The first three ids of SEED."""
MakeSandbox = Callable[..., SandboxServer]


def _client(sb: SandboxServer) -> httpx.Client:
    return httpx.Client(base_url=sb.base_url, auth=(sb.api_key, ""), timeout=10)


def _seed(tmp_path: Path, text: str = SEED, name: str = "invoices.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _ids(body: dict[str, Any]) -> list[str]:
    return [entry["invoice"]["id"] for entry in body["list"]]


def _error(response: httpx.Response, status: int, code: str, param: str | None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["api_error_code"] == code, body
    assert body.get("param") == param, body
    assert body["http_status_code"] == status


# -- not seeded (the default) ----------------------------------------------------------------


def test_unseeded_answers_every_requested_invoice_the_same_way(sandbox_client):
    """Without a seed, id[in] and id[is] answer every id as an invoice (USD, total 0, no
    customer), in the order asked, duplicates once; retrieve answers any id."""
    body = sandbox_client.get("/invoices", params={"id[in]": '["B-2","A-1","B-2"]'}).json()
    assert _ids(body) == ["B-2", "A-1"]
    assert "next_offset" not in body
    first = body["list"][0]["invoice"]
    assert first["currency_code"] == "USD"
    assert first["total"] == 0
    assert first["object"] == "invoice"
    assert "customer_id" not in first
    assert "subscription_id" not in first
    again = sandbox_client.get("/invoices", params={"id[is]": "B-2"}).json()
    assert again["list"] == [{"invoice": first}]  # deterministic
    assert sandbox_client.get("/invoices/B-2").json() == {"invoice": first}
    sdk_style = sandbox_client.get("/invoices", params={"id[in]": "['X', 'Y']"}).json()
    assert _ids(sdk_style) == ["X", "Y"]


def test_unseeded_plain_list_is_the_invoices_stored_orders_name(sandbox_client, valid_order):
    """Without an id filter, the unseeded list holds the invoices of stored orders, each once,
    in the order first named; imports accept any invoice and keep USD and zero totals."""
    assert _ids(sandbox_client.get("/invoices").json()) == []
    for invoice_id in ("INV-B", "INV-A", "INV-B"):
        response = sandbox_client.post(IMPORT, data=valid_order(invoice_id=invoice_id))
        assert response.status_code == 200
        order = response.json()["order"]
        assert (order["currency_code"], order["total"], order["sub_total"]) == ("USD", 0, 0)
    assert _ids(sandbox_client.get("/invoices").json()) == ["INV-B", "INV-A"]


# -- seeded -----------------------------------------------------------------------------------


def test_seeded_list_pages_in_seed_order(make_sandbox: MakeSandbox, tmp_path):
    """limit/offset paging: next_offset only while more invoices exist; all seeded, once each,
    in file order; limit outside 1..100 and a forged offset are 400 naming the param."""
    sb = make_sandbox(invoices_file=str(_seed(tmp_path)))
    seen: list[str] = []
    with _client(sb) as client:
        params: dict[str, str] = {"limit": "2"}
        pages = 0
        while True:
            body = client.get("/invoices", params=params).json()
            pages += 1
            seen += _ids(body)
            if "next_offset" not in body:
                break
            params = {"limit": "2", "offset": body["next_offset"]}
            assert pages < 10
        assert pages == 3
        assert seen == ["INV-1", "INV-2", "INV-3", "INV-4", "INV-5"]
        assert len(_ids(client.get("/invoices").json())) == 5  # default limit 10
        exact = client.get("/invoices", params={"limit": "5"}).json()
        assert "next_offset" not in exact
        for bad in ("0", "101", "x"):
            _error(
                client.get("/invoices", params={"limit": bad}), 400, "param_wrong_value", "limit"
            )
        forged = client.get("/invoices", params={"offset": "not-an-offset"})
        _error(forged, 400, "param_wrong_value", "offset")


def test_seeded_fields_filters_and_retrieve(make_sandbox: MakeSandbox, tmp_path):
    """Seeded invoices carry the file's values (blank currency → USD, blank total → 0, blank
    customer/subscription left out); id[in] answers only known ids; customer_id[is] and
    subscription_id[is] filter; an unknown filter is 400 naming it; retrieve of an unknown id
    is 404 resource_not_found."""
    sb = make_sandbox(invoices_file=str(_seed(tmp_path)))
    with _client(sb) as client:
        first = client.get("/invoices/INV-1").json()["invoice"]
        assert first == {
            "id": "INV-1",
            "customer_id": "CUST-1",
            "subscription_id": "SUB-1",
            "currency_code": "EUR",
            "total": 1999,
            "status": "paid",
            "date": first["date"],
            "object": "invoice",
        }
        assert len(str(first["date"])) == 10
        third = client.get("/invoices/INV-3").json()["invoice"]
        assert (third["currency_code"], third["total"]) == ("USD", 0)
        fourth = client.get("/invoices/INV-4").json()["invoice"]
        assert "customer_id" not in fourth
        assert "subscription_id" not in fourth
        asked = client.get("/invoices", params={"id[in]": '["INV-5","NOPE","INV-2"]'}).json()
        assert _ids(asked) == ["INV-5", "INV-2"]
        assert _ids(client.get("/invoices", params={"id[is]": "NOPE"}).json()) == []
        by_customer = client.get("/invoices", params={"customer_id[is]": "CUST-1"}).json()
        assert _ids(by_customer) == ["INV-1", "INV-2"]
        both = {"customer_id[is]": "CUST-2", "subscription_id[is]": "SUB-2"}
        assert _ids(client.get("/invoices", params=both).json()) == ["INV-3"]
        mixed = {"id[in]": '["INV-1","INV-3"]', "customer_id[is]": "CUST-1"}
        assert _ids(client.get("/invoices", params=mixed).json()) == ["INV-1"]
        for param in ("status[is]", "id[starts_with]", "total[gt]"):
            _error(client.get("/invoices", params={param: "x"}), 400, "invalid_request", param)
        _error(client.get("/invoices", params={"id[in]": "INV-1"}), 400, "param_wrong_value",
               "id[in]")  # fmt: skip
        _error(client.get("/invoices/NOPE"), 404, "resource_not_found", None)
        assert client.get("/invoices/NOPE").json()["type"] == "invalid_request"


def test_id_in_pages_too(make_sandbox: MakeSandbox):
    """An id[in] list longer than the page is paged with next_offset like any list."""
    sb = make_sandbox()
    wanted = [f"I-{n}" for n in range(7)]
    query = "[" + ",".join(f'"{i}"' for i in wanted) + "]"
    seen: list[str] = []
    with _client(sb) as client:
        params = {"id[in]": query, "limit": "3"}
        for _ in range(5):
            body = client.get("/invoices", params=params).json()
            seen += _ids(body)
            if "next_offset" not in body:
                break
            params = {**params, "offset": body["next_offset"]}
    assert seen == wanted


def test_seeded_import_refuses_unknown_invoices_and_sends_nothing_to_the_store(
    make_sandbox: MakeSandbox, tmp_path, valid_order
):
    """Seeded: import_order for an invoice outside the seed is 404 resource_not_found with
    param=invoice_id; nothing is stored; the request log shows the refusal."""
    sb = make_sandbox(invoices_file=str(_seed(tmp_path)))
    with _client(sb) as client:
        refused = client.post(IMPORT, data=valid_order(invoice_id="INV-404"))
        _error(refused, 404, "resource_not_found", "invoice_id")
        assert refused.json()["type"] == "invalid_request"
        assert client.post(IMPORT, data=valid_order(invoice_id="INV-1")).status_code == 200
    assert [o["invoice_id"] for o in sb.state()["orders"]] == ["INV-1"]
    imports = [r for r in request_log(sb) if r["path"] == IMPORT_PATH]
    assert [r["api_error_code"] for r in imports] == ["resource_not_found", None]


def test_orders_take_currency_and_totals_from_their_invoice(
    make_sandbox: MakeSandbox, tmp_path, valid_order
):
    """A seeded import takes currency_code, total, sub_total (and the line item's amount) from
    its invoice, and the invoice's customer/subscription unless the import names its own; the
    export CSV carries the same currency and total (what reconciliation reads)."""
    sb = make_sandbox(invoices_file=str(_seed(tmp_path)), export_delay_s=0)
    with _client(sb) as client:
        one = client.post(IMPORT, data=valid_order(id="O-1", invoice_id="INV-1")).json()["order"]
        own = valid_order(id="O-2", invoice_id="INV-5", customer_id="MINE")
        five = client.post(IMPORT, data=own).json()["order"]
        blank = client.post(IMPORT, data=valid_order(id="O-3", invoice_id="INV-3")).json()
        export = client.post("/exports/orders").json()["export"]
        done = client.get(f"/exports/{export['id']}").json()["export"]
    assert (one["currency_code"], one["total"], one["sub_total"]) == ("EUR", 1999, 1999)
    assert one["order_line_items"][0]["amount"] == 1999
    assert (one["customer_id"], one["subscription_id"]) == ("CUST-1", "SUB-1")
    assert (five["currency_code"], five["total"], five["customer_id"]) == ("JPY", 120000, "MINE")
    assert (blank["order"]["currency_code"], blank["order"]["total"]) == ("USD", 0)
    data = httpx.get(done["download"]["download_url"], timeout=10).content
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("orders.csv").decode())))
    assert {r["id"]: (r["currency_code"], r["total"]) for r in rows} == {
        "O-1": ("EUR", "1999"),
        "O-2": ("JPY", "120000"),
        "O-3": ("USD", "0"),
    }


def test_seed_file_tolerates_bom_extra_columns_any_order_and_an_id_only_header(
    make_sandbox: MakeSandbox, tmp_path
):
    """A UTF-8 BOM, extra columns (ignored), columns in another order, quoted cells, blank lines
    and a header with only id are all fine."""
    text = '\ufefftotal,note,id,currency_code\n"1,0",x,A-1,EUR\n\n250,"a, b",A-2,\n'
    with pytest.raises(ValueError, match="line 2, column total"):
        SandboxServer(_config(invoices_file=str(_seed(tmp_path, text))))
    text = '\ufefftotal,note,id,currency_code\n100,"a, b",A-1,EUR\n\n250,,"A-2",\n'
    sb = make_sandbox(invoices_file=str(_seed(tmp_path, text)))
    with _client(sb) as client:
        listed = [e["invoice"] for e in client.get("/invoices").json()["list"]]
    assert [(i["id"], i["currency_code"], i["total"]) for i in listed] == [
        ("A-1", "EUR", 100),
        ("A-2", "USD", 250),
    ]
    only_ids = make_sandbox(invoices_file=str(_seed(tmp_path, "id\nZ-1\n", "ids.csv")))
    with _client(only_ids) as client:
        assert _ids(client.get("/invoices").json()) == ["Z-1"]


def _config(**knobs: Any) -> Any:
    from sandbox.config import SandboxConfig

    return SandboxConfig(rate_limit_per_minute=None, concurrency_limit=None, **knobs)


def test_strict_invoices_file_seeds_too(make_sandbox: MakeSandbox, tmp_path, valid_order):
    """--strict-invoices (one id a line) still works: it seeds those ids with default values,
    and together with a seed file the seed file's values win."""
    ids = tmp_path / "ids.txt"
    ids.write_text("# known\nINV-1\nONLY-HERE\n", encoding="utf-8")
    sb = make_sandbox(strict_invoices_file=str(ids), invoices_file=str(_seed(tmp_path)))
    with _client(sb) as client:
        assert client.get("/invoices/INV-1").json()["invoice"]["total"] == 1999
        assert client.get("/invoices/ONLY-HERE").json()["invoice"]["total"] == 0
        assert len(_ids(client.get("/invoices").json())) == 6
        refused = client.post(IMPORT, data=valid_order(invoice_id="ELSE"))
        _error(refused, 404, "resource_not_found", "invoice_id")


def test_generated_invoices_are_deterministic(make_sandbox: MakeSandbox, valid_order):
    """generate_invoices=N seeds INV-000000.. with the same currencies and totals every time;
    other ids are refused."""
    first, second = make_sandbox(generate_invoices=4), make_sandbox(generate_invoices=4)
    with _client(first) as one, _client(second) as two:
        listed = one.get("/invoices").json()["list"]
        assert _ids({"list": listed}) == ["INV-000000", "INV-000001", "INV-000002", "INV-000003"]
        strip = [{k: v for k, v in e["invoice"].items() if k != "date"} for e in listed]
        again = [{k: v for k, v in e["invoice"].items() if k != "date"}
                 for e in two.get("/invoices").json()["list"]]  # fmt: skip
        assert strip == again
        assert [i["currency_code"] for i in strip] == ["USD", "EUR", "GBP", "USD"]
        assert len({i["total"] for i in strip}) == 4
        _error(one.post(IMPORT, data=valid_order(invoice_id="INV-000004")), 404,
               "resource_not_found", "invoice_id")  # fmt: skip


# -- restarts ---------------------------------------------------------------------------------


def test_restart_with_a_fuller_seed_adds_invoices_and_keeps_orders(
    make_sandbox: MakeSandbox, tmp_path, valid_order
):
    """The Done-when scenario, sandbox side: seeded with some invoices missing, the imports of
    the missing ones are refused; restarted with the full seed and the same state file, the
    orders are kept and exactly the missing rows import; restarted with the state file alone,
    it is still seeded with all of them."""
    state = str(tmp_path / "sandbox.state")
    partial = _seed(tmp_path, "id,currency_code,total\nINV-1,EUR,100\n", "partial.csv")
    full = _seed(tmp_path, "id,currency_code,total\nINV-1,EUR,100\nINV-2,GBP,200\n", "full.csv")
    sb = make_sandbox(invoices_file=str(partial), state_file=state)
    with _client(sb) as client:
        assert client.post(IMPORT, data=valid_order(id="A", invoice_id="INV-1")).status_code == 200
        missing = valid_order(id="B", invoice_id="INV-2")
        _error(client.post(IMPORT, data=missing), 404, "resource_not_found", "invoice_id")
        date = client.get("/invoices/INV-1").json()["invoice"]["date"]
    sb.stop()
    time.sleep(1.1)  # a restart in a later second: the first date must be kept, not renewed
    fuller = make_sandbox(invoices_file=str(full), state_file=state)
    with _client(fuller) as client:
        assert _ids(client.get("/invoices").json()) == ["INV-1", "INV-2"]
        assert client.get("/invoices/INV-1").json()["invoice"]["date"] == date
        retried = client.post(IMPORT, data=missing)
        assert retried.status_code == 200, retried.text
        assert (retried.json()["order"]["currency_code"], retried.json()["order"]["total"]) == (
            "GBP",
            200,
        )
    assert [o["id"] for o in fuller.state()["orders"]] == ["A", "B"]
    fuller.stop()
    alone = make_sandbox(state_file=state)
    with _client(alone) as client:
        assert _ids(client.get("/invoices").json()) == ["INV-1", "INV-2"]
        _error(client.post(IMPORT, data=valid_order(invoice_id="INV-9")), 404,
               "resource_not_found", "invoice_id")  # fmt: skip


def test_reset_keeps_the_seeded_invoices(make_sandbox: MakeSandbox, tmp_path, valid_order):
    """POST /__sandbox/reset forgets orders, not the seeded invoices (they are the site's)."""
    sb = make_sandbox(invoices_file=str(_seed(tmp_path)))
    with _client(sb) as client:
        client.post(IMPORT, data=valid_order(invoice_id="INV-1"))
        sb.reset()
        assert sb.state()["orders"] == []
        assert len(_ids(client.get("/invoices").json())) == 5
        refused = client.post(IMPORT, data=valid_order(invoice_id="NOPE"))
        _error(refused, 404, "resource_not_found", "invoice_id")


# -- bad seed files ---------------------------------------------------------------------------

BAD_SEEDS = [
    ("", "line 1: empty file"),
    ("customer_id,total\nC,1\n", "line 1: no id column"),
    ("id,total,id\nA,1,A\n", "line 1, column id: the column appears twice"),
    ("id,total\nA,1\n,2\n", "line 3, column id: blank invoice id"),
    ("id,total\nA,1\nB,2\nA,3\n", "line 4, column id: duplicate invoice id 'A' (first on line 2)"),
    ("id,total\nA,12.50\n", "line 2, column total: '12.50' is not a whole number"),
    ("id,total\nA,-5\n", "line 2, column total: '-5' is not a whole number"),
    ("id,currency_code\nA,euro\n", "line 2, column currency_code: 'euro' is not a 3-letter"),
    ("id,customer_id\nA," + "c" * 51 + "\n", "line 2, column customer_id: longer than 50"),
    ("id,total\nA,1,extra\n", "line 2: 3 cells but the header has 2"),
    ('id,total\n"A\n', "line 2: not valid CSV"),
]


@pytest.mark.parametrize(("text", "message"), BAD_SEEDS, ids=[m for _, m in BAD_SEEDS])
def test_bad_seed_file_names_file_line_and_column(tmp_path, text, message):
    """Each defect is refused before serving, naming the file, the line and the column."""
    path = _seed(tmp_path, text)
    with pytest.raises(ValueError) as caught:
        SandboxServer(_config(invoices_file=str(path)))
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_seed_that_is_not_utf8_names_the_line(tmp_path):
    """Latin-1 bytes on line 3 are refused naming line 3."""
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,customer_id\nA,x\nB,Müller\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.csv: line 3: not UTF-8"):
        SandboxServer(_config(invoices_file=str(path)))


@pytest.mark.parametrize("entry", ["order-import", "python -m sandbox"])
def test_bad_seed_file_is_one_line_and_exit_2_on_both_entry_points(tmp_path, entry):
    """`order-import sandbox --invoices BAD` and `python -m sandbox --invoices BAD` print one
    line naming file, line and column, exit 2, no traceback; a missing file likewise."""
    path = _seed(tmp_path, "id,total\nA,1\nB,zwei\n")
    missing = tmp_path / "missing.csv"
    for seed, expected in ((path, "line 3, column total"), (missing, "cannot read")):
        if entry == "order-import":
            command = [sys.executable, "-m", "pipeline", "sandbox"]
        else:
            command = [sys.executable, "-m", "sandbox"]
        result = subprocess.run(
            [*command, "--port", "0", "--invoices", str(seed)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert str(seed) in lines[0]
        assert expected in lines[0]
        assert "Sandbox listening" not in result.stdout


@contextmanager
def _served(command: list[str], cwd: Path | None = None) -> Iterator[str]:
    """Start a sandbox subprocess; yield its base URL; SIGINT it at the end (bounded)."""
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Sandbox listening on "), (
            process.stderr.read() if process.stderr else line
        )
        base_url = line.split()[3]
        wait_until_answering(base_url, 10, " ".join(command))
        yield base_url
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=15)


@pytest.mark.parametrize("entry", ["order-import", "python -m sandbox"])
def test_seed_and_generate_options_on_both_entry_points(tmp_path, entry):
    """`--invoices FILE`, `--generate-invoices N` and `--eu-vat` work on both entry points."""
    path = _seed(tmp_path)
    if entry == "order-import":
        command = [sys.executable, "-m", "pipeline", "sandbox"]
    else:
        command = [sys.executable, "-m", "sandbox"]
    args = ["--port", "0", "--rate-limit", "0", "--invoices", str(path), "--generate-invoices", "2"]
    with (
        _served([*command, *args, "--eu-vat"]) as base_url,
        httpx.Client(base_url=base_url, auth=("test_sandbox_key", ""), timeout=10) as client,
    ):
        ids = _ids(client.get("/invoices", params={"limit": "100"}).json())
        order = {
            "id": "X-1",
            "invoice_id": "INV-000001",
            "status": "queued",
            "created_at": "1600000000",
            "order_date": "1600000000",
            "shipping_date": "1600000000",
            "shipping_address[country]": "XI",
        }
        imported = client.post(IMPORT, data=order)
    assert ids == ["INV-1", "INV-2", "INV-3", "INV-4", "INV-5", "INV-000000", "INV-000001"]
    assert imported.status_code == 200, imported.text
    assert imported.json()["order"]["currency_code"] == "EUR"


def test_help_lists_the_invoice_options():
    """order-import sandbox --help documents the new options."""
    result = CliRunner().invoke(main, ["sandbox", "--help"])
    assert result.exit_code == 0
    for flag in ("--invoices", "--generate-invoices", "--eu-vat", "--strict-invoices"):
        assert flag in result.output


DOCS = Path(__file__).resolve().parent.parent / "docs" / "sandbox.md"


def _documented_invoice_commands() -> list[str]:
    """The command lines of docs/sandbox.md's code block that seeds invoices."""
    text = DOCS.read_text(encoding="utf-8")
    block = text.split("A sandbox standing for a site whose invoices were imported", 1)[1]
    lines = block.split("```", 2)[1].strip().splitlines()
    assert len(lines) == 3
    return lines


@pytest.mark.parametrize("line", _documented_invoice_commands())
def test_documented_invoice_commands_run_as_printed(tmp_path, line):
    """Each seeding command docs/sandbox.md prints runs exactly as printed (in a folder holding
    an invoices.csv) and serves its invoices; `order-import` is this environment's script and
    `python` this interpreter."""
    words = shlex.split(line)
    program = {
        "order-import": [str(Path(sys.executable).parent / "order-import")],
        "python": [sys.executable],
    }[words[0]]
    _seed(tmp_path, SEED)
    process_line = [*program, *words[1:]]
    with _served(process_line, cwd=tmp_path) as base_url:
        response = httpx.get(
            f"{base_url}/invoices", params={"limit": "3"}, auth=("test_sandbox_key", ""), timeout=10
        )
    assert response.status_code == 200
    listed = _ids(response.json())
    expected = ["INV-000000", "INV-000001", "INV-000002"] if "--generate" in line else SEED_IDS
    assert listed == expected
    if "--state" in line:
        assert (tmp_path / "rehearsal.state").is_file()


def test_a_made_up_invoice_is_what_invoice_makes() -> None:
    """Unseeded, ``Invoices.get`` answers ``invoice(id, date)``'s resource, keys in its order."""
    from sandbox.invoices import Invoices, invoice

    made_up = Invoices(1_700_000_000).get("INV-9")
    assert made_up is not None
    assert list(made_up.items()) == list(invoice("INV-9", 1_700_000_000).items())
