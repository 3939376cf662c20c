"""Ledger and report speed at scale: plan, resume, stream, record, and build the report.

Measured side by side in one process on one temporary ledger; every loop is bounded in count.
``python -m bench.bench_ledger [--quick]`` prints the figures.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import big_ledger
from bench.common import ChildRun, Figure, figure, run_child, sandbox_process
from bench.plan_speed import BATCH, CHUNK
from pipeline.ledger.ledger import Ledger
from pipeline.models import Outcome
from pipeline.report.write import write_reports
from tests import support
from tests.orders_factory import BASE_TS, HEADER, order_row

RECORDS = 2_000
"""mark_in_flight + record pairs timed (each a FULL-sync commit)."""
FIRST_TIMEOUT_S = 900.0
BIG_TIMEOUT_S = 1_800.0


def _timed(label: str, n: int, fn: object, *args: object, **kw: object) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kw)  # type: ignore[operator]
    return time.perf_counter() - start, result


def run(quick: bool = False) -> list[Figure]:
    """Plan, resume, stream and report on a 100k (quick) or 1M-row batch."""
    n = 100_000 if quick else 1_000_000
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        path = Path(tmp) / "ledger.sqlite"
        # This tree's planning child leaves its ledger (n rows planned, then resumed) here.
        figures += planning(n, path)
        with Ledger(path) as led:
            run_id = led.start_run(BATCH, command="run", settings_summary={})
            count_s, _ = _timed("counts", n, led.counts, BATCH)
            figures.append(
                figure("counts() by state", round(count_s * 1000, 1), "ms", note=f"{n:,} rows")
            )
            stream_s = time.perf_counter()
            streamed = sum(1 for _ in led.work(BATCH))
            stream_s = time.perf_counter() - stream_s
            figures.append(
                figure(
                    "work() stream of sendable rows",
                    round(streamed / stream_s),
                    "rows/s",
                    note=f"{streamed:,} rows in {stream_s:.1f} s",
                )
            )
            pages_s = time.perf_counter()
            paged = sum(len(page) for page in led.work_pages(BATCH))
            pages_s = time.perf_counter() - pages_s
            figures.append(
                figure(
                    "work_pages() (what the worker pool reads, off the loop)",
                    round(paged / pages_s),
                    "rows/s",
                    note=f"{paged:,} rows in pages of 500",
                )
            )
            keys = [item.row_key for item, _ in zip(led.work(BATCH), range(RECORDS), strict=False)]
            rec_s = time.perf_counter()
            for key in keys:
                led.mark_in_flight(BATCH, key, run_id=run_id, idempotency_key=f"k-{key}")
                led.record(
                    Outcome(
                        BATCH,
                        key,
                        run_id,
                        "succeeded",
                        resolution="imported",
                        http_status=200,
                        attempts=1,
                    )
                )
            rec_s = time.perf_counter() - rec_s
            per_min = len(keys) / rec_s * 60
            figures.append(
                figure(
                    "mark_in_flight + record (2 FULL-sync commits)",
                    round(len(keys) / rec_s),
                    "rows/s",
                    note=f"{per_min / 3500:.0f}x Chargebee's 3,500/min ceiling",
                )
            )
            figures += group_commit_figures(led, run_id, round(len(keys) / rec_s))
            rep_s, paths = _timed("report", n, write_reports, led, BATCH, Path(tmp) / "out")
            html_kb = (Path(tmp) / "out" / "report.html").stat().st_size / 1024
            figures.append(
                figure(
                    f"write_reports for {n:,} rows",
                    round(rep_s, 1),
                    "s",
                    note=f"{getattr(paths, 'failures', '?'):,} failure rows; "
                    f"report.html {html_kb:,.0f} KiB (table capped)",
                )
            )
    figures.extend(first_request(quick))
    figures.extend(status_and_report(quick))
    return figures


BASELINE = Path(os.environ["BENCH_BASELINE"]) if os.environ.get("BENCH_BASELINE") else None
"""The tree whose planning this one is compared with (a checkout of the old code with its own
``.venv``, e.g. a ``git worktree`` of the previous release); unset: no old-vs-new figures."""
PLAN_TIMEOUT_S = 1_800.0


def _plan_child(tree: Path, n: int, keep: Path | None = None) -> dict[str, float]:
    """``bench/plan_speed.py n [keep]`` run by ``tree``'s Python on ``tree``'s code: one JSON
    line (the planned ledger left at ``keep`` when given)."""
    script = Path(__file__).with_name("plan_speed.py")
    done = run_child(
        [
            str(tree / ".venv" / "bin" / "python"),
            str(script),
            str(n),
            *([str(keep)] if keep else []),
        ],
        env={**os.environ, "PYTHONPATH": str(tree)},
        timeout=PLAN_TIMEOUT_S,
        cwd=tree,
    )
    if done.returncode != 0:
        raise RuntimeError(f"plan_speed in {tree} exited {done.returncode}: {done.stderr[-500:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def planning(n: int, keep: Path) -> list[Figure]:
    """Plan ``n`` new rows and resume them unchanged with the old code (``BASELINE``) and this
    tree's, each in a child process of its own, one after the other in this run; this tree's
    ledger is left at ``keep`` for the figures that need a planned batch."""
    this = Path(__file__).resolve().parent.parent
    has_old = (
        BASELINE is not None
        and (BASELINE / ".venv" / "bin" / "python").exists()
        and BASELINE.resolve() != this
    )
    old = _plan_child(BASELINE, n) if has_old and BASELINE is not None else None
    new = _plan_child(this, n, keep)
    if new["still_pending"] != n - n // 100:  # 1 in 100 rows is invalid
        raise RuntimeError(
            f"the resume left {new['still_pending']:,} rows pending, not {n - n // 100:,}"
        )
    figures: list[Figure] = []
    for key, label, goal in (
        ("new_s", f"plan {n:,} new rows", 100_000),
        ("resume_s", f"resume plan of {n:,} unchanged rows", 300_000),
    ):
        rate = n / new[key]
        cpu_key = key.replace("_s", "_cpu_s")
        versus = (
            f"old code ({BASELINE}) {n / old[key]:,.0f} rows/s in the same run, "
            f"ratio {old[key] / new[key]:.1f}x"
            if old is not None
            else "no baseline tree (set BENCH_BASELINE to an old checkout with its .venv)"
        )
        figures.append(
            figure(
                label,
                round(rate),
                "rows/s",
                goal=f">= {goal // 1000}k rows/s",
                met=rate >= goal,
                note=f"{versus}; {CHUNK:,}-row plan() calls",
            )
        )
        # CPU seconds of the planning process: on a shared machine the wall clock above also
        # counts the time other processes held the cores.
        versus_cpu = (
            f"old code {n / old[cpu_key]:,.0f}, ratio {old[cpu_key] / new[cpu_key]:.1f}x"
            if old is not None and cpu_key in old
            else "no baseline tree"
        )
        figures.append(
            figure(
                f"{label}, per CPU second",
                round(n / new[cpu_key]),
                "rows/s",
                note=f"{versus_cpu}; rows per CPU second of the planning process",
            )
        )
    figures.append(
        figure(
            "fingerprints (prepare, column-wise), both plans",
            round(new["fingerprint_s"] / (2 * n) * 1e6, 2),
            "us/row",
            note="computed in prepare, not counted in the plan figures above",
        )
    )
    return figures


GROUP = 32
"""Rows per group in the grouped figure: what 32 workers at 0 ms latency commit together."""


def group_commit_figures(led: Ledger, run_id: int, pair_rate: int) -> list[Figure]:
    """The sender's group commits: each ``commit_group`` records the previous group's outcomes
    and marks the next group ``in_flight`` in one FULL-sync transaction; rows/s next to the
    per-row ``mark_in_flight + record`` pair (``pair_rate``) measured just before."""
    keys = [item.row_key for item, _ in zip(led.work(BATCH), range(RECORDS), strict=False)]
    groups = [keys[i : i + GROUP] for i in range(0, len(keys), GROUP)]
    started = time.perf_counter()
    previous: list[Outcome] = []
    for group in groups:
        led.commit_group(BATCH, previous, [(k, f"k-{k}") for k in group], run_id=run_id)
        previous = [
            Outcome(BATCH, k, run_id, "succeeded", resolution="imported", http_status=200,
                    attempts=1)
            for k in group
        ]  # fmt: skip
    led.commit_group(BATCH, previous, [], run_id=run_id)
    rate = len(keys) / (time.perf_counter() - started)
    return [
        figure(
            f"group commits, {GROUP} rows a group (mark + record, FULL sync)",
            round(rate),
            "rows/s",
            note=f"{len(groups) + 1} transactions for {len(keys)} rows; "
            f"{rate / pair_rate:.0f}x the per-row pair above",
        )
    ]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(f"{row['name']:<50} {row['value']!s:>12} {row['unit']:<7} {row['note']}")


def _valid_orders(path: Path, n: int, prefix: str) -> Path:
    """``n`` factory rows that all pass validation: the factory's hourly timestamps would leave
    the plausible range after ~4 years of rows, so here they repeat every 20,000 hours."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER)
        writer.writeheader()
        for i in range(n):
            row = order_row(i, prefix=prefix)
            ts = BASE_TS + (i % 20_000) * 3600
            row.update(created_at=str(ts), order_date=str(ts), shipping_date=str(ts + 86_400))
            writer.writerow(row)
    return path


