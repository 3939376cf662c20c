"""Planning one chunk of source rows against the ledger: the resume rules, in one place.

Part of the ledger (the only code that writes SQL); called by ``Ledger.plan`` inside a write
transaction. Succeeded and in-flight rows are never touched, so a resume spends no rate budget
on rows that are already in Chargebee.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections import Counter
from dataclasses import asdict, replace
from typing import Any

import orjson

from pipeline.errors import DriftError
from pipeline.keys import canonical_json
from pipeline.ledger.reads import dumps
from pipeline.ledger.records import ChangedRow
from pipeline.ledger.schema import money_amount, money_currency
from pipeline.models import Issue, Operation, SourceRow

# currency and amount (schema v9) are computed by SQLite from the params (?8 / ?6) and control
# (?17 / ?15) bound for the row, with the expressions the v9 migration backfilled them with.
_INSERT = (
    "INSERT INTO rows (batch, row_key, operation, source_file, sheet, source_line, raw, params, "
    "content_hash, order_id, state, issues, updated_at, last_run_id, raw_hash, message, control, "
    "fingerprint, currency, amount) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
    f"{money_currency('?8', '?17')}, {money_amount('?8', '?17')})"
)
_REFRESH = (
    "UPDATE rows SET operation = ?, source_file = ?, sheet = ?, source_line = ?, raw = ?, "
    "params = ?, content_hash = ?, order_id = ?, state = ?, issues = ?, updated_at = ?, "
    "last_run_id = ?, raw_hash = ?, message = coalesce(?, message), control = ?, "
    f"fingerprint = ?, currency = {money_currency('?6', '?15')}, "
    f"amount = {money_amount('?6', '?15')} WHERE batch = ? AND row_key = ?"
)
_BACKFILL = "UPDATE rows SET fingerprint = ? WHERE batch = ? AND row_key = ?"
_UNSENT = ("invalid", "pending", "skipped")
_REQUEUE_FROM = frozenset({"failed", "retryable", "conflict", "blocked"})
_UNCHANGED = {
    "succeeded": "unchanged_succeeded",
    "in_flight": "in_doubt",
    "retryable": "still_retryable",
    "failed": "still_failed",
    "conflict": "still_failed",
    "blocked": "still_failed",
}
"""What a row whose content is unchanged counts as, by its stored state, whatever its
validity now (``pending`` and ``skipped`` rows also need their new state to be the same)."""


_SCALARS = frozenset({str, int, bool, type(None)})
"""Value types orjson encodes byte for byte as ``json`` does (exact types: no subclasses)."""
_NESTED = _SCALARS | {dict, list}
_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS
_AS_IS = orjson.OPT_PASSTHROUGH_SUBCLASS


def _plain(value: dict[str, Any] | list[Any]) -> bool:
    """True when ``value`` holds only dicts, lists and ``_SCALARS``: what prepare builds.
    Anything else (a float, a subclass, a date, an enum) takes ``json``'s path."""
    kinds = set(map(type, value.values() if type(value) is dict else value))
    if kinds <= _SCALARS:
        return True
    if not kinds <= _NESTED:
        return False
    inner = value.values() if type(value) is dict else value
    return all(_plain(v) for v in inner if type(v) is dict or type(v) is list)


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def canonical_text(params: dict[str, Any]) -> str:
    """``keys.canonical_json(params)``, byte for byte, several times faster.

    orjson writes what ``json`` writes (sorted keys, no whitespace, text unescaped but for
    quote, backslash and control characters) for dicts, lists, text, integers, booleans and
    None; anything else, a text with a lone surrogate or an integer beyond 64 bits goes
    through ``json`` itself (``tests/test_ledger_json.py`` compares both on generated
    values)."""
    data = _canonical(params) if _plain(params) else None
    return canonical_json(params) if data is None else data.decode("utf-8")


def compact_text(value: dict[str, Any]) -> str:
    """``reads.dumps(value)`` (keys in their order), byte for byte, as ``canonical_text``."""
    data = _compact(value)
    return dumps(value) if data is None else data.decode("utf-8")


def _canonical(params: dict[str, Any]) -> bytes | None:
    """UTF-8 of ``canonical_text`` for params known to be ``_plain``; None: use ``json``."""
    try:
        return orjson.dumps(params, option=_SORTED, default=_refuse)
    except TypeError:  # orjson.JSONEncodeError is a TypeError: a lone surrogate, a huge int
        return None


