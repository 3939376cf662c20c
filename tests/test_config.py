"""Settings: precedence (file < env < flags), the secret key, site kinds and the target guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import DEFAULT_CONCURRENCY, Secret, load_settings
from pipeline.errors import ConfigError
from pipeline.models import ValidationRules

LOOPBACK = "http://127.0.0.1:8080/api/v2"


def write(path: Path, text: str) -> Path:
    """Write a config file."""
    path.write_text(text, encoding="utf-8")
    return path


def test_flags_beat_environment_beat_config_file(tmp_path):
    """A flag overrides the environment, which overrides the config file."""
    config = write(tmp_path / "c.toml", 'site = "file-test"\nrate_per_minute = 100\nburst = 7\n')
    env = {"CHARGEBEE_SITE": "env-test", "CHARGEBEE_API_KEY": "k"}
    settings = load_settings({"rate_per_minute": 900.0}, config_file=config, environ=env)
    assert settings.site == "env-test"
    assert settings.rate_per_minute == 900.0
    assert settings.burst == 7
    assert settings.config_file == config


def test_api_key_is_never_a_flag():
    """Passing the key as a flag is refused."""
    with pytest.raises(ConfigError, match="never taken from a flag"):
        load_settings({"api_key": "sk_live"}, environ={})


def test_secret_hides_itself():
    """The key never shows in repr, str or an f-string; reveal() gives it to the client."""
    settings = load_settings(environ={"CHARGEBEE_API_KEY": "SENTINEL-123"})
    assert settings.api_key == Secret("SENTINEL-123")
    assert "SENTINEL" not in repr(settings)
    assert "SENTINEL" not in f"{settings.api_key}"
    assert settings.require_api_key().reveal() == "SENTINEL-123"


def test_missing_key_is_a_config_error_with_a_hint():
    """No key anywhere: a ConfigError saying where to put it."""
    with pytest.raises(ConfigError, match="no API key") as info:
        load_settings(environ={}).require_api_key()
    assert "CHARGEBEE_API_KEY" in str(info.value)


@pytest.mark.parametrize(
    ("env", "kind"),
    [
        ({"CHARGEBEE_BASE_URL": LOOPBACK}, "loopback"),
        ({"CHARGEBEE_SITE": "acme-test"}, "test"),
        ({"CHARGEBEE_SITE": "acme"}, "live"),
        ({"CHARGEBEE_BASE_URL": "https://proxy.example.org/api/v2"}, "custom"),
    ],
)
def test_site_kind(env, kind):
    """The site kind comes from the host: loopback, *-test.chargebee.com, live, or custom."""
    assert load_settings(environ=env).site_kind == kind


def test_live_site_needs_live_flag():
    """A live chargebee.com site is refused without --live and accepted with it."""
    with pytest.raises(ConfigError, match="LIVE"):
        load_settings(environ={"CHARGEBEE_SITE": "acme"}).check_target()
    load_settings({"live": True}, environ={"CHARGEBEE_SITE": "acme"}).check_target()


def test_plain_http_only_for_loopback():
    """http:// to a non-loopback host is refused; to 127.0.0.1 it is fine."""
    with pytest.raises(ConfigError, match="loopback"):
        load_settings(environ={"CHARGEBEE_BASE_URL": "http://10.0.0.5/api/v2"}).check_target()
    load_settings(environ={"CHARGEBEE_BASE_URL": LOOPBACK}).check_target()


def test_no_site_is_a_config_error():
    """Without a site or base URL the base URL cannot be formed."""
    with pytest.raises(ConfigError, match="no Chargebee site"):
        _ = load_settings(environ={}).base_url


def test_unknown_keys_and_bad_toml_are_config_errors(tmp_path):
    """Unknown settings and unparsable files name the file."""
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(config_file=write(tmp_path / "a.toml", "colour = 1\n"), environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=write(tmp_path / "b.toml", "x = [\n"), environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(config_file=tmp_path / "missing.toml", environ={})


def test_validation_table_becomes_rules(tmp_path):
    """[validation] keys override the rule defaults; unknown rule keys are refused."""
    good = write(
        tmp_path / "v.toml", '[validation]\ndate_order = false\ndocument_number_prefix = "OLD"\n'
    )
    rules = load_settings(config_file=good, environ={}).validation
    assert rules == ValidationRules(date_order=False, document_number_prefix="OLD")
    bad = write(tmp_path / "w.toml", "[validation]\nnonsense = true\n")
    with pytest.raises(ConfigError, match="nonsense"):
        load_settings(config_file=bad, environ={})


def test_out_of_range_numbers_are_refused():
    """Zero concurrency or a negative rate is a configuration error."""
    with pytest.raises(ConfigError, match="concurrency"):
        load_settings({"concurrency": 0}, environ={})
    with pytest.raises(ConfigError, match="rate_per_minute"):
        load_settings({"rate_per_minute": -1.0}, environ={})


def test_defaults_and_fingerprint_exclude_the_key():
    """Defaults apply; the fingerprint changes with what is sent but never with the key."""
    a = load_settings(environ={"CHARGEBEE_API_KEY": "one", "CHARGEBEE_BASE_URL": LOOPBACK})
    b = load_settings(environ={"CHARGEBEE_API_KEY": "two", "CHARGEBEE_BASE_URL": LOOPBACK})
    c = load_settings(
        {"events_disabled": False},
        environ={"CHARGEBEE_API_KEY": "one", "CHARGEBEE_BASE_URL": LOOPBACK},
    )
    assert a.concurrency == DEFAULT_CONCURRENCY
    assert a.effective_rate == 150.0
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()


def test_http_transport_setting_selects_the_transport():
    """lean (default) uses LeanTransport, httpx keeps httpx's own pool, anything else is refused."""
    from pipeline.api.client import _default_transport
    from pipeline.api.transport import LeanTransport

    env = {"CHARGEBEE_BASE_URL": LOOPBACK}
    assert isinstance(_default_transport(load_settings(environ=env)), LeanTransport)
    assert _default_transport(load_settings({"http_transport": "httpx"}, environ=env)) is None
    with pytest.raises(ConfigError, match="http_transport"):
        load_settings({"http_transport": "curl"}, environ=env)


def test_infinite_rate_and_non_ascii_business_entity_are_refused():
    """--rate inf and a non-ASCII business entity id are configuration errors, not tracebacks."""
    with pytest.raises(ConfigError, match="rate_per_minute"):
        load_settings({"rate_per_minute": float("inf")}, environ={})
    with pytest.raises(ConfigError, match="business_entity_id"):
        load_settings({"business_entity_id": "acme-ü"}, environ={})
