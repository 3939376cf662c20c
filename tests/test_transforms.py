"""The mapping's transform layer: filters, rules, templates, grouping, skips, numbers, countries."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import Settings
from pipeline.load.rows import RawChunk
from pipeline.prepare.countries import to_alpha2
from pipeline.prepare.grouping import collapse, regroup
from pipeline.prepare.mapping import Derivation, Filter, Rule
from pipeline.prepare.prepare import prepare_rows, validate_file
from pipeline.prepare.transforms import (
    apply_filters,
    coalesce,
    derive,
    parse_number,
    rules,
    split_name,
    template,
)
from tests.exports import WRITERS, write_shopify

PRESETS = Path(__file__).resolve().parent.parent / "pipeline" / "prepare" / "presets"
ERP = Path(__file__).resolve().parent / "fixtures" / "exports" / "erp_auftraege.mapping.toml"
MAPPINGS = {
    "shopify_orders.csv": PRESETS / "shopify.toml",
    "woocommerce_orders.xlsx": PRESETS / "woocommerce.toml",
    "magento_orders.csv": PRESETS / "magento.toml",
    "erp_auftraege.csv": ERP,
}


def _s(*values: str | None) -> pd.Series:
    return pd.Series(list(values), dtype="str")


def test_filters_in_order() -> None:
    """Every filter kind: strip, prefixes, remove, regex, zero-pad, case, truncate, minor units."""
    text = _s("'02134", "#1001", "abc-x", None, "2.235,37", "x" * 10)
    cases = [
        ({"strip": "'"}, "02134", 0),
        ({"remove_prefix": "#"}, "1001", 1),
        ({"remove_suffix": "-x"}, "abc", 2),
        ({"remove": "#"}, "1001", 1),
        ({"regex_replace": ["^(\\w+)-x$", "\\1!"]}, "abc!", 2),
        ({"regex_extract": "\\d+"}, "1001", 1),
        ({"upper": True}, "ABC-X", 2),
        ({"minor_units": 2}, "223537", 4),
    ]
    for spec, want, pos in cases:
        out, _ = apply_filters(text, [Filter.model_validate(spec)], ",", ".")
        assert out.iloc[pos] == want, spec
        assert pd.isna(out.iloc[3])
    padded, _ = apply_filters(_s("2134", "SW1A"), [Filter(zero_pad=5)])
    assert padded.tolist() == ["02134", "SW1A"]
    cut_text, cut = apply_filters(text, [Filter(truncate=4)])
    assert cut_text.iloc[5] == "xxxx"
    assert cut.tolist() == [True, True, True, False, True, True]


def test_minor_units_leave_non_numbers_for_validation() -> None:
    """A value that is not a number stays as it was, so the integer check names it."""
    out, _ = apply_filters(_s("12.50", "twelve"), [Filter(minor_units=2)])
    assert out.tolist() == ["1250", "twelve"]


@given(st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False))
def test_decimal_comma_and_thousands_round_trip(value: object) -> None:
    """German-style text (``2.235,37``) parses to the same number as its English form."""
    english = f"{value:,.2f}"
    german = english.replace(",", "X").replace(".", ",").replace("X", ".")
    assert parse_number(_s(german), ",", ".").iloc[0] == pytest.approx(float(str(value)))
    assert parse_number(_s(english), ".", ",").iloc[0] == pytest.approx(float(str(value)))


def test_template_coalesce_split_rules() -> None:
    """Templates go empty when a placeholder is; coalesce takes the first non-empty column."""
    frame = pd.DataFrame(
        {
            "Name": ["#1", "", "#3"],
            "A": ["", "", "a"],
            "B": ["b", "", "x"],
            "Full": ["Anna Maria Schmidt", "Cher", ""],
            "Cancelled": ["", "2024-01-01", ""],
            "Fulfilment": ["fulfilled", "fulfilled", "unfulfilled"],
        },
        dtype="str",
    )
    assert template(frame, [("SH-", False), ("Name", True)]).fillna("?").tolist() == [
        "SH-#1",
        "?",
        "SH-#3",
    ]
    assert coalesce(frame, ["A", "B"]).fillna("?").tolist() == ["b", "?", "a"]
    assert split_name(frame["Full"], "first").fillna("?").tolist() == ["Anna Maria", "Cher", "?"]
    assert split_name(frame["Full"], "last").fillna("?").tolist() == ["Schmidt", "?", "?"]
    status = rules(
        frame,
        [
            Rule.model_validate({"when": {"Cancelled": {"blank": False}}, "value": "cancelled"}),
            Rule.model_validate({"when": {"Fulfilment": "FULFILLED"}, "value": "delivered"}),
            Rule.model_validate({"value": "awaiting_shipment"}),
        ],
    )
    assert status.tolist() == ["delivered", "cancelled", "awaiting_shipment"]


def test_countries_in_european_languages_become_codes() -> None:
    """Names and short forms from pycountry's translations; unknown text is left for validation."""
    text = _s("Deutschland", "D", "Österreich", "Schweiz", "Nederland", "España", "Italia", "UK")
    assert to_alpha2(text).tolist() == ["DE", "DE", "AT", "CH", "NL", "ES", "IT", "GB"]
    assert to_alpha2(_s("Suisse", "Royaume-Uni", "U.S.A.", "fr", "Narnia")).tolist() == [
        "CH",
        "GB",
        "US",
        "FR",
        "Narnia",
    ]