def _until(cmd: list[str], env: dict[str, str], done: Callable[[str], bool]) -> float | None:
    """Seconds from starting ``cmd`` until ``done`` holds for a line of its stderr (or None at
    its end or after ``FIRST_TIMEOUT_S``); the process is stopped then: the rest of its run
    (sending, reports) is not what is measured."""
    started = time.time()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if done(line):
                return time.time() - started
            if time.time() - started > FIRST_TIMEOUT_S:
                return None
        return None
    finally:
        proc.kill()
        proc.wait(timeout=60)


def first_request(quick: bool = False) -> list[Figure]:
    """Seconds from process start to the first import POST the sandbox logs, for the first run
    of a new batch of a 1M-row file of valid rows (``--canary 50``), beside the old order's
    wait: the same file's ``--dry-run`` until its ``planned`` event (the whole file validated
    and planned, which is when the old order sent its first request). Each run is stopped once
    its figure is known."""
    n = 100_000 if quick else 1_000_000
    with (
        tempfile.TemporaryDirectory(prefix="bench-first-") as tmp,
        sandbox_process() as box,
    ):
        work = Path(tmp)
        source = _valid_orders(work / "orders.csv", n, "FQ")
        env = support.cli_env(box.base_url, box.api_key)
        config = work / "bench.toml"  # ten chunks in both modes (1M rows: the default 100k)
        config.write_text(f"chunk_rows = {n // 10}\n", encoding="utf-8")

        def cli(batch: str, *more: str) -> list[str]:
            return [
                sys.executable, "-m", "pipeline", "run", str(source), "--batch", batch,
                "--log-json", "--ledger", str(work / f"{batch}.sqlite"), "--report-dir",
                str(work / f"r-{batch}"), "--rate", "1000000", "--config", str(config), *more,
            ]  # fmt: skip

        old_wait = _until(cli("dry", "--dry-run"), env, lambda line: '"event": "planned"' in line)
        started = time.time()
        posted: list[float] = []

        def first_post(_line: str) -> bool:
            log = box.state(orders=False)["requests"]
            posted.extend(float(e["t"]) for e in log if support.is_import(e))
            return bool(posted)

        _until(cli("first", "--canary", "50"), env, first_post)
        if not posted:  # its stderr ended (or timed out) before a line came after the POST
            first_post("")
    if old_wait is None or not posted:
        raise RuntimeError("no 'planned' event or no import POST within the time limit")
    new_wait = min(posted) - started
    return [
        figure(
            f"start to first request, {n:,}-row file (new batch)",
            round(new_wait, 1),
            "s",
            note="process start to the sandbox's first import POST (--canary 50; the rest is "
            "planned meanwhile); all rows valid",
        ),
        figure(
            f"start to the whole file planned, {n:,}-row file (the old order's first request)",
            round(old_wait, 1),
            "s",
            note=f"--dry-run of the same file until its 'planned' event; ratio "
            f"{old_wait / max(new_wait, 1e-9):.1f}x",
        ),
    ]


