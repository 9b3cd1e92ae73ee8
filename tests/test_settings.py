"""Settings: defaults, HATD_* environment overrides, and clear refusals of bad values."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from hatd.cli import SETTINGS_HELP
from hatd.settings import CONFIG_DIR, DEFAULT_FILE, Settings, SettingsError, load

REPO = Path(__file__).resolve().parent.parent


def test_defaults_are_the_documented_ones():
    settings = load(environ={})
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.data_dir == Path("./var")
    assert settings.database_url == ""
    assert settings.embedded_database == "hatd"
    assert settings.token_ttl == 7200
    assert settings.login_burst == 10
    assert settings.login_refill_seconds == 2.0
    assert settings.address == "http://127.0.0.1:8080"
    assert settings.issuer == "127.0.0.1:8080"


def test_environment_overrides_and_coerces():
    settings = load(
        environ={
            "HATD_PORT": "9000",
            "HATD_HAT_ADDRESS": "https://alice.example/",
            "HATD_CORS_ORIGINS": "https://a.example, https://b.example",
            "HATD_LOGIN_REFILL_SECONDS": "0.5",
            "HATD_DATA_DIR": "/srv/hatd",
        }
    )
    assert settings.port == 9000
    assert settings.address == "https://alice.example"
    assert settings.issuer == "alice.example"
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.login_refill_seconds == 0.5
    assert settings.data_dir == Path("/srv/hatd")


def test_config_file_named_by_hatd_config(tmp_path):
    extra = tmp_path / "hat.toml"
    extra.write_text('port = 7000\ncors_origins = ["https://x.example"]\n')
    settings = load(environ={"HATD_CONFIG": str(extra), "HATD_TOKEN_TTL": "60"})
    assert settings.port == 7000
    assert settings.cors_origins == ("https://x.example",)
    assert settings.token_ttl == 60


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"HATD_PORT": "eighty"}, "port = 'eighty' is not a valid int"),
        ({"HATD_PORT": "70000"}, "port must be between 1 and 65535"),
        ({"HATD_TOKEN_TTL": "0"}, "token_ttl must be a positive number of seconds"),
        ({"HATD_BCRYPT_ROUNDS": "3"}, "bcrypt_rounds must be between 4 and 14"),
        ({"HATD_BCRYPT_ROUNDS": "15"}, "bcrypt_rounds must be between 4 and 14"),
        ({"HATD_LOG_LEVEL": "loud"}, "log_level must be one of debug, info, warning, error"),
        (
            {"HATD_EMBEDDED_DATABASE": "Alice"},
            "embedded_database must be a HAT name: lowercase letters, digits, underscores, at most 32",
        ),
        ({"HATD_CONFIG": "/no/such/file.toml"}, "config file /no/such/file.toml does not exist"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(environ, message):
    with pytest.raises(SettingsError) as error:
        load(environ=environ)
    assert str(error.value) == message


def test_unknown_keys_in_a_config_file_are_refused(tmp_path):
    extra = tmp_path / "typo.toml"
    extra.write_text("prot = 7000\n")
    with pytest.raises(SettingsError, match="unknown setting"):
        load(environ={"HATD_CONFIG": str(extra)})


def test_settings_are_frozen():
    settings = load(environ={})
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize("name", [field.name for field in dataclasses.fields(Settings)])
def test_every_setting_is_documented_in_the_config_the_help_and_the_readme(name):
    """A setting is a public contract: a new or renamed one without its documentation fails here."""
    variable = f"HATD_{name.upper()}"
    assert re.search(rf"^{name} = ", DEFAULT_FILE.read_text(), re.MULTILINE)
    assert re.search(rf"\b{variable}\b", SETTINGS_HELP)
    assert f"`{variable}`" in (REPO / "README.md").read_text()


def test_repr_shows_no_secret():
    """Settings end up in logs and tracebacks: the DSN's password and the other secrets stay out."""
    settings = load(
        environ={
            "HATD_DATABASE_URL": "postgresql://alice:dsn-secret-3141@db.example:5432/alice",
            "HATD_OWNER_PASSWORD": "owner-secret-2718",
            "HATD_PLATFORM_PASSWORD": "platform-secret-1618",
            "HATD_METRICS_TOKEN": "metrics-secret-1414",
        }
    )
    shown = repr(settings)
    assert "port=8080" in shown
    for secret in ("dsn-secret-3141", "owner-secret-2718", "platform-secret-1618", "metrics-secret-1414"):
        assert secret not in shown
    assert "db.example" not in shown


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("HTTPS://Alice.Example/", "https://alice.example"),
        ("http://alice.example:8081/hat/", "http://alice.example:8081/hat"),
        ("  https://alice.example  ", "https://alice.example"),
        ("https://Bücher.Example/Hat/", "https://xn--bcher-kva.example/Hat"),
        ("https://alice.example:443", "https://alice.example"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("", ""),
    ],
)
def test_the_hat_address_is_kept_normalised(given, kept):
    settings = load(files=(CONFIG_DIR / "test.toml",), environ={"HATD_HAT_ADDRESS": given})
    assert settings.hat_address == kept
    if kept:
        assert settings.address == kept
        assert settings.issuer == kept.split("://")[1]


@pytest.mark.parametrize(
    "given",
    [
        "alice.example",
        "ftp://alice.example",
        "https://",
        "https://u:p@alice.example",
        "https://a.example/?x=1",
        "https://a.example/#f",
        "https://a.example:99999",
    ],
)
def test_a_hat_address_that_is_not_an_http_url_is_refused(given):
    with pytest.raises(SettingsError, match=r"hat_address: .* is not a HAT address"):
        load(files=(CONFIG_DIR / "test.toml",), environ={"HATD_HAT_ADDRESS": given})
