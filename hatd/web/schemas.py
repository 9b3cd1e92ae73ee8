"""What the owner's pages and /hatlogin accept: the service an app names, its redirect address,
and the forms' fields."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import Any
from urllib.parse import urlsplit

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate, validates_schema
from yarl import URL

from hatd.accounts.passwords import MAX_PASSWORD_BYTES
from hatd.fields import HatTime
from hatd.roles import DATA_CREDIT, DATA_DEBIT
from hatd.services.origins import origin_of

MAX_URL = 2048
MAX_SERVICE_NAME = 100
# An approved service's origin, as approved_services keeps it (sql/schema/0010).
MAX_ORIGIN = 300
# A path to return to after logging in: /hatlogin with an encoded service name and redirect fits.
MAX_LOCAL_PATH = 8000
# The newer pages a table's page remembers, to page back to (beyond: back to the newest).
MAX_TRAIL = 40
# The longest cursor the HAT makes (scope, time and id, in base64url) is under 90 characters, and a
# time under 40, all of them ASCII: with these bounds a page's address, trail and all, stays under
# the 8,190 bytes aiohttp reads of a request line (beyond it aiohttp answers 400 in plain text,
# before the HAT sees it).
CURSOR_LENGTH = 120
TIME_LENGTH = 64
TIME_TEXT = r"^[ -~]*$"  # printable ASCII: every time the HAT reads is written so


def _printable(value: str) -> bool:
    return not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in value)


def check_redirect(value: str) -> None:
    """An app's redirect address must be a plain http(s) URL with a host; the reason otherwise."""
    if len(value) > MAX_URL:
        raise ValidationError(f"The redirect address is longer than {MAX_URL} characters")
    if any(ch.isspace() for ch in value) or not _printable(value):
        raise ValidationError("The redirect address holds spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in range
    except ValueError:
        raise ValidationError("The redirect address is not a well-formed URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        shown = f"{parts.scheme}:" if parts.scheme else "no scheme"
        raise ValidationError(f"The redirect address must start with http:// or https://, not {shown}")
    if not parts.hostname:
        raise ValidationError("The redirect address has no host")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("The redirect address must not carry a user name or password")
    try:  # yarl builds the redirect and the page's CSP names its origin: it must agree it is a URL
        url = URL(value)
        url.origin()
        url.host  # noqa: B018 -- decodes the host, which fails for a punycode that is not valid
    except (ValueError, UnicodeError):
        raise ValidationError("The redirect address is not a well-formed URL") from None
    if not _real_host(url.raw_host or ""):
        raise ValidationError("The redirect address's host is not a host name or an IP address")
    if len(str(url)) > MAX_URL:
        raise ValidationError(f"The redirect address is longer than {MAX_URL} characters once encoded")


# One label of a DNS host name (RFC 1123); an internationalised name arrives here as punycode.
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# An IP address as written: digits, hex digits, ':' and '.'; no IPv6 scope id (`%eth0`), which
# Python's ipaddress accepts with any text in it (`fe80::1%x;sandbox;`).
_IP_CHARS = re.compile(r"[0-9A-Fa-f:.]+")
# A last label that makes a browser read the whole host as an IPv4 address (WHATWG URL):
# decimal, or 0x hex. `1.2.3.4.5` or `0x7f.1` is then no valid address and no host name.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")


def _real_host(host: str) -> bool:
    """A DNS host name or an IP address: nothing else may reach the redirect or the page's CSP
    (`evil.example;sandbox` would add a directive to it)."""
    if _IP_CHARS.fullmatch(host):
        try:
            ipaddress.ip_address(host)
            return True
        except ValueError:
            pass
    labels = host.removesuffix(".").split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):  # not the IPv4 address it must then be (checked above)
        return False
    return len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


def check_service_name(value: str) -> None:
    if not value.strip():
        raise ValidationError("The service name is empty")
    if not _printable(value):
        raise ValidationError("The service name holds control characters")


class HatLoginQuerySchema(Schema):
    """GET /hatlogin?name=ServiceName&redirect=https://service/path (other parameters ignored)."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(
        required=True,
        validate=[validate.Length(max=MAX_SERVICE_NAME), check_service_name],
        error_messages={"required": "The app must name itself: ?name=ServiceName"},
        metadata={"description": "The service's name, shown to the owner"},
    )
    redirect = fields.String(
        required=True,
        validate=check_redirect,
        error_messages={"required": "The app must say where to return: ?redirect=https://service/path"},
        metadata={"description": "Where the owner returns, with ?token=<JWT> added"},
    )


class HatLoginFormSchema(HatLoginQuerySchema):
    """POST /hatlogin: the owner clicked the service's icon."""

    csrf = fields.String(required=True)


def check_origin(value: str) -> None:
    """A service's origin: an http(s) address of a host, with no path beyond "/"."""
    check_redirect(value)
    origin = origin_of(value)
    if origin is None:
        raise ValidationError("The address has no plain host name")
    if urlsplit(value.strip()).path not in ("", "/") or urlsplit(value.strip()).query:
        raise ValidationError(f"Give the service's origin only, such as {origin}: no path or query")


class ApproveServiceFormSchema(Schema):
    """POST /owner/services: approve the service at an origin under a name."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=[validate.Length(max=MAX_SERVICE_NAME), check_service_name])
    origin = fields.String(
        required=True,
        validate=[validate.Length(max=MAX_ORIGIN), check_origin],
        metadata={"description": "Where the service is served from: https://host[:port]"},
    )
    csrf = fields.String(required=True, metadata={"description": "The session's CSRF token"})


class LoginFormSchema(Schema):
    """POST /owner/login."""

    class Meta:
        unknown = EXCLUDE

    password = fields.String(required=True, validate=validate.Length(min=1, max=1024))
    csrf = fields.String(required=True, metadata={"description": "Equal to the login form's CSRF cookie"})
    next = fields.String(load_default="/owner", metadata={"description": "A path on this HAT to go to after"})


def local_path(value: Any) -> str:
    """Where to go after logging in: a path on this HAT, never another site ('//evil' is one)."""
    if (
        not isinstance(value, str)
        or not value.startswith("/")
        or value.startswith(("//", "/\\"))
        or len(value) > MAX_LOCAL_PATH
        or any(ch.isspace() for ch in value)
        or not _printable(value)
    ):
        return "/owner"
    return value


class ButtonFormSchema(Schema):
    """The form behind each button of the owner's pages (for the docs: owner_page checks csrf)."""

    csrf = fields.String(required=True, metadata={"description": "The session's CSRF token"})
    back = fields.String(metadata={"description": "A path on this HAT to return to (else the list)"})


class UploadFormSchema(Schema):
    """POST /owner/upload: a file for the data plugs, and the CSV plug's options."""

    class Meta:
        unknown = EXCLUDE

    csrf = fields.String(required=True, metadata={"description": "The session's CSRF token"})
    file = fields.Raw(metadata={"description": "A .ics, .gpx or .csv file", "type": "string", "format": "binary"})
    table = fields.String(
        load_default="",
        validate=validate.Length(max=500),
        metadata={"description": "CSV: the table (default: the file's name)"},
    )
    key = fields.String(
        load_default="",
        validate=validate.Length(max=500),
        metadata={"description": "CSV: the column naming each row (default: its content)"},
    )
    time = fields.String(
        load_default="",
        validate=validate.Length(max=500),
        metadata={"description": "CSV: the column holding each row's time"},
    )


def _account_name(value: str) -> None:
    if not value.strip():
        raise ValidationError("The name is empty")
    if not _printable(value):
        raise ValidationError("The name holds control characters")


class NewAppAccountFormSchema(Schema):
    """POST /owner/accounts: an account for an app; the HAT makes its password and shows it once."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), _account_name])
    email = fields.Email(required=True, validate=validate.Length(max=320))
    role = fields.String(required=True, validate=validate.OneOf((DATA_DEBIT, DATA_CREDIT)))
    csrf = fields.String(required=True, metadata={"description": "The session's CSRF token"})


# The shortest new password the owner's page accepts (`hatd set-password` takes any).
MIN_NEW_PASSWORD = 8


def _new_password_fits(value: str) -> None:
    if len(value) < MIN_NEW_PASSWORD:
        raise ValidationError(f"The new password must be at least {MIN_NEW_PASSWORD} characters long")
    if len(value.encode()) > MAX_PASSWORD_BYTES:
        raise ValidationError(f"The new password is longer than {MAX_PASSWORD_BYTES} bytes, which bcrypt cannot use")


class ChangePasswordFormSchema(Schema):
    """POST /owner/password: the owner's current password, and the new one twice."""

    class Meta:
        unknown = EXCLUDE

    current = fields.String(required=True, validate=validate.Length(min=1, max=1024))
    new = fields.String(required=True, validate=_new_password_fits)
    repeat = fields.String(required=True, metadata={"description": "The new password again"})
    csrf = fields.String(required=True, metadata={"description": "The session's CSRF token"})

    @validates_schema
    def _same_twice(self, data: dict[str, Any], **_: Any) -> None:
        if "new" in data and data["new"] != data.get("repeat"):
            raise ValidationError("The new password and its repetition differ", field_name="repeat")


class TableViewQuerySchema(Schema):
    """GET /owner/tables/{id} and its downloads: a time window on the records' time (its form's
    `from` and `to`), and the page's place (`cursor`, and `trail`: the newer pages' cursors)."""

    class Meta:
        unknown = EXCLUDE

    start = HatTime(
        data_key="from",
        load_default=None,
        metadata={
            "description": "Records from this time (ISO-8601 or unix seconds; no zone: UTC)",
            "maxLength": TIME_LENGTH,
            "pattern": TIME_TEXT,
        },
    )
    end = HatTime(
        data_key="to",
        load_default=None,
        metadata={"description": "Records up to this time", "maxLength": TIME_LENGTH, "pattern": TIME_TEXT},
    )
    cursor = fields.String(
        load_default=None, validate=[validate.Length(max=CURSOR_LENGTH), validate.Regexp(r"^[A-Za-z0-9_-]*$")]
    )
    trail = fields.String(
        load_default=None,
        validate=[validate.Length(max=MAX_TRAIL * (CURSOR_LENGTH + 1)), validate.Regexp(r"^[A-Za-z0-9_.-]*$")],
        metadata={"description": "The cursors of the newer pages, joined by '.'"},
    )

    @pre_load
    def strip_empty(self, data: Any, **_: Any) -> Any:
        return {k: v for k, v in data.items() if v.strip() != ""} if isinstance(data, dict) else data

    @validates_schema
    def window_in_order(self, data: Any, **_: Any) -> None:
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise ValidationError("from is after to", "from")
