"""The mapping file: a typed (pydantic) model of the TOML, and the resolved ``MappingSpec``.

``MappingFile`` refuses unknown keys, wrong types and out-of-range values with the key path
(``[dates] excel_date_system: must be 1900 or 1904``); ``parse_mapping`` then resolves parameter
names (checked against ``known_params``, passed in by the caller so this module stays
independent of ``schemas``) into a ``MappingSpec`` where every parameter has exactly one
``Derivation``. Format and examples: docs/mapping.md.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.errors import ConfigError
from pipeline.keys import DEFAULT_ID_PREFIX, derived_order_id
from pipeline.prepare.dates import DatePolicy

IdSource = Literal[
    "column",  # the order id is a column of the file
    "document_number",  # prefix + the row's document_number
    "derived",  # pipeline.keys.derived_order_id(row_key, prefix): deterministic, from the row key
]
ID_SOURCES: tuple[IdSource, ...] = ("column", "document_number", "derived")
Scalar = StrictStr | StrictInt | float
"""A value cell in the mapping: text or a number (written as text)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return pattern


class Filter(_Model):
    """One text filter; exactly one key per table (``{ strip = "'" }``), applied in list order."""

    strip: StrictStr | None = None
    """Characters removed from both ends (``"'"`` drops Shopify's leading apostrophe)."""
    remove_prefix: StrictStr | None = None
    remove_suffix: StrictStr | None = None
    remove: StrictStr | None = None
    """Every occurrence of this text is removed (``"#"``)."""
    regex_replace: tuple[StrictStr, StrictStr] | None = None
    """``[pattern, replacement]`` (``\\1`` refers to a group)."""
    regex_extract: StrictStr | None = None
    """The first group (or the whole match) of this pattern; empty when it does not match."""
    zero_pad: Annotated[StrictInt, Field(ge=1, le=64)] | None = None
    """Left-pad digit-only values with zeros to this width (zips Excel turned into numbers)."""
    upper: Literal[True] | None = None
    lower: Literal[True] | None = None
    truncate: Annotated[StrictInt, Field(ge=1)] | None = None
    """Cut to this many characters; every cut cell is a ``truncated`` warning."""
    minor_units: Annotated[StrictInt, Field(ge=0, le=6)] | None = None
    """A decimal amount (file locale, ``[file] decimal``) to whole minor units: 2 → 12,50 → 1250."""

    @model_validator(mode="after")
    def _one_key(self) -> Filter:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                'a filter is a table with exactly one key, e.g. { strip = "\'" }; got '
                + (", ".join(given) or "none")
            )
        for name in ("regex_extract",):
            value = getattr(self, name)
            if value is not None:
                _regex(value)
        if self.regex_replace is not None:
            _regex(self.regex_replace[0])
        return self


class Condition(_Model):
    """A condition on one column's text (trimmed; matching ignores case and runs of whitespace)."""

    blank: StrictBool | None = None
    equals: Scalar | None = None
    not_equals: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    not_in: list[Scalar] | None = None
    matches: StrictStr | None = None
    """A regular expression searched in the (untouched) text."""

    @field_validator("matches")
    @classmethod
    def _check_regex(cls, value: str | None) -> str | None:
        return None if value is None else _regex(value)

    @model_validator(mode="after")
    def _some_key(self) -> Condition:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError(
                "a condition needs one of blank, equals, not_equals, in, not_in, matches"
            )
        return self


When = dict[str, Scalar | list[Scalar] | Condition]
"""Column → test: text = equals, a list = one of, a table = a ``Condition``. All must hold."""


class Rule(_Model):
    """One entry of a parameter's ``rules``: the first whose ``when`` holds gives the value."""

    when: When = Field(default_factory=dict)
    """Empty (or absent) = always: use it last, as the fallback."""
    value: Scalar | None = None
    column: StrictStr | None = None
    """Take the value from this column instead of a constant."""

    @model_validator(mode="after")
    def _value_or_column(self) -> Rule:
        if (self.value is None) == (self.column is None):
            raise ValueError("a rule needs exactly one of value or column")
        return self


