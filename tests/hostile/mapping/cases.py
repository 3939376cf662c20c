# ruff: noqa: E501  (a table of cases: one case per line reads best)
"""The hostile mapping corpus: (name, mapping bytes, what the error must say).

Every mapping is run by the real CLI against ``sample_data/legacy_orders.csv`` (columns
``Order #``, ``Invoice No``, ``Status``, ...): ``validate FILE --mapping M`` must exit 2 with one
message naming the mapping file and the offending key, and never a traceback.
"""

from __future__ import annotations

from pathlib import Path

BASE = (
    Path(__file__).resolve().parents[3] / "sample_data" / "legacy_orders.mapping.toml"
).read_text("utf-8")
"""A valid mapping for the sample file; most cases add one bad line to it."""


def _top(extra: str) -> bytes:
    return (extra + "\n" + BASE).encode("utf-8")


def _with(extra: str) -> bytes:
    return (BASE + "\n" + extra + "\n").encode("utf-8")


def _replace(old: str, new: str) -> bytes:
    assert old in BASE, old
    return BASE.replace(old, new).encode("utf-8")


CASES: list[tuple[str, bytes, str]] = [
    ("bad_strptime_directive", _replace('formats = ["%d/%m/%Y %H:%M", "%d/%m/%Y"]', 'formats = ["%d/%m/%Q"]'), "[dates] formats: '%d/%m/%Q' is not a strptime format"),
    ("lone_percent_format", _replace('formats = ["%d/%m/%Y %H:%M", "%d/%m/%Y"]', 'formats = ["%d/%m/%Y %"]'), "a lone % at the end"),
    ("wrong_type_version", b'version = "1"\n', "[version] must be 1"),
    ("unknown_top_key", _top("colour = 3"), "[colour] unknown key"),
    ("unknown_table", _with("[frobnicate]\nx = 1"), "[frobnicate] unknown key"),
    ("unknown_dates_key", _replace('timezone = "Europe/Berlin"', 'tz = "Europe/Berlin"'),
     "[dates] tz: unknown key"),
    ("excel_date_system", _replace("[dates]\n", "[dates]\nexcel_date_system = 1901\n"),
     "[dates] excel_date_system: must be 1900 or 1904"),
    ("excel_date_system_text", _replace("[dates]\n", '[dates]\nexcel_date_system = "x"\n'),
     "[dates] excel_date_system: must be 1900 or 1904"),
    ("dates_params_number", _replace("[dates]\n", "[dates]\nparams = 5\n"),
     "[dates] params: must be a valid dictionary"),
    ("ambiguous_value", _replace('ambiguous = "earlier"', 'ambiguous = "maybe"'),
     "[dates] ambiguous: must be"),
    ("column_list_of_numbers", _replace('"Status" = "status"', '"Status" = [1, 2]'),
     "[columns] Status"),
    ("unknown_param", _replace('"Status" = "status"', '"Status" = "statuss"'),
     "[columns] 'Status': 'statuss' is not an import_order parameter"),
    ("not_utf8", BASE.replace("# Mapping", "# Mapping \u00e9t\u00e9").encode("cp1252"),
     "not UTF-8 text"),
    ("toml_syntax", b"version = 1\n[columns\n", "not valid TOML"),
    ("toml_duplicate_key", b"version = 1\nversion = 1\n", "not valid TOML"),
    ("template_missing_column", _with('[params.reference_id]\ntemplate = "R-{Order Nr}"'),
     "[params.reference_id] names column 'Order Nr'"),
    ("template_lone_brace", _with('[params.reference_id]\ntemplate = "R-{Order #"'),
     "[params.reference_id] template"),
    ("rule_wrong_type", _with('[params.note]\nrules = [{ when = { "Status" = 3.5j }, value = "x" }]'),
     "not valid TOML"),
    ("rule_when_not_table", _with('[params.note]\nrules = [{ when = "Status", value = "x" }]'),
     "[params.note] rules.0.when"),
    ("rule_without_value", _with('[params.note]\nrules = [{ when = { "Status" = "x" } }]'),
     "[params.note] rules.0: a rule needs exactly one of value or column"),
    ("rule_missing_column", _with('[params.reference_id]\nrules = [{ when = { "Stat" = "x" }, value = "y" }]'),
     "[params.reference_id] names column 'Stat'"),
    ("two_sources", _with('[params.note]\ncolumn = "Notes"\nvalue = "x"'),
     "[params.note] needs exactly one of"),
    ("group_by_missing", _with('[orders]\ngroup_by = "Order Number"'),
     "[orders] group_by: names column 'Order Number'"),
    ("group_by_wrong_type", _with("[orders]\ngroup_by = 1"),
     "[orders] group_by: must be a valid string"),
    ("invalid_regex", _with('[params.reference_id]\ncolumn = "Order #"\nfilters = [{ regex_extract = "((" }]'),
     "[params.reference_id] filters.0: invalid regular expression"),
    ("invalid_regex_condition", _with('[[skip]]\nwhen = { "Status" = { matches = "[" } }\nreason = "x"'),
     "[skip.0] when.Status.matches: invalid regular expression"),
    ("filter_two_keys", _with('[clean]\n"Notes" = [{ strip = " ", upper = true }]'),
     "[clean.Notes] 0: a filter is a table with exactly one key"),
    ("filter_unknown", _with('[clean]\n"Notes" = [{ shout = true }]'),
     "[clean.Notes] 0.shout: unknown key"),
    ("zero_pad_negative", _with('[clean]\n"Ship To Zip" = [{ zero_pad = -5 }]'),
     "[clean.Ship To Zip] 0.zero_pad"),
    ("clean_missing_column", _with('[clean]\n"Zip" = [{ strip = "\'" }]'),
     "[clean.'Zip'] names column 'Zip'"),
    ("skip_without_reason", _with('[[skip]]\nwhen = { "Status" = "x" }'),
     "[skip.0] reason"),
    ("skip_missing_column", _with('[[skip]]\nwhen = { "Paid" = "no" }\nreason = "unpaid"'),
     "[skip.0] when: names column 'Paid'"),
    ("control_without_currency", _with('[control]\namount = "Credits (cents)"'),
     "[control] needs exactly one of currency"),
    ("control_missing_column", _with('[control]\namount = "Total"\ncurrency_code = "EUR"'),
     "[control] amount: names column 'Total'"),
    ("file_bad_encoding", _with('[file]\nencoding = "klingon"'),
     "[file] encoding: unknown encoding 'klingon'"),
    ("file_same_separators", _with('[file]\ndecimal = ","\nthousands = ","'),
     "[file] decimal and thousands separators must differ"),
    ("countries_bad", _top('countries = "maybe"'), "[countries] must be"),
    ("param_twice", _with('[params.status]\nvalue = "shipped"'),
     "[params.status] 'status' is also mapped in [columns.'Status']"),
]  # fmt: skip
