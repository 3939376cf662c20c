"""Time to first request: the first run of a new batch sends while the rest of the file is
planned, against the real sandbox through the real CLI (a subprocess), counted in the sandbox's
request log."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.ledger.ledger import Ledger
from pipeline.send.runner import FIRST_SLICE_ROWS
from tests import support
from tests.orders_factory import write_orders

KEY = "first_request_key"
ROWS = 1_500
CHUNK = 100


def _config(folder: Path) -> None:
    """Small chunks, so the file is many chunks and planning outlasts the first request."""
    (folder / "order-import.toml").write_text(f"chunk_rows = {CHUNK}\n", encoding="utf-8")


def _events(stderr: str) -> list[dict[str, Any]]:
    out = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def _import_times(server: support.Server) -> list[float]:
    return [float(e["t"]) for e in support.request_log(server) if support.is_import(e)]


def test_the_first_request_leaves_before_the_file_is_planned(make_sandbox, tmp_path):
    """Sending starts after the first chunk is planned; the rest is planned meanwhile. Every
    row still reaches the sandbox exactly once."""
    server = make_sandbox(api_key=KEY, latency_ms=5)
    _config(tmp_path)
    source = write_orders(tmp_path / "orders.csv", ROWS, prefix="FR")
    result = support.run_cli(
        server,
        KEY,
        "run",
        str(source),
        "--batch",
        "fr",
        "--log-json",
        "--rate",
        "60000",
        "--concurrency",
        "4",
        cwd=tmp_path,
    )
    support.assert_clean_exit(result)
    planned = [e for e in _events(result.stderr) if e.get("event") == "planned"]
    assert len(planned) == 1, result.stderr[-2000:]
    times = _import_times(server)
    assert times
    assert min(times) < float(planned[0]["ts"]), "nothing was sent before planning ended"
    assert planned[0]["while_sending"] is True
    log = support.request_log(server)
    support.assert_each_row_posted_once(log, support.expected_ids("FR", ROWS))
    assert support.imported_ids(server) == support.expected_ids("FR", ROWS)


def test_a_repeat_in_a_later_chunk_is_refused_and_the_first_row_is_sent(make_sandbox, tmp_path):
    """Uniqueness within the file is decided in file order: the repeat (a later chunk) is
    invalid, the row it repeats (the first chunk, sent before the repeat was read) is imported,
    exactly as when the whole file was planned first."""
    server = make_sandbox(api_key=KEY)
    _config(tmp_path)
    repeat = CHUNK * 3 + 7
    source = write_orders(
        tmp_path / "orders.csv", CHUNK * 4, prefix="DU", bad={repeat: {"id": "DU-000005"}}
    )
    result = support.run_cli(
        server, KEY, "run", str(source), "--batch", "du", "--quiet", "--rate", "60000",
        cwd=tmp_path,
    )  # fmt: skip
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 1, result.stdout + result.stderr  # some rows invalid
    posted = support.import_posts(support.request_log(server))
    assert posted["DU-000005"] == 1
    assert sum(posted.values()) == CHUNK * 4 - 1
    with Ledger(tmp_path / "order-import.sqlite") as ledger:
        states = Counter(row.state for row in ledger.rows("du"))
        invalid = [row for row in ledger.rows("du", states=("invalid",))]
    assert states == Counter({"succeeded": CHUNK * 4 - 1, "invalid": 1})
    assert invalid[0].source_line == repeat + 2
    assert {i.rule for i in invalid[0].issues} & {"duplicate_id", "duplicate_row_key"}


def test_a_new_batch_sends_after_its_first_slice_yet_a_repeat_on_the_last_line_holds_both_back(
    make_sandbox, tmp_path
):
    """Default chunk size (the whole file is one chunk): the first request leaves once
    FIRST_SLICE_ROWS rows are planned, the rest is built and planned while rows are sent. Yet the
    whole chunk was validated before the first request: a repeat, on the file's last line, of
    an id in the first slice holds back both rows (as when the whole file was planned first):
    neither is ever POSTed, every other row is POSTed once."""
    rows = FIRST_SLICE_ROWS * 6  # slices of 1x, 2x and 3x FIRST_SLICE_ROWS
    server = make_sandbox(api_key=KEY)
    source = write_orders(
        tmp_path / "orders.csv", rows, prefix="SL", bad={rows - 1: {"id": "SL-000005"}}
    )
    result = support.run_cli(
        server, KEY, "run", str(source), "--batch", "sl", "--log-json", "--rate", "60000",
        "--concurrency", "8", cwd=tmp_path,
    )  # fmt: skip
    support.assert_clean_exit(result, 1)  # rows invalid
    planned = [e for e in _events(result.stderr) if e.get("event") == "planned"]
    assert [e["while_sending"] for e in planned] == [True], result.stderr[-2000:]
    assert min(_import_times(server)) < float(planned[0]["ts"]), "no request before planning ended"
    expected = support.expected_ids("SL", rows - 1) - Counter({"SL-000005": 1})
    support.assert_each_row_posted_once(support.request_log(server), expected)
    assert support.imported_ids(server) == expected
    with Ledger(tmp_path / "order-import.sqlite") as ledger:
        invalid = list(ledger.rows("sl", states=("invalid",)))
    assert sorted(row.source_line for row in invalid) == [7, rows + 1]
    for row in invalid:
        assert {i.rule for i in row.issues} & {"duplicate_id", "duplicate_row_key"}


def test_an_unreadable_byte_far_into_the_file_stops_the_run_before_anything_is_sent(
    make_sandbox, tmp_path
):
    """A byte that does not decode, far past the first chunk: the whole file is decoded once
    before the first request, so the run exits 2 naming the file and line with nothing sent (and
    nothing planned as sent). The corrected file, run with the same command, imports every row
    once."""
    server = make_sandbox(api_key=KEY, latency_ms=5)
    _config(tmp_path)
    source = write_orders(tmp_path / "orders.csv", ROWS, prefix="BD")
    good = source.read_bytes()
    bad_line = ROWS - 10  # a data line far past the first chunk
    lines = good.split(b"\n")
    lines[bad_line - 1] = lines[bad_line - 1].replace(b"Krak\xc3\xb3w", b"Krak\xf3w")
    source.write_bytes(b"\n".join(lines))
    args = ("run", str(source), "--batch", "bd", "--quiet", "--rate", "60000", "--encoding",
            "utf-8", "--concurrency", "2")  # fmt: skip
    result = support.run_cli(server, KEY, *args, cwd=tmp_path)
    support.assert_clean_exit(result, 2)
    assert f"{source}, line {bad_line}: cannot decode" in result.stderr, result.stderr
    assert support.import_posts(support.request_log(server)) == Counter()

    source.write_bytes(good)
    again = support.run_cli(server, KEY, *args, cwd=tmp_path)
    support.assert_clean_exit(again)
    log = support.request_log(server)
    support.assert_each_row_posted_once(log, support.expected_ids("BD", ROWS))
    assert support.imported_ids(server) == support.expected_ids("BD", ROWS)


def test_a_dry_run_and_a_resume_plan_the_whole_file_first(make_sandbox, tmp_path):
    """Only the first run of a new batch sends while planning: a resume plans everything
    before its first request."""
    server = make_sandbox(api_key=KEY)
    _config(tmp_path)
    source = write_orders(tmp_path / "orders.csv", CHUNK * 3, prefix="RS")
    base = ("run", str(source), "--batch", "rs", "--rate", "60000", "--log-json")
    dry = support.run_cli(server, KEY, *base, "--dry-run", cwd=tmp_path)
    support.assert_clean_exit(dry)
    assert support.request_log(server) == []
    real = support.run_cli(server, KEY, *base, cwd=tmp_path)
    support.assert_clean_exit(real)
    planned = [e for e in _events(real.stderr) if e.get("event") == "planned"]
    assert [e["while_sending"] for e in planned] == [False]
    assert min(_import_times(server)) > float(planned[0]["ts"])
    support.assert_each_row_posted_once(
        support.request_log(server), support.expected_ids("RS", CHUNK * 3)
    )
