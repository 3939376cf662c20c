"""Read an update (corrections) file into SourceRows: columns → order-update params, validated.

Column forms (docs/update.md): ``id``/``order_id``; any update param by its API name
(``status``, ``tracking_id``, dates as Unix seconds or ISO 8601 ...); ``shipping_address[city]``
or ``shipping_address.city``; line items as ``order_line_items[id][0]``/``[status][0]``/
``[sku][0]`` (or ``order_line_items[0][status]``, or ``line_item_id``/``line_item_status``/
``line_item_sku`` for one line item). ``billing_address`` values make the row invalid.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.config import Settings
from pipeline.errors import InputError
from pipeline.keys import TOOL_COLUMN_PREFIX, content_hash
from pipeline.load.reader import open_input
from pipeline.models import Issue, SourceRow
from pipeline.prepare.apply import apply, bind
from pipeline.prepare.dates import DatePolicy, parse_dates
from pipeline.prepare.mapping import load_mapping, normalise_param
from pipeline.prepare.prepare import reading_settings
from pipeline.prepare.validation import XI_NEEDS_EU_VAT, timestamp_range
from pipeline.safety import unneutralise_cell
from schemas import (
    COUNTRY_CODES,
    IMPORT_ORDER_PARAMS,
    INTEGER_PARAMS,
    TIMESTAMP_PARAMS,
    UPDATE_ORDER_PARAMS,
    ParamSpec,
    form_name,
)

LINE_ITEM_STATUSES = (
    "queued",
    "awaiting_shipment",
    "on_hold",
    "delivered",
    "shipped",
    "partially_delivered",
    "returned",
    "cancelled",
)
LINE_ITEM_LIMITS = {"id": 40, "sku": 250}
ID_COLUMNS = frozenset({"id", "order_id", "order.id"})
IMPORT_ONLY_KEY = "oi:imported"
"""Params key holding import-only values a mapped row carries (checked, never sent)."""
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_LI_COLUMN_MAJOR = re.compile(r"^order_line_items\[(id|status|sku)\]\[(\d+)\]$")
_LI_ROW_MAJOR = re.compile(r"^order_line_items[\[.](\d+)\]?[\[.](id|status|sku)\]?$")
_LI_SHORT = re.compile(r"^line_item_(id|status|sku)$")
CREATE_HINT = (
    "update only corrects orders Chargebee already holds; new orders are imported with "
    "`order-import run FILE --batch B` (POST /orders/import_order). Creating orders with "
    "POST /orders is deprecated by Chargebee and order-import never uses it"
)
BILLING_MESSAGE = (
    "not updatable: billing_address can only be set when an order is imported (Chargebee's "
    "POST /orders/{id} has no billing_address); leave the column empty or drop it"
)


@dataclass(frozen=True, slots=True)
class Column:
    """What one source column means for an update."""

    name: str
    """The column as named in the file."""
    kind: str
    """``id``, ``param``, ``billing``, ``line_item`` or ``ignore``."""
    param: str = ""
    """Dotted param (``shipping_address.city``), or the line item field (``status``)."""
    index: int = 0
    """Line item position."""


def classify(name: str, renames: Mapping[str, str] | None = None) -> Column | None:
    """The meaning of a header, or None when it is not an update column."""
    if name.startswith(TOOL_COLUMN_PREFIX):
        return Column(name, "ignore")
    key = (renames or {}).get(name, name).strip()
    low = key.lower()
    for pattern, order in ((_LI_COLUMN_MAJOR, (1, 2)), (_LI_ROW_MAJOR, (2, 1))):
        match = pattern.match(low)
        if match:
            return Column(name, "line_item", match[order[0]], int(match[order[1]]))
    match = _LI_SHORT.match(low)
    if match:
        return Column(name, "line_item", match[1], 0)
    dotted = normalise_param(low)
    if dotted in ID_COLUMNS:
        return Column(name, "id", "id")
    if dotted.startswith("billing_address."):
        return Column(name, "billing", dotted)
    if dotted in UPDATE_ORDER_PARAMS:
        return Column(name, "param", dotted)
    return None


def bind_columns(header: list[str], path: Path, renames: Mapping[str, str]) -> list[Column]:
    """Classify every header; unknown columns or a missing id column are an InputError."""
    columns: list[Column] = []
    unknown: list[str] = []
    for name in header:
        column = classify(name, renames)
        if column is None:
            unknown.append(name)
        else:
            columns.append(column)
    if unknown:
        allowed = ", ".join(sorted(n for n in UPDATE_ORDER_PARAMS if "." not in n))
        import_only = [n for n in unknown if _import_only(n, renames)]
        if import_only:
            names = ", ".join(repr(n) for n in import_only[:6])
            raise InputError(
                f"not updatable: {names} can only be set when an order is imported "
                "(POST /orders/{id} cannot change them); drop the column(s). Updatable: "
                f"{allowed}, shipping_address[...], order_line_items[id|status|sku][i]",
                path=str(path),
                line=1,
                column=import_only[0],
                hint=CREATE_HINT,
            )
        raise InputError(
            f"not an order-update column; update columns are: {allowed}, "
            "shipping_address[...], order_line_items[id|status|sku][i]",
            path=str(path),
            line=1,
            column=unknown[0],
        )
    if not any(c.kind == "id" for c in columns):
        raise InputError(
            "no order id column: add a column 'id' (or 'order_id') naming the order to correct",
            path=str(path),
            line=1,
            hint=CREATE_HINT,
        )
    return columns


def _import_only(name: str, renames: Mapping[str, str]) -> bool:
    """True when a header names an import_order param that an order update cannot change."""
    dotted = normalise_param(renames.get(name, name).strip().lower())
    return dotted in IMPORT_ORDER_PARAMS and dotted not in UPDATE_ORDER_PARAMS


@dataclass(frozen=True)
class _Limits:
    """What a value is checked against beyond its spec: plausible timestamps, and whether the
    site accepts ``XI`` (setting ``eu_vat``, as for ``run``)."""

    ts_range: tuple[int, int]
    eu_vat: bool


def read_update_rows(path: Path, settings: Settings) -> list[SourceRow]:
    """Every record of an update file as a SourceRow (params nested, with ``id``), validated.

    The row key is ``u:<order id>:<hash of the requested values>``: the same correction is the
    same row on every run (and is skipped once succeeded); a different correction is a new row.

    Raises:
        InputError: the file is unusable, has an unknown column, or no id column.
        ConfigError: the mapping file is unusable.
    """
    if settings.mapping_path is not None:
        return _read_mapped(path, settings)
    source = open_input(path, settings)
    columns = bind_columns(source.header, path, {})
    limits = _Limits(timestamp_range(settings.validation, time.time()), settings.eu_vat)
    rows: list[SourceRow] = []
    first_line: dict[str, int] = {}
    date_params: dict[str, DatePolicy] = {}
    date_default = DatePolicy()
    for chunk in source.chunks():
        frame = chunk.frame
        dates: dict[str, tuple[pd.Series, pd.Series]] = {}
        for column in columns:
            spec = UPDATE_ORDER_PARAMS.get(column.param)
            if column.kind == "param" and spec is not None and spec.kind == "timestamp":
                policy = date_params.get(column.param, date_default)
                parsed = parse_dates(frame[column.name].map(unneutralise_cell), policy)
                dates[column.name] = (parsed.seconds, parsed.errors)
        for pos, record in enumerate(frame.to_dict("records")):
            line = int(chunk.lines[pos])
            raw = {str(k): str(v) for k, v in record.items()}
            issues = [i for p, i in chunk.issues if p == pos]
            params = _row_params(columns, raw, dates, pos, line, limits, issues)
            rows.append(_update_row(path, source.sheet, line, raw, params, issues, first_line))
    return rows


def _update_row(
    path: Path,
    sheet: str | None,
    line: int,
    raw: Mapping[str, str],
    params: dict[str, Any],
    issues: list[Issue],
    first_line: dict[str, int],
) -> SourceRow:
    """One update row: one row per order and file; key ``u:<order id>:<hash of values>``."""
    oid = str(params.get("id") or "")
    if oid and oid in first_line:
        issues.append(
            _issue(
                line,
                None,
                "id",
                oid,
                "unique_in_file",
                f"order {oid} is already corrected on line {first_line[oid]} of this "
                "file; put all corrections of one order on one row",
            )
        )
    elif oid:
        first_line[oid] = line
    key = f"u:{oid or f'line{line}'}:{content_hash(params)[:20]}"
    return SourceRow(key, str(path), sheet, line, raw, params, tuple(issues))


def _read_mapped(path: Path, settings: Settings) -> list[SourceRow]:
    """An update file read through the run's mapping: the same ``[columns]``, value maps,
    constants, templates, ``[dates]`` and ``[id]`` policy as ``order-import run``, so a
    corrections file in the legacy layout names the same orders with the same values.

    Updatable params are checked as for any update. Import-only params the mapping yields
    (``invoice_id``, ``billing_address``…) stay in the row, in ``IMPORT_ONLY_KEY``, to be
    checked against what was imported (``plan_update_rows``) and are never sent.
    """
    assert settings.mapping_path is not None
    spec = load_mapping(settings.mapping_path, IMPORT_ORDER_PARAMS.keys(), TIMESTAMP_PARAMS)
    source = open_input(path, reading_settings(settings, spec))
    bound = bind(
        spec,
        source.header,
        path=path,
        header_line=source.header_line,
        required=(),
        timestamp_params=TIMESTAMP_PARAMS,
        integer_params=INTEGER_PARAMS,
        excel_date_system=source.excel_date_system,
    )
    limits = _Limits(timestamp_range(settings.validation, time.time()), settings.eu_vat)
    rows: list[SourceRow] = []
    first_line: dict[str, int] = {}
    for chunk in source.chunks():
        mapped = apply(bound, chunk.frame, chunk.lines, chunk.issues)
        names = [str(c) for c in mapped.params.columns]
        cells = [mapped.params[c].to_numpy(dtype=object, na_value=None).tolist() for c in names]  # type: ignore[call-overload]
        raws = mapped.raw.to_dict("records")
        skip = mapped.skip.tolist() if mapped.skip is not None else [None] * len(raws)
        for pos, record in enumerate(raws):
            if skip[pos] is not None:
                continue
            line = int(mapped.lines[pos])
            raw = {str(k): str(v) for k, v in record.items()}
            issues = [i for p, i in mapped.issues if p == pos and i.severity == "error"]
            values = {n: col[pos] for n, col in zip(names, cells, strict=True)}
            params = _mapped_params(values, bound.sources, line, limits, issues)
            if mapped.row_keys[pos].startswith("h:") and "id" not in bound.sources:
                issues.append(
                    _issue(
                        line,
                        None,
                        "id",
                        None,
                        "required",
                        "the mapping derives this order's id from the whole row, so a "
                        "corrected row names another order; map an id column, or give "
                        "[id] key_columns / a document number column",
                    )
                )
            rows.append(_update_row(path, source.sheet, line, raw, params, issues, first_line))
    return rows


def _mapped_params(
    values: Mapping[str, Any],
    sources: Mapping[str, str],
    line: int,
    limits: _Limits,
    issues: list[Issue],
) -> dict[str, Any]:
    """Nested update params from one mapped row; import-only values under IMPORT_ONLY_KEY."""
    params: dict[str, Any] = {}
    imported: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if name == "id":
            params["id"] = str(value).strip()
            continue
        if name not in UPDATE_ORDER_PARAMS:
            imported[name] = value if not isinstance(value, str) else value.strip()
            continue
        column = Column(sources.get(name, name), "param", name)
        checked = _typed_value(column, value, line, limits, issues)
        if checked is None:
            continue
        head, dot, tail = name.partition(".")
        if dot:
            params.setdefault(head, {})[tail] = checked
        else:
            params[head] = checked
    if "id" not in params:
        issues.append(
            _issue(line, None, "id", None, "required", "id is required: which order to correct")
        )
    if imported:
        params[IMPORT_ONLY_KEY] = imported
    return params


def _issue(
    line: int, column: str | None, param: str | None, value: str | None, rule: str, message: str
) -> Issue:
    return Issue(
        source_line=line,
        column=column,
        param=form_name(param) if param else None,
        value=None if value is None else value[:200],
        rule=rule,
        message=message,
        stage="schema",
    )


def _row_params(
    columns: list[Column],
    raw: Mapping[str, str],
    dates: Mapping[str, tuple[pd.Series, pd.Series]],
    pos: int,
    line: int,
    limits: _Limits,
    issues: list[Issue],
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    items: dict[int, dict[str, str]] = {}
    for column in columns:
        text = unneutralise_cell(raw.get(column.name, "")).strip()
        if not text or column.kind == "ignore":
            continue
        if column.kind == "billing":
            issues.append(
                _issue(line, column.name, column.param, text, "not_updatable", BILLING_MESSAGE)
            )
        elif column.kind == "id":
            if len(text) > 40:
                issues.append(
                    _issue(
                        line,
                        column.name,
                        "id",
                        text,
                        "max_length",
                        "id is longer than 40 characters",
                    )
                )
            params["id"] = text
        elif column.kind == "line_item":
            items.setdefault(column.index, {})[column.param] = text
        else:
            value = _param_value(column, text, dates, pos, line, limits, issues)
            if value is not None:
                head, dot, tail = column.param.partition(".")
                if dot:
                    params.setdefault(head, {})[tail] = value
                else:
                    params[head] = value
    if "id" not in params:
        issues.append(
            _issue(line, None, "id", None, "required", "id is required: which order to correct")
        )
    if items:
        params["order_line_items"] = _line_items(items, line, issues)
    return params


def _param_value(
    column: Column,
    text: str,
    dates: Mapping[str, tuple[pd.Series, pd.Series]],
    pos: int,
    line: int,
    limits: _Limits,
    issues: list[Issue],
) -> Any:
    spec: ParamSpec = UPDATE_ORDER_PARAMS[column.param]
    if spec.kind == "timestamp":
        seconds, errors = dates[column.name]
        if errors.iloc[pos] is not None:
            message = f"{column.param} {errors.iloc[pos]}"
            issues.append(_issue(line, column.name, column.param, text, "date", message))
            return None
        return _typed_value(column, int(seconds.iloc[pos]), line, limits, issues)
    return _typed_value(column, text, line, limits, issues)


def _typed_value(
    column: Column, value: Any, line: int, limits: _Limits, issues: list[Issue]
) -> Any:
    """One update value checked against Chargebee's rules (timestamps as int seconds)."""
    spec: ParamSpec = UPDATE_ORDER_PARAMS[column.param]
    field = column.param.split(".")[-1]
    text = str(value).strip()

    def bad(rule: str, message: str) -> None:
        issues.append(
            _issue(line, column.name, column.param, text, rule, f"{column.param} {message}")
        )

    if spec.kind == "timestamp":
        seconds = int(value)
        low, high = limits.ts_range
        if not low <= seconds <= high:
            bad("timestamp_range", f"is outside the plausible range {low}..{high}")
            return None
        return seconds
    if spec.kind == "enum":
        choice = text.lower()
        if spec.choices is not None and choice not in spec.choices:
            bad("enum", f"is not one of: {', '.join(spec.choices)}")
            return None
        return choice
    if spec.max_length is not None and len(text) > spec.max_length:
        bad("max_length", f"is longer than {spec.max_length} characters")
        return None
    if field == "country":
        text = text.upper()
        if text not in COUNTRY_CODES:
            bad("country", "is not an ISO 3166-1 alpha-2 country code (e.g. US, DE, GB, XI)")
            return None
        if text == "XI" and not limits.eu_vat:
            bad("country_xi", f"'XI' {XI_NEEDS_EU_VAT}")
            return None
    if field == "email" and not EMAIL.match(text):
        bad("email", "is not an email address")
        return None
    return text


def _line_items(
    items: dict[int, dict[str, str]], line: int, issues: list[Issue]
) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for index in sorted(items):
        item = items[index]
        where = f"order_line_items[{index}]"
        if "id" not in item:
            issues.append(
                _issue(
                    line,
                    None,
                    None,
                    None,
                    "required",
                    f"{where}: a line item change needs the line item id",
                )
            )
            continue
        if "status" in item:
            item["status"] = item["status"].lower()
            if item["status"] not in LINE_ITEM_STATUSES:
                issues.append(
                    _issue(
                        line,
                        None,
                        None,
                        item["status"],
                        "enum",
                        f"{where} status is not one of: {', '.join(LINE_ITEM_STATUSES)}",
                    )
                )
        for name, limit in LINE_ITEM_LIMITS.items():
            if len(item.get(name, "")) > limit:
                issues.append(
                    _issue(
                        line,
                        None,
                        None,
                        item[name],
                        "max_length",
                        f"{where} {name} is longer than {limit}",
                    )
                )
        out.append(item)
    return out
