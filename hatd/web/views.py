"""Login with HAT (/hatlogin) and the owner's own pages: their data, data debits and accounts.
Handlers parse, call the same repository functions the API uses, and render a template; every
button is a POST carrying the session's CSRF token."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web
from asyncpg import Record
from marshmallow import ValidationError
from yarl import URL

from hatd import db
from hatd.accounts import login as logins
from hatd.accounts import repository as accounts
from hatd.accounts.schemas import CREATABLE_ROLES
from hatd.debits import repository as debits
from hatd.errors import BadRequest, Conflict, Forbidden
from hatd.exports import repository as exports
from hatd.exports import views as exports_views
from hatd.http import parse_query, path_id
from hatd.raw import repository as raw
from hatd.roles import OWNER
from hatd.routing import HTML, PUBLIC, USER_ID, Route
from hatd.services import approvals
from hatd.services import repository as services
from hatd.services.origins import origin_of
from hatd.state import (
    CALLER,
    CALLERS,
    POOL,
    SETTINGS,
    TOKENS,
    Caller,
)
from hatd.tokens import VALIDATE_SCOPE
from hatd.validation import load, validation_cause
from hatd.web import sessions
from hatd.web.pages import (
    FORM,
    SESSION,
    cookie_options,
    current_session,
    form_data,
    login_cookie,
    owner_page,
    render,
    see_other,
    session_cookie,
)
from hatd.web.schemas import (
    ApproveServiceFormSchema,
    ButtonFormSchema,
    HatLoginFormSchema,
    HatLoginQuerySchema,
    LoginFormSchema,
    local_path,
)

STATIC_DIR = Path(__file__).parent / "static"


# -- logging in ------------------------------------------------------------------------------


def _login_form(request: web.Request, next_path: str, *, status: int = 200, error: str = "") -> web.Response:
    """The owner's login form, with its CSRF token in the form and in a cookie (the browser's
    token if it has one, so a second tab does not spoil the first one's form)."""
    given = request.cookies.get(login_cookie(request), "")
    csrf = given if sessions.is_csrf(given) else sessions.new_csrf()
    response = render(request, "login.html", {"next": next_path, "csrf": csrf, "error": error}, status=status)
    response.set_cookie(login_cookie(request), csrf, max_age=3600, **cookie_options(request))
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    next_path = local_path(request.query.get("next", "/owner"))
    if await current_session(request) is not None:
        return see_other(next_path)
    return _login_form(request, next_path)


async def login(request: web.Request) -> web.StreamResponse:
    """The owner's password opens a session. Failed attempts are limited per client."""
    try:
        form = LoginFormSchema().load(await form_data(request))
    except ValidationError as exc:
        raise BadRequest(validation_cause(exc), message="Invalid form") from None
    next_path = local_path(form["next"])
    if not sessions.csrf_matches(request.cookies.get(login_cookie(request)), form["csrf"]):
        return _login_form(request, next_path, status=403, error="The login form had expired. Please try again.")
    owner = await check_owner_password(request, form["password"])
    if owner is None:
        return _login_form(request, next_path, status=401, error="Wrong password.")
    settings = request.app[SETTINGS]
    previous = await current_session(request)
    async with db.transaction(request.app[POOL]) as conn:
        if previous is not None:  # one browser, one session
            await sessions.close_session(conn, previous)
        cookie = await sessions.open_session(
            conn, request.app[TOKENS].keys.private_pem, str(owner["user_id"]), settings.session_ttl,
            request.headers.get("User-Agent", ""),
        )  # fmt: skip
    response = see_other(next_path)
    response.set_cookie(session_cookie(request), cookie, max_age=settings.session_ttl, **cookie_options(request))
    response.del_cookie(login_cookie(request), **cookie_options(request))
    logins.remember_device(request, response, owner)
    return response


async def check_owner_password(request: web.Request, password: str) -> Record | None:
    """The owner's account (with its password hash) if `password` is theirs, else None; limited
    as the login page is: per client and per account, or, from a browser the owner has logged in
    from before, per device on the trusted lane (hatd/accounts/devices.py). TooManyRequests over
    a limit."""
    cause, message = "Too many failed logins; try again in {seconds} seconds", "Too many attempts"
    logins.refuse_early(request, page=True, cause=cause, message=message)
    owner = await accounts.owner_login(request.app[POOL])
    matched = await logins.check(request, owner, password, name="owner", page=True, cause=cause, message=message)
    return owner if matched else None


