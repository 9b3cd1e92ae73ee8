"""Settings: defaults, HATD_* environment overrides, and clear refusals of bad values."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hatd import settings as settings_module
from hatd.cli import parser
from hatd.settings import (
    CONFIG_DIR,
    DEFAULT_FILE,
    Settings,
    SettingsError,
    documentation,
    load,
    shown_default,
    with_readme_table,
)

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


# Every public setting with its default, written out by hand: renaming a HATD_* variable or
# changing a default (by an edit of config/default.toml or of Settings) fails here.
PUBLIC_DEFAULTS = {
    "HATD_HOST": "127.0.0.1",
    "HATD_PORT": 8080,
    "HATD_HAT_ADDRESS": "",
    "HATD_DATA_DIR": Path("var"),
    "HATD_DATABASE_URL": "",
    "HATD_EMBEDDED_DATABASE": "hatd",
    "HATD_POOL_MIN_SIZE": 2,
    "HATD_POOL_MAX_SIZE": 10,
    "HATD_TOKEN_TTL": 7200,
    "HATD_MAX_BODY": 10485760,
    "HATD_BCRYPT_ROUNDS": 12,
    "HATD_LOGIN_BURST": 10,
    "HATD_LOGIN_REFILL_SECONDS": 2.0,
    "HATD_CORS_ORIGINS": ("*",),
    "HATD_TRUSTED_PROXIES": (),
    "HATD_OWNER_NAME": "owner",
    "HATD_OWNER_EMAIL": "owner@localhost",
    "HATD_OWNER_PASSWORD": "",
    "HATD_PLATFORM_NAME": "platform",
    "HATD_PLATFORM_EMAIL": "platform@localhost",
    "HATD_PLATFORM_PASSWORD": "",
    "HATD_LOG_LEVEL": "info",
    "HATD_VALUES_LIMIT": 1000,
    "HATD_VALUES_MAX_LIMIT": 10000,
    "HATD_METRICS_TOKEN": "",
    "HATD_SESSION_TTL": 43200,
    "HATD_LOGIN_TOKEN_TTL": 86400,
    "HATD_PAGE_LOGIN_BURST": 5,
    "HATD_PAGE_LOGIN_REFILL_SECONDS": 12.0,
    "HATD_APPROVED_SERVICES": (),
    "HATD_BACKUP_DIR": "",
    "HATD_BACKUP_INTERVAL": 86400,
    "HATD_BACKUP_FULL_INTERVAL": 604800,
    "HATD_BACKUP_KEEP_DAILY": 14,
    "HATD_BACKUP_KEEP_WEEKLY": 13,
}
# A value for each variable other than its default, as the environment gives it.
OTHER_VALUES = {
    "HATD_HOST": ("127.0.0.2", "127.0.0.2"),
    "HATD_PORT": ("9001", 9001),
    "HATD_HAT_ADDRESS": ("https://alice.example", "https://alice.example"),
    "HATD_DATA_DIR": ("/srv/hat", Path("/srv/hat")),
    "HATD_DATABASE_URL": ("postgresql://a@b/c", "postgresql://a@b/c"),
    "HATD_EMBEDDED_DATABASE": ("alice", "alice"),
    "HATD_POOL_MIN_SIZE": ("3", 3),
    "HATD_POOL_MAX_SIZE": ("11", 11),
    "HATD_TOKEN_TTL": ("60", 60),
    "HATD_MAX_BODY": ("1000", 1000),
    "HATD_BCRYPT_ROUNDS": ("5", 5),
    "HATD_LOGIN_BURST": ("3", 3),
    "HATD_LOGIN_REFILL_SECONDS": ("0.5", 0.5),
    "HATD_CORS_ORIGINS": ("https://a.example,https://b.example", ("https://a.example", "https://b.example")),
    "HATD_TRUSTED_PROXIES": ("10.0.0.1", ("10.0.0.1",)),
    "HATD_OWNER_NAME": ("alice", "alice"),
    "HATD_OWNER_EMAIL": ("alice@example.com", "alice@example.com"),
    "HATD_OWNER_PASSWORD": ("secret", "secret"),
    "HATD_PLATFORM_NAME": ("provider", "provider"),
    "HATD_PLATFORM_EMAIL": ("p@example.com", "p@example.com"),
    "HATD_PLATFORM_PASSWORD": ("secret2", "secret2"),
    "HATD_LOG_LEVEL": ("debug", "debug"),
    "HATD_VALUES_LIMIT": ("10", 10),
    "HATD_VALUES_MAX_LIMIT": ("20000", 20000),
    "HATD_METRICS_TOKEN": ("scrape", "scrape"),
    "HATD_SESSION_TTL": ("600", 600),
    "HATD_LOGIN_TOKEN_TTL": ("600", 600),
    "HATD_PAGE_LOGIN_BURST": ("2", 2),
    "HATD_PAGE_LOGIN_REFILL_SECONDS": ("1.5", 1.5),
    "HATD_APPROVED_SERVICES": ("Rumpel=https://rumpel.example", ("Rumpel=https://rumpel.example",)),
    "HATD_BACKUP_DIR": ("off", "off"),
    "HATD_BACKUP_INTERVAL": ("3600", 3600),
    "HATD_BACKUP_FULL_INTERVAL": ("700000", 700000),
    "HATD_BACKUP_KEEP_DAILY": ("2", 2),
    "HATD_BACKUP_KEEP_WEEKLY": ("0", 0),
}


def _by_variable(settings: Settings) -> dict[str, object]:
    return {f"HATD_{field.name.upper()}": getattr(settings, field.name) for field in dataclasses.fields(settings)}


def test_every_public_setting_and_its_default_is_pinned():
    assert _by_variable(load(environ={})) == PUBLIC_DEFAULTS


@pytest.mark.parametrize("variable", sorted(OTHER_VALUES))
def test_each_variable_sets_its_setting_and_only_it(variable):
    given, kept = OTHER_VALUES[variable]
    assert _by_variable(load(environ={variable: given})) == {**PUBLIC_DEFAULTS, variable: kept}


def test_replace_coerces_and_checks_as_load_does_and_leaves_the_original_alone():
    """Tests change settings with replace(): a value is coerced and checked as from the environment,
    and the settings the app already holds do not change under it."""
    settings = load(environ={})
    changed = settings.replace(port="9000", hat_address="HTTPS://Alice.Example/")
    assert (changed.port, changed.address) == (9000, "https://alice.example")
    assert (settings.port, settings.address) == (8080, "http://127.0.0.1:8080")
    with pytest.raises(SettingsError, match="port must be between 1 and 65535"):
        settings.replace(port=0)
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize("name", [field.name for field in dataclasses.fields(Settings)])
def test_every_setting_is_documented_once_in_the_config_file_the_help_and_the_readme(name):
    """config/default.toml is the one place a setting is written down, under a comment; `hatd
    --help` and the README's table show it from there."""
    (group,) = [group for group in documentation() if name in group.names]
    assert group.names.count(name) == 1
    assert group.summary and group.comment.endswith(".")
    variable = f"HATD_{name.upper()}"
    assert variable in parser().format_help()
    assert f"`{variable}`" in (REPO / "README.md").read_text().partition(settings_module.README_START)[2]


