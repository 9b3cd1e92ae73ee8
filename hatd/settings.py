"""One frozen settings object, read from config/default.toml, an optional HATD_CONFIG file and
HATD_* environment variables, in that order (later wins)."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import textwrap
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hatd.services.origins import origin_of

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
DEFAULT_FILE = CONFIG_DIR / "default.toml"
ENV_PREFIX = "HATD_"
LOG_LEVELS = ("debug", "info", "warning", "error")
# A Login-with-HAT token proves who the owner is to an app; it lives a day at most.
MAX_LOGIN_TOKEN_TTL = 86400
# A HAT's name on a shared PostgreSQL server: its role's and its database's (see hatd/provision.py).
HAT_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


class SettingsError(ValueError):
    """A setting is missing or has a value hatd cannot use."""


def check_address(address: str) -> str:
    """A HAT's public address, normalised as apps will compare it: scheme and host in lower case,
    an international host in its ASCII (punycode) form, no default port, no trailing slash; an
    http(s) URL of a host, with no user, query or fragment. SettingsError otherwise."""
    refused = SettingsError(
        f"{address!r} is not a HAT address: give an http:// or https:// URL such as "
        "https://alice.hats.example (no user, query or fragment)"
    )
    try:
        parts = urlsplit(address.strip())
        port = parts.port
        host = parts.hostname or ""
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        raise refused from None
    scheme = parts.scheme.lower()
    netloc_ok = "@" not in parts.netloc and "\\" not in parts.netloc and not parts.netloc.endswith(":")
    if scheme not in ("http", "https") or not host or parts.query or parts.fragment or not netloc_ok:
        raise refused
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path, "", "")).rstrip("/")


def issuer_of(address: str) -> str:
    """A HAT's token issuer from its normalised address: the address without its scheme."""
    return address.split("://", 1)[-1]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Every setting hatd reads; see config/default.toml for what each one means."""

    host: str
    port: int
    hat_address: str
    data_dir: Path
    database_url: str = dataclasses.field(repr=False)
    embedded_database: str
    pool_min_size: int
    pool_max_size: int
    token_ttl: int
    max_body: int
    bcrypt_rounds: int
    login_burst: int
    login_refill_seconds: float
    cors_origins: tuple[str, ...]
    trusted_proxies: tuple[str, ...]
    owner_name: str
    owner_email: str
    owner_password: str = dataclasses.field(repr=False)
    platform_name: str
    platform_email: str
    platform_password: str = dataclasses.field(repr=False)
    log_level: str
    values_limit: int
    values_max_limit: int
    metrics_token: str = dataclasses.field(repr=False)
    session_ttl: int
    login_token_ttl: int
    page_login_burst: int
    page_login_refill_seconds: float
    approved_services: tuple[str, ...]
    backup_dir: str
    backup_interval: int
    backup_full_interval: int
    backup_keep_daily: int
    backup_keep_weekly: int

    def __post_init__(self) -> None:
        checks = [
            (0 < self.port < 65536, "port must be between 1 and 65535"),
            (1 <= self.pool_min_size <= self.pool_max_size, "need 1 <= pool_min_size <= pool_max_size"),
            (self.token_ttl > 0, "token_ttl must be a positive number of seconds"),
            (self.max_body > 0, "max_body must be a positive number of bytes"),
            (4 <= self.bcrypt_rounds <= 14, "bcrypt_rounds must be between 4 and 14"),
            (self.login_burst >= 1, "login_burst must be at least 1"),
            (self.login_refill_seconds > 0, "login_refill_seconds must be positive"),
            (self.owner_email.strip() != "", "owner_email must not be empty"),
            (self.owner_name.strip() != "", "owner_name must not be empty"),
            (self.log_level in LOG_LEVELS, f"log_level must be one of {', '.join(LOG_LEVELS)}"),
            (1 <= self.values_limit <= self.values_max_limit, "need 1 <= values_limit <= values_max_limit"),
            (self.session_ttl > 0, "session_ttl must be a positive number of seconds"),
            (0 < self.login_token_ttl <= MAX_LOGIN_TOKEN_TTL, f"login_token_ttl must be 1 to {MAX_LOGIN_TOKEN_TTL} s"),
            (self.page_login_burst >= 1, "page_login_burst must be at least 1"),
            (self.page_login_refill_seconds > 0, "page_login_refill_seconds must be positive"),
            (self.backup_interval > 0, "backup_interval must be a positive number of seconds"),
            (self.backup_full_interval >= self.backup_interval, "need backup_full_interval >= backup_interval"),
            (self.backup_keep_daily >= 1, "backup_keep_daily must be at least 1"),
            (self.backup_keep_weekly >= 0, "backup_keep_weekly must be 0 or more"),
            (
                HAT_NAME.fullmatch(self.embedded_database) is not None,
                "embedded_database must be a HAT name: lowercase letters, digits, underscores, at most 32",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise SettingsError(f"trusted_proxies: {proxy!r} is not an IP address or network") from None
        self.preset_services  # noqa: B018 -- raises SettingsError for a malformed entry
        if self.hat_address.strip():
            try:
                object.__setattr__(self, "hat_address", check_address(self.hat_address))
            except SettingsError as exc:
                raise SettingsError(f"hat_address: {exc}") from None

    @property
    def address(self) -> str:
        """The HAT's public address as a URL: hat_address, or by default the address the server
        listens on. Links, cookies and exports name the HAT by it."""
        return self.hat_address.strip().rstrip("/") or f"http://{self.host}:{self.port}"

    @property
    def issuer(self) -> str:
        """The `iss` (and API `resource`) of the tokens this HAT signs: its address without the
        scheme (`alice.hats.example`, `127.0.0.1:8080`), as the original HAT signed it, because its
        clients fetch the key from `<protocol>://<iss>/publickey`."""
        return issuer_of(self.address)

    @property
    def preset_services(self) -> dict[str, str]:
        """The services the provider approved (approved_services: "Name=https://origin" items):
        origin -> name."""
        preset: dict[str, str] = {}
        for item in self.approved_services:
            name, _, address = item.partition("=")
            origin = origin_of(address)
            if not name.strip() or origin is None or address.strip().rstrip("/").lower() != origin:
                raise SettingsError(
                    f"approved_services: {item!r} is not Name=https://origin (an http(s) origin: no path, "
                    "user, query or fragment)"
                )
            preset[origin] = name.strip()
        return preset

    @property
    def backup_path(self) -> Path | None:
        """Where backups go: backup_dir; by default <data_dir>/backups for the embedded server and
        none for a HAT on another PostgreSQL (HATD_DATABASE_URL); None when backup_dir is "off"."""
        given = self.backup_dir.strip()
        if given == "off" or (not given and self.database_url):
            return None
        return Path(given) if given else self.data_dir / "backups"

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed (tests use it)."""
        return dataclasses.replace(self, **{name: _coerce(name, value) for name, value in changes.items()})