class SplitName(_Model):
    """Split a full name column: first = every word but the last, last = the last word."""

    column: StrictStr
    part: Literal["first", "last"]


class ParamSpec(_Model):
    """``[params.<param>]``: how one parameter is derived (exactly one source), then filtered."""

    column: StrictStr | None = None
    coalesce: Annotated[list[StrictStr], Field(min_length=1)] | None = None
    """The first non-empty of these columns."""
    template: StrictStr | None = None
    """Text with ``{Column}`` placeholders (``"SH-{Name}"``); empty when a placeholder is."""
    rules: Annotated[list[Rule], Field(min_length=1)] | None = None
    split_name: SplitName | None = None
    value: Scalar | None = None
    fallback: Scalar | None = None
    """Used where the derivation gives nothing (after filters)."""
    filters: list[Filter] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_source(self) -> ParamSpec:
        kinds = ("column", "coalesce", "template", "rules", "split_name", "value")
        given = [k for k in kinds if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "needs exactly one of " + ", ".join(kinds) + "; got " + (", ".join(given) or "none")
            )
        if self.template is not None:
            template_fields(self.template)
        return self


class SkipRule(_Model):
    """``[[skip]]``: rows matching ``when`` are never sent; they are reported with ``reason``."""

    when: Annotated[When, Field(min_length=1)]
    reason: Annotated[StrictStr, Field(min_length=1)]


class FileOptions(_Model):
    """``[file]``: how this mapping's file is read (each overrides detection)."""

    encoding: StrictStr | None = None
    delimiter: Annotated[StrictStr, Field(min_length=1, max_length=3)] | None = None
    decimal: Literal[".", ","] = "."
    thousands: Literal["", ".", ",", " ", "'", "\u00a0", "\u202f"] = ""

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        import codecs

        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r}") from None
        return value

    @model_validator(mode="after")
    def _distinct(self) -> FileOptions:
        if self.thousands == self.decimal:
            raise ValueError("decimal and thousands separators must differ")
        return self


class OrderOptions(_Model):
    """``[orders]``: how rows become orders."""

    group_by: StrictStr | None = None
    """Consecutive rows with the same value in this column are one order (line-item exports)."""
    several_per_invoice: StrictBool = False
    """Allow several orders to name one invoice_id (otherwise a repeat is an error)."""


class ControlFields(_Model):
    """``[control]``: amount and currency columns kept for the reports, never sent."""

    amount: StrictStr
    currency: StrictStr | None = None
    currency_code: StrictStr | None = None
    """A constant currency when the file has no currency column."""
    minor_units: Annotated[StrictInt, Field(ge=0, le=6)] = 2

    @model_validator(mode="after")
    def _currency(self) -> ControlFields:
        if (self.currency is None) == (self.currency_code is None):
            raise ValueError("needs exactly one of currency (a column) or currency_code")
        return self


