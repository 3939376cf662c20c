"""The one exception tree of order-import. Imports nothing from the package.

    PipelineError                      base; every error the tool raises on purpose
    ├── ConfigError                    configuration unusable (exit 2, nothing sent)
    ├── InputError                     input file unusable (exit 2, nothing sent); path/line/column
    ├── LedgerError                    ledger unreadable, wrong version, disk write failed
    │   └── DriftError                 the input changed since the batch started (resume refused)
    ├── ApiError                       Chargebee answered with an error (or did not answer)
    │   ├── TransientApiError          retry with backoff: 429, 5xx, timeouts, dropped connections
    │   │   ├── RateLimitedError       429; carries ``retry_after`` seconds when sent
    │   │   └── ThrottleBudgetExceeded the run spent its whole 429 wait budget; stop, resume later
    │   ├── PermanentApiError          other 4xx: recorded against the row, never retried blindly
    │   ├── AuthError                  401/403: the whole run stops at once
    │   └── UnexpectedResponseError    a 2xx that cannot be trusted: the outcome is unknown

Per-row problems (a bad cell, a 400 for one order) are *data*, not exceptions: they end up in
the ledger and the reports. Only run-level problems propagate as these exceptions.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error order-import raises on purpose.

    Context travels as attributes, so callers can render it without parsing text.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nHint: {self.hint}"


class ConfigError(PipelineError):
    """The configuration (flags, env, config file, mapping file) is unusable; nothing was sent."""

    exit_code = 2


class InputError(PipelineError):
    """The input file is unusable as a whole (missing, unreadable, empty, no required columns).

    Attributes:
        path: the file at fault.
        line: 1-based source line, when one line is at fault.
        column: the source column, when one column is at fault.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ", ".join(
            part
            for part in (
                path,
                f"line {line}" if line is not None else None,
                f"column {column!r}" if column is not None else None,
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.path = path
        self.line = line
        self.column = column


class LedgerError(PipelineError):
    """The ledger cannot be read or written (wrong schema version, disk full, locked)."""

    exit_code = 2


class DriftError(LedgerError):
    """The input file differs from the one the batch was started with."""


class ApiError(PipelineError):
    """Chargebee answered with an error body, or did not answer at all.

    Attributes:
        status_code: HTTP status, or None when no response arrived.
        api_error_code: Chargebee's ``api_error_code`` (or a synthetic one such as ``timeout``).
        param: the parameter Chargebee blamed, when it named one.
        error_code: the legacy, finer-grained ``error_code`` when present.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        api_error_code: str | None = None,
        param: str | None = None,
        error_code: str | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.api_error_code = api_error_code
        self.param = param
        self.error_code = error_code
        self.error_type = error_type
        self.attempts: int | None = None
        """HTTP attempts made before this error was final (set by the retry loop)."""


class TransientApiError(ApiError):
    """Worth retrying: 429, 500, 502, 503, 504, timeouts and dropped connections."""


class RateLimitedError(TransientApiError):
    """HTTP 429. ``retry_after`` is the server's Retry-After in seconds, when it sent one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ThrottleBudgetExceeded(TransientApiError):
    """The run has waited out 429s for longer than ``max_throttle_wait``; it stops (resumable)."""


class PermanentApiError(ApiError):
    """A 4xx other than 401/403/429: the row is wrong for Chargebee; fix the data."""


class AuthError(ApiError):
    """401 or 403: the API key is wrong or lacks rights. The run stops at once."""

    exit_code = 2


class UnexpectedResponseError(ApiError):
    """A 2xx answer that cannot be trusted: not JSON, too large, no order, or about another
    order. Whether the request took effect is unknown, so it is not retried blindly: the row is
    left in doubt and looked up (``GET /orders/{id}``) like a row after a crash."""


def first_error(
    group: BaseExceptionGroup[BaseException], *kinds: type[BaseException]
) -> BaseException | None:
    """The exception a task group's failure is about: the first (in order, depth first through
    nested groups) that is an instance of ``kinds[0]``, else of ``kinds[1]``…; None when none is.
    """
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            pending[:0] = exc.exceptions
        else:
            leaves.append(exc)
    for kind in kinds:
        for leaf in leaves:
            if isinstance(leaf, kind):
                return leaf
    return None
