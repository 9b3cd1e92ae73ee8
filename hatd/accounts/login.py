"""The checks every login goes through, the API's and the owner's login page's: the rate-limit
buckets it draws from, then bcrypt on the lane its client has earned (devices.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from aiohttp import web

from hatd.accounts import devices, passwords
from hatd.errors import TooManyRequests
from hatd.ratelimit import RateLimiter, retry_after
from hatd.routing import OWNER
from hatd.state import DEVICE_LIMITER, PASSWORD_LANES, SETTINGS, TOKENS
from hatd.web import pages


class Bucket(NamedTuple):
    limiter: RateLimiter
    key: str
    # True: only failures count (a success gives its token back); False: every attempt counts.
    failures_only: bool


def device_cookie(request: web.Request) -> str:
    """The device cookie's name: the login form cookie's, `device` for `login` (the same tag of the
    HAT's address, so HATs on one host keep apart, and __Host- over https)."""
    return pages.login_cookie(request).replace("hatd_login_", "hatd_device_")


def device_of(request: web.Request, account: Mapping[str, Any] | None) -> str | None:
    """The id of the device the login request proves it is, for the account: its device cookie, or
    an earlier access token of the account in X-Auth-Token. None for a stranger, and for every
    account but the owner's: the trusted lane is the owner's alone, so that no other account (the
    platform's, one an app holds) can fill it with its own logins and keep the owner waiting."""
    if account is None or account["role"] != OWNER:
        return None
    app = request.app
    user_id = str(account["user_id"])
    cookie = request.cookies.get(device_cookie(request))
    device = devices.verify(app[TOKENS].keys.private_pem, cookie, user_id, str(account["pass_hash"]))
    token = request.headers.get("X-Auth-Token")
    if device is None and token:
        claims = app[TOKENS].earlier(token, devices.DEVICE_TTL)
        device = devices.token_device(claims.user_id, claims.jti, user_id) if claims else None
    return device


def presents_device(request: web.Request) -> bool:
    """Whether the request carries something that may prove a device (checked later, with the account)."""
    return device_cookie(request) in request.cookies or "X-Auth-Token" in request.headers


def refuse_if_empty(bucket: Bucket, cause: str, message: str | None = None) -> None:
    """TooManyRequests now if the bucket is empty: a client over its limit costs no database query."""
    wait = bucket.limiter.wait(bucket.key)
    if wait:
        raise _refuse(wait, cause, message)


def device_bucket(request: web.Request, device: str) -> Bucket:
    """Every attempt of a device counts, successes too: a device cookie stolen from the owner
    cannot run more checks on the trusted lane than its bucket allows."""
    return Bucket(request.app[DEVICE_LIMITER], f"device:{device}", False)


def _refuse(wait: float, cause: str, message: str | None) -> TooManyRequests:
    seconds = retry_after(wait)
    return TooManyRequests(cause.format(seconds=seconds), message=message, headers={"Retry-After": seconds})


async def check(
    request: web.Request,
    buckets: Sequence[Bucket],
    password: str,
    pass_hash: str | None,
    *,
    device: str | None,
    cause: str,
    message: str | None = None,
) -> bool:
    """Whether the password matches `pass_hash` (None: no such account). Each bucket gives a token
    before bcrypt runs, so guesses sent at once cannot all slip through; TooManyRequests (cause
    formatted with {seconds}) when one is empty or the lane is full, taking nothing then. The
    owner's `device` (device_of) checks on the trusted lane, one check at a time."""
    taken: list[Bucket] = []
    for bucket in buckets:
        wait = bucket.limiter.take(bucket.key)
        if wait:
            for back in taken:
                back.limiter.give_back(back.key)
            raise _refuse(wait, cause, message)
        taken.append(bucket)
    lanes = request.app[PASSWORD_LANES]
    try:
        lane = lanes.trusted if device is not None else lanes.shared
        matched = await passwords.check_password(
            password, pass_hash, request.app[SETTINGS].bcrypt_rounds, lane, holder=device
        )
    except passwords.Busy:
        for bucket in taken:
            bucket.limiter.give_back(bucket.key)
        raise _refuse(1, cause, message) from None
    if matched:
        for bucket in taken:
            if bucket.failures_only:
                bucket.limiter.give_back(bucket.key)
    return matched


def remember_device(request: web.Request, response: web.StreamResponse, account: Mapping[str, Any]) -> None:
    """After the owner's successful login: a new device cookie, valid for DEVICE_TTL (no other
    account has devices, see device_of)."""
    if account["role"] != OWNER:
        return
    user_id = str(account["user_id"])
    response.set_cookie(
        device_cookie(request),
        devices.issue(request.app[TOKENS].keys.private_pem, user_id, str(account["pass_hash"])),
        max_age=devices.DEVICE_TTL,
        **pages.cookie_options(request),
    )
