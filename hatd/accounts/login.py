"""The checks every login goes through, the API's and the owner's login page's (and the owner's
password form's): one LoginThrottle owns the rate limits each draws from, then runs bcrypt on the
lane its client has earned (devices.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from hatd.accounts import devices
from hatd.http import client_address
from hatd.roles import OWNER
from hatd.state import LOGIN_THROTTLE, TOKENS
from hatd.web import pages


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


async def check(
    request: web.Request,
    account: Mapping[str, Any] | None,
    password: str,
    *,
    name: str,
    page: bool,
    cause: str,
    message: str | None = None,
) -> bool:
    """Whether `password` is the account's (None: no such account, asked for as `name`), through
    the HAT's LoginThrottle: from this client, or from the owner's device if it proves one. A
    client over its limit that proves no device is refused before this is called: see
    refuse_early. `page`: the owner's pages, with their own limit on failures."""
    return await request.app[LOGIN_THROTTLE].check(
        client_address(request), account, password,
        name=name, device=device_of(request, account), page=page, cause=cause, message=message,
    )  # fmt: skip


def refuse_early(request: web.Request, *, page: bool, cause: str, message: str | None = None) -> None:
    """TooManyRequests now if the client is over its limit and shows nothing that may prove a
    device: such a client costs no database query."""
    if not presents_device(request):
        request.app[LOGIN_THROTTLE].refuse_early(client_address(request), page=page, cause=cause, message=message)


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
