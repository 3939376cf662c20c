"""Hostile-input suite: every generated file through the real CLI (``validate`` and ``run``).

Each file gets the exit code DESIGN.md gives it (0 fine, 1 some rows invalid, 2 unusable with
nothing sent), an error naming the file, no traceback, and reports that are safe to open
(HTML escaped, spreadsheet formulas neutralised). The files come from tests/hostile/generate.py.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pipeline.cli import main
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer
from tests.hostile.generate import IMG, SCRIPT, Case, cases, generate

KEY = "hostile_test_key"
CASES = cases()
FORMULA_START = ("=", "+", "-", "@")
PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")

# Real bugs found by this suite, fixed in files this suite's owner does not own. Each entry pins
# the correct behaviour and is expected to fail (strictly) until the owner fixes it.
KNOWN_BUGS: dict[str, str] = {}


# The payload must reach the report (escaped/neutralised), or the safety check would be vacuous.
PAYLOAD_REACHES_REPORT = {
    "html_injection": ("report.html", "&lt;script&gt;alert("),
    "formula_injection": ("failures.csv", "'=cmd|"),
    "html_payload_in_file_name": ("report.html", "&lt;img src=x onerror=alert(1)&gt;"),
}


def params(marks_for: str) -> list[Any]:
    """Cases as pytest params, known bugs marked strict xfail."""
    out = []
    for case in CASES:
        marks = []
        if case.name in KNOWN_BUGS and marks_for in ("validate", "run"):
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[case.name]))
        out.append(pytest.param(case, id=case.name, marks=marks))
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The hostile files, generated once for the module."""
    root = tmp_path_factory.mktemp("hostile")
    return {case.name: path for case, path in generate(root / "files")}


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    """One sandbox for the module (limits off); every case uses its own order-id prefix."""
    box = SandboxServer(
        SandboxConfig(api_key=KEY, rate_limit_per_minute=None, concurrency_limit=None)
    ).start()
    yield box
    box.stop()


def invoke(args: list[str], env: dict[str, str]) -> Result:
    """The real CLI in-process (click's runner), exceptions captured, stderr kept apart."""
    return CliRunner().invoke(main, args, env=env, catch_exceptions=True)


def assert_clean(result: Result, case: Case, path: Path, expected: int) -> None:
    """Expected exit code, no traceback or crash, and an error naming the file when unusable."""
    text = result.stdout + result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{case.name}: crashed with {result.exception!r}\n{text}")
    assert "Traceback" not in text, text
    assert "Warning" not in result.stderr, result.stderr
    assert result.exit_code == expected, f"{case.name}: exit {result.exit_code}\n{text}"
    if expected == 2:
        assert str(path) in result.stderr, result.stderr
        assert "order-import: error:" in result.stderr
        if case.message:
            assert case.message.lower() in result.stderr.lower(), result.stderr


def assert_reports_safe(report_dir: Path) -> int:
    """No raw HTML payload in HTML reports; no live formula in CSV/XLSX cells. Files checked."""
    checked = 0
    for path in sorted(report_dir.rglob("*")) if report_dir.exists() else []:
        if path.suffix == ".html":
            html = path.read_text(encoding="utf-8")
            for payload in (SCRIPT, "<script>alert(", IMG, "<img src=x"):
                assert payload not in html, (path, payload)
        elif path.suffix == ".csv":
            with path.open(encoding="utf-8-sig", newline="") as handle:
                for row in csv.reader(handle):
                    for cell in row:
                        assert_cell_safe(cell, path)
        elif path.suffix == ".xlsx":
            from openpyxl import load_workbook

            workbook = load_workbook(path, read_only=True)
            for sheet in workbook.worksheets:
                for values in sheet.iter_rows(values_only=True):
                    for value in values:
                        if isinstance(value, str):
                            assert_cell_safe(value, path)
            workbook.close()
        else:
            continue
        checked += 1
    return checked


def assert_cell_safe(cell: str, path: Path) -> None:
    """A cell a spreadsheet would run as a formula must have been neutralised."""
    if cell.startswith(FORMULA_START) and not PLAIN_NUMBER.match(cell):
        raise AssertionError(f"{path.name}: live formula cell {cell[:60]!r}")


