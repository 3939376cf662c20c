"""Content fingerprints: every param counts, resumes trust equal ones, old ledgers pass through.

A resume recognises an unchanged row by its params fingerprint (``prepare.fingerprints``,
stored in schema v6) instead of encoding it as JSON; these tests pin that the shortcut never
hides a change and that a ledger of the old schema (v5) is upgraded and planned against.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline.config import Settings
from pipeline.ledger import plan as plan_module
from pipeline.ledger.ledger import Ledger
from pipeline.ledger.schema import SCHEMA_VERSION
from pipeline.models import Outcome, SourceRow
from pipeline.prepare.prepare import _process, _source_rows, fingerprints, open_prepared
from tests.test_ledger import BATCH, open_import, plan

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
MAPPING = SAMPLES / "legacy_orders.mapping.toml"
V5 = Path(__file__).resolve().parent / "data" / "ledger_v5.sqlite"
"""Written by the old code (schema v5, order-import at main 2c2782c) through ``Ledger``:
batch ``b1``, rows ``k1``..``k4`` (``row(i)`` below) planned, then k1 succeeded, k2 failed,
k4 retryable, k3 left pending."""


def _mapped_params() -> pd.DataFrame:
    """The params frame prepare maps from the sample file with its real mapping."""
    settings = Settings(mapping_path=MAPPING)
    source, bound = open_prepared(SAMPLES / "legacy_orders.csv", settings)
    mapped, _ = next(iter(_process(source, bound, settings, time.time())))
    return mapped.params


def _other(value: Any, integer: bool) -> Any:
    """A different value of the same kind (a value for an empty cell)."""
    if pd.isna(value):
        return 1 if integer else "x"
    return int(value) + 1 if integer else f"{value}x"


def test_every_mapped_param_changes_its_rows_fingerprint_and_only_that_row() -> None:
    """For each column of the real mapped frame, a changed cell, an emptied cell and a filled
    empty cell each change that row's fingerprint and no other's (a fingerprint that ignored a
    param, or a value's kind, would let a changed row pass as unchanged on resume)."""
    frame = _mapped_params().head(60)  # every column; fewer rows
    base = fingerprints(frame)
    assert base is not None
    assert len(set(base)) == len(frame)
    checked = 0
    for column in frame.columns:
        integer = frame[column].dtype == "Int64"
        filled = frame[column].notna().to_numpy()
        positions: set[int] = set()
        if filled.any():
            positions.add(int(filled.argmax()))  # a cell with a value: emptied below too
        if (~filled).any():
            positions.add(int((~filled).argmax()))  # an empty cell: filled below
        for pos in sorted(positions):
            values: list[Any] = [_other(frame[column].iloc[pos], integer)]
            if not pd.isna(frame[column].iloc[pos]):
                values.append(None)
            for value in values:
                edited = frame.copy()
                edited.loc[pos, column] = value
                after = fingerprints(edited)
                assert after is not None
                moved = [i for i, (a, b) in enumerate(zip(base, after, strict=True)) if a != b]
                assert moved == [pos], (column, pos, value)
                checked += 1
    assert checked >= 2 * len(frame.columns)  # each column: changed and emptied, or filled


def test_a_value_of_another_kind_or_under_another_name_is_a_change() -> None:
    """The integer 5 and the text "5" differ, as do one value under two param names; the
    order of the columns and empty columns do not matter (canonical JSON agrees)."""
    ints = pd.DataFrame({"total": pd.array([5, 6], dtype="Int64")})
    texts = pd.DataFrame({"total": pd.array(["5", "6"], dtype="str")})
    renamed = pd.DataFrame({"amount": pd.array([5, 6], dtype="Int64")})
    assert fingerprints(ints) != fingerprints(texts)
    assert fingerprints(ints) != fingerprints(renamed)
    both = pd.DataFrame(
        {"a": ["x", "y"], "b": pd.array([1, 2], dtype="Int64"), "c": [None, None]}
    ).astype({"a": "str", "c": "object"})
    assert fingerprints(both) == fingerprints(both[["b", "a"]])
    odd = pd.DataFrame({"lines": [[{"a": 1}], [{"a": 2}]]})
    assert fingerprints(odd) is None  # the ledger compares content hashes then


def test_prepared_rows_carry_the_fingerprint_of_their_params(tmp_path: Path) -> None:
    """prepare_rows hands each row its fingerprint; editing one cell of the file changes only
    that row's (the city of line 5)."""
    settings = Settings(mapping_path=MAPPING)
    source, bound = open_prepared(SAMPLES / "legacy_orders.csv", settings)
    mapped, by_row = next(iter(_process(source, bound, settings, time.time())))
    rows = _source_rows(mapped, by_row, "legacy_orders.csv", None)
    assert [r.fingerprint for r in rows] == fingerprints(mapped.params)
    lines = (SAMPLES / "legacy_orders.csv").read_text(encoding="utf-8").splitlines(True)
    city = next(v for v in rows[3].raw.values() if v == rows[3].params["shipping_address"]["city"])
    lines[4] = lines[4].replace(city, city + "-Nord", 1)
    edited = tmp_path / "edited.csv"
    edited.write_text("".join(lines), encoding="utf-8")
    source, bound = open_prepared(edited, settings)
    again = _source_rows(*next(iter(_process(source, bound, settings, time.time()))), "e", None)
    moved = [
        r.source_line for r, s in zip(rows, again, strict=True) if r.fingerprint != s.fingerprint
    ]
    assert moved == [5]


def digests_counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys of the rows planning encodes as JSON (``plan._digest``), in call order, from
    now on: a row decided by its fingerprint never shows up."""
    calls: list[str] = []
    real = plan_module._digest

    def counted(r: SourceRow) -> tuple[str, str]:
        calls.append(r.row_key)
        return real(r)

    monkeypatch.setattr(plan_module, "_digest", counted)
    return calls


def row(i: int, *, city: str = "Kraków", fingerprint: bool = True) -> SourceRow:
    """Row ``k{i}`` as the v5 fixture planned it, with prepare's fingerprint unless told not."""
    made = SourceRow(
        f"k{i}",
        "orders.csv",
        None,
        i + 2,
        {"id": f"O{i}", "total": str(100 * i), "currency": "USD", "city": city},
        {
            "id": f"O{i}",
            "total": 100 * i,
            "currency_code": "USD",
            "shipping_address": {"city": city},
        },
        (),
    )
    if not fingerprint:
        return made
    frame = pd.DataFrame(
        {
            "id": pd.array([f"O{i}"], dtype="str"),
            "total": pd.array([100 * i], dtype="Int64"),
            "currency_code": pd.array(["USD"], dtype="str"),
            "shipping_address.city": pd.array([city], dtype="str"),
        }
    )
    prints = fingerprints(frame)
    assert prints is not None
    return replace(made, fingerprint=prints[0])


@pytest.fixture
def v5_ledger(tmp_path: Path) -> Path:
    """A copy of the v5 ledger file the old code wrote."""
    path = tmp_path / "old.sqlite"
    shutil.copyfile(V5, path)
    return path


def _stored(path: Path) -> dict[str, int | None]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT row_key, fingerprint FROM rows ORDER BY row_key"))
    finally:
        conn.close()


def test_a_v5_ledger_is_upgraded_and_resumed_by_content_hash_then_fingerprint(
    v5_ledger: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old code's v5 file opens as v6 with no fingerprints; the first resume compares its
    rows by content hash (all unchanged: nothing requeued or re-sent) and stores their
    fingerprints; the next resume encodes no row as JSON at all."""
    with Ledger(v5_ledger) as led:
        stats = plan(led, [row(i) for i in range(1, 5)])
        counts = led.counts(BATCH)
    assert (stats.unchanged_succeeded, stats.still_failed, stats.still_pending) == (1, 1, 1)
    assert stats.still_retryable == 1
    assert stats.changed_succeeded == 0
    assert (counts["succeeded"], counts["failed"], counts["pending"], counts["retryable"]) == (
        1,
        1,
        1,
        1,
    )
    conn = sqlite3.connect(v5_ledger)
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    conn.close()
    assert version == str(SCHEMA_VERSION) == "9"
    assert _stored(v5_ledger) == {f"k{i}": row(i).fingerprint for i in range(1, 5)}

    def no_json(row: SourceRow) -> tuple[str, str]:
        raise AssertionError(f"row {row.row_key} was encoded as JSON")

    monkeypatch.setattr(plan_module, "_digest", no_json)
    with Ledger(v5_ledger) as led:
        again = plan(led, [row(i) for i in range(1, 5)])
    assert (again.unchanged_succeeded, again.still_failed, again.still_pending) == (1, 1, 1)


def test_a_change_after_the_upgrade_is_still_found(v5_ledger: Path) -> None:
    """A succeeded row of the old ledger whose city changed is handed over with both versions
    (with or without fingerprints); a failed one whose city changed goes back to pending."""
    changed: list[Any] = []
    with Ledger(v5_ledger) as led:
        plan(led, [row(i) for i in range(1, 5)])  # stores the fingerprints
        run_id = led.start_run(BATCH, command="run", settings_summary={})
        stats = led.plan(
            BATCH,
            [row(1, city="Gdańsk"), row(2, city="Gdańsk", fingerprint=False), row(3), row(4)],
            operation="import",
            run_id=run_id,
            on_changed=changed.append,
        )
        states = {r.row_key: r.state for r in led.rows(BATCH)}
    assert stats.changed_succeeded == 1
    assert stats.requeued_changed == 1
    assert [c.row_key for c in changed] == ["k1"]
    assert changed[0].sent["shipping_address"] == {"city": "Kraków"}
    assert changed[0].now["shipping_address"] == {"city": "Gdańsk"}
    assert states == {"k1": "succeeded", "k2": "pending", "k3": "pending", "k4": "retryable"}
    assert _stored(v5_ledger)["k2"] is None  # refreshed without one: compared by hash next time


def test_an_equal_fingerprint_decides_without_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the fingerprint is trusted with: rows planned with fingerprints and sent are, on
    resume, unchanged when their fingerprint is, with no JSON encoding (the shortcut the
    300k rows/s goal rests on); a row without one falls back to the content hash."""
    with Ledger(tmp_path / "l.sqlite") as led:
        open_import(led)
        plan(led, [row(1)])
        run_id = led.start_run(BATCH, command="run", settings_summary={})
        led.mark_in_flight(BATCH, "k1", run_id=run_id, idempotency_key="i")
        led.record(Outcome(BATCH, "k1", run_id, "succeeded", resolution="imported", attempts=1))
        calls = digests_counted(monkeypatch)
        assert plan(led, [row(1)]).unchanged_succeeded == 1
        assert calls == []
        assert plan(led, [row(1, fingerprint=False)]).unchanged_succeeded == 1
        assert calls == ["k1"]