def _compact(value: dict[str, Any]) -> bytes | None:
    """UTF-8 of ``compact_text``; None: use ``json``."""
    if not _plain(value):
        return None
    try:
        return orjson.dumps(value, option=_AS_IS, default=_refuse)
    except TypeError:
        return None


def _digest(row: SourceRow) -> tuple[str, str]:
    """(params JSON, content hash) of a source row.

    A row with a fingerprint holds only text and integers (``prepare.fingerprints`` gives
    none to a chunk with any other column), so its params need no ``_plain`` walk."""
    params = row.params if type(row.params) is dict else dict(row.params)
    data = _canonical(params) if row.fingerprint is not None or _plain(params) else None
    if data is None:
        text = canonical_json(params)
        return text, hashlib.sha256(text.encode("utf-8")).hexdigest()  # == keys.content_hash
    return data.decode("utf-8"), hashlib.sha256(data).hexdigest()


def _raw(row: SourceRow) -> tuple[str, int]:
    """(raw JSON, the first 64 bits of its sha256 as a signed integer) of a source row.

    The hash finds the record whatever its row key, so a record already sent that comes back
    under another key is recognised; an integer keeps its index small (a match is confirmed
    on the raw text itself)."""
    raw = row.raw if type(row.raw) is dict else dict(row.raw)
    data = _compact(raw)
    if data is None:
        data = dumps(raw).encode("utf-8")
    digest = hashlib.sha256(data).digest()
    return data.decode("utf-8"), int.from_bytes(digest[:8], "big", signed=True)


def _issues(row: SourceRow) -> str:
    return dumps([asdict(i) for i in row.issues]) if row.issues else "[]"


def _row_values(
    operation: Operation,
    row: SourceRow,
    params: str,
    digest: str,
    state: str,
    now: float,
    run_id: int,
    raw: tuple[str, int],
) -> tuple[Any, ...]:
    """The planned columns, in the order ``_INSERT`` (after batch, key) and ``_REFRESH``
    (before batch, key) both list them; ``raw`` is ``_raw(row)``."""
    return (
        operation,
        row.source_file,
        row.sheet,
        row.source_line,
        raw[0],
        params,
        digest,
        row.order_id,
        state,
        _issues(row),
        now,
        run_id,
        raw[1],
        row.skip_reason,
        dumps(dict(row.control)) if row.control else None,
        row.fingerprint,
    )


def _existing(
    conn: sqlite3.Connection, batch: str, keys: list[str]
) -> dict[str, tuple[str, str, int | None]]:
    """(state, content hash, fingerprint) of the rows of ``batch`` among ``keys``.

    The keys go in as one JSON array (``json_each``): a statement with thousands of ``?``
    costs more to compile than its look-ups."""
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples: a third cheaper than sqlite3.Row here
    cursor.execute(
        "SELECT row_key, state, content_hash, fingerprint FROM rows WHERE batch = ? "
        "AND row_key IN (SELECT value FROM json_each(?))",
        (batch, _array(keys)),
    )
    return {key: (state, digest, fingerprint) for key, state, digest, fingerprint in cursor}


_KEPT_BY_STATE = tuple(_UNCHANGED)
"""Stored states that alone decide a row whose fingerprint is unchanged (``_UNCHANGED``)."""
_DECIDED = (
    "r.fingerprint = k.value AND (r.state IN ("
    + ",".join(f"'{state}'" for state in _KEPT_BY_STATE)
    + ") OR r.state = ?1)"
)
_SETTLE = (
    f"SELECT CASE WHEN {_DECIDED} THEN NULL ELSE k.key END, r.state, "
    f"CASE WHEN {_DECIDED} THEN NULL ELSE r.content_hash END, r.fingerprint "
    # A LEFT JOIN: the chunk's keys drive the look-ups (left to itself, SQLite would walk
    # the batch's rows and scan the chunk for each), and a new key comes back with no state.
    "FROM json_each(?2) AS k LEFT JOIN rows AS r ON r.batch = ?3 AND r.row_key = k.key"
)