def imported(server: SandboxServer, prefix: str) -> Counter[str]:
    """Live orders per id for one case's id prefix."""
    return Counter(
        o["id"]
        for o in server.state()["orders"]
        if not o.get("deleted") and str(o["id"]).startswith(prefix)
    )


def field(order: dict[str, Any], dotted: str) -> Any:
    """``shipping_address.city`` → order["shipping_address"]["city"]."""
    value: Any = order
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def test_the_suite_has_at_least_30_files_covering_every_exit_code() -> None:
    """The generator writes ≥ 30 hostile files and each exit code 0, 1, 2 is exercised."""
    assert len(CASES) >= 30
    assert {c.run_exit for c in CASES} == {0, 1, 2}
    assert len({c.filename for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", params("validate"))
def test_validate_gives_the_expected_exit_code_cleanly(
    case: Case, files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``validate FILE``: expected exit code, no traceback, file named, safe validation report."""
    monkeypatch.chdir(tmp_path)
    path = files[case.name]
    result = invoke(["validate", str(path), "--report-dir", str(tmp_path / "v")], {})
    assert_clean(result, case, path, case.validate_exit)
    if case.validate_exit != 2:
        assert path.name in result.stdout or str(path) in result.stdout, result.stdout
    assert_reports_safe(tmp_path / "v")
    if case.name == "overflowing_numbers":  # the finding shows the user's value, not an overflow
        assert "9" * 40 in result.stdout, result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("case", params("run"))
def test_run_gives_the_expected_exit_code_and_lands_valid_rows_once(
    case: Case,
    files: dict[str, Path],
    server: SandboxServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``run FILE``: expected exit, nothing sent when unusable, valid rows once, safe reports."""
    monkeypatch.chdir(tmp_path)
    path = files[case.name]
    # The cases share invoice ids: each starts on an empty site, or pre-flight would rightly
    # block its rows as "invoice already has an order" from an earlier case.
    server.reset()
    seen = len(server.state(orders=False)["requests"])
    env = {"CHARGEBEE_API_KEY": KEY, "CHARGEBEE_BASE_URL": server.base_url}
    result = invoke(
        ["run", str(path), "--batch", case.name, "--quiet", "--rate", "60000",
         "--ledger", str(tmp_path / "l.sqlite"), "--report-dir", str(tmp_path / "r")],
        env,
    )  # fmt: skip
    assert_clean(result, case, path, case.run_exit)
    requests = server.state(orders=False)["requests"][seen:]
    if case.unusable:
        assert requests == [], "an unusable file must send nothing"
        return
    prefixes = {i.split("-")[0] + "-" for i in case.landed | case.maybe}
    got: Counter[str] = Counter()
    for prefix in prefixes:
        got += imported(server, prefix)
    assert all(n == 1 for n in got.values()), got
    assert case.landed <= set(got) <= case.landed | case.maybe, sorted(got)
    orders = {o["id"]: o for o in server.state()["orders"] if o["id"] in case.values}
    for order_id, expected in case.values.items():
        for dotted, value in expected.items():
            assert field(orders[order_id], dotted) == value, (order_id, dotted)
    assert assert_reports_safe(tmp_path / "r") > 0, "run wrote no report to check"
    if case.name in PAYLOAD_REACHES_REPORT:
        name, escaped = PAYLOAD_REACHES_REPORT[case.name]
        reports = list((tmp_path / "r").rglob(name))
        assert reports, f"no {name} written"
        assert escaped in reports[0].read_text(encoding="utf-8-sig"), name


def test_generating_twice_into_one_folder_writes_the_same_files(tmp_path: Path) -> None:
    """docs/drills.md prints ``python -m tests.hostile.generate /tmp/hostile``: a second run into
    the same folder (or one somebody else made) rewrites the files instead of failing on the
    folder-named ``folder.csv``."""
    first = {path.name: path.is_dir() for _, path in generate(tmp_path)}
    second = {path.name: path.is_dir() for _, path in generate(tmp_path)}
    assert second == first
