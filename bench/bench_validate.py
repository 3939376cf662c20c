"""Validation speed and memory: load+map+validate vs a bare ``pandas.read_csv`` of the same file.

Generates legacy-format CSVs (22 mapped + 18 ignored columns = 40) under bench/.work/ (gitignored),
then times each step in its own subprocess and reads its peak RSS (``ru_maxrss``). Figures are
ratios measured side by side in one run, never absolute goals. Every loop is bounded in count.
Besides the plain mapping, a preset-like mapping of the same file (grouping, templates,
coalesce, rules, split names, a skip rule, cleaning filters) is timed as a ratio to the plain
one, and the plain run with the postal-code check made a no-op as a ratio too. Ratios are
medians over a few rounds (the spread is in the note): the machine is shared.
``python -m bench.bench_validate [--quick]`` prints the table (quick: 100k rows and a 1M-row
streamed file; default: 1M rows and a 10M-row streamed file, several minutes).

``--baseline DIR`` also times another checkout of the project (``DIR/.venv/bin/python`` run in
``DIR``, e.g. the main branch) in every round, on the same file, as a before/after pair;
``--rounds N`` sets the rounds; ``--no-extras`` leaves out the preset-like and postal rows,
``--no-stream`` the streamed file. The
streamed run(s) start in parallel with the rounds (peak RSS does not depend on the CPU share;
they add load to every step of the rounds alike), and the load average is printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import Figure, figure

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / ".work"
EXTRA_COLUMNS = 18
SUBPROCESS_TIMEOUT_S = 3600

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
kind, path, mapping = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
if kind == "validate_no_postal":  # the same run with the postal-code check made a no-op
    import numpy as np
    import pipeline.prepare.validation as validation
    validation.invalid_postal_codes = lambda codes, countries: np.zeros(len(codes), dtype=bool)
start = time.perf_counter()
if kind == "read_csv":
    import pandas as pd
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    rows = len(frame)
elif kind == "read_csv_pyarrow":
    import pandas as pd
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, engine="pyarrow")
    rows = len(frame)
else:
    from pipeline.config import Settings
    from pipeline.prepare.prepare import validate_file
    summary = validate_file(path, Settings(mapping_path=Path(mapping)), None)
    rows = summary.rows_read
seconds = time.perf_counter() - start
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "rows": rows}))
"""


def _mapping(path: Path) -> Path:
    """The sample mapping plus an ``ignore`` list for the filler columns."""
    sample = (REPO / "sample_data" / "legacy_orders.mapping.toml").read_text(encoding="utf-8")
    body = "\n".join(line for line in sample.splitlines() if not line.startswith("version"))
    ignore = ", ".join(f'"Extra {i}"' for i in range(EXTRA_COLUMNS))
    path.write_text(f"version = 1\nignore = [{ignore}]\n{body}\n", encoding="utf-8")
    return path


PRESET_LIKE = """
[orders]
group_by = "Order #"

[clean]
"Ship To Zip" = [{ strip = "'" }]

[params.reference_id]
template = "R-{Order #}-{Customer ID}"
filters = [{ remove = "-" }, { truncate = 40 }]

[params.tracking_url]
template = "https://track.example/{Tracking #}"

[params."shipping_address.company"]
coalesce = ["Extra 0", "Extra 1"]
filters = [{ upper = true }]

[params."billing_address.first_name"]
split_name = { column = "Extra 2", part = "first" }

[params."billing_address.last_name"]
split_name = { column = "Extra 2", part = "last" }

[params."shipping_address.validation_status"]
rules = [
  { when = { "Status" = "Shipped", "Carrier" = { blank = false } }, value = "valid" },
  { when = { "Status" = ["Delivered", "Returned"] }, value = "partially_valid" },
  { value = "not_validated" },
]

[[skip]]
when = { "Extra 3" = "never-matches" }
reason = "benchmark: no row matches"
"""
"""Appended to the plain mapping: every transform kind, on columns the plain mapping leaves."""


def _preset_like(plain: Path, path: Path) -> Path:
    """The plain mapping plus grouping, templates, coalesce, rules, split names and a skip."""
    path.write_text(plain.read_text(encoding="utf-8") + PRESET_LIKE, encoding="utf-8")
    return path


