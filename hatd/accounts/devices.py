"""Device credentials: how a client that has logged in before proves it at the next login, so
that guesses from elsewhere cannot lock the owner out (OWASP's "device cookies").

Only the owner's account has devices: any other account (the platform's, one an app holds) logs
in like a stranger, so that it cannot fill the owner's trusted lane with its own logins.

A client presents one of two things with its login:

- the device cookie a successful login sets (browsers, and HTTP clients that keep cookies), or
- for clients that keep no cookies: an access token this HAT issued to the same account at an
  earlier login (the X-Auth-Token header), expired or not, up to DEVICE_TTL old. Every client
  of the API that has logged in before holds one. (Not a token given to an approved service at
  /hatlogin: that one proves the service, not a device of the owner's, and outlives revoking it.)

A device cookie ends when the owner's password changes (its MAC covers the password's hash).

Such an attempt is checked against its own small bucket (every attempt counts, successes too) and
on the trusted bcrypt lane, one check at a time per device; the account's shared bucket, which
strangers' failures drain, does not apply to it.
Everyone else's attempts are limited as before (per client address, and per account)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid

DEVICE_TTL = 90 * 24 * 3600
_CONTEXT = b"hatd device cookie"


def _mac(private_pem: str, payload: str, pass_hash: str) -> str:
    """The MAC of a cookie's payload, under a key derived from the HAT's and the account's password
    hash: a new password (a new hash, new salt) ends every device cookie issued before it."""
    key = hmac.new(private_pem.encode(), _CONTEXT + b"\0" + pass_hash.encode(), hashlib.sha256).digest()
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue(private_pem: str, user_id: str, pass_hash: str, *, now: float | None = None) -> str:
    """A new device cookie for an account (with its password hash now): its userId, a random id,
    an expiry, and their MAC."""
    expires = int(now if now is not None else time.time()) + DEVICE_TTL
    payload = f"{user_id}.{secrets.token_urlsafe(16)}.{expires}"
    return f"{payload}.{_mac(private_pem, payload, pass_hash)}"


def verify(
    private_pem: str, value: str | None, user_id: str, pass_hash: str, *, now: float | None = None
) -> str | None:
    """The device's id if `value` is an unexpired device cookie of the account, issued while it
    had the password hash `pass_hash`, else None."""
    if not value or len(value) > 200:
        return None
    payload, _, mac = value.rpartition(".")
    owner, _, rest = payload.partition(".")
    device, _, expires = rest.partition(".")
    if not hmac.compare_digest(mac.encode(), _mac(private_pem, payload, pass_hash).encode()):
        return None
    if owner != user_id or not expires.isdigit() or int(expires) < (now if now is not None else time.time()):
        return None
    return f"cookie:{device}"


def token_device(claims_user_id: str, jti: str, user_id: str) -> str | None:
    """The device id of an earlier access token's claims, if it was the account's."""
    try:
        uuid.UUID(jti)
    except ValueError:
        return None
    return f"token:{jti}" if claims_user_id == user_id else None
