"""Contract tests of idempotency keys (FACTS §3) and event headers (FACTS §4) over real HTTP."""

from __future__ import annotations

import time

import httpx
import pytest

IMPORT = "/orders/import_order"
KEY = "chargebee-idempotency-key"
REPLAYED = "chargebee-idempotency-replayed"


def test_same_key_same_body_replays_stored_answer(sandbox, sandbox_client, valid_order):
    """Same key + same params → the stored answer again, flagged replayed, one order stored."""
    params = valid_order()
    first = sandbox_client.post(IMPORT, data=params, headers={KEY: "k-1"})
    second = sandbox_client.post(IMPORT, data=params, headers={KEY: "k-1"})
    assert first.status_code == second.status_code == 200
    assert REPLAYED not in first.headers
    assert second.headers[REPLAYED] == "true"
    assert second.content == first.content
    state = sandbox.state()
    assert len(state["orders"]) == 1
    assert state["counts"]["replays"] == 1
    assert state["counts"]["imports_created"] == 1
    assert [r["replayed"] for r in state["requests"]] == [False, True]


def test_parameter_order_does_not_matter(sandbox_client, valid_order):
    """The same parameters in another order are the same request (a replay)."""
    params = valid_order()
    sandbox_client.post(IMPORT, data=params, headers={KEY: "k-2"})
    reordered = dict(reversed(list(params.items())))
    again = sandbox_client.post(IMPORT, data=reordered, headers={KEY: "k-2"})
    assert again.headers.get(REPLAYED) == "true"


def test_same_key_different_body_is_422(sandbox, sandbox_client, valid_order):
    """Reusing a key with different params is 422 unable_to_process_request; nothing new stored."""
    params = valid_order()
    sandbox_client.post(IMPORT, data=params, headers={KEY: "k-3"})
    changed = {**params, "note": "different"}
    response = sandbox_client.post(IMPORT, data=changed, headers={KEY: "k-3"})
    assert response.status_code == 422
    body = response.json()
    assert (body["type"], body["api_error_code"]) == (
        "invalid_request",
        "unable_to_process_request",
    )
    other_path = sandbox_client.post(f"/orders/{params['id']}", data={}, headers={KEY: "k-3"})
    assert other_path.status_code == 422
    assert "note" not in sandbox.state()["orders"][0]


def test_key_length_limit(sandbox_client, valid_order):
    """Keys up to 100 characters are accepted; 101 is 400 param_wrong_value."""
    assert sandbox_client.post(IMPORT, data=valid_order(), headers={KEY: "k" * 100}).is_success
    response = sandbox_client.post(IMPORT, data=valid_order(), headers={KEY: "k" * 101})
    assert response.status_code == 400
    assert response.json()["param"] == KEY


def test_errors_are_not_stored_under_the_key(sandbox_client, valid_order):
    """A 4xx answer is not remembered: fixing the body and resending with the key succeeds."""
    params = valid_order(status="bogus")
    assert sandbox_client.post(IMPORT, data=params, headers={KEY: "k-4"}).status_code == 400
    fixed = {**params, "status": "queued"}
    response = sandbox_client.post(IMPORT, data=fixed, headers={KEY: "k-4"})
    assert response.status_code == 200
    assert REPLAYED not in response.headers


def test_key_forgotten_after_window_then_duplicate_entry(make_sandbox, valid_order):
    """After the window the key is forgotten: a resend is new, so the same id is duplicate_entry."""
    sb = make_sandbox(idempotency_window_s=0.3)
    params = valid_order()
    with httpx.Client(base_url=sb.base_url, auth=(sb.api_key, "")) as client:
        assert client.post(IMPORT, data=params, headers={KEY: "k-5"}).status_code == 200
        inside = client.post(IMPORT, data=params, headers={KEY: "k-5"})
        assert inside.headers.get(REPLAYED) == "true"
        time.sleep(0.4)
        after = client.post(IMPORT, data=params, headers={KEY: "k-5"})
    assert after.status_code == 400
    assert (after.json()["api_error_code"], after.json()["param"]) == ("duplicate_entry", "id")


