"""Both transports: which one a target gets, and each against the real sandbox and scripted
raw-socket servers on 127.0.0.1.

httpx's own transport serves every non-loopback target (proxies from the environment, the OS
trust store); LeanTransport only the loopback API origin. Edge cases (chunked, Connection: close,
HTTP/1.0, truncation, a stray second response, dropped keep-alive connections, timeouts, TLS
verification) use tiny threaded socket servers; the client path is always a real
``httpx.AsyncClient`` over real sockets.
"""

from __future__ import annotations

import gzip
import inspect
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import httpx
import pytest
import truststore

from pipeline.api.client import ChargebeeClient
from pipeline.api.transport import LeanTransport
from pipeline.config import load_settings
from pipeline.errors import ApiError
from pipeline.progress import NullProgress
from pipeline.send.runner import RunRequest, run_batch
from tests import test_client as client_tests
from tests.orders_factory import write_orders

pytestmark = pytest.mark.anyio
Script = Callable[["RawServer", socket.socket, BinaryIO], None]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


def read_request(rfile: BinaryIO) -> tuple[bytes, bytes] | None:
    """One request (head, body) from the connection, or None at EOF."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = rfile.readline(65536)
        if not line:
            return None
        head += line
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, rfile.read(length) if length else b""


class RawServer:
    """A threaded TCP server on 127.0.0.1:0; every connection runs ``script``."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script, self.tls = script, tls
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.requests: list[bytes] = []
        self.eofs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """Base URL of this server."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        deadline = time.monotonic() + 60  # bounded even if a test forgets to stop it
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            with conn, conn.makefile("rb") as rfile:
                self.script(self, conn, rfile)
        except (OSError, ssl.SSLError):
            pass

    def next_request(self, rfile: BinaryIO) -> bool:
        """Read one request into ``requests``; False at EOF."""
        got = read_request(rfile)
        if got is None:
            self.eofs += 1
            return False
        self.requests.append(got[0] + got[1])
        return True

    def stop(self) -> None:
        """Stop accepting (bounded join)."""
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    """Factory of scripted servers; all stopped at teardown."""
    made: list[RawServer] = []

    def factory(script: Script, tls: ssl.SSLContext | None = None) -> RawServer:
        made.append(RawServer(script, tls))
        return made[-1]

    yield factory
    for server in made:
        server.stop()


def answer_each(*responses: bytes, close: bool = False) -> Script:
    """Script: answer successive requests on a connection with ``responses`` (last repeats)."""

    def script(srv: RawServer, conn: socket.socket, rfile: BinaryIO) -> None:
        index = 0
        while srv.next_request(rfile):
            conn.sendall(responses[min(index, len(responses) - 1)])
            index += 1
            if close:
                return

    return script


def lean_client(base: str, **kwargs: Any) -> httpx.AsyncClient:
    """An AsyncClient on LeanTransport with a 5 s timeout."""
    timeout = kwargs.pop("timeout", 5.0)
    return httpx.AsyncClient(base_url=base, transport=LeanTransport(**kwargs), timeout=timeout)


def opened(client: httpx.AsyncClient) -> int:
    """Connections the client's LeanTransport opened."""
    transport = client._transport
    assert isinstance(transport, LeanTransport)
    return transport.connections_opened


# -- the sandbox ---------------------------------------------------------------------------------


async def test_sandbox_round_trips_reuse_one_connection(sandbox: Any, valid_order: Any) -> None:
    """GET and POST against the sandbox work and ten sequential requests share one connection."""
    async with lean_client(sandbox.base_url + "/") as client:
        auth = (sandbox.api_key, "")
        made = await client.post("orders/import_order", data=valid_order(id="LT-1"), auth=auth)
        got = await client.get("orders/LT-1", auth=auth)
        for _ in range(8):
            assert (await client.get("orders", auth=auth)).status_code == 200
        assert opened(client) == 1
    assert made.status_code == 200, made.text
    assert made.json()["order"]["id"] == "LT-1"
    assert got.json()["order"]["id"] == "LT-1"
    assert got.http_version == "HTTP/1.1"


