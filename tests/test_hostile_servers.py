"""The real CLI (and the real client) against small malicious HTTP servers on 127.0.0.1.

Each finding of the adversarial review (issue 12) that a server can cause has a test here: a 2xx
that is not about the row sent, a server dribbling bytes, a huge answer, cookies, nonsense
``Retry-After``, a key echoed back in every field and form, escape sequences in messages, dot
segments in ids, names that only look like loopback, a key that is not ASCII. Every server is an
asyncio server on 127.0.0.1 in a thread, every connection and loop in it bounded in time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import anyio
import pytest

from pipeline.api.client import ChargebeeClient
from pipeline.config import is_loopback, load_settings
from tests import support
from tests.orders_factory import write_orders

KEY = "sk_HOSTILE_9f8e7d6c"
CLI_TIMEOUT_S = 120.0
CONNECTION_LIMIT_S = 60.0
"""No connection to a hostile server lives longer than this (the servers are bounded too)."""


@dataclass
class Seen:
    """One request as the server read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        """The url-encoded form body."""
        return dict(parse_qsl(self.body.decode("utf-8", "replace")))


Handler = Callable[[Seen, asyncio.StreamWriter], Awaitable[bool]]
"""Writes the answer for one request; returns True to keep the connection open."""


def answer(
    status: int, body: bytes | dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> bytes:
    """A complete HTTP/1.1 response."""
    data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(data)}"]
    if isinstance(body, dict):
        head.append("Content-Type: application/json")
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data


@dataclass
class HostileServer:
    """An asyncio HTTP/1.1 server on 127.0.0.1 in its own thread, answering with ``handler``."""

    handler: Handler
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: asyncio.Event | None = None

    @property
    def base_url(self) -> str:
        """``CHARGEBEE_BASE_URL`` for this server."""
        return f"http://127.0.0.1:{self.port}/api/v2"

    def api(self, method: str = "", part: str = "") -> list[Seen]:
        """Requests seen, filtered by method and a part of the path."""
        return [s for s in self.seen if s.method.startswith(method) and part in s.path]

    def __enter__(self) -> HostileServer:
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            async with server:
                await self._stop.wait()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        self._thread.start()
        assert ready.wait(10), "hostile server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(CONNECTION_LIMIT_S):
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    line, *lines = head.decode("latin-1").split("\r\n")
                    method, path, _ = line.split(" ", 2)
                    headers = {
                        k.strip().lower(): v.strip()
                        for k, _, v in (h.partition(":") for h in lines if h)
                    }
                    body = await reader.readexactly(int(headers.get("content-length", "0")))
                    seen = Seen(method, path, headers, body)
                    self.seen.append(seen)
                    keep = await self.handler(seen, writer)
                    await writer.drain()
                    if not keep:
                        break
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ValueError):
            pass
        finally:
            writer.close()


@pytest.fixture
def hostile() -> Iterator[Callable[[Handler], HostileServer]]:
    """Factory: ``hostile(handler)`` starts a server; all are stopped at teardown."""
    servers: list[HostileServer] = []

    def start(handler: Handler) -> HostileServer:
        server = HostileServer(handler).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()


# -- the CLI -----------------------------------------------------------------------------------


def config(work: Path, **values: float) -> Path:
    """A config file with short bounds (no key in it)."""
    settings = {
        "max_attempts": 1,
        "max_row_seconds": 5,
        "connect_timeout": 2,
        "read_timeout": 2,
        **values,
    }
    path = work / "order-import.toml"
    path.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()), encoding="utf-8")
    return path


