"""Reconcile against hostile servers and hostile export zips: every path bounded, no traceback.

Issue 12 findings reproduced here: ``--via list`` paged forever on a repeated ``next_offset``;
a 950 KB export zip drove reconcile to 5.9 GB; an encrypted member, a bad CRC, an unsupported
compression method, corrupt deflate data or a cell over 128 KiB ended in a traceback (and
``--via auto`` did not fall back to listing); ``reconcile --out FILE`` ended in a traceback.

The servers are small real asyncio HTTP servers on 127.0.0.1 (one per test, bounded in time);
the batch itself is imported by the real CLI into the real sandbox first.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import threading
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from pipeline.errors import PermanentApiError
from pipeline.reconcile import export
from pipeline.reconcile.export import read_export_zip
from tests import support
from tests.orders_factory import write_orders

KEY = "hostile_reconcile_key"
ORDERS_CSV = "id,status\nA-1,shipped\nA-2,delivered\n"


# -- zips, faulty on purpose ------------------------------------------------------------------


def zipped(files: dict[str, str | bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip holding ``files``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def patched(data: bytes, local: int, central: int, fmt: str, value: int) -> bytes:
    """``data`` with one field of the first local header and central entry overwritten."""
    out = bytearray(data)
    struct.pack_into(fmt, out, data.index(b"PK\x03\x04") + local, value)
    struct.pack_into(fmt, out, data.index(b"PK\x01\x02") + central, value)
    return bytes(out)


def encrypted_zip() -> bytes:
    """The general-purpose flag's 'encrypted' bit set on the orders member."""
    plain = zipped({"orders.csv": ORDERS_CSV})
    return patched(plain, 6, 8, "<H", 0x1)


def bad_crc_zip() -> bytes:
    """A CRC-32 that does not match the member's data."""
    return patched(zipped({"orders.csv": ORDERS_CSV}), 14, 16, "<I", 0xDEADBEEF)


def unsupported_method_zip() -> bytes:
    """Compression method 99 (AES, which zipfile cannot read)."""
    return patched(zipped({"orders.csv": ORDERS_CSV}), 8, 10, "<H", 99)


def corrupt_deflate_zip() -> bytes:
    """Deflate data overwritten with garbage (the headers are intact)."""
    data = bytearray(zipped({"orders.csv": ORDERS_CSV * 50}))
    start = data.index(b"PK\x03\x04") + 30 + len("orders.csv")
    data[start : start + 40] = b"\xff" * 40
    return bytes(data)


def huge_cell_zip() -> bytes:
    """An order whose note cell is 200 KiB."""
    return zipped({"orders.csv": "id,note\nA-1," + "x" * 200 * 1024 + "\n"})


def bomb_zip(megabytes: int = 4) -> bytes:
    """A small zip whose CSV expands ~1000×: millions of rows of one short order."""
    text = "id,status\n" + "A-1,shipped\n" * (megabytes * 1024 * 1024 // 12)
    return zipped({"orders.csv": text})


def lying_size_zip() -> bytes:
    """A bomb whose headers declare 10 bytes: zipfile stops there and the CRC fails."""
    data = bomb_zip()
    return patched(data, 22, 24, "<I", 10)


def crowded_zip() -> bytes:
    """More entries than any export has."""
    return zipped({f"part{i}.txt": "" for i in range(export.MAX_MEMBERS + 1)})


FAULTY: dict[str, tuple[Callable[[], bytes], str]] = {
    "encrypted": (encrypted_zip, "is encrypted"),
    "bad_crc": (bad_crc_zip, "damaged"),
    "unsupported_method": (unsupported_method_zip, "unsupported compression method"),
    "corrupt_deflate": (corrupt_deflate_zip, "damaged"),
    "huge_cell": (huge_cell_zip, "cell over 128 KiB"),
    "bomb": (bomb_zip, "expands more than"),
    "crowded": (crowded_zip, "entries"),
    "lying_size": (lying_size_zip, "damaged"),
}


@pytest.mark.parametrize("fault", sorted(FAULTY))
def test_every_zip_fault_is_a_clear_export_unreadable_error(fault):
    """Each fault raises PermanentApiError(export_unreadable) naming what is wrong."""
    make, words = FAULTY[fault]
    with pytest.raises(PermanentApiError) as info:
        read_export_zip(make())
    assert info.value.api_error_code == "export_unreadable"
    assert words in info.value.message


def test_a_zip_bomb_is_refused_within_bounded_memory():
    """A ~4 KB zip expanding to 4 MB stops at the ratio cap; memory stays small."""
    data = bomb_zip()
    assert len(data) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(PermanentApiError, match="expands more than"):
            read_export_zip(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_a_member_over_the_size_cap_is_refused(monkeypatch):
    """The per-member size cap holds even for data that compresses normally."""
    monkeypatch.setattr(export, "MAX_MEMBER_BYTES", 1000)
    rows = "".join(f"A-{i},shipped\n" for i in range(200))
    with pytest.raises(PermanentApiError, match=r"is 2700 bytes \(at most 1000 read\)"):
        read_export_zip(zipped({"orders.csv": "id,status\n" + rows}))


def test_repeated_ids_in_an_export_keep_one_order_each():
    """The export's orders are kept one per id (memory follows distinct orders, not rows)."""
    text = "id,status,deleted\nA-1,shipped,true\nA-1,shipped,false\nA-1,returned,true\n"
    assert read_export_zip(zipped({"orders.csv": text})) == [
        {"id": "A-1", "status": "shipped", "deleted": False}
    ]


# -- a hostile Chargebee on 127.0.0.1 ---------------------------------------------------------


class HostileChargebee:
    """A tiny HTTP/1.1 server: the export endpoints, a download and GET /orders, as scripted."""

    def __init__(self, *, zip_data: bytes, orders: list[dict[str, Any]], loop_offset: bool):
        self.zip_data = zip_data
        self.orders = orders
        self.loop_offset = loop_offset
        self.requests: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def base_url(self) -> str:
        """The API base URL for CHARGEBEE_BASE_URL."""
        return f"http://127.0.0.1:{self.port}/api/v2"

    def __enter__(self) -> HostileChargebee:
        self._thread.start()
        assert self._ready.wait(10), "hostile server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            length = next(
                (int(h.split(":", 1)[1]) for h in lines if h.lower().startswith("content-length")),
                0,
            )
            if length:
                await asyncio.wait_for(reader.readexactly(length), 10)
            self.requests.append(f"{method} {target}")
            status, body, kind = self._answer(method, target)
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode("latin-1")
                + body
            )
            await writer.drain()
        finally:
            writer.close()

    def _answer(self, method: str, target: str) -> tuple[int, bytes, str]:
        path = urlsplit(target).path
        query = parse_qs(urlsplit(target).query)
        export_body = {
            "export": {
                "id": "e1",
                "status": "completed",
                "download": {"download_url": f"http://127.0.0.1:{self.port}/dl/orders.zip"},
            }
        }
        if path == "/api/v2/exports/orders" or path.startswith("/api/v2/exports/"):
            return 200, json.dumps(export_body).encode(), "application/json"
        if path == "/dl/orders.zip":
            return 200, self.zip_data, "application/zip"
        if path == "/api/v2/orders" and method == "GET":
            if len(self.requests) > 20:  # the test stays bounded even if paging never stops
                return 400, b'{"api_error_code":"invalid_request","message":"enough"}', "text/json"
            page: dict[str, Any] = {"list": [{"order": o} for o in self.orders]}
            if self.loop_offset:
                page["next_offset"] = '["1700000000000","42"]'
            elif "id[in]" in query:
                wanted = set(json.loads(query["id[in]"][0]))
                page = {"list": [{"order": o} for o in self.orders if o["id"] in wanted]}
            return 200, json.dumps(page).encode(), "application/json"
        return 404, b'{"api_error_code":"resource_not_found","message":"no"}', "application/json"