async def test_sandbox_concurrency_capped_at_max_connections(make_sandbox: Any) -> None:
    """40 concurrent requests with max_connections=3 open at most 3 connections."""
    server = make_sandbox(latency_ms=30)
    async with lean_client(server.base_url + "/", max_connections=3) as client:
        statuses: list[int] = []

        async def one() -> None:
            response = await client.get("orders", auth=(server.api_key, ""))
            statuses.append(response.status_code)

        async with anyio.create_task_group() as tg:
            for _ in range(40):
                tg.start_soon(one)
        assert 1 <= opened(client) <= 3
    assert statuses == [200] * 40


async def test_drop_after_commit_fails_once_without_resending(
    make_sandbox: Any, valid_order: Any
) -> None:
    """A connection dropped after commit raises an httpx error; exactly one POST reached it."""
    server = make_sandbox(fault_rate=1.0, faults=("drop_after_commit",))
    async with lean_client(server.base_url + "/") as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await client.post(
                "orders/import_order", data=valid_order(id="LT-D"), auth=(server.api_key, "")
            )
    state = server.state()
    posts = [r for r in state["requests"] if "import_order" in str(r.get("path"))]
    assert len(posts) == 1
    assert [o["id"] for o in state["orders"]] == ["LT-D"]


async def test_cap_respected_by_a_raw_server(raw_server: Callable[..., RawServer]) -> None:
    """Counted by the server: 30 concurrent requests with max_connections=4 use ≤ 4 sockets."""

    def slow(srv: RawServer, conn: socket.socket, rfile: BinaryIO) -> None:
        while srv.next_request(rfile):
            time.sleep(0.01)
            conn.sendall(OK)

    server = raw_server(slow)
    client = lean_client(server.url, max_connections=4)
    async with client, anyio.create_task_group() as tg:
        for i in range(30):
            tg.start_soon(client.get, f"/{i}")
    assert len(server.requests) == 30
    assert 1 <= server.accepted <= 4


# -- framing and keep-alive --------------------------------------------------------------------


CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
)


async def test_chunked_body_is_joined_and_connection_reused(raw_server: Any) -> None:
    """A chunked response is read whole and the connection is then reused."""
    server = raw_server(answer_each(CHUNKED))
    async with lean_client(server.url) as client:
        first = await client.get("/a")
        second = await client.get("/b")
    assert first.content == second.content == b"hello world"
    assert server.accepted == 1
    assert len(server.requests) == 2


async def test_connection_close_is_not_reused(raw_server: Any) -> None:
    """``Connection: close`` makes the next request open a new connection."""
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    server = raw_server(answer_each(closing, close=True))
    async with lean_client(server.url) as client:
        assert (await client.get("/1")).text == "ok"
        assert (await client.get("/2")).text == "ok"
    assert server.accepted == 2