def _settle(
    conn: sqlite3.Connection, batch: str, by_key: dict[str, SourceRow], stats: Counter[str]
) -> tuple[dict[str, tuple[str, str, int | None]], list[str]] | None:
    """Decide the chunk's unchanged rows inside SQLite, counting them in ``stats``; returns
    the other stored rows among the chunk's keys as ``_existing`` does and the keys of new
    rows (in no particular order), or None when a key cannot go through orjson (the caller
    uses ``_existing``).

    A row is decided here exactly when ``plan_chunk``'s fast path would decide it: its
    fingerprint equals the stored one, and its stored state is one of ``_UNCHANGED`` or is
    ``pending`` (resp. ``skipped``) with the row still valid and unskipped (resp. skipped).
    The rows go in as JSON objects, key -> fingerprint, one per kind (valid, skipped,
    invalid), and only counts by state come back for the decided ones: no Python, and no
    Python object, per unchanged row."""
    kinds: tuple[dict[str, int | None], ...] = ({}, {}, {})
    for key, row in by_key.items():
        kinds[1 if row.skip_reason else 0 if _valid(row) else 2][key] = row.fingerprint
    try:
        texts = [orjson.dumps(kind).decode("utf-8") if kind else None for kind in kinds]
    except TypeError:  # a lone surrogate in a key
        return None
    rest: dict[str, tuple[str, str, int | None]] = {}
    new: list[str] = []
    cursor = conn.cursor()
    cursor.row_factory = None
    for text, also in zip(texts, ("pending", "skipped", None), strict=True):
        if text is None:
            continue
        decided: list[str] = []  # the states of rows decided unchanged, counted at the end
        for key, state, digest, fingerprint in cursor.execute(_SETTLE, (also, text, batch)):
            if key is None:
                decided.append(state)
            elif state is None:
                new.append(key)
            else:
                rest[key] = (state, digest, fingerprint)
        for state, count in Counter(decided).items():
            stats[_UNCHANGED.get(state) or _STILL[state]] += count
    return rest, new


_STILL = {"pending": "still_pending", "skipped": "skipped"}


def _array(values: list[str]) -> str:
    """A JSON array of texts, for ``json_each``."""
    try:
        return orjson.dumps(values).decode("utf-8")
    except TypeError:  # a lone surrogate: json escapes it
        return json.dumps(values)


def _valid(row: SourceRow) -> bool:
    """``row.is_valid``, with no generator for the usual row without findings."""
    return not row.issues or row.is_valid


def _state(row: SourceRow, valid: bool) -> str:
    return "skipped" if row.skip_reason else "pending" if valid else "invalid"


