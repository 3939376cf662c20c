"""Chargebee-shaped error answers (FACTS §2): one exception the handlers raise, one body builder.

Every body carries ``message, type, api_error_code`` (+ ``param`` when one parameter is at fault)
and the legacy ``error_code, error_msg, error_param, http_status_code``.
"""

from __future__ import annotations

from typing import Any


class SandboxError(Exception):
    """An API error answer: status, body fields and extra headers.

    Args:
        status: HTTP status code.
        api_error_code: The code clients branch on.
        message: Developer-facing text; for a parameter error it reads ``"<param> : <msg>"``.
        error_type: ``invalid_request`` | ``operation_failed`` | ``payment`` | None (untyped).
        param: The one request parameter at fault, in request notation (``shipping_address[zip]``).
        error_code: Legacy, finer-grained code; defaults to ``api_error_code``.
        headers: Extra response headers (e.g. ``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        api_error_code: str,
        message: str,
        *,
        error_type: str | None = "invalid_request",
        param: str | None = None,
        error_code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.api_error_code = api_error_code
        self.message = message
        self.error_type = error_type
        self.param = param
        self.error_code = error_code or api_error_code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body Chargebee would send."""
        msg = self.message
        if self.param and msg.startswith(f"{self.param} : "):
            msg = msg[len(self.param) + 3 :]
        body: dict[str, Any] = {"message": self.message}
        if self.error_type is not None:
            body["type"] = self.error_type
        body["api_error_code"] = self.api_error_code
        if self.param is not None:
            body["param"] = self.param
        body["error_code"] = self.error_code
        body["error_msg"] = msg
        if self.param is not None:
            body["error_param"] = self.param
        body["http_status_code"] = self.status
        return body


def param_required(param: str) -> SandboxError:
    """400: a required parameter is missing or blank (the shape observed in GH-PY-54)."""
    return SandboxError(
        400,
        "invalid_request",
        f"{param} : cannot be blank",
        param=param,
        error_code="param_required",
    )


def wrong_value(param: str, detail: str) -> SandboxError:
    """400 ``param_wrong_value``: the value fails the spec (enum, length, format, range)."""
    return SandboxError(400, "param_wrong_value", f"{param} : {detail}", param=param)


def unknown_param(param: str) -> SandboxError:
    """400 ``invalid_request``: a parameter this operation does not accept."""
    return SandboxError(
        400,
        "invalid_request",
        f"{param} : is not a valid parameter for this operation",
        param=param,
        error_code="param_not_allowed",
    )


def duplicate(param: str, value: str) -> SandboxError:
    """400 ``duplicate_entry``: a value that must be unique on the site already exists."""
    return SandboxError(
        400, "duplicate_entry", f"{param} : The value {value} is already present.", param=param
    )


def not_found(what: str, value: str, param: str | None = None) -> SandboxError:
    """404 ``resource_not_found``."""
    return SandboxError(
        404,
        "resource_not_found",
        f"Sorry, we couldn't find that resource ({what} {value})",
        param=param,
    )


def auth_failed() -> SandboxError:
    """401 ``api_authentication_failed`` (untyped); legacy code as in the 2014 SDK samples."""
    return SandboxError(
        401,
        "api_authentication_failed",
        "Sorry, authentication failed. Invalid api key",
        error_type=None,
        error_code="api_authentication_invalid_key",
    )


def rate_limited(retry_after: int) -> SandboxError:
    """429 ``api_request_limit_exceeded`` with an integer-seconds ``Retry-After``."""
    return SandboxError(
        429,
        "api_request_limit_exceeded",
        "Sorry, access has been blocked temporarily due to request count exceeding "
        "acceptable limits.",
        error_type="operation_failed",
        headers={"retry-after": str(max(1, retry_after))},
    )


def lock_timeout(order_id: str) -> SandboxError:
    """429 ``lock_timeout``: another request is writing the same order right now."""
    return SandboxError(
        429,
        "lock_timeout",
        f"Multiple concurrent requests to the same resource (order {order_id}); retry later.",
        error_type="operation_failed",
    )


def idempotency_mismatch(key: str) -> SandboxError:
    """422 ``unable_to_process_request``: idempotency key reused with a different request."""
    return SandboxError(
        422,
        "unable_to_process_request",
        f"The idempotency key {key} was already used for a request with different parameters.",
        error_code="idempotency_key_reused",
    )


def temporary_error() -> SandboxError:
    """503 ``internal_temporary_error`` (retry with backoff); nothing was stored."""
    return SandboxError(
        503,
        "internal_temporary_error",
        "Sorry, something went wrong when trying to process the request. Please retry.",
        error_type="operation_failed",
    )


def internal_error() -> SandboxError:
    """500 ``internal_error``."""
    return SandboxError(
        500,
        "internal_error",
        "Sorry, something went wrong when trying to process the request.",
        error_type="operation_failed",
    )