_HINTS = typing.get_type_hints(Settings)


@dataclasses.dataclass(frozen=True)
class SettingGroup:
    """Settings documented together in config/default.toml: the keys under one comment."""

    names: tuple[str, ...]
    defaults: tuple[Any, ...]
    comment: str

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(ENV_PREFIX + name.upper() for name in self.names)

    @property
    def summary(self) -> str:
        """The comment's first sentence."""
        first, _, _ = self.comment.partition(". ")
        return first.rstrip(".")


def documentation(text: str | None = None) -> list[SettingGroup]:
    """The settings as config/default.toml documents them, in its order: each run of `key = value`
    lines with the comment above it (the file's opening comment, above no key, is not a group).
    `hatd --help` and the README's table are made from it."""
    groups: list[SettingGroup] = []
    comment: list[str] = []
    names: list[str] = []
    defaults: list[Any] = []

    def close() -> None:
        if names:
            groups.append(SettingGroup(tuple(names), tuple(defaults), " ".join(comment)))
            comment.clear()
        names.clear()
        defaults.clear()

    for line in (DEFAULT_FILE.read_text() if text is None else text).splitlines():
        line = line.strip()
        if not line:
            close()
            comment.clear()
        elif line.startswith("#"):
            close()
            comment.append(line.lstrip("#").strip())
        else:
            ((name, value),) = tomllib.loads(line).items()
            names.append(name)
            defaults.append(value)
    close()
    return groups


