"""schemas/: the parameter table matches FACTS §5/§6 and the pandera schema flags what it should."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pytest

from schemas import (
    CANCELLATION_REASONS,
    COUNTRY_CODES,
    IMPORT_ORDER_PARAMS,
    IMPORT_STATUSES,
    REQUIRED_IMPORT_PARAMS,
    UPDATE_ORDER_PARAMS,
    VALIDATION_STATUSES,
    check_rule,
    form_name,
    import_order_schema,
)


def test_enums_and_required_match_the_fact_sheet() -> None:
    """8 import statuses, 14 reasons, 4 validation statuses, 5 required params."""
    assert len(IMPORT_STATUSES) == 8
    assert "new" not in IMPORT_STATUSES
    assert len(CANCELLATION_REASONS) == 14
    assert set(VALIDATION_STATUSES) == {"not_validated", "valid", "partially_valid", "invalid"}
    required = {name for name, spec in IMPORT_ORDER_PARAMS.items() if spec.required}
    assert required == set(REQUIRED_IMPORT_PARAMS)


def test_countries_come_from_pycountry_plus_xi() -> None:
    """ISO alpha-2 codes from pycountry, plus XI; not names or alpha-3."""
    assert {"US", "DE", "GB", "XI"} <= COUNTRY_CODES
    assert "GBR" not in COUNTRY_CODES
    assert len(COUNTRY_CODES) > 240


def test_limits_of_a_few_params() -> None:
    """Spot-check max lengths from FACTS §5.1, and that update has no billing address."""
    assert IMPORT_ORDER_PARAMS["id"].max_length == 40
    assert IMPORT_ORDER_PARAMS["note"].max_length == 600
    assert IMPORT_ORDER_PARAMS["tracking_url"].max_length == 255
    assert IMPORT_ORDER_PARAMS["shipping_address.email"].max_length == 70
    assert IMPORT_ORDER_PARAMS["billing_address.zip"].max_length == 20
    assert not any(name.startswith("billing_address") for name in UPDATE_ORDER_PARAMS)
    assert form_name("billing_address.zip") == "billing_address[zip]"


def test_schema_reports_each_failure_with_its_rule() -> None:
    """Lazy validation returns every failure; check numbers map back to our rule names."""
    frame = pd.DataFrame(
        {
            "status": pd.Series(["shipped", "new", None], dtype="str"),
            "note": pd.Series(["ok", "x" * 601, None], dtype="str"),
            "shipping_address.country": pd.Series(["DE", "Germany", None], dtype="str"),
            "shipping_address.email": pd.Series(["a@b.de", "nope", None], dtype="str"),
            "order_date": pd.array([1_700_000_000, 5, None], dtype="Int64"),
            "refundable_credits_issued": pd.array([0, -1, None], dtype="Int64"),
        }
    )
    schema = import_order_schema(frame.columns, (631_152_000, 2_000_000_000))
    with pytest.raises(pa.errors.SchemaErrors) as info:
        schema.validate(frame, lazy=True)
    cases = info.value.failure_cases
    found = set()
    for column, check, number, index in zip(
        cases["column"], cases["check"], cases["check_number"], cases["index"], strict=True
    ):
        rule = "required" if check == "not_nullable" else check_rule(column, int(number))
        found.add((column, rule, int(index)))
    assert found == {
        ("status", "enum", 1),
        ("status", "required", 2),
        ("note", "max_length", 1),
        ("shipping_address.country", "country", 1),
        ("shipping_address.email", "email", 1),
        ("order_date", "timestamp_range", 1),
        ("order_date", "required", 2),
        ("refundable_credits_issued", "min_value", 1),
    }
