"""The sandbox's short way for API requests (``server._DirectProtocol``) answers byte for byte
what uvicorn's ASGI cycle answers, logs the same requests and leaves the same state: one
scripted conversation over raw sockets, against a sandbox each way (``direct=False`` is the old
way), compared after blanking what the clock writes (``date`` header, ``updated_at``...)."""

from __future__ import annotations

import base64
import re
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, short_way_known

KEY = "test_sandbox_key"
AUTH = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
_CLOCK = re.compile(
    rb'(date: [^\r]*|"(?:updated_at|resource_version|status_update_at|date|t)":[0-9.e+-]+)'
)


def _blank_clock(data: bytes) -> bytes:
    return _CLOCK.sub(lambda m: m.group(0).split(b":")[0] + b":#", data)


class Wire:
    """A raw keep-alive HTTP/1.1 connection that reads answers by their Content-Length."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def answer(self) -> bytes:
        """One whole answer (head and body); up to EOF when the connection is cut."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                rest, self.buffer = self.buffer, b""
                return rest + b"<EOF>"
        head, _, _ = self.buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        end = len(head) + 4 + length
        while len(self.buffer) < end:
            if not self._fill():
                rest, self.buffer = self.buffer, b""
                return rest + b"<EOF>"
        answer, self.buffer = self.buffer[:end], self.buffer[end:]
        return answer

    def rest(self) -> bytes:
        """What else comes until the server closes (b"" when it keeps the connection open)."""
        self.sock.settimeout(0.3)
        try:
            while self._fill():
                pass
        except TimeoutError:
            return self.buffer + b"<OPEN>"
        return self.buffer + b"<EOF>"

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *_: object) -> None:
        self.sock.close()


