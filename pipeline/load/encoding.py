"""Which text encoding a CSV file is in: known (byte-order mark, strict UTF-8) or guessed.

A guess is never silent: it says it was guessed and shows a few non-ASCII values as they were
read, so ``Genčve`` for ``Genève`` is visible before anything is sent. Without a byte-order mark
and not valid UTF-8, the file is read as **cp1252** (legacy Western exports overwhelmingly are)
unless the bytes prove otherwise:

* bytes that cp1252 leaves undefined (0x81 0x8D 0x8F 0x90 0x9D): another code page is certain;
* the cp1252 reading is odd where another reading is not: a symbol inside a word (``Wroc³aw``),
  a symbol opening a lower-case word (``£ódŸ``), a capital letter after a small one (``dŸ``);
* chardet's language models find another encoding at least twice as likely (four times for a
  non-Latin script), with enough non-ASCII bytes to judge.

In the last two cases the candidate readings are chardet's, best first; the reading with the
fewest oddities wins. Imports errors only.
"""

from __future__ import annotations

import codecs
import csv
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputError

MODEL_BYTES = 1 << 16
"""How much of the sample chardet's language models read (they are the slow part)."""
ODDITY_BYTES = 1 << 16
"""How much of the sample is checked for odd-looking words."""
MIN_HIGH_BYTES = 10
"""Non-ASCII bytes needed before a language model may overrule the cp1252 default."""
LATIN_RUN = 5
_MARKS = frozenset({"No", "Cc", "Cf"})
SAMPLE_VALUES = 5
SAMPLE_VALUE_CHARS = 40

WESTERN = frozenset({"cp1252", "iso8859-1", "iso8859-15"})
"""Readings equivalent to cp1252 for the letters of Western European text."""
CENTRAL_EUROPEAN = frozenset({"cp1250", "iso8859-2", "iso8859-16", "mac-latin2", "cp852"})
"""cp1252's Latin-script neighbours: overrule cp1252 at twice its likelihood, others at 4x."""
FALLBACKS = ("cp1250", "mac-roman", "iso8859-1")
"""Always considered when cp1252 is ruled out; latin-1 decodes any byte, so something reads."""

_CONTROL_BYTES = frozenset(range(9)) | frozenset(range(14, 32))
_ASCII = bytes(range(128))
_PRINTABLE = bytes(range(32, 127)) + b"\t\r\n"
_WORDS = re.compile(r"[^\s,;|\"]*[^\x00-\x7f][^\s,;|\"]*")


@dataclass(frozen=True, slots=True)
class EncodingGuess:
    """The encoding chosen for a file and whether it was guessed."""

    encoding: str
    guessed: bool
    reason: str
    """Why this encoding, in words (``"byte-order mark"``, ``"no byte-order mark, not UTF-8"``)."""


def detect_encoding(sample: bytes, path: Path) -> EncodingGuess:
    """Pick the text encoding of a file from its first bytes.

    Raises:
        InputError: the bytes look binary (NUL or many control bytes) rather than text.
    """
    if sample.startswith(codecs.BOM_UTF8):
        return EncodingGuess("utf-8-sig", False, "UTF-8 byte-order mark")
    if sample.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return EncodingGuess("utf-32", False, "UTF-32 byte-order mark")
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return EncodingGuess("utf-16", False, "UTF-16 byte-order mark")
    if b"\x00" in sample or _looks_binary(sample):
        raise InputError(
            "looks like a binary file, not CSV text",
            path=str(path),
            hint="pass a CSV, XLSX, XLS or ODS export (UTF-16 text needs its byte-order mark)",
        )
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return EncodingGuess("utf-8", False, "valid UTF-8")
    except UnicodeDecodeError:
        pass
    return guess_single_byte(sample)