def cli(
    work: Path,
    command: str,
    *args: str,
    base_url: str = "http://127.0.0.1:9/api/v2",
    key: str = KEY,
) -> subprocess.CompletedProcess[str]:
    """``order-import COMMAND --batch h --ledger work/ledger.sqlite ARGS`` (bounded)."""
    ledger = ["--batch", "h", "--ledger", str(work / "ledger.sqlite")]
    return subprocess.run(
        support.cli(command, *args, *ledger),
        env=support.cli_env(base_url, key),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def run_cli(
    base_url: str, work: Path, rows: int = 1, *, key: str = KEY, **settings: float
) -> subprocess.CompletedProcess[str]:
    """``order-import run`` of ``rows`` factory rows, everything it writes inside ``work``.

    Without pre-flight: these servers answer the import POST (and its look-ups) with hostile
    bytes; pre-flight's list requests meet their own hostile servers in test_preflight.py."""
    source = write_orders(work / "orders.csv", rows, prefix="H")
    args = [
        str(source), "--report-dir", str(work / "reports"),
        "--config", str(config(work, **settings)), "--concurrency", "1", "--quiet",
        "--no-preflight",
    ]  # fmt: skip
    return cli(work, "run", *args, base_url=base_url, key=key)


def counts(work: Path) -> dict[str, int]:
    """Rows of batch ``h`` by state, from ``order-import status --json``."""
    done = cli(work, "status", "--json")
    assert done.returncode == 0, done.stderr
    found: dict[str, int] = json.loads(done.stdout)["counts"]
    return {state: n for state, n in found.items() if n}


def clean(result: subprocess.CompletedProcess[str]) -> str:
    """The run's output, asserting it carries no traceback."""
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text
    return text


def order_body(seen: Seen, **changes: Any) -> dict[str, Any]:
    """An ``{"order": ...}`` answer about the row that was posted (with ``changes``)."""
    form = seen.form
    order = {"id": form.get("id"), "invoice_id": form.get("invoice_id"), "status": "queued"}
    return {"order": {**order, **changes}}


NOT_FOUND = answer(
    404, {"api_error_code": "resource_not_found", "message": "not found", "type": "x"}
)


def posts_answered(reply: Callable[[Seen], bytes]) -> Handler:
    """A handler answering every POST with ``reply(seen)`` and every look-up with a 404."""

    async def handler(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(reply(seen) if seen.method == "POST" else NOT_FOUND)
        return True

    return handler


# -- a 2xx counts only when it is well formed and about the row sent ---------------------------


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(
            lambda s: answer(200, {"api_error_code": "invalid_request", "message": "no"}),
            id="200-with-an-error-body",
        ),
        pytest.param(lambda s: answer(200, order_body(s, id="SOMEONE-ELSE")), id="another-order"),
        pytest.param(
            lambda s: answer(200, order_body(s, invoice_id="INV-OTHER")), id="another-invoice"
        ),
        pytest.param(lambda s: answer(200, {"order": None}), id="order-null"),
        pytest.param(lambda s: answer(200, b"<html>proxy says hi</html>"), id="not-json"),
        pytest.param(  # 200 KB, far under the answer cap: deeper than any JSON reader recurses
            lambda s: answer(200, b"[" * 100_000 + b"]" * 100_000), id="nested-too-deep"
        ),
        pytest.param(  # within orjson's 1,024 levels, deeper than Python walks it back
            lambda s: answer(200, b'{"order": ' + b"[" * 1000 + b"]" * 1000 + b"}"),
            id="nested-1000",
        ),
    ],
)
def test_an_untrusted_2xx_is_looked_up_never_recorded_as_success(hostile, tmp_path, reply):
    """Any 2xx that is not well formed and about the row: the row is looked up (GET) like
    after a crash; not found there → retryable, never succeeded; no traceback."""

    server = hostile(posts_answered(reply))
    result = run_cli(server.base_url, tmp_path, 2)
    clean(result)
    assert result.returncode == 1, result.stdout + result.stderr
    assert counts(tmp_path) == {"retryable": 2}
    posted = [s.form["id"] for s in server.api("POST", "import_order")]
    looked_up = [s.path.rsplit("/", 1)[1] for s in server.api("GET", "/orders/")]
    assert sorted(looked_up) == sorted(posted) == ["H-000000", "H-000001"]


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_an_error_answer_nested_too_deep_fails_the_row_without_a_traceback(
    hostile, tmp_path, depth
):
    """A 400 whose error body carries an array nested ``depth`` levels (1,000: orjson reads it,
    Python cannot walk it back; 100,000: no reader can): the row fails with the server's status,
    the run goes on, no traceback."""
    nest = b"[" * depth + b"]" * depth
    body = b'{"api_error_code": "invalid_request", "message": "no", "x": ' + nest + b"}"

    server = hostile(posts_answered(lambda _: answer(400, body)))
    result = run_cli(server.base_url, tmp_path, 2)
    clean(result)
    assert result.returncode == 1, result.stdout + result.stderr
    assert counts(tmp_path) == {"failed": 2}
    assert len(server.api("POST", "import_order")) == 2


