"""ChargebeeClient: headers, auth, form bodies, error translation, key never in errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus

import anyio
import httpx
import pytest

from pipeline.api.client import (
    USER_AGENT,
    ApiResponse,
    ChargebeeClient,
    _secret_forms,
    error_from_response,
    parse_retry_after,
)
from pipeline.api.encode import to_form
from pipeline.config import Settings, load_settings
from pipeline.errors import (
    ApiError,
    AuthError,
    ConfigError,
    PermanentApiError,
    RateLimitedError,
    TransientApiError,
    UnexpectedResponseError,
)

KEY = "test_SeCrEtKeY123"
BASE = "http://127.0.0.1:9/api/v2"
Handler = Callable[[httpx.Request], httpx.Response]

pytestmark = pytest.mark.anyio


def make_settings(**flags: Any) -> Settings:
    """Settings for the loopback base URL with the test key."""
    return load_settings(
        flags, environ={"CHARGEBEE_API_KEY": KEY, "CHARGEBEE_BASE_URL": flags.pop("base", BASE)}
    )


def client_for(handler: Handler, **flags: Any) -> ChargebeeClient:
    """A client whose requests go to ``handler`` instead of the network."""
    return ChargebeeClient(make_settings(**flags), transport=httpx.MockTransport(handler))


def order_ok(request: httpx.Request) -> httpx.Response:
    """Answer like import_order does."""
    return httpx.Response(200, json={"order": {"id": "o1", "status": "queued"}})


def cb_error(status: int, code: str, *, param: str | None = None, **extra: Any) -> dict[str, Any]:
    """A Chargebee-shaped error body (FACTS §2.1), legacy fields included."""
    body = {
        "message": f"{param or code} : problem",
        "type": "invalid_request",
        "api_error_code": code,
        "error_code": extra.pop("error_code", code),
        "error_msg": "problem",
        "http_status_code": status,
    }
    if param:
        body["param"] = param
        body["error_param"] = param
    body.update(extra)
    return body


async def test_import_sends_exact_headers_auth_and_sdk_form_body() -> None:
    """import_order POSTs the SDK's form body with basic auth, event and idempotency headers."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"order": {"id": "o1"}}, headers={"chargebee-idempotency-replayed": "true"}
        )

    params = {
        "id": "o1",
        "shipping_address": {"city": "Oslo"},
        "order_line_items": [{"id": "li1", "status": "shipped"}],
        "is_resent": False,
    }
    async with client_for(handler, business_entity_id="be-1") as client:
        response = await client.import_order(params, idempotency_key="k-1")
    assert isinstance(response, ApiResponse)
    assert (response.status, response.body, response.replayed) == (
        200,
        {"order": {"id": "o1"}},
        True,
    )
    assert response.latency_ms >= 0
    assert response.started_at > 1.6e9
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/orders/import_order"
    token = base64.b64encode(f"{KEY}:".encode()).decode()
    expected = {
        "accept": "application/json",
        "user-agent": USER_AGENT,
        "authorization": f"Basic {token}",
        "chargebee-event-email": "all-disabled",
        "chargebee-event-webhook": "all-disabled",
        "chargebee-business-entity-id": "be-1",
        "chargebee-idempotency-key": "k-1",
        "content-type": "application/x-www-form-urlencoded",
    }
    for name, value in expected.items():
        assert request.headers[name] == value, name
    assert parse_qsl(request.content.decode()) == to_form(params)
    assert USER_AGENT.startswith("order-import/")


async def test_events_header_off_and_no_entity_header_by_default() -> None:
    """With events enabled and no entity, those headers are absent."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return order_ok(request)

    async with client_for(handler, events_disabled=False) as client:
        await client.import_order({"id": "o1"}, idempotency_key="k")
    names = {k.lower() for k in seen[0].headers}
    assert "chargebee-event-email" not in names
    assert "chargebee-event-webhook" not in names
    assert "chargebee-business-entity-id" not in names


async def test_each_request_gets_its_own_idempotency_key() -> None:
    """A new headers dict per call: the second call never carries the first call's key."""
    keys: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("chargebee-idempotency-key"))
        return order_ok(request)

    async with client_for(handler) as client:
        await client.import_order({"id": "a"}, idempotency_key="key-a")
        await client.import_order({"id": "b"}, idempotency_key="key-b")
        await client.retrieve_order("o1")
    assert keys == ["key-a", "key-b", None]


