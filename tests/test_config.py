"""Settings: precedence (file < env < flags), the secret key, site kinds and the target guard."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

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


def test_http_transport_setting_is_checked():
    """http_transport is one of the known transports; anything else names the key and value."""
    env = {"CHARGEBEE_BASE_URL": LOOPBACK}
    assert load_settings(environ=env).http_transport == "lean"
    assert load_settings({"http_transport": "httpx"}, environ=env).http_transport == "httpx"
    with pytest.raises(
        ConfigError, match=r"http_transport: must be 'lean' or 'httpx', got \"curl\""
    ):
        load_settings({"http_transport": "curl"}, environ=env)


def test_infinite_rate_and_non_ascii_business_entity_are_refused():
    """--rate inf and a non-ASCII business entity id are configuration errors, not tracebacks."""
    with pytest.raises(ConfigError, match="rate_per_minute"):
        load_settings({"rate_per_minute": float("inf")}, environ={})
    with pytest.raises(ConfigError, match="business_entity_id"):
        load_settings({"business_entity_id": "acme-ü"}, environ={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('concurrency = "32"\n', r'concurrency: must be an integer from 1 to 256, got "32"'),
        ("concurrency = 32.5\n", r"concurrency: must be an integer from 1 to 256, got 32.5"),
        ("concurrency = 1000\n", r"concurrency: must be an integer from 1 to 256, got 1000"),
        ('rate_per_minute = "fast"\n', r'rate_per_minute: must be a number > 0, got "fast"'),
        ("rate_per_minute = true\n", r"rate_per_minute: must be a number > 0, got true"),
        ("rate_per_minute = nan\n", r"rate_per_minute: must be a number > 0"),
        ("burst = 0\n", r"burst: must be an integer ≥ 1, got 0"),
        ("read_timeout = -1\n", r"read_timeout: must be a number > 0, got -1"),
        ('live = "yes"\n', r'live: must be true or false, got "yes"'),
        ('[validation]\ndate_order = "no"\n', r"\[validation\] date_order: must be true or false"),
        ("[validation]\nmin_year = 19.9\n", r"\[validation\] min_year: must be an integer"),
        ("validation = 5\n", r"validation: must be a table, got 5"),
        ("ledger_path = 5\n", r"ledger_path: must be a path \(text\), got 5"),
        ('encoding = "klingon"\n', r"encoding: must be a known text encoding"),
        ('delimiter = ""\n', r"delimiter: must be one character"),
        ('site = "evil.example/x#"\n', r"site: must be a Chargebee site name"),
        ("base_url = 5\n", r"base_url: must be text, got 5"),
    ],
)
def test_wrong_types_and_ranges_name_the_file_key_and_value(tmp_path, text, message):
    """Strict types: text is no number and no boolean; the message says file, key, want, got."""
    path = write(tmp_path / "order-import.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=path, environ={})
    assert str(info.value).startswith(f"{path}: ")
    assert re.search(message, str(info.value)), str(info.value)


def test_unknown_keys_suggest_the_near_name_and_create_points_to_import_order(tmp_path):
    """A typo gets a suggestion; asking for POST /orders gets where orders are imported."""
    typo = write(tmp_path / "a.toml", "concurency = 3\n")
    with pytest.raises(ConfigError, match=r"concurency: unknown setting") as info:
        load_settings(config_file=typo, environ={})
    assert "did you mean 'concurrency'" in str(info.value)
    nested = write(tmp_path / "b.toml", "[validation]\ndate_ordr = false\n")
    with pytest.raises(ConfigError, match=r"\[validation\] date_ordr: unknown setting"):
        load_settings(config_file=nested, environ={})
    create = write(tmp_path / "c.toml", 'endpoint = "create"\n')
    with pytest.raises(ConfigError, match="endpoint: unknown setting") as info:
        load_settings(config_file=create, environ={})
    assert "deprecated" in str(info.value)
    assert "import_order" in str(info.value)
    with pytest.raises(ConfigError, match="config_file: unknown setting"):
        load_settings(config_file=write(tmp_path / "d.toml", 'config_file = "x"\n'), environ={})


def test_environment_and_flag_values_say_where_they_came_from():
    """A bad value from the environment names the variable; from a flag, the command line."""
    with pytest.raises(ConfigError, match=r"^\$CHARGEBEE_SITE: site: must be a Chargebee site"):
        load_settings(environ={"CHARGEBEE_SITE": "a b"})
    with pytest.raises(ConfigError, match=r"^command line: concurrency: must be an integer"):
        load_settings({"concurrency": 0}, environ={})


def test_non_utf8_and_syntax_errors_name_the_file_and_line(tmp_path):
    """A latin-1 file and a TOML syntax error are ConfigErrors with the file and the line."""
    latin = tmp_path / "latin.toml"
    latin.write_bytes('site = "acme-test"\n# Genève\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin.toml: line 2: not UTF-8 text \(byte 0xe8\)"):
        load_settings(config_file=latin, environ={})
    broken = write(tmp_path / "broken.toml", 'site = "acme-test"\nconcurrency = = 3\n')
    with pytest.raises(ConfigError, match=r"broken.toml: not valid TOML: .*line 2"):
        load_settings(config_file=broken, environ={})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(config_file=tmp_path, environ={})


def test_utf8_bom_and_numeric_sheet_are_accepted(tmp_path):
    """A BOM written by Windows editors is fine; ``sheet = 0`` means the first sheet."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b'site = "acme-test"\nsheet = 0\nledger_path = "l.sqlite"\n')
    settings = load_settings(config_file=path, environ={})
    assert settings.site == "acme-test"
    assert settings.sheet == "0"
    assert settings.ledger_path == Path("l.sqlite")