def test_nothing_but_settings_is_documented_as_one():
    documented = [name for group in documentation() for name in group.names]
    assert sorted(documented) == sorted(field.name for field in dataclasses.fields(Settings))


def test_the_readme_table_is_the_one_made_from_the_config_file():
    """Run `make settings-doc` when this fails: the README's table is made from config/default.toml."""
    readme = (REPO / "README.md").read_text()
    assert with_readme_table(readme) == readme
    for group in documentation():
        assert f"| {', '.join(f'`{variable}`' for variable in group.variables)} |" in readme


def test_the_readme_table_follows_an_edit_of_the_config_file(monkeypatch, tmp_path):
    """An edited comment or default shows in the table made again (not a table copied once)."""
    edited = tmp_path / "default.toml"
    edited.write_text(
        DEFAULT_FILE.read_text()
        .replace("# Where the HTTP server listens.", "# Where it listens, edited.")
        .replace("port = 8080", "port = 8081")
    )
    monkeypatch.setattr(settings_module, "DEFAULT_FILE", edited)
    readme = (REPO / "README.md").read_text()
    assert "| `HATD_HOST`, `HATD_PORT` | `127.0.0.1`, `8081` | Where it listens, edited. |" in with_readme_table(readme)
    assert "Where it listens, edited (127.0.0.1, 8081)" in parser().format_help()


def test_hatd_help_lists_every_variable_with_its_summary_and_default():
    shown = " ".join(parser().format_help().split())
    for group in documentation():
        assert ", ".join(group.variables) in shown
        defaults = ", ".join(shown_default(value) for value in group.defaults)
        assert " ".join(f"{group.summary} ({defaults})".split()) in shown
    assert "HATD_CONFIG" in shown


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