def generate(path: Path, rows: int) -> Path:
    """Write ``rows`` valid orders (the 600 sample orders repeated, unique order numbers).

    Bounded: exactly ``rows`` lines are written; an existing file of the right size is reused.
    """
    marker = path.with_suffix(".rows")
    stamp = f"{rows} unique-invoices"
    if path.exists() and marker.exists() and marker.read_text() == stamp:
        return path
    sys.path.insert(0, str(REPO))
    import random

    from sample_data.generate import HEADER, orders

    base = orders(random.Random(7))
    header = [*HEADER, *(f"Extra {i}" for i in range(EXTRA_COLUMNS))]

    def quote(cell: str) -> str:
        return '"' + cell.replace('"', '""') + '"' if any(c in cell for c in ',"\n') else cell

    assert HEADER[:2] == ["Order #", "Invoice No"]
    templates = [  # order number and invoice are written per row: both unique in the file
        [quote(r[h]) for h in HEADER[2:]] + [f"filler-{j}" for j in range(EXTRA_COLUMNS)]
        for r in base
    ]
    joined = [",".join(t) for t in templates]
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(",".join(header) + "\n")
        block: list[str] = []
        for i in range(rows):
            block.append(f"{10001 + i},INV-{10001 + i},{joined[i % len(joined)]}\n")
            if len(block) == 10_000:
                fh.write("".join(block))
                block.clear()
        fh.write("".join(block))
    marker.write_text(stamp)
    return path