class DatesTable(_Model):
    """``[dates]`` and ``[dates.params.<param>]``."""

    format: StrictStr | None = None
    formats: list[StrictStr] | None = None
    timezone: StrictStr | None = None
    ambiguous: Literal["earlier", "later", "error"] | None = None
    nonexistent: Literal["shift_forward", "error"] | None = None
    excel_date_system: Literal[1900, 1904] | None = None

    @field_validator("formats", mode="before")
    @classmethod
    def _one_format(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("format")
    @classmethod
    def _check_format(cls, value: str | None) -> str | None:
        if value is not None:
            _check_directives(value)
        return value

    @field_validator("formats")
    @classmethod
    def _check_formats(cls, value: list[str] | None) -> list[str] | None:
        for item in value or ():
            _check_directives(item)
        return value


_DIRECTIVE = re.compile(r"%(.?)")
_STRPTIME_DIRECTIVES = frozenset("aAwdbBmyYHIpMSfzZjUWcxXGuV%")
"""The directives ``datetime.strptime`` understands."""


def _check_directives(fmt: str) -> None:
    """Refuse a date format strptime would reject (``%Q``, a lone ``%``), naming it."""
    for match in _DIRECTIVE.finditer(fmt):
        if match.group(1) not in _STRPTIME_DIRECTIVES:
            shown = "a lone % at the end" if not match.group(1) else f"%{match.group(1)}"
            raise ValueError(
                f"{fmt!r} is not a strptime format ({shown}; write %% for a percent sign)"
            )


class RootDates(DatesTable):
    params: dict[str, DatesTable] = Field(default_factory=dict)


class IdTable(_Model):
    source: IdSource | None = None
    prefix: StrictStr | None = None
    key_columns: list[StrictStr] = Field(default_factory=list)


class MappingFile(_Model):
    """The TOML mapping file as written (docs/mapping.md)."""

    version: Literal[1] = 1
    ignore: list[StrictStr] = Field(default_factory=list)
    file: FileOptions = Field(default_factory=FileOptions)
    orders: OrderOptions = Field(default_factory=OrderOptions)
    columns: dict[str, StrictStr | Annotated[list[StrictStr], Field(min_length=1)]] = Field(
        default_factory=dict
    )
    clean: dict[str, list[Filter]] = Field(default_factory=dict)
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    constants: dict[str, Scalar] = Field(default_factory=dict)
    defaults: dict[str, Scalar] = Field(default_factory=dict)
    values: dict[str, dict[str, Scalar | dict[str, Scalar]]] = Field(default_factory=dict)
    countries: Literal["names", "codes"] = "names"
    """``names``: country names and short forms are converted to ISO codes; ``codes``: as is."""
    skip: list[SkipRule] = Field(default_factory=list)
    control: ControlFields | None = None
    dates: RootDates = Field(default_factory=RootDates)
    id: IdTable = Field(default_factory=IdTable)

    @field_validator("params", mode="before")
    @classmethod
    def _flatten_params(cls, value: object) -> object:
        """``[params.shipping_address.zip]`` (nested TOML tables) → ``shipping_address.zip``."""
        if not isinstance(value, Mapping):
            return value
        out: dict[str, Any] = {}
        for key, sub in value.items():
            nested = (
                isinstance(sub, Mapping)
                and sub
                and all(isinstance(v, Mapping) for v in sub.values())
            )
            if nested and not set(sub) & set(ParamSpec.model_fields):
                for inner, spec in sub.items():
                    out[f"{key}.{inner}"] = spec
            else:
                out[str(key)] = sub
        return out


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def template_fields(template: str) -> list[tuple[str, bool]]:
    """Split a template into (text, is_column) parts; ``{{``/``}}`` are literal braces.

    Raises:
        ValueError: an empty placeholder or a lone brace.
    """
    parts: list[tuple[str, bool]] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(template):
        if match.start() > pos:
            parts.append((template[pos : match.start()], False))
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append((token[0], False))
        elif match.group(1) is None or not match.group(1).strip():
            raise ValueError(f"template {template!r}: a lone brace or an empty {{}} placeholder")
        else:
            parts.append((match.group(1).strip(), True))
        pos = match.end()
    if pos < len(template):
        parts.append((template[pos:], False))
    return parts


# --- the resolved spec --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdPolicy:
    """How each row's order ``id`` is chosen (mapping table ``[id]``)."""

    source: IdSource = "derived"
    prefix: str = ""
    """Prepended to document numbers; for ``derived`` the default is ``MIG-``."""
    key_columns: tuple[str, ...] = ()
    """Source columns whose values, joined, are the row key when the data has no id."""


@dataclass(frozen=True, slots=True)
class Derivation:
    """How one parameter's text is produced from a row (see ``ParamSpec``)."""

    kind: Literal["column", "coalesce", "template", "rules", "split_name", "value"]
    columns: tuple[str, ...] = ()
    """Every source column it reads, in order (for templates, the placeholders)."""
    template: tuple[tuple[str, bool], ...] = ()
    rules: tuple[Rule, ...] = ()
    part: Literal["first", "last"] = "first"
    value: str | None = None
    fallback: str | None = None
    filters: tuple[Filter, ...] = ()
    key: str = ""
    """The mapping key it came from (``columns.'Order #'``, ``params.status``), for messages."""


@dataclass(frozen=True, slots=True)
class MappingSpec:
    """A parsed mapping file (or the implicit API-column mapping when there is none)."""

    columns: dict[str, str]
    """Source column → (first) dotted param it maps to in ``[columns]``."""
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
    derive: dict[str, Derivation] = field(default_factory=dict)
    """dotted param → its derivation; ``[columns]`` entries are ``column`` derivations."""
    clean: dict[str, tuple[Filter, ...]] = field(default_factory=dict)
    skip: tuple[SkipRule, ...] = ()
    group_by: str | None = None
    several_per_invoice: bool = False
    control: ControlFields | None = None
    countries: Literal["names", "codes"] = "names"
    encoding: str | None = None
    delimiter: str | None = None
    decimal: str = "."
    thousands: str = ""

    def referenced_columns(self) -> dict[str, str]:
        """Source columns every row needs (not ``[columns]``, whose absence is a warning),
        each with the mapping key that names it."""
        refs: dict[str, str] = {}
        if self.group_by:
            refs.setdefault(self.group_by, "orders.group_by")
        for param, how in self.derive.items():
            if how.kind != "column" or how.key.startswith("params."):
                for col in how.columns:
                    refs.setdefault(col, how.key or f"params.{param}")
        for col in self.clean:
            refs.setdefault(col, f"clean.{col!r}")
        for i, rule in enumerate(self.skip):
            for col in rule.when:
                refs.setdefault(col, f"skip.{i}.when")
        if self.control is not None:
            refs.setdefault(self.control.amount, "control.amount")
            if self.control.currency:
                refs.setdefault(self.control.currency, "control.currency")
        for col in self.id.key_columns:
            refs.setdefault(col, "id.key_columns")
        return refs


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
        data = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: mapping file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a mapping file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}); save the mapping file as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read mapping file ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_mapping(data, path, known_params, timestamp_params)