def test_the_key_never_shows_in_dumps_or_errors(tmp_path):
    """repr, str, model dumps and a type error about the key never carry its value."""
    settings = load_settings(environ={"CHARGEBEE_API_KEY": "SENTINEL-123"})
    for text in (
        repr(settings),
        str(settings),
        str(settings.model_dump()),
        settings.model_dump_json(),
        f"{settings.api_key}",
    ):
        assert "SENTINEL" not in text
    path = write(tmp_path / "k.toml", 'api_key = ["SENTINEL-123"]\n')
    with pytest.raises(ConfigError, match="api_key: must be text") as info:
        load_settings(config_file=path, environ={})
    assert "SENTINEL" not in str(info.value)


def test_settings_are_frozen():
    """Settings are read once: a command cannot change them half-way."""
    settings = load_settings(environ={})
    with pytest.raises(ValidationError):
        settings.concurrency = 5


def test_a_bad_file_value_is_refused_even_when_overridden(tmp_path):
    """The file is checked whole: a flag or env value overriding a bad key hides nothing."""
    path = write(tmp_path / "c.toml", 'concurrency = "32"\napi_key = ["k"]\n')
    with pytest.raises(ConfigError, match=r"c.toml: (api_key|concurrency): must be"):
        load_settings({"concurrency": 4}, config_file=path, environ={"CHARGEBEE_API_KEY": "k"})


DOCS = Path(__file__).resolve().parent.parent


def test_every_config_example_in_the_docs_loads(tmp_path):
    """Each ```toml block that is an order-import.toml (README, docs/*.md) is accepted."""
    pages = [DOCS / "README.md", *sorted((DOCS / "docs").glob("*.md"))]
    blocks = [
        block
        for page in pages
        for block in re.findall(
            r"```toml\n(# order-import.toml\n.*?)```", page.read_text("utf-8"), re.S
        )
    ]
    assert len(blocks) >= 2
    for block in blocks:
        settings = load_settings(
            config_file=write(tmp_path / "order-import.toml", block), environ={}
        )
        assert settings.site == "acme-test"


def test_docs_configuration_lists_every_file_key():
    """docs/configuration.md names every key the config file accepts, and no other."""
    from pipeline.config import _FILE_KEYS, Settings

    text = (DOCS / "docs" / "configuration.md").read_text("utf-8")
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", text, re.M))
    assert documented == set(_FILE_KEYS) - {"validation", "base_url_override"}
    assert set(Settings.model_fields) >= documented - {"base_url"}


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:8080/api/v2\nX", "no spaces or control characters"),
        ("http://127.0.0.1:8080/api v2", "no spaces or control characters"),
        ("ftp://127.0.0.1/api/v2", "an http(s) URL with a host"),
        ("http:///api/v2", "an http(s) URL with a host"),
        ("127.0.0.1:8080/api/v2", "an http(s) URL with a host"),
    ],
)
def test_an_unusable_base_url_is_a_config_error_naming_its_source(url, words):
    """A base URL httpx cannot use is refused when settings are read (it used to surface as an
    httpx.InvalidURL traceback at the first request)."""
    with pytest.raises(ConfigError, match=re.escape("$CHARGEBEE_BASE_URL: base_url: must")) as info:
        load_settings(environ={"CHARGEBEE_BASE_URL": url})
    assert words in str(info.value)


def test_a_key_inside_a_refused_base_url_is_not_shown():
    """A URL carrying the key (as its user part) is refused with the key replaced by ***."""
    key = "test_" + "k" * 70  # longer than a shown value: no cut-off prefix of it either
    with pytest.raises(ConfigError) as info:
        load_settings(
            environ={"CHARGEBEE_API_KEY": key, "CHARGEBEE_BASE_URL": f"http://{key}@h/\n"}
        )
    assert "http://***@h/" in str(info.value)
    assert "test_kkkk" not in str(info.value)
