"""Map source columns to import_order params: the TOML mapping file, value maps, dates, ids, keys.

Imports errors, models, keys (and the sibling ``dates``). The list of valid parameter names is
passed in by the caller (``known_params``), so this module stays independent of ``schemas``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import ConfigError
from pipeline.keys import DEFAULT_ID_PREFIX, derived_order_id
from pipeline.prepare.dates import DatePolicy

IdSource = Literal[
    "column",  # the order id is a column of the file
    "document_number",  # prefix + the row's document_number
    "derived",  # pipeline.keys.derived_order_id(row_key, prefix): deterministic, from the row key
]
ID_SOURCES: tuple[IdSource, ...] = ("column", "document_number", "derived")


@dataclass(frozen=True, slots=True)
class IdPolicy:
    """How each row's order ``id`` is chosen (mapping table ``[id]``)."""

    source: IdSource = "derived"
    prefix: str = ""
    """Prepended to document numbers; for ``derived`` the default is ``MIG-``."""
    key_columns: tuple[str, ...] = ()
    """Source columns whose values, joined, are the row key when the data has no id."""


@dataclass(frozen=True, slots=True)
class MappingSpec:
    """A parsed mapping file (or the implicit API-column mapping when there is none)."""

    columns: dict[str, str]
    """Source column → dotted param (``shipping_address.city``)."""
    constants: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    """param → normalised source text → {param: value} it sets."""
    date_default: DatePolicy = field(default_factory=DatePolicy)
    date_params: dict[str, DatePolicy] = field(default_factory=dict)
    id: IdPolicy = field(default_factory=IdPolicy)
    ignore: tuple[str, ...] = ()
    excel_date_system: int | None = None
    """Explicit ``[dates] excel_date_system``; None = the workbook's own (1900 for CSV)."""
    path: Path | None = None
    """The mapping file, or None for API-column input."""


def normalise_value(text: str) -> str:
    """Value-map key form: lower case, whitespace collapsed."""
    return " ".join(text.split()).casefold()


def normalise_param(name: str) -> str:
    """``shipping_address[city]`` or ``shipping_address.city`` → ``shipping_address.city``."""
    name = name.strip()
    if name.endswith("]") and "[" in name:
        head, _, tail = name[:-1].partition("[")
        return f"{head}.{tail}"
    return name