def test_an_untrusted_2xx_whose_order_exists_is_verified_by_the_look_up(hostile, tmp_path):
    """The POST's answer names another order, but GET finds the row's order as sent: the row
    succeeds through the look-up (resolution reconciled), not through the untrusted answer."""
    held: dict[str, dict[str, Any]] = {}

    async def handler(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if seen.method == "POST":
            held[seen.form["id"]] = order_body(seen)["order"] | {
                k: v for k, v in seen.form.items() if "[" not in k
            }
            writer.write(answer(200, order_body(seen, id="SOMEONE-ELSE")))
        else:
            order = held.get(seen.path.rsplit("/", 1)[1])
            writer.write(answer(200, {"order": order}) if order else NOT_FOUND)
        return True

    server = hostile(handler)
    result = run_cli(server.base_url, tmp_path, 2)
    clean(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert counts(tmp_path) == {"succeeded": 2}
    assert len(server.api("GET", "/orders/H-")) == 2


def test_an_untrusted_2xx_naming_the_key_as_its_order_leaks_nothing(hostile, tmp_path):
    """A 200 whose order id is the key itself (with an escape sequence): the row is looked up
    and left retryable; the message saying so carries neither the key nor the escape."""

    server = hostile(posts_answered(lambda s: answer(200, order_body(s, id=f"{KEY}\x1b[31m"))))
    result = run_cli(server.base_url, tmp_path, 1)
    text = clean(result)
    assert counts(tmp_path) == {"retryable": 1}, text
    assert "\x1b" not in text
    assert leaks(tmp_path, KEY, result.stdout, result.stderr) == []


def test_a_look_up_that_answers_about_another_order_leaves_the_row_in_doubt(hostile, tmp_path):
    """Even the look-up is checked: a GET /orders/X answering order Y is not trusted; the row
    stays in doubt (exit 3), for the next run to look up again."""

    async def handler(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(200, {"order": {"id": "SOMEONE-ELSE", "invoice_id": "x"}}))
        return True

    server = hostile(handler)
    result = run_cli(server.base_url, tmp_path, 1)
    clean(result)
    assert result.returncode == 3, result.stdout + result.stderr
    assert counts(tmp_path) == {"in_flight": 1}


# -- bounded: deadline, size, throttling --------------------------------------------------------


def test_a_server_dribbling_bytes_cannot_hold_a_row_past_the_deadline(hostile, tmp_path):
    """Headers, then one body byte every 0.5 s for up to 2 minutes (each read well inside
    read_timeout = 2): the overall deadline (connect_timeout + read_timeout = 4 s) makes the
    client hang up long before the server would stop; the row is left retryable."""
    held: list[float] = []

    async def handler(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        started = time.monotonic()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        try:
            for _ in range(240):  # bounded: 2 minutes at most
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.5)
        except ConnectionError:
            held.append(time.monotonic() - started)
        return False

    server = hostile(handler)
    result = run_cli(server.base_url, tmp_path, 1)
    text = clean(result)
    assert counts(tmp_path) == {"retryable": 1}, text
    assert len(held) == 1, "the client did not hang up before the server stopped dribbling"
    assert held[0] < 30, f"a dribbling server held the row {held[0]:.0f} s"


def test_a_huge_answer_is_not_read_past_the_cap(hostile, tmp_path):
    """A 200 announcing and streaming 64 MiB: reading stops at the cap, the row is looked up
    (not found → retryable), no traceback."""

    async def handler(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if seen.method == "GET":
            writer.write(NOT_FOUND)
            return True
        size = 64 * 1024 * 1024
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        block = b"[" * 65536
        for _ in range(size // len(block)):
            writer.write(block)
            await writer.drain()
        return False

    server = hostile(handler)
    result = run_cli(server.base_url, tmp_path, 1, read_timeout=20)
    text = clean(result)
    assert counts(tmp_path) == {"retryable": 1}, text
    assert len(server.api("GET", "/orders/")) == 1


def test_a_huge_answer_that_stalls_is_cut_at_the_cap_not_waited_for(hostile, tmp_path):
    """A 200 announcing 64 MiB that sends 12 MiB and then stalls: the client stops reading at
    the 8 MiB cap and hangs up (the answer is recorded as too large), instead of holding the
    whole announced body in memory and waiting for it until the deadline (a timeout)."""
    hung_up: list[bool] = []

    async def handler(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if seen.method == "GET":
            writer.write(NOT_FOUND)
            return True
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {64 * 1024 * 1024}\r\n\r\n".encode())
        block = b"[" * 65536
        try:
            for _ in range(12 * 16):  # 12 MiB
                writer.write(block)
                await writer.drain()
            for _ in range(120):  # then stall: a byte every 0.5 s, 60 s at most
                await asyncio.sleep(0.5)
                writer.write(b"[")
                await writer.drain()
        except ConnectionError:
            hung_up.append(True)
        return False

    server = hostile(handler)
    result = run_cli(server.base_url, tmp_path, 1, read_timeout=20)
    text = clean(result)
    assert counts(tmp_path) == {"retryable": 1}, text
    assert hung_up == [True], "the client did not hang up while the server stalled"
    attempts = cli(tmp_path, "report", "--out", str(tmp_path / "again"))
    assert attempts.returncode in (0, 1), attempts.stderr
    failures = (tmp_path / "again" / "failures.csv").read_text(encoding="utf-8-sig")
    assert "timeout" not in failures, failures


def test_429_forever_with_nonsense_retry_after_stops_within_the_throttle_budget(hostile, tmp_path):
    """429 on every request with a Retry-After in the past: treated as absent (exponential
    backoff), so the max_throttle_wait budget (here 5 s) ends the run, resumable (retryable),
    instead of retrying forever. Every nonsense value (0, negative, nan, a past date, ...) is
    the same None out of ``parse_retry_after`` (test_client.py checks each one); the past date
    is the one whose answer depends on the real clock, so it is the one run end to end."""
    retry_after = "Thu, 01 Jan 1970 00:00:00 GMT"

    async def handler(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        body = {"api_error_code": "api_request_limit_exceeded", "message": "slow down"}
        writer.write(answer(429, body, {"Retry-After": retry_after}))
        return True

    server = hostile(handler)
    # "Not forever" is the bounded number of requests (the pytest timeout backs it up); no
    # wall-clock bound: start-up time on a loaded machine says nothing about the budget.
    result = run_cli(server.base_url, tmp_path, 1, max_throttle_wait=5)
    text = clean(result)
    assert result.returncode == 1, text
    assert counts(tmp_path) == {"retryable": 1}
    assert 2 <= len(server.seen) <= 5, len(server.seen)


# -- nothing kept, nothing leaked ---------------------------------------------------------------


def test_cookies_are_never_kept_or_sent_back(hostile, tmp_path):
    """Every answer sets a cookie; no request ever carries one."""

    async def handler(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        cookie = {"Set-Cookie": "session=abc123; Path=/"}
        writer.write(answer(200, order_body(seen), cookie))
        return True

    server = hostile(handler)
    result = run_cli(server.base_url, tmp_path, 3)
    clean(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(server.seen) == 3
    assert [s.headers.get("cookie") for s in server.seen] == [None, None, None]


SPACED_KEY = "sk_SPACED  key\u0020with spaces_7c1"
"""A key with inner whitespace: a scrubber that collapses whitespace first would miss it."""


def key_forms(key: str) -> list[str]:
    """The forms a server might echo: raw, Basic token, url-encoded, JSON-escaped."""
    token = base64.b64encode(f"{key}:".encode()).decode()
    return [key, token, quote(key, safe=""), quote(key), json.dumps(key)[1:-1]]


def leaks(root: Path, key: str, *outputs: str) -> list[str]:
    """Files under ``root`` and outputs that contain the key in any form (utf-16 too)."""
    forms = [f.encode() for f in key_forms(key)] + [key.encode("utf-16-le")]
    found = [f"output #{i}" for i, t in enumerate(outputs) if any(f in t for f in key_forms(key))]
    for path in root.rglob("*"):
        if path.is_file() and any(form in path.read_bytes() for form in forms):
            found.append(str(path.relative_to(root)))
    return found


@pytest.mark.parametrize("shape", ["json-every-field", "raw-text"])
def test_a_key_echoed_in_every_field_and_form_is_scrubbed_everywhere(hostile, tmp_path, shape):
    """The server pastes the key (raw, base64 Basic token, url-encoded, JSON-escaped) into the
    message, param, api_error_code, error_code, type and nested fields, or into a raw text
    body with the key's own whitespace: nothing of it reaches the ledger, reports or output."""
    forms = key_forms(SPACED_KEY)
    echo = " | ".join(forms)

    async def handler(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if shape == "raw-text":
            body: bytes | dict[str, Any] = f"bad request\n\n{echo}\n  {SPACED_KEY}\t".encode()
        else:
            body = {
                "message": f"invalid: {echo}",
                "param": f"p {forms[0]}",
                "api_error_code": f"code_{forms[2]}",
                "error_code": forms[1],
                "type": forms[3],
                "error_msg": echo,
                "nested": {"deep": [echo]},
            }
        writer.write(answer(400, body))
        return True

    server = hostile(handler)
    result = run_cli(server.base_url, tmp_path, 2, key=SPACED_KEY)
    clean(result)
    assert result.returncode == 1, result.stdout + result.stderr
    assert counts(tmp_path) == {"failed": 2}
    report = cli(tmp_path, "report", "--out", str(tmp_path / "again"), key=SPACED_KEY)
    assert report.returncode == 0, report.stderr
    assert any(p.suffix == ".html" for p in tmp_path.rglob("*")), "nothing to scan"
    outputs = (result.stdout, result.stderr, report.stdout, report.stderr)
    assert leaks(tmp_path, SPACED_KEY, *outputs) == []


def test_server_text_reaches_the_terminal_printable(hostile, tmp_path):
    """Escape sequences in a server's message (colours, a window title, a bidi override, a
    carriage return) are shown escaped, never sent raw to the terminal."""
    nasty = "bad \x1b[31mred\x1b[0m \x1b]0;pwned\x07 \u202egnp.exe\r done"

    async def handler(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        body = {"api_error_code": "invalid_request\x1b[2J", "message": nasty, "param": "id\x07"}
        writer.write(answer(400, body))
        return True

    server = hostile(handler)
    result = run_cli(server.base_url, tmp_path, 1, max_attempts=1)
    text = clean(result)
    assert result.returncode == 1, text
    for raw in ("\x1b", "\x07", "\u202e", "\r"):
        assert raw not in text, repr(raw)
    status = cli(tmp_path, "status")
    assert "\x1b" not in status.stdout + status.stderr


def test_a_key_that_is_not_ascii_is_a_clear_error_exit_2(tmp_path):
    """A key with a byte that is not UTF-8 (or not printable ASCII): exit 2, a message saying
    what is wrong, no traceback, the key not echoed, nothing sent."""
    source = write_orders(tmp_path / "orders.csv", 1, prefix="H")
    env = {
        k.encode(): v.encode() for k, v in support.cli_env("http://127.0.0.1:9/api/v2", KEY).items()
    }
    for key in (b"sk_bad\xff\xfekey", "sk_caf\u00e9".encode(), b"sk_tab\tkey"):
        env[b"CHARGEBEE_API_KEY"] = key
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", "run", str(source), "--batch", "h",
             "--ledger", str(tmp_path / "l.sqlite"), "--report-dir", str(tmp_path / "r")],
            env=env, cwd=tmp_path, capture_output=True, timeout=CLI_TIMEOUT_S, check=False,
        )  # fmt: skip
        text = (result.stdout + result.stderr).decode("utf-8", "replace")
        assert result.returncode == 2, text
        assert "Traceback" not in text
        assert "API key" in text
        assert key not in result.stdout + result.stderr


# -- where requests may go -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.200.1.9", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("127.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("127.0.0.1.", False),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("", False),
    ],
)
def test_loopback_means_127_8_or_1_or_localhost(host, loopback):
    """Only an IP literal in 127.0.0.0/8, ::1, or localhost (resolving to them) is loopback."""
    assert is_loopback(host) is loopback


def test_plain_http_to_a_name_that_starts_with_127_is_refused(tmp_path):
    """``http://127.0.0.1.nip.io`` is not loopback: exit 2 before anything is sent, no key."""
    result = run_cli("http://127.0.0.1.nip.io:9/api/v2", tmp_path, 1)
    text = clean(result)
    assert result.returncode == 2, text
    assert "http://" in text
    assert KEY not in text


@pytest.mark.parametrize(
    ("order_id", "path"),
    [
        (".", "/api/v2/orders/%2E"),
        ("..", "/api/v2/orders/%2E%2E"),
        ("a/../b", "/api/v2/orders/a%2F..%2Fb"),
        ("x?y#z", "/api/v2/orders/x%3Fy%23z"),
    ],
)
def test_ids_are_one_escaped_path_segment_dot_segments_included(hostile, order_id, path):
    """update/retrieve of id ``.`` or ``..`` reach ``/orders/%2E``, never ``/orders`` (the
    deprecated create endpoint) or a parent path; ``/``, ``?``, ``#`` are escaped too."""

    async def handler(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(200, {"order": {"id": order_id}}))
        return True

    server = hostile(handler)
    settings = load_settings(
        {"max_attempts": 1},
        environ={"CHARGEBEE_API_KEY": KEY, "CHARGEBEE_BASE_URL": server.base_url},
    )

    async def main() -> None:
        async with ChargebeeClient(settings) as client:
            await client.update_order(order_id, {"status": "shipped"}, idempotency_key="k")
            assert (await client.retrieve_order(order_id)) == {"id": order_id}

    anyio.run(main)
    assert [(s.method, s.path) for s in server.seen] == [("POST", path), ("GET", path)]