async def test_http10_body_until_close(raw_server: Any) -> None:
    """HTTP/1.0 without a length: the body runs to EOF, and the connection is not reused."""
    server = raw_server(answer_each(b"HTTP/1.0 200 OK\r\n\r\nuntil the end", close=True))
    async with lean_client(server.url) as client:
        first = await client.get("/1")
        await client.get("/2")
    assert first.content == b"until the end"
    assert first.http_version == "HTTP/1.0"
    assert server.accepted == 2


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"HTTP/1.1 200 OK\r\nContent-Le",
    ],
    ids=["content-length", "chunked", "head"],
)
async def test_truncated_response_is_a_protocol_error(raw_server: Any, response: bytes) -> None:
    """A response cut short by the server closing raises RemoteProtocolError."""
    server = raw_server(answer_each(response, close=True))
    async with lean_client(server.url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/")


async def test_a_stray_second_response_never_lends_its_status(raw_server: Any) -> None:
    """A 400 and a stray 200 in one TCP segment: the answer is the 400 with ITS body (status,
    headers and body all from the first response), and the connection is not reused."""
    error = b'{"api_error_code":"invalid_request"}'
    both = (
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\nX-Which: first\r\n\r\n%s"
        % (len(error), error)
        + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Which: second\r\n\r\n{}"
    )
    server = raw_server(answer_each(both))
    async with lean_client(server.url) as client:
        first = await client.post("/orders/import_order", content=b"id=1")
        second = await client.get("/")
    for answer in (first, second):
        assert (answer.status_code, answer.content) == (400, error)
        assert answer.headers["x-which"] == "first"
    assert server.accepted == 2, "the connection with the stray response was reused"


async def test_malformed_and_upgrade_responses_fail_clearly(raw_server: Any) -> None:
    """Garbage and a 101 answer raise RemoteProtocolError."""
    garbage = raw_server(answer_each(b"NOT HTTP AT ALL\r\n\r\n"))
    upgrade = raw_server(
        answer_each(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: ws\r\nConnection: upgrade\r\n\r\n"
        )
    )
    for server in (garbage, upgrade):
        async with lean_client(server.url) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get("/")


async def test_informational_response_is_skipped(raw_server: Any) -> None:
    """A 100 Continue before the real answer is ignored."""
    server = raw_server(answer_each(b"HTTP/1.1 100 Continue\r\n\r\n" + OK))
    async with lean_client(server.url) as client:
        response = await client.post("/", content=b"x")
        again = await client.get("/")
    assert (response.status_code, response.text) == (200, "ok")
    assert again.text == "ok"
    assert server.accepted == 1


async def test_bytes_after_the_response_stop_reuse(raw_server: Any) -> None:
    """Extra bytes after a complete response: the answer is returned, the connection dropped."""
    server = raw_server(answer_each(OK + OK))
    async with lean_client(server.url) as client:
        assert (await client.get("/1")).text == "ok"
        assert (await client.get("/2")).text == "ok"
    assert server.accepted == 2


async def test_gzip_body_is_decoded_by_httpx(raw_server: Any) -> None:
    """Content-Encoding is left to httpx: a gzip body reads as the plain text."""
    packed = gzip.compress(b'{"a": 1}')
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(packed)}\r\n\r\n"
    server = raw_server(answer_each(head.encode() + packed))
    async with lean_client(server.url) as client:
        response = await client.get("/")
    assert response.json() == {"a": 1}


async def test_streamed_request_body_is_sent_with_content_length(raw_server: Any) -> None:
    """A streamed request body is read fully and sent with Content-Length, never chunked."""
    server = raw_server(answer_each(OK))

    async def parts() -> AsyncIterator[bytes]:
        yield b"a=1"
        yield b"&b=2"

    async with lean_client(server.url) as client:
        await client.post("/p", content=parts())
        await client.post("/q", data={"x": "y"})
    first, second = server.requests
    assert b"content-length: 7\r\n" in first.lower()
    assert b"transfer-encoding" not in first.lower()
    assert first.endswith(b"\r\n\r\na=1&b=2")
    assert first.startswith(b"POST /p HTTP/1.1\r\n")
    assert second.endswith(b"\r\n\r\nx=y")


async def test_header_injection_is_refused(raw_server: Any) -> None:
    """A header value with CR/LF never reaches the wire."""
    server = raw_server(answer_each(OK))
    async with lean_client(server.url) as client:
        with pytest.raises(httpx.LocalProtocolError):
            await client.get("/", headers={"X-A": "1\r\nX-Evil: 2"})
    assert server.requests == []


# -- dropped connections, timeouts, connect failures -----------------------------------------


async def test_idle_connection_closed_by_server_is_not_used(raw_server: Any) -> None:
    """A kept-alive connection the server closed while idle is replaced before anything is sent."""

    def one_then_close(srv: RawServer, conn: socket.socket, rfile: BinaryIO) -> None:
        if srv.next_request(rfile):
            conn.sendall(OK)  # says keep-alive, then closes anyway

    server = raw_server(one_then_close)
    async with lean_client(server.url) as client:
        await client.get("/1")
        await anyio.sleep(0.2)
        assert (await client.get("/2")).text == "ok"
    assert server.accepted == 2
    assert len(server.requests) == 2


