"""Settings, read once: config file (TOML) < environment < command-line flags.

``Settings`` is a frozen pydantic model: every value is checked against its type and range, and a
bad one is refused with where it came from and its key path (``order-import.toml: [validation]
date_order: must be true or false, got "no"``) as a ``ConfigError`` (exit 2), never a traceback.
Types are strict: text is not a number and not a boolean.

This is the only module that reads ``os.environ``. The API key comes from the environment
(``CHARGEBEE_API_KEY``) or the config file, never from a flag, and is a ``Secret`` (pydantic's
``SecretStr``) so that it cannot leak through ``repr``, ``str``, a model dump or an error message.
"""

from __future__ import annotations

import codecs
import dataclasses
import difflib
import hashlib
import ipaddress
import json
import os
import re
import socket
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    create_model,
)
from pydantic_core import ErrorDetails

from pipeline.errors import ConfigError
from pipeline.models import ValidationRules

SiteKind = Literal["loopback", "test", "live", "custom"]
HttpTransport = Literal["lean", "httpx"]

DEFAULT_CONFIG_FILE = Path("order-import.toml")
DEFAULT_LEDGER = Path("order-import.sqlite")
DEFAULT_RATE_PER_MINUTE = 150.0  # a Chargebee test site and the Starter plan (FACTS §1.1)
DEFAULT_CONCURRENCY = 32  # 3,500/min at ~0.5 s latency; more per loop than 32 degrades
DEFAULT_BURST = 5
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_MAX_ROW_SECONDS = 600.0
DEFAULT_MAX_THROTTLE_WAIT = 1800.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_EXPORT_POLL_SECONDS = 10.0  # Chargebee asks for >= 10 s between export polls (FACTS §7.2)

ENV_API_KEY = "CHARGEBEE_API_KEY"
ENV_SITE = "CHARGEBEE_SITE"
ENV_BASE_URL = "CHARGEBEE_BASE_URL"
ENV_CONFIG = "ORDER_IMPORT_CONFIG"


def is_loopback(host: str | None) -> bool:
    """True for an IP literal in 127.0.0.0/8 or ``::1``, or ``localhost`` resolving only to those.

    Any other name is not loopback, even one that starts with ``127.`` (``127.evil.example``).
    """
    name = (host or "").strip("[]").lower()
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    if name not in ("localhost", "localhost."):
        return False
    try:
        found = {info[4][0] for info in socket.getaddrinfo(name, None)}
    except OSError:
        return False
    addresses = [ipaddress.ip_address(str(a).split("%")[0]) for a in found]
    return bool(addresses) and all(a.is_loopback for a in addresses)


class Secret(SecretStr):
    """A string that never shows itself (``repr``, ``str``, dumps); ``reveal()`` gives it."""

    def reveal(self) -> str:
        """Return the secret value. Only the HTTP client should call this."""
        return self.get_secret_value()


# ---------------------------------------------------------------------------------------------
# Field checks beyond type and range (each raises ValueError with the words the user reads).


def _site_name(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}", value):
        raise ValueError("must be a Chargebee site name such as acme-test (letters, digits, -)")
    return value


def _base_url(value: str | None) -> str | None:
    if value is None:
        return None
    if not (value.isascii() and value.isprintable()) or " " in value:
        raise ValueError("must be a URL such as http://127.0.0.1:8080/api/v2 (no spaces or "
                         "control characters)")  # fmt: skip
    scheme, _, rest = value.partition("://")
    if scheme.lower() not in ("http", "https") or not rest.split("/", 1)[0]:
        raise ValueError("must be an http(s) URL with a host, such as http://127.0.0.1:8080/api/v2")
    return value


def _entity_id(value: str | None) -> str | None:
    if value is not None and not (value.isascii() and value.isprintable() and len(value) <= 50):
        raise ValueError("must be printable ASCII of at most 50 characters")
    return value


def _encoding_name(value: str | None) -> str | None:
    if value is not None:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError("must be a known text encoding such as utf-8 or cp1252") from None
    return value