def plan_chunk(
    conn: sqlite3.Connection,
    batch: str,
    chunk: list[SourceRow],
    operation: Operation,
    run_id: int,
    changed: list[ChangedRow],
    inserted: list[str],
    unique_invoice: bool = True,
) -> Counter[str]:
    """Apply the planning rules to ``chunk``; returns PlanStats field counts.

    Valid succeeded rows whose content differs from what was sent are appended to ``changed``;
    the keys of rows inserted are appended to ``inserted``. A row's content is unchanged when
    its fingerprint equals the stored one (no JSON encoding); without an equal fingerprint it
    is compared by content hash (sha256 of canonical JSON), exactly as before fingerprints,
    and a row found unchanged that way gets its fingerprint stored for the next resume.

    Raises:
        DriftError: a valid new row is a record the batch already sent under another row key
            (nothing of the chunk is written; the caller rolls the transaction back).
    """
    stats: Counter[str] = Counter(total=len(chunk))
    by_key = {row.row_key: row for row in chunk}  # a key repeated in one chunk: last wins
    taken: dict[str, SourceRow] = {}
    if unique_invoice and operation == "import" and _any_sent_invoice(conn):
        # Read before the rows are decided (it writes nothing), so a row it makes invalid is
        # not decided unchanged; applied after the re-key check: a sent record back under a
        # new key is refused as such, not reported as a second order on its own invoice.
        taken = {row.row_key: row for row in invoices_taken(conn, batch, list(by_key.values()))}
    settled = _settle(conn, batch, {**by_key, **taken} if taken else by_key, stats)
    if settled is None:
        existing = _existing(conn, batch, list(by_key))
        new_keys = [key for key in by_key if key not in existing]
    else:
        existing, unordered = settled
        if unordered:  # in the chunk's order, as the re-key check and the inserts take them
            unseen = set(unordered)
            new_keys = [key for key in by_key if key in unseen]
        else:
            new_keys = []
    raws = {key: _raw(by_key[key]) for key in new_keys}
    fresh = {raws[key]: by_key[key] for key in new_keys if _valid(by_key[key])}
    if fresh:
        stats["rekeyed_unsent"] += _rekeyed(conn, batch, fresh)
    by_key.update(taken)
    # The rows left to decide in Python, in the chunk's order (new rows get rowids in it).
    if existing:
        left = set(existing).union(new_keys)
        todo = [(key, row) for key, row in by_key.items() if key in left]
    else:  # only new rows left (a first plan): new_keys is already in the chunk's order
        todo = [(key, by_key[key]) for key in new_keys]
    differs: list[tuple[SourceRow, str]] = []
    now = time.time()
    inserts: list[tuple[Any, ...]] = []
    refreshes: list[tuple[Any, ...]] = []
    backfill: list[tuple[int, str, str]] = []

    def same(row: SourceRow, key: str, old: tuple[str, str, int | None]) -> tuple[str, str] | None:
        """None when the row's content is what the ledger holds, else its (params, digest)."""
        if row.fingerprint is not None and row.fingerprint == old[2]:
            return None
        digest = _digest(row)
        if digest[1] != old[1]:
            return digest
        if row.fingerprint is not None:
            backfill.append((row.fingerprint, batch, key))
        return None

    for key, row in todo:
        old = existing.get(key)
        if old is None:
            valid = _valid(row)
            params, digest = _digest(row)
            new_state = _state(row, valid)
            stats["new" if new_state == "pending" else new_state] += 1
            values = _row_values(operation, row, params, digest, new_state, now, run_id, raws[key])
            inserts.append((batch, key, *values))
            continue
        if row.fingerprint is not None and row.fingerprint == old[2]:
            # Unchanged content (the usual resume): what the state alone decides, no JSON.
            kept = _UNCHANGED.get(old[0])
            if kept is None and old[0] == "skipped" and row.skip_reason:
                kept = "skipped"
            elif kept is None and old[0] == "pending" and not row.skip_reason and _valid(row):
                kept = "still_pending"
            if kept is not None:
                stats[kept] += 1
                continue
        valid = _valid(row)
        state = old[0]
        if state == "succeeded":
            if valid:
                now_content = same(row, key, old)
                if now_content is not None:
                    stats["changed_succeeded"] += 1
                    differs.append((row, now_content[0]))
                    continue
            stats["unchanged_succeeded"] += 1
            continue
        if state == "in_flight":
            stats["in_doubt"] += 1
            continue
        new_state = _state(row, valid)
        content: tuple[str, str] | None = None
        if state in _REQUEUE_FROM or (state in ("pending", "skipped") and new_state == state):
            content = same(row, key, old)
            if content is None:
                if state in _REQUEUE_FROM:
                    stats["still_retryable" if state == "retryable" else "still_failed"] += 1
                else:
                    stats["still_pending" if state == "pending" else "skipped"] += 1
                continue  # nothing to refresh
        params, digest = content if content is not None else _digest(row)
        if new_state in ("invalid", "skipped"):
            stats[new_state] += 1
        elif state == "pending":
            stats["still_pending"] += 1
        else:
            stats["requeued_changed"] += 1
        values = _row_values(operation, row, params, digest, new_state, now, run_id, _raw(row))
        refreshes.append((*values, batch, key))
    if inserts:
        conn.executemany(_INSERT, inserts)
        inserted.extend(values[1] for values in inserts)
    if refreshes:
        conn.executemany(_REFRESH, refreshes)
    if backfill:
        conn.executemany(_BACKFILL, backfill)
    if differs:
        changed.extend(_changed_rows(conn, batch, differs))
    return stats


def invoices_taken(conn: sqlite3.Connection, batch: str, chunk: list[SourceRow]) -> list[SourceRow]:
    """Valid rows naming an invoice that another row of this ledger already imported (or may
    have: ``in_flight``) get an ``invoice_already_imported`` error, before anything is sent:
    returns those rows, with their error added.

    Rows sharing an invoice inside one file are flagged by validation; this finds the ones whose
    invoice an earlier run or another batch of the same ledger gave an order already.
    """
    wanted: dict[str, list[int]] = {}
    for pos, row in enumerate(chunk):
        invoice = row.params.get("invoice_id")
        if invoice and not row.skip_reason and _valid(row):
            wanted.setdefault(str(invoice), []).append(pos)
    if not wanted:
        return []
    found = conn.execute(
        "SELECT batch, row_key, order_id, json_extract(params, '$.invoice_id') AS invoice "
        "FROM rows WHERE json_extract(params, '$.invoice_id') IN "
        "(SELECT value FROM json_each(?)) "
        "AND state IN ('succeeded', 'in_flight') AND operation = 'import'",
        (_array(list(wanted)),),
    ).fetchall()
    flagged: dict[int, SourceRow] = {}
    for holder in found:
        for pos in wanted.get(str(holder["invoice"]), ()):
            row = flagged.get(pos, chunk[pos])
            if holder["batch"] == batch and holder["row_key"] == row.row_key:
                continue  # the row itself, sent by an earlier run
            issue = Issue(
                source_line=row.source_line,
                column=None,
                param="invoice_id",
                value=str(holder["invoice"]),
                rule="invoice_already_imported",
                message=(
                    f"invoice {holder['invoice']} already has order {holder['order_id']} "
                    f"(batch {holder['batch']!r} of this ledger); several orders per invoice "
                    "on purpose? set [orders] several_per_invoice = true in the mapping"
                ),
                stage="rule",
            )
            flagged[pos] = replace(row, issues=(*row.issues, issue))
    return list(flagged.values())