async def test_reused_connection_dropped_mid_request_is_not_resent(raw_server: Any) -> None:
    """The server reads the 2nd request on a kept-alive connection and closes: error, no resend."""

    def drop_second(srv: RawServer, conn: socket.socket, rfile: BinaryIO) -> None:
        if srv.next_request(rfile):
            conn.sendall(OK)
        srv.next_request(rfile)  # read it, answer nothing, close

    server = raw_server(drop_second)
    async with lean_client(server.url) as client:
        await client.get("/1")
        with pytest.raises(httpx.RemoteProtocolError, match="not resent"):
            await client.post("/2", content=b"once")
        await anyio.sleep(0.1)
    assert len(server.requests) == 2
    assert server.accepted == 1


async def test_slow_answer_is_a_read_timeout(raw_server: Any) -> None:
    """No answer within the read timeout raises ReadTimeout; the connection is discarded."""

    def slow(srv: RawServer, conn: socket.socket, rfile: BinaryIO) -> None:
        while srv.next_request(rfile):
            time.sleep(0.6 if len(srv.requests) == 1 else 0)
            conn.sendall(OK)

    server = raw_server(slow)
    async with lean_client(server.url, timeout=httpx.Timeout(5, read=0.2)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/slow")
        assert (await client.get("/fast")).text == "ok"
    assert server.accepted == 2


async def test_one_timer_keeps_the_deadline_and_the_write_and_read_timeouts(
    raw_server: Any,
) -> None:
    """``round_trip`` enforces three limits with one timer per request: a server dribbling a
    byte every 50 ms never trips the 1 s read timeout but is cut at the 0.4 s overall deadline
    (``TimeoutError``); a server that never reads a 16 MiB request trips the 0.3 s write
    timeout; a silent server trips the 0.3 s read timeout. Each connection is discarded."""

    def dribble(srv: RawServer, conn: socket.socket, rfile: BinaryIO) -> None:
        if srv.next_request(rfile):
            for byte in OK[:40]:
                conn.sendall(bytes([byte]))
                time.sleep(0.05)

    def never_reads(srv: RawServer, conn: socket.socket, rfile: BinaryIO) -> None:
        time.sleep(1.5)

    def silent(srv: RawServer, conn: socket.socket, rfile: BinaryIO) -> None:
        srv.next_request(rfile)
        time.sleep(1.5)

    transport = LeanTransport()
    limits: dict[str, float | None] = {"connect": 5.0, "write": 0.3, "read": 1.0, "pool": 5.0}
    get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (16 << 20)
    cases: list[tuple[Script, bytes, float | None, type[BaseException]]] = [
        (dribble, get, 0.4, TimeoutError),
        (never_reads, post + b"x" * (16 << 20), None, httpx.WriteTimeout),
        (silent, get, None, httpx.ReadTimeout),
    ]
    for script, data, deadline, expected in cases:
        server = raw_server(script)
        origin = ("http", "127.0.0.1", server.port)
        reads = dict(limits, read=0.3) if script is silent else limits
        started = time.monotonic()
        with pytest.raises(expected) as caught:
            await transport.round_trip(origin, data, reads, deadline=deadline)
        took = time.monotonic() - started
        assert not isinstance(caught.value, httpx.TimeoutException) or deadline is None
        assert took >= 0.3, (script.__name__, took)  # never before its limit
        assert transport._pools[origin].conns == set()  # discarded, never reused
    await transport.aclose()


async def test_pool_timeout_when_every_connection_is_busy(raw_server: Any) -> None:
    """With one connection busy, a second request waiting longer than pool timeout fails."""

    def slow(srv: RawServer, conn: socket.socket, rfile: BinaryIO) -> None:
        while srv.next_request(rfile):
            time.sleep(0.5)
            conn.sendall(OK)

    server = raw_server(slow)
    timeout = httpx.Timeout(5, pool=0.1)
    errors: list[BaseException] = []
    async with lean_client(server.url, max_connections=1, timeout=timeout) as client:

        async def second() -> None:
            await anyio.sleep(0.05)
            try:
                await client.get("/2")
            except httpx.PoolTimeout as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(client.get, "/1")
            tg.start_soon(second)
    assert len(errors) == 1
    assert len(server.requests) == 1


async def test_refused_port_is_a_connect_error() -> None:
    """Nothing listening: ConnectError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with lean_client(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/")


async def test_aclose_closes_kept_alive_connections(raw_server: Any) -> None:
    """aclose() closes idle connections: the server sees EOF."""
    server = raw_server(answer_each(OK))
    async with lean_client(server.url) as client:
        await client.get("/")
    for _ in range(50):  # bounded wait for the server thread to notice
        if server.eofs:
            break
        await anyio.sleep(0.02)
    assert server.eofs == 1


# -- TLS -------------------------------------------------------------------------------------


def make_cert(tmp: Path, san: str) -> tuple[Path, Path]:
    """A self-signed cert/key pair for ``san`` made with the openssl CLI (skip without it)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to make a test certificate")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    cmd = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    cmd += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=lean-test"]
    cmd += ["-addext", f"subjectAltName={san}"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return cert, key


def tls_server(raw_server: Any, tmp: Path, san: str) -> tuple[RawServer, Path]:
    """A TLS raw server with a self-signed certificate for ``san``."""
    cert, key = make_cert(tmp, san)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return raw_server(answer_each(OK), tls=ctx), cert


async def test_self_signed_certificate_is_refused(raw_server: Any, tmp_path: Path) -> None:
    """https to a self-signed server fails verification with ConnectError; nothing is sent."""
    server, _cert = tls_server(raw_server, tmp_path, "IP:127.0.0.1")
    async with lean_client(server.url) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get("/")
    assert server.requests == []


async def test_trusted_certificate_works_and_hostname_is_checked(
    raw_server: Any, tmp_path: Path
) -> None:
    """With the cert trusted, TLS works; a cert for another host name still fails."""
    server, cert = tls_server(raw_server, tmp_path, "IP:127.0.0.1")
    trusted = ssl.create_default_context(cafile=str(cert))
    async with lean_client(server.url, ssl_context=trusted) as client:
        assert (await client.get("/")).text == "ok"
        assert (await client.get("/")).text == "ok"
        assert opened(client) == 1
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    wrong, wrong_cert = tls_server(raw_server, other_dir, "DNS:example.invalid")
    ctx = ssl.create_default_context(cafile=str(wrong_cert))
    async with lean_client(wrong.url, ssl_context=ctx) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/")


def test_verification_cannot_be_turned_off() -> None:
    """verify=False and a non-verifying ssl_context are refused."""
    with pytest.raises(ValueError):
        LeanTransport(verify=False)
    lax = ssl.create_default_context()
    lax.check_hostname = False
    lax.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError):
        LeanTransport(ssl_context=lax)


