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

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sandbox.app import ConnectionDropped, SandboxApp, create_app
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


def _uvicorn(app: SandboxApp, host: str, port: int) -> _Server:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=_OneWriteProtocol,
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

    Use as ``with SandboxServer(cfg) as sb: httpx.get(sb.base_url + "/orders", auth=(key, ""))``.
    """

    def __init__(self, config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0):
        self.config = config or SandboxConfig()
        self.host = host
        self.port = port
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
        server = _uvicorn(self.app, self.host, self.port)
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
