"""``schemas/`` and ``sandbox/`` held against Chargebee's published contract for the order
endpoints: ``tests/data/orders_contract.json``, an extract of the OpenAPI specification (source
commit and caveats in ``orders_contract.NOTES.md`` beside it).

The schemas are compared as data (param names, kinds, required, enums, max lengths). The sandbox
is compared by behaviour over real HTTP: every expected value comes from the extract, never
from the sandbox's own constants, so a sandbox that drifts from the contract fails here.
Every deliberate difference is one line of ``ALLOWED`` with its reason; a listed difference that
no longer exists fails too, so the list stays true.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from schemas import IMPORT_ORDER_PARAMS, UPDATE_ORDER_PARAMS, form_name
from tests.support import CONTRACT_PATH, contract

CONTRACT: dict[str, Any] = contract()
OPS: dict[str, Any] = CONTRACT["operations"]
IMPORT = "/orders/import_order"

Difference = tuple[str, str, str, str]
"""(where: schemas|sandbox, operation, param, aspect)."""

ALLOWED_TEXT = """
schemas update_order id extra | the order id is the path of POST /orders/{id}; rows carry it
schemas update_order order_line_items[id] missing | order-import update does not edit line items
schemas update_order order_line_items[status] missing | order-import update does not edit items
schemas update_order order_line_items[sku] missing | order-import update does not edit line items
sandbox import_order shipping_address[country] max_length | stricter: ISO alpha-2 only (FACTS 5.1)
sandbox import_order billing_address[country] max_length | stricter: ISO alpha-2 only (FACTS 5.1)
sandbox update_order shipping_address[country] max_length | stricter: ISO alpha-2 only (FACTS 5.1)
sandbox order object extra | Chargebee resources carry `object` (the SDKs read it); not in the spec
sandbox errors 401 type | FACTS 2: 401 is untyped, no `type` key; spec: type=untyped. Client: both
"""
"""Deliberate differences, one a line: ``where operation param aspect | reason``."""
ALLOWED: dict[Difference, str] = {
    tuple(line.partition(" | ")[0].split()): line.partition(" | ")[2]  # type: ignore[misc]
    for line in ALLOWED_TEXT.strip().splitlines()
}


# -- the extract ---------------------------------------------------------------------------


def kind_of(spec: dict[str, Any]) -> str:
    """The schemas ParamKind a contract param corresponds to."""
    if "enum" in spec:
        return "enum"
    if spec.get("format") == "unix-time":
        return "timestamp"
    if spec.get("type") == "integer":
        return "integer"
    return str(spec.get("type"))


def params_of(operation: str) -> dict[str, dict[str, Any]]:
    """The contract's request params of one operation (form names)."""
    return dict(OPS[operation]["params"])


def sample(name: str, spec: dict[str, Any]) -> str:
    """A value the contract accepts for this param or filter (checked against its pattern)."""
    pattern = spec.get("pattern")
    op = name.rstrip("]").rpartition("[")[2]
    if "enum" in spec and not (pattern and op in ("in", "not_in")):
        value = str(spec["enum"][0])
    elif pattern is None:
        value = "1600000000" if spec.get("format") == "unix-time" else "x"
    else:
        value = {
            r"^\[(.*)(,.*)*\]$": "[a,b]",
            r"^\d{10}$": "1600000000",
            r"^\[\d{10},\d{10}\]$": "[1600000000,1600086400]",
            r"^-?\d+$": "100",
            r"^\[-?\d+,-?\d+\]$": "[1,1000]",
        }.get(pattern) or f"[{spec['enum'][0]}]"
    assert pattern is None or re.fullmatch(pattern, value), (name, pattern, value)
    return value


def at_length(name: str, length: int) -> str:
    """A value of exactly ``length`` characters the param's format allows (emails stay emails)."""
    if name.endswith("[email]"):
        return "a" * (length - len("@b.io")) + "@b.io"
    return "a" * length


# -- schemas/ ------------------------------------------------------------------------------


