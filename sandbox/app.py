"""The sandbox ASGI app: routing, auth, event headers, limits, idempotency, faults, control.

Raw ASGI (no framework) for speed. ``create_app(config)`` is the only entry point; ``app.store``
is the in-memory store for in-process inspection.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import random
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson

from sandbox import errors, handlers
from sandbox.config import SandboxConfig, runtime_changes
from sandbox.errors import SandboxError
from sandbox.exports import Exports
from sandbox.forms import fingerprint, parse_form, parse_query
from sandbox.limits import Concurrency, OrderLocks, RateWindow
from sandbox.store import Store

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Handler = Callable[[handlers.Sandbox, handlers.ApiRequest], dict[str, Any]]

API_PREFIX = "/api/v2"
CONTROL_PREFIX = "/__sandbox"
EVENT_HEADERS = {
    "chargebee-event-actions": ("email", "webhook"),
    "chargebee-event-email": ("email",),
    "chargebee-event-webhook": ("webhook",),
}
"""Event headers (only ``all-disabled`` allowed) → the channels each suppresses."""
_JSON = [(b"content-type", b"application/json;charset=utf-8")]
DROPPED_BODY = b'{"order":'
"""What a ``drop_after_commit`` answer sends (of a declared 4,096 bytes) before the connection
is cut."""
_NO_HEADERS: dict[str, str] = {}
_REPLAYED = {"chargebee-idempotency-replayed": "true"}


class ConnectionDropped(Exception):
    """Raised mid-response to make the server abort the connection (``drop_after_commit``)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An API answer: status, JSON body, extra headers (lower-case names); ``dropped``: the
    write was committed, then the connection is to be cut mid-answer (``drop_after_commit``)."""

    status: int
    body: bytes
    headers: dict[str, str]
    dropped: bool = False


_DROPPED = Answer(200, b"", _NO_HEADERS, dropped=True)


@dataclass(slots=True)
class _Call:
    """One API request between admission and answer, and what it holds meanwhile."""

    entry: dict[str, Any]
    """Its request-log entry."""
    headers: dict[str, str]
    method: str
    key: str | None
    answer: Answer | None = None
    """Set when the request was refused before its handler."""
    inside: bool = False
    """Holds a concurrency slot."""
    lock: str | None = None
    """The order id it has locked."""
    handler: Handler | None = None
    req: handlers.ApiRequest | None = None
    pairs: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    is_write: bool = False


def _route(method: str, path: str) -> tuple[Handler, str | None, bool]:
    """(handler, path id, is_write) for an API path below ``/api/v2``; 404/405 otherwise."""
    parts = path.split("/")[1:]
    table: dict[str, Handler] = {}
    path_id: str | None = None
    if parts == ["orders", "import_order"]:
        table = {"POST": handlers.import_order}
    elif parts == ["orders"]:
        table = {"POST": handlers.create_order, "GET": handlers.list_orders}
    elif len(parts) == 2 and parts[0] == "orders" and parts[1]:
        table, path_id = {"POST": handlers.update_order, "GET": handlers.retrieve_order}, parts[1]
    elif len(parts) == 3 and parts[0] == "orders" and parts[2] == "delete" and parts[1]:
        table, path_id = {"POST": handlers.delete_order}, parts[1]
    elif parts == ["invoices"]:
        table = {"GET": handlers.list_invoices}
    elif len(parts) == 2 and parts[0] == "invoices" and parts[1]:
        table, path_id = {"GET": handlers.retrieve_invoice}, parts[1]
    elif parts == ["exports", "orders"]:
        table = {"POST": handlers.export_orders}
    elif len(parts) == 2 and parts[0] == "exports" and parts[1]:
        table, path_id = {"GET": handlers.retrieve_export}, parts[1]
    if not table:
        raise SandboxError(
            404, "resource_not_found", f"Sorry, {API_PREFIX}{path} is not an API path"
        )
    handler = table.get(method)
    if handler is None:
        raise SandboxError(405, "http_method_not_supported", f"{method} is not supported here")
    return handler, path_id, method == "POST"


async def _send(
    send: Send, status: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    raw = [*_JSON, (b"content-length", str(len(body)).encode())]
    if headers:
        raw.extend((k.encode(), v.encode()) for k, v in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _dumps(data: Any) -> bytes:
    """Compact UTF-8 JSON. orjson writes the same bytes as ``json.dumps(separators=(",", ":"),
    ensure_ascii=False)`` for the str/int/bool/None/list/dict answers the sandbox makes, at a
    fraction of the CPU (an answer's encoding was ~10% of the sandbox's CPU per import); what
    it refuses (non-str keys, ints over 64 bits, lone surrogates) goes through ``json``."""
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


class SandboxApp:
    """The ASGI callable. Attributes ``config``, ``store``, ``exports`` are live state.

    Args:
        config: Knobs; runtime ones can change later through ``reconfigure``.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config)
        self.exports = Exports()
        self.window = RateWindow(config.rate_limit_per_minute, config.window_s)
        self.concurrency = Concurrency(config.concurrency_limit)
        self.locks = OrderLocks()
        self.rng = random.Random(config.fault_seed)
        self._accepted_auth: str | None = None
        """The Authorization header last accepted (checked in full once per key)."""
        self.answered_now = 0
        """API requests served by ``answer_now`` (the server's short way), not through ASGI."""
        self.reconfigure()

    def reconfigure(self, **knobs: Any) -> SandboxConfig:
        """Change runtime knobs (fault_rate, latency_ms, limits, windows...); returns the config."""
        config = self.config.replace(**runtime_changes(knobs))
        if config.fault_seed != self.config.fault_seed:
            self.rng = random.Random(config.fault_seed)
        self.config = self.store.config = config
        self._accepted_auth = None  # the key may have changed
        self.window.limit, self.window.window_s = config.rate_limit_per_minute, config.window_s
        self.window.count_rejected = config.count_rejected_requests
        self.concurrency.limit = config.concurrency_limit
        return config

    def reset(self) -> None:
        """Forget orders, keys, exports, counters, logs and the limit window."""
        self.store.reset()
        self.exports.clear()
        self.window.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith(API_PREFIX + "/"):
            await self._api(scope, receive, send)
        elif path.startswith(CONTROL_PREFIX + "/"):
            await self._control(scope, receive, send)
        else:
            err = SandboxError(404, "resource_not_found", f"Sorry, {path} is not an API path")
            await _send(send, 404, _dumps(err.body()))

    # -- API ----------------------------------------------------------------------------
    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        arrival = time.time()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = await _read_body(receive)
        call = self._enter(
            arrival,
            scope["method"],
            scope["path"],
            scope.get("query_string", b""),
            headers,
            body,
            scope.get("scheme", "http"),
        )
        if call.answer is None and self.config.latency_ms:
            try:
                await asyncio.sleep(self.config.latency_ms / 1000)
            except BaseException:
                self._release(call)  # cancelled while holding a slot (and maybe a lock)
                raise
        answer = self._leave(call)
        if answer.dropped:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [*_JSON, (b"content-length", b"4096")],
                }
            )
            await send({"type": "http.response.body", "body": DROPPED_BODY, "more_body": True})
            raise ConnectionDropped(scope["path"])
        await _send(send, answer.status, answer.body, answer.headers)

    def answer_now(
        self,
        method: str,
        path: str,
        query_string: bytes,
        headers: dict[str, str],
        body: bytes,
        scheme: str,
    ) -> Answer | None:
        """Serve one API request (``path`` below ``/api/v2/``) without the ASGI layer: the same
        log entry, checks, effects and answer as the ASGI call with that request; None (with
        nothing done) when the answer has to wait (``latency_ms``), so the caller takes the
        ASGI way. ``headers``: lower-case names → values, latin-1 decoded."""
        if self.config.latency_ms:
            return None
        self.answered_now += 1
        return self._leave(
            self._enter(time.time(), method, path, query_string, headers, body, scheme)
        )

    def _enter(
        self,
        arrival: float,
        method: str,
        path: str,
        query_string: bytes,
        headers: dict[str, str],
        body: bytes,
        scheme: str,
    ) -> _Call:
        """Log the request and admit it (route, key, headers, limits, form, order lock); an
        error answer is set on the call when it is refused."""
        key = headers.get("chargebee-idempotency-key") if method == "POST" else None
        entry: dict[str, Any] = {
            "t": arrival,
            "method": method,
            "path": path,
            "status": None,
            "idempotency_key": key,
            "replayed": False,
            "business_entity_id": headers.get("chargebee-business-entity-id"),
            "order_id": None,
            "api_error_code": None,
        }
        store = self.store
        store.counts["requests"] += 1
        store.requests.append(entry)
        call = _Call(entry, headers, method, key)
        try:
            self._admit(call, path[len(API_PREFIX) :], query_string, body, scheme)
        except SandboxError as err:
            self._release(call)
            call.answer = self._refused(call, err)
        return call

    def _admit(self, call: _Call, path: str, query_string: bytes, body: bytes, scheme: str) -> None:
        method, headers, key = call.method, call.headers, call.key
        handler, path_id, is_write = _route(method, path)
        if not self._authorized(headers.get("authorization")):
            raise errors.auth_failed()
        suppressed_by = _event_headers(headers)
        business_entity = headers.get("chargebee-business-entity-id")
        if business_entity is not None and len(business_entity) > 50:
            raise errors.wrong_value(
                "chargebee-business-entity-id", "cannot be more than 50 characters"
            )
        if key is not None and (len(key) > 100 or not key):
            raise errors.wrong_value("chargebee-idempotency-key", "must be 1 to 100 characters")
        if not self.concurrency.enter():
            self.store.counts["concurrency_limited"] += 1
            raise errors.rate_limited(1)
        call.inside = True
        retry_after = self.window.admit()
        if retry_after is not None:
            self.store.counts["rate_limited"] += 1
            raise errors.rate_limited(retry_after)
        if method == "GET":
            pairs = parse_query(query_string)
        elif "json" in headers.get("content-type", ""):
            pairs = []  # Chargebee ignores JSON bodies: the first required param reads as blank
        else:
            pairs = parse_form(body)
        form = dict(pairs)
        call.entry["order_id"] = path_id if path_id is not None else form.get("id")
        req = handlers.ApiRequest(
            form,
            path_id,
            business_entity,
            f"{scheme}://{headers.get('host', '127.0.0.1')}",
            suppressed_by,
        )
        lock = (
            self._lock_key(handler, req) if is_write and self.config.lock_timeout_enabled else None
        )
        if lock is not None and not self.locks.acquire(lock):
            self.store.counts["lock_timeouts"] += 1
            raise errors.lock_timeout(lock)
        call.lock, call.handler, call.req, call.pairs, call.is_write = (
            lock,
            handler,
            req,
            pairs,
            is_write,
        )

    def _release(self, call: _Call) -> None:
        """Give back the order lock and the concurrency slot the call holds (once)."""
        if call.lock is not None:
            self.locks.release(call.lock)
            call.lock = None
        if call.inside:
            self.concurrency.leave()
            call.inside = False

    def _leave(self, call: _Call) -> Answer:
        """Run an admitted call's handler (idempotency, faults), release what it holds, and
        count the answer's status."""
        answer = call.answer
        if answer is None:
            assert call.handler is not None
            assert call.req is not None
            try:
                try:
                    answer = self._run(
                        call.handler,
                        call.req,
                        call.method,
                        call.key,
                        call.pairs,
                        call.entry,
                        call.is_write,
                    )
                finally:
                    self._release(call)
            except SandboxError as err:
                answer = self._refused(call, err)
            except ConnectionDropped:
                return _DROPPED
        status = answer.status
        call.entry["status"] = status
        self.store.counts[f"status_{status // 100}xx" if status != 429 else "status_429"] += 1
        return answer

    def _refused(self, call: _Call, err: SandboxError) -> Answer:
        call.entry["api_error_code"] = err.api_error_code
        if self.config.echo_headers_in_errors:
            err = _echo_headers(err, call.headers)
        return Answer(err.status, _dumps(err.body()), err.headers)

    def _run(
        self,
        handler: Handler,
        req: handlers.ApiRequest,
        method: str,
        key: str | None,
        pairs: list[tuple[str, str]],
        entry: dict[str, Any],
        is_write: bool,
    ) -> Answer:
        """Idempotency, faults and the handler itself: no awaits, so it is atomic."""
        fp = fingerprint(method, entry["path"], pairs) if key is not None else ""
        if key is not None:
            record = self.store.idempotent(key)
            if record is not None:
                if record.fingerprint != fp:
                    self.store.counts["idempotency_conflicts"] += 1
                    raise errors.idempotency_mismatch(key)
                self.store.counts["replays"] += 1
                entry["replayed"] = True
                return Answer(record.status, record.body, _REPLAYED)
        fault = self._draw_fault(is_write)
        if fault == "before_commit":
            self.store.counts["fault_before_commit"] += 1
            raise errors.temporary_error()
        sb = handlers.Sandbox(self.config, self.store, self.exports)
        payload = _dumps(handler(sb, req))
        if key is not None:
            self.store.remember(key, fp, 200, payload)
        if fault == "after_commit":
            self.store.counts["fault_after_commit"] += 1
            raise errors.internal_error()
        if fault == "drop_after_commit":
            self.store.counts["fault_drop_after_commit"] += 1
            raise ConnectionDropped(entry["path"])
        return Answer(200, payload, _NO_HEADERS)

    def _draw_fault(self, is_write: bool) -> str | None:
        config = self.config
        if config.fault_rate <= 0 or not (is_write or config.fault_on_reads):
            return None
        if self.rng.random() >= config.fault_rate:
            return None
        return self.rng.choice(config.faults)

    @staticmethod
    def _lock_key(handler: Handler, req: handlers.ApiRequest) -> str | None:
        if handler is handlers.import_order:
            return req.form.get("id") or None
        return req.path_id if handler is not handlers.export_orders else None

    def _authorized(self, header: str | None) -> bool:
        if header is not None and header == self._accepted_auth:
            return True  # the header accepted last time, for this very key
        if header is None or not header.lower().startswith("basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, _password = decoded.partition(":")
        if user != self.config.api_key:
            return False
        self._accepted_auth = header
        return True

    # -- control ------------------------------------------------------------------------
    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        path: str = scope["path"][len(CONTROL_PREFIX) :]
        method: str = scope["method"]
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if path == "/state" and method == "GET":
            flags = {k: query.get(k, "true") != "false" for k in ("orders", "events", "requests")}
            await _send(send, 200, _dumps(self.store.state(**flags)))
        elif path == "/reset" and method == "POST":
            self.reset()
            await _send(send, 200, b'{"reset":true}')
        elif path == "/config" and method in ("GET", "POST"):
            try:
                if method == "POST":
                    self.reconfigure(**json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                await _send(send, 400, _dumps({"message": str(exc)}))
                return
            await _send(send, 200, _dumps({"config": dataclasses.asdict(self.config)}))
        elif path.startswith("/downloads/") and path.endswith(".zip") and method == "GET":
            job = self.exports.by_token(path[len("/downloads/") : -len(".zip")])
            if job is None or job.completed_at is None:
                await _send(send, 404, b'{"message":"no such download"}')
            elif time.time() > job.completed_at + 4 * 3600:
                await _send(send, 403, b'{"message":"download link expired"}')
            else:
                data = job.zip_bytes or b""
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"application/zip"),
                            (b"content-length", str(len(data)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": data})
        else:
            await _send(send, 404, _dumps({"message": f"unknown control endpoint {method} {path}"}))


def _echo_headers(err: SandboxError, headers: dict[str, str]) -> SandboxError:
    """The same error with every request header (Authorization too, and the key it carries)
    pasted into its message, as a careless server's debug output might."""
    user = ""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        try:
            user = base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            user = ""
    echoed = json.dumps(headers, ensure_ascii=False)
    return SandboxError(
        err.status,
        err.api_error_code,
        f"{err.message} [debug: request headers {echoed}; api key {user}]",
        error_type=err.error_type,
        param=err.param,
        error_code=err.error_code,
        headers=err.headers,
    )


def _event_headers(headers: dict[str, str]) -> dict[str, str]:
    """Check the event headers; return channel → suppressing header."""
    suppressed: dict[str, str] = {}
    for name, channels in EVENT_HEADERS.items():
        value = headers.get(name)
        if value is None:
            continue
        if value != "all-disabled":
            raise errors.wrong_value(
                name, f"invalid value {value!r}; the only allowed value is all-disabled"
            )
        for channel in channels:
            suppressed.setdefault(channel, name)
    return suppressed


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def create_app(config: SandboxConfig | None = None) -> SandboxApp:
    """Build the sandbox ASGI app (``app.store`` is its in-memory store)."""
    return SandboxApp(config or SandboxConfig())
