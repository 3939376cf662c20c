"""``schema_passes`` (pyarrow/numpy checks) says a frame passes exactly when pandera finds
nothing in it: validation skips pandera for the chunks it passes, so a case it wrongly passed
would lose a finding."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import import_order_schema, schema_passes

TS_RANGE = (1_500_000_000, 1_900_000_000)
TEXTS = {
    "status": ["shipped", "delivered", "Shipped", "new", ""],
    "shipping_address.country": ["DE", "XI", "de", "Germany", "ZZ"],
    "shipping_address.email": ["a@b.io", "a b@c.de", "a@b", "x@y.z\n", "é@ü.de"],
    "id": ["OLD-1", ".", "..", "a/b", " x", "ok id"],
    "document_number": ["D1", "x" * 50, "x" * 51],
    "batch_id": ["b", "y" * 60],
}


def _column(name: str, data: st.DataObject, rows: int) -> pd.Series:
    if name in ("order_date", "refundable_credits_issued"):
        numbers = st.one_of(
            st.none(),
            st.sampled_from([0, -1, TS_RANGE[0], TS_RANGE[0] - 1, TS_RANGE[1], TS_RANGE[1] + 1]),
        )
        return pd.Series(data.draw(st.lists(numbers, min_size=rows, max_size=rows)), dtype="Int64")
    cells = st.one_of(st.none(), st.sampled_from(TEXTS[name]))
    return pd.Series(data.draw(st.lists(cells, min_size=rows, max_size=rows)), dtype="str")


@settings(max_examples=80, deadline=None)
@given(
    data=st.data(),
    names=st.lists(
        st.sampled_from([*TEXTS, "order_date", "refundable_credits_issued"]),
        min_size=1,
        unique=True,
    ),
    rows=st.integers(1, 6),
)
def test_schema_passes_iff_pandera_finds_nothing(
    data: st.DataObject, names: list[str], rows: int
) -> None:
    frame = pd.DataFrame({name: _column(name, data, rows) for name in names})
    try:
        import_order_schema(frame.columns, TS_RANGE).validate(frame, lazy=True)
    except pa.errors.SchemaErrors:
        clean = False
    else:
        clean = True
    assert schema_passes(frame, TS_RANGE) is clean


def test_a_numeric_column_of_another_dtype_goes_to_pandera() -> None:
    frame = pd.DataFrame({"order_date": pd.Series([TS_RANGE[0]], dtype="int64")})
    assert schema_passes(frame, TS_RANGE) is False


VALID = {
    "status": "shipped",
    "order_date": TS_RANGE[0],
    "shipping_address.country": "DE",
    "shipping_address.email": "a@b.io",
    "id": "OLD-1",
    "document_number": "x" * 50,
    "refundable_credits_issued": 0,
}
BAD = [
    ("status", "new"),
    ("status", None),
    ("order_date", TS_RANGE[1] + 1),
    ("order_date", TS_RANGE[0] - 1),
    ("order_date", None),
    ("shipping_address.country", "de"),
    ("shipping_address.email", "a b@c.de"),
    ("id", ".."),
    ("id", "a/b"),
    ("document_number", "x" * 51),
    ("refundable_credits_issued", -1),
]


def _frame(override: tuple[str, object] | None = None) -> pd.DataFrame:
    cells = dict(VALID)
    if override is not None:
        cells[override[0]] = override[1]
    numeric = ("order_date", "refundable_credits_issued")
    return pd.DataFrame(
        {
            name: pd.Series([value, VALID[name]], dtype="Int64" if name in numeric else "str")
            for name, value in cells.items()
        }
    )


def test_a_valid_frame_passes() -> None:
    frame = _frame()
    import_order_schema(frame.columns, TS_RANGE).validate(frame, lazy=True)
    assert schema_passes(frame, TS_RANGE) is True


@pytest.mark.parametrize("bad", BAD, ids=[f"{name}={value!r}" for name, value in BAD])
def test_each_kind_of_bad_cell_is_left_to_pandera(bad: tuple[str, object]) -> None:
    frame = _frame(bad)
    with pytest.raises(pa.errors.SchemaErrors):
        import_order_schema(frame.columns, TS_RANGE).validate(frame, lazy=True)
    assert schema_passes(frame, TS_RANGE) is False