BIG_LEDGER = Path(os.environ["BENCH_BIG_LEDGER"]) if os.environ.get("BENCH_BIG_LEDGER") else None
"""A big ledger made before (``python -m bench.big_ledger PATH N``, by the baseline tree when
there is one: the old code cannot open a ledger the new code upgraded) to copy instead of making
one; unset: made here (bench/big_ledger.py, 5-10 minutes for 10M rows)."""


_BUILD = (
    "import sys; from pathlib import Path; from bench import big_ledger; "
    "big_ledger.build(Path(sys.argv[1]), int(sys.argv[2]))"
)
"""What the baseline tree runs to make the ledger (its bench/big_ledger.py has no command)."""


WITH_REPORT = os.environ.get("BENCH_BIG_REPORT", "1") != "0"
"""``BENCH_BIG_REPORT=0``: time ``status`` alone (the old code's ``report`` of 10M rows takes
many minutes)."""


def _big_ledger(path: Path, n: int, baseline: Path | None) -> str:
    """A big ledger of ``n`` rows at ``path`` (copied from ``BIG_LEDGER``, else made by the
    baseline tree's code when there is one, else by this tree's); what was done, for the note."""
    if BIG_LEDGER is not None:
        started = time.perf_counter()
        shutil.copyfile(BIG_LEDGER, path)
        return f"copied from {BIG_LEDGER} in {time.perf_counter() - started:.0f} s"
    if baseline is None:
        return f"made by SQL in {big_ledger.build(path, n):.0f} s"
    done = run_child(
        [str(baseline / ".venv" / "bin" / "python"), "-c", _BUILD, str(path), str(n)],
        env={**os.environ, "PYTHONPATH": str(baseline)},
        timeout=BIG_TIMEOUT_S,
        cwd=baseline,
    )
    if done.returncode != 0:
        raise RuntimeError(f"big_ledger in {baseline} exited {done.returncode}: {done.stderr}")
    return f"made by SQL (the old code) in {done.wall_s:.0f} s"


