"""Settings, read once: config file (TOML) < environment < command-line flags.

This is the only module that reads ``os.environ``. The API key comes from the environment
(``CHARGEBEE_API_KEY``) or the config file, never from a flag, and is wrapped in ``Secret`` so
that it cannot leak through ``repr`` or an f-string.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

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


class Secret:
    """A string that never shows itself in ``repr``/``str``; call ``reveal()`` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value. Only the HTTP client should call this."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a command needs, resolved once. Every field documents its meaning."""

    api_key: Secret | None = None
    """Chargebee API key (env ``CHARGEBEE_API_KEY`` or config ``api_key``); never a flag."""
    site: str | None = None
    """Chargebee site name, e.g. ``acme-test`` (env ``CHARGEBEE_SITE``)."""
    base_url_override: str | None = None
    """Full API base URL, e.g. ``http://127.0.0.1:8080/api/v2`` (env ``CHARGEBEE_BASE_URL``)."""
    live: bool = False
    """``--live``: allow a live (non ``-test``) chargebee.com site."""
    rate_per_minute: float | None = None
    """Requests per minute the run may spend; None = the site kind's default (150)."""
    concurrency: int = DEFAULT_CONCURRENCY
    """Requests in flight at once."""
    burst: int = DEFAULT_BURST
    """Token-bucket burst: requests that may go back to back after an idle spell."""
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    """HTTP attempts per row in one run before it is left ``retryable``."""
    max_row_seconds: float = DEFAULT_MAX_ROW_SECONDS
    """Time budget per row for in-run retries."""
    max_throttle_wait: float = DEFAULT_MAX_THROTTLE_WAIT
    """Total seconds a run may spend paused by 429s before it stops (resumable)."""
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
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
    business_entity_id: str | None = None
    """``chargebee-business-entity-id`` header for multi-entity sites."""
    ledger_path: Path = DEFAULT_LEDGER
    report_dir: Path | None = None
    """Where reports go; None = ``reports/<batch>/``."""
    mapping_path: Path | None = None
    encoding: str | None = None
    """Input encoding override; None = detect."""
    delimiter: str | None = None
    """CSV delimiter override; None = sniff."""
    sheet: str | None = None
    """Excel worksheet name or 0-based index; None = the first sheet."""
    chunk_rows: int = 100_000
    """Rows per chunk when streaming input."""
    allow_drift: bool = False
    """Resume even though the input file changed since the batch started."""
    quiet: bool = False
    log_json: bool = False
    """Write JSON-lines events to stderr for automation."""
    export_poll_seconds: float = DEFAULT_EXPORT_POLL_SECONDS
    validation: ValidationRules = field(default_factory=ValidationRules)
    config_file: Path | None = None
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
            "validation": asdict(self.validation),
        }
        blob = json.dumps(relevant, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()


def _file_digest(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


_SETTING_NAMES = frozenset(f.name for f in fields(Settings))
_PATH_FIELDS = frozenset({"ledger_path", "report_dir", "mapping_path"})
_FILE_KEYS = _SETTING_NAMES - {"config_file"}


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
        ConfigError: unreadable config file, unknown keys, bad values, or ``api_key`` as a flag.
    """
    env = os.environ if environ is None else environ
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    if "api_key" in flags:
        raise ConfigError("the API key is never taken from a flag", hint=f"set {ENV_API_KEY}")
    path = config_file or (Path(env[ENV_CONFIG]) if env.get(ENV_CONFIG) else None)
    if path is None and DEFAULT_CONFIG_FILE.is_file():
        path = DEFAULT_CONFIG_FILE
    values: dict[str, Any] = _read_config_file(path) if path else {}
    if env.get(ENV_API_KEY):
        values["api_key"] = env[ENV_API_KEY]
    if env.get(ENV_SITE):
        values["site"] = env[ENV_SITE]
    if env.get(ENV_BASE_URL):
        values["base_url_override"] = env[ENV_BASE_URL]
    values.update(flags)
    return _build(values, path)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if "base_url" in data:
        data["base_url_override"] = data.pop("base_url")
    unknown = set(data) - _FILE_KEYS - {"base_url_override"}
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}")
    return data


def _build(values: dict[str, Any], path: Path | None) -> Settings:
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        if name == "api_key":
            kwargs[name] = Secret(str(value))
        elif name == "validation":
            kwargs[name] = _validation_rules(value, path)
        elif name in _PATH_FIELDS:
            kwargs[name] = Path(value)
        elif name in _SETTING_NAMES:
            kwargs[name] = value
        else:
            raise ConfigError(f"unknown setting {name!r}")
    kwargs["config_file"] = path
    settings = Settings(**kwargs)
    _check_numbers(settings)
    return settings


def _validation_rules(value: Any, path: Path | None) -> ValidationRules:
    if isinstance(value, ValidationRules):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: [validation] must be a table")
    known = {f.name for f in fields(ValidationRules)}
    unknown = set(value) - known
    if unknown:
        raise ConfigError(f"{path}: unknown [validation] key(s) {', '.join(sorted(unknown))}")
    return replace(ValidationRules(), **dict(value))


def _check_numbers(settings: Settings) -> None:
    checks = {
        "rate_per_minute": settings.rate_per_minute is None
        or (math.isfinite(settings.rate_per_minute) and settings.rate_per_minute > 0),
        "concurrency": 1 <= settings.concurrency <= 256,
        "burst": settings.burst >= 1,
        "max_attempts": settings.max_attempts >= 1,
        "chunk_rows": settings.chunk_rows >= 1,
        "http_transport": settings.http_transport in ("lean", "httpx"),
    }
    for name, ok in checks.items():
        if not ok:
            raise ConfigError(f"{name} is out of range: {getattr(settings, name)!r}")
    entity = settings.business_entity_id
    if entity is not None and not (entity.isascii() and entity.isprintable() and len(entity) <= 50):
        raise ConfigError(
            f"business_entity_id must be printable ASCII of at most 50 characters: {entity!r}"
        )
