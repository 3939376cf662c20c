"""Run the sandbox under uvicorn: ``SandboxServer`` (background thread, for tests and drills) and
``serve_forever`` (foreground, for ``order-import sandbox`` and ``python -m sandbox``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from sandbox.app import API_PREFIX, DROPPED_BODY, Answer, ConnectionDropped, SandboxApp, create_app
from sandbox.config import SandboxConfig

_START_TIMEOUT_S = 10.0
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Talks to the sandbox on loopback directly, whatever HTTP_PROXY says."""


class _DropFilter(logging.Filter):
    """Keep uvicorn quiet about connections the sandbox drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


_error_log = logging.getLogger("uvicorn.error")
if not any(isinstance(f, _DropFilter) for f in _error_log.filters):
    _error_log.addFilter(_DropFilter())


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket. ``proto=IPPROTO_TCP`` matters: asyncio only sets TCP_NODELAY on
    accepted sockets whose proto is TCP, and without it Nagle + delayed ACK add ~40 ms to every
    keep-alive response (uvicorn writes headers and body separately)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, but a stop request wakes its main loop at once instead of at the next
    0.1 s tick (tests start and stop hundreds of sandboxes)."""

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)
            should_exit = await self.on_tick(counter)

    def request_exit(self) -> None:
        """Ask the server to stop, from any thread."""
        self.should_exit = True
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._wake.set)