# -- the real client and runner on LeanTransport ---------------------------------------------

CLIENT_INTEGRATION = [
    "test_sandbox_import_replay_and_duplicate",
    "test_sandbox_rejects_a_wrong_key_with_auth_error",
    "test_sandbox_429_carries_retry_after",
    "test_sandbox_faults_are_transient",
    "test_sandbox_update_retrieve_and_list_paging",
    "test_sandbox_export_and_public_download",
]


@pytest.mark.parametrize("name", CLIENT_INTEGRATION)
async def test_client_integration_tests_pass_on_lean_transport(
    name: str, make_sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tests/test_client.py's sandbox tests pass unchanged with LeanTransport underneath."""
    transports: list[LeanTransport] = []

    def lean_client_for(server: Any, key: str | None = None, **flags: Any) -> ChargebeeClient:
        environ = {
            "CHARGEBEE_API_KEY": key or server.api_key,
            "CHARGEBEE_BASE_URL": server.base_url,
        }
        settings = load_settings(flags, environ=environ)
        transports.append(LeanTransport(max_connections=settings.concurrency))
        return ChargebeeClient(settings, transport=transports[-1])

    monkeypatch.setattr(client_tests, "sandbox_client_for", lean_client_for)
    test = getattr(client_tests, name)
    params = inspect.signature(test).parameters
    kwargs = {"sandbox": make_sandbox()} if "sandbox" in params else {"make_sandbox": make_sandbox}
    await test(**kwargs)
    assert transports
    assert all(t.connections_opened >= 1 for t in transports)


def test_run_with_faults_lands_every_row_once(make_sandbox: Any, tmp_path: Path) -> None:
    """run_batch on LeanTransport with 30% faults (503, 500, drops): every row exactly once."""
    server = make_sandbox(fault_rate=0.3, fault_seed=7)
    source = write_orders(tmp_path / "orders.csv", 30, prefix="LT")
    environ = {"CHARGEBEE_API_KEY": server.api_key, "CHARGEBEE_BASE_URL": server.base_url}
    flags = {"ledger_path": tmp_path / "l.sqlite", "concurrency": 8, "quiet": True}
    settings = load_settings(flags, environ=environ)
    transport = LeanTransport(max_connections=8)
    request = RunRequest("run", "lt", source=source, write_reports=False)
    summary = run_batch(settings, request, progress=NullProgress(), transport=transport)
    state = server.state()
    ids = [o["id"] for o in state["orders"]]
    assert summary.succeeded == 30  # already_present rows are counted in succeeded too
    assert len(ids) == len(set(ids)) == 30
    assert state["counts"]["fault_drop_after_commit"] > 0
    assert transport.connections_opened >= 2  # dropped connections were replaced


def test_default_context_verifies_with_certifi() -> None:
    """The default TLS context requires certificates and checks host names."""
    context = LeanTransport().ssl_context
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.cert_store_stats()["x509_ca"] > 0


async def test_response_dribbled_byte_by_byte(raw_server: Any) -> None:
    """A response arriving one byte per TCP segment is parsed the same (headers and body)."""
    response = (
        b"HTTP/1.1 201 Created\r\nX-Long-Header: " + b"v" * 40 + b"\r\n" + OK.split(b"\r\n", 1)[1]
    )

    def dribble(srv: RawServer, conn: socket.socket, rfile: BinaryIO) -> None:
        while srv.next_request(rfile):
            for i in range(len(response)):
                conn.sendall(response[i : i + 1])
                time.sleep(0.0005)

    server = raw_server(dribble)
    async with lean_client(server.url) as client:
        first = await client.get("/")
        second = await client.get("/")
    assert (first.status_code, first.text, second.text) == (201, "ok", "ok")
    assert first.headers["x-long-header"] == "v" * 40
    assert server.accepted == 1


async def test_transport_usable_after_aclose(raw_server: Any) -> None:
    """A transport shared by two clients in turn: the second works after the first closed it."""
    server = raw_server(answer_each(OK))
    transport = LeanTransport()
    async with httpx.AsyncClient(base_url=server.url, transport=transport) as first:
        assert (await first.get("/1")).text == "ok"
    async with httpx.AsyncClient(base_url=server.url, transport=transport) as second:
        assert (await second.get("/2")).text == "ok"
    assert transport.connections_opened == 2
    assert server.accepted == 2


async def test_cancelled_request_discards_its_connection(raw_server: Any) -> None:
    """A request cancelled while awaiting its answer never leaves its connection for reuse."""

    def first_slow(srv: RawServer, conn: socket.socket, rfile: BinaryIO) -> None:
        while srv.next_request(rfile):
            time.sleep(0.4 if len(srv.requests) == 1 else 0)
            conn.sendall(OK)

    server = raw_server(first_slow)
    async with lean_client(server.url) as client:
        with anyio.move_on_after(0.1) as scope:
            await client.get("/slow")
        assert scope.cancelled_caught
        assert (await client.get("/fast")).text == "ok"
    assert server.accepted == 2


# -- which transport a target gets --------------------------------------------------------------


def transport_for(base_url: str, **flags: Any) -> httpx.AsyncBaseTransport:
    """The transport a ChargebeeClient uses for an API request to ``base_url``."""
    environ = {"CHARGEBEE_API_KEY": "k", "CHARGEBEE_BASE_URL": base_url}
    client = ChargebeeClient(load_settings(flags, environ=environ))
    return client._http._transport_for_url(httpx.URL(base_url + "/orders/x"))


@pytest.mark.parametrize(
    ("base_url", "flags", "lean"),
    [
        ("http://127.0.0.1:8080/api/v2", {}, True),
        ("http://localhost:8080/api/v2", {}, True),
        ("http://[::1]:8080/api/v2", {}, True),
        ("http://127.0.0.1:8080/api/v2", {"http_transport": "httpx"}, False),
        ("https://acme-test.chargebee.com/api/v2", {}, False),
        ("https://billing.example.com/api/v2", {}, False),
    ],
)
def test_lean_only_for_the_loopback_api_origin(base_url: str, flags: Any, lean: bool) -> None:
    """LeanTransport serves the loopback API origin (unless http_transport = "httpx"); every
    other target gets httpx's own transport."""
    found = transport_for(base_url, **flags)
    assert isinstance(found, LeanTransport) is lean
    assert lean or isinstance(found, httpx.AsyncHTTPTransport)


def test_the_os_trust_store_verifies_tls_unless_turned_off() -> None:
    """By default TLS is verified with truststore (the OS store, so a corporate proxy's CA is
    trusted); use_truststore = false falls back to httpx's certifi context. Both verify."""
    url = "https://acme-test.chargebee.com/api/v2"
    on = transport_for(url)._pool._ssl_context  # type: ignore[attr-defined]
    off = transport_for(url, use_truststore=False)._pool._ssl_context  # type: ignore[attr-defined]
    assert isinstance(on, truststore.SSLContext)
    assert not isinstance(off, truststore.SSLContext)
    for context in (on, off):
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True


def connect_proxy() -> tuple[RawServer, list[bytes]]:
    """A fake HTTP proxy on 127.0.0.1 that records CONNECT lines and refuses them."""
    lines: list[bytes] = []

    def refuse(srv: RawServer, conn: socket.socket, rfile: BinaryIO) -> None:
        line = rfile.readline(4096)
        lines.append(line.strip())
        conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    return RawServer(refuse), lines


@pytest.mark.parametrize("trust_env", [True, False])
async def test_proxies_come_from_the_environment_unless_turned_off(
    trust_env: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTPS_PROXY is honoured for a non-loopback target (the request tunnels through it);
    trust_env = false ignores it. The proxy refuses, so nothing leaves the machine."""
    proxy, lines = connect_proxy()
    try:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        environ = {
            "CHARGEBEE_API_KEY": "k",
            "CHARGEBEE_BASE_URL": "https://acme-test.invalid/api/v2",
        }
        flags = {"trust_env": trust_env, "connect_timeout": 2.0, "read_timeout": 2.0}
        settings = load_settings(flags, environ=environ)
        async with ChargebeeClient(settings) as client:
            with pytest.raises(ApiError):
                await client.retrieve_order("o1")
    finally:
        proxy.stop()
    if trust_env:
        assert lines == [b"CONNECT acme-test.invalid:443 HTTP/1.1"]
    else:
        assert lines == []


def test_a_cli_run_on_httpx_transport_against_the_sandbox(
    make_sandbox: Any, tmp_path: Path
) -> None:
    """httpx's own transport runs in the suite too: the real CLI with http_transport = "httpx"
    imports every row once into the sandbox, through faults."""
    server = make_sandbox(fault_rate=0.2, fault_seed=5)
    source = write_orders(tmp_path / "orders.csv", 20, prefix="HX")
    config = tmp_path / "order-import.toml"
    config.write_text('http_transport = "httpx"\nmax_attempts = 10\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHARGEBEE_", "ORDER_IMPORT"))}
    env.update({"CHARGEBEE_API_KEY": server.api_key, "CHARGEBEE_BASE_URL": server.base_url})
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", str(source), "--batch", "hx", "--quiet",
         "--config", str(config), "--ledger", str(tmp_path / "l.sqlite"),
         "--report-dir", str(tmp_path / "r"), "--rate", "60000"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    ids = [o["id"] for o in server.state()["orders"]]
    assert len(ids) == len(set(ids)) == 20


# -- the client's direct path to LeanTransport ---------------------------------------------------


async def test_the_direct_path_puts_httpx_bytes_on_the_same_pool(raw_server: Any) -> None:
    """Loopback API requests skip httpx's models, yet the server reads the very bytes the httpx
    path sends, on the same pooled connection, and both give the same answer."""
    order = b'{"order": {"id": "o-1", "invoice_id": "i-1"}}'
    ok = b"HTTP/1.1 200 OK\r\nchargebee-idempotency-REPLAYED: true\r\nContent-Length: %d\r\n\r\n"
    server = raw_server(answer_each(ok % len(order) + order))
    environ = {"CHARGEBEE_API_KEY": "k_direct", "CHARGEBEE_BASE_URL": server.url + "/api/v2"}
    params = {"id": "o-1", "invoice_id": "i-1", "shipping_address": {"city": "Kraków a&b=c+d"}}
    answers = []
    async with ChargebeeClient(load_settings({}, environ=environ)) as client:
        assert {
            ("POST", True, True, False),
            ("GET", False, False, False),
            ("GET", False, False, True),
        } <= client._lean_shapes
        for _ in ("direct", "httpx"):
            imported = await client.import_order(params, idempotency_key="k-1")
            found = await client.retrieve_order("o-1")
            listed = await client.list_page("order", {"id": {"in": ["o 1", 'o"2', "ø&=+"]}})
            answers.append((imported.status, imported.body, imported.replayed, found, listed))
            client._lean_shapes = frozenset()  # the second round through httpx's models
    assert answers[0] == answers[1]
    assert answers[0][2] is True
    assert len(server.requests) == 6
    assert server.requests[:3] == server.requests[3:]
    assert server.requests[0].startswith(b"POST /api/v2/orders/import_order HTTP/1.1\r\n")
    assert server.requests[2].startswith(b"GET /api/v2/orders?id%5Bin%5D=%5B%22o+1%22%2C")
    assert server.accepted == 1


QUERY_VALUES = [
    "",
    "plain",
    "a b",
    "a+b",
    "100%",
    "%41",
    "a&b=c",
    '["x","y"]',
    "x/y?z#w",
    "ø kraków ✓",
    "tab\there",
    "~._-",
    "'quote'",
    "semi;colon:at@",
    "😀",
]


@pytest.mark.parametrize("value", QUERY_VALUES)
def test_direct_list_queries_are_the_bytes_httpx_sends(value: str) -> None:
    """A list query on the direct path is written byte for byte as httpx writes it (httpx
    re-quotes ``urlencode``'s text; the direct path uses ``form_body``), for names and values
    with spaces, reserved and non-ASCII characters, and for an empty value."""
    from pipeline.api.encode import form_body
    from pipeline.api.transport import request_head

    environ = {"CHARGEBEE_API_KEY": "k", "CHARGEBEE_BASE_URL": "http://127.0.0.1:9/api/v2"}
    client = ChargebeeClient(load_settings({}, environ=environ))
    assert ("GET", False, False, True) in client._lean_shapes
    query = [("id[in]", value), (value or "k", "1"), ("offset", value)]
    ours = client._direct_head("GET", "orders", None, None, form_body(query))
    request = client._http.build_request(
        "GET", client._url("orders"), params=httpx.QueryParams(tuple(query)),
        headers=client._headers(),
    )  # fmt: skip
    assert ours == request_head(request, b"")


def test_raw_answer_headers_read_like_httpx_headers() -> None:
    """Header look-ups on the direct path (case, repeats, absence) match ``httpx.Headers``."""
    from pipeline.api.client import _RawHeaders

    raw = [(b"Retry-After", b"5"), (b"X-Twice", b"a"), (b"x-twice", b"b"), (b"Empty", b"")]
    ours, theirs = _RawHeaders(raw), httpx.Headers(raw)
    for name in ("retry-after", "RETRY-AFTER", "x-twice", "empty", "absent"):
        assert ours.get(name) == theirs.get(name)
        assert ours.get(name, "-") == theirs.get(name, "-")
    assert list(ours) == list(theirs)