def test_groups_never_span_chunks_and_disagreements_name_both_lines() -> None:
    """Regrouped chunks keep each order whole; two lines disagreeing make a group_conflict."""
    frame = pd.DataFrame(
        {"N": ["1", "1", "2", "3", "3", "3"], "S": ["a", "", "b", "c", "", "d"]}, dtype="str"
    )
    lines = np.arange(2, 8)
    chunks = [
        RawChunk(frame.iloc[i : i + 2].reset_index(drop=True), lines[i : i + 2])
        for i in range(0, 6, 2)
    ]
    regrouped = list(regroup(iter(chunks), "N"))
    assert [c.frame["N"].tolist() for c in regrouped] == [["1", "1", "2"], ["3", "3", "3"]]
    first = collapse(regrouped[0], "N", ["S"])
    assert first.frame["S"].tolist() == ["a", "b"]
    assert first.group_lines == [(2, 3), (4,)]
    assert first.issues == []
    last = collapse(regrouped[1], "N", ["S"])
    (pos, issue), *_ = last.issues
    assert (pos, issue.rule, issue.source_line) == (0, "group_conflict", 5)
    assert "lines 5 and 7" in issue.message


def test_shopify_groups_line_items_into_one_order_each(tmp_path: Path) -> None:
    """Line-item rows become one SourceRow per order, listing its lines; a grouping that is
    switched off instead flags the repeated invoices before anything is sent."""
    export = write_shopify(tmp_path / "orders.csv", orders=9)
    settings = Settings(mapping_path=PRESETS / "shopify.toml", chunk_rows=4)
    rows = [r for chunk in prepare_rows(export.path, settings) for r in chunk]
    assert len(rows) == 9 < export.lines
    assert {r.order_id for r in rows if r.skip_reason is None} == {o.id for o in export.orders}
    assert {r.order_id: r.skip_reason for r in rows if r.skip_reason} == {
        "SH-" + k[1:]: v for k, v in export.skipped.items()
    }
    assert all(r.is_valid for r in rows)
    multi = next(r for r in rows if r.order_id == "SH-1003")
    assert multi.lines == (5, 6, 7)
    assert multi.source_line == 5
    ungrouped = tmp_path / "ungrouped.toml"
    ungrouped.write_text(
        (PRESETS / "shopify.toml").read_text("utf-8").replace('group_by = "Name"', ""), "utf-8"
    )
    summary = validate_file(export.path, Settings(mapping_path=ungrouped), None)
    assert summary.counts_by_rule.get("duplicate_row_key", 0) > 0


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_every_layout_validates_clean_with_its_mapping(tmp_path: Path, name: str) -> None:
    """Each export validates with no error; skipped rows are counted with their reason."""
    export = WRITERS[name](tmp_path / name)
    summary = validate_file(export.path, Settings(mapping_path=MAPPINGS[name]), tmp_path)
    assert summary.invalid == 0, summary.examples
    assert summary.valid == len(export.orders)
    assert summary.skipped == len(export.skipped)
    assert sum(summary.skipped_by_reason.values()) == len(export.skipped)
    rows = [r for c in prepare_rows(export.path, Settings(mapping_path=MAPPINGS[name])) for r in c]
    by_id = {r.order_id: r for r in rows if r.skip_reason is None}
    for want in export.orders:
        got = by_id[want.id].params
        assert (got["status"], got["order_date"], got["invoice_id"]) == (
            want.status,
            want.order_date,
            want.invoice_id,
        )
        assert got["shipping_address"]["city"] == want.city
    assert all(r.control and r.control["amount"] is not None for r in rows)