def test_window_can_change_at_runtime(sandbox, sandbox_client, valid_order):
    """reconfigure(idempotency_window_s=...) applies to keys already stored."""
    params = valid_order()
    sandbox_client.post(IMPORT, data=params, headers={KEY: "k-6"})
    sandbox.reconfigure(idempotency_window_s=0)
    time.sleep(0.01)
    response = sandbox_client.post(IMPORT, data=params, headers={KEY: "k-6"})
    assert response.json()["api_error_code"] == "duplicate_entry"


def test_key_on_get_is_ignored(sandbox_client, valid_order):
    """GET requests ignore the idempotency key (it is redundant there)."""
    sandbox_client.post(IMPORT, data=valid_order())
    first = sandbox_client.get("/orders/ORD-1", headers={KEY: "g"})
    second = sandbox_client.get("/orders/ORD-1", headers={KEY: "g"})
    assert REPLAYED not in second.headers
    assert first.json() == second.json()


def _events(sandbox) -> list[tuple[str, str, bool, str | None]]:
    return [
        (e["channel"], e["event_type"], e["suppressed"], e["suppressed_by"])
        for e in sandbox.state()["events"]
    ]


def test_events_fired_without_headers(sandbox, sandbox_client, valid_order):
    """An import fires order_created (and a status webhook/email); none suppressed by default."""
    sandbox_client.post(IMPORT, data=valid_order(status="delivered"))
    assert _events(sandbox) == [
        ("webhook", "order_created", False, None),
        ("webhook", "order_delivered", False, None),
        ("email", "order_delivered", False, None),
    ]
    counts = sandbox.state()["counts"]
    assert (counts["webhooks_fired"], counts["emails_fired"]) == (2, 1)


@pytest.mark.parametrize(
    ("header", "email_by", "webhook_by"),
    [
        ("chargebee-event-email", "chargebee-event-email", None),
        ("chargebee-event-webhook", None, "chargebee-event-webhook"),
        ("chargebee-event-actions", "chargebee-event-actions", "chargebee-event-actions"),
    ],
)
def test_event_headers_suppress(sandbox, sandbox_client, valid_order, header, email_by, webhook_by):
    """Each all-disabled header suppresses its channels, and the sandbox records that."""
    sandbox_client.post(
        IMPORT, data=valid_order(status="shipped"), headers={header: "all-disabled"}
    )
    assert _events(sandbox) == [
        ("webhook", "order_created", webhook_by is not None, webhook_by),
        ("email", "order_shipped", email_by is not None, email_by),
    ]


def test_update_events(sandbox, sandbox_client, valid_order):
    """An update fires order_updated plus the new status's webhook; suppression applies too."""
    sandbox_client.post(IMPORT, data=valid_order(status="queued"))
    headers = {"chargebee-event-webhook": "all-disabled", "chargebee-event-email": "all-disabled"}
    sandbox_client.post("/orders/ORD-1", data={"status": "cancelled"}, headers=headers)
    events = _events(sandbox)[1:]
    assert [(c, t) for c, t, _, _ in events] == [
        ("webhook", "order_updated"),
        ("webhook", "order_cancelled"),
        ("email", "order_cancelled"),
    ]
    assert all(suppressed for _, _, suppressed, _ in events)


@pytest.mark.parametrize(
    "header", ["chargebee-event-email", "chargebee-event-webhook", "chargebee-event-actions"]
)
def test_event_header_only_accepts_all_disabled(sandbox, sandbox_client, valid_order, header):
    """Any value but all-disabled is 400 param_wrong_value naming the header; nothing stored."""
    response = sandbox_client.post(IMPORT, data=valid_order(), headers={header: "disabled"})
    assert response.status_code == 400
    assert (response.json()["api_error_code"], response.json()["param"]) == (
        "param_wrong_value",
        header,
    )
    assert sandbox.state()["orders"] == []


def test_business_entity_recorded(sandbox, sandbox_client, valid_order):
    """chargebee-business-entity-id is recorded on the request log, the events and the order."""
    headers = {"chargebee-business-entity-id": "be_eu"}
    order = sandbox_client.post(IMPORT, data=valid_order(), headers=headers).json()["order"]
    assert order["business_entity_id"] == "be_eu"
    state = sandbox.state()
    assert state["requests"][0]["business_entity_id"] == "be_eu"
    assert state["events"][0]["business_entity_id"] == "be_eu"