def _sheet_text(value: Any) -> Any:
    """A worksheet index may be written as a number (``sheet = 0``): the loader takes text."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return value


def _rules(value: Any) -> Any:
    """The ``[validation]`` table, checked key by key, becomes ``ValidationRules``."""
    if isinstance(value, ValidationRules):
        return value
    return ValidationRules(**dict(_ValidationTable.model_validate(value)))


_STRICT = ConfigDict(strict=True, extra="forbid", frozen=True, hide_input_in_errors=True)

_RULE_HINTS = typing.get_type_hints(ValidationRules)
_RULE_FIELDS: dict[str, Any] = {
    f.name: (_RULE_HINTS[f.name], f.default) for f in dataclasses.fields(ValidationRules)
}
_ValidationTable: type[BaseModel] = create_model(
    "ValidationTable", __config__=_STRICT, **_RULE_FIELDS
)
"""The ``[validation]`` table as a strict model, generated from ``ValidationRules``."""

PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
AnyPath = Annotated[Path, Field(strict=False)]
"""Paths are written as text in TOML; pydantic turns the text into a Path."""


class Settings(BaseModel):
    """Everything a command needs, resolved once. Every field documents its meaning."""

    model_config = _STRICT

    api_key: Secret | None = None
    """Chargebee API key (env ``CHARGEBEE_API_KEY`` or config ``api_key``); never a flag."""
    site: Annotated[str | None, AfterValidator(_site_name)] = None
    """Chargebee site name, e.g. ``acme-test`` (env ``CHARGEBEE_SITE``)."""
    base_url_override: Annotated[str | None, AfterValidator(_base_url)] = None
    """Full API base URL, e.g. ``http://127.0.0.1:8080/api/v2`` (env ``CHARGEBEE_BASE_URL``;
    ``base_url`` in the config file)."""
    live: bool = False
    """``--live``: allow a live (non ``-test``) chargebee.com site."""
    rate_per_minute: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """Requests per minute the run may spend; None = the site kind's default (150)."""
    concurrency: Annotated[int, Field(ge=1, le=256)] = DEFAULT_CONCURRENCY
    """Requests in flight at once."""
    burst: Annotated[int, Field(ge=1)] = DEFAULT_BURST
    """Token-bucket burst: requests that may go back to back after an idle spell."""
    max_attempts: Annotated[int, Field(ge=1)] = DEFAULT_MAX_ATTEMPTS
    """HTTP attempts per row in one run before it is left ``retryable``."""
    max_row_seconds: PositiveSeconds = DEFAULT_MAX_ROW_SECONDS
    """Time budget per row for in-run retries."""
    max_throttle_wait: Annotated[float, Field(ge=0, allow_inf_nan=False)] = (
        DEFAULT_MAX_THROTTLE_WAIT
    )
    """Total seconds a run may spend paused by 429s before it stops (resumable)."""
    connect_timeout: PositiveSeconds = DEFAULT_CONNECT_TIMEOUT
    read_timeout: PositiveSeconds = DEFAULT_READ_TIMEOUT
    http_transport: HttpTransport = "lean"
    """``lean`` (our HTTP/1.1 keep-alive pool, ~4x less CPU per request) or ``httpx`` (httpx's
    own transport: the fallback if a proxy or server ever disagrees with the lean one)."""
    trust_env: bool = True
    """Use proxies from the environment (``HTTPS_PROXY``, ``NO_PROXY``) for non-loopback hosts."""
    use_truststore: bool = True
    """Verify TLS with the operating system's certificate store (``truststore``), so a corporate
    TLS-inspecting proxy's CA is trusted; False = the certifi bundle."""
    events_disabled: bool = True
    """Send ``chargebee-event-email``/``-webhook: all-disabled`` (``--send-events`` turns off)."""
    business_entity_id: Annotated[str | None, AfterValidator(_entity_id)] = None
    """``chargebee-business-entity-id`` header for multi-entity sites."""
    ledger_path: AnyPath = DEFAULT_LEDGER
    report_dir: AnyPath | None = None
    """Where reports go; None = ``reports/<batch>/``."""
    mapping_path: AnyPath | None = None
    encoding: Annotated[str | None, AfterValidator(_encoding_name)] = None
    """Input encoding override; None = detect."""
    delimiter: Annotated[str, Field(min_length=1, max_length=3)] | None = None
    """CSV delimiter override (one character, or ``\\t``/``tab``); None = sniff."""
    sheet: Annotated[str | None, BeforeValidator(_sheet_text)] = None
    """Excel worksheet name or 0-based index; None = the first sheet."""
    chunk_rows: Annotated[int, Field(ge=1)] = 100_000
    """Rows per chunk when streaming input."""
    allow_drift: bool = False
    """Resume even though the input file changed since the batch started."""
    preflight: bool = True
    """Before sending, look up the rows' invoices and the site's existing orders in batches
    (``id[in]`` filters, about one request per 100 rows per check) and hold back rows the site
    would refuse (state ``blocked``); ``--no-preflight`` turns it off."""
    eu_vat: bool = False
    """The site has EU VAT configured: ``XI`` (Northern Ireland) is then accepted as a country."""
    quiet: bool = False
    log_json: bool = False
    """Write JSON-lines events to stderr for automation."""
    export_poll_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = (
        DEFAULT_EXPORT_POLL_SECONDS
    )
    validation: Annotated[ValidationRules, BeforeValidator(_rules)] = Field(
        default_factory=ValidationRules
    )
    """Cross-field rules (the config file's ``[validation]`` table)."""
    config_file: AnyPath | None = None
    """The config file that was read, if any."""

    @property
    def base_url(self) -> str:
        """The API base URL, without a trailing slash."""
        if self.base_url_override:
            return self.base_url_override.rstrip("/")
        if self.site:
            return f"https://{self.site}.chargebee.com/api/v2"
        raise ConfigError(
            "no Chargebee site configured",
            hint=f"set {ENV_SITE}=yoursite-test or {ENV_BASE_URL}=http://127.0.0.1:8080/api/v2",
        )

    @property
    def site_kind(self) -> SiteKind:
        """loopback (sandbox), test (``*-test.chargebee.com``), live, or custom (other host)."""
        from urllib.parse import urlsplit

        host = (urlsplit(self.base_url).hostname or "").lower()
        if is_loopback(host):
            return "loopback"
        if host.endswith(".chargebee.com"):
            return "test" if host.split(".")[0].endswith("-test") else "live"
        return "custom"

    @property
    def effective_rate(self) -> float:
        """Requests per minute to use."""
        return self.rate_per_minute if self.rate_per_minute else DEFAULT_RATE_PER_MINUTE

    def require_api_key(self) -> Secret:
        """The API key, or a ConfigError saying where to put it."""
        if self.api_key is None or not self.api_key.reveal():
            raise ConfigError(
                "no API key configured",
                hint=f"export {ENV_API_KEY}=... or put api_key in {DEFAULT_CONFIG_FILE}",
            )
        return self.api_key

    def check_target(self) -> None:
        """Refuse plain http to non-loopback hosts, and a live site without ``--live``."""
        from urllib.parse import urlsplit

        url = urlsplit(self.base_url)
        kind = self.site_kind
        if url.scheme not in ("http", "https"):
            raise ConfigError(f"base URL must be http(s), got {self.base_url!r}")
        if url.scheme == "http" and kind != "loopback":
            raise ConfigError(
                f"plain http:// is only accepted for loopback hosts, not {url.hostname!r}",
                hint="use https:// (TLS verification stays on)",
            )
        if kind == "live" and not self.live:
            raise ConfigError(
                f"{url.hostname} is a LIVE Chargebee site; refusing without --live",
                hint="rehearse on the -test site first; pass --live when you mean it",
            )

    def fingerprint(self) -> str:
        """sha256 of the settings that change what is sent (never the key), for the ledger."""
        relevant = {
            "base_url": self.base_url_override or self.site,
            "events_disabled": self.events_disabled,
            "business_entity_id": self.business_entity_id,
            "mapping": _file_digest(self.mapping_path),
            "validation": dataclasses.asdict(self.validation),
        }
        blob = json.dumps(relevant, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()


def _file_digest(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Reading: file < environment < flags, and errors in the user's words.

_FILE_ALIASES = {"base_url": "base_url_override"}
"""Config-file keys that name a field differently (the file says ``base_url``)."""
_NOT_IN_FILE = frozenset({"config_file", "base_url_override"})
"""Fields the config file does not set by that name (``base_url_override`` is still read)."""
_ENV_FIELDS = {ENV_API_KEY: "api_key", ENV_SITE: "site", ENV_BASE_URL: "base_url_override"}
_CREATE_KEYS = frozenset({"endpoint", "operation", "method", "api", "action"})
"""Keys someone might use to ask for ``POST /orders`` (create); answered with where to go."""
_CREATE_HINT = (
    "POST /orders (create an order) is deprecated by Chargebee and order-import never uses it: "
    "historical orders are imported through POST /orders/import_order (`order-import run FILE "
    "--batch B`), corrections go through `order-import update FILE --batch B`"
)


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build Settings from config file < environment < flags (flags set to None are ignored).

    Args:
        flags: command-line values by Settings field name.
        config_file: explicit ``--config``; else ``$ORDER_IMPORT_CONFIG``; else
            ``./order-import.toml`` when it exists.
        environ: the environment (defaults to ``os.environ``); a seam for tests.

    Raises:
        ConfigError: unreadable config file, unknown keys, values of the wrong type or out of
            range (the message names where the value came from and its key), or ``api_key``
            as a flag.
    """
    env = os.environ if environ is None else environ
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    if "api_key" in flags:
        raise ConfigError("the API key is never taken from a flag", hint=f"set {ENV_API_KEY}")
    path = config_file or (Path(env[ENV_CONFIG]) if env.get(ENV_CONFIG) else None)
    if path is None and DEFAULT_CONFIG_FILE.is_file():
        path = DEFAULT_CONFIG_FILE
    layers: list[tuple[str, dict[str, Any]]] = []
    if path is not None:
        layers.append((str(path), _read_config_file(path)))
    for var, name in _ENV_FIELDS.items():
        if env.get(var):
            layers.append((f"${var}", {name: env[var]}))
    layers.append(("command line", flags))
    values: dict[str, Any] = {"config_file": path}
    origins: dict[str, str] = {}
    for origin, layer in layers:
        values.update(layer)
        origins.update(dict.fromkeys(layer, origin))
    if path is not None:
        # The file is checked whole, even where the environment or a flag overrides a key.
        _validate(
            dict(layers[0][1], config_file=path),
            dict.fromkeys(layers[0][1], str(path)),
            secret=values.get("api_key"),
        )
    return _validate(values, origins, secret=values.get("api_key"))


def _validate(values: dict[str, Any], origins: dict[str, str], *, secret: object) -> Settings:
    """``secret``: the API key from any layer, never shown in an error about another value."""
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise _config_error(exc, values, origins, secret) from None


def _read_config_file(path: Path) -> dict[str, Any]:
    """The config file's keys by field name; unreadable or unparsable files are ConfigErrors."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})",
            hint="TOML files are UTF-8: save the config file as UTF-8",
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if "config_file" in data:
        raise ConfigError(f"{path}: config_file: unknown setting", hint="pass --config instead")
    return {_FILE_ALIASES.get(key, key): value for key, value in data.items()}


def _config_error(
    exc: ValidationError, values: Mapping[str, Any], origins: Mapping[str, str], secret: object
) -> ConfigError:
    """The first problem of a ValidationError as one line: where, which key, what was wrong."""
    first = exc.errors(include_url=False)[0]
    loc = [str(part) for part in first["loc"]]
    name = loc[0]
    origin = origins.get(name, "settings")
    key = _key_path(loc, in_file=origin not in ("command line", "settings"))
    if first["type"] == "extra_forbidden":
        return _unknown_key(origin, key, loc)
    value = _value_at(values, loc)
    if isinstance(value, str) and isinstance(secret, str) and secret.strip():
        value = value.replace(secret, "***")  # a key pasted into another value (a URL's user)
    shown = "" if name == "api_key" or value is _MISSING else f", got {_show(value)}"
    return ConfigError(f"{origin}: {key}: {_expected(first, loc)}{shown}")


def _unknown_key(origin: str, key: str, loc: list[str]) -> ConfigError:
    known = _VALIDATION_KEYS if len(loc) > 1 else _FILE_KEYS
    if loc[-1] in _CREATE_KEYS:
        return ConfigError(f"{origin}: {key}: unknown setting", hint=_CREATE_HINT)
    close = difflib.get_close_matches(loc[-1], sorted(known), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(known))}"
    return ConfigError(f"{origin}: {key}: unknown setting", hint=hint)


def _key_path(loc: list[str], *, in_file: bool) -> str:
    """``concurrency``, ``[validation] date_order`` (the file's words: ``base_url``)."""
    names = {v: k for k, v in _FILE_ALIASES.items()} if in_file else {}
    head = names.get(loc[0], loc[0])
    if len(loc) == 1:
        return head
    return f"[{head}] " + ".".join(loc[1:])


_MISSING = object()


def _value_at(values: Mapping[str, Any], loc: list[str]) -> Any:
    current: Any = values
    for part in loc:
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


def _show(value: Any) -> str:
    """A value as the user wrote it (TOML-like), short."""
    if isinstance(value, str | int | float | bool):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, Mapping):
        text = "a table"
    elif isinstance(value, list | tuple):
        text = "a list"
    else:
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