def schemas_differences() -> Iterator[Difference]:
    """Where schemas/ disagrees with the contract on import_order and update_order params."""
    for operation, ours in (
        ("import_order", IMPORT_ORDER_PARAMS),
        ("update_order", UPDATE_ORDER_PARAMS),
    ):
        theirs = params_of(operation)
        required = set(OPS[operation].get("required", []))
        mine = {form_name(name): spec for name, spec in ours.items()}
        for name in sorted(set(theirs) - set(mine)):
            yield ("schemas", operation, name, "missing")
        for name in sorted(set(mine) - set(theirs)):
            yield ("schemas", operation, name, "extra")
        for name in sorted(set(theirs) & set(mine)):
            spec, param = theirs[name], mine[name]
            if param.kind != kind_of(spec):
                yield ("schemas", operation, name, "kind")
            if param.required != (name in required):
                yield ("schemas", operation, name, "required")
            if param.max_length != spec.get("maxLength"):
                yield ("schemas", operation, name, "max_length")
            if set(param.choices or ()) != set(spec.get("enum", ())):
                yield ("schemas", operation, name, "enum")


def test_the_extract_is_the_one_documented_in_its_notes():
    """The copied extract names its source; the notes beside it name the same commit."""
    notes = CONTRACT_PATH.with_suffix(".NOTES.md").read_text("utf-8")
    assert CONTRACT["source"]["commit"] in notes
    assert len(params_of("import_order")) == 50


# -- sandbox/, by behaviour ----------------------------------------------------------------


def base_order(n: int) -> dict[str, str]:
    """The contract's required import params, filled with values the contract accepts."""
    values = {"invoice_id": f"INV-C{n}", "status": params_of("import_order")["status"]["enum"][0]}
    for name in OPS["import_order"]["required"]:
        values.setdefault(name, "1600000000")
    values["id"] = f"C-{n}"
    return values


class Probe:
    """Sends contract-derived requests to a live sandbox and records where it disagrees."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.n = 0
        self.found: list[Difference] = []

    def order(self, **more: str) -> dict[str, str]:
        self.n += 1
        return {**base_order(self.n), **more}

    def imported(self) -> str:
        """A fresh order's id (for update probes)."""
        response = self.client.post(IMPORT, data=self.order())
        assert response.status_code == 200, response.text
        return str(response.json()["order"]["id"])

    def check(self, op: str, name: str, aspect: str, response: httpx.Response, ok: bool) -> None:
        """Record a difference when the answer is not what the contract says."""
        accepted = response.status_code == 200
        named = not accepted and response.json().get("param") == name
        if accepted != ok or (not ok and not named):
            self.found.append(("sandbox", op, name, aspect))


def probe_params(probe: Probe, operation: str) -> None:
    """Each param of import_order/update_order: enums, max lengths, integers, required."""
    client = probe.client
    theirs = params_of(operation)

    def send(values: dict[str, str]) -> httpx.Response:
        if operation == "import_order":
            return client.post(IMPORT, data=probe.order(**values))
        return client.post(f"/orders/{probe.imported()}", data=values)

    for name, spec in theirs.items():
        if spec.get("type") == "array":
            continue  # line items: indexed on the wire; probed in test_sandbox_orders.py
        if "enum" in spec:
            for value in spec["enum"]:
                probe.check(operation, name, "enum", send({name: value}), ok=True)
            probe.check(operation, name, "enum", send({name: "not_a_listed_value"}), ok=False)
        elif "maxLength" in spec:
            limit = int(spec["maxLength"])
            probe.check(operation, name, "max_length", send({name: at_length(name, limit)}), True)
            over = send({name: at_length(name, limit + 1)})
            probe.check(operation, name, "max_length", over, ok=False)
        elif spec.get("type") == "integer":
            low = str(spec.get("minimum", 0))
            probe.check(operation, name, "integer", send({name: low}), ok=True)
            probe.check(operation, name, "integer", send({name: "12x"}), ok=False)
            if "minimum" in spec:
                below = send({name: str(int(spec["minimum"]) - 1)})
                probe.check(operation, name, "minimum", below, ok=False)
    for name in OPS[operation].get("required", []):
        values = probe.order()
        del values[name]
        probe.check(operation, name, "required", client.post(IMPORT, data=values), ok=False)
    # A param of import that update does not list is refused by update.
    if operation == "update_order":
        for name in sorted(set(params_of("import_order")) - set(theirs) - {"id"}):
            spec = params_of("import_order")[name]
            value = spec["enum"][0] if "enum" in spec else "1600000000"
            probe.check(operation, name, "unknown", send({name: value}), ok=False)


