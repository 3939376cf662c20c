"""The Chargebee HTTP client: one pooled httpx.AsyncClient, auth, headers, error translation.

Every method makes exactly one HTTP attempt; retries live in ``api.retry`` and pacing in
``api.ratelimit``. httpx and Chargebee errors become ``pipeline.errors`` exceptions in one place
(``error_from_response`` / ``_transport_error``). Every attempt is bounded: an overall deadline
(``connect_timeout + read_timeout``), a cap on the response size, no cookie jar. Text from the
server is scrubbed of the key (every form of it) and made printable before anyone sees it.
"""

from __future__ import annotations

import base64
import email.utils
import json
import math
import re
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.cookiejar import CookieJar, CookiePolicy
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import anyio
import httpx
import orjson
import truststore

from pipeline import __version__
from pipeline.api.encode import form_body, to_form, to_query
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.transport import LeanTransport, Origin, ResponseCut, request_head
from pipeline.config import Settings, is_loopback
from pipeline.errors import (
    ApiError,
    AuthError,
    ConfigError,
    PermanentApiError,
    RateLimitedError,
    TransientApiError,
    UnexpectedResponseError,
)

__all__ = [
    "IDEMPOTENCY_HEADER",
    "REPLAYED_HEADER",
    "USER_AGENT",
    "ApiResponse",
    "ChargebeeClient",
    "error_from_response",
    "parse_retry_after",
    "printable",
    "scrub",
]

USER_AGENT = f"order-import/{__version__}"
IDEMPOTENCY_HEADER = "chargebee-idempotency-key"
REPLAYED_HEADER = "chargebee-idempotency-replayed"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
"""Retried like the official SDKs do (FACTS §2.2); 429 is handled separately."""
MAX_ERROR_MESSAGE = 500
"""Error text kept from a response body (HTML error pages can be long)."""
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
"""Largest API answer read (a page of 100 orders is well under 1 MiB); the rest is not read."""
MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
"""Largest export file downloaded."""
REDACTED = "***"
URL_CACHE = 64
"""Endpoint paths whose absolute URL a client keeps parsed (``ChargebeeClient._url``)."""


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """One successful (2xx) answer."""

    status: int
    """HTTP status."""
    body: dict[str, Any]
    """Parsed JSON body, e.g. ``{"order": {...}}``."""
    replayed: bool
    """``chargebee-idempotency-replayed: true``: Chargebee sent the stored answer of an earlier
    request with the same idempotency key."""
    latency_ms: float
    """Time from sending the request to reading the whole response."""
    started_at: float
    """Unix time the request was sent."""


class _UnreadCookies(httpx.Cookies):
    """The client's cookie jar, never filled: httpx would parse every answer's ``Set-Cookie``
    only for ``_NoCookies`` to drop it (~12% of a request's CPU in the send-path profile)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        """Ignore the answer's cookies."""


class _NoCookies(CookiePolicy):
    """A cookie policy that stores and returns nothing: the client keeps no cookie jar."""

    netscape = True
    rfc2965 = False
    hide_cookie2 = True

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: Any) -> bool:
        return False

    def path_return_ok(self, path: str, request: Any) -> bool:
        return False


def tls_context(settings: Settings) -> ssl.SSLContext | bool:
    """The TLS verification httpx uses: the OS certificate store (``truststore``) by default, so
    a corporate TLS-inspecting proxy's CA is trusted; ``use_truststore = false`` = certifi."""
    if settings.use_truststore:
        return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return True


def _lean_mounts(settings: Settings) -> dict[str, LeanTransport]:
    """LeanTransport for the API's own origin when it is loopback (the sandbox) and
    ``http_transport = "lean"``; every other URL keeps httpx's transport (env proxies, OS trust
    store). LeanTransport stays because it gave >= 1.5x end-to-end rows/s on sandbox rehearsals
    (``bench/bench_transport.py``)."""
    url = urlsplit(settings.base_url)
    if settings.http_transport != "lean" or not is_loopback(url.hostname):
        return {}
    origin = f"{url.scheme}://{url.netloc.rpartition('@')[2]}"
    size = settings.concurrency
    return {origin: LeanTransport(max_connections=size, max_response_bytes=MAX_DOWNLOAD_BYTES)}


