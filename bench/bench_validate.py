"""Validation speed and memory: load+map+validate vs a bare ``pandas.read_csv`` of the same file.

Generates legacy-format CSVs (22 mapped + 18 ignored columns = 40) under bench/.work/ (gitignored),
then times each step in its own subprocess and reads its peak RSS (``ru_maxrss``). Figures are
ratios measured side by side in one run, never absolute goals. Every loop is bounded in count.
Besides the plain mapping, a preset-like mapping of the same file (grouping, templates,
coalesce, rules, split names, a skip rule, cleaning filters) is timed as a ratio to the plain
one. ``python -m bench.bench_validate [--quick]`` prints the table.
"""

from __future__ import annotations

import json
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


def measure(kind: str, path: Path, mapping: Path) -> dict[str, Any]:
    """Run one step in a fresh interpreter; return its seconds, peak RSS (MB) and rows."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, str(path), str(mapping)],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        cwd=REPO,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _row(metric: str, value: float | int, unit: str, note: str) -> Figure:
    row = figure(metric, value, unit, note=note)
    row.update({"benchmark": "validate", "metric": metric})
    return row


def run(quick: bool = False) -> list[dict[str, object]]:
    """Ratios and peak memory for load+map+validate; quick = 100k/1M rows, full = 1M/10M."""
    WORK.mkdir(parents=True, exist_ok=True)
    size, stream_size = (100_000, 1_000_000) if quick else (1_000_000, 10_000_000)
    mapping = _mapping(WORK / "bench.mapping.toml")
    data = generate(WORK / f"orders_{size}.csv", size)
    bare = measure("read_csv", data, mapping)
    arrow = measure("read_csv_pyarrow", data, mapping)
    ours = measure("validate", data, mapping)
    preset = measure("validate", data, _preset_like(mapping, WORK / "bench.preset.toml"))
    assert ours["rows"] == bare["rows"] == preset["rows"] == size
    mb = data.stat().st_size / 1e6
    rows: list[dict[str, object]] = [
        _row(
            f"load+map+validate / read_csv time, {size:,} rows",
            ours["seconds"] / bare["seconds"],
            "x",
            f"ours {ours['seconds']:.1f}s vs pandas.read_csv(dtype=str) {bare['seconds']:.1f}s; "
            f"{mb:.0f} MB, 40 columns",
        ),
        _row(
            f"load+map+validate / read_csv(engine=pyarrow) time, {size:,} rows",
            ours["seconds"] / arrow["seconds"],
            "x",
            f"pyarrow engine {arrow['seconds']:.1f}s",
        ),
        _row(
            f"preset-like / plain mapping time, {size:,} rows",
            preset["seconds"] / ours["seconds"],
            "x",
            f"grouping, templates, coalesce, rules, split names, skip: {preset['seconds']:.1f}s "
            f"vs {ours['seconds']:.1f}s (goal <= 1.5x)",
        ),
        _row(
            f"validate throughput, {size:,} rows",
            size / ours["seconds"],
            "rows/s",
            "one process, 2-core shared machine",
        ),
        _row(f"peak RSS validate, {size:,} rows", ours["peak_mb"], "MB", "streamed in chunks"),
        _row(f"peak RSS read_csv, {size:,} rows", bare["peak_mb"], "MB", "whole file in memory"),
    ]
    started = time.perf_counter()
    big = generate(WORK / f"orders_{stream_size}.csv", stream_size)
    gen_s = time.perf_counter() - started
    streamed = measure("validate", big, mapping)
    assert streamed["rows"] == stream_size
    rows.append(
        _row(
            f"peak RSS validate streamed, {stream_size:,} rows",
            streamed["peak_mb"],
            "MB",
            f"{big.stat().st_size / 1e9:.1f} GB file validated in {streamed['seconds']:.0f}s "
            f"(generated in {gen_s:.0f}s); chunk_rows 100,000",
        )
    )
    return rows


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    for r in run(quick=quick):
        print(f"{r['metric']:<62} {r['value']:>12.2f} {r['unit']:<6} {r['note']}")