async def test_update_order_path_is_escaped() -> None:
    """update_order posts to /orders/{id} with the id path-escaped."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return order_ok(request)

    async with client_for(handler) as client:
        await client.update_order("a/b c", {"status": "shipped"}, idempotency_key="k")
    assert seen[0].url.raw_path == b"/api/v2/orders/a%2Fb%20c"
    assert seen[0].content == b"status=shipped"


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "code", "param"),
    [
        (
            400,
            cb_error(400, "duplicate_entry", param="id"),
            {},
            PermanentApiError,
            "duplicate_entry",
            "id",
        ),
        (
            404,
            cb_error(404, "resource_not_found", param="invoice_id"),
            {},
            PermanentApiError,
            "resource_not_found",
            "invoice_id",
        ),
        (
            422,
            cb_error(422, "unable_to_process_request"),
            {},
            PermanentApiError,
            "unable_to_process_request",
            None,
        ),
        (
            401,
            cb_error(401, "api_authentication_failed"),
            {},
            AuthError,
            "api_authentication_failed",
            None,
        ),
        (
            403,
            cb_error(403, "api_authorization_failed"),
            {},
            AuthError,
            "api_authorization_failed",
            None,
        ),
        (
            429,
            cb_error(429, "api_request_limit_exceeded"),
            {"Retry-After": "7"},
            RateLimitedError,
            "api_request_limit_exceeded",
            None,
        ),
        (500, cb_error(500, "internal_error"), {}, TransientApiError, "internal_error", None),
        (503, cb_error(503, "site_not_ready"), {}, TransientApiError, "site_not_ready", None),
        (502, "<html>502 Bad Gateway</html>", {}, TransientApiError, "internal_error", None),
        (
            503,
            "<html>503 Service Unavailable</html>",
            {},
            TransientApiError,
            "internal_temporary_error",
            None,
        ),
        (504, "upstream 504 gateway timeout", {}, TransientApiError, "gateway_timeout", None),
        (404, "<html>not here</html>", {}, PermanentApiError, "internal_error", None),
    ],
)
async def test_error_answers_map_to_the_tree(
    status: int, body: Any, headers: dict[str, str], kind: type, code: str, param: str | None
) -> None:
    """Each status/body shape becomes the right exception class with code and param."""
    content = json.dumps(body).encode() if isinstance(body, dict) else body.encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers=headers)

    async with client_for(handler) as client:
        with pytest.raises(kind) as info:
            await client.import_order({"id": "o1"}, idempotency_key="k")
    err = info.value
    assert type(err) is kind
    assert isinstance(err, ApiError)
    assert (err.status_code, err.api_error_code, err.param) == (status, code, param)
    if isinstance(body, dict):
        assert err.error_code == body["error_code"]
        assert err.error_type == "invalid_request"
        assert err.message == body["message"]
    if isinstance(err, RateLimitedError):
        assert err.retry_after == 7.0


def test_error_from_response_legacy_only_body_and_missing_retry_after() -> None:
    """A body with only legacy fields still yields code/param; 429 without header → None."""
    err = error_from_response(
        400,
        {"error_code": "param_required", "error_msg": "x : cannot be blank", "error_param": "x"},
        {},
    )
    assert (err.api_error_code, err.param, err.message) == (
        "param_required",
        "x",
        "x : cannot be blank",
    )
    limited = error_from_response(429, b"", {})
    assert isinstance(limited, RateLimitedError)
    assert limited.retry_after is None
    assert error_from_response(429, b"", {"retry-after": "2"}).retry_after == 2.0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("12", 12.0),
        (" 7 ", 7.0),
        ("Fri, 01 Jan 2100 00:00:10 GMT", 10.0),  # an HTTP-date: seconds from now
        # Not positive or not RFC 9110 (whole seconds or an HTTP-date): absent → normal backoff.
        ("0", None),
        ("-3", None),
        ("0.5", None),
        ("nan", None),
        ("inf", None),
        ("1e3", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Thu, 01 Jan 1970 00:00:00 GMT", None),  # a date in the past
        ("Fri, 01 Jan 2100 00:00:00", None),  # no zone
    ],
)
def test_parse_retry_after_follows_the_rfc(value: str | None, seconds: float | None) -> None:
    """Retry-After is whole seconds or an HTTP-date; 0, negative, nan and past dates are absent."""
    now = 4_102_444_800.0  # 2100-01-01T00:00:00Z: the date form is measured from ``now``
    assert parse_retry_after(value, now=now) == seconds


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (httpx.ConnectError("refused"), "connection_error"),
        (httpx.RemoteProtocolError("peer closed"), "connection_error"),
        (httpx.ReadError("reset"), "connection_error"),
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.ConnectTimeout("slow"), "timeout"),
    ],
)
async def test_transport_failures_are_transient(exc: Exception, code: str) -> None:
    """Dropped connections and timeouts become TransientApiError(status None), chained."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    async with client_for(handler) as client:
        with pytest.raises(TransientApiError) as info:
            await client.import_order({"id": "o1"}, idempotency_key="k")
    assert type(info.value) is TransientApiError
    assert (info.value.status_code, info.value.api_error_code) == (None, code)
    assert info.value.__cause__ is exc


