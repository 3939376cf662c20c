"""Mapping: TOML parsing, value maps, id policy, and property tests for dates and time zones."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError
from pipeline.prepare.apply import apply, bind
from pipeline.prepare.dates import DatePolicy, parse_dates
from pipeline.prepare.mapping import load_mapping, normalise_param, parse_mapping
from pipeline.prepare.suggest import guess_date_formats, match_header
from schemas import IMPORT_ORDER_PARAMS, INTEGER_PARAMS, REQUIRED_IMPORT_PARAMS, TIMESTAMP_PARAMS

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
UTC = dt.UTC


def _reference(wall: dt.datetime, zone: str, earlier: bool) -> int:
    """Unix seconds of a wall-clock time by zoneinfo rules (fold=0 earlier; gaps shift forward)."""
    tz = ZoneInfo(zone)
    fold0 = wall.replace(tzinfo=tz, fold=0)
    fold1 = wall.replace(tzinfo=tz, fold=1)
    exists = fold0.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall
    if not exists:  # in a gap: the first instant after it
        instant = fold1.astimezone(UTC)
        while instant.astimezone(tz).replace(tzinfo=None) > wall:
            instant -= dt.timedelta(minutes=1)
        return int((instant + dt.timedelta(minutes=1)).timestamp()) // 60 * 60
    chosen = fold0 if earlier else fold1
    return int(chosen.astimezone(UTC).timestamp())


walls = st.datetimes(min_value=dt.datetime(1995, 1, 1), max_value=dt.datetime(2035, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0)
)


@settings(max_examples=150, deadline=None)
@given(st.lists(walls, min_size=1, max_size=20), st.sampled_from(ZONES), st.booleans())
def test_wall_clock_to_unix_matches_zoneinfo(
    values: list[dt.datetime], zone: str, earlier: bool
) -> None:
    """Day-first wall-clock text in any zone converts like zoneinfo, across DST folds and gaps."""
    text = pd.Series([v.strftime("%d/%m/%Y %H:%M") for v in values], dtype="str")
    policy = DatePolicy(
        formats=("%d/%m/%Y %H:%M",), timezone=zone, ambiguous="earlier" if earlier else "later"
    )
    got = parse_dates(text, policy).seconds.tolist()
    assert got == [_reference(v, zone, earlier) for v in values]


@settings(max_examples=100, deadline=None)
@given(
    st.datetimes(
        min_value=dt.datetime(1995, 1, 1),
        max_value=dt.datetime(2035, 1, 1),
        timezones=st.sampled_from([ZoneInfo(z) for z in ZONES]),
    )
)
def test_offset_and_unix_inputs_keep_their_instant(moment: dt.datetime) -> None:
    """ISO 8601 with an offset and Unix seconds mean the same instant whatever the policy zone."""
    moment = moment.replace(microsecond=0)
    expected = int(moment.timestamp())
    text = pd.Series([moment.isoformat(), str(expected)], dtype="str")
    got = parse_dates(text, DatePolicy(timezone="Asia/Kolkata")).seconds.tolist()
    assert got == [expected, expected]


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=61 * 86400, max_value=80_000 * 86400), st.sampled_from([1900, 1904]))
def test_excel_serials_in_both_systems(seconds: int, system: int) -> None:
    """A serial day number maps to the Excel calendar of its workbook (1904 = +1462 days)."""
    serial = seconds / 86400
    base = dt.datetime(1899, 12, 30) if system == 1900 else dt.datetime(1904, 1, 1)
    wall = base + dt.timedelta(days=serial)
    text = pd.Series([repr(serial)], dtype="str")
    got = parse_dates(text, DatePolicy(excel_date_system=system)).seconds.tolist()
    expected = int(wall.replace(tzinfo=UTC).timestamp() + 0.5)
    assert abs(got[0] - expected) <= 1


def test_ambiguous_and_nonexistent_can_be_errors() -> None:
    """With 'error' policies DST folds and gaps are reported per cell, not guessed."""
    text = pd.Series(["27/10/2024 02:30", "31/03/2024 02:30", "31/02/2024 10:00"], dtype="str")
    policy = DatePolicy(
        formats=("%d/%m/%Y %H:%M",),
        timezone="Europe/Berlin",
        ambiguous="error",
        nonexistent="error",
    )
    result = parse_dates(text, policy)
    assert result.seconds.isna().all()
    reasons = result.errors.tolist()
    assert "twice" in reasons[0]
    assert "does not exist" in reasons[1]
    assert "not a date" in reasons[2]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["Shipped", " shipped ", "SHIPPED", "Cancelled - fraud", "x"])))
def test_value_map_is_case_and_space_insensitive(statuses: list[str]) -> None:
    """Value maps match case- and whitespace-insensitively; unknown text passes through."""
    spec = parse_mapping(
        {
            "columns": {"S": "status", "I": "invoice_id"},
            "constants": {"created_at": "1680000000", "order_date": "1680000000"},
            "defaults": {"shipping_date": "1680000000"},
            "values": {
                "status": {
                    "shipped": "shipped",
                    "Cancelled - fraud": {
                        "status": "cancelled",
                        "cancellation_reason": "fraudulent_transaction",
                    },
                }
            },
        },
        None,
        IMPORT_ORDER_PARAMS,
        TIMESTAMP_PARAMS,
    )
    bound = bind(
        spec,
        ["S", "I"],
        path=Path("f.csv"),
        header_line=1,
        required=REQUIRED_IMPORT_PARAMS,
        timestamp_params=TIMESTAMP_PARAMS,
        integer_params=INTEGER_PARAMS,
        excel_date_system=None,
    )
    frame = pd.DataFrame({"S": statuses, "I": ["INV"] * len(statuses)}, dtype="str")
    mapped = apply(bound, frame, np.arange(2, len(statuses) + 2))
    expected = {
        "Shipped": ("shipped", None),
        " shipped ": ("shipped", None),
        "SHIPPED": ("shipped", None),
        "Cancelled - fraud": ("cancelled", "fraudulent_transaction"),
        "x": ("x", None),
    }
    for i, raw in enumerate(statuses):
        status, reason = expected[raw]
        assert mapped.params["status"].iloc[i] == status
        got_reason = mapped.params.get("cancellation_reason")
        value = None if got_reason is None else got_reason.iloc[i]
        assert (None if pd.isna(value) else value) == reason


@given(st.sampled_from(sorted(IMPORT_ORDER_PARAMS)))
def test_param_names_round_trip_between_forms(param: str) -> None:
    """Dotted and bracket forms normalise to the same dotted name."""
    head, _, tail = param.partition(".")
    bracket = f"{head}[{tail}]" if tail else param
    assert normalise_param(bracket) == normalise_param(param) == param


@pytest.mark.parametrize(
    ("header", "param"),
    [
        ("Order #", "document_number"),
        ("Invoice No.", "invoice_id"),
        ("invoice_id", "invoice_id"),
        ("Ship To City", "shipping_address.city"),
        ("Billing Address Zip", "billing_address.zip"),
        ("shipping_address[country]", "shipping_address.country"),
        ("Order Date", "order_date"),
        ("Shipped At", "shipped_at"),
        ("Favourite colour", None),
    ],
)
def test_header_matching(header: str, param: str | None) -> None:
    """mapping init's fuzzy matcher knows legacy synonyms and API names."""
    assert match_header(header, IMPORT_ORDER_PARAMS) == param


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('[columns]\n"A" = "nope"\n', "[columns] 'A'"),
        ('[dates]\ntimezone = "Nowhere/City"\n', "unknown time zone"),
        ('[dates]\nformats = ["%Y-%m-%dT%H:%M%z"]\n', "%z"),
        ('[id]\nsource = "magic"\n', "[id] source: must be"),
        ('[id]\nsource = "column"\n', "no column maps to"),
        ("[frobnicate]\n", "[frobnicate] unknown key"),
        ("not toml = = =\n", "not valid TOML"),
    ],
)
def test_bad_mapping_files_name_file_and_key(tmp_path: Path, toml: str, needle: str) -> None:
    """Every mapping problem is a ConfigError naming the mapping file and the key."""
    path = tmp_path / "m.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_mapping(path, IMPORT_ORDER_PARAMS, TIMESTAMP_PARAMS)
    assert str(path) in str(info.value)
    assert needle in str(info.value)