_TYPE_TAG = re.compile(
    r"^(str|int|float|bool|Condition|Filter|Rule|list\[.*\]|dict\[.*\]|tuple\[.*\]|"
    r"function-.*|lax-.*|json-.*|constrained-.*|literal\[.*\])$"
)


def _most_specific(errors: list[Any]) -> list[Any]:
    """Of a union's alternatives, keep the errors that got furthest into the value (a table
    with a bad regex, not "must be text" for each simpler alternative)."""
    locs = [tuple(str(p) for p in e["loc"] if not _TYPE_TAG.match(str(p))) for e in errors]
    return [
        e
        for e, loc in zip(errors, locs, strict=True)
        if not any(len(other) > len(loc) and other[: len(loc)] == loc for other in locs)
    ]


def _describe(error: Mapping[str, Any]) -> str:
    """A pydantic error as ``[table] key.path: message``."""
    loc = [str(p) for p in error["loc"] if not _TYPE_TAG.match(str(p))]
    loc = ["in" if p == "in_" else p for p in loc]
    message = str(error["msg"])
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        message = "unknown key (see docs/mapping.md for the mapping format)"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    else:
        message = message.replace("Input should be", "must be")
        if kind in (
            "literal_error",
            "int_type",
            "string_type",
            "bool_type",
            "dict_type",
            "list_type",
            "model_type",
            "float_type",
            "tuple_type",
            "int_parsing",
            "greater_than_equal",
            "less_than_equal",
            "too_short",
            "too_long",
        ):
            message += f", not {error.get('input')!r}"
    return _at(loc, message)