@pytest.fixture
def imported(make_sandbox, tmp_path, monkeypatch) -> list[dict[str, Any]]:
    """Batch b1 of 3 orders imported into the real sandbox; yields the orders it holds."""
    monkeypatch.chdir(tmp_path)
    Path("order-import.toml").write_text("export_poll_seconds = 0.05\n", encoding="utf-8")
    server = make_sandbox(api_key=KEY)
    source = write_orders(tmp_path / "orders.csv", 3)
    ran = invoke(server.base_url, "run", str(source), "--batch", "b1", "--quiet")
    assert ran.exit_code == 0, ran.output
    with httpx.Client(base_url=server.base_url, auth=(KEY, ""), timeout=10) as client:
        page = client.get("/orders", params={"limit": 100}).json()
    return [entry["order"] for entry in page["list"]]


def invoke(base_url: str, *args: str):
    """The real CLI in-process against ``base_url``."""
    return support.invoke(base_url, KEY, *args)


def test_a_repeated_next_offset_stops_the_listing_with_a_clear_error(imported):
    """--via list against a server that gives the same next_offset forever: one clear line."""
    with HostileChargebee(zip_data=b"", orders=imported, loop_offset=True) as hostile:
        result = invoke(hostile.base_url, "reconcile", "--batch", "b1", "--via", "list")
    assert result.exit_code == 1
    assert "gave next_offset" in result.output
    assert "again" in result.output
    assert "Traceback" not in result.output
    assert len([r for r in hostile.requests if r.startswith("GET /api/v2/orders")]) == 2


@pytest.mark.parametrize("fault", ["encrypted", "bad_crc", "corrupt_deflate", "huge_cell"])
def test_a_faulty_export_zip_falls_back_to_the_list_under_auto(imported, fault):
    """--via auto: the zip fault is noted and GET /orders is used (clean); --via export: exit 1."""
    zip_data = FAULTY[fault][0]()
    with HostileChargebee(zip_data=zip_data, orders=imported, loop_offset=False) as hostile:
        auto = invoke(hostile.base_url, "reconcile", "--batch", "b1", "--out", "r")
        strict = invoke(hostile.base_url, "reconcile", "--batch", "b1", "--via", "export")
    assert auto.exit_code == 0, auto.output
    assert "(via list)" in auto.output
    assert "export unusable" in auto.output
    assert FAULTY[fault][1] in auto.output
    document = json.loads(Path("r/reconciliation.json").read_text(encoding="utf-8"))
    assert document["source"] == "list"
    assert document["counts"]["matched"] == 3
    assert strict.exit_code == 1
    assert FAULTY[fault][1] in strict.output
    assert "Traceback" not in auto.output + strict.output


def test_out_naming_a_file_is_a_clear_error_before_anything_is_fetched(imported):
    """reconcile --out FILE exits 2 with one line; no request reaches the server."""
    Path("taken.txt").write_text("x", encoding="utf-8")
    with HostileChargebee(zip_data=b"", orders=imported, loop_offset=False) as hostile:
        result = invoke(hostile.base_url, "reconcile", "--batch", "b1", "--out", "taken.txt")
    assert result.exit_code == 2
    assert "--out taken.txt: is a file, not a directory" in result.output
    assert hostile.requests == []
