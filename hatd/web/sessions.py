"""The owner's browser sessions. The cookie holds a random secret and its HMAC signature; the
database holds only the secret's SHA-256, the account and the session's CSRF token, so a forged
cookie is refused without a query and a stolen database opens no session. Logging out, or a new
password, ends a session at once."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from functools import lru_cache

from hatd.db import Conn, queries

Q = queries("sessions")


def cookie_names(issuer: str) -> tuple[str, str]:
    """The names of a HAT's two cookies: its session, and the login form's CSRF token (the form is
    shown before there is a session, so its token rides in this cookie and in the form, and a POST
    must carry both, equal: a cross-site page can set neither). Browsers keep cookies per host,
    not per port, so HATs on one host (localhost:8081, :8082) need names of their own; over https
    the __Host- prefix also binds them to this very host."""
    tag = hashlib.sha256(issuer.encode()).hexdigest()[:8]
    prefix = "__Host-" if issuer.startswith("https://") else ""
    return f"{prefix}hatd_session_{tag}", f"{prefix}hatd_login_{tag}"


@dataclass(frozen=True)
class Session:
    id: int
    user_id: str
    role: str
    csrf: str
    secret_hash: bytes


@lru_cache(maxsize=4)
def _signing_key(private_pem: str) -> bytes:
    """The cookie-signing key, derived from the HAT's private key: each HAT has its own, and it
    changes with the key. A separate HMAC key, so the RSA key never signs cookies itself."""
    return hmac.new(private_pem.encode(), b"hatd web session cookie", hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _signature(private_pem: str, secret: str) -> str:
    return _b64(hmac.new(_signing_key(private_pem), secret.encode(), hashlib.sha256).digest())


def _same(a: str, b: str) -> bool:
    """Constant-time comparison of two texts, whatever characters they hold."""
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


def _secret_of(private_pem: str, cookie: str) -> str | None:
    """The secret a cookie carries if its signature holds."""
    secret, _, signature = cookie.partition(".")
    if not secret or len(cookie) > 200 or not _same(signature, _signature(private_pem, secret)):
        return None
    return secret


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


CSRF_FORM = re.compile(r"[A-Za-z0-9_-]{43}")


def new_csrf() -> str:
    return secrets.token_urlsafe(32)


def is_csrf(value: str) -> bool:
    """Whether a value has the form of a token new_csrf() makes."""
    return CSRF_FORM.fullmatch(value) is not None


def csrf_matches(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and _same(str(expected), str(given))


# The most of a browser's User-Agent a session keeps (sql/schema/0014).
MAX_USER_AGENT = 300


async def open_session(conn: Conn, private_pem: str, user_id: str, ttl: int, user_agent: str = "") -> str:
    """Starts a session for an account, opened from the browser `user_agent` names; returns the
    cookie value. Sessions past their time are forgotten on the way."""
    secret = secrets.token_urlsafe(32)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)
    shown = "".join(ch for ch in user_agent if ch.isprintable())[:MAX_USER_AGENT]
    await conn.execute(Q.delete_expired_sessions)
    await conn.execute(Q.insert_session, _hash(secret), uuid.UUID(user_id), new_csrf(), expires, shown)
    return f"{secret}.{_signature(private_pem, secret)}"


async def find_session(conn: Conn, private_pem: str, cookie: str | None) -> Session | None:
    """The live session a cookie opens (of an enabled account), or None."""
    secret = _secret_of(private_pem, cookie) if cookie else None
    if secret is None:
        return None
    row = await conn.fetchrow(Q.find_session, _hash(secret))
    if row is None:
        return None
    return Session(
        id=row["id"], user_id=str(row["user_id"]), role=row["role"], csrf=row["csrf"], secret_hash=_hash(secret)
    )


async def close_session(conn: Conn, session: Session) -> None:
    await conn.execute(Q.delete_session, session.secret_hash)


async def list_sessions(conn: Conn, user_id: str) -> list[dict[str, object]]:
    """The account's live sessions: id, opened, last seen and browser, the last seen first."""
    return [dict(row) for row in await conn.fetch(Q.list_sessions, uuid.UUID(user_id))]


async def end_session(conn: Conn, user_id: str, session_id: int) -> bool:
    """Closes one of the account's sessions; whether it had that session."""
    return await conn.fetchval(Q.delete_session_of, uuid.UUID(user_id), session_id) is not None
