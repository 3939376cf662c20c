"""Postal codes checked against their country (Google's address data, offline) and ``XI``
accepted only with the ``eu_vat`` setting: unit tests of ``prepare.postal`` and
``validate_chunk``, and one ``validate`` run of the real CLI."""

from __future__ import annotations

import csv
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.models import Issue, ValidationRules
from pipeline.prepare.postal import invalid_postal_codes, postal_format
from pipeline.prepare.validation import FileState, validate_chunk

T = 1_700_000_000


def _bad(pairs: list[tuple[str | None, str | None]]) -> list[bool]:
    codes = pd.Series([p[0] for p in pairs], dtype="str")
    countries = pd.Series([p[1] for p in pairs], dtype="str")
    return [bool(b) for b in invalid_postal_codes(codes, countries)]


def test_german_codes_have_five_digits() -> None:
    assert _bad([("80331", "DE"), ("8033", "DE"), ("803311", "DE"), ("D-80331", "DE")]) == [
        False,
        True,
        True,
        True,
    ]


def test_british_formats_any_case_and_spacing() -> None:
    good = ["SW1A 1AA", "sw1a 1aa", "EC1Y 8SY", "M2 5BQ", "CR0 2YR", "W1A4ZZ", "GIR 0AA"]
    bad = ["12345", "SW1A", "ZZ1 1ZZ"]
    assert _bad([(c, "GB") for c in good + bad]) == [False] * len(good) + [True] * len(bad)


def test_dutch_codes_are_four_digits_and_two_letters() -> None:
    assert _bad([("1234 AB", "NL"), ("1234AB", "NL"), ("1234", "NL"), ("0123 AB", "NL")]) == [
        False,
        False,
        True,
        True,
    ]


def test_us_zip_and_zip_plus_four() -> None:
    assert _bad([("95014", "US"), ("22162-1010", "US"), ("2216-1010", "US"), ("ABCDE", "US")]) == [
        False,
        False,
        True,
        True,
    ]


def test_countries_without_postal_codes_and_unknown_ones_are_not_checked() -> None:
    """AE and HK have no postal-code format in the data: nothing can be said, nothing flagged."""
    assert postal_format("AE") is None
    assert postal_format("HK") is None
    assert (
        _bad([("00000", "AE"), ("anything", "HK"), ("1", "QQ"), (None, "DE"), ("1", None)])
        == [False] * 5
    )


def test_northern_ireland_uses_the_uk_pattern() -> None:
    assert _bad([("BT1 5GS", "XI"), ("12345", "XI")]) == [False, True]


def test_the_data_is_read_from_the_installed_package_not_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No socket may be opened: the formats ship with the package."""
    postal_format.cache_clear()

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("postal data tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert postal_format("FR") is not None
    assert _bad([("75001", "FR"), ("7500", "FR")]) == [False, True]


def _validate(cols: dict[str, list[str | None]], eu_vat: bool = False) -> list[Issue]:
    n = len(next(iter(cols.values())))
    frame = pd.DataFrame(
        {
            "id": pd.Series([f"O-{i}" for i in range(n)], dtype="str"),
            "invoice_id": pd.Series([f"INV-{i}" for i in range(n)], dtype="str"),
            "status": pd.Series(["delivered"] * n, dtype="str"),
            **{
                name: pd.array([T] * n, dtype="Int64")
                for name in ("created_at", "order_date", "shipping_date")
            },
            **{name: pd.Series(values, dtype="str") for name, values in cols.items()},
        }
    )
    found = validate_chunk(
        frame,
        np.arange(2, n + 2),
        [f"k{i}" for i in range(n)],
        sources={"shipping_address.zip": "Zip", "billing_address.country": "Land"},
        rules=ValidationRules(),
        state=FileState(),
        now=T,
        eu_vat=eu_vat,
    )
    return [issue for _, issue in found]


def test_xi_is_an_error_naming_the_value_and_the_setting_without_eu_vat() -> None:
    issues = _validate({"billing_address.country": ["XI", "GB", None]})
    assert [(i.source_line, i.rule, i.severity, i.value, i.column) for i in issues] == [
        (2, "country_xi", "error", "XI", "Land")
    ]
    assert "'XI'" in issues[0].message
    assert "eu_vat = true" in issues[0].message


def test_xi_is_accepted_with_eu_vat() -> None:
    assert _validate({"billing_address.country": ["XI", "GB"]}, eu_vat=True) == []


def test_impossible_postal_codes_are_warnings_naming_value_and_country() -> None:
    issues = _validate(
        {
            "shipping_address.country": ["DE", "NL", "US", "US", "GB", "AE"],
            "shipping_address.zip": ["1234", "1234 AB", "1234", "9501", "SW1A 1AA", "000"],
        }
    )
    found = sorted((i.source_line, i.rule, i.severity, i.value) for i in issues)
    assert found == [
        (2, "postal_code", "warning", "1234"),
        (4, "leading_zero", "warning", "1234"),  # one finding per cell: the lost zero
        (5, "leading_zero", "warning", "9501"),
    ]
    (german,) = [i for i in issues if i.rule == "postal_code"]
    assert german.column == "Zip"
    assert german.param == "shipping_address[zip]"
    assert "cannot be a postal code of DE (e.g. 26133)" in german.message


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (no stray order-import.toml)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_validate_reports_postal_warnings_and_xi_until_eu_vat_is_set(workdir: Path) -> None:
    """The real CLI: warnings keep the exit code 0 and land in validation.csv; XI is an error
    (exit 1) until the config file sets eu_vat = true."""
    plain = [
        ("INV-1", "shipped", "2023-01-02", "Berlin", "1011", "DE"),
        ("INV-2", "shipped", "2023-01-02", "Belfast", "BT1 5GS", "XI"),
        ("INV-3", "shipped", "2023-01-02", "Amsterdam", "1015 CJ", "NL"),
    ]
    rows = [(i, s, d, d, d, c, z, n) for i, s, d, c, z, n in plain]
    path = workdir / "orders.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "invoice_id",
                "status",
                "order_date",
                "created_at",
                "shipping_date",
                "shipping_address[city]",
                "shipping_address[zip]",
                "shipping_address[country]",
            ]
        )
        writer.writerows(rows)
    runner = CliRunner()
    args = ["validate", str(path), "--report-dir", str(workdir / "r1")]
    result = runner.invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "country_xi" in result.output
    assert "postal_code" in result.output
    with (workdir / "r1" / "validation.csv").open(encoding="utf-8") as fh:
        found = {(r["source_line"], r["rule"], r["severity"]) for r in csv.DictReader(fh)}
    assert ("2", "postal_code", "warning") in found
    assert ("3", "country_xi", "error") in found

    (workdir / "order-import.toml").write_text("eu_vat = true\n", encoding="utf-8")
    args = ["validate", str(path), "--report-dir", str(workdir / "r2")]
    result = runner.invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "country_xi" not in result.output
    assert "postal_code" in result.output
