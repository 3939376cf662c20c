"""The Chargebee HTTP client: one pooled httpx.AsyncClient, auth, headers, error translation.

The ONLY module that touches httpx. Every method makes exactly one HTTP attempt; retries live
in ``api.retry`` and pacing in ``api.ratelimit``. httpx and Chargebee errors become
``pipeline.errors`` exceptions in one place (``error_from_response`` / ``_transport_error``).
"""

from __future__ import annotations

import base64
import email.utils
import json
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

from pipeline import __version__
from pipeline.api.encode import to_form, to_query
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.transport import LeanTransport
from pipeline.config import Settings, is_loopback
from pipeline.errors import (
    ApiError,
    AuthError,
    PermanentApiError,
    RateLimitedError,
    TransientApiError,
)

__all__ = [
    "IDEMPOTENCY_HEADER",
    "REPLAYED_HEADER",
    "USER_AGENT",
    "ApiResponse",
    "ChargebeeClient",
    "error_from_response",
    "parse_retry_after",
]

USER_AGENT = f"order-import/{__version__}"
IDEMPOTENCY_HEADER = "chargebee-idempotency-key"
REPLAYED_HEADER = "chargebee-idempotency-replayed"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
"""Retried like the official SDKs do (FACTS §2.2); 429 is handled separately."""
MAX_ERROR_MESSAGE = 500
"""Error text kept from a response body (HTML error pages can be long)."""
REDACTED = "***"


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


def _default_transport(settings: Settings) -> httpx.AsyncBaseTransport | None:
    """The lean HTTP/1.1 transport by default; ``http_transport = "httpx"`` keeps httpx's own."""
    if settings.http_transport == "httpx":
        return None
    return LeanTransport(max_connections=settings.concurrency)


