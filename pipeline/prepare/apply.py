"""Apply a mapping to loaded chunks: bind it to a header once, then map each chunk vectorised.

Per chunk, in order: ``[clean]`` filters on source columns, ``[orders] group_by`` (one row per
order), ``[[skip]]`` rules, each parameter's derivation and filters, ``[defaults]``,
``[values]``, country names to codes, ``[constants]``, then dates and integers are parsed and
row keys and order ids are chosen. Produces a params frame (one column per dotted param; text or
NA, timestamps/integers as Int64), row keys, order ids and parse issues.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import ConfigError, InputError
from pipeline.keys import DEFAULT_ID_PREFIX, ROW_KEY_COLUMN, TOOL_COLUMN_PREFIX, derived_order_id
from pipeline.load.rows import RawChunk
from pipeline.models import Issue
from pipeline.prepare.countries import to_alpha2
from pipeline.prepare.dates import TEXT, DateCells, DatePolicy, arrow_text, parse_dates
from pipeline.prepare.grouping import collapse
from pipeline.prepare.mapping import (
    Derivation,
    IdPolicy,
    IdSource,
    MappingSpec,
    at_key,
    normalise_param,
    normalise_value,
)
from pipeline.prepare.transforms import clean_columns, derive, to_minor_units, when_mask
from pipeline.prepare.validation import RowKeys, short_value

_INTEGER = r"^[+-]?\d+$"


def form(dotted: str) -> str:
    """``shipping_address.city`` → ``shipping_address[city]``."""
    head, sep, tail = dotted.partition(".")
    return f"{head}[{tail}]" if sep else dotted


@dataclass(slots=True)
class BoundMapping:
    """A mapping resolved against one file's header (see ``bind``)."""

    spec: MappingSpec
    path: str
    header: list[str]
    sources: dict[str, str]
    """dotted param → source column it is read from."""
    data_columns: list[str]
    """Header columns that are the user's data (not ``oi:`` tool columns)."""
    date_policies: dict[str, DatePolicy]
    integer_params: list[str]
    has_row_key: bool
    file_issues: list[Issue] = field(default_factory=list)
    """Header-level findings (unknown or unmapped columns), reported once per file."""
    derive: dict[str, Derivation] = field(default_factory=dict)
    """The derivations whose columns the file has (dotted param → how)."""
    checked: list[str] = field(default_factory=list)
    """Columns the mapping reads: a group's rows must agree on them."""


@dataclass(slots=True)
class MappedChunk:
    """One chunk after mapping: everything validate and prepare need."""

    params: pd.DataFrame
    """RangeIndex positions; one column per dotted param present."""
    raw: pd.DataFrame
    """The original text of the data columns (tool columns dropped)."""
    lines: np.ndarray
    row_keys: list[str]
    issues: list[tuple[int, Issue]]
    failed: set[tuple[int, str]]
    """(position, param) cells whose text could not be parsed; schema checks skip them."""
    texts: dict[str, pd.Series]
    """The text of parsed params (dates, integers) before parsing, to show in reports."""
    skip: np.ndarray | None = None
    """Object array: the ``[[skip]]`` reason per row, None where the row is not skipped."""
    group_lines: list[tuple[int, ...]] | None = None
    """Every source line of each grouped order (``[orders] group_by``), else None."""
    control: dict[str, pd.Series] = field(default_factory=dict)
    """``amount`` (Int64 minor units) and ``currency`` per row, when ``[control]`` is mapped."""
    dates: dict[str, DateCells] = field(default_factory=dict)
    """Per date param: which cells gave a day without a time, and the zone they were read in."""


def implicit_mapping(
    header: list[str], known_params: Collection[str], timestamp_params: Collection[str]
) -> MappingSpec:
    """The mapping used without a mapping file: columns named as API params (dots or brackets).

    Dates are Unix seconds or ISO 8601 (naive = UTC); the id is the ``id`` column when there is
    one, else derived from the row key.
    """
    columns = {
        col: normalise_param(col)
        for col in header
        if normalise_param(col) in known_params and not col.startswith(TOOL_COLUMN_PREFIX)
    }

    source: IdSource = "column" if "id" in columns.values() else "derived"
    prefix = "" if source == "column" else DEFAULT_ID_PREFIX
    derive = {
        param: Derivation("column", (col,), key=f"columns.{col!r}")
        for col, param in columns.items()
    }
    return MappingSpec(columns=columns, id=IdPolicy(source, prefix), derive=derive)


