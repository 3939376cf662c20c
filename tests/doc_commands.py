"""Every shell command README.md, CONTRIBUTING.md and docs/*.md print, with its file and line.

What counts as a command (CONTRIBUTING.md, "Commands in the docs", says the same):

* in a fenced block tagged ``sh``, ``bash``, ``shell`` or ``console``: every line that is not
  empty and not a whole-line ``#`` comment (a ``$ `` prompt is dropped); a line ending in ``\\``
  goes on with the next;
* in an untagged fenced block: the lines whose first word is a command (``order-import``,
  ``make``, ``python``/``python3``, ``pytest``, ``.venv/bin/…``); an indented line starting with
  ``[`` goes on with the line above (a usage synopsis wrapped over lines). Output shown in such
  blocks (``order-import: error: …``, ``note: …``) starts with another word and is not a command;
* blocks tagged anything else (``toml``, ``python``, ``text``, ``json``) hold no commands;
* outside fenced blocks, an inline code span starting with ``order-import ``, ``make ``,
  ``python -m ``/``python3 -m `` or ``.venv/bin/``, except a bare ``order-import <command>``
  (two words: the name of a command, which ``tests/test_docs.py`` checks the CLI has, not a
  command line to run);
* leading ``NAME=value`` environment assignments do not change what the command is
  (``BENCH_BASELINE=../old python -m bench`` is a ``python -m`` command).

``DocCommand.text`` is the command without its trailing ``# comment`` (what the tables in
``tests/test_doc_commands.py`` are keyed by); ``DocCommand.printed`` is the line as printed,
comment included (what is run).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHELL_TAGS = frozenset({"sh", "bash", "shell", "console"})
COMMAND_WORDS = ("order-import", "make", "python", "python3", "pytest")
INLINE_STARTS = ("order-import ", "make ", "python -m ", "python3 -m ", ".venv/bin/")
ASSIGNMENT = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)+")
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


@dataclass(frozen=True)
class DocCommand:
    """One command a doc prints."""

    doc: str
    """The doc's path from the repository root (``README.md``, ``docs/mapping.md``)."""
    line: int
    """1-based line of the command's first line."""
    printed: str
    """As printed (continuations joined with a space), trailing comment included."""
    inline: bool
    """An inline code span (not a line of a fenced block)."""

    @property
    def text(self) -> str:
        """The command without its trailing comment."""
        return strip_comment(self.printed)

    @property
    def where(self) -> str:
        """``doc:line``."""
        return f"{self.doc}:{self.line}"


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md, CONTRIBUTING.md and docs/*.md (sorted)."""
    return [root / "README.md", root / "CONTRIBUTING.md", *sorted((root / "docs").glob("*.md"))]


def strip_comment(line: str) -> str:
    """``line`` without a trailing shell comment (a ``#`` at a word start outside quotes)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def without_assignments(text: str) -> str:
    """``text`` without leading ``NAME=value`` environment assignments."""
    return ASSIGNMENT.sub("", text)


def _is_command_line(line: str) -> bool:
    words = without_assignments(line).split(maxsplit=1)
    first = words[0] if words else ""
    return first in COMMAND_WORDS or first.startswith(".venv/bin/")


def _block_commands(doc: str, tag: str, lines: list[tuple[int, str]]) -> list[DocCommand]:
    """The commands of one fenced block (``lines``: numbered lines between the fences)."""
    found: list[DocCommand] = []
    pending: tuple[int, str] | None = None
    previous_was_command = False
    for number, raw in lines:
        line = raw.strip()
        if pending is not None:  # a `\` continuation
            start, text = pending
            joined = f"{text} {line.removesuffix(chr(92)).strip()}".strip()
            if line.endswith("\\"):
                pending = (start, joined)
            else:
                found.append(DocCommand(doc, start, joined, False))
                pending = None
            continue
        if tag in SHELL_TAGS:
            line = line.removeprefix("$ ")
            if not line or line.startswith("#"):
                continue
        elif raw[:1].isspace() and line.startswith("[") and previous_was_command:
            last = found[-1]
            found[-1] = DocCommand(doc, last.line, f"{last.printed} {line}", False)
            continue
        else:
            previous_was_command = _is_command_line(line)
            if not previous_was_command:
                continue
        if line.endswith("\\"):
            pending = (number, line.removesuffix("\\").strip())
        else:
            found.append(DocCommand(doc, number, line, False))
    if pending is not None:
        found.append(DocCommand(doc, pending[0], pending[1], False))
    return found


def _inline_commands(doc: str, number: int, line: str) -> list[DocCommand]:
    found = []
    for match in INLINE.finditer(line):
        span = match.group(1).strip()
        bare = without_assignments(span)
        if not any(bare.startswith(p) and bare[len(p) :].strip() for p in INLINE_STARTS):
            continue  # not a command, or only its first word (``.venv/bin/``)
        if span.startswith("order-import ") and len(span.split()) == 2:
            continue  # the name of a command
        found.append(DocCommand(doc, number, span, True))
    return found


def harvest(path: Path, root: Path = ROOT) -> list[DocCommand]:
    """Every command ``path`` prints, in document order."""
    doc = path.relative_to(root).as_posix()
    found: list[DocCommand] = []
    fence: str | None = None
    tag = ""
    block: list[tuple[int, str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = FENCE.match(line)
        if fence is None:
            if match:
                fence, tag, block = match.group(1), match.group(2).lower(), []
            else:
                found.extend(_inline_commands(doc, number, line))
        elif match and match.group(1).startswith(fence) and not match.group(2):
            if tag in SHELL_TAGS or not tag:
                found.extend(_block_commands(doc, tag, block))
            fence = None
        else:
            block.append((number, line))
    return found


def harvest_all(root: Path = ROOT) -> list[DocCommand]:
    """Every command of every doc (README.md, CONTRIBUTING.md, docs/*.md)."""
    return [command for path in doc_files(root) for command in harvest(path, root)]
