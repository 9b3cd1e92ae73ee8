"""A service's origin (scheme://host[:port]) as approvals compare it; pure, so that the settings
can check a provider's pre-approved services with it too."""

from __future__ import annotations

from yarl import URL

SCHEMES = ("http", "https")


def origin_of(url: str) -> str | None:
    """The origin of an http(s) URL as yarl (which builds the redirect that carries the token) and
    browsers (UTS #46) see it: lower case, an international host in punycode, no default port;
    None if it is not an http(s) URL with a plain host (no user, password or stray characters).
    Approvals must compare exactly what the token is sent to: Python's own "idna" codec maps some
    letters (ß, ς) differently, so a look-alike host would have matched another's approval."""
    try:
        parsed = URL(url.strip())
        host = parsed.raw_host or ""
        if parsed.scheme not in SCHEMES or not host or parsed.raw_user is not None or parsed.raw_password is not None:
            return None
        origin = str(parsed.origin())
    except (ValueError, UnicodeError, TypeError):
        return None
    if ":" not in host and not all(ch.isascii() and (ch.isalnum() or ch in "-._") for ch in host):
        return None
    return origin
