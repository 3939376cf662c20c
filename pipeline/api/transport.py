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

import select
import socket
import ssl
from typing import Any

import anyio
import httptools
import httpx
from anyio.abc import ByteStream, SocketAttribute

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


class _Conn:
    """One connection and its parser; also the httptools callback object for its responses."""

    __slots__ = (
        "body",
        "done",
        "extra",
        "headers",
        "headers_done",
        "keep",
        "parser",
        "sock",
        "status",
        "stream",
        "version",
    )

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self.sock: Any = stream.extra(SocketAttribute.raw_socket, None)
        if self.sock is not None:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.parser: Any = httptools.HttpResponseParser(self)
        self.reset()

    def reset(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.status = 0
        self.version = "1.1"
        self.headers_done = self.done = self.extra = self.keep = False

    def stale(self) -> bool:
        """True when the idle socket was closed by the peer (EOF/data pending) or by the loop."""
        sock = self.sock
        if sock is None:
            return False
        fd = sock.fileno()
        if fd < 0:
            return True
        return bool(select.select([fd], [], [], 0)[0]) if fd < 1024 else _poll_readable(fd)

    # httptools callbacks
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
    ) -> RawResponse:
        """Send ``data`` (a request's head and body, never HEAD: the response must have a body
        or a length) to ``origin`` (scheme, host, port) on a pooled connection: (status,
        raw headers, body, HTTP version) of the fully read response.

        ``handle_async_request`` is this plus httpx's request and response models; a caller
        that builds the request bytes itself (``ChargebeeClient`` for the loopback API) skips
        them. Failures raise the same httpx exceptions (``request`` is attached when given).
        With ``cut_at``, a body longer than that is not read on (``ResponseCut``; at most
        ``cut_at`` plus one response head is ever held), as the httpx path stops its stream.
        """
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _Pool(self._size)
        try:
            pool.sem.acquire_nowait()
        except anyio.WouldBlock:
            try:
                with anyio.fail_after(timeouts.get("pool")):
                    await pool.sem.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no connection free in time", request=request) from None
        try:
            conn, reused = await self._checkout(pool, origin, timeouts.get("connect"), request)
            try:
                response, keep = await self._exchange(conn, reused, data, timeouts, request, cut_at)
            except BaseException:
                await _discard(pool, conn)
                raise
            if keep and conn in pool.conns:  # not closed by an aclose() meanwhile
                pool.idle.append(conn)
            else:
                await _discard(pool, conn)
        finally:
            pool.sem.release()
        return response

    async def aclose(self) -> None:
        """Close every connection (idle and in use); a later request opens new ones."""
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            for conn in list(pool.conns):
                await _discard(pool, conn)
            pool.idle.clear()

    async def _checkout(
        self, pool: _Pool, origin: Origin, limit: float | None, request: httpx.Request | None
    ) -> tuple[_Conn, bool]:
        while pool.idle:
            conn = pool.idle.pop()
            if not conn.stale():
                return conn, True
            await _discard(pool, conn)
        scheme, host, port = origin
        try:
            with anyio.fail_after(limit):
                stream: ByteStream
                if scheme == "https":
                    stream = await anyio.connect_tcp(
                        host,
                        port,
                        ssl_context=self._ssl,
                        tls_hostname=host,
                        tls_standard_compatible=False,
                    )
                else:
                    stream = await anyio.connect_tcp(host, port)
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"connect to {host}:{port} timed out", request=request
            ) from None
        except (OSError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}", request=request) from exc
        conn = _Conn(stream)
        pool.conns.add(conn)
        self.connections_opened += 1
        return conn, False

    async def _exchange(
        self,
        conn: _Conn,
        reused: bool,
        data: bytes,
        timeouts: dict[str, float | None],
        request: httpx.Request | None,
        cut_at: int | None = None,
    ) -> tuple[RawResponse, bool]:
        stream = conn.stream
        conn.reset()
        dropped = "server closed the kept-alive connection; the request was not resent"
        try:
            write_timeout = timeouts.get("write")
            if write_timeout is None:
                await stream.send(data)
            else:
                with anyio.fail_after(write_timeout):
                    await stream.send(data)
        except TimeoutError:
            raise httpx.WriteTimeout("write timed out", request=request) from None
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            if reused:
                raise httpx.RemoteProtocolError(dropped, request=request) from exc
            raise httpx.WriteError(f"{type(exc).__name__}: {exc}", request=request) from exc
        read_timeout = timeouts.get("read")
        received = 0
        limit = self._max_body + MAX_HEAD_BYTES
        parser = conn.parser
        while not conn.done:
            try:
                if read_timeout is None:
                    chunk = await stream.receive()
                else:
                    with anyio.fail_after(read_timeout):
                        chunk = await stream.receive()
            except TimeoutError:
                raise httpx.ReadTimeout("read timed out", request=request) from None
            except anyio.EndOfStream:
                if conn.headers_done and conn.until_eof():
                    conn.done, conn.extra = True, True  # delimited by close: never reused
                    break
                if received:
                    msg = "peer closed connection without sending complete message body"
                else:
                    msg = dropped if reused else "server disconnected without sending a response"
                raise httpx.RemoteProtocolError(msg, request=request) from None
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                if reused and not received:
                    raise httpx.RemoteProtocolError(dropped, request=request) from exc
                raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from exc
            received += len(chunk)
            try:
                parser.feed_data(chunk)
            except httptools.HttpParserUpgrade:
                raise httpx.RemoteProtocolError("unexpected upgrade", request=request) from None
            except httptools.HttpParserError as exc:
                if not conn.done:
                    raise httpx.RemoteProtocolError(
                        f"malformed response: {exc}", request=request
                    ) from None
                conn.extra = True
            if not conn.headers_done and received > MAX_HEAD_BYTES:
                raise httpx.RemoteProtocolError("response head too large", request=request)
            if cut_at is not None and received > cut_at + MAX_HEAD_BYTES and conn.headers_done:
                raise ResponseCut(conn.status, conn.headers)  # the body is past cut_at
            if received > limit:
                raise httpx.RemoteProtocolError("response body too large", request=request)
        status, version = conn.status, conn.version
        if status == 101:
            raise httpx.RemoteProtocolError("unexpected 101 Switching Protocols", request=request)
        keep = conn.keep and not conn.extra
        return (status, conn.headers, b"".join(conn.body), version), keep


async def _discard(pool: _Pool, conn: _Conn) -> None:
    pool.conns.discard(conn)
    with anyio.CancelScope(shield=True):
        await anyio.aclose_forcefully(conn.stream)


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