def _cli(tree: Path, folder: Path, *args: str) -> ChildRun:
    """``order-import ARGS --batch big --ledger big.sqlite`` run by ``tree``'s code in
    ``folder`` (a relative ledger path: both trees print the same next steps)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHARGEBEE_", "ORDER_"))}
    done = run_child(
        [str(tree / ".venv" / "bin" / "python"), "-m", "pipeline", *args,
         "--batch", big_ledger.BATCH, "--ledger", "big.sqlite"],
        env={**env, "PYTHONPATH": str(tree)},
        timeout=BIG_TIMEOUT_S,
        cwd=folder,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(
            f"order-import {args[0]} ({tree}) exited {done.returncode}: {done.stderr}"
        )
    return done


def _same_reports(old: Path, new: Path) -> None:
    """The files both trees wrote hold the same figures and rows (summary.json but for the
    moment it was generated)."""
    for name in ("failures.csv", "validation.csv", "summary.md"):
        if (old / name).read_bytes() != (new / name).read_bytes():
            raise RuntimeError(f"{name} differs between the old and the new code")
    a, b = (json.loads((d / "summary.json").read_text("utf-8")) for d in (old, new))
    a.pop("generated_at")
    b.pop("generated_at")
    if a != b:
        raise RuntimeError("summary.json differs between the old and the new code")


def status_and_report(quick: bool = False) -> list[Figure]:
    """``order-import status`` and ``order-import report`` (the real CLI) on a ledger of 10M
    rows (quick: 200k) and one attempt per sent row (bench/big_ledger.py), by the old code
    (``BENCH_BASELINE``) and this tree's, each on its own copy of one ledger, one after the
    other in this run; their outputs are checked equal. This tree's first ``status`` upgrades
    the copy and caches the run's figures (once per ledger); the second reads them back."""
    n = int(os.environ.get("BENCH_BIG_ROWS", 200_000 if quick else 10_000_000))
    this = Path(__file__).resolve().parent.parent
    baseline = (
        BASELINE
        if BASELINE is not None
        and (BASELINE / ".venv" / "bin" / "python").exists()
        and BASELINE.resolve() != this
        else None
    )
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-big-") as tmp:
        new_dir = Path(tmp) / "new"
        new_dir.mkdir()
        made = _big_ledger(new_dir / "big.sqlite", n, baseline)
        size_mb = (new_dir / "big.sqlite").stat().st_size / 1e6
        old: dict[str, ChildRun] = {}
        if baseline is not None:
            old_dir = Path(tmp) / "old"
            old_dir.mkdir()
            shutil.copyfile(new_dir / "big.sqlite", old_dir / "big.sqlite")
            old["status"] = _cli(baseline, old_dir, "status")
            old["status --json"] = _cli(baseline, old_dir, "status", "--json")
            if WITH_REPORT:
                old["report"] = _cli(baseline, old_dir, "report", "--out", "out")
        first = _cli(this, new_dir, "status")
        status = _cli(this, new_dir, "status")
        status_json = _cli(this, new_dir, "status", "--json")
        report = _cli(this, new_dir, "report", "--out", "out") if WITH_REPORT else None
        if baseline is not None:
            if not (old["status"].stdout == first.stdout == status.stdout):
                raise RuntimeError("status prints differently with the old and the new code")
            if old["status --json"].stdout != status_json.stdout:
                raise RuntimeError("status --json prints differently with the old and the new code")
            if WITH_REPORT:
                _same_reports(Path(tmp) / "old" / "out", new_dir / "out")
    versus = {
        name: (
            f"old code {old[name].wall_s:,.1f} s in the same run (its own copy), ratio "
            f"{old[name].wall_s / done.wall_s:,.1f}x; CPU {done.cpu_s:,.1f} s against "
            f"{old[name].cpu_s:,.1f} s; output checked equal"
            if name in old
            else f"CPU {done.cpu_s:,.1f} s; no baseline tree (set BENCH_BASELINE to an old "
            "checkout with its .venv)"
        )
        for name, done in (("status", status), ("status --json", status_json), ("report", report))
        if done is not None
    }
    figures.append(
        figure(
            f"order-import status, {n:,}-row ledger",
            round(status.wall_s, 1),
            "s",
            goal="<= 5 s (quiet 2-core machine)",
            met=status.wall_s <= 5.0,
            note=f"the real CLI, run's figures cached; {versus['status']}; ledger "
            f"{size_mb:,.0f} MB with {n:,} rows and an attempt per sent row, {made}",
        )
    )
    figures.append(
        figure(
            f"order-import status --json, {n:,}-row ledger",
            round(status_json.wall_s, 1),
            "s",
            goal="<= 5 s (quiet 2-core machine)",
            met=status_json.wall_s <= 5.0,
            note=f"the real CLI: also amounts by currency (covering index rows_money), warnings "
            f"by rule and the timeline; {versus['status --json']}",
        )
    )
    figures.append(
        figure(
            f"order-import status, {n:,}-row ledger, first after the upgrade",
            round(first.wall_s, 1),
            "s",
            note="once per ledger: the upgrade (from v8: every row's currency and amount "
            "stored, rows_money built; from v6 also the v7 indexes) and the finished run's "
            "attempt figures cached",
        )
    )
    if report is None:
        return figures
    figures.append(
        figure(
            f"order-import report, {n:,}-row ledger",
            round(report.wall_s, 1),
            "s",
            goal="<= 30 s (quiet 2-core machine)",
            met=report.wall_s <= 30.0,
            note=f"the real CLI: report.html (table capped), failures.csv/.xlsx, validation.csv, "
            f"summaries; {versus['report']}",
        )
    )
    return figures
