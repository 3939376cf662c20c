"""Orchestrate load → map → validate: stream SourceRows for the runner, or validate a whole file.

File-level problems raise (InputError/ConfigError) before the first chunk is produced; row-level
problems are Issues attached to their rows. Imports load, mapping, validate, safety, schemas.
"""

from __future__ import annotations

import functools
import hashlib
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.load.reader import input_sha256, open_input
from pipeline.load.rows import RawChunk, Source
from pipeline.models import Issue, SourceRow
from pipeline.prepare.apply import BoundMapping, MappedChunk, apply, bind, implicit_mapping
from pipeline.prepare.findings import BadValues, ValidationReportWriter, ValidationSummary
from pipeline.prepare.grouping import regroup
from pipeline.prepare.mapping import MappingSpec, load_mapping, parse_mapping
from pipeline.prepare.suggest import (
    StarterMapping,
    control_role,
    match_header,
    preset_starter,
    preset_text,
    starter_mapping,
)
from pipeline.prepare.validation import FileState, mix64, validate_chunk
from pipeline.safety import unneutralise_cell
from schemas import (
    IMPORT_ORDER_PARAMS,
    IMPORT_STATUSES,
    INTEGER_PARAMS,
    REQUIRED_IMPORT_PARAMS,
    TIMESTAMP_PARAMS,
)

EXAMPLES = 10
__all__ = [
    "ValidationSummary",
    "fingerprints",
    "input_sha256",
    "prepare_rows",
    "validate_file",
    "write_starter_mapping",
]


def _mapping_spec(settings: Settings, header: list[str]) -> MappingSpec:
    known = IMPORT_ORDER_PARAMS.keys()
    if settings.mapping_path is not None:
        return load_mapping(settings.mapping_path, known, TIMESTAMP_PARAMS)
    return implicit_mapping(header, known, TIMESTAMP_PARAMS)


def several_per_invoice(settings: Settings) -> bool:
    """True when the mapping allows several orders per invoice (``[orders]``)."""
    return settings.mapping_path is not None and _mapping_spec(settings, []).several_per_invoice


def open_prepared(path: Path, settings: Settings) -> tuple[Source, BoundMapping]:
    """Open the file and bind the mapping; every file-level problem raises here.

    Raises:
        InputError: the file is unusable (see ``load.reader.open_source``) or lacks columns.
        ConfigError: the mapping file is unusable.
    """
    spec = None
    if settings.mapping_path is not None:  # a broken mapping is reported before the file is read
        spec = _mapping_spec(settings, [])
        settings = reading_settings(settings, spec)
    source = open_input(path, settings)
    spec = spec or _mapping_spec(settings, source.header)
    bound = bind(
        spec,
        source.header,
        path=path,
        header_line=source.header_line,
        required=REQUIRED_IMPORT_PARAMS,
        timestamp_params=TIMESTAMP_PARAMS,
        integer_params=INTEGER_PARAMS,
        excel_date_system=source.excel_date_system,
    )
    return source, bound


def reading_settings(settings: Settings, spec: MappingSpec) -> Settings:
    """The mapping's ``[file] encoding``/``delimiter`` apply unless a flag or config set them."""
    return settings.model_copy(
        update={
            "encoding": settings.encoding or spec.encoding,
            "delimiter": settings.delimiter or spec.delimiter,
        }
    )