def _secret_forms(key: str) -> tuple[str, ...]:
    """Every form in which a server might echo the key back: raw, the Basic token, url-encoded,
    JSON-escaped. Longest first, so a form containing another is replaced whole."""
    token = base64.b64encode(f"{key}:".encode()).decode("ascii")
    forms = {
        key,
        token,
        f"{key}:",
        quote(key, safe=""),
        quote_plus(key),
        quote(f"{key}:", safe=""),
        quote(token, safe=""),
        json.dumps(key)[1:-1],
    }
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))


def _checked_key(settings: Settings) -> str:
    key = settings.require_api_key().reveal()
    if not (key.isascii() and key.isprintable()) or key != key.strip():
        raise ConfigError(
            "the API key contains characters other than printable ASCII "
            "(a Chargebee key never does; was it copied with a stray byte or space?)",
            hint="check CHARGEBEE_API_KEY or api_key in the config file",
        )
    return key


def _parse_object(data: bytes) -> Any:
    """An answer's JSON (None when it is not JSON). orjson first (~7 µs for an order answer,
    ``json`` ~19 µs); what orjson refuses and ``json`` reads (NaN, UTF-16, a BOM) is read by
    ``json``. One difference is accepted: an integer over 64 bits, which Chargebee never sends
    (its amounts and timestamps are 64-bit), reads as a float (docs/client.md)."""
    try:
        return orjson.loads(data)
    except ValueError:
        pass
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # nested deeper than the reader recurses: not an answer
        return None


