"""Rendering the owner's pages: templates, the headers every page carries, errors as pages, and
the session checks in front of the owner's pages."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup
from yarl import URL

from hatd.backup import service as backups
from hatd.errors import BadRequest, Forbidden
from hatd.http import storable
from hatd.roles import OWNER
from hatd.state import CALLER, PAGE_HOOKS, POOL, SETTINGS, TOKENS, Caller, PageHooks
from hatd.web import sessions
from hatd.web.sessions import Session

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SESSION = web.RequestKey("session", Session)
# The fields of a POSTed form, read once by owner_page.
FORM = web.RequestKey("form", dict)
STYLESHEET = "/owner/static/hatd.css"


def when(iso: str | dt.datetime | None) -> Markup | str:
    """A HAT time (2026-01-03T10:00:00.000Z, or a datetime) for people, keeping the exact one for
    machines."""
    if not iso:
        return "never"
    if isinstance(iso, dt.datetime):
        moment = iso.astimezone(dt.UTC)
        iso = f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"
    moment = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return Markup('<time datetime="{}">{}</time>').format(iso, f"{moment:%d %b %Y, %H:%M} UTC")


def setup(app: web.Application) -> None:
    environment = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("hatd.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["when"] = when
    app[PAGE_HOOKS] = PageHooks(is_page, error_page)


def _secure_headers(response: web.StreamResponse, form_action: str = "") -> None:
    """No framing (a click on the service's icon cannot be stolen), no script, styles from here
    only, forms post here (and, after /hatlogin's form, redirect to the app), nothing cached."""
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; "
        f"form-action 'self'{' ' + form_action if form_action else ''}; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"


def render(
    request: web.Request, template: str, context: dict[str, Any], *, status: int = 200, form_action: str = ""
) -> web.Response:
    session = request.get(SESSION)
    backup = request.app.get(backups.SERVICE)
    page = {
        "stylesheet": STYLESHEET, "session": session, "path": request.path,
        "backup": backup.status() if backup is not None and session is not None else None, **context,
    }  # fmt: skip
    response = aiohttp_jinja2.render_template(template, request, page, status=status)
    _secure_headers(response, form_action)
    return response


def see_other(location: str | URL) -> web.Response:
    """303 See Other: after a form, the browser GETs the next page."""
    response = web.Response(status=303, headers={"Location": str(location)})
    _secure_headers(response)
    return response


PAGE_PATHS = ("/owner", "/hatlogin")


def is_page(request: web.Request) -> bool:
    """Whether a request is for a page (its errors are pages too) rather than the JSON API."""
    return request.path == "/" or any(request.path == p or request.path.startswith(p + "/") for p in PAGE_PATHS)


def error_page(
    request: web.Request, status: int, message: str, cause: str, headers: dict[str, str] | None = None
) -> web.Response:
    """An error as a page: the same status, message and cause the API would answer with."""
    response = render(request, "error.html", {"message": message, "cause": cause}, status=status)
    response.headers.update(headers or {})
    return response


def cookie_options(request: web.Request) -> dict[str, Any]:
    """HttpOnly, SameSite=Lax (an app's link to /hatlogin is a cross-site navigation that must
    carry the session), and Secure when the HAT is served over https."""
    secure = request.app[SETTINGS].address.startswith("https://")
    return {"httponly": True, "samesite": "Lax", "secure": secure, "path": "/"}


def session_cookie(request: web.Request) -> str:
    return sessions.cookie_names(request.app[SETTINGS].address)[0]


def login_cookie(request: web.Request) -> str:
    return sessions.cookie_names(request.app[SETTINGS].address)[1]


async def current_session(request: web.Request) -> Session | None:
    private_pem = request.app[TOKENS].keys.private_pem
    return await sessions.find_session(request.app[POOL], private_pem, request.cookies.get(session_cookie(request)))


async def form_data(request: web.Request) -> dict[str, str]:
    """A form's fields (a field sent twice keeps its first value; files are ignored), or 400 for a
    body that is not a readable form."""
    try:
        form = await request.post()
    except (ValueError, LookupError, AssertionError) as exc:  # bad charset, bytes, or multipart framing
        raise BadRequest(f"The form cannot be read: {type(exc).__name__}", message="Invalid form") from None
    data: dict[str, str] = {}
    for name, value in form.items():
        if isinstance(value, str):
            if not storable(name) or not storable(value):
                raise BadRequest(f"{name[:40]}: holds a NUL or a byte that is not UTF-8", message="Invalid form")
            data.setdefault(name, value)
    return data


def owner_page(handler: Handler) -> Handler:
    """A page for the owner's session only: without one, a GET goes to the login page and comes
    back after; a POST must carry the session's CSRF token."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        session = await current_session(request)
        if session is None or session.role != OWNER:
            if request.method in ("GET", "HEAD"):
                return see_other(URL("/owner/login").with_query(next=str(request.rel_url)))
            raise Forbidden("Your session has ended; log in again", message="Not logged in")
        if request.method == "POST":
            form = request[FORM] = await form_data(request)
            if not sessions.csrf_matches(session.csrf, form.get("csrf")):
                raise Forbidden("The form did not come from this HAT's own page; reload it and try again",
                                message="Invalid form")  # fmt: skip
        request[SESSION] = session
        request[CALLER] = Caller(user_id=session.user_id, role=session.role)
        return await handler(request)

    return wrapped