class ChargebeeClient:
    """Async client for the order endpoints; use as ``async with ChargebeeClient(s) as c``.

    Args:
        settings: resolved settings (base URL, key, timeouts, concurrency, event headers).
        transport: an httpx transport to use instead of the network (tests: MockTransport).

    Raises:
        ConfigError: no API key, plain http to a non-loopback host, or a live site without
            ``--live``.
    """

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        settings.check_target()
        key = settings.require_api_key().reveal()
        token = base64.b64encode(f"{key}:".encode()).decode("ascii")
        self._authorization = f"Basic {token}"
        self._secrets = (key, token)
        self._settings = settings
        static = [("Accept", "application/json"), ("User-Agent", USER_AGENT)]
        if settings.events_disabled:
            static += [
                ("chargebee-event-email", "all-disabled"),
                ("chargebee-event-webhook", "all-disabled"),
            ]
        if settings.business_entity_id:
            static.append(("chargebee-business-entity-id", settings.business_entity_id))
        self._static_headers = tuple(static)
        pool = settings.concurrency
        self._http = httpx.AsyncClient(
            base_url=settings.base_url + "/",
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            verify=True,
            follow_redirects=False,
            trust_env=False,
            transport=transport or _default_transport(settings),
        )

    async def __aenter__(self) -> ChargebeeClient:
        await self._http.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.__aexit__(*exc_info)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        """Close the connection pool (``async with`` does this for you)."""
        await self._http.aclose()

    # -- headers -----------------------------------------------------------------------------

    def _headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        # A NEW dict per request: the SDK pitfall of a shared, mutated dict sending one
        # idempotency key with two bodies (FACTS §2.4.2) cannot happen here.
        headers = dict(self._static_headers)
        headers["Authorization"] = self._authorization
        if idempotency_key is not None:
            if not idempotency_key or len(idempotency_key) > 100:
                raise ValueError("idempotency keys are 1..100 characters (FACTS §3)")
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        return headers

    # -- one attempt -------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        form: Iterable[tuple[str, str]] | None = None,
        query: Iterable[tuple[str, str]] | None = None,
        idempotency_key: str | None = None,
    ) -> ApiResponse:
        headers = self._headers(idempotency_key)
        content: bytes | None = None
        if form is not None:
            headers["Content-Type"] = FORM_CONTENT_TYPE
            content = urlencode(list(form)).encode("utf-8")
        params = httpx.QueryParams(list(query)) if query is not None else None
        started_at = time.time()
        t0 = time.perf_counter()
        try:
            response = await self._http.request(
                method, path.lstrip("/"), content=content, params=params, headers=headers
            )
        except httpx.RequestError as exc:
            raise _transport_error(exc, self._secrets) from exc
        latency_ms = (time.perf_counter() - t0) * 1000.0
        if not 200 <= response.status_code < 300:
            raise error_from_response(
                response.status_code, response.content, response.headers, secrets=self._secrets
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise TransientApiError(
                f"HTTP {response.status_code} with a body that is not a JSON object",
                status_code=response.status_code,
                api_error_code="invalid_response",
            )
        replayed = response.headers.get(REPLAYED_HEADER, "").strip().lower() == "true"
        return ApiResponse(response.status_code, body, replayed, latency_ms, started_at)

    # -- endpoints ----------------------------------------------------------------------------

    async def import_order(self, params: Mapping[str, Any], *, idempotency_key: str) -> ApiResponse:
        """``POST /orders/import_order`` (one attempt). Body ``{"order": {...}}``."""
        return await self._send(
            "POST", "orders/import_order", form=to_form(params), idempotency_key=idempotency_key
        )

    async def update_order(
        self, order_id: str, params: Mapping[str, Any], *, idempotency_key: str
    ) -> ApiResponse:
        """``POST /orders/{id}`` (one attempt). Body ``{"order": {...}}``."""
        return await self._send(
            "POST",
            f"orders/{_segment(order_id)}",
            form=to_form(params),
            idempotency_key=idempotency_key,
        )

    async def retrieve_order(self, order_id: str) -> dict[str, Any] | None:
        """``GET /orders/{id}``: the order dict, or None on 404 ``resource_not_found``."""
        try:
            response = await self._send("GET", f"orders/{_segment(order_id)}")
        except PermanentApiError as err:
            if err.status_code == 404 and err.api_error_code == "resource_not_found":
                return None
            raise
        return _resource(response, "order")

    async def list_orders_page(
        self, filters: Mapping[str, Any], *, limit: int = 100, offset: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ``GET /orders``: (orders, next_offset or None on the last page)."""
        if not 1 <= limit <= 100:
            raise ValueError("limit must be 1..100 (FACTS §8)")
        query = [*to_query(filters), ("limit", str(limit))]
        if offset is not None:
            query.append(("offset", offset))
        response = await self._send("GET", "orders", query=query)
        entries = response.body.get("list") or []
        orders = [e["order"] for e in entries if isinstance(e, dict) and "order" in e]
        next_offset = response.body.get("next_offset")
        return orders, str(next_offset) if next_offset else None

    async def list_orders(
        self,
        filters: Mapping[str, Any],
        *,
        limit: int = 100,
        limiter: RateLimiter | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield every order matching ``filters``, following ``next_offset`` until it is absent.

        Each page is one attempt; pass ``limiter`` to spend the rate budget per page.
        """
        offset: str | None = None
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
        try:
            response = await self._http.get(url, headers=headers, auth=None)
        except httpx.RequestError as exc:
            raise _transport_error(exc, self._secrets) from exc
        if not 200 <= response.status_code < 300:
            raise error_from_response(
                response.status_code, response.content, response.headers, secrets=self._secrets
            )
        return response.content


def _segment(value: str) -> str:
    return quote(value, safe="")


def _resource(response: ApiResponse, name: str) -> dict[str, Any]:
    value = response.body.get(name)
    if not isinstance(value, dict):
        raise TransientApiError(
            f"HTTP {response.status} without an {name!r} object in the body",
            status_code=response.status,
            api_error_code="invalid_response",
        )
    return value


# -- error translation (the one place) -----------------------------------------------------


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret (the API key, its Basic token) in ``text`` with ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: an integer/decimal, or an HTTP date; None when absent/bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


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
    ``status_code`` stays the real HTTP status. ``secrets`` are scrubbed from the message.
    """
    data: Mapping[str, Any] | None = None
    if isinstance(body, Mapping):
        data, raw = body, json.dumps(dict(body), default=str)
    else:
        raw = _text(body)
        try:
            parsed = json.loads(raw) if raw.strip() else None
        except ValueError:
            parsed = None
        data = parsed if isinstance(parsed, Mapping) else None
    if data is not None and (data.get("api_error_code") or data.get("error_code")):
        code = str(data.get("api_error_code") or data.get("error_code"))
        message = str(data.get("message") or data.get("error_msg") or f"HTTP {status}")
        param = data.get("param") or data.get("error_param")
        error_code = data.get("error_code")
        error_type = data.get("type")
    else:
        code = _synthetic_code(raw)
        snippet = " ".join(raw.split())[:MAX_ERROR_MESSAGE]
        message = f"HTTP {status} from the API: {snippet or '(empty body)'}"
        param = error_code = error_type = None
    fields: dict[str, Any] = {
        "status_code": status,
        "api_error_code": code,
        "param": str(param) if param else None,
        "error_code": str(error_code) if error_code else None,
        "error_type": str(error_type) if error_type else None,
    }
    message = scrub(message, secrets)
    if status == 429:
        retry_after = parse_retry_after(_header(headers, "Retry-After"))
        return RateLimitedError(message, retry_after=retry_after, **fields)
    if status in TRANSIENT_STATUSES:
        return TransientApiError(message, **fields)
    if status in (401, 403):
        return AuthError(message, **fields)
    return PermanentApiError(message, **fields)


def _transport_error(exc: httpx.RequestError, secrets: Iterable[str]) -> TransientApiError:
    code = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection_error"
    detail = scrub(str(exc) or exc.__class__.__name__, secrets)
    return TransientApiError(
        f"{code.replace('_', ' ')}: {exc.__class__.__name__}: {detail}",
        status_code=None,
        api_error_code=code,
    )