@owner_page
async def logout(request: web.Request) -> web.StreamResponse:
    await sessions.close_session(request.app[POOL], request[SESSION])
    response = see_other("/owner/login")
    response.del_cookie(session_cookie(request), **cookie_options(request))
    return response


# -- Login with HAT ----------------------------------------------------------------------------


def _service(request: web.Request, data: dict[str, str]) -> dict[str, str]:
    """The service as the page shows it; an international host with the ASCII form the token goes to."""
    url = URL(data["redirect"])
    host = url.host or ""
    shown = host if url.raw_host in (None, host) else f"{host} ({url.raw_host})"
    return {"name": data["name"], "redirect": data["redirect"], "host": shown}


async def hatlogin(request: web.Request) -> web.StreamResponse:
    """Step 2 and 3 of Login with HAT: the login form if the owner has no session, then the
    service's icon, name and address (and, for a service the owner approved, that it will act as
    the owner)."""
    query = parse_query(request, HatLoginQuerySchema)
    session = await current_session(request)
    if session is None or session.role != OWNER:
        return _login_form(request, str(request.rel_url))
    request[SESSION] = session
    request[CALLER] = Caller(user_id=session.user_id, role=session.role)
    origin = URL(query["redirect"]).origin()
    approval = await approvals.find(request.app[POOL], request.app[SETTINGS], query["redirect"])
    context = {"service": _service(request, query), "csrf": session.csrf, "approval": approval}
    return render(request, "hatlogin.html", context, form_action=str(origin))


@owner_page
async def hatlogin_approve(request: web.Request) -> web.StreamResponse:
    """Step 4: the owner clicked the icon; back to the service with a token: one that proves who
    they are, or, for a service the owner approved, an owner token for the API."""
    service = load(HatLoginFormSchema, request[FORM])
    settings = request.app[SETTINGS]
    approval = await approvals.find(request.app[POOL], settings, service["redirect"])
    if approval is not None:
        token = request.app[TOKENS].issue(request[SESSION].user_id, OWNER, approval=approval.claim)
    else:
        token = request.app[TOKENS].issue(
            request[SESSION].user_id, VALIDATE_SCOPE, resource=service["redirect"], ttl=settings.login_token_ttl
        )
    # The service's own query parameters stay; a `token` it put there is replaced.
    return see_other(URL(service["redirect"]).update_query(token=token))


# -- the owner's data ------------------------------------------------------------------------


@owner_page
async def data_page(request: web.Request) -> web.StreamResponse:
    tables = [dict(row) for row in await raw.table_summaries(request.app[POOL])]
    sources: dict[str, list[dict[str, Any]]] = {}
    for table in tables:
        sources.setdefault(table["source"], []).append(table)
    return render(request, "data.html", {"sources": sources})


@owner_page
async def export_download(request: web.Request) -> web.StreamResponse:
    """The whole HAT, as GET /export streams it to the owner's token: the owner takes their data
    with them from the browser too. Only from the HAT's own page (or typed in): another site's
    link would start a costly export that holds the one-at-a-time lock."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        raise Forbidden("Download your data from your HAT's own data page", message="Not from this HAT")
    return await exports_views.export(request)


# -- data debits -------------------------------------------------------------------------------


async def _account_names(conn: db.Conn) -> dict[str, str]:
    return {account["userId"]: account["name"] for account in json.loads(await accounts.list_accounts(conn))}


@owner_page
async def debits_page(request: web.Request) -> web.StreamResponse:
    """Every debit with its state; the proposals waiting for the owner first."""
    async with request.app[POOL].acquire() as conn:
        items = json.loads(await debits.owner_listing(conn))
        names = await _account_names(conn)
    waiting = sum(1 for item in items if item["state"] == "waiting")
    context = {"debits": items, "waiting": waiting, "names": names, "csrf": request[SESSION].csrf}
    return render(request, "debits.html", context)


@owner_page
async def debit_page(request: web.Request) -> web.StreamResponse:
    key = request.match_info["key"]
    async with request.app[POOL].acquire() as conn:
        item = json.loads(await debits.debit(conn, key, request[SESSION].user_id, OWNER))
        log = json.loads(await debits.log(conn, key))
        names = await _account_names(conn)
        summary = json.loads(await debits.owner_listing(conn, uuid.UUID(item["key"])))[0]
    context = {
        "debit": item, "state": summary["state"], "window_ended": summary["windowEnded"], "log": log,
        "names": names, "csrf": request[SESSION].csrf,
    }  # fmt: skip
    return render(request, "debit.html", context)


async def _set_debit(request: web.Request, enabled: bool) -> web.StreamResponse:
    async with db.transaction(request.app[POOL]) as conn:
        key = await debits.set_enabled(conn, request.match_info["key"], enabled, request[SESSION].user_id)
        state = json.loads(await debits.owner_listing(conn, key))[0]["state"]
    if state == "ended":  # enabled, yet the app can read nothing: the debit's page says so
        return see_other(f"/owner/debits/{key}")
    return see_other(_back(request, f"/owner/debits#debit-{key}"))


@owner_page
async def enable_debit(request: web.Request) -> web.StreamResponse:
    return await _set_debit(request, True)


@owner_page
async def disable_debit(request: web.Request) -> web.StreamResponse:
    return await _set_debit(request, False)


def _back(request: web.Request, default: str) -> str:
    """Where a button's form asked to return (its `back` field, a path on this HAT)."""
    back = request[FORM].get("back")
    return local_path(back) if back else default