def _process(
    source: Source, bound: BoundMapping, settings: Settings, now: float
) -> Iterator[tuple[MappedChunk, dict[int, list[Issue]]]]:
    """Map and validate each chunk; yields the mapped chunk and its issues by row position."""
    state = FileState()
    chunks = source.chunks()
    if bound.spec.group_by is not None:
        chunks = regroup(chunks, bound.spec.group_by)
    for chunk in chunks:
        frame = _unneutralise(chunk, bound)
        mapped = apply(bound, frame, chunk.lines, chunk.issues)
        skipped = None if mapped.skip is None else mapped.skip != None  # noqa: E711
        found = validate_chunk(
            mapped.params,
            mapped.lines,
            mapped.row_keys,
            sources=bound.sources,
            rules=settings.validation,
            state=state,
            skip=mapped.failed,
            now=now,
            display=mapped.texts,
            ids_follow_keys=not bound.has_row_key,
            documents_follow_keys=not bound.has_row_key
            and bound.spec.id.source == "document_number",
            unique_invoice=not bound.spec.several_per_invoice,
            exclude=None if skipped is None else skipped.astype(bool),
            dates=mapped.dates,
            eu_vat=settings.eu_vat,
        )
        by_row: dict[int, list[Issue]] = {}
        for pos, issue in (*mapped.issues, *found):
            if skipped is None or not skipped[pos]:
                by_row.setdefault(pos, []).append(issue)
        yield mapped, by_row
        del chunk, frame, mapped, found, by_row  # freed before the next chunk is mapped


def _unneutralise(chunk: RawChunk, bound: BoundMapping) -> pd.DataFrame:
    """Our own failures files (with ``oi:row_key``) had formula-like cells neutralised: undo it."""
    if not bound.has_row_key:
        return chunk.frame
    frame = chunk.frame.copy()
    for col in bound.data_columns:
        frame[col] = frame[col].map(unneutralise_cell).astype("str")
    return frame


def prepare_rows(
    path: Path, settings: Settings, *, first_rows: int | None = None
) -> Iterator[list[SourceRow]]:
    """Stream a file as lists of SourceRows (one list per ``settings.chunk_rows`` records; with
    ``first_rows``, the first chunk comes as lists of ``first_rows``, twice that, ... rows).

    File-level problems raise on this call, before any chunk. Each SourceRow carries its row
    key, source line, raw text, nested params (addresses as sub-dicts, timestamps as int Unix
    seconds, empty cells omitted) and its validation issues.

    Raises:
        InputError: the input file is unusable.
        ConfigError: the mapping file is unusable.
    """
    source, bound = open_prepared(path, settings)
    return _rows(source, bound, settings, str(path), first_rows)


def _rows(
    source: Source,
    bound: BoundMapping,
    settings: Settings,
    name: str,
    first_rows: int | None = None,
) -> Iterator[list[SourceRow]]:
    for index, (mapped, by_row) in enumerate(_process(source, bound, settings, time.time())):
        yield from _source_row_slices(
            mapped, by_row, name, source.sheet, first_rows if index == 0 else None
        )


_U64 = np.uint64


@functools.cache
def _salt(name: str, kind: str) -> np.uint64:
    digest = hashlib.sha256(f"{name}\x1f{kind}".encode()).digest()
    return _U64(int.from_bytes(digest[:8], "big"))


def fingerprints(params: pd.DataFrame) -> list[int] | None:
    """A 64-bit content fingerprint per row of a mapped params frame, computed column-wise.

    Equal fingerprints mean equal params (to a 2**-64 chance): each non-empty cell adds
    ``mix(hash(value) ^ salt(column name, int|str))`` to its row's sum, so every param's name,
    kind and value counts, column order does not (nor do empty cells: canonical JSON omits
    them too). The ledger compares it with the one stored when the row was planned, so an
    unchanged row on resume costs no JSON encoding; a differing one is compared by content
    hash, as before. Stable across processes (pandas' ``hash_array`` has a fixed key).

    Returns None when a column holds anything but text or integers (the ledger then compares
    content hashes for the whole chunk).
    """
    total = np.zeros(len(params), dtype=np.uint64)
    for name in params.columns:
        column = params[name]
        empty = column.isna().to_numpy(dtype=bool)
        if column.dtype == "Int64":
            kind = "int"
            hashed = pd.util.hash_array(column.to_numpy(dtype="int64", na_value=0))
        elif pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty"):
            kind = "str"
            hashed = pd.util.hash_array(
                column.to_numpy(dtype=object, na_value=""),
                categorize=False,  # factorising first is 10x slower on text columns
            )
        else:
            return None
        cells = mix64(hashed ^ _salt(str(name), kind))
        cells[empty] = 0
        total += cells
    return [int(v) for v in mix64(total).view(np.int64).tolist()]


