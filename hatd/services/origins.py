"""A service's origin (scheme://host[:port]) as approvals compare it; pure, so that the settings
can check a provider's pre-approved services with it too."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """The origin of an http(s) URL, normalised (lower case, no default port, an IPv6 host in
    brackets, an international host in punycode); None if it is not an http(s) URL with a plain
    host (no user, password or stray characters)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        host = parts.hostname or ""
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    if ":" in host:
        host = f"[{host}]"
    elif not all(ch.isalnum() or ch in "-._" for ch in host):
        return None
    if port is not None and port != DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host.lower()}"