def bind(
    spec: MappingSpec,
    header: list[str],
    *,
    path: Path,
    header_line: int,
    required: Collection[str],
    timestamp_params: Collection[str],
    integer_params: Collection[str],
    excel_date_system: int | None,
) -> BoundMapping:
    """Resolve a mapping against a header; file-level problems raise before any row is read.

    Raises:
        InputError: a required param has no column, constant or default; a key column is missing.
        ConfigError: the id policy needs a param the file does not provide.
    """
    where = str(path)
    data_columns = [c for c in header if not c.startswith(TOOL_COLUMN_PREFIX)]
    mapping_name = spec.path or "mapping"
    present = set(header)
    for col, key in spec.referenced_columns().items():
        if col not in present:
            raise ConfigError(
                f"{mapping_name}: "
                + at_key(key, f"names column {col!r}, which {where} does not have"),
                hint="the file's columns are: " + ", ".join(repr(c) for c in data_columns[:40]),
            )
    derivations = {
        param: how
        for param, how in spec.derive.items()
        if how.kind != "column" or how.columns[0] in present
    }
    sources = {param: how.columns[0] for param, how in derivations.items() if how.columns}
    used = {c for how in spec.derive.values() for c in how.columns}
    used |= set(spec.referenced_columns())
    issues: list[Issue] = []

    def note(column: str, rule: str, message: str) -> None:
        issues.append(
            Issue(header_line, column, None, None, rule, message, severity="warning", stage="parse")
        )

    for col in data_columns:
        if col in used or col in spec.ignore:
            continue
        if spec.path is None:
            note(col, "unknown_column", "not an import_order parameter; the column is ignored")
        else:
            note(col, "unmapped_column", "not used by the mapping; the column is ignored")
    for col in spec.columns:
        if col not in present:
            note(col, "missing_column", "named in the mapping but not in the file")
    available = set(derivations) | set(spec.constants) | set(spec.defaults)
    for param in list(available):
        for sets in spec.values.get(param, {}).values():
            available |= set(sets)
    missing = [p for p in required if p not in available]
    if missing and not data_columns_any(sources):
        raise InputError(
            "no import_order columns found after mapping (none of the headers is a parameter)",
            path=where,
            line=header_line,
            hint="pass --mapping with a mapping file (see `order-import mapping init`)",
        )
    if missing:
        raise InputError(
            f"no column for required parameter(s): {', '.join(form(p) for p in missing)}",
            path=where,
            line=header_line,
            hint="map a column to each in the mapping's [columns] or [params], "
            "or set [constants]/[defaults]",
        )
    if spec.id.source == "document_number" and "document_number" not in available:
        raise ConfigError(
            f"{mapping_name}: [id] source is document_number but nothing provides one"
        )
    policies: dict[str, DatePolicy] = {}
    for param in available & set(timestamp_params):
        policy = spec.date_params.get(param, spec.date_default)
        if spec.excel_date_system is None and excel_date_system is not None:
            policy = replace(policy, excel_date_system=excel_date_system)
        policies[param] = policy
    return BoundMapping(
        spec=spec,
        path=where,
        header=header,
        sources=sources,
        data_columns=data_columns,
        date_policies=policies,
        integer_params=sorted(available & set(integer_params)),
        has_row_key=ROW_KEY_COLUMN in header,
        file_issues=issues,
        derive=derivations,
        checked=sorted(c for c in used if c in present),
    )


def data_columns_any(sources: dict[str, str]) -> bool:
    """True when at least one column maps to a parameter."""
    return bool(sources)


