"""Validate mapped params: pandera schemas (lazy) per field, then vectorised cross-field rules.

Rejects are data: every failure becomes an ``Issue`` for one row and field. Imports models,
``prepare.dates`` and schemas only. Uniqueness inside a file spans chunks through ``FileState``.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.compute as pc

from pipeline.models import Issue, Severity, Stage, ValidationRules, truncate_value
from pipeline.prepare.dates import TEXT, DateCells, local_days, wall_texts
from pipeline.prepare.postal import invalid_postal_codes, postal_format
from schemas import (
    ADDRESS_PREFIXES,
    CHECK_MESSAGES,
    IMPORT_ORDER_PARAMS,
    STATE_CODE_COUNTRIES,
    check_rule,
    form_name,
    import_order_schema,
    schema_passes,
)

ID_LIKE = (
    "id",
    "document_number",
    "invoice_id",
    "subscription_id",
    "customer_id",
    "reference_id",
    "tracking_id",
)
_SCIENTIFIC = r"^\d(?:[.,]\d+)?[eE]\+\d+$"
_SCIENTIFIC_RE2 = r"^\p{Nd}(?:[.,]\p{Nd}+)?[eE]\+\p{Nd}+\n?$"
"""``re.match(_SCIENTIFIC)`` for RE2 (pyarrow): Python's ``\\d`` is any Unicode digit and its
``$`` also matches before a final newline."""
_FOUR_DIGITS_RE2 = r"^\p{Nd}{4}$"
"""``re.fullmatch(r"\\d{4}")`` for RE2."""


PARTITION_BITS = 4
"""The index is split into 2**4 sorted partitions by a hash's top bits: adding a chunk
reallocates each partition (1/16 of the index) in turn, never the whole index at once."""


class SeenValues:
    """64-bit hashes of values already seen in a file, with the line of their first occurrence.

    Sorted numpy arrays (8 + 4 bytes per distinct value), in ``2**PARTITION_BITS`` partitions by
    the hash's top bits: 10M distinct keys cost ~120 MB, not the ~1 GB of a Python set of
    strings, and growing the index copies one partition at a time (~8 MB at 10M keys), not all
    of it. A hash collision (odds ~1e-7 at 10M values) would report a false duplicate, never
    hide a real one.
    """

    def __init__(self) -> None:
        parts = 1 << PARTITION_BITS
        self.hashes = [np.empty(0, dtype=np.uint64) for _ in range(parts)]
        self.lines = [np.empty(0, dtype=np.int32) for _ in range(parts)]

    def __len__(self) -> int:
        """Distinct values indexed."""
        return sum(part.size for part in self.hashes)

    def check_and_add(self, values: pd.Series, lines: np.ndarray) -> np.ndarray:
        """For each row: 0 when first seen, else the line where the value first appeared."""
        first_line = np.zeros(len(values), dtype=np.int64)
        present = np.flatnonzero(values.notna().to_numpy(dtype=bool))
        if present.size == 0:
            return first_line
        hashed = text_hashes(values.iloc[present])
        part = (hashed >> np.uint64(64 - PARTITION_BITS)).astype(np.intp)
        row_lines = lines[present]
        hit = np.zeros(present.size, dtype=bool)
        for p in np.unique(part).tolist():
            known = self.hashes[p]
            if not known.size:
                continue
            rows = np.flatnonzero(part == p)
            pos = np.searchsorted(known, hashed[rows]).clip(max=known.size - 1)
            found = known[pos] == hashed[rows]
            hit[rows[found]] = True
            first_line[present[rows[found]]] = self.lines[p][pos[found]]
        order = np.argsort(hashed, kind="stable")
        sorted_h = hashed[order]
        starts = np.ones(sorted_h.size, dtype=bool)
        starts[1:] = sorted_h[1:] != sorted_h[:-1]
        group_first = order[np.maximum.accumulate(np.where(starts, np.arange(sorted_h.size), 0))]
        repeat = ~starts
        inner = order[repeat]
        undecided = first_line[present[inner]] == 0
        first_line[present[inner[undecided]]] = row_lines[group_first[repeat][undecided]]
        new = order[starts & ~hit[order]]  # first occurrences not seen before, in hash order
        new_part = part[new]
        for p in np.unique(new_part).tolist():
            add = new[new_part == p]  # still in hash order
            at = np.searchsorted(self.hashes[p], hashed[add])
            self.hashes[p] = np.insert(self.hashes[p], at, hashed[add])
            self.lines[p] = np.insert(self.lines[p], at, row_lines[add].astype(np.int32))
        return first_line


_U64 = np.uint64
MAX_HASHED_BYTES = 256
"""Longer texts are hashed through Python objects (pandas' ``hash_array``), as before."""


def mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser over a uint64 array (a bijection; wraps, no warning for arrays);
    also mixes prepare's row fingerprints."""
    values = values ^ (values >> _U64(30))
    values = values * _U64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> _U64(27))
    values = values * _U64(0x94D049BB133111EB)
    mixed: np.ndarray = values ^ (values >> _U64(31))
    return mixed