# -- accounts ----------------------------------------------------------------------------------


@owner_page
async def accounts_page(request: web.Request) -> web.StreamResponse:
    items = json.loads(await accounts.list_accounts(request.app[POOL]))
    apps = [item for item in items if item["role"] in CREATABLE_ROLES]
    special = [item for item in items if item["role"] not in CREATABLE_ROLES]
    return render(request, "accounts.html", {"apps": apps, "special": special, "csrf": request[SESSION].csrf})


async def _set_account(request: web.Request, enabled: bool) -> web.StreamResponse:
    user_id = uuid.UUID(request.match_info["userId"])
    async with request.app[CALLERS].changing(request.app[POOL]) as conn:
        await accounts.set_enabled(conn, user_id, enabled)
    return see_other(f"/owner/accounts#account-{user_id}")


@owner_page
async def enable_account(request: web.Request) -> web.StreamResponse:
    return await _set_account(request, True)


@owner_page
async def disable_account(request: web.Request) -> web.StreamResponse:
    return await _set_account(request, False)


# -- approved services -------------------------------------------------------------------------


@owner_page
async def services_page(request: web.Request) -> web.StreamResponse:
    items = await approvals.listing(request.app[POOL], request.app[SETTINGS])
    return render(request, "services.html", {"services": items, "csrf": request[SESSION].csrf})


@owner_page
async def approve_service(request: web.Request) -> web.StreamResponse:
    form = load(ApproveServiceFormSchema, request[FORM])
    origin = origin_of(form["origin"])
    assert origin is not None  # the schema checked it
    if origin in request.app[SETTINGS].preset_services:
        raise Conflict(f"{origin} is approved already, by your provider")
    async with db.transaction(request.app[POOL]) as conn:
        approval_id = await services.approve(conn, form["name"].strip(), origin)
    return see_other(f"/owner/services#service-{approval_id}")


@owner_page
async def revoke_service(request: web.Request) -> web.StreamResponse:
    async with request.app[CALLERS].changing(request.app[POOL]) as conn:
        await approvals.revoke(conn, path_id(request, "id", "approved service"), request[SESSION].user_id)
    return see_other("/owner/services")


# -- the rest ----------------------------------------------------------------------------------


async def home(request: web.Request) -> web.StreamResponse:
    return see_other("/owner")