def probe_filters(probe: Probe, operation: str, filters: dict[str, Any], send: Any) -> None:
    """Every contract filter is accepted with a value it allows; other operators are refused."""
    ops_by_field: dict[str, set[str]] = {}
    for name, spec in filters.items():
        field, _, op = name.rstrip("]").rpartition("[")
        ops_by_field.setdefault(field, set()).add(op)
        probe.check(operation, name, "filter", send({name: sample(name, spec)}), ok=True)
    every_op = {op for ops in ops_by_field.values() for op in ops}
    for field, ops in ops_by_field.items():
        for op in sorted(every_op - ops):
            name = f"{field}[{op}]"
            response = send({name: OPERATOR_VALUES.get(op, "x")})
            probe.check(operation, name, "operator", response, ok=False)
            code = response.json().get("api_error_code") if response.status_code == 400 else None
            if code not in (None, "invalid_request"):
                probe.found.append(("sandbox", operation, name, "operator"))  # a value error


OPERATOR_VALUES = {
    "in": "[a,b]",
    "not_in": "[a,b]",
    "is_present": "true",
    "between": "[1600000000,1600086400]",
    "after": "1600000000",
    "before": "1600000000",
    "on": "1600000000",
    "lt": "1",
    "lte": "1",
    "gt": "1",
    "gte": "1",
}
"""A well-formed value per operator, so a refusal can only mean "no such filter"."""


@pytest.fixture
def probe(make_sandbox: Any) -> Iterator[Probe]:
    """A probe on a fresh sandbox (limits off, exports complete at once, no export cap)."""
    server = make_sandbox(export_delay_s=0, max_exports_in_process=100_000)
    with httpx.Client(base_url=server.base_url, auth=(server.api_key, ""), timeout=10) as client:
        yield Probe(client)


def test_sandbox_import_and_update_params_follow_the_contract(probe):
    """Enums (each listed value accepted, others refused), max lengths (at the limit accepted,
    one over refused naming the param), integers and minimums, required params, and update
    refusing import-only params: all taken from the extract."""
    probe_params(probe, "import_order")
    probe_params(probe, "update_order")
    assert_only_allowed(probe.found, "sandbox", ("import_order", "update_order"))


def test_sandbox_list_filters_and_query_params_follow_the_contract(probe: Probe) -> None:
    """Every GET /orders filter of the extract is accepted; operators it does not list for a
    field are refused; limit, sort_by and include_deleted take exactly the listed values."""
    op = "list_orders"
    client = probe.client

    def send(params: dict[str, str]) -> httpx.Response:
        return client.get("/orders", params=params)

    probe_filters(probe, op, OPS[op]["filters"], send)
    other = OPS[op]["other_query_params"]
    limit = other["limit"]
    for value, ok in (
        (limit["minimum"], True), (limit["maximum"], True),
        (limit["minimum"] - 1, False), (limit["maximum"] + 1, False),
    ):  # fmt: skip
        probe.check(op, "limit", "range", send({"limit": str(value)}), ok=ok)
    for name in ("sort_by[asc]", "sort_by[desc]"):
        for value in other[name]["enum"]:
            probe.check(op, name, "enum", send({name: value}), ok=True)
        probe.check(op, name, "enum", send({name: "id"}), ok=False)
    for value in ("true", "false"):
        probe.check(op, "include_deleted", "boolean", send({"include_deleted": value}), ok=True)
    assert_only_allowed(probe.found, "sandbox", (op,))


def test_sandbox_export_filters_follow_the_contract(probe: Probe) -> None:
    """Every POST /exports/orders filter of the extract starts an export; operators it does not
    list for a field are refused naming the param."""
    op = "export_orders"

    def send(params: dict[str, str]) -> httpx.Response:
        return probe.client.post("/exports/orders", data=params)

    probe_filters(probe, op, params_of(op), send)
    assert_only_allowed(probe.found, "sandbox", (op,))