class _OneWrite:
    """A transport that sends a response's head and body in one write (one ``send`` syscall,
    one segment) instead of uvicorn's two: the head is held until the body's write, which
    follows in the same loop turn, and otherwise goes out on the next turn (or on close).
    A quarter of the sandbox's CPU per import was in ``transport.write`` (issue 16)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._transport.write(held + bytes(data))
        elif (
            isinstance(data, bytes)
            and data.endswith(b"\r\n\r\n")
            and data.startswith(b"HTTP/1.1 ")
            and not data.startswith(b"HTTP/1.1 1")  # 100 Continue goes out at once
        ):
            self._held = data
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _OneWriteProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over ``_OneWrite``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_OneWrite(transport))  # type: ignore[arg-type]


_API = (API_PREFIX + "/").encode()
_JSON_HEAD = b"content-type: application/json;charset=utf-8\r\ncontent-length: "
_DROPPED_HEAD = _JSON_HEAD + b"4096\r\n"
_500 = (
    b"content-type: text/plain; charset=utf-8\r\ncontent-length: 21\r\nconnection: close\r\n"
    b"\r\nInternal Server Error"
)


class _DirectProtocol(_OneWriteProtocol):
    """uvicorn's protocol with a short way for API requests: a keep-alive HTTP/1.1 GET or POST
    below ``/api/v2/`` is answered by ``SandboxApp.answer_now`` as its last byte is parsed,
    the answer's bytes written at once, with no ASGI task, scope, receive/send messages nor
    event per request (uvicorn's per-request machinery was about a third of the sandbox's CPU
    per import, issue 16). The bytes are those uvicorn writes for the same answer (status line,
    its ``date``/``server`` headers, then the app's). Everything else (control endpoints,
    ``Expect: 100-continue``, HTTP/1.0, ``Connection: close``, upgrades, pipelined requests,
    bodies over 64 KiB, ``latency_ms`` > 0) goes uvicorn's way, as before: the parser
    callbacks it was held back from are replayed to uvicorn, in order, when that is decided.

    The keep-alive timeout is uvicorn's (a connection idle that long is closed) with one timer
    per connection re-armed when it fires, instead of one scheduled and cancelled per request.
    """

    _defaults: tuple[list[tuple[bytes, bytes]] | None, bytes] = (None, b"")
    """uvicorn's default headers last seen, and their bytes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app = self.config.app
        self._sandbox = app if isinstance(app, SandboxApp) else None
        self._held: bytearray | None = None
        """The body so far of a request held for the short way (None: not held)."""
        self._idle_since: float | None = None
        self._closing = False

    # -- the short way -------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.expect_100_continue = False
        self.headers = []  # uvicorn's scope is made only for requests that go its way

    def _make_scope(self) -> None:
        """uvicorn's scope for the current request, as its ``on_message_begin`` makes it."""
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()
        self.url, self.headers, self.expect_100_continue = url, headers, expect
        self.scope["headers"] = headers

    def on_headers_complete(self) -> None:
        parser = self.parser
        if (
            self._sandbox is None
            or self.expect_100_continue
            or self.pipeline
            or (self.cycle is not None and not self.cycle.response_complete)
            or self.limit_concurrency is not None
            or not self.url.startswith(_API)
            or parser.get_method() not in (b"GET", b"POST")
            or parser.get_http_version() != "1.1"
            or not parser.should_keep_alive()
            or parser.should_upgrade()
        ):
            self._make_scope()
            super().on_headers_complete()
        else:
            self._held = bytearray()

    def on_body(self, body: bytes) -> None:
        held = self._held
        if held is None:
            super().on_body(body)
            return
        held += body
        if len(held) > HIGH_WATER_LIMIT:
            self._to_uvicorn(complete=False)

    def on_message_complete(self) -> None:
        held = self._held
        if held is None:
            super().on_message_complete()
        elif self._answer(bytes(held)):
            self._held = None
        else:
            self._to_uvicorn(complete=True)

    def _to_uvicorn(self, *, complete: bool) -> None:
        """Hand the held request to uvicorn's way: replay the callbacks it was held back from."""
        held, self._held = self._held, None
        self._make_scope()
        super().on_headers_complete()
        if self._closing:
            self.cycle.keep_alive = False  # what shutdown() would have set on its cycle
        if held:
            super().on_body(bytes(held))
        if complete:
            super().on_message_complete()

    def _answer(self, body: bytes) -> bool:
        """Answer the held request now; False (nothing done) when it must go uvicorn's way."""
        assert self._sandbox is not None
        try:
            url = httptools.parse_url(self.url)
            path = url.path.decode("ascii")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            return False  # uvicorn's way answers these as it always did
        if "%" in path:
            return False  # uvicorn unquotes the path: its way
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in self.headers}
        try:
            answer = self._sandbox.answer_now(
                self.parser.get_method().decode("ascii"),
                path,
                url.query or b"",
                headers,
                body,
                self.scheme or "http",
            )
        except Exception as exc:  # what uvicorn does with an app's exception before answering
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            self.transport.write(STATUS_LINE[500] + self._head_of_defaults() + _500)
            self.transport.close()
            self.server_state.total_requests += 1
            return True
        if answer is None:
            return False
        self._write(answer)
        return True

    def _head_of_defaults(self) -> bytes:
        """uvicorn's default headers (``date``, ``server``) as written, rebuilt when it changes
        them (once a second)."""
        defaults = self.server_state.default_headers
        cached = _DirectProtocol._defaults  # one tuple: sandboxes in other threads share it
        if cached[0] is not defaults:
            head = b"".join(b"%s: %s\r\n" % (name.lower(), value) for name, value in defaults)
            cached = _DirectProtocol._defaults = (defaults, head)
        return cached[1]

    def _write(self, answer: Answer) -> None:
        head = STATUS_LINE[answer.status] + self._head_of_defaults()
        if answer.dropped:  # committed; the connection dies mid-answer
            self.transport.write(head + _DROPPED_HEAD + b"\r\n" + DROPPED_BODY)
            self.transport.close()
            return
        body = answer.body
        parts = [head, _JSON_HEAD, b"%d\r\n" % len(body)]
        for name, value in answer.headers.items():
            parts.append(b"%s: %s\r\n" % (name.encode().lower(), value.encode()))
        if self._closing:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        parts.append(body)
        self.transport.write(b"".join(parts))
        if self._closing:
            self.transport.close()
        self.on_response_complete()

    def shutdown(self) -> None:
        if self._held is not None:
            self._closing = True  # the request being read is answered, then the connection closed
        else:
            super().shutdown()

    # -- keep-alive: one timer per connection --------------------------------------------------
    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            self._idle_since = None
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None  # busy: the armed timer, when it fires, looks again

    def connection_lost(self, exc: Exception | None) -> None:
        if self._held is not None:
            # Cut off mid-request: uvicorn's way had started the app at the headers, and the app
            # read what came before it saw the disconnect; so replay, and let the app's task
            # take the body before the connection is marked lost.
            self._to_uvicorn(complete=False)
            self.loop.call_soon(self._lost, exc)
        else:
            self._lost(exc)

    def _lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None

    def timeout_keep_alive_handler(self) -> None:
        self.timeout_keep_alive_task = None
        if self.transport.is_closing():
            return
        idle_since = self._idle_since
        now = self.loop.time()
        if idle_since is not None and now - idle_since >= self.timeout_keep_alive:
            self.transport.close()
            return
        wait = (
            self.timeout_keep_alive
            if idle_since is None
            else idle_since + self.timeout_keep_alive - now
        )
        self.timeout_keep_alive_task = self.loop.call_later(wait, self.timeout_keep_alive_handler)