class ChargebeeClient:
    """Async client for the order endpoints; use as ``async with ChargebeeClient(s) as c``.

    Args:
        settings: resolved settings (base URL, key, timeouts, concurrency, event headers,
            ``trust_env`` and ``use_truststore``).
        transport: an httpx transport to use instead of the network (tests: MockTransport).

    Raises:
        ConfigError: no API key or one that is not printable ASCII, plain http to a
            non-loopback host, or a live site without ``--live``.
    """

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        settings.check_target()
        key = _checked_key(settings)
        token = base64.b64encode(f"{key}:".encode()).decode("ascii")
        self._authorization = f"Basic {token}"
        self._secrets = _secret_forms(key)
        static = [("Accept", "application/json"), ("User-Agent", USER_AGENT)]
        if settings.events_disabled:
            static += [
                ("chargebee-event-email", "all-disabled"),
                ("chargebee-event-webhook", "all-disabled"),
            ]
        if settings.business_entity_id:
            static.append(("chargebee-business-entity-id", settings.business_entity_id))
        self._static_headers = tuple(static)
        self._urls: dict[str, httpx.URL] = {}
        self._deadline = settings.connect_timeout + settings.read_timeout
        pool = settings.concurrency
        mounts = None if transport is not None else _lean_mounts(settings)
        self._http = httpx.AsyncClient(
            base_url=settings.base_url + "/",
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            verify=tls_context(settings),
            follow_redirects=False,
            trust_env=settings.trust_env,
            cookies=CookieJar(policy=_NoCookies()),
            transport=transport,
            mounts=dict(mounts) if mounts else None,
        )
        self._http._cookies = _UnreadCookies(CookieJar(policy=_NoCookies()))
        self._lean: LeanTransport | None = None
        self._lean_origin: Origin = ("", "", 0)
        self._lean_headers = b""
        self._lean_shapes: frozenset[tuple[str, bool, bool, bool]] = frozenset()
        self._targets: dict[str, bytes] = {}
        self._timeouts: dict[str, float | None] = self._http.timeout.as_dict()
        if mounts:
            self._direct(settings, mounts)

    async def __aenter__(self) -> ChargebeeClient:
        await self._http.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.__aexit__(*exc_info)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        """Close the connection pool (``async with`` does this for you)."""
        await self._http.aclose()

    def safe_text(self, text: str) -> str:
        """Server text (from an answer that is not an error) with the key scrubbed in every form
        and made printable, for a message that is stored or shown."""
        return printable(scrub(text, self._secrets))

    # -- headers -----------------------------------------------------------------------------

    def _headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        # A NEW dict per request: the SDK pitfall of a shared, mutated dict sending one
        # idempotency key with two bodies (FACTS §2.4.2) cannot happen here (nor on the
        # direct path, which writes each request's key into that request's own bytes).
        headers = dict(self._static_headers)
        headers["Authorization"] = self._authorization
        if idempotency_key is not None:
            _check_idempotency_key(idempotency_key)
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        return headers

    def _url(self, path: str) -> httpx.URL:
        """The absolute URL of an endpoint path, parsed once per path (up to ``URL_CACHE``
        paths; per-order paths beyond that are parsed each time): httpx re-parses a relative
        path against ``base_url`` on every request, a tenth of the send path's CPU."""
        url = self._urls.get(path)
        if url is None:
            url = httpx.URL(str(self._http.base_url) + path.lstrip("/"))
            if len(self._urls) < URL_CACHE:
                self._urls[path] = url
        return url

    # -- the direct path to LeanTransport (loopback API only) -------------------------------

    def _direct(self, settings: Settings, mounts: Mapping[str, LeanTransport]) -> None:
        """Set up the direct path: requests to the loopback API's origin that LeanTransport
        serves are written as bytes here and handed to ``LeanTransport.round_trip``, without
        httpx's request and response models, client layers or a second header normalisation
        (about a third of the send path's CPU per row in ``bench/profile_send.py``).

        The bytes must be those httpx would have sent: each request shape is checked once
        here against ``build_request`` + ``request_head`` (the httpx path through the same
        transport) and only the shapes that match byte for byte take the direct path; every
        other request (queries, other origins, a key that is not plain ASCII) keeps httpx.
        """
        url = httpx.URL(settings.base_url)
        if url.userinfo:
            return
        self._lean = next(iter(mounts.values()))
        self._lean_origin = (
            url.scheme,
            url.host,
            url.port or (443 if url.scheme == "https" else 80),
        )
        probe = self._http.build_request("GET", self._url("probe"), headers=self._headers())
        head = request_head(probe, b"")
        self._lean_headers = head[head.index(b"\r\n") + 2 : -2]
        shapes = [
            ("POST", True, True, False),
            ("POST", False, True, False),
            ("GET", False, False, False),
            ("GET", False, False, True),
        ]
        body = b"a=b"
        # A list query with every kind of character a filter value may hold (brackets,
        # quotes, commas, spaces, %, +, &, =, non-ASCII): the direct path writes it as
        # ``form_body`` does, httpx re-quotes ``urlencode``'s output; both must agree.
        probe_query = [
            ("id[in]", '["a b","c,d","e%f","g+h","i&j=k","ø"]'),
            ("limit", "100"),
            ("offset", "x/y?z"),
        ]
        for method, keyed, form, listing in shapes:
            key = "probe-key" if keyed else None
            headers = self._headers(key)
            if form:
                headers["Content-Type"] = FORM_CONTENT_TYPE
            content = body if form else None
            query = probe_query if listing else None
            params = httpx.QueryParams(tuple(query)) if query is not None else None
            request = self._http.build_request(
                method, self._url("orders"), content=content, params=params, headers=headers
            )
            expected = request_head(request, content or b"")
            encoded = form_body(query) if query is not None else None
            if self._direct_head(method, "orders", content, key, encoded) == expected:
                self._lean_shapes |= {(method, keyed, form, listing)}
        if not self._lean_shapes:
            self._lean = None

    def _direct_head(
        self,
        method: str,
        path: str,
        content: bytes | None,
        key: str | None,
        query: bytes | None = None,
    ) -> bytes | None:
        """The request line and headers httpx would send, or None when this request must go
        through httpx (a shape not verified in ``_direct``, or a key that is not plain)."""
        target = self._targets.get(path)
        if target is None:
            target = self._url(path).raw_path
            if b" " in target:
                return None
            if len(self._targets) < URL_CACHE:
                self._targets[path] = target
        if query:
            target += b"?" + query
        parts = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n", self._lean_headers]
        if key is not None:
            if not (key.isascii() and key.isprintable()):
                return None
            parts += (IDEMPOTENCY_HEADER.encode("ascii"), b": ", key.encode("ascii"), b"\r\n")
        if content is not None:
            parts.append(_FORM_CONTENT_TYPE_LINE)
        if content or method == "POST":
            parts += (b"Content-Length: ", str(len(content or b"")).encode("ascii"), b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    async def _direct_exchange(
        self, data: bytes, limit: int
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        """``_exchange`` for the direct path: (status, raw headers, body, whether the body was
        cut at ``limit``), under the same overall deadline and error translation. A body with
        a ``Content-Encoding`` is decoded by httpx's own response model, as on the httpx path."""
        assert self._lean is not None
        try:
            # The overall deadline rides on the connection's own timer (with the write and read
            # timeouts): no cancel scope per request.
            status, headers, body, _ = await self._lean.round_trip(
                self._lean_origin, data, self._timeouts, cut_at=limit, deadline=self._deadline
            )
            if any(name.lower() == b"content-encoding" for name, _ in headers):
                decoded = httpx.Response(status, headers=headers, content=body)
                headers, body = decoded.headers.raw, decoded.content
        except ResponseCut as cut:
            return cut.status, cut.headers, b"", True
        except TimeoutError:
            raise self._deadline_error() from None
        except httpx.RequestError as exc:
            raise _transport_error(exc, self._secrets) from exc
        if len(body) > limit:
            return status, headers, b"", True
        return status, headers, body, False

    def _deadline_error(self) -> TransientApiError:
        return TransientApiError(
            f"timeout: no complete answer within {self._deadline:g} s "
            "(connect_timeout + read_timeout)",
            status_code=None,
            api_error_code="timeout",
        )

    # -- one attempt -------------------------------------------------------------------------

    async def _exchange(
        self, request: httpx.Request, limit: int
    ) -> tuple[httpx.Response, bytes, bool]:
        """Send ``request`` and read at most ``limit`` bytes of the answer, all within the
        overall deadline: (response, body, whether the body was cut at ``limit``)."""
        try:
            with anyio.fail_after(self._deadline):
                response = await self._http.send(request, stream=True)
                try:
                    chunks: list[bytes] = []
                    size = 0
                    cut = False
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > limit:
                            cut = True
                            break
                        chunks.append(chunk)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise self._deadline_error() from None
        except httpx.RequestError as exc:
            raise _transport_error(exc, self._secrets) from exc
        return response, b"".join(chunks), cut

    async def _send(
        self,
        method: str,
        path: str,
        *,
        form: Iterable[tuple[str, str]] | None = None,
        query: Iterable[tuple[str, str]] | None = None,
        idempotency_key: str | None = None,
    ) -> ApiResponse:
        content = form_body(form) if form is not None else None
        pairs = list(query) if query is not None else None
        head = None
        if self._lean is not None:
            shape = (method, idempotency_key is not None, content is not None, pairs is not None)
            if shape in self._lean_shapes:
                if idempotency_key is not None:
                    _check_idempotency_key(idempotency_key)
                encoded = form_body(pairs) if pairs is not None else None
                head = self._direct_head(method, path, content, idempotency_key, encoded)
        headers: Mapping[str, str]
        started_at = time.time()
        t0 = time.perf_counter()
        if head is not None:
            status, raw, data, cut = await self._direct_exchange(
                head + content if content is not None else head, MAX_RESPONSE_BYTES
            )
            latency_ms = (time.perf_counter() - t0) * 1000.0
            headers = _RawHeaders(raw)
        else:
            request_headers = self._headers(idempotency_key)
            if content is not None:
                request_headers["Content-Type"] = FORM_CONTENT_TYPE
            params = httpx.QueryParams(tuple(pairs)) if pairs is not None else None
            request = self._http.build_request(
                method, self._url(path), content=content, params=params, headers=request_headers
            )
            started_at = time.time()
            t0 = time.perf_counter()
            response, data, cut = await self._exchange(request, MAX_RESPONSE_BYTES)
            latency_ms = (time.perf_counter() - t0) * 1000.0
            status = response.status_code
            headers = response.headers
        if not 200 <= status < 300:
            raise error_from_response(status, data, headers, secrets=self._secrets)
        if cut:
            raise UnexpectedResponseError(
                f"HTTP {status} with a body over {MAX_RESPONSE_BYTES:,} bytes (not read)",
                status_code=status,
                api_error_code="response_too_large",
            )
        body = _parse_object(data)
        if not isinstance(body, dict):
            raise UnexpectedResponseError(
                f"HTTP {status} with a body that is not a JSON object",
                status_code=status,
                api_error_code="invalid_response",
            )
        replayed = headers.get(REPLAYED_HEADER, "").strip().lower() == "true"
        return ApiResponse(status, body, replayed, latency_ms, started_at)

    # -- endpoints ----------------------------------------------------------------------------

    async def import_order(self, params: Mapping[str, Any], *, idempotency_key: str) -> ApiResponse:
        """``POST /orders/import_order`` (one attempt). Body ``{"order": {...}}``.

        Raises:
            UnexpectedResponseError: a 2xx without an ``order`` object (whether the order was
                created is unknown: look it up).
        """
        response = await self._send(
            "POST", "orders/import_order", form=to_form(params), idempotency_key=idempotency_key
        )
        _resource(response, "order")
        return response

    async def update_order(
        self, order_id: str, params: Mapping[str, Any], *, idempotency_key: str
    ) -> ApiResponse:
        """``POST /orders/{id}`` (one attempt). Body ``{"order": {...}}``.

        Raises:
            UnexpectedResponseError: a 2xx without an ``order`` object.
        """
        response = await self._send(
            "POST",
            f"orders/{_segment(order_id)}",
            form=to_form(params),
            idempotency_key=idempotency_key,
        )
        _resource(response, "order")
        return response

    async def retrieve_order(self, order_id: str) -> dict[str, Any] | None:
        """``GET /orders/{id}``: the order dict, or None on 404 ``resource_not_found``.

        Raises:
            UnexpectedResponseError: a 2xx without an order, or with an order of another id.
        """
        try:
            response = await self._send("GET", f"orders/{_segment(order_id)}")
        except PermanentApiError as err:
            if err.status_code == 404 and err.api_error_code == "resource_not_found":
                return None
            raise
        order = _resource(response, "order")
        if str(order.get("id")) != order_id:
            raise UnexpectedResponseError(
                f"asked for order {order_id!r}, the answer is about "
                f"{self.safe_text(str(order.get('id')))[:100]!r}",
                status_code=response.status,
                api_error_code="invalid_response",
            )
        return order

    async def list_page(
        self,
        resource: str,
        filters: Mapping[str, Any],
        *,
        limit: int = 100,
        offset: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a list endpoint (``GET /orders``, ``GET /invoices``): (the ``resource``
        objects, ``next_offset`` or None on the last page).

        Entries that are not ``{resource: {...}}`` objects are dropped; every string of the
        others is scrubbed of the key.

        Raises:
            UnexpectedResponseError: ``list`` is present but not a list, or ``next_offset`` is
                not text (a hostile or broken answer: paging cannot go on safely).
        """
        if not 1 <= limit <= 100:
            raise ValueError("limit must be 1..100 (FACTS §8)")
        query = [*to_query(filters), ("limit", str(limit))]
        if offset is not None:
            query.append(("offset", offset))
        response = await self._send("GET", resource + "s", query=query)
        entries = response.body.get("list")
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            raise UnexpectedResponseError(
                f"HTTP {response.status} from GET /{resource}s: 'list' is not a list",
                status_code=response.status,
                api_error_code="invalid_response",
            )
        found = [
            e[resource]
            for e in entries
            if isinstance(e, dict) and isinstance(e.get(resource), dict)
        ]
        # Scrubbed of the key (every string, nested too): ids and names from a list answer end
        # up in messages, the ledger and seed files. Walking every string of 100 records costs
        # ~10 ms of CPU a page, so the page is first searched whole, re-encoded as JSON (in C):
        # a string holding a key form holds it JSON-escaped in that text, keys of objects too.
        # Only a page where some form shows up (or that cannot be re-encoded) is walked.
        try:
            text = json.dumps(found, ensure_ascii=False, check_circular=False)
        except (ValueError, TypeError, RecursionError):
            text = None
        if text is None or any(json.dumps(f)[1:-1] in text for f in self._secrets):
            found = [_scrub_all(e, self._secrets) for e in found]
        next_offset = response.body.get("next_offset")
        if next_offset in (None, ""):
            return found, None
        if not isinstance(next_offset, str | int) or isinstance(next_offset, bool):
            raise UnexpectedResponseError(
                f"HTTP {response.status} from GET /{resource}s: next_offset is not text",
                status_code=response.status,
                api_error_code="invalid_response",
            )
        return found, self.safe_text(str(next_offset))[:2000]

    async def list_orders_page(
        self, filters: Mapping[str, Any], *, limit: int = 100, offset: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ``GET /orders``: (orders, next_offset or None on the last page)."""
        return await self.list_page("order", filters, limit=limit, offset=offset)

    async def list_invoices_page(
        self, filters: Mapping[str, Any], *, limit: int = 100, offset: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ``GET /invoices``: (invoices, next_offset or None on the last page)."""
        return await self.list_page("invoice", filters, limit=limit, offset=offset)

    async def list_orders(
        self,
        filters: Mapping[str, Any],
        *,
        limit: int = 100,
        limiter: RateLimiter | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield every order matching ``filters``, following ``next_offset`` until it is absent.

        Each page is one attempt; pass ``limiter`` to spend the rate budget per page.

        Raises:
            UnexpectedResponseError: the server sent an offset it had sent before (a loop).
        """
        offset: str | None = None
        seen: set[str] = set()
        while True:
            if limiter is None:
                orders, offset = await self.list_orders_page(filters, limit=limit, offset=offset)
            else:
                async with limiter.slot():
                    orders, offset = await self.list_orders_page(
                        filters, limit=limit, offset=offset
                    )
            for order in orders:
                yield order
            if offset is None:
                return
            if offset in seen:
                raise UnexpectedResponseError(
                    "the order list repeats a next_offset: paging stopped",
                    api_error_code="invalid_response",
                )
            seen.add(offset)

    async def export_orders(
        self, filters: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /exports/orders`` (one attempt): the export dict (``status: in_process``)."""
        response = await self._send(
            "POST", "exports/orders", form=to_query(filters), idempotency_key=idempotency_key
        )
        return _resource(response, "export")

    async def retrieve_export(self, export_id: str) -> dict[str, Any]:
        """``GET /exports/{id}``: the export dict (``download`` present once completed)."""
        response = await self._send("GET", f"exports/{_segment(export_id)}")
        return _resource(response, "export")

    async def download(self, url: str) -> bytes:
        """Fetch an export's ``download_url``. It is public: NO Authorization header is sent.

        Raises:
            PermanentApiError: a non-https URL to a non-loopback host, or a 4xx answer.
        """
        parts = urlsplit(url)
        loopback = is_loopback(parts.hostname)
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise PermanentApiError(
                "export download URL must be https (http only for loopback hosts)",
                api_error_code="invalid_download_url",
            )
        headers = {"Accept": "*/*", "User-Agent": USER_AGENT}
        request = self._http.build_request("GET", url, headers=headers)
        response, data, cut = await self._exchange(request, MAX_DOWNLOAD_BYTES)
        if not 200 <= response.status_code < 300:
            raise error_from_response(
                response.status_code, data, response.headers, secrets=self._secrets
            )
        if cut:
            raise PermanentApiError(
                f"export download is larger than {MAX_DOWNLOAD_BYTES:,} bytes",
                status_code=response.status_code,
                api_error_code="response_too_large",
            )
        return data


_FORM_CONTENT_TYPE_LINE = f"Content-Type: {FORM_CONTENT_TYPE}\r\n".encode("ascii")


def _check_idempotency_key(key: str) -> None:
    if not key or len(key) > 100:
        raise ValueError("idempotency keys are 1..100 characters (FACTS §3)")


class _RawHeaders(Mapping[str, str]):
    """Response headers as LeanTransport read them, looked up like ``httpx.Headers`` (names
    case-insensitive, repeated headers joined with ``, ``) without building one per answer."""

    __slots__ = ("_raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw

    def __getitem__(self, name: str) -> str:
        value: str | None = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k.decode("latin-1").lower() for k, _ in self._raw))

    def __len__(self) -> int:
        return len({k.lower() for k, _ in self._raw})

    def get(self, name: str, default: Any = None) -> Any:
        """``Mapping.get`` without raising and catching a ``KeyError`` when the header is
        absent (the replay header is looked up on every answer, and is usually absent)."""
        wanted = name.lower().encode("latin-1")
        values = [v.decode("latin-1") for k, v in self._raw if k.lower() == wanted]
        return ", ".join(values) if values else default


def _segment(value: str) -> str:
    """One URL path segment: everything escaped (``/``, ``?``, ``#``, spaces...), and the dot
    segments ``.`` and ``..`` too, which URL resolution would otherwise drop (``orders/.``
    would become ``orders/``, the list/create endpoint)."""
    if not value:
        raise PermanentApiError("an empty id cannot be looked up", api_error_code="invalid_id")
    if value in (".", ".."):
        return value.replace(".", "%2E")
    return quote(value, safe="")


def _resource(response: ApiResponse, name: str) -> dict[str, Any]:
    value = response.body.get(name)
    if not isinstance(value, dict):
        raise UnexpectedResponseError(
            f"HTTP {response.status} without an {name!r} object in the body",
            status_code=response.status,
            api_error_code="invalid_response",
        )
    return value


# -- error translation (the one place) -----------------------------------------------------


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret (the API key in each of its forms) in ``text`` with ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _scrub_all(data: Any, secrets: Iterable[str]) -> Any:
    """``data`` (parsed JSON) with every string in it scrubbed, keys and nested values too."""
    if isinstance(data, str):
        return scrub(data, secrets)
    if isinstance(data, Mapping):
        return {scrub(str(k), secrets): _scrub_all(v, secrets) for k, v in data.items()}
    if isinstance(data, list):
        return [_scrub_all(v, secrets) for v in data]
    return data


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters (escape sequences, bidi overrides, CR,
    newlines...) are shown escaped (``\\x1b``) instead of acting."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


_DELAY_SECONDS = re.compile(r"[0-9]+")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds to wait, as RFC 9110 §10.2.3 defines it: a whole number of
    seconds, or an HTTP-date. Anything else, and any wait that is not positive (``0``, ``-3``,
    ``nan``, ``1.5``, a date in the past), is None: treated as absent, so the normal backoff
    applies and every 429 costs real time from the run's throttle budget.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELAY_SECONDS.fullmatch(text):
        seconds = float(int(text[:12]))  # 12 digits: far beyond any budget, never an overflow
        return seconds if seconds > 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    wait = when.timestamp() - (time.time() if now is None else now)
    return wait if math.isfinite(wait) and wait > 0 else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    if isinstance(headers, httpx.Headers):
        found: str | None = headers.get(name)
        return found
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def _text(body: bytes | str | None) -> str:
    if body is None:
        return ""
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else body


def _synthetic_code(text: str) -> str:
    # What the official SDKs do with a body that is not Chargebee JSON (FACTS §2.1).
    if "503" in text:
        return "internal_temporary_error"
    if "504" in text:
        return "gateway_timeout"
    return "internal_error"


def error_from_response(
    status: int,
    body: bytes | str | Mapping[str, Any] | None,
    headers: Mapping[str, str],
    *,
    secrets: Iterable[str] = (),
) -> ApiError:
    """Translate an error answer into the exception tree (never raises it).

    * 429 → ``RateLimitedError`` (``retry_after`` from the header, seconds);
    * 500/502/503/504 → ``TransientApiError``; 401/403 → ``AuthError``;
    * any other status → ``PermanentApiError`` (not retried blindly).

    JSON bodies give ``api_error_code``, ``param``, ``type`` and the legacy ``error_code`` /
    ``error_msg`` / ``error_param``. Other bodies get the SDKs' synthetic code: text containing
    "503" → ``internal_temporary_error``, "504" → ``gateway_timeout``, else ``internal_error``;
    ``status_code`` stays the real HTTP status. ``secrets`` are scrubbed from every string of
    the body (message, param, codes, nested values) and from raw text before any reformatting;
    every field is made printable.
    """
    data: Mapping[str, Any] | None = None
    secrets = tuple(secrets)
    if isinstance(body, Mapping):
        data = body
        raw = ""
    else:
        raw = scrub(_text(body), secrets)  # before any reformatting: whitespace is kept
        try:
            parsed = json.loads(raw) if raw.strip() else None
        except (ValueError, RecursionError):
            parsed = None
        data = parsed if isinstance(parsed, Mapping) else None
    if data is not None:
        data = _scrub_all(data, secrets)
    if data is not None and (data.get("api_error_code") or data.get("error_code")):
        code = str(data.get("api_error_code") or data.get("error_code"))
        message = str(data.get("message") or data.get("error_msg") or f"HTTP {status}")
        param = data.get("param") or data.get("error_param")
        error_code = data.get("error_code")
        error_type = data.get("type")
    else:
        raw = raw or json.dumps(data, default=str)
        code = _synthetic_code(raw)
        snippet = " ".join(raw.split())[:MAX_ERROR_MESSAGE]
        message = f"HTTP {status} from the API: {snippet or '(empty body)'}"
        param = error_code = error_type = None
    fields: dict[str, Any] = {
        "status_code": status,
        "api_error_code": _field(code),
        "param": _field(param),
        "error_code": _field(error_code),
        "error_type": _field(error_type),
    }
    message = printable(scrub(message, secrets))[: MAX_ERROR_MESSAGE * 4]
    if status == 429:
        retry_after = parse_retry_after(_header(headers, "Retry-After"))
        return RateLimitedError(message, retry_after=retry_after, **fields)
    if status in TRANSIENT_STATUSES:
        return TransientApiError(message, **fields)
    if status in (401, 403):
        return AuthError(message, **fields)
    return PermanentApiError(message, **fields)


def _field(value: Any) -> str | None:
    """One short error field (code, param, type) as printable text, or None when empty."""
    if value is None or value == "":
        return None
    return printable(str(value))[:200]


def _transport_error(exc: httpx.RequestError, secrets: Iterable[str]) -> TransientApiError:
    code = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection_error"
    detail = printable(scrub(str(exc) or exc.__class__.__name__, secrets))
    return TransientApiError(
        f"{code.replace('_', ' ')}: {exc.__class__.__name__}: {detail}",
        status_code=None,
        api_error_code=code,
    )