def apply(
    bound: BoundMapping,
    frame: pd.DataFrame,
    lines: np.ndarray,
    reader_issues: list[tuple[int, Issue]] | None = None,
) -> MappedChunk:
    """Map one chunk of text to params (vectorised per column; see the module docstring)."""
    spec = bound.spec
    frame = clean_columns(frame.reset_index(drop=True), spec.clean, spec.decimal, spec.thousands)
    moved = list(reader_issues or ())
    group_lines = None
    if spec.group_by is not None:
        grouped = collapse(RawChunk(frame, lines, moved), spec.group_by, bound.checked)
        frame, lines, group_lines, moved = (
            grouped.frame,
            grouped.lines,
            grouped.group_lines,
            grouped.issues,
        )
    n = len(frame)
    skip: np.ndarray | None = None
    if spec.skip:
        skip = np.full(n, None, dtype=object)
        for rule in spec.skip:
            hit = when_mask(frame, rule.when) & pd.isna(skip)
            skip[hit] = rule.reason
    empty = pd.Series(pd.NA, index=frame.index, dtype="str")
    params: dict[str, pd.Series] = {}
    issues: list[tuple[int, Issue]] = list(moved)
    for param, how in bound.derive.items():
        params[param], cut = derive(frame, how, spec.decimal, spec.thousands)
        for pos in np.flatnonzero(cut.to_numpy(dtype=bool)):
            issues.append(
                (
                    int(pos),
                    Issue(
                        source_line=int(lines[pos]),
                        column=bound.sources.get(param),
                        param=form(param),
                        value=short_value(params[param].iloc[pos]),
                        rule="truncated",
                        message=f"{form(param)} was cut to fit by the mapping's truncate filter",
                        severity="warning",
                        stage="parse",
                    ),
                )
            )
    for param, value in spec.defaults.items():
        params[param] = params.get(param, empty).fillna(value)
    for param, entries in spec.values.items():
        if param not in params:
            continue
        codes, keys = _normalised(params[param])
        targets = {t for sets in entries.values() for t in sets}
        for target in targets:
            lookup = {k: sets[target] for k, sets in entries.items() if target in sets}
            mapped = pa.array([lookup.get(k) for k in keys], type=pa.large_string()).take(codes)
            current = arrow_text(params.get(target, empty))
            # the map's value where it has one (own param), else what the row already has
            pick = pc.coalesce(mapped, current) if target == param else pc.coalesce(current, mapped)
            params[target] = pd.Series(pick, index=frame.index, dtype=TEXT)
    if spec.countries == "names":
        for param in [p for p in params if p.endswith(".country")]:
            params[param] = to_alpha2(params[param])
    for param, value in spec.constants.items():
        params[param] = pd.Series(value, index=frame.index, dtype="str")

    failed: set[tuple[int, str]] = set()
    dates: dict[str, DateCells] = {}
    out = pd.DataFrame(params, index=frame.index)
    texts = {p: out[p] for p in (*bound.date_policies, *bound.integer_params)}
    for param, policy in bound.date_policies.items():
        parsed = parse_dates(out[param], policy)
        _collect(bound, param, out[param], parsed.errors, "date", lines, issues, failed)
        out[param] = parsed.seconds
        dates[param] = DateCells(parsed.date_only, policy.timezone)
    for param in bound.integer_params:
        text = out[param]
        whole = text.str.match(_INTEGER).fillna(False).astype(bool)
        fits = text.str.len().fillna(0) <= 18  # int64 holds every 18-digit number
        ok = (text.isna() | (whole & fits)).astype(bool)
        reasons = pd.Series(None, index=text.index, dtype=object)
        reasons[~ok] = "must be a whole number in minor units (e.g. 1250 for 12.50)"
        reasons[whole & ~fits] = "is too large (more than 18 digits)"
        _collect(bound, param, text, reasons, "integer", lines, issues, failed)
        out[param] = pd.to_numeric(text.where(ok), errors="coerce").astype("Int64")

    control = _control(bound, frame, lines, issues)
    row_keys, ids = _keys_and_ids(bound, frame, out)
    out["id"] = ids
    raw = frame[bound.data_columns]
    assert len(row_keys) == n
    return MappedChunk(
        out, raw, lines, row_keys, issues, failed, texts, skip, group_lines, control, dates
    )


def _normalised(text: pd.Series) -> tuple[pa.Array, list[str]]:
    """``normalise_value`` once per distinct value: (per cell the index of its distinct value,
    null for NA; the distinct values normalised). A lookup is then one ``take`` per column."""
    encoded = pc.dictionary_encode(arrow_text(text))
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    keys = [normalise_value(str(u)) for u in encoded.dictionary.to_pylist()]
    return encoded.indices, keys