def error_bodies(make_sandbox: Any) -> dict[str, list[dict[str, Any]]]:
    """One error body per status the sandbox can answer, provoked over real HTTP."""
    server = make_sandbox(rate_limit_per_minute=1, window_s=60)
    other = make_sandbox(fault_rate=1.0, faults=("before_commit",))
    after = make_sandbox(fault_rate=1.0, faults=("after_commit",))
    found: dict[str, list[dict[str, Any]]] = {}

    def keep(response: httpx.Response) -> None:
        found.setdefault(str(response.status_code), []).append(response.json())

    auth = (server.api_key, "")
    with httpx.Client(base_url=server.base_url, auth=auth, timeout=10) as client:
        first = client.post(IMPORT, data=base_order(1))
        assert first.status_code == 200
        keep(client.get("/orders/nope"))  # 429: the window holds one request
    server.reconfigure(rate_limit_per_minute=None)
    with httpx.Client(base_url=server.base_url, auth=auth, timeout=10) as client:
        keep(client.post(IMPORT, data=base_order(1)))  # duplicate_entry
        keep(client.post(IMPORT, data={**base_order(2), "status": "x"}))  # param_wrong_value
        keep(client.post(IMPORT, data={**base_order(3), "bogus": "1"}))  # invalid_request
        keep(client.get("/orders/nope"))  # 404
        keep(client.post("/orders", data=base_order(4)))  # 403 deprecated create
        keep(client.delete("/orders/x"))  # 405
        key = {"chargebee-idempotency-key": "k1"}
        client.post(IMPORT, data=base_order(5), headers=key)
        keep(client.post(IMPORT, data=base_order(6), headers=key))  # 422
    keep(httpx.get(f"{server.base_url}/orders", auth=("wrong", ""), timeout=10))  # 401
    for box in (other, after):
        with httpx.Client(base_url=box.base_url, auth=(box.api_key, ""), timeout=10) as client:
            keep(client.post(IMPORT, data=base_order(7)))  # 503, 500
    return found


def test_sandbox_error_bodies_follow_the_contracts_error_schemas(make_sandbox):
    """Each error status the sandbox answers carries the fields the spec requires, with a
    ``type`` and an ``api_error_code`` from the spec's list for that status."""
    found: list[Difference] = []
    bodies = error_bodies(make_sandbox)
    assert set(bodies) == {"400", "401", "403", "404", "405", "422", "429", "500", "503"}
    for status, answers in bodies.items():
        schema = CONTRACT["error_schemas"][status]
        props = schema["properties"]
        for body in answers:
            for name in schema["required"]:
                if name not in body:
                    found.append(("sandbox", "errors", status, name))
            for name in ("type", "api_error_code"):
                if name in body and body[name] not in props[name]["enum"]:
                    found.append(("sandbox", "errors", status, f"{name}={body[name]}"))
    assert_only_allowed(found, "sandbox", ("errors",))


def test_sandbox_orders_carry_only_fields_of_the_order_schema(sandbox_client):
    """An imported order (addresses and all) has the schema's required fields and no field the
    Order schema does not define."""
    schema = CONTRACT["order_schema"]
    values = {**base_order(1), "shipping_address[city]": "Oslo", "billing_address[zip]": "0150"}
    for name, spec in params_of("import_order").items():
        if "enum" in spec:
            values.setdefault(name, spec["enum"][0])
    order = sandbox_client.post(IMPORT, data=values).json()["order"]
    found: list[Difference] = [
        ("sandbox", "order", name, "missing") for name in schema["required"] if name not in order
    ]
    found += [
        ("sandbox", "order", name, "extra") for name in set(order) - set(schema["properties"])
    ]
    assert_only_allowed(found, "sandbox", ("order",))


def test_schemas_follow_the_contract():
    """schemas/ has the contract's params with its kinds, required set, enums and max lengths."""
    assert_only_allowed(list(schemas_differences()), "schemas", ("import_order", "update_order"))


def assert_only_allowed(found: list[Difference], where: str, operations: tuple[str, ...]) -> None:
    """The differences found are exactly the allow-listed ones for these operations."""
    allowed = {d for d in ALLOWED if d[0] == where and d[1] in operations}
    unexpected = sorted(set(found) - allowed)
    assert unexpected == [], f"differences from the contract: {unexpected}"
    stale = sorted(allowed - set(found))
    assert stale == [], f"allow-listed differences that no longer exist: {stale}"