SHORT_WAY_UVICORN = ("0", "54")
"""The uvicorn release (major, minor) ``_DirectProtocol`` was written and compared against: it
overrides parts of uvicorn's protocol that are not a public API. Under any other release every
request goes uvicorn's way (``_OneWriteProtocol``), as before the short way existed, and
``tests/test_sandbox_wire.py`` fails, asking for the short way to be checked against it."""


def short_way_known(version: str = uvicorn.__version__) -> bool:
    """Whether ``version`` of uvicorn is the one the short way was written against."""
    return tuple(version.split(".")[:2]) == SHORT_WAY_UVICORN


def _uvicorn(app: SandboxApp, host: str, port: int, *, direct: bool = True) -> _Server:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=_DirectProtocol if direct and short_way_known() else _OneWriteProtocol,
        loop="asyncio",
        lifespan="off",
        access_log=False,
        proxy_headers=False,  # no X-Forwarded-* rewriting: one middleware layer less per request
        log_config=None,
        log_level="warning",
        timeout_graceful_shutdown=2,
        backlog=2048,
    )
    return _Server(config)


class SandboxServer:
    """A sandbox on ``host:port`` served from a background thread.

    Args:
        config: Sandbox knobs (default: a test site's limits).
        host: Interface to bind (keep 127.0.0.1).
        port: 0 picks a free ephemeral port.
        direct: Answer API requests the short way (``_DirectProtocol``); False serves every
            request through uvicorn's ASGI cycle, as before (tests compare the two byte for
            byte).

    Use as ``with SandboxServer(cfg) as sb: httpx.get(sb.base_url + "/orders", auth=(key, ""))``.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        direct: bool = True,
    ):
        self.config = config or SandboxConfig()
        self.host = host
        self.port = port
        self.direct = direct
        self.app = create_app(self.config)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def store(self) -> Any:
        """The in-memory store (read it only while no request is running)."""
        return self.app.store

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (control endpoints live below it)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v2``: what a client uses as its Chargebee base URL."""
        return f"{self.root_url}/api/v2"

    @property
    def api_key(self) -> str:
        """The API key this sandbox accepts."""
        return self.app.config.api_key

    def start(self) -> SandboxServer:
        """Serve in a background thread; return once it accepts connections."""
        if self._thread is not None:
            return self
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        server = _uvicorn(self.app, self.host, self.port, direct=self.direct)
        thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name=f"sandbox-{self.port}",
            daemon=True,
        )
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError(f"sandbox did not start on {self.root_url}")
            time.sleep(0.005)
        self._server, self._thread, self._sock = server, thread, sock
        return self

    def stop(self, *, close_store: bool = True) -> None:
        """Stop serving (in-flight requests get up to 2 s) and flush the state file."""
        if self._server is not None and self._thread is not None:
            self._server.request_exit()
            self._thread.join(timeout=_START_TIMEOUT_S)
        if self._sock is not None:
            self._sock.close()  # asyncio closed it already; this is idempotent
        self._server = self._thread = self._sock = None
        if close_store:
            self.app.store.close()

    def restart(self, downtime_s: float = 0.0) -> SandboxServer:
        """Stop, stay down (connections refused) for ``downtime_s``, start on the same port.

        The store, counters and limit windows are kept, as after a Chargebee outage.
        """
        self.stop(close_store=False)
        time.sleep(downtime_s)
        return self.start()

    def state(self, **flags: bool) -> dict[str, Any]:
        """``GET /__sandbox/state`` (flags ``orders``/``events``/``requests`` may be False)."""
        query = "&".join(f"{k}={'true' if v else 'false'}" for k, v in flags.items())
        return self._control("GET", f"/__sandbox/state?{query}")

    def reset(self) -> None:
        """``POST /__sandbox/reset``: forget everything."""
        self._control("POST", "/__sandbox/reset")

    def reconfigure(self, **knobs: Any) -> dict[str, Any]:
        """``POST /__sandbox/config``: change runtime knobs (fault_rate, latency_ms, limits...)."""
        return self._control("POST", "/__sandbox/config", knobs)

    def _control(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.root_url + path, data=data, method=method)
        with _DIRECT.open(request, timeout=30) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(
    config: SandboxConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve in the foreground until Ctrl-C / SIGTERM, then flush the state file.

    Args:
        config: Sandbox knobs.
        host: Interface to bind.
        port: Port (0 = ephemeral).
        on_ready: Called with the base URL once the socket is bound (before serving).
    """
    app = create_app(config)
    sock = _bind(host, port)
    port = sock.getsockname()[1]
    server = _uvicorn(app, host, port)
    if on_ready is not None:
        on_ready(f"http://{host}:{port}/api/v2")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        app.store.close()