async def stylesheet(request: web.Request) -> web.StreamResponse:
    return web.Response(
        body=(STATIC_DIR / "hatd.css").read_bytes(),
        content_type="text/css",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


KEY_PATH = "{key:[0-9a-fA-F-]{36}}"

# PUBLIC for the token middleware: the pages check the owner's session cookie themselves
# (session=True), and their errors are pages too.
ROUTES = [
    Route("GET", "/hatlogin", hatlogin, name="hatlogin", roles=PUBLIC, query=HatLoginQuerySchema, produces=HTML,
          summary="Login with HAT: the owner logs in, then clicks the service's icon",
          description="Not logged in: the owner's login form. Logged in: the service's name and address under "
          "an icon; its button POSTs here and redirects to `redirect?token=<JWT>`, keeping the redirect's own "
          "query. The token has accessScope `validate`, resource = the redirect address, and calls no data route."),
    Route("POST", "/hatlogin", hatlogin_approve, name="hatlogin_approve", roles=PUBLIC, session=True, produces=HTML,
          body=HatLoginFormSchema, form=True, status=303,
          summary="The owner approves Login with HAT; 303 to the service with ?token=<JWT>"),
    Route("GET", "/owner/login", login_page, name="owner_login_page", roles=PUBLIC, produces=HTML, errors=(303,),
          summary="The owner's login page (303 to `next` when a session is open)"),
    Route("POST", "/owner/login", login, name="owner_login", roles=PUBLIC, produces=HTML, body=LoginFormSchema,
          form=True, status=303, errors=(401, 403, 429),
          summary="Log the owner in; sets the session cookie and 303s to `next`"),
    Route("POST", "/owner/logout", logout, name="owner_logout", roles=PUBLIC, session=True, produces=HTML,
          body=ButtonFormSchema, form=True, status=303, summary="End the owner's session; 303 to the login page"),
    Route("GET", "/owner", data_page, name="owner_data", roles=PUBLIC, session=True, produces=HTML,
          summary="The owner's data: sources and tables, with records and last update"),
    Route("GET", "/owner/export", export_download, name="owner_export", roles=PUBLIC, session=True,
          produces=exports.MEDIA_TYPE, head=False, errors=(403, 409),
          summary="Download the whole HAT (the document of GET /export and `hatd export`)"),
    Route("GET", "/owner/debits", debits_page, name="owner_debits", roles=PUBLIC, session=True, produces=HTML,
          summary="Data debits, with enable and disable buttons"),
    Route("GET", f"/owner/debits/{KEY_PATH}", debit_page, name="owner_debit", roles=PUBLIC, session=True,
          produces=HTML, summary="One data debit: its bundle and its log"),
    Route("POST", f"/owner/debits/{KEY_PATH}/enable", enable_debit, name="owner_enable_debit", roles=PUBLIC,
          session=True, produces=HTML, body=ButtonFormSchema, form=True, status=303,
          summary="Enable a data debit; 303 back, or to the debit's page, which warns, when its window has ended"),
    Route("POST", f"/owner/debits/{KEY_PATH}/disable", disable_debit, name="owner_disable_debit", roles=PUBLIC,
          session=True, produces=HTML, body=ButtonFormSchema, form=True, status=303,
          summary="Disable a data debit; 303 back"),
    Route("GET", "/owner/accounts", accounts_page, name="owner_accounts", roles=PUBLIC, session=True,
          produces=HTML, summary="Apps' accounts (dataDebit, dataCredit), with enable and disable buttons"),
    Route("POST", f"/owner/accounts/{USER_ID}/enable", enable_account, name="owner_enable_account", roles=PUBLIC,
          session=True, produces=HTML, body=ButtonFormSchema, form=True, status=303,
          summary="Enable an app's account; 303 back"),
    Route("POST", f"/owner/accounts/{USER_ID}/disable", disable_account, name="owner_disable_account",
          roles=PUBLIC, session=True, produces=HTML, body=ButtonFormSchema, form=True, status=303,
          summary="Disable an app's account; 303 back"),
    Route("GET", "/owner/services", services_page, name="owner_services", roles=PUBLIC, session=True,
          produces=HTML, summary="Services approved for Login with HAT (they get owner tokens), with revoke buttons"),
    Route("POST", "/owner/services", approve_service, name="owner_approve_service", roles=PUBLIC, session=True,
          produces=HTML, body=ApproveServiceFormSchema, form=True, status=303, errors=(409,),
          summary="Approve a service (its name and origin): /hatlogin then gives it an owner token; 303 back"),
    Route("POST", r"/owner/services/{id:\d+}/revoke", revoke_service, name="owner_revoke_service", roles=PUBLIC,
          session=True, produces=HTML, body=ButtonFormSchema, form=True, status=303,
          summary="Revoke a service's approval; the tokens it got stop working at once; 303 back"),
    Route("GET", "/owner/static/hatd.css", stylesheet, name="owner_stylesheet", roles=PUBLIC, produces="text/css",
          summary="The pages' stylesheet"),
    Route("GET", "/", home, name="home", roles=PUBLIC, produces=HTML, status=303,
          summary="303 to the owner's pages"),
]  # fmt: skip
