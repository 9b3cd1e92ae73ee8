"""The owner's pages for managing the HAT beyond its lists: an account for an app (its password
made here and shown once), the owner's own password, and the browsers the owner is logged in from.
Handlers parse, call the repositories the API uses, and render; every form carries the session's
CSRF token (owner_page checks it)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from aiohttp import web

from hatd import db
from hatd.accounts import login as logins
from hatd.accounts import passwords
from hatd.accounts import repository as accounts
from hatd.errors import Conflict, NotFound
from hatd.routing import HTML, PUBLIC, Route
from hatd.state import POOL, SETTINGS
from hatd.validation import load
from hatd.web import sessions
from hatd.web.pages import FORM, SESSION, cookie_options, owner_page, render, see_other, session_cookie
from hatd.web.schemas import (
    MIN_NEW_PASSWORD,
    ButtonFormSchema,
    ChangePasswordFormSchema,
    NewAppAccountFormSchema,
)
from hatd.web.views import check_owner_password

# An app's password: 18 random bytes, 24 URL-safe characters (as the owner's generated one).
APP_PASSWORD_BYTES = 18


# -- an app's account ------------------------------------------------------------------------


@owner_page
async def create_account(request: web.Request) -> web.StreamResponse:
    """A dataDebit or dataCredit account, with a password the HAT makes: the page shows it once
    (the HAT keeps only its bcrypt hash), for the owner to hand to the app."""
    form = load(NewAppAccountFormSchema, request[FORM])
    password = secrets.token_urlsafe(APP_PASSWORD_BYTES)
    pass_hash = await passwords.hash_password(password, request.app[SETTINGS].bcrypt_rounds)
    async with db.transaction(request.app[POOL]) as conn:
        created = await accounts.create_account(
            conn, user_id=None, email=form["email"], name=form["name"].strip(), pass_hash=pass_hash, role=form["role"]
        )
    account = json.loads(created)
    return render(request, "account_created.html", {"account": account, "password": password}, status=201)


# -- the owner's password and sessions ---------------------------------------------------------


async def _security(request: web.Request, *, status: int = 200, **context: Any) -> web.Response:
    session = request[SESSION]
    items = await sessions.list_sessions(request.app[POOL], session.user_id)
    page = {
        "sessions": items, "current": session.id, "csrf": session.csrf, "min_password": MIN_NEW_PASSWORD,
        "error": "", "changed": None, **context,
    }  # fmt: skip
    return render(request, "security.html", page, status=status)


@owner_page
async def security_page(request: web.Request) -> web.StreamResponse:
    return await _security(request)


@owner_page
async def change_password(request: web.Request) -> web.StreamResponse:
    """A new password for the owner, given the current one: every other browser session of the
    owner ends, this one stays; device cookies issued before end with the old password's hash
    (hatd/accounts/devices.py), and this browser gets a new one, as after a login."""
    form = load(ChangePasswordFormSchema, request[FORM])
    session = request[SESSION]
    owner = await check_owner_password(request, form["current"])
    if owner is None or str(owner["user_id"]) != session.user_id:
        return await _security(request, status=401, error="Your current password is wrong; nothing was changed.")
    pass_hash = await passwords.hash_password(form["new"], request.app[SETTINGS].bcrypt_rounds)
    async with db.transaction(request.app[POOL]) as conn:
        closed = await accounts.change_password(
            conn, session.user_id, owner["pass_hash"], pass_hash, session.secret_hash
        )
    if closed is None:
        raise Conflict("Your password was changed elsewhere meanwhile; nothing was changed. Log in again.")
    response = await _security(request, changed=closed)
    logins.remember_device(request, response, {**dict(owner), "pass_hash": pass_hash})
    return response


@owner_page
async def end_session(request: web.Request) -> web.StreamResponse:
    """Ends one of the owner's browser sessions; ending this browser's own logs it out."""
    session = request[SESSION]
    session_id = int(request.match_info["id"])
    if not await sessions.end_session(request.app[POOL], session.user_id, session_id):
        raise NotFound(f"You have no open session {session_id}")
    if session_id == session.id:
        response = see_other("/owner/login")
        response.del_cookie(session_cookie(request), **cookie_options(request))
        return response
    return see_other("/owner/security#sessions")


ROUTES = [
    Route("POST", "/owner/accounts", create_account, name="owner_create_account", roles=PUBLIC, session=True,
          produces=HTML, body=NewAppAccountFormSchema, form=True, status=201, errors=(409,),
          summary="Create an app's account (dataDebit or dataCredit); the page shows its new password, once"),
    Route("GET", "/owner/security", security_page, name="owner_security", roles=PUBLIC, session=True,
          produces=HTML, summary="The owner's password form and the browsers the owner is logged in from"),
    Route("POST", "/owner/password", change_password, name="owner_change_password", roles=PUBLIC, session=True,
          produces=HTML, body=ChangePasswordFormSchema, form=True, errors=(401, 429),
          summary="Change the owner's password (the current one required); the owner's other browser "
          "sessions end, this one stays"),
    Route("POST", r"/owner/sessions/{id:\d{1,18}}/end", end_session, name="owner_end_session", roles=PUBLIC,
          session=True, produces=HTML, body=ButtonFormSchema, form=True, status=303,
          summary="End one of the owner's browser sessions (this browser's own: log out); 303 back"),
]  # fmt: skip