def _source_rows(
    mapped: MappedChunk, by_row: dict[int, list[Issue]], name: str, sheet: str | None
) -> list[SourceRow]:
    """A mapped chunk's SourceRows in one list."""
    return [row for rows in _source_row_slices(mapped, by_row, name, sheet) for row in rows]


def _source_row_slices(
    mapped: MappedChunk,
    by_row: dict[int, list[Issue]],
    name: str,
    sheet: str | None,
    first_rows: int | None = None,
) -> Iterator[list[SourceRow]]:
    """A mapped and validated chunk's SourceRows, built column-wise (values leave pandas once
    per column, not once per cell): one list, or (``first_rows``) lists of
    ``first_rows``, twice that, four times that, ... rows. The chunk was validated whole
    (uniqueness included) before the first list is built; slicing only lets a new batch plan
    and send its first rows while the rest of the chunk's rows are built and planned."""
    raw_names = [str(c) for c in mapped.raw.columns]
    raw_values = [mapped.raw[c].to_numpy(dtype=object, na_value="").tolist() for c in raw_names]
    layout: list[tuple[str, str | None]] = []
    values: list[list[Any]] = []
    for param in mapped.params.columns:
        column = mapped.params[param]
        head, dot, tail = str(param).partition(".")
        layout.append((head, tail if dot else None))
        numeric = column.dtype == "Int64"
        cells = column.to_numpy(dtype=object, na_value=None).tolist()  # type: ignore[call-overload]
        values.append([None if v is None else int(v) for v in cells] if numeric else cells)
    raw_rows = zip(*raw_values, strict=True) if raw_values else iter(lambda: (), None)
    skip = mapped.skip.tolist() if mapped.skip is not None else None
    groups = mapped.group_lines
    control = None
    if mapped.control:
        amounts = mapped.control["amount"].to_numpy(dtype=object, na_value=None).tolist()  # type: ignore[call-overload]
        currencies = mapped.control["currency"].to_numpy(dtype=object, na_value=None).tolist()  # type: ignore[call-overload]
        control = [
            {"amount": None if a is None else int(a), "currency": c}
            for a, c in zip(amounts, currencies, strict=True)
        ]
    prints = fingerprints(mapped.params)
    total = len(mapped.row_keys)
    size = total if first_rows is None else max(1, first_rows)
    rows: list[SourceRow] = []
    for pos, (raw, cells) in enumerate(zip(raw_rows, zip(*values, strict=True), strict=False)):
        if len(rows) >= size:
            yield rows
            rows, size = [], size * 2
        nested: dict[str, Any] = {}
        for (key, sub), value in zip(layout, cells, strict=True):
            if value is None:
                continue
            if sub is None:
                nested[key] = value
            else:
                nested.setdefault(key, {})[sub] = value
        rows.append(
            SourceRow(
                row_key=mapped.row_keys[pos],
                source_file=name,
                sheet=sheet,
                source_line=int(mapped.lines[pos]),
                raw=dict(zip(raw_names, raw, strict=True)),
                params=nested,
                issues=tuple(by_row.get(pos, ())),
                lines=groups[pos] if groups is not None and len(groups[pos]) > 1 else (),
                skip_reason=None if skip is None else skip[pos],
                control=None if control is None else control[pos],
                fingerprint=None if prints is None else prints[pos],
            )
        )
    if rows or not total:
        yield rows