def _looks_binary(sample: bytes) -> bool:
    window = sample[:65536]
    controls = sum(1 for byte in window if byte in _CONTROL_BYTES)
    return controls > max(8, len(window) // 100)


def guess_single_byte(sample: bytes) -> EncodingGuess:
    """cp1252 unless the bytes prove another single-byte encoding (see the module docstring)."""
    scores = _chardet_scores(sample)
    text = sample[:ODDITY_BYTES]
    if not _decodes(sample, "cp1252"):
        best = _least_odd(text, _candidates(sample, scores))
        return EncodingGuess(best, True, "bytes that cp1252 leaves undefined")
    odd = oddities(text.decode("cp1252"))
    if odd:
        best = _least_odd(text, _candidates(sample, scores))
        if best not in WESTERN and oddities(_read(text, best)) < odd:
            return EncodingGuess(best, True, "letters that read oddly as cp1252")
    if len(sample.translate(None, _ASCII)) >= MIN_HIGH_BYTES:
        likely = _language_model_choice(sample, scores, odd)
        if likely is not None:
            return EncodingGuess(likely, True, "language model")
    return EncodingGuess("cp1252", True, "no byte-order mark, not UTF-8: Western default")


def _language_model_choice(
    sample: bytes, scores: list[tuple[str, float]], cp1252_odd: int
) -> str | None:
    """An encoding chardet rates far above cp1252 that reads no more oddly than cp1252."""
    western = max((score for name, score in scores if name in WESTERN), default=0.0)
    for name, score in scores:
        if name in WESTERN:
            continue
        factor = 2.0 if name in CENTRAL_EUROPEAN else 4.0
        if (
            score >= factor * western
            and _decodes(sample, name)
            and oddities(_read(sample[:ODDITY_BYTES], name)) <= cp1252_odd
        ):
            return name
    return None


def _chardet_scores(sample: bytes) -> list[tuple[str, float]]:
    """(codec name, confidence) per chardet candidate, best first, Python-known codecs only."""
    import chardet

    out: list[tuple[str, float]] = []
    for result in chardet.detect_all(sample[:MODEL_BYTES], ignore_threshold=True):
        name = _codec_name(result.get("encoding"))
        if name is not None and name not in (known for known, _ in out):
            out.append((name, float(result.get("confidence") or 0.0)))
    return out


def _candidates(sample: bytes, scores: list[tuple[str, float]]) -> list[str]:
    """Encodings that decode the whole sample, chardet's best first, then the fallbacks."""
    names = [name for name, _ in scores] + [_codec_name(name) for name in FALLBACKS]
    out: list[str] = []
    for name in names:
        if name is not None and name not in out and _decodes(sample, name):
            out.append(name)
    return out


def _least_odd(text: bytes, candidates: list[str]) -> str:
    """The first candidate whose reading has the fewest oddities (candidates are best first)."""
    return min(candidates, key=lambda name: oddities(_read(text, name)))


def _codec_name(name: object) -> str | None:
    """Python's name for a candidate, or None: unknown, or not ASCII-compatible (a CSV whose
    delimiters, quotes and digits are ASCII bytes cannot be EBCDIC or UTF-7)."""
    if not isinstance(name, str) or not name:
        return None
    try:
        info = codecs.lookup(name)
        if _PRINTABLE.decode(info.name) != _PRINTABLE.decode("ascii"):
            return None
    except (LookupError, UnicodeDecodeError):
        return None
    return info.name if info.name != "latin-1" else "iso8859-1"


def _decodes(sample: bytes, name: str) -> bool:
    """Every byte of the sample decodes (a character cut at the sample's end is fine)."""
    try:
        codecs.getincrementaldecoder(name)().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _read(data: bytes, name: str) -> str:
    """Decode a cut sample (a multi-byte character may be split at the end)."""
    return data.decode(name, errors="replace")


def oddities(text: str) -> int:
    """Distinct words whose non-ASCII characters are implausible as written text.

    Counted: a C0/C1 control character; a symbol, non-decimal number or stray mark (``³ £ § †``)
    with letters on both sides (the Catalan ``l·l`` dot excepted); a symbol or number opening a
    word before a small letter (``£ódŸ``); a capital letter right after a small one where either
    is non-ASCII (``dŸ``, ``żD``), or between a capital and a small one (``MŸnchen``); five
    accented Latin letters in a row (Cyrillic read as cp1252: ``Ïåòðîâà``); two non-ASCII
    symbols or marks in a word with a non-ASCII letter (``¤Õ‗¯ÔÓ``). Trailing symbols
    (``m³``, ``12€``) and opening marks (``¿Dónde``) are normal.
    """
    return sum(_odd_word(word) for word in set(_WORDS.findall(text)))


def _odd_word(word: str) -> bool:
    accented = 0  # consecutive accented Latin letters: Western words never have five
    marks = 0  # non-ASCII symbols and stray marks (not quotes, dashes): two with a letter is odd
    letters = 0
    for i, ch in enumerate(word):
        if ch.isascii():
            accented = 0
            continue
        category = unicodedata.category(ch)
        letters += category[0] == "L"
        marks += category[0] == "S" or category in _MARKS or (category == "Po" and ch not in "¿¡·")
        if marks >= 2 and letters:
            return True
        if category[0] == "L" and unicodedata.name(ch, "").startswith("LATIN"):
            accented += 1
            if accented >= LATIN_RUN:
                return True
        else:
            accented = 0
        prev = word[i - 1] if i else ""
        nxt = word[i + 1] if i + 1 < len(word) else ""
        if category == "Cc":
            return True
        if category[0] == "S" or category in ("No", "Po"):
            if prev.isalpha() and nxt.isalpha() and ch != "\u00b7":
                return True
            if not prev and nxt.isalpha() and nxt.islower() and category != "Po":
                return True
        if category == "Lu" and prev.isalpha() and (prev.islower() or nxt.islower()):
            return True
        if category == "Ll" and nxt.isalpha() and nxt.isupper():
            return True
    return False


def non_ascii_values(
    text: str, delimiter: str, encoding: str, limit: int = SAMPLE_VALUES
) -> tuple[str, ...]:
    """A few distinct non-ASCII cells as decoded, telling ones first, to show what a guess reads.

    A value is telling when one of its characters would read differently as cp1252 or cp1250
    (``Genève``/``Genčve``); ``Köln`` reads the same in both and proves nothing.
    """
    found: dict[str, None] = {}
    lines = text.lstrip("\ufeff").splitlines()[:2000]
    try:
        for record in csv.reader(lines, delimiter=delimiter):
            for cell in record:
                value = " ".join(cell.split())
                if value and not value.isascii():
                    found.setdefault(value)
            if len(found) >= 200:
                break
    except csv.Error:
        pass
    ranked = sorted(found, key=lambda value: not _telling(value, encoding))[:limit]
    return tuple(
        value if len(value) <= SAMPLE_VALUE_CHARS else value[: SAMPLE_VALUE_CHARS - 1] + "…"
        for value in ranked
    )


def _telling(value: str, encoding: str) -> bool:
    for ch in value:
        if ch.isascii():
            continue
        try:
            raw = ch.encode(encoding)
        except (UnicodeEncodeError, LookupError):
            continue
        for other in ("cp1252", "cp1250"):
            if other != encoding and raw.decode(other, errors="replace") != ch:
                return True
    return False