def test_sample_mapping_loads() -> None:
    """The shipped sample mapping parses: Berlin dates, document-number ids with OLD- prefix."""
    spec = load_mapping(
        Path(__file__).resolve().parent.parent / "sample_data" / "legacy_orders.mapping.toml",
        IMPORT_ORDER_PARAMS,
        TIMESTAMP_PARAMS,
    )
    assert spec.date_default.timezone == "Europe/Berlin"
    assert (spec.id.source, spec.id.prefix) == ("document_number", "OLD-")


def test_docs_example_mapping_parses() -> None:
    """The full example in docs/mapping.md is a valid mapping file."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "mapping.md").read_text("utf-8")
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    spec = parse_mapping(tomllib.loads(example), None, IMPORT_ORDER_PARAMS, TIMESTAMP_PARAMS)
    assert spec.ignore == ("Internal notes",)
    assert spec.date_params["shipping_date"].timezone == "America/New_York"
    assert spec.values["status"]["cancelled - other"] == {
        "status": "cancelled",
        "cancellation_reason": "others",
    }
    assert spec.derive["created_at"].columns == ("Order Date",)


def test_every_docs_toml_block_is_a_valid_mapping() -> None:
    """Every ```toml block of docs/mapping.md loads; the ERP example is the tested fixture."""
    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "mapping.md").read_text("utf-8")
    blocks = [part.split("```", 1)[0] for part in doc.split("```toml\n")[1:]]
    assert len(blocks) >= 4
    for block in blocks:
        parse_mapping(tomllib.loads(block), None, IMPORT_ORDER_PARAMS, TIMESTAMP_PARAMS)
    fixture = root / "tests" / "fixtures" / "exports" / "erp_auftraege.mapping.toml"
    assert tomllib.loads(fixture.read_text("utf-8")) in [tomllib.loads(b) for b in blocks]


@pytest.mark.parametrize("name", ["shopify", "woocommerce", "magento"])
def test_presets_load(name: str) -> None:
    """Each shipped preset is a valid mapping that groups, skips and maps the invoice id."""
    from pipeline.prepare.suggest import preset_text

    spec = parse_mapping(
        tomllib.loads(preset_text(name)), None, IMPORT_ORDER_PARAMS, TIMESTAMP_PARAMS
    )
    assert spec.skip
    assert spec.derive["invoice_id"].kind == "template"
    assert (spec.group_by is not None) == (name == "shopify")


@pytest.mark.parametrize(
    ("samples", "formats"),
    [
        (["05/04/2023 14:22", "28/12/2023 09:00"], ["%d/%m/%Y %H:%M"]),
        (["12/28/2023", "01/02/2023"], ["%m/%d/%Y"]),
        (["2023-04-05", "2023-04-05 10:11:12"], ["%Y-%m-%d", "%Y-%m-%d %H:%M:%S"]),
        (["2023-04-05T10:00:00Z", "1680000000"], []),
    ],
)
def test_mapping_init_guesses_date_formats(samples: list[str], formats: list[str]) -> None:
    """mapping init proposes the formats that parse every sample (day-first when ambiguous)."""
    assert guess_date_formats(samples) == formats


def test_overflowing_numbers_are_cell_errors_not_crashes() -> None:
    """40-digit or 1e308 date cells are reported per cell (no int64 overflow, no warning)."""
    text = pd.Series(["9" * 40, "-1e308", "1680000000"], dtype="str")
    result = parse_dates(text, DatePolicy())
    assert result.seconds.tolist()[2] == 1_680_000_000
    assert result.seconds.isna().tolist() == [True, True, False]
    assert "too large" in str(result.errors.iloc[0])


def test_magento_preset_prints_the_country_next_step_and_its_defaults_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Magento grid has no country: ``mapping init --preset magento`` says what to add;
    uncommenting the preset's [defaults] as told gives every address that country (so its
    postal codes are checked: a Dutch code is no German one)."""
    import csv

    from click.testing import CliRunner

    from pipeline.cli import main
    from tests.exports import write_magento

    monkeypatch.chdir(tmp_path)
    export = write_magento(tmp_path / "export.csv")
    out_file = tmp_path / "m.toml"
    runner = CliRunner()
    args = ["mapping", "init", str(export.path), "--preset", "magento", "--out", str(out_file)]
    result = runner.invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Next: the Magento grid export has no country column" in result.output
    assert "Next: set [control] currency_code" in result.output
    text = out_file.read_text("utf-8")
    for line in ("[defaults]", '"shipping_address.country" = "US"', '"billing_address.country"'):
        assert f"# {line}" in text
    text = text.replace("# [defaults]", "[defaults]")
    text = text.replace('# "shipping_address.country" = "US"', '"shipping_address.country" = "DE"')
    text = text.replace('# "billing_address.country" = "US"', '"billing_address.country" = "DE"')
    out_file.write_text(text, "utf-8")
    report = tmp_path / "r"
    args = ["validate", str(export.path), "--mapping", str(out_file), "--report-dir", str(report)]
    result = runner.invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with (report / "validation.csv").open(encoding="utf-8") as fh:
        postal = {r["value"] for r in csv.DictReader(fh) if r["rule"] == "postal_code"}
    assert "1015 CJ" in postal
    assert "80331" not in postal
