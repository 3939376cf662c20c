"""The hint of a first run that failed after sending had started (``runner._sent_before``): only
an unusable later part of the input asks for a fixed file and ``--allow-drift``; any other
failure is resumed by the same command."""

from __future__ import annotations

from pipeline.errors import InputError, LedgerError
from pipeline.send.runner import _sent_before


def test_a_bad_later_chunk_asks_for_a_fixed_file_and_allow_drift() -> None:
    err = InputError("not readable as CSV", path="o.csv", line=120_001, hint="check quoting")
    _sent_before(err, 1234)
    assert err.hint is not None
    assert "1,234 row(s)" in err.hint
    assert "--allow-drift" in err.hint
    assert err.hint.endswith("; check quoting")


def test_a_ledger_failure_is_resumed_by_the_same_command_without_allow_drift() -> None:
    err = LedgerError("disk full")
    _sent_before(err, 7)
    assert err.hint is not None
    assert "7 row(s)" in err.hint
    assert "--allow-drift" not in err.hint
    assert "run the same command again to resume" in err.hint
