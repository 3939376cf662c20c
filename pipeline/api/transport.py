"""LeanTransport: a small HTTP/1.1 keep-alive ``httpx.AsyncBaseTransport`` (anyio + httptools).

Used only for loopback targets (the sandbox), where it was measured to give 1.56-1.72x the
end-to-end rows/s of httpx's own transport at the sandbox's default latency
(``bench/bench_transport.py``, docs/client.md); every other target gets httpx's transport
(proxies, OS trust store). Owns connection pooling (an idle LIFO stack per origin, at
most N connections), request serialization, response parsing and the mapping of socket/parse
failures to httpx exceptions. It never resends anything: retries belong to ``pipeline.api.retry``.
The status, headers and body returned are always those of the FIRST response on the connection;
any bytes after it (a stray second response) only stop the connection from being reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import ssl
from collections.abc import Iterator
from typing import Any

import anyio
import httptools
import httpx

__all__ = ["LeanTransport", "Origin", "RawResponse", "ResponseCut", "request_head"]

Origin = tuple[str, str, int]
RawResponse = tuple[int, list[tuple[bytes, bytes]], bytes, str]
"""(status, headers as received, body, HTTP version) of a fully read response."""
MAX_HEAD_BYTES = 64 * 1024
"""A response whose status line and headers exceed this is refused as malformed."""
DEFAULT_MAX_BODY = 256 * 1024 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _verifying_context() -> ssl.SSLContext:
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi ships with httpx
        return ssl.create_default_context()


class ResponseCut(Exception):
    """``round_trip(..., cut_at=N)``: the answer's body passed ``N`` bytes; the rest was not
    read and the connection was dropped. ``status`` and ``headers`` are the answer's."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers


class _Conn(asyncio.Protocol):
    """One connection: an asyncio protocol feeding its httptools parser straight from the
    event loop's read callback (no stream layer, no read pausing per request), and the
    httptools callback object for its responses. One request at a time: ``exchange``."""

    __slots__ = (
        "body",
        "cut_at",
        "deadline_at",
        "done",
        "extra",
        "headers",
        "headers_done",
        "keep",
        "last",
        "limit",
        "loop",
        "lost",
        "parser",
        "received",
        "request",
        "reused",
        "status",
        "timeouts",
        "timer",
        "transport",
        "version",
        "waiter",
        "write_started",
        "writing",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: Any = None
        self.parser: Any = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.lost = False
        self.writing = False
        self.request: httpx.Request | None = None
        self.reused = False
        self.cut_at: int | None = None
        self.limit = 0
        self.timeouts: tuple[float | None, float | None] = (None, None)
        self.deadline_at: float | None = None
        self.last = self.write_started = 0.0
        self.reset()

    def reset(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.status = 0
        self.version = "1.1"
        self.received = 0
        self.headers_done = self.done = self.extra = self.keep = False

    def stale(self) -> bool:
        """True when the idle connection cannot be reused: closed by the peer (EOF or data
        pending on the socket, even before the loop noticed) or by the loop, or bytes arrived
        while it was idle."""
        if self.lost or self.extra or self.transport is None or self.transport.is_closing():
            return True
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return False
        fd = sock.fileno()
        if fd < 0:
            return True
        return bool(select.select([fd], [], [], 0)[0]) if fd < 1024 else _poll_readable(fd)

    # -- asyncio protocol callbacks ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        # pause_writing as soon as anything is left unsent, resume_writing once all is sent:
        # the write timeout covers exactly the time the server leaves our bytes unread.
        transport.set_write_buffer_limits(high=0)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is None:
            self._eof()
        else:
            self._failed_io(exc)

    def eof_received(self) -> bool:
        self._eof()
        return False  # close the transport

    def pause_writing(self) -> None:
        self.writing = True
        self.write_started = self.loop.time()

    def resume_writing(self) -> None:
        self.writing = False
        self.last = self.loop.time()

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            self.extra = True  # bytes while idle (or after the answer): never reuse
            return
        self.received += len(data)
        self.last = self.loop.time()
        request = self.request
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("unexpected upgrade", request=request))
            return
        except httptools.HttpParserError as exc:
            if not self.done:
                self._fail(httpx.RemoteProtocolError(f"malformed response: {exc}", request=request))
                return
            self.extra = True
        if not self.headers_done and self.received > MAX_HEAD_BYTES:
            self._fail(httpx.RemoteProtocolError("response head too large", request=request))
        elif (
            self.cut_at is not None
            and self.headers_done
            and self.received > self.cut_at + MAX_HEAD_BYTES
        ):
            self._fail(ResponseCut(self.status, self.headers))  # the body is past cut_at
        elif self.received > self.limit:
            self._fail(httpx.RemoteProtocolError("response body too large", request=request))
        elif self.done:
            self._finish()

    # -- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.done:  # bytes after the response we asked for: never reuse this connection
            self.extra = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.done:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.done:
            return
        # Read now: the parser's status is that of the LAST message it saw, and a stray second
        # response in the same segment must not lend its status to the first one's body.
        self.status = self.parser.get_status_code()
        self.version = self.parser.get_http_version()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if not self.done:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.done:
            return
        if 100 <= self.parser.get_status_code() < 200 and self.parser.get_status_code() != 101:
            self.headers, self.body, self.headers_done = [], [], False  # informational: skip
            return
        self.done = True
        self.keep = self.parser.should_keep_alive()  # llhttp forgets it once the message ends

    def until_eof(self) -> bool:
        """The response is delimited by the connection closing (no length, not chunked)."""
        names = {n.lower() for n, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    # -- one exchange ------------------------------------------------------------------------
    async def exchange(
        self,
        data: bytes,
        reused: bool,
        timeouts: dict[str, float | None],
        deadline_at: float | None,
        request: httpx.Request | None,
        cut_at: int | None,
        limit: int,
    ) -> tuple[RawResponse, bool]:
        """Write ``data`` and wait for the whole response: (response, reusable). One timer
        enforces the write timeout, the read timeout (between two received chunks) and the
        overall deadline (``deadline_at``, loop time) together."""
        self.reset()
        self.reused, self.request, self.cut_at, self.limit = reused, request, cut_at, limit
        self.deadline_at = deadline_at
        self.timeouts = (timeouts.get("write"), timeouts.get("read"))
        waiter = self.waiter = self.loop.create_future()
        if self.lost or self.transport.is_closing():
            self.waiter = None
            if reused:
                raise httpx.RemoteProtocolError(_DROPPED, request=request)
            raise httpx.WriteError("the connection is closed", request=request)
        self.last = self.write_started = self.loop.time()
        self.transport.write(data)
        self._arm()
        try:
            await waiter
        finally:
            self.waiter = None
            self.request = None
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
        status, version = self.status, self.version
        if status == 101:
            raise httpx.RemoteProtocolError("unexpected 101 Switching Protocols", request=request)
        keep = self.keep and not self.extra and not self.lost
        return (status, self.headers, b"".join(self.body), version), keep

    def _arm(self) -> None:
        """(Re)schedule the timer for the earliest limit still running, or fail now."""
        if self.waiter is None or self.waiter.done():
            return
        now = self.loop.time()
        write_s, read_s = self.timeouts
        request = self.request
        when = self.deadline_at
        if when is not None and now >= when:
            self._fail(_DeadlineExceeded())
            return
        if self.writing:
            if write_s is not None:
                if now - self.write_started >= write_s:
                    self._fail(httpx.WriteTimeout("write timed out", request=request))
                    return
                when = _earliest(when, self.write_started + write_s)
        elif read_s is not None:
            if now - self.last >= read_s:
                self._fail(httpx.ReadTimeout("read timed out", request=request))
                return
            when = _earliest(when, self.last + read_s)
        self.timer = self.loop.call_at(when, self._arm) if when is not None else None

    def _finish(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _eof(self) -> None:
        if self.waiter is None or self.waiter.done():
            self.lost = True
            return
        request = self.request
        if self.headers_done and self.until_eof():
            self.done, self.extra = True, True  # delimited by close: never reused
            self._finish()
            return
        if self.received:
            msg = "peer closed connection without sending complete message body"
        else:
            msg = _DROPPED if self.reused else "server disconnected without sending a response"
        self._fail(httpx.RemoteProtocolError(msg, request=request))

    def _failed_io(self, exc: Exception) -> None:
        request = self.request
        if self.reused and not self.received:
            self._fail(httpx.RemoteProtocolError(_DROPPED, request=request))
        elif self.writing:
            self._fail(httpx.WriteError(f"{type(exc).__name__}: {exc}", request=request))
        else:
            self._fail(httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request))

    def close(self) -> None:
        """Drop the connection at once (no graceful shutdown: it is never reused)."""
        self.lost = True
        if self.transport is not None:
            self.transport.abort()


class _DeadlineExceeded(TimeoutError):
    """The overall deadline of ``round_trip(..., deadline=)`` passed."""


_DROPPED = "server closed the kept-alive connection; the request was not resent"


def _earliest(a: float | None, b: float) -> float:
    return b if a is None or b < a else a


def _poll_readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _Pool:
    __slots__ = ("conns", "idle", "sem")

    def __init__(self, size: int) -> None:
        self.idle: list[_Conn] = []
        self.conns: set[_Conn] = set()
        self.sem = anyio.Semaphore(size)


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 keep-alive transport: ``httpx.AsyncClient(transport=LeanTransport(...))``.

    Args:
        max_connections: connections per (scheme, host, port); also the in-flight cap.
        verify: must be True: TLS certificates and host names are always verified.
        ssl_context: a verifying context to use instead of the default (certifi) one, e.g. a
            private CA; one that does not verify certificates and host names is refused.
        max_response_bytes: a larger response body fails with ``httpx.RemoteProtocolError``.

    A connection is reused only after its response was read completely and the server did not
    ask to close it. A kept-alive connection the server closed meanwhile is detected before
    sending when possible; if it fails on write or before the first response byte, the request
    fails with ``httpx.RemoteProtocolError`` and is NOT resent.
    """

    def __init__(
        self,
        *,
        max_connections: int = 16,
        verify: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        max_response_bytes: int = DEFAULT_MAX_BODY,
    ) -> None:
        if verify is not True:
            raise ValueError("LeanTransport always verifies TLS certificates")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        ctx = ssl_context or _verifying_context()
        if ctx.verify_mode != ssl.CERT_REQUIRED or not ctx.check_hostname:
            raise ValueError("ssl_context must verify certificates and host names")
        self._ssl = ctx
        self._size = max_connections
        self._max_body = max_response_bytes
        self._limit = max_response_bytes + MAX_HEAD_BYTES
        self._pools: dict[Origin, _Pool] = {}
        self.connections_opened = 0
        """How many connections were opened so far (tests and benchmarks read it)."""

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The (always verifying) TLS context used for https connections."""
        return self._ssl

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request on a pooled connection and return the fully read response."""
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported scheme {scheme!r}", request=request)
        if request.method == "HEAD":
            raise httpx.LocalProtocolError("LeanTransport does not send HEAD", request=request)
        origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        timeouts: dict[str, float | None] = request.extensions.get("timeout") or {}
        body = await request.aread()
        status, headers, content, version = await self.round_trip(
            origin, request_head(request, body) + body, timeouts, request
        )
        return httpx.Response(
            status,
            headers=headers,
            content=content,
            extensions={"http_version": b"HTTP/" + version.encode("ascii")},
            request=request,
        )

    async def round_trip(
        self,
        origin: Origin,
        data: bytes,
        timeouts: dict[str, float | None],
        request: httpx.Request | None = None,
        *,
        cut_at: int | None = None,
        deadline: float | None = None,
    ) -> RawResponse:
        """Send ``data`` (a request's head and body, never HEAD: the response must have a body
        or a length) to ``origin`` (scheme, host, port) on a pooled connection: (status,
        raw headers, body, HTTP version) of the fully read response.

        ``handle_async_request`` is this plus httpx's request and response models; a caller
        that builds the request bytes itself (``ChargebeeClient`` for the loopback API) skips
        them. Failures raise the same httpx exceptions (``request`` is attached when given).
        With ``cut_at``, a body longer than that is not read on (``ResponseCut``; at most
        ``cut_at`` plus one response head is ever held), as the httpx path stops its stream.
        With ``deadline`` (seconds), the whole round trip (pool wait, connect, write, read)
        must end within it, else ``TimeoutError`` (not an httpx timeout: the caller names it);
        it is enforced by the same timer as the write and read timeouts, not a scope of its own.
        """
        loop = asyncio.get_running_loop()
        deadline_at = None if deadline is None else loop.time() + deadline
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _Pool(self._size)
        try:
            pool.sem.acquire_nowait()
        except anyio.WouldBlock:
            with _scope_until(deadline_at):
                try:
                    with anyio.fail_after(timeouts.get("pool")):
                        await pool.sem.acquire()
                except TimeoutError as exc:
                    if isinstance(exc, _DeadlineExceeded):
                        raise
                    raise httpx.PoolTimeout("no connection free in time", request=request) from None
        try:
            conn, reused = await self._checkout(
                loop, pool, origin, timeouts.get("connect"), deadline_at, request
            )
            try:
                response, keep = await conn.exchange(
                    data, reused, timeouts, deadline_at, request, cut_at, self._limit
                )
            except BaseException:
                _discard(pool, conn)
                raise
            if keep and conn in pool.conns:  # not closed by an aclose() meanwhile
                pool.idle.append(conn)
            else:
                _discard(pool, conn)
        finally:
            pool.sem.release()
        return response

    async def aclose(self) -> None:
        """Close every connection (idle and in use); a later request opens new ones."""
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            for conn in list(pool.conns):
                _discard(pool, conn)
            pool.idle.clear()

    async def _checkout(
        self,
        loop: asyncio.AbstractEventLoop,
        pool: _Pool,
        origin: Origin,
        limit: float | None,
        deadline_at: float | None,
        request: httpx.Request | None,
    ) -> tuple[_Conn, bool]:
        while pool.idle:
            conn = pool.idle.pop()
            if not conn.stale():
                return conn, True
            _discard(pool, conn)
        scheme, host, port = origin
        try:
            with _scope_until(deadline_at), anyio.fail_after(limit):
                if scheme == "https":
                    _, conn = await loop.create_connection(
                        lambda: _Conn(loop), host, port, ssl=self._ssl, server_hostname=host
                    )
                else:
                    _, conn = await loop.create_connection(lambda: _Conn(loop), host, port)
        except _DeadlineExceeded:
            raise
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"connect to {host}:{port} timed out", request=request
            ) from None
        except OSError as exc:
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}", request=request) from exc
        pool.conns.add(conn)
        self.connections_opened += 1
        return conn, False


def _discard(pool: _Pool, conn: _Conn) -> None:
    pool.conns.discard(conn)
    conn.close()


@contextlib.contextmanager
def _scope_until(deadline_at: float | None) -> Iterator[None]:
    """The overall deadline around a wait that the connection's timer does not cover (the
    pool, connecting): ``_DeadlineExceeded`` when it passes."""
    if deadline_at is None:
        yield
        return
    try:
        with anyio.fail_after(max(0.0, deadline_at - anyio.current_time())):
            yield
    except TimeoutError as exc:
        if isinstance(exc, _DeadlineExceeded):
            raise
        raise _DeadlineExceeded() from None


def request_head(request: httpx.Request, body: bytes) -> bytes:
    """Request line and headers; Content-Length always reflects ``body`` (never chunked)."""
    target = request.url.raw_path
    if b" " in target:
        raise httpx.LocalProtocolError("space in the request target", request=request)
    parts = [request.method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
    has_length = False
    lines = 2  # request line and the blank line
    for name, value in request.headers.raw:
        lower = name.lower()
        if lower == b"transfer-encoding":
            continue
        if lower == b"content-length":
            has_length, value = True, str(len(body)).encode("ascii")
        parts += (name, b": ", value, b"\r\n")
        lines += 1
    if not has_length and (body or request.method in _BODY_METHODS):
        parts.append(b"Content-Length: " + str(len(body)).encode("ascii") + b"\r\n")
        lines += 1
    parts.append(b"\r\n")
    head = b"".join(parts)
    if head.count(b"\n") != lines or head.count(b"\r") != lines:
        raise httpx.LocalProtocolError("CR or LF inside a header", request=request)
    return head