def shown_default(value: Any) -> str:
    """A default as the help and the README show it."""
    return "empty" if value == "" else str(value)


def settings_help(width: int = 100) -> str:
    """The settings part of `hatd --help`, made from config/default.toml."""
    lines = ["settings (config/default.toml, then the file in HATD_CONFIG, then these variables):"]
    for group in documentation():
        defaults = ", ".join(shown_default(value) for value in group.defaults)
        text = f"{group.summary} ({defaults})"
        lines.append(f"  {', '.join(group.variables)}")
        lines.extend(textwrap.wrap(text, width, initial_indent=" " * 6, subsequent_indent=" " * 6))
    lines.append("  HATD_CONFIG")
    lines.append("      a TOML file of settings, read after config/default.toml")
    return "\n".join(lines) + "\n"


def readme_table() -> str:
    """The README's table of settings, made from config/default.toml."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for group in documentation():
        variables = ", ".join(f"`{variable}`" for variable in group.variables)
        defaults = ", ".join("empty" if value == "" else f"`{value}`" for value in group.defaults)
        meaning = group.comment.replace("|", "\\|").replace("<", "&lt;")
        rows.append(f"| {variables} | {defaults} | {meaning} |")
    return "\n".join(rows) + "\n"


def _coerce(name: str, value: Any) -> Any:
    """Turn a TOML or environment value into the field's type, or say why it cannot be."""
    hint = _HINTS[name]
    try:
        if hint is int:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
        if hint is Path:
            return Path(value)
        if typing.get_origin(hint) is tuple or isinstance(hint, types.GenericAlias):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(item).strip() for item in items if str(item).strip())
    except (TypeError, ValueError):
        raise SettingsError(f"{name} = {value!r} is not a valid {getattr(hint, '__name__', hint)}") from None
    raise SettingsError(f"{name}: unsupported setting type {hint}")


README_START = (
    "<!-- settings: made from config/default.toml by `make settings-doc`; edit that file, not this table -->\n"
)
README_END = "<!-- end of settings -->\n"


def with_readme_table(readme: str) -> str:
    """The README's text with its table of settings made again from config/default.toml."""
    before, start, rest = readme.partition(README_START)
    _, end, after = rest.partition(README_END)
    if not start or not end:
        raise SettingsError(f"the README has no {README_START.strip()} ... {README_END.strip()} section")
    return before + start + readme_table() + end + after


def load(
    *,
    files: tuple[Path, ...] = (),
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings: default.toml, then HATD_CONFIG, then `files`, then the environment,
    then `overrides`."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    sources = [DEFAULT_FILE]
    if env.get("HATD_CONFIG"):
        sources.append(Path(env["HATD_CONFIG"]))
    sources.extend(files)
    for source in sources:
        try:
            raw.update(tomllib.loads(source.read_text()))
        except FileNotFoundError:
            raise SettingsError(f"config file {source} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {source} is not valid TOML: {exc}") from None
    names = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise SettingsError(f"unknown setting(s) in config: {', '.join(unknown)}")
    for name in names:
        env_value = env.get(ENV_PREFIX + name.upper())
        if env_value is not None:
            raw[name] = env_value
    raw.update(overrides or {})
    missing = sorted(names - set(raw))
    if missing:
        raise SettingsError(f"missing setting(s): {', '.join(missing)}")
    return Settings(**{name: _coerce(name, raw[name]) for name in names})
