"""Hostile config files through the real CLI: exit 2, the key path named, no traceback.

The corpus is ``tests/hostile/config/*.toml``: wrong types, unknown keys, out-of-range numbers,
non-UTF-8 text and TOML syntax errors. Each file's first line is ``# expect: TEXT``, the words the
error message must contain (besides the file's name). Every file goes through ``order-import run``
in a subprocess (the command that would send), a sample also through ``validate``; the base URL
is a real listening socket on 127.0.0.1 that must never see a connection, the API key a sentinel
that must never be printed, and the working directory must stay empty (no ledger, no report).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "hostile" / "config"
INPUT = ROOT / "sample_data" / "api_columns.csv"
SENTINEL = "hostile-key-SENTINEL"
FILES = sorted(CORPUS.glob("*.toml"))
VALIDATE_TOO = {
    "api_key_list",
    "concurrency_text",
    "create_endpoint",
    "non_utf8_cp1252",
    "syntax_error",
    "unknown_key",
    "validation_date_order_no",
}
"""One file per kind of fault also goes through ``validate`` (each subprocess costs ~0.5 s CPU)."""


def expectation(path: Path) -> str:
    """The text after ``# expect:`` on the file's first line."""
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8")
    assert first.startswith("# expect: "), f"{path.name}: first line must be '# expect: ...'"
    return first.removeprefix("# expect: ")


@dataclass(frozen=True)
class Job:
    """One CLI invocation of the suite and what its error message must say."""

    name: str
    command: str
    args: tuple[str, ...]
    must_say: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    setup: Path | None = None
    """A config file copied into the (otherwise empty) working directory as order-import.toml."""


def _args(command: str, *more: str) -> tuple[str, ...]:
    if command == "run":
        return ("run", str(INPUT), "--batch", "hostile-config", *more)
    return ("validate", str(INPUT), *more)


def _jobs() -> list[Job]:
    jobs = []
    for path in FILES:
        says = (str(path), expectation(path))
        for command in ("run", "validate") if path.stem in VALIDATE_TOO else ("run",):
            jobs.append(Job(path.stem, command, _args(command, "--config", str(path)), says))
    by_env = CORPUS / "concurrency_text.toml"
    jobs.append(
        Job(
            "from_ORDER_IMPORT_CONFIG",
            "run",
            _args("run"),
            (str(by_env), expectation(by_env)),
            env={"ORDER_IMPORT_CONFIG": str(by_env)},
        )
    )
    found = CORPUS / "validation_date_order_no.toml"
    jobs.append(
        Job(
            "found_in_working_directory",
            "run",
            _args("run"),
            (f"order-import.toml: {expectation(found)}",),
            setup=found,
        )
    )
    jobs.append(
        Job(
            "site_from_environment",
            "run",
            _args("run"),
            ("$CHARGEBEE_SITE: site: must be a Chargebee site name",),
            env={"CHARGEBEE_SITE": "acme.chargebee.com/#", "CHARGEBEE_BASE_URL": ""},
        )
    )
    return jobs


JOBS = _jobs()


@dataclass
class Outcome:
    """What one invocation did."""

    returncode: int
    output: str
    left_behind: list[str]


@pytest.fixture(scope="module")
def listener() -> Iterator[socket.socket]:
    """A real TCP listener on 127.0.0.1 standing in for Chargebee; nothing may connect to it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory, listener: socket.socket
) -> dict[tuple[str, str], Outcome]:
    """Every job run once, two at a time, each in an empty working directory."""
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CHARGEBEE_", "ORDER_IMPORT_"))
    }
    port = listener.getsockname()[1]
    base_env["CHARGEBEE_BASE_URL"] = f"http://127.0.0.1:{port}/api/v2"
    base_env["CHARGEBEE_API_KEY"] = SENTINEL
    root = tmp_path_factory.mktemp("hostile-config")

    def run(job: Job) -> Outcome:
        work = root / f"{job.name}-{job.command}"
        work.mkdir()
        if job.setup is not None:
            shutil.copyfile(job.setup, work / "order-import.toml")
        env = {**base_env, **job.env}
        env = {k: v for k, v in env.items() if v}
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", *job.args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        left = sorted(p.name for p in work.iterdir() if p.name != "order-import.toml")
        return Outcome(done.returncode, done.stdout + done.stderr, left)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, JOBS))
    return {(job.name, job.command): result for job, result in zip(JOBS, results, strict=True)}


def test_the_corpus_covers_each_kind_of_fault():
    """Wrong types, unknown keys, out-of-range numbers, non-UTF-8 and syntax errors are all in."""
    said = " ".join(expectation(p) for p in FILES)
    for words in (
        "must be an integer",
        "must be true or false",
        "unknown setting",
        "from 1 to 256, got 0",
        "not UTF-8 text",
        "not valid TOML",
        "[validation]",
    ):
        assert words in said, words


@pytest.mark.parametrize("job", JOBS, ids=[f"{j.command}-{j.name}" for j in JOBS])
def test_hostile_config_is_refused_clearly(job: Job, outcomes: dict[tuple[str, str], Outcome]):
    """Exit 2, the file and key path named with what was wrong, no traceback, no key, no files."""
    outcome = outcomes[(job.name, job.command)]
    assert outcome.returncode == 2, outcome.output
    assert "Traceback" not in outcome.output
    assert outcome.output.startswith("order-import: error: "), outcome.output
    for words in job.must_say:
        assert words in outcome.output, outcome.output
    assert SENTINEL not in outcome.output
    assert outcome.left_behind == []


def test_nothing_reached_the_server(outcomes: dict[tuple[str, str], Outcome], listener):
    """No invocation opened a connection to the (real) listener standing in for Chargebee."""
    assert len(outcomes) == len(JOBS)
    with pytest.raises(BlockingIOError):
        listener.accept()