def validate_file(path: Path, settings: Settings, report_dir: Path | None) -> ValidationSummary:
    """Validate every row of a file; write ``validation.csv`` into ``report_dir`` when given.

    Raises:
        InputError: the input file is unusable.
        ConfigError: the mapping file is unusable.
    """
    started = time.monotonic()
    source, bound = open_prepared(path, settings)
    writer = ValidationReportWriter(report_dir, str(path), source.sheet)
    rules: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    bad = BadValues()
    examples: list[Issue] = []
    warnings_seen: list[Issue] = []
    rows = invalid = errors = warnings = lines = 0
    with writer:
        for issue in bound.file_issues:
            writer.write(issue)
            rules[issue.rule] += 1
            warnings += 1
        for mapped, by_row in _process(source, bound, settings, time.time()):
            rows += len(mapped.row_keys)
            if mapped.group_lines is not None:
                lines += sum(map(len, mapped.group_lines))
            if mapped.skip is not None:
                skipped.update(reason for reason in mapped.skip.tolist() if reason is not None)
            for pos in sorted(by_row):
                found = by_row[pos]
                row_invalid = False
                for issue in found:
                    writer.write(issue)
                    rules[issue.rule] += 1
                    bad.add(issue)
                    if issue.severity == "error":
                        errors += 1
                        row_invalid = True
                        if len(examples) < EXAMPLES:
                            examples.append(issue)
                    else:
                        warnings += 1
                        if len(warnings_seen) < EXAMPLES:
                            warnings_seen.append(issue)
                invalid += row_invalid
            del mapped, by_row  # freed before the next chunk is mapped
    shown = (examples + warnings_seen)[:EXAMPLES]
    n_skipped = sum(skipped.values())
    return ValidationSummary(
        source_file=str(path),
        sheet=source.sheet,
        rows_read=rows,
        valid=rows - invalid - n_skipped,
        invalid=invalid,
        warnings=warnings,
        errors=errors,
        counts_by_rule=dict(rules.most_common()),
        examples=tuple(shown),
        file_issues=tuple(bound.file_issues),
        report_path=writer.path,
        encoding=source.encoding,
        delimiter=source.delimiter,
        duration_s=time.monotonic() - started,
        skipped=n_skipped,
        skipped_by_reason=dict(skipped.most_common()),
        bad_values=bad.columns(),
        orders_from_lines=lines,
        encoding_note=source.encoding_note,
    )


def write_starter_mapping(
    path: Path,
    out: Path,
    settings: Settings,
    *,
    overwrite: bool = False,
    preset: str | None = None,
) -> StarterMapping:
    """Write a starter mapping for a file to ``out`` (``mapping init``): a shipped preset, or
    one matched to the file's headers with date formats and status values sniffed from the data.

    Raises:
        InputError: the input file is unusable.
        ConfigError: ``out`` exists (without ``overwrite``), cannot be written, or no such preset.
    """
    if preset is not None:
        preset_text(preset)  # an unknown preset is refused before the file is read
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: already exists", hint="pass --force or choose another --out")
    source = open_input(path, settings, chunk_rows=min(settings.chunk_rows, 10_000))
    first = next(source.chunks())
    if preset is not None:
        spec = parse_mapping(
            tomllib.loads(preset_text(preset)), None, IMPORT_ORDER_PARAMS, TIMESTAMP_PARAMS
        )
        reads = {*spec.referenced_columns(), *spec.columns}
        starter = preset_starter(preset, source.header, reads)
        missing = [c for c in spec.referenced_columns() if c not in source.header]
        if missing:
            starter.notes.append(
                "validate will stop until the file has (or the mapping stops naming): "
                + ", ".join(repr(c) for c in missing)
            )
    else:
        frame = first.frame.head(1000)
        matched = {c: match_header(c, IMPORT_ORDER_PARAMS) for c in source.header}
        status_col = next((c for c, p in matched.items() if p == "status"), None)
        amount_col = next((c for c in source.header if control_role(c) == "amount"), None)
        starter = starter_mapping(
            source.header,
            IMPORT_ORDER_PARAMS,
            REQUIRED_IMPORT_PARAMS,
            IMPORT_STATUSES,
            frame[status_col].tolist() if status_col else [],
            {c: frame[c].tolist() for c, p in matched.items() if p in TIMESTAMP_PARAMS},
            encoding=source.encoding if source.kind == "csv" else None,
            delimiter=source.delimiter if source.kind == "csv" else None,
            amount_samples=frame[amount_col].tolist() if amount_col else [],
        )
    try:
        out.write_text(starter.text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write ({exc.strerror or exc})") from None
    return starter