def load_mapping(
    path: Path, known_params: Collection[str], timestamp_params: Collection[str]
) -> MappingSpec:
    """Read and check a TOML mapping file (format: docs/mapping.md).

    Raises:
        ConfigError: unreadable or invalid, naming the file and the offending key.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: mapping file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read mapping file ({type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_mapping(data, path, known_params, timestamp_params)


def parse_mapping(
    data: Mapping[str, Any],
    path: Path | None,
    known_params: Collection[str],
    timestamp_params: Collection[str],
) -> MappingSpec:
    """Build a MappingSpec from TOML data; every problem names the file and key."""
    where = str(path) if path else "mapping"

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"{where}: [{key}] {message}")

    allowed = {"version", "columns", "constants", "defaults", "values", "dates", "id", "ignore"}
    for key in data:
        if key not in allowed:
            raise fail(key, f"unknown key; expected one of {', '.join(sorted(allowed))}")

    if data.get("version", 1) != 1:
        raise fail("version", f"must be 1 (this tool's mapping format), not {data['version']!r}")

    def param(name: object, key: str) -> str:
        if not isinstance(name, str):
            raise fail(key, f"{name!r} must be a parameter name (text)")
        dotted = normalise_param(name)
        if dotted not in known_params:
            raise fail(key, f"{name!r} is not an import_order parameter")
        return dotted

    def table(key: str) -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, Mapping):
            raise fail(key, "must be a table")
        return value

    columns: dict[str, str] = {}
    for src, target in table("columns").items():
        dotted = param(target, f"columns.{src!r}")
        if dotted in columns.values():
            raise fail(f"columns.{src!r}", f"two columns map to {dotted!r}")
        columns[str(src).strip()] = dotted
    constants = {
        param(k, f"constants.{k}"): _text(v, where, f"constants.{k}")
        for k, v in table("constants").items()
    }
    defaults = {
        param(k, f"defaults.{k}"): _text(v, where, f"defaults.{k}")
        for k, v in table("defaults").items()
    }

    values: dict[str, dict[str, dict[str, str]]] = {}
    for target, entries in table("values").items():
        dotted = param(target, f"values.{target}")
        if not isinstance(entries, Mapping):
            raise fail(f"values.{target}", "must be a table of source text = value")
        out: dict[str, dict[str, str]] = {}
        for source_text, mapped in entries.items():
            key = f"values.{target}.{source_text!r}"
            if isinstance(mapped, Mapping):
                sets = {param(k, key): _text(v, where, key) for k, v in mapped.items()}
            else:
                sets = {dotted: _text(mapped, where, key)}
            out[normalise_value(str(source_text))] = sets
        values[dotted] = out

    dates = table("dates")
    date_default = _date_policy(dates, where, "dates", None)
    date_params: dict[str, DatePolicy] = {}
    for name, sub in dates.get("params", {}).items():
        dotted = param(name, f"dates.params.{name}")
        if dotted not in timestamp_params:
            raise fail(f"dates.params.{name}", "is not a date (Unix timestamp) parameter")
        if not isinstance(sub, Mapping):
            raise fail(f"dates.params.{name}", "must be a table")
        date_params[dotted] = _date_policy(sub, where, f"dates.params.{name}", date_default)

    id_table = table("id")
    unknown_id = set(id_table) - {"source", "prefix", "key_columns"}
    if unknown_id:
        raise fail("id", f"unknown key(s) {', '.join(sorted(unknown_id))}")
    default_source: IdSource = "column" if "id" in columns.values() else "derived"
    source = id_table.get("source", default_source)
    if source not in ID_SOURCES:
        raise fail("id.source", f"must be one of {', '.join(ID_SOURCES)}, not {source!r}")
    prefix = _text(
        id_table.get("prefix", DEFAULT_ID_PREFIX if source == "derived" else ""), where, "id.prefix"
    )
    key_columns = id_table.get("key_columns", [])
    if not isinstance(key_columns, list) or not all(isinstance(c, str) for c in key_columns):
        raise fail("id.key_columns", "must be a list of column names")
    if source == "column" and "id" not in columns.values():
        raise fail("id.source", 'is "column" but no column maps to "id" in [columns]')
    if source == "derived":
        _check_prefix(prefix, where)
    ignore = data.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(c, str) for c in ignore):
        raise fail("ignore", "must be a list of column names")
    return MappingSpec(
        columns=columns,
        constants=constants,
        defaults=defaults,
        values=values,
        date_default=date_default,
        date_params=date_params,
        id=IdPolicy(source, prefix, tuple(c.strip() for c in key_columns)),
        ignore=tuple(c.strip() for c in ignore),
        excel_date_system=dates.get("excel_date_system"),
        path=path,
    )


def _text(value: object, where: str, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{where}: [{key}] must be text or a number, not {value!r}")
    return str(value)


def _check_prefix(prefix: str, where: str) -> None:
    try:
        derived_order_id("probe", prefix)
    except ValueError as exc:
        raise ConfigError(f"{where}: [id.prefix] {exc}") from None


def _date_policy(
    table: Mapping[str, Any], where: str, key: str, base: DatePolicy | None
) -> DatePolicy:
    base = base or DatePolicy()
    allowed = {
        "format",
        "formats",
        "timezone",
        "ambiguous",
        "nonexistent",
        "excel_date_system",
        "params",
    }
    unknown = set(table) - allowed
    if unknown:
        raise ConfigError(f"{where}: [{key}] unknown key(s) {', '.join(sorted(unknown))}")
    formats = table.get("formats", [table["format"]] if "format" in table else list(base.formats))
    if isinstance(formats, str):
        formats = [formats]
    if not isinstance(formats, list) or not all(isinstance(f, str) for f in formats):
        raise ConfigError(f"{where}: [{key}.formats] must be a list of strptime formats")
    if any("%z" in f or "%Z" in f for f in formats):
        raise ConfigError(
            f"{where}: [{key}.formats] must not contain %z/%Z: values with an offset "
            "(2023-04-05T14:22:00+02:00) are recognised automatically"
        )
    ambiguous = table.get("ambiguous", base.ambiguous)
    if ambiguous not in ("earlier", "later", "error"):
        raise ConfigError(f"{where}: [{key}.ambiguous] must be earlier, later or error")
    nonexistent = table.get("nonexistent", base.nonexistent)
    if nonexistent not in ("shift_forward", "error"):
        raise ConfigError(f"{where}: [{key}.nonexistent] must be shift_forward or error")
    try:
        return DatePolicy(
            formats=tuple(formats),
            timezone=str(table.get("timezone", base.timezone)),
            ambiguous=ambiguous,
            nonexistent=nonexistent,
            excel_date_system=int(table.get("excel_date_system", base.excel_date_system)),
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: [{key}] {exc.message}", hint=exc.hint) from None
