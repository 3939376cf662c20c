"""``--state FILE``: a snapshot line followed by a journal of mutations, one JSON object a line.

Each committed write is appended and flushed *before* its answer is sent, so killing the process
never loses an order that was answered 200. Compaction rewrites the file atomically (tmp + rename).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

FORMAT_VERSION = 1


def load(path: str) -> list[dict[str, Any]]:
    """Read the snapshot and the journal records after it (a torn last line is ignored).

    Returns:
        The records in file order; the first is the snapshot (``{"v": 1, ...}``); empty list when
        the file does not exist.
    """
    file = Path(path)
    if not file.exists():
        return []
    records: list[dict[str, Any]] = []
    with file.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a write cut short by a kill: everything before it is intact
    if records and records[0].get("v") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a sandbox state file (format version {FORMAT_VERSION})")
    return records


class Journal:
    """An append handle on the state file, with atomic compaction.

    Args:
        path: The state file.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines = 0
        self._handle: IO[str] | None = None

    def append(self, record: dict[str, Any]) -> None:
        """Append one mutation and flush it to the OS (survives a process kill)."""
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        self._handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._handle.flush()
        self.lines += 1

    def compact(self, snapshot: dict[str, Any]) -> None:
        """Replace the file by one snapshot line, atomically (write tmp, fsync, rename)."""
        self.close()
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"v": FORMAT_VERSION, **snapshot}, separators=(",", ":")))
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        self.lines = 0

    def close(self) -> None:
        """Close the append handle (reopened on the next append)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