def at_key(key: str, message: str) -> str:
    """``[table] rest: message`` for a dotted mapping key (``orders.group_by``)."""
    head, _, rest = key.partition(".")
    if head == "skip" and "." in rest:  # skip.0.when
        return _at([head, *rest.split(".", 1)], message)
    return _at([head, rest] if rest else [head], message)


def _at(loc: list[str], message: str) -> str:
    """``[table] key.path: message``; ``params``, ``clean``, ``values`` and ``skip`` entries
    are tables of their own (``[params.status] rules.1: ...``)."""
    if not loc:
        return message
    cut = 2 if loc[0] in ("params", "clean", "values", "skip") and len(loc) > 1 else 1
    head, rest = ".".join(loc[:cut]), ".".join(loc[cut:])
    return f"[{head}] {rest}: {message}" if rest else f"[{head}] {message}"


def parse_mapping(
    data: Mapping[str, Any],
    path: Path | None,
    known_params: Collection[str],
    timestamp_params: Collection[str],
) -> MappingSpec:
    """Build a MappingSpec from TOML data; every problem names the file and key.

    Raises:
        ConfigError: the first problem found (all of a model's type problems are listed).
    """
    where = str(path) if path else "mapping"
    try:
        model = MappingFile.model_validate(dict(data))
    except ValidationError as exc:
        problems = list(dict.fromkeys(_describe(e) for e in _most_specific(exc.errors())))
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ConfigError(f"{where}: " + "; ".join(problems[:3]) + more) from None
    return _resolve(model, path, where, known_params, timestamp_params)


def _resolve(
    model: MappingFile,
    path: Path | None,
    where: str,
    known_params: Collection[str],
    timestamp_params: Collection[str],
) -> MappingSpec:
    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"{where}: " + at_key(key, message))

    def param(name: str, key: str) -> str:
        dotted = normalise_param(name)
        if dotted not in known_params:
            raise fail(key, f"{name!r} is not an import_order parameter")
        return dotted

    derive: dict[str, Derivation] = {}
    columns: dict[str, str] = {}
    for src, targets in model.columns.items():
        key = f"columns.{src!r}"
        for target in [targets] if isinstance(targets, str) else targets:
            dotted = param(target, key)
            if dotted in derive:
                raise fail(key, f"two columns map to {dotted!r}")
            derive[dotted] = Derivation("column", (src.strip(),), key=key)
            columns.setdefault(src.strip(), dotted)
    for name, spec in model.params.items():
        key = f"params.{name}"
        dotted = param(name, key)
        if dotted in derive:
            raise fail(key, f"{dotted!r} is also mapped in [{derive[dotted].key}]; keep one")
        derive[dotted] = _derivation(spec, key)
    constants = {param(k, f"constants.{k}"): str(v) for k, v in model.constants.items()}
    defaults = {param(k, f"defaults.{k}"): str(v) for k, v in model.defaults.items()}

    values: dict[str, dict[str, dict[str, str]]] = {}
    for target, entries in model.values.items():
        dotted = param(target, f"values.{target}")
        out: dict[str, dict[str, str]] = {}
        for source_text, mapped in entries.items():
            key = f"values.{target}.{source_text!r}"
            if isinstance(mapped, Mapping):
                sets = {param(k, key): str(v) for k, v in mapped.items()}
            else:
                sets = {dotted: str(mapped)}
            out[normalise_value(str(source_text))] = sets
        values[dotted] = out

    date_default = _date_policy(model.dates, where, "dates", None)
    date_params: dict[str, DatePolicy] = {}
    for name, sub in model.dates.params.items():
        dotted = param(name, f"dates.params.{name}")
        if dotted not in timestamp_params:
            raise fail(f"dates.params.{name}", "is not a date (Unix timestamp) parameter")
        date_params[dotted] = _date_policy(sub, where, f"dates.params.{name}", date_default)

    maps_id = "id" in derive
    source: IdSource = model.id.source or ("column" if maps_id else "derived")
    prefix = model.id.prefix
    if prefix is None:
        prefix = DEFAULT_ID_PREFIX if source == "derived" else ""
    if source == "column" and not maps_id:
        raise fail("id.source", 'is "column" but no column maps to "id" in [columns]')
    if source == "derived":
        try:
            derived_order_id("probe", prefix)
        except ValueError as exc:
            raise fail("id.prefix", str(exc)) from None
    delimiter = model.file.delimiter
    if delimiter in ("\\t", "tab", "TAB"):
        delimiter = "\t"
    if delimiter is not None and len(delimiter) != 1:
        raise fail("file.delimiter", f"must be one character (or \\t), not {delimiter!r}")
    return MappingSpec(
        columns=columns,
        constants=constants,
        defaults=defaults,
        values=values,
        date_default=date_default,
        date_params=date_params,
        id=IdPolicy(source, prefix, tuple(c.strip() for c in model.id.key_columns)),
        ignore=tuple(c.strip() for c in model.ignore),
        excel_date_system=model.dates.excel_date_system,
        path=path,
        derive=derive,
        clean={col.strip(): tuple(filters) for col, filters in model.clean.items()},
        skip=tuple(model.skip),
        group_by=model.orders.group_by.strip() if model.orders.group_by else None,
        several_per_invoice=model.orders.several_per_invoice,
        control=model.control,
        countries=model.countries,
        encoding=model.file.encoding,
        delimiter=delimiter,
        decimal=model.file.decimal,
        thousands=model.file.thousands,
    )