def text_hashes(values: pd.Series) -> np.ndarray:
    """A 64-bit hash per cell of a text Series without NA, from the pyarrow bytes (no Python
    string per cell). Cells are sorted by byte length once; the cells of one length lie back
    to back, read as little-endian 8-byte words (zero-padded) and chained through splitmix64's
    finaliser from a seed of the length. Equal texts hash equal; numbers hash as their text."""
    if not (isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow"):
        values = values.astype(TEXT)
    text = pyarrow.array(values.array)
    if isinstance(text, pyarrow.ChunkedArray):
        text = text.combine_chunks()
    lengths = pc.binary_length(text).to_numpy(zero_copy_only=False).astype(np.int64)
    if not lengths.size or lengths.max() > MAX_HASHED_BYTES:
        return pd.util.hash_array(values.to_numpy(dtype=object), categorize=False)
    order = np.argsort(lengths, kind="stable")
    ordered = text.take(pyarrow.array(order))
    if pyarrow.types.is_string(ordered.type):
        ordered = ordered.cast(pyarrow.large_string())
    _, offsets_buf, data_buf = ordered.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[ordered.offset :]
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    )
    sorted_lengths = lengths[order]
    bounds = np.flatnonzero(np.diff(sorted_lengths)) + 1
    out = np.empty(lengths.size, dtype=np.uint64)
    for start, stop in zip([0, *bounds.tolist()], [*bounds.tolist(), lengths.size], strict=True):
        size = int(sorted_lengths[start])
        count = stop - start
        seed = mix64(np.full(count, size + 0x9E3779B97F4A7C15, dtype=np.uint64))
        if size:
            first = int(offsets[start])
            cells = data[first : first + count * size].reshape(count, size)
            words = -(-size // 8)
            padded = np.zeros((count, words * 8), dtype=np.uint8)
            padded[:, :size] = cells
            chunks = padded.view("<u8")
            for j in range(words):
                seed = mix64(seed ^ chunks[:, j])
        out[order[start:stop]] = seed
    return out


class RowKeys(list[str]):
    """The row keys of a chunk (a list, as SourceRows take them) with the same keys as a text
    Series when apply had one (``text``), so validation need not build it again from the list."""

    text: pd.Series | None = None


@dataclass(slots=True)
class FileState:
    """What validation remembers across the chunks of one file."""

    ids: SeenValues = field(default_factory=SeenValues)
    document_numbers: SeenValues = field(default_factory=SeenValues)
    row_keys: SeenValues = field(default_factory=SeenValues)
    invoices: SeenValues = field(default_factory=SeenValues)


def timestamp_range(rules: ValidationRules, now: float) -> tuple[int, int]:
    """Inclusive plausible range (Unix seconds): 1 Jan ``min_year`` UTC .. now + max_future_days."""
    low = calendar.timegm((rules.min_year, 1, 1, 0, 0, 0, 0, 0, 0))
    return low, int(now) + rules.max_future_days * 86_400


def short_value(value: object) -> str | None:
    """A cell value as text for a finding (truncated); None for a missing value."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return truncate_value(str(value))


class _Collector:
    def __init__(
        self,
        params: pd.DataFrame,
        lines: np.ndarray,
        sources: Mapping[str, str],
        display: Mapping[str, pd.Series],
    ):
        self.params = params
        self.display = display
        self.lines = lines
        self.sources = sources
        self.issues: list[tuple[int, Issue]] = []

    def add(
        self,
        mask: pd.Series | np.ndarray,
        param: str,
        rule: str,
        message: str,
        severity: Severity = "error",
        stage: Stage = "rule",
    ) -> None:
        positions = np.flatnonzero(np.asarray(mask, dtype=bool))
        if positions.size == 0:
            return
        values = self.display.get(param, self.params.get(param))
        column = self.sources.get(param)
        name = form_name(param)
        # The cells and lines of every finding at once (one take each, not an iloc per row).
        shown = (
            [None] * positions.size
            if values is None
            else [short_value(v) for v in values.iloc[positions].tolist()]
        )
        lines = self.lines[positions].tolist()
        for pos, line, value in zip(positions.tolist(), lines, shown, strict=True):
            self.issues.append(
                (
                    pos,
                    Issue(
                        int(line),
                        column,
                        name,
                        value,
                        rule,
                        message.format(param=name, value=value),
                        severity,
                        stage,
                    ),
                )
            )


def validate_chunk(
    params: pd.DataFrame,
    lines: np.ndarray,
    row_keys: list[str],
    *,
    sources: Mapping[str, str],
    rules: ValidationRules,
    state: FileState,
    skip: set[tuple[int, str]] | frozenset[tuple[int, str]] = frozenset(),
    now: float | None = None,
    display: Mapping[str, pd.Series] | None = None,
    ids_follow_keys: bool = False,
    documents_follow_keys: bool = False,
    unique_invoice: bool = True,
    exclude: np.ndarray | None = None,
    dates: Mapping[str, DateCells] | None = None,
    eu_vat: bool = False,
) -> list[tuple[int, Issue]]:
    """All findings for one chunk of mapped params (positions index ``params`` rows).

    Args:
        params: one column per dotted param; text/NA, timestamps and integers as Int64.
        lines: source line per row.
        row_keys: the row key per row (duplicates are always an error: the ledger needs them
            unique).
        sources: dotted param → source column, to name the column in each issue.
        rules: the switchable cross-field rules.
        state: uniqueness memory shared by the chunks of one file.
        skip: (position, param) cells that already failed parsing; not re-reported.
        now: the clock for the "future" bound (defaults to ``time.time()``).
        display: the original text of parsed params, shown as the value in issues.
        ids_follow_keys: every id is the row key or derived from it, so a repeated id is
            already a repeated row key; the separate id index (12 bytes a row) is skipped.
        documents_follow_keys: every row key with a document number is the key derived from
            it (``[id] source = "document_number"``, no tool row key), so a repeated document
            number is already a repeated row key; its index (12 bytes a row) is skipped too.
        unique_invoice: a repeated ``invoice_id`` is an error (``duplicate_invoice_id``);
            off when the mapping allows several orders per invoice.
        exclude: rows (bool mask) that are skipped: they take no part in id, document
            number and invoice uniqueness (their row keys still must be unique).
        dates: per date param, the cells that are a day without a time and their zone: a day
            compared with a timestamp compares days (``date_order``).
        eu_vat: the site has EU VAT configured (setting ``eu_vat``): only then is ``XI``
            (Northern Ireland) accepted as a country (``country_xi`` error otherwise).
    """
    params = params.reset_index(drop=True)
    shown = {k: v.reset_index(drop=True) for k, v in (display or {}).items()}
    out = _Collector(params, lines, sources, shown)
    _schema_issues(params, out, rules, now if now is not None else time.time(), skip)
    _cross_field(params, out, rules, dates or {})
    follow = {"id": ids_follow_keys, "document_number": documents_follow_keys}
    reported = _uniqueness(params, lines, row_keys, out, rules, state, follow, exclude)
    if unique_invoice and "invoice_id" in params:
        _unique_invoice(params, lines, out, state, exclude, reported)
    _excel_hints(params, out)
    _addresses(params, out, eu_vat)
    return out.issues


def _schema_issues(
    params: pd.DataFrame,
    out: _Collector,
    rules: ValidationRules,
    now: float,
    skip: set[tuple[int, str]] | frozenset[tuple[int, str]],
) -> None:
    ts_range = timestamp_range(rules, now)
    if schema_passes(params, ts_range):
        return  # nothing for pandera to find (see schema_passes)
    import pandera.pandas as pa  # only for a chunk with invalid cells (see schema_passes)

    schema = import_order_schema(params.columns, ts_range)
    try:
        schema.validate(params, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return
    cases = cases[cases["schema_context"] == "Column"]
    for column, check, number, index in zip(
        cases["column"], cases["check"], cases["check_number"], cases["index"], strict=True
    ):
        if index is None or pd.isna(index):
            continue
        pos = int(index)
        if (pos, column) in skip:
            continue
        if check == "not_nullable":
            rule = "required"
        elif number is None or pd.isna(number):
            rule = "type"
        else:
            rule = check_rule(column, int(number))
        spec = IMPORT_ORDER_PARAMS[column]
        template = CHECK_MESSAGES.get(rule, f"failed {check}")
        message = template.format(
            max_length=spec.max_length,
            choices=", ".join(spec.choices or ()),
            low=ts_range[0],
            high=ts_range[1],
        )
        mask = np.zeros(len(params), dtype=bool)
        mask[pos] = True
        out.add(mask, column, rule, "{param} " + message, stage="schema")


def _cross_field(
    params: pd.DataFrame, out: _Collector, rules: ValidationRules, dates: Mapping[str, DateCells]
) -> None:
    def col(name: str) -> pd.Series:
        return params[name] if name in params else pd.Series(pd.NA, index=params.index)

    status = col("status")
    if rules.cancellation_reason_only_with_cancelled:
        bad = col("cancellation_reason").notna() & (status.fillna("") != "cancelled")
        out.add(
            bad.to_numpy(dtype=bool),
            "cancellation_reason",
            "cancellation_reason_status",
            "{param} is only allowed when status is cancelled",
        )
    if rules.date_order:
        for first, second in (("order_date", "shipping_date"), ("shipped_at", "delivered_at")):
            if first in params and second in params:
                _date_order(params, out, dates, first, second)
    if rules.queued_without_fulfilment:
        queued = status.fillna("") == "queued"
        for name in ("reference_id", "fulfillment_status"):
            out.add(
                (queued & col(name).notna()).to_numpy(dtype=bool),
                name,
                "queued_fulfilment",
                "{param} should be empty for queued orders (Chargebee's fulfilment apps fill it)",
                severity="warning",
            )
    prefix, start = rules.document_number_prefix, rules.document_number_start
    if prefix is not None and start is not None and "document_number" in params:
        doc = params["document_number"].fillna("")
        suffix = doc.str.slice(len(prefix))
        numeric = doc.str.startswith(prefix) & suffix.str.fullmatch(r"\d+").fillna(False)
        number = pd.to_numeric(suffix.where(numeric), errors="coerce")
        bad = numeric & (number >= start)
        out.add(
            bad.fillna(False).to_numpy(dtype=bool),
            "document_number",
            "document_number_series",
            f"{{param}} must be below the order series start {prefix}{start} "
            f"(Chargebee refuses numbers at or above it); use a distinct prefix for imports",
        )
    for address in ADDRESS_PREFIXES:
        code, country = f"{address}.state_code", f"{address}.country"
        if code not in params:
            continue
        bad = params[code].notna() & ~col(country).isin(STATE_CODE_COUNTRIES)
        out.add(
            bad.to_numpy(dtype=bool),
            code,
            "state_code_country",
            "{param} is only accepted for countries "
            + ", ".join(sorted(STATE_CODE_COUNTRIES))
            + "; use state instead",
        )


def _date_order(
    params: pd.DataFrame,
    out: _Collector,
    dates: Mapping[str, DateCells],
    first: str,
    second: str,
) -> None:
    """``second`` must not be before ``first``; when either cell is a day without a time of day,
    the days are compared (in that cell's zone), so a shipping day equal to the order's day is
    fine whatever the order's time. The message shows both values."""
    n = len(params)
    utc = DateCells(np.zeros(n, dtype=bool), "UTC")
    cells_a, cells_b = dates.get(first, utc), dates.get(second, utc)
    a, b = params[first], params[second]
    both = (a.notna() & b.notna()).to_numpy(dtype=bool)
    if not both.any():
        return
    sa = a.fillna(0).to_numpy(dtype=np.int64)
    sb = b.fillna(0).to_numpy(dtype=np.int64)
    bad = both & ~cells_a.date_only & ~cells_b.date_only & (sa > sb)
    for day_cells, rows in (
        (cells_a, cells_a.date_only),
        (cells_b, cells_b.date_only & ~cells_a.date_only),
    ):
        rows = rows & both
        if rows.any():
            zone = day_cells.timezone
            bad |= rows & (local_days(a, zone) > local_days(b, zone))
    name_a, name_b = form_name(first), form_name(second)
    column = out.sources.get(second)
    shown = out.display.get(second, b)
    rows = np.flatnonzero(bad)
    texts_a = wall_texts(sa[rows], cells_a.timezone, cells_a.date_only[rows])
    texts_b = wall_texts(sb[rows], cells_b.timezone, cells_b.date_only[rows])
    values = shown.iloc[rows].tolist()
    for pos, value, text_a, text_b in zip(rows, values, texts_a, texts_b, strict=True):
        out.issues.append(
            (
                int(pos),
                Issue(
                    int(out.lines[pos]),
                    column,
                    name_b,
                    short_value(value),
                    "date_order",
                    f"{name_b} {text_b} is before {name_a} {text_a}",
                    "error",
                    "rule",
                ),
            )
        )


def _uniqueness(
    params: pd.DataFrame,
    lines: np.ndarray,
    row_keys: list[str],
    out: _Collector,
    rules: ValidationRules,
    state: FileState,
    follow_keys: Mapping[str, bool],
    exclude: np.ndarray | None,
) -> np.ndarray:
    """Report repeated row keys, ids and document numbers; returns the rows reported.

    Every row involved is reported: each repeat names the line it repeats, and the first row
    of a value repeated later in the same chunk names the line of that repeat, so none of them
    is sent until only one is left. (A first row in an earlier chunk has already been passed
    on; only its repeats are reported.)
    """
    given = getattr(row_keys, "text", None)
    keys = given.reset_index(drop=True) if given is not None else pd.Series(row_keys, dtype="str")
    key_dup = state.row_keys.check_and_add(keys, lines)
    key_open = _repeated_later(keys, key_dup, lines)
    for pos in np.flatnonzero(key_dup | key_open):
        message = (
            f"repeats the row key of line {key_dup[pos]}"
            if key_dup[pos]
            else f"its row key is repeated on line {key_open[pos]}"
        )
        out.issues.append(
            (
                int(pos),
                Issue(
                    int(lines[pos]),
                    None,
                    None,
                    short_value(row_keys[pos]),
                    "duplicate_row_key",
                    f"{message} (the same order id, key columns or identical content); "
                    "rows sharing a key are not imported until only one of them is left",
                    "error",
                    "rule",
                ),
            )
        )
    by_key = (key_dup > 0) | (key_open > 0)
    reported = by_key.copy()
    if not rules.unique_in_file:
        return reported
    for name, seen in (("id", state.ids), ("document_number", state.document_numbers)):
        if name not in params or follow_keys.get(name, False):
            continue
        values = params[name] if exclude is None else params[name].where(~exclude, pd.NA)
        first = seen.check_and_add(values, lines)
        opener = _repeated_later(values, first, lines)
        first[by_key] = 0  # already reported as a duplicate row key
        opener[by_key] = 0
        for pos in np.flatnonzero(first):
            mask = np.zeros(len(params), dtype=bool)
            mask[pos] = True
            out.add(mask, name, f"duplicate_{name}", f"{{param}} repeats line {first[pos]}")
        for pos in np.flatnonzero(opener):
            mask = np.zeros(len(params), dtype=bool)
            mask[pos] = True
            out.add(
                mask,
                name,
                f"duplicate_{name}",
                f"{{param}} is repeated on line {opener[pos]}; rows sharing it are not "
                "imported until only one of them is left",
            )
        reported |= (first > 0) | (opener > 0)
    return reported


def _repeated_later(values: pd.Series, first: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Per row: the line of the next row repeating its value in this chunk, for rows first seen
    here (``first`` is 0) whose value repeats later in the chunk; else 0. Vectorised."""
    found = np.zeros(len(values), dtype=np.int64)
    present = values.notna().to_numpy(dtype=bool)
    later = values.duplicated(keep="first").to_numpy(dtype=bool) & present
    if not later.any():
        return found
    involved = values.duplicated(keep=False).to_numpy(dtype=bool) & present
    opener = involved & ~later & (first == 0)
    if not opener.any():
        return found
    repeat_line = pd.Series(lines[later], index=pd.Index(values[later].to_numpy(dtype=object)))
    repeat_line = repeat_line[~repeat_line.index.duplicated(keep="first")]
    found[opener] = repeat_line.reindex(values[opener].to_numpy(dtype=object)).to_numpy()
    return found


def _unique_invoice(
    params: pd.DataFrame,
    lines: np.ndarray,
    out: _Collector,
    state: FileState,
    exclude: np.ndarray | None,
    reported: np.ndarray,
) -> None:
    """Two orders naming one invoice: usually line items read as orders (see ``group_by``).

    Rows already reported as a repeated row key, id or document number are not reported again.
    """
    values = params["invoice_id"]
    if exclude is not None:
        values = values.where(~exclude, pd.NA)
    first = state.invoices.check_and_add(values, lines)
    first[reported] = 0
    column = out.sources.get("invoice_id")
    shown = params["invoice_id"]
    for pos in np.flatnonzero(first):  # one Issue per offending row, no per-row mask
        out.issues.append(
            (
                int(pos),
                Issue(
                    int(lines[pos]),
                    column,
                    "invoice_id",
                    short_value(shown.iloc[pos]),
                    "duplicate_invoice_id",
                    f"invoice_id is also the invoice of line {first[pos]}: two orders would be "
                    "created for one invoice (line items of one order? set [orders] group_by; "
                    "several orders per invoice on purpose? set [orders] several_per_invoice "
                    "= true)",
                    "error",
                    "rule",
                ),
            )
        )


def _excel_hints(params: pd.DataFrame, out: _Collector) -> None:
    for name in ID_LIKE:
        if name in params:
            out.add(
                _re2_mask(params[name], _SCIENTIFIC_RE2),
                name,
                "scientific_notation",
                "{param} looks like a number Excel turned into scientific notation; "
                "the original digits are lost — export the column as text",
                severity="warning",
            )
    for address in ADDRESS_PREFIXES:
        zip_code, country = f"{address}.zip", f"{address}.country"
        if zip_code in params and country in params:
            us = (params[country] == "US").fillna(False).to_numpy(dtype=bool)
            out.add(
                us & _re2_mask(params[zip_code], _FOUR_DIGITS_RE2),
                zip_code,
                "leading_zero",
                "{param} has 4 digits for a US address; a leading zero was probably lost",
                severity="warning",
            )


def _re2_mask(values: pd.Series, pattern: str) -> np.ndarray:
    """Cells matching an RE2 ``pattern`` (pyarrow, all cells at once); NA never matches."""
    if not (isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow"):
        values = values.astype(TEXT)
    found = pc.fill_null(pc.match_substring_regex(pyarrow.array(values.array), pattern), False)
    mask: np.ndarray = np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)
    return mask


XI_NEEDS_EU_VAT = (
    "(Northern Ireland) is accepted only when the Chargebee site has EU VAT configured; if "
    "yours has, set eu_vat = true in the config file (order-import.toml), else use GB"
)
"""Why ``XI`` is refused without the ``eu_vat`` setting (imports and update corrections)."""


def _addresses(params: pd.DataFrame, out: _Collector, eu_vat: bool) -> None:
    """``XI`` only with ``eu_vat``; postal codes that cannot be valid for their country (warning).

    A US zip of 4 digits is left to the ``leading_zero`` hint (one finding per cell).
    """
    for address in ADDRESS_PREFIXES:
        country_param, zip_param = f"{address}.country", f"{address}.zip"
        if country_param not in params:
            continue
        country = params[country_param]
        if not eu_vat:
            out.add(
                (country == "XI").fillna(False).to_numpy(dtype=bool),
                country_param,
                "country_xi",
                "{param} {value!r} " + XI_NEEDS_EU_VAT,
            )
        if zip_param not in params:
            continue
        codes = params[zip_param]
        bad = invalid_postal_codes(codes, country)
        if not bad.any():
            continue
        us = (country == "US").fillna(False).to_numpy(dtype=bool)
        bad &= ~(us & _re2_mask(codes, _FOUR_DIGITS_RE2))
        for code in pd.unique(country[bad].to_numpy(dtype=object)):
            fmt = postal_format(str(code))
            example = f" (e.g. {fmt.example})" if fmt is not None and fmt.example else ""
            out.add(
                bad & (country == code).fillna(False).to_numpy(dtype=bool),
                zip_param,
                "postal_code",
                f"{{param}} {{value!r}} cannot be a postal code of {code}{example}; "
                "the row is still sent as written",
                severity="warning",
            )