def test_cp1252_file_keeps_geneve_and_reads_decimal_commas(tmp_path: Path) -> None:
    """The mapping fixes encoding, delimiter and decimal comma for its file."""
    export = WRITERS["erp_auftraege.csv"](tmp_path / "erp.csv")
    rows = [r for c in prepare_rows(export.path, Settings(mapping_path=ERP)) for r in c]
    cities = {r.params["shipping_address"]["city"] for r in rows}
    assert "Genève" in cities
    assert "Köln" in cities
    assert rows[0].control == {"amount": 223537, "currency": "EUR"}
    countries = {r.raw["Land"]: r.params["shipping_address"]["country"] for r in rows}
    assert countries["Deutschland"] == countries["D"] == "DE"
    assert countries["Österreich"] == "AT"
    assert countries["Schweiz"] == "CH"


cells = st.lists(st.one_of(st.just(""), st.just(" "), st.text(max_size=12)), min_size=0, max_size=8)


@settings(max_examples=20, deadline=None)
@given(cells, cells)
def test_every_derivation_survives_any_text(first: list[str], second: list[str]) -> None:
    """Empty, blank or odd columns (all-empty included) never crash a derivation and keep the
    row count: each kind is one vectorised call per chunk."""
    n = min(len(first), len(second))
    frame = pd.DataFrame({"A": first[:n], "B": second[:n]}, dtype="str")
    kinds = [
        Derivation("column", ("A",)),
        Derivation("coalesce", ("A", "B")),
        Derivation("template", ("A", "B"), template=(("x-", False), ("A", True), ("B", True))),
        Derivation("split_name", ("A",), part="first"),
        Derivation("split_name", ("A",), part="last"),
        Derivation(
            "rules",
            ("A", "B"),
            rules=(
                Rule.model_validate({"when": {"A": {"blank": False}}, "column": "B"}),
                Rule.model_validate({"value": "z"}),
            ),
        ),
    ]
    every_filter = tuple(
        Filter.model_validate(f)
        for f in (
            {"strip": " '"},
            {"regex_extract": "(\\w+)"},
            {"zero_pad": 4},
            {"truncate": 3},
            {"minor_units": 2},
            {"upper": True},
        )
    )
    for how in kinds:
        for filters in ((), every_filter):
            text, cut = derive(frame, replace(how, filters=filters), ",", ".")
            assert len(text) == len(cut) == n


def _split_name_by_regex(text: pd.Series, part: str) -> pd.Series:
    """The reference: whitespace runs collapsed, then ``^(.+?)(?: ([^ ]+))?$`` per cell."""
    import re

    from pipeline.prepare.transforms import blank_to_na

    out: list[str | None] = []
    for cell in blank_to_na(text).tolist():
        if not isinstance(cell, str):
            out.append(None)
            continue
        found = re.fullmatch(r"(.+?)(?: ([^ ]+))?", re.sub(r"\s+", " ", cell), re.S)
        value = None if found is None else found.group(1 if part == "first" else 2)
        out.append(value or None)
    return pd.Series(out, dtype="str")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from("ab Ü-\t\u00a0\u3000x"), max_size=12) | st.none(),
        min_size=1,
        max_size=20,
    )
)
def test_split_name_matches_the_regex_reading(cells: list[str | None]) -> None:
    """split_name (one split at the last space, by pyarrow) gives what the pattern
    ``first = all but the last word, last = the last word`` gives per cell."""
    text = pd.Series(cells, dtype="str")
    for part in ("first", "last"):
        got = split_name(text, part).tolist()
        want = _split_name_by_regex(text, part).tolist()
        assert [v if isinstance(v, str) else None for v in got] == [
            v if isinstance(v, str) else None for v in want
        ], (cells, part)