def _derivation(spec: ParamSpec, key: str) -> Derivation:
    fallback = None if spec.fallback is None else str(spec.fallback)
    filters = tuple(spec.filters)
    if spec.column is not None:
        return Derivation("column", (spec.column,), fallback=fallback, filters=filters, key=key)
    if spec.coalesce is not None:
        cols = tuple(spec.coalesce)
        return Derivation("coalesce", cols, fallback=fallback, filters=filters, key=key)
    if spec.template is not None:
        parts = tuple(template_fields(spec.template))
        cols = tuple(dict.fromkeys(text for text, is_col in parts if is_col))
        return Derivation(
            "template", cols, template=parts, fallback=fallback, filters=filters, key=key
        )
    if spec.rules is not None:
        cols = tuple(
            dict.fromkeys(
                [c for rule in spec.rules for c in rule.when]
                + [rule.column for rule in spec.rules if rule.column]
            )
        )
        return Derivation(
            "rules", cols, rules=tuple(spec.rules), fallback=fallback, filters=filters, key=key
        )
    if spec.split_name is not None:
        return Derivation(
            "split_name",
            (spec.split_name.column,),
            part=spec.split_name.part,
            fallback=fallback,
            filters=filters,
            key=key,
        )
    return Derivation("value", value=str(spec.value), fallback=fallback, filters=filters, key=key)


def _date_policy(table: DatesTable, where: str, key: str, base: DatePolicy | None) -> DatePolicy:
    base = base or DatePolicy()
    if table.formats is not None:
        formats = list(table.formats)
    elif table.format is not None:
        formats = [table.format]
    else:
        formats = list(base.formats)
    if any("%z" in f or "%Z" in f for f in formats):
        raise ConfigError(
            f"{where}: [{key}] formats: must not contain %z/%Z: values with an offset "
            "(2023-04-05T14:22:00+02:00) are recognised automatically"
        )
    try:
        return DatePolicy(
            formats=tuple(formats),
            timezone=table.timezone or base.timezone,
            ambiguous=table.ambiguous or base.ambiguous,
            nonexistent=table.nonexistent or base.nonexistent,
            excel_date_system=table.excel_date_system or base.excel_date_system,
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: [{key}] {exc.message}", hint=exc.hint) from None