def _request(
    method: str,
    target: str,
    form: dict[str, str] | None = None,
    *,
    headers: dict[str, str] | None = None,
    version: str = "1.1",
    raw_body: bytes | None = None,
) -> bytes:
    body = raw_body if raw_body is not None else (urlencode(form).encode() if form else b"")
    lines = [f"{method} {target} HTTP/{version}", "host: 127.0.0.1", f"authorization: {AUTH}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"content-length: {len(body)}")
        if "content-type" not in (headers or {}):
            lines.append("content-type: application/x-www-form-urlencoded")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _order(n: int, **more: str) -> dict[str, str]:
    return {
        "id": f"W-{n}",
        "invoice_id": f"INV-W{n}",
        "document_number": f"WDOC{n}",
        "status": "delivered",
        "created_at": "1600000000",
        "order_date": "1600000000",
        "shipping_date": "1600086400",
        "shipping_address[city]": "Kraków",
        "shipping_address[first_name]": "Zoë & co+1",
        "shipping_address[country]": "PL",
        **more,
    }


IMPORT = "/api/v2/orders/import_order"
IDEM = "chargebee-idempotency-key"
LOOKUP = "/api/v2/orders?" + urlencode({"id[in]": '["W-1","W-2","nope"]', "limit": "100"})

Step = Callable[[int], list[bytes]]
"""Runs one exchange against the sandbox on this port; returns what came back."""


def _one(*requests: bytes) -> Step:
    """Send each request on one keep-alive connection and read its answer."""

    def step(port: int) -> list[bytes]:
        with Wire(port) as wire:
            out = []
            for request in requests:
                wire.send(request)
                out.append(wire.answer())
            return out

    return step


def _pipelined(*requests: bytes) -> Step:
    """All requests in one write; every answer read back."""

    def step(port: int) -> list[bytes]:
        with Wire(port) as wire:
            wire.send(b"".join(requests))
            return [wire.answer() for _ in requests]

    return step


def _split(request: bytes, at: int) -> Step:
    """The request in two writes (``at`` bytes, then the rest) a moment apart."""

    def step(port: int) -> list[bytes]:
        with Wire(port) as wire:
            wire.send(request[:at])
            time.sleep(0.05)
            wire.send(request[at:])
            return [wire.answer()]

    return step


def _then_rest(request: bytes) -> Step:
    """One request, its answer, then whatever follows until the server closes or goes quiet."""

    def step(port: int) -> list[bytes]:
        with Wire(port) as wire:
            wire.send(request)
            return [wire.answer(), wire.rest()]

    return step


def _raw(request: bytes) -> Step:
    """One request; everything that comes back until the server closes or goes quiet."""

    def step(port: int) -> list[bytes]:
        with Wire(port) as wire:
            wire.send(request)
            return [wire.rest()]

    return step


def _continue(request: bytes) -> Step:
    """``Expect: 100-continue``: headers, the interim answer, then the body."""
    head, _, body = request.partition(b"\r\n\r\n")
    head = head + b"\r\nexpect: 100-continue\r\n\r\n"

    def step(port: int) -> list[bytes]:
        with Wire(port) as wire:
            wire.send(head)
            interim = wire.answer()
            wire.send(body)
            return [interim, wire.answer()]

    return step


def _cut(request: bytes, keep: int) -> Step:
    """Send the first ``keep`` bytes, then close: the server sees the request cut off."""

    def step(port: int) -> list[bytes]:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(request[:keep])
        time.sleep(0.05)
        sock.close()
        time.sleep(0.1)
        return []

    return step


SCRIPT: list[Step] = [
    _one(
        _request("POST", IMPORT, _order(1), headers={IDEM: "k1"}),
        _request("POST", IMPORT, _order(1), headers={IDEM: "k1"}),  # replayed
        _request("POST", IMPORT, _order(1, note="x"), headers={IDEM: "k1"}),  # 422
        _request("POST", IMPORT, _order(1)),  # duplicate_entry
        _request("POST", IMPORT, _order(2, status="")),  # param_required
        _request("POST", IMPORT, _order(3, colour="red")),  # unknown param
        _request("POST", IMPORT, _order(4, **{"shipping_address[country]": "ZZ"})),
        _request("POST", IMPORT, _order(5), headers={"authorization": "Basic eDo="}),
        _request("POST", IMPORT, _order(6), headers={"chargebee-event-email": "on"}),
        _request("POST", IMPORT, _order(7), headers={"chargebee-business-entity-id": "b" * 51}),
        _request("POST", IMPORT, _order(8), headers={IDEM: "k" * 101}),
        _request("POST", IMPORT, _order(9), headers={"content-type": "application/json"}),
        _request("POST", IMPORT, _order(2), headers={"chargebee-business-entity-id": "be_1"}),
        _request("GET", LOOKUP),
        _request("GET", "/api/v2/orders?" + urlencode({"invoice_id[in]": '["INV-W1"]'})),
        _request("GET", "/api/v2/orders?limit=0"),
        _request("GET", "/api/v2/orders?sort_by%5Bdesc%5D=created_at&limit=1"),
        _request("GET", "/api/v2/invoices?" + urlencode({"id[in]": "['INV-W1','INV-X']"})),
        _request("GET", "/api/v2/invoices/INV-W1"),
        _request("GET", "/api/v2/orders/W-1"),
        _request("GET", "/api/v2/orders/" + quote("W 1")),
        _request("POST", "/api/v2/orders/W-1", {"status": "shipped", "shipped_at": "1600000100"}),
        _request("POST", "/api/v2/orders/W-2/delete"),
        _request("POST", "/api/v2/orders", _order(10)),  # 403, deprecated
        _request("PUT", "/api/v2/orders/W-1"),  # 405
        _request("GET", "/api/v2/nothing"),  # 404
        _request("GET", "/elsewhere"),
        _request("GET", "/api/v2/orders?q=%E2%82%AC+%ZZ&x"),
        _request("POST", IMPORT, raw_body=b"id=W-11&status=%FF%FE&x"),
    ),
    _raw(_request("HEAD", "/api/v2/orders/W-1")),
    _pipelined(
        _request("POST", IMPORT, _order(12), headers={IDEM: "k12"}),
        _request("GET", "/api/v2/orders/W-12"),
        _request("POST", IMPORT, _order(12), headers={IDEM: "k12"}),
    ),
    _split(_request("POST", IMPORT, _order(13)), 40),
    _split(_request("POST", IMPORT, _order(14)), 200),
    _continue(_request("POST", IMPORT, _order(15))),
    _then_rest(_request("GET", "/api/v2/orders/W-1", version="1.0")),
    _then_rest(_request("POST", IMPORT, _order(16), headers={"connection": "close"})),
    _one(_request("POST", IMPORT, _order(17, note="n" * 70_000))),  # a body over 64 KiB
    _cut(_request("POST", IMPORT, _order(18)), 120),  # cut in the headers
    _cut(_request("POST", IMPORT, _order(19)), len(_request("POST", IMPORT, _order(19))) - 30),
    _one(_request("GET", "/__sandbox/config")),
]


def _run(direct: bool, script: list[Step], **knobs: Any) -> tuple[list[bytes], dict[str, Any]]:
    config = SandboxConfig(**{"rate_limit_per_minute": None, "concurrency_limit": None, **knobs})
    with SandboxServer(config, direct=direct) as sb:
        answers = [_blank_clock(answer) for step in script for answer in step(sb.port)]
        state = sb.state()
        short_way = sb.app.answered_now
    # the comparison means something only if the short way answered (not when latency is on)
    assert (short_way > 0) == (direct and not knobs.get("latency_ms")), (
        "the short way did not answer: is the installed uvicorn the one it was written against "
        "(sandbox.server.SHORT_WAY_UVICORN)?"
    )
    for entry in state["requests"]:
        entry.pop("t")
    for event in state["events"]:
        event.pop("t")
    for order in state["orders"]:
        for name in ("updated_at", "resource_version", "status_update_at"):
            order.pop(name)
    return answers, state


def test_the_short_way_answers_what_uvicorns_way_answers() -> None:
    """Every answer of the script is the same bytes both ways; the request log, counts,
    events and orders too."""
    old_answers, old_state = _run(False, SCRIPT)
    new_answers, new_state = _run(True, SCRIPT)
    assert len(new_answers) == len(old_answers)
    for number, (new, old) in enumerate(zip(new_answers, old_answers, strict=True)):
        assert new == old, f"answer {number} differs"
    assert new_state == old_state
    assert len(old_state["requests"]) == old_state["counts"]["requests"] == 39


@pytest.mark.parametrize(
    "knobs",
    [
        {"echo_headers_in_errors": True},
        {"fault_rate": 1.0, "faults": ("before_commit", "after_commit"), "fault_seed": 3},
        {"fault_rate": 1.0, "faults": ("drop_after_commit",)},
        {"latency_ms": 20},
    ],
    ids=["echo", "faults", "drop", "latency"],
)
def test_knobs_answer_the_same_both_ways(knobs: dict[str, Any]) -> None:
    """Error echoes, faults, dropped connections and added latency: the same bytes both ways."""
    script = [
        _then_rest(_request("POST", IMPORT, _order(20), headers={IDEM: "k20"})),
        _then_rest(_request("POST", IMPORT, _order(21, status="nope"))),
        _one(_request("GET", "/api/v2/orders/W-20")),
    ]
    old = _run(False, script, **knobs)
    new = _run(True, script, **knobs)
    assert new == old


def test_a_limited_sandbox_answers_the_same_both_ways() -> None:
    """Rate limit (429 with Retry-After) and concurrency limit: the same bytes both ways."""
    script = [_one(*(_request("POST", IMPORT, _order(30 + n)) for n in range(5)))]
    old = _run(False, script, rate_limit_per_minute=3)
    new = _run(True, script, rate_limit_per_minute=3)
    assert new == old
    assert b"retry-after: " in new[0][-1]


def test_the_short_way_is_taken_only_on_the_uvicorn_release_it_was_written_against():
    """Other releases serve every request uvicorn's way (the short way overrides parts of its
    protocol that are not a public API)."""
    for known in ("0.54.0", "0.54.2"):
        assert short_way_known(known), known
    for other in ("0.55.0", "1.54.0", "0.5"):
        assert not short_way_known(other), other