def _control(
    bound: BoundMapping, frame: pd.DataFrame, lines: np.ndarray, issues: list[tuple[int, Issue]]
) -> dict[str, pd.Series]:
    """``[control]`` amount (Int64 minor units) and currency per row; bad amounts are warnings."""
    spec = bound.spec
    if spec.control is None:
        return {}
    text = frame[spec.control.amount].str.strip()
    amount = to_minor_units(text, spec.control.minor_units, spec.decimal, spec.thousands)
    bad = np.flatnonzero((amount.isna() & (text != "")).to_numpy(dtype=bool))
    for pos in bad:
        issues.append(
            (
                int(pos),
                Issue(
                    source_line=int(lines[pos]),
                    column=spec.control.amount,
                    param=None,
                    value=short_value(text.iloc[pos]),
                    rule="control_amount",
                    message="the control amount is not a number in the file's format "
                    f"(decimal {spec.decimal!r}); it is left out of the totals",
                    severity="warning",
                    stage="parse",
                ),
            )
        )
    if spec.control.currency is not None:
        currency = frame[spec.control.currency].str.strip().str.upper()
        currency = currency.where(currency != "", pd.NA)  # type: ignore[call-overload]
    else:
        currency = pd.Series(spec.control.currency_code, index=frame.index, dtype="str")
    return {"amount": amount, "currency": currency}


def _collect(
    bound: BoundMapping,
    param: str,
    text: pd.Series,
    reasons: pd.Series,
    rule: str,
    lines: np.ndarray,
    issues: list[tuple[int, Issue]],
    failed: set[tuple[int, str]],
) -> None:
    bad = np.flatnonzero(reasons.notna().to_numpy(dtype=bool))
    column = bound.sources.get(param)
    for pos in bad:
        failed.add((int(pos), param))
        issues.append(
            (
                int(pos),
                Issue(
                    source_line=int(lines[pos]),
                    column=column,
                    param=form(param),
                    value=short_value(text.iloc[pos]),
                    rule=rule,
                    message=f"{form(param)} {reasons.iloc[pos]}",
                    stage="parse",
                ),
            )
        )


def _keys_and_ids(
    bound: BoundMapping, frame: pd.DataFrame, params: pd.DataFrame
) -> tuple[list[str], pd.Series]:
    """Row keys and order ids per docs/mapping.md ("Row keys and order ids")."""
    spec = bound.spec
    na = pd.Series(pd.NA, index=frame.index, dtype="str")
    data_id = na
    if spec.id.source == "column" and "id" in params:
        data_id = params["id"]
    elif spec.id.source == "document_number" and "document_number" in params:
        doc = params["document_number"]
        data_id = (spec.id.prefix + doc).where(doc.notna(), pd.NA)
    key = na
    if bound.has_row_key:
        tool = frame[ROW_KEY_COLUMN].str.strip()
        key = tool.where(tool != "", pd.NA)
    key = key.fillna(data_id)
    if spec.id.key_columns:
        parts = [frame[c].str.strip() for c in spec.id.key_columns]
        joined = (
            parts[0].str.cat(pd.concat(parts[1:], axis=1), sep="|") if len(parts) > 1 else parts[0]
        )
        any_value = pd.concat([p != "" for p in parts], axis=1).any(axis=1)
        key = key.fillna(joined.where(any_value, pd.NA))
    if "document_number" in params:
        # Document numbers are unique per site, so they identify a row across corrections; a
        # content hash (below) would make a corrected row look like a new order.
        doc_key = params["document_number"]
        key = key.fillna(("doc:" + doc_key).where(doc_key.notna(), pd.NA))
    keys = RowKeys(key.tolist())
    missing = np.flatnonzero(key.isna().to_numpy(dtype=bool)).tolist()
    if not missing:
        keys.text = key.astype(TEXT)
    else:
        data = frame[bound.data_columns].to_numpy()
        for i in missing:
            blob = "\x1f".join(data[i]).encode("utf-8")
            keys[i] = "h:" + hashlib.sha256(blob).hexdigest()[:32]
    prefix = spec.id.prefix if spec.id.source == "derived" else DEFAULT_ID_PREFIX
    if not data_id.isna().any():
        return keys, data_id.astype(TEXT)
    ids = data_id.tolist()
    for i in np.flatnonzero(data_id.isna().to_numpy(dtype=bool)).tolist():
        ids[i] = derived_order_id(keys[i], prefix)
    return keys, pd.Series(ids, index=frame.index, dtype="str")  # every key is text by now