async def test_api_key_never_appears_in_errors() -> None:
    """A key echoed in an error body, a URL or a transport error is scrubbed from str(err)."""
    token = base64.b64encode(f"{KEY}:".encode()).decode()
    bodies = [
        json.dumps(cb_error(400, "invalid_request", message=f"bad key {KEY} / {token}")),
        f"<html>https://{KEY}@host/ 503</html>",
    ]
    for status, body in zip((400, 503), bodies, strict=True):

        def handler(
            request: httpx.Request, body: str = body, status: int = status
        ) -> httpx.Response:
            return httpx.Response(status, content=body.encode())

        async with client_for(handler) as client:
            with pytest.raises((PermanentApiError, TransientApiError)) as info:
                await client.import_order({"id": "o1"}, idempotency_key="k")
        assert KEY not in str(info.value)
        assert token not in str(info.value)
        assert KEY not in repr(info.value.args)
        assert "***" in str(info.value)

    def failing(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach https://{KEY}:@127.0.0.1/")

    async with client_for(failing) as client:
        with pytest.raises(TransientApiError) as info:
            await client.import_order({"id": "o1"}, idempotency_key="k")
    assert KEY not in str(info.value)


def test_every_string_of_an_error_body_is_scrubbed_in_every_form() -> None:
    """The key (raw, Basic token, url-encoded, JSON-escaped) is scrubbed from the message,
    param, api_error_code, error_code and type, and from raw text BEFORE whitespace is
    collapsed (a key with inner whitespace would survive the other order)."""
    key = "sk_with  two\tspaces"
    token = base64.b64encode(f"{key}:".encode()).decode()
    forms = [key, token, quote(key, safe=""), quote_plus(key), json.dumps(key)[1:-1]]
    assert set(_secret_forms(KEY)) <= set(ChargebeeClient(make_settings())._secrets)
    every = " ".join(forms)
    body = {
        "message": every,
        "param": every,
        "api_error_code": every,
        "error_code": every,
        "type": every,
        "nested": {"deep": [every]},
    }
    err = error_from_response(400, json.dumps(body), {}, secrets=_secret_forms(key))
    raw = error_from_response(503, f"<p>{every}\n {key}</p>", {}, secrets=_secret_forms(key))
    for found in (err, raw):
        fields = [found.message, found.param, found.api_error_code, found.error_code]
        text = " ".join(str(f) for f in [*fields, found.error_type])
        assert "***" in text
        for form in forms:
            assert form not in text, form
            assert " ".join(form.split()) not in text, form


def test_server_text_in_errors_is_made_printable() -> None:
    """Escape sequences and other control characters in an error body arrive escaped."""
    body = {"api_error_code": "x\x1b[2J", "message": "a\x1b]0;t\x07b\u202ec", "param": "p\r"}
    err = error_from_response(400, json.dumps(body), {})
    assert err.message == "a\\x1b]0;t\\x07b\\u202ec"
    assert (err.api_error_code, err.param) == ("x\\x1b[2J", "p\\r")


async def test_list_orders_stops_on_a_repeated_next_offset() -> None:
    """A server that hands back an offset it already gave ends the paging with an error."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"list": [{"order": {"id": "a"}}], "next_offset": "p"})

    async with client_for(handler) as client:
        with pytest.raises(UnexpectedResponseError, match="repeats"):
            async for _ in client.list_orders({}):
                pass


async def test_retrieve_returns_none_only_for_resource_not_found() -> None:
    """404 resource_not_found → None; 404 site_not_found raises; 200 → the order dict."""
    answers = {
        "/api/v2/orders/missing": httpx.Response(404, json=cb_error(404, "resource_not_found")),
        "/api/v2/orders/nosite": httpx.Response(404, json=cb_error(404, "site_not_found")),
        "/api/v2/orders/o1": httpx.Response(200, json={"order": {"id": "o1"}}),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "GET"
        return answers[request.url.path]

    async with client_for(handler) as client:
        assert await client.retrieve_order("missing") is None
        assert await client.retrieve_order("o1") == {"id": "o1"}
        with pytest.raises(PermanentApiError):
            await client.retrieve_order("nosite")


async def test_list_orders_follows_next_offset_until_absent() -> None:
    """list_orders pages with limit/offset and filters, stopping when next_offset is absent."""
    queries: list[list[tuple[str, str]]] = []
    pages = {
        None: {"list": [{"order": {"id": "a"}}, {"order": {"id": "b"}}], "next_offset": "p2"},
        "p2": {"list": [{"order": {"id": "c"}}]},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        query = list(request.url.params.multi_items())
        queries.append(query)
        return httpx.Response(200, json=pages[request.url.params.get("offset")])

    async with client_for(handler) as client:
        ids = [o["id"] async for o in client.list_orders({"status": {"is": "queued"}}, limit=2)]
    assert ids == ["a", "b", "c"]
    assert queries[0] == [("status[is]", "queued"), ("limit", "2")]
    assert queries[1] == [("status[is]", "queued"), ("limit", "2"), ("offset", "p2")]


async def test_exports_and_public_download_without_auth() -> None:
    """export_orders posts filters; retrieve_export reads it; download sends NO Authorization."""
    seen: list[httpx.Request] = []
    export = {
        "id": "e1",
        "status": "completed",
        "download": {"download_url": "http://127.0.0.1:9/dl/e1.zip"},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/dl/e1.zip":
            return httpx.Response(200, content=b"PK\x03\x04zip")
        return httpx.Response(200, json={"export": export})

    async with client_for(handler) as client:
        started = await client.export_orders(
            {"order": {"status": {"in": ["queued"]}}}, idempotency_key="x1"
        )
        again = await client.retrieve_export("e1")
        data = await client.download(again["download"]["download_url"])
        with pytest.raises(PermanentApiError):
            await client.download("http://example.com/e1.zip")
    assert started == again == export
    assert data == b"PK\x03\x04zip"
    assert parse_qsl(seen[0].content.decode()) == [("order[status][in]", '["queued"]')]
    assert seen[0].headers["chargebee-idempotency-key"] == "x1"
    assert seen[1].method == "GET"
    assert seen[1].url.path == "/api/v2/exports/e1"
    assert "authorization" not in {k.lower() for k in seen[2].headers}
    assert len(seen) == 3


def test_refuses_unsafe_targets_and_missing_key() -> None:
    """No key, plain http to a remote host, or a live site without --live: ConfigError."""
    with pytest.raises(ConfigError):
        ChargebeeClient(load_settings({}, environ={"CHARGEBEE_BASE_URL": BASE}))
    with pytest.raises(ConfigError):
        ChargebeeClient(make_settings(base="http://example.com/api/v2"))
    with pytest.raises(ConfigError):
        ChargebeeClient(make_settings(base="https://acme.chargebee.com/api/v2"))


async def test_rejects_overlong_idempotency_keys() -> None:
    """Keys over Chargebee's 100-character limit are refused before sending."""
    async with client_for(order_ok) as client:
        with pytest.raises(ValueError):
            await client.import_order({"id": "o1"}, idempotency_key="k" * 101)


@pytest.mark.parametrize(
    "body",
    [b"<html>ok</html>", b'{"order": null}', b"[1, 2]", b'{"list": []}', b'{"order": "o1"}'],
)
async def test_a_2xx_without_an_order_is_unexpected_not_success(body: bytes) -> None:
    """A 200 with an HTML body (a proxy page), no order or a null one is not taken as success:
    UnexpectedResponseError (not retried blindly; the worker looks the row up)."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    async with client_for(handler) as client:
        with pytest.raises(UnexpectedResponseError) as info:
            await client.import_order({"id": "o1"}, idempotency_key="k")
    assert info.value.api_error_code == "invalid_response"
    assert not isinstance(info.value, TransientApiError)


# -- integration: the real client against the real sandbox over HTTP ---------------------------


def sandbox_client_for(server: Any, key: str | None = None, **flags: Any) -> ChargebeeClient:
    """A real ChargebeeClient (real network transport) pointed at a running sandbox."""
    settings = load_settings(
        flags,
        environ={"CHARGEBEE_API_KEY": key or server.api_key, "CHARGEBEE_BASE_URL": server.base_url},
    )
    return ChargebeeClient(settings)


def valid_params(n: int, **overrides: Any) -> dict[str, Any]:
    """Nested import_order params the sandbox accepts."""
    params: dict[str, Any] = {
        "id": f"IT-{n}",
        "invoice_id": f"INV-IT-{n}",
        "status": "delivered",
        "created_at": 1_600_000_000 + n,
        "order_date": 1_600_000_000 + n,
        "shipping_date": 1_600_086_400 + n,
        "shipping_address": {"first_name": "Zoë", "city": "Kraków", "country": "PL"},
    }
    params.update(overrides)
    return params


async def test_sandbox_import_replay_and_duplicate(sandbox: Any) -> None:
    """Import lands; same key+body replays; a new key for the same id is duplicate_entry on id."""
    async with sandbox_client_for(sandbox) as client:
        first = await client.import_order(valid_params(1), idempotency_key="it-k1")
        again = await client.import_order(valid_params(1), idempotency_key="it-k1")
        with pytest.raises(PermanentApiError) as info:
            await client.import_order(valid_params(1), idempotency_key="it-k2")
    assert first.status == 200
    assert first.body["order"]["id"] == "IT-1"
    assert first.body["order"]["shipping_address"]["city"] == "Kraków"
    assert not first.replayed
    assert again.replayed
    assert again.body == first.body
    assert (info.value.status_code, info.value.api_error_code, info.value.param) == (
        400,
        "duplicate_entry",
        "id",
    )
    ids = [o["id"] for o in sandbox.state()["orders"]]
    assert ids.count("IT-1") == 1


async def test_sandbox_rejects_a_wrong_key_with_auth_error(sandbox: Any) -> None:
    """401 from the sandbox becomes AuthError, and the wrong key is not in the message."""
    async with sandbox_client_for(sandbox, key="wrong_key_XYZ") as client:
        with pytest.raises(AuthError) as info:
            await client.import_order(valid_params(2), idempotency_key="it-k")
    assert info.value.status_code == 401
    assert "wrong_key_XYZ" not in str(info.value)


async def test_sandbox_429_carries_retry_after(make_sandbox: Callable[..., Any]) -> None:
    """Past the sandbox's per-window limit, a 429 arrives as RateLimitedError with retry_after."""
    server = make_sandbox(rate_limit_per_minute=2, window_s=30)
    async with sandbox_client_for(server) as client:
        await client.import_order(valid_params(3), idempotency_key="it-a")
        await client.import_order(valid_params(4), idempotency_key="it-b")
        with pytest.raises(RateLimitedError) as info:
            await client.import_order(valid_params(5), idempotency_key="it-c")
    assert info.value.status_code == 429
    assert info.value.api_error_code == "api_request_limit_exceeded"
    assert info.value.retry_after is not None
    assert 1.0 <= info.value.retry_after <= 30.0


async def test_sandbox_faults_are_transient(make_sandbox: Callable[..., Any]) -> None:
    """A 503 before commit and a dropped connection after commit both raise TransientApiError."""
    server = make_sandbox(fault_rate=1.0, faults=("before_commit",))
    async with sandbox_client_for(server) as client:
        with pytest.raises(TransientApiError) as info:
            await client.import_order(valid_params(6), idempotency_key="it-f1")
        assert info.value.status_code == 503
        server.reconfigure(faults=["drop_after_commit"])
        with pytest.raises(TransientApiError) as dropped:
            await client.import_order(valid_params(7), idempotency_key="it-f2")
    assert dropped.value.status_code is None
    assert dropped.value.api_error_code in ("connection_error", "timeout")


async def test_sandbox_update_retrieve_and_list_paging(sandbox: Any) -> None:
    """retrieve: dict or None on 404; update applies; list follows next_offset across pages."""
    async with sandbox_client_for(sandbox) as client:
        for n in range(10, 15):
            await client.import_order(valid_params(n), idempotency_key=f"it-l{n}")
        assert await client.retrieve_order("NOPE") is None
        found = await client.retrieve_order("IT-10")
        updated = await client.update_order(
            "IT-10", {"tracking_id": "TRK-1"}, idempotency_key="it-u"
        )
        listed = [
            o["id"] async for o in client.list_orders({"id": {"starts_with": "IT-1"}}, limit=2)
        ]
        pages = await client.list_orders_page({"id": {"in": ["IT-11", "IT-12"]}}, limit=1)
    assert found is not None
    assert found["id"] == "IT-10"
    assert updated.body["order"]["tracking_id"] == "TRK-1"
    assert sorted(listed) == ["IT-10", "IT-11", "IT-12", "IT-13", "IT-14"]
    assert len(pages[0]) == 1
    assert pages[1] is not None
    gets = [
        r
        for r in sandbox.state()["requests"]
        if r.get("method") == "GET" and "orders" in str(r.get("path"))
    ]
    assert len(gets) >= 3 + 2  # three list pages at least, plus the retrievals


async def test_sandbox_export_and_public_download(make_sandbox: Callable[..., Any]) -> None:
    """An export completes and its public download URL is fetched (no-auth: MockTransport test)."""
    server = make_sandbox(export_delay_s=0.0)
    async with sandbox_client_for(server) as client:
        await client.import_order(valid_params(20), idempotency_key="it-e")
        export = await client.export_orders({"order": {"id": {"is": "IT-20"}}})
        for _ in range(50):  # bounded poll; the sandbox completes at once with delay 0
            export = await client.retrieve_export(export["id"])
            if export["status"] != "in_process":
                break
            await anyio.sleep(0.05)
        assert export["status"] == "completed"
        data = await client.download(export["download"]["download_url"])
    assert data[:2] == b"PK"


@pytest.mark.parametrize(
    ("raw", "amount"),
    [
        (b'{"order": {"id": "o1", "total": 12}}', 12),
        # What orjson refuses and json reads: read as before (json), never "not JSON".
        (b'{"order": {"id": "o1", "total": 9223372036854775807}}', 2**63 - 1),
        # Over 64 bits (Chargebee never sends it): read as a number, a float (docs/client.md).
        (
            b'{"order": {"id": "o1", "total": 123456789012345678901234567890}}',
            1.2345678901234568e29,
        ),
        (b'{"order": {"id": "o1", "total": NaN}}', None),
        ('{"order": {"id": "o1", "total": 5}}'.encode("utf-16"), 5),
    ],
)
async def test_answers_are_read_as_json_reads_them(raw: bytes, amount: float | None) -> None:
    """The answer's parse (orjson first, json for what orjson refuses) reads every answer json
    reads, with the same values (integers over 64 bits as floats)."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=raw, headers={"Content-Type": "application/json"})

    async with client_for(handler) as client:
        response = await client.import_order({"id": "o1"}, idempotency_key="k1")
    total = response.body["order"]["total"]
    if amount is None:
        assert total != total  # NaN
    else:
        assert total == amount