def start(kind: str, path: Path, mapping: Path, checkout: Path = REPO) -> subprocess.Popen[str]:
    """Start one step in a fresh interpreter of ``checkout`` (its ``.venv``, or this one)."""
    python = checkout / ".venv" / "bin" / "python" if checkout != REPO else Path(sys.executable)
    return subprocess.Popen(
        [str(python), "-c", _CHILD, kind, str(path), str(mapping)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=checkout,
    )


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Wait (bounded) for a started step; its seconds, peak RSS (MB) and rows."""
    try:
        out, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"bench step failed ({proc.returncode}): {err.strip()[-500:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def measure(kind: str, path: Path, mapping: Path, checkout: Path = REPO) -> dict[str, Any]:
    """Run one step in a fresh interpreter; return its seconds, peak RSS (MB) and rows."""
    return finish(start(kind, path, mapping, checkout))


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (5 min {five:.1f})"


def _row(
    metric: str,
    value: float | int,
    unit: str,
    note: str,
    goal: str | None = None,
    met: bool | None = None,
) -> Figure:
    row = figure(metric, value, unit, goal=goal, met=met, note=note)
    row.update({"benchmark": "validate", "metric": metric})
    return row


RATIO_GOAL = 4.0
"""load+map+validate over ``pandas.read_csv(engine="pyarrow", dtype=str)`` (issue #11)."""
PRESET_GOAL = 1.5
"""preset-like mapping over the plain mapping (issue #11)."""
STREAM_GOAL_MB = 1024
"""peak RSS validating the 10M-row file, streamed (issue #11)."""


def _spread(values: list[float]) -> tuple[float, str]:
    """Median and a ``min–max over N rounds`` note (the machine is shared: ratios vary)."""
    ordered = sorted(values)
    mid = ordered[len(ordered) // 2]
    if len(ordered) % 2 == 0:
        mid = (ordered[len(ordered) // 2 - 1] + mid) / 2
    return mid, f"median of {len(ordered)} rounds, spread {ordered[0]:.2f}–{ordered[-1]:.2f}"


def run(
    quick: bool = False,
    rounds: int | None = None,
    baseline: Path | None = None,
    extras: bool = True,
    stream: bool = True,
) -> list[dict[str, object]]:
    """Ratios and peak memory for load+map+validate; quick = 100k/1M rows, full = 1M/10M.

    The ratio steps run side by side in each round (pyarrow read, plain mapping, then unless
    ``extras`` is off the preset-like mapping and the plain mapping without the postal-code
    check, and with ``baseline`` the plain mapping in that checkout); each ratio is reported as
    its median over the rounds with the spread. Bounded: ``rounds`` x 5 subprocesses plus the
    streamed one(s), each with a timeout.
    """
    WORK.mkdir(parents=True, exist_ok=True)
    size, stream_size = (100_000, 1_000_000) if quick else (1_000_000, 10_000_000)
    rounds = rounds or (2 if quick else 3)
    mapping = _mapping(WORK / "bench.mapping.toml")
    preset_mapping = _preset_like(mapping, WORK / "bench.preset.toml")
    data = generate(WORK / f"orders_{size}.csv", size)
    started = time.perf_counter()
    big = generate(WORK / f"orders_{stream_size}.csv", stream_size)
    gen_s = time.perf_counter() - started
    load_before = _load()
    streaming = {"ours": start("validate", big, mapping)} if stream else {}
    if baseline is not None and stream:
        streaming["baseline"] = start("validate", big, mapping, baseline)
    bare = measure("read_csv", data, mapping)
    ratios: dict[str, list[float]] = {"arrow": [], "preset": [], "postal": [], "baseline": []}
    last: dict[str, dict[str, Any]] = {}
    for _ in range(rounds):
        last["arrow"] = measure("read_csv_pyarrow", data, mapping)
        last["ours"] = measure("validate", data, mapping)
        assert last["ours"]["rows"] == bare["rows"] == size
        ratios["arrow"].append(last["ours"]["seconds"] / last["arrow"]["seconds"])
        if baseline is not None:
            last["baseline"] = measure("validate", data, mapping, baseline)
            assert last["baseline"]["rows"] == size
            ratios["baseline"].append(last["baseline"]["seconds"] / last["arrow"]["seconds"])
        if extras:
            last["preset"] = measure("validate", data, preset_mapping)
            last["no_postal"] = measure("validate_no_postal", data, mapping)
            assert last["preset"]["rows"] == size
            ratios["preset"].append(last["preset"]["seconds"] / last["ours"]["seconds"])
            ratios["postal"].append(last["ours"]["seconds"] / last["no_postal"]["seconds"])
    load_rounds = _load()
    ours, arrow = last["ours"], last["arrow"]
    mb = data.stat().st_size / 1e6
    arrow_ratio, arrow_note = _spread(ratios["arrow"])
    rows: list[dict[str, object]] = [
        _row(
            f"load+map+validate / read_csv time, {size:,} rows",
            ours["seconds"] / bare["seconds"],
            "x",
            f"ours {ours['seconds']:.1f}s vs pandas.read_csv(dtype=str) {bare['seconds']:.1f}s; "
            f"{mb:.0f} MB, 40 columns (last round)",
        ),
        _row(
            f"load+map+validate / read_csv(engine=pyarrow) time, {size:,} rows",
            arrow_ratio,
            "x",
            f"{arrow_note}; last: ours {ours['seconds']:.1f}s vs pyarrow engine "
            f"{arrow['seconds']:.1f}s; load average {load_before} before, {load_rounds} after",
            goal=f"<= {RATIO_GOAL:g}x",
            met=arrow_ratio <= RATIO_GOAL,
        ),
    ]
    if baseline is not None:
        base_ratio, base_note = _spread(ratios["baseline"])
        rows.append(
            _row(
                f"baseline ({baseline.name}) / read_csv(engine=pyarrow) time, {size:,} rows",
                base_ratio,
                "x",
                f"{base_note}; the same file and rounds; last: "
                f"{last['baseline']['seconds']:.1f}s, peak {last['baseline']['peak_mb']:.0f} MB",
            )
        )
    if extras:
        preset = last["preset"]
        preset_ratio, preset_note = _spread(ratios["preset"])
        postal_ratio, postal_note = _spread(ratios["postal"])
        rows += [
            _row(
                f"preset-like / plain mapping time, {size:,} rows",
                preset_ratio,
                "x",
                f"{preset_note}; grouping, templates, coalesce, rules, split names, skip; last: "
                f"{preset['seconds']:.1f}s vs {ours['seconds']:.1f}s",
                goal=f"<= {PRESET_GOAL:g}x",
                met=preset_ratio <= PRESET_GOAL,
            ),
            _row(
                f"with / without postal-code check time, {size:,} rows",
                postal_ratio,
                "x",
                f"{postal_note}; plain mapping, every row has a zip and a country",
            ),
        ]
    rows += [
        _row(
            f"validate throughput, {size:,} rows",
            size / ours["seconds"],
            "rows/s",
            "one process, 2-core shared machine (last round)",
        ),
        _row(f"peak RSS validate, {size:,} rows", ours["peak_mb"], "MB", "streamed in chunks"),
        _row(f"peak RSS read_csv, {size:,} rows", bare["peak_mb"], "MB", "whole file in memory"),
    ]
    for who, proc in streaming.items():
        streamed = finish(proc)
        assert streamed["rows"] == stream_size
        label = "" if who == "ours" else f" ({baseline.name if baseline else who})"
        goal = who == "ours" and stream_size >= 10_000_000
        rows.append(
            _row(
                f"peak RSS validate streamed{label}, {stream_size:,} rows",
                streamed["peak_mb"],
                "MB",
                f"{big.stat().st_size / 1e9:.1f} GB file validated in {streamed['seconds']:.0f}s "
                f"in parallel with the rounds (generated in {gen_s:.0f}s); chunk_rows 100,000; "
                f"load average at the end {_load()}",
                goal=f"<= {STREAM_GOAL_MB} MB" if goal else None,
                met=streamed["peak_mb"] <= STREAM_GOAL_MB if goal else None,
            )
        )
    return rows


def _option(name: str) -> str | None:
    """The value after ``name`` on the command line, if given."""
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else None


if __name__ == "__main__":
    base = _option("--baseline")
    count = _option("--rounds")
    table = run(
        quick="--quick" in sys.argv,
        rounds=int(count) if count else None,
        baseline=Path(base).resolve() if base else None,
        extras="--no-extras" not in sys.argv,
        stream="--no-stream" not in sys.argv,
    )
    for r in table:
        goal = f"{r['goal']} ({'met' if r['met'] else 'MISSED'})" if r["goal"] else ""
        print(f"{r['metric']:<62} {r['value']:>10.2f} {r['unit']:<6} {goal:<18} {r['note']}")