_TYPE_WORDS = {
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "str": "text",
    "Path": "a path (text)",
    "Secret": "text",
}


def _expected(error: ErrorDetails, loc: list[str]) -> str:
    """What the field wants, in words: ``must be an integer from 1 to 256``."""
    kind = error["type"]
    if kind in ("value_error", "assertion_error"):
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind == "literal_error":
        return f"must be {error.get('ctx', {}).get('expected', '')}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "must be a table"
    if kind in ("string_too_short", "string_too_long") and loc[-1] == "delimiter":
        return "must be one character (or \\t)"
    field = _field_info(loc)
    if field is not None and kind.startswith(_DESCRIBED):
        return f"must be {_describe(field)}"
    return error["msg"].replace("Input should be", "must be")


_DESCRIBED = ("bool_", "int_", "float_", "string_type", "path_", "greater_", "less_", "finite_")
"""Error kinds answered with the field's type and bounds (``must be an integer ≥ 1``)."""


def _field_info(loc: list[str]) -> Any:
    model: type[BaseModel] = _ValidationTable if len(loc) > 1 else Settings
    return model.model_fields.get(loc[-1])


def _describe(field: Any) -> str:
    """``an integer ≥ 1``, ``a number > 0``, ``true or false``, from a field's type and bounds."""
    words = "a valid value"
    bounds = {type(m).__name__: m for m in field.metadata}
    for arg in typing.get_args(field.annotation) or (field.annotation,):
        if typing.get_origin(arg) is Annotated:
            arg, *extras = typing.get_args(arg)
            for extra in extras:
                bounds.update({type(m).__name__: m for m in getattr(extra, "metadata", [extra])})
        if getattr(arg, "__name__", None) in _TYPE_WORDS:
            words = _TYPE_WORDS[arg.__name__]
            break
    low, high = bounds.get("Ge"), bounds.get("Le")
    if low is not None and high is not None:
        return f"{words} from {low.ge} to {high.le}"
    if low is not None:
        return f"{words} ≥ {low.ge}"
    if "Gt" in bounds:
        return f"{words} > {bounds['Gt'].gt}"
    return words


_FILE_KEYS = (frozenset(Settings.model_fields) - _NOT_IN_FILE) | frozenset(_FILE_ALIASES)
_VALIDATION_KEYS = frozenset(_ValidationTable.model_fields)