def _any_sent_invoice(conn: sqlite3.Connection) -> bool:
    """True when some import row of the ledger with an invoice is ``succeeded`` or
    ``in_flight`` (the largest invoice of the partial index ``rows_invoice_sent``, one step
    into it): otherwise no invoice can be taken, and ``invoices_taken`` need not look at the
    chunk's rows."""
    (largest,) = conn.execute(
        "SELECT max(json_extract(params, '$.invoice_id')) FROM rows "
        "INDEXED BY rows_invoice_sent WHERE state IN ('succeeded', 'in_flight')"
    ).fetchone()
    return largest is not None


def _rekeyed(conn: sqlite3.Connection, batch: str, fresh: dict[tuple[str, int], SourceRow]) -> int:
    """Rows already in the batch under another key that are the same records as ``fresh``
    (new valid rows by ``_raw``).

    Sent (or maybe sent) ones refuse the plan: a new key would import them a second time.
    Never-sent ones leave the batch (their record is planned again under its new key);
    returns how many.
    """
    by_raw = {raw: row for (raw, _), row in fresh.items()}
    hashes = orjson.dumps(list(dict.fromkeys(h for _, h in fresh))).decode("utf-8")
    # Sorted here, not by ORDER BY rowid: that would let SQLite walk the table, not the index.
    found = sorted(
        conn.execute(
            "SELECT rowid AS rowid, row_key, state, order_id, raw FROM rows "
            "INDEXED BY rows_raw_hash WHERE raw_hash IN (SELECT value FROM json_each(?)) "
            "AND batch = ?",
            (hashes, batch),
        ),
        key=lambda r: int(r["rowid"]),
    )
    others = [r for r in found if r["raw"] in by_raw and r["row_key"] != by_raw[r["raw"]].row_key]
    sent = [r for r in others if r["state"] not in _UNSENT]
    if sent:
        first = sent[0]
        now = by_raw[first["raw"]]
        raise DriftError(
            f"batch {batch!r}: {len(sent)} row(s) already sent would get new row keys, so they "
            f"would be imported a second time (line {now.source_line}: sent as "
            f"{first['row_key']!r}, order {first['order_id']}, now keyed {now.row_key!r}); "
            "the mapping changed how rows are keyed since they were sent",
            hint="restore the mapping's [id] settings and the columns that feed id and "
            "document_number as they were when the batch started (--allow-drift does not "
            "change this); a different keying needs a new --batch for rows never sent",
        )
    stale = [r["row_key"] for r in others]
    if stale:
        conn.execute(
            "DELETE FROM rows WHERE batch = ? AND row_key IN (SELECT value FROM json_each(?)) "
            "AND state IN ('invalid', 'pending')",
            (batch, _array(stale)),
        )
    return len(stale)


def _changed_rows(
    conn: sqlite3.Connection, batch: str, differs: list[tuple[SourceRow, str]]
) -> list[ChangedRow]:
    """Both versions of succeeded rows whose content changed: what was sent, what is read now."""
    keys = [row.row_key for row, _ in differs]
    sent = {
        r["row_key"]: (r["params"], r["order_id"])
        for r in conn.execute(
            "SELECT row_key, params, order_id FROM rows WHERE batch = ? "
            "AND row_key IN (SELECT value FROM json_each(?))",
            (batch, _array(keys)),
        )
    }
    return [
        ChangedRow(
            row_key=row.row_key,
            order_id=sent[row.row_key][1] or row.order_id,
            source_line=row.source_line,
            sent=json.loads(sent[row.row_key][0]),
            now=json.loads(params),
        )
        for row, params in differs
    ]
