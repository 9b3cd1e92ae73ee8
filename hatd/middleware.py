"""The request pipeline, outermost first: CORS preflights, errors to JSON, request guards
(406, 413), and authentication against each route's declared roles."""

from __future__ import annotations

import asyncio
import functools
import logging
import time

import asyncpg
from aiohttp import web

from hatd import jsontext
from hatd.errors import ApiError, Forbidden, NotAcceptable, PayloadTooLarge, Unauthorized
from hatd.outage import RETRY_AFTER, cause_of
from hatd.roles import ALL_ROLES
from hatd.routing import Handler, plain_path, route_of
from hatd.services import approvals
from hatd.state import CALLER, CALLERS, DATABASE_WATCH, METRICS, PAGE_HOOKS, POOL, SETTINGS, TOKENS, Caller

log = logging.getLogger("hatd.http")

CORS_ALLOW_HEADERS = "X-Auth-Token, Content-Type, Accept, username, password, pass"
CORS_EXPOSE_HEADERS = "Link, Retry-After, Content-Disposition"
CORS_MAX_AGE = "600"

# aiohttp's own HTTP exceptions (no route, wrong method, body too large...) -> our message.
_HTTP_MESSAGES = {
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
}


def _allowed_origin(request: web.Request) -> str | None:
    """The request's Origin if the API may answer it cross-origin. The token API may (by default to
    any origin: its tokens travel in headers a page on another origin must be given, never in
    cookies, so allowing the origin grants nothing by itself); the owner's pages, which trust a
    cookie, never."""
    origin = request.headers.get("Origin")
    if not origin or _is_page(request):
        return None
    origins = request.app[SETTINGS].cors_origins
    return origin if ("*" in origins or origin in origins) else None


@web.middleware
async def cors_preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a CORS preflight from an allowed origin before routing sees the OPTIONS request."""
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers and _allowed_origin(request):
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
                "Access-Control-Max-Age": CORS_MAX_AGE,
            },
        )
    return await handler(request)


def _is_page(request: web.Request) -> bool:
    hooks = request.app.get(PAGE_HOOKS)
    return hooks is not None and hooks.is_page(request)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response to an allowed origin, errors and streams included,
    carries the CORS headers."""
    if "Origin" in request.headers:
        response.headers.add("Vary", "Origin")
    origin = _allowed_origin(request)
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS


def error_response(status: int, message: str, cause: str, headers: dict[str, str] | None = None) -> web.Response:
    """{"message", "cause"} as JSON: the body of every error the API answers with."""
    return web.Response(
        status=status,
        text=jsontext.dumps({"message": message, "cause": cause}),
        content_type="application/json",
        headers=headers,
    )


def _error(
    request: web.Request, status: int, message: str, cause: str, headers: dict[str, str] | None = None
) -> web.Response:
    """{"message", "cause"} as JSON, or as a page for the owner's pages and /hatlogin."""
    hooks = request.app.get(PAGE_HOOKS)
    if hooks is not None and hooks.is_page(request):
        return hooks.error_page(request, status, message, cause, headers)
    return error_response(status, message, cause, headers)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes {"message", "cause"} with its status (a page, on the pages);
    unexpected ones are logged and answered with a 500 that reveals nothing."""
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(request, exc.status, exc.message, exc.cause, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        if exc.status == 404:
            cause = f"There is no route {request.rel_url.raw_path}"
        elif exc.status == 405:
            cause = f"{request.method} is not allowed on {request.path}; allowed: {headers.get('Allow', '')}"
        elif exc.status == 413:
            cause = f"The request body is larger than {request.app[SETTINGS].max_body} bytes"
        else:
            cause = exc.text or exc.reason
        return _error(request, exc.status, _HTTP_MESSAGES.get(exc.status, exc.reason), cause, headers)
    except (TimeoutError, asyncpg.QueryCanceledError):
        log.warning("query timed out on %s %s", request.method, request.rel_url.raw_path)
        return _error(
            request, 503, "Service unavailable", "The request took too long and was stopped; nothing was stored"
        )
    except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
        # Two requests collided in the database; PostgreSQL undid this one whole.
        return _error(request, 409, "Conflict", "The request collided with another one; nothing was stored; try again")
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if await request.app[DATABASE_WATCH].is_outage(request.app.get(POOL), exc):
            return _error(
                request, 503, "Service unavailable", cause_of(exc), {"Retry-After": str(RETRY_AFTER)},
            )  # fmt: skip
        log.exception("unhandled error on %s %s", request.method, request.rel_url.raw_path)
        return _error(request, 500, "Internal server error", "An unexpected error occurred; it has been logged")


@functools.lru_cache(maxsize=256)
def _accepts(accept: str, produces: str) -> bool:
    """Whether an Accept header admits the media type a route produces. (Clients send the same few
    headers again and again; parsing one cost a tenth of a validate request.)"""
    kind = produces.split("/")[0]
    for item in accept.lower().split(","):
        media, *params = [part.strip() for part in item.split(";")]
        if any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params):
            continue
        if media in ("*/*", f"{kind}/*", produces, ""):
            return True
    return False


@web.middleware
async def guards(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse what no handler should see: a body over the limit (413) and an Accept header that
    excludes what the route answers with (406)."""
    limit = request.app[SETTINGS].max_body
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The request body is {request.content_length} bytes; the limit is {limit}")
    route = route_of(request)
    accept = request.headers.get("Accept")
    if route is not None and route.negotiated and accept and not _accepts(accept, route.produces):
        raise NotAcceptable(f"This route answers with {route.produces}, which the Accept header excludes")
    return await handler(request)


def token_of(request: web.Request) -> str | None:
    """The token a request carries: the X-Auth-Token header (any case), or the X-Auth-Token or
    access_token query parameter."""
    return (
        request.headers.get("X-Auth-Token")
        or request.query.get("X-Auth-Token")
        or request.query.get("x-auth-token")
        or request.query.get("access_token")
    )


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check the token against the route's declared roles. Routes that did not match (404, 405)
    pass through to be answered as such."""
    route = route_of(request)
    if route is None or route.public:
        return await handler(request)
    caller = await authenticate(request)
    if caller.role not in route.roles:
        allowed = ", ".join(sorted(route.roles)) if route.roles != ALL_ROLES else "any account"
        raise Forbidden(f"{route.method} {plain_path(route.path)} is for {allowed}; this is a {caller.role} token")
    request[CALLER] = caller
    return await handler(request)


async def authenticate(request: web.Request) -> Caller:
    """The account behind the request's token, checked in full (signature, claims, and that the
    account exists, is enabled and has the token's role), or Unauthorized saying what is wrong.
    The account's standing comes from memory while the process listens for its changes
    (hatd/callers.py), else from the database."""
    token = token_of(request)
    if not token:
        raise Unauthorized("No X-Auth-Token header or query parameter")
    claims = request.app[TOKENS].check(token)
    callers, pool = request.app[CALLERS], request.app[POOL]
    standing = await callers.standing(pool, claims.user_id)
    if standing is None:
        raise Unauthorized("The token's account does not exist")
    if not standing.enabled:
        raise Unauthorized("The token's account is disabled")
    if standing.role != claims.role:
        raise Unauthorized("The token's role is not its account's role")
    if claims.approval is not None and not await approvals.stands(
        pool, request.app[SETTINGS], claims.approval, callers
    ):
        raise Unauthorized("The token was given to a service whose approval the owner has revoked")
    return Caller(user_id=claims.user_id, role=claims.role, approval=claims.approval)


@web.middleware
async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every answer, errors included, by route, method and status, with its duration."""
    start = time.perf_counter()
    response = await handler(request)
    route = route_of(request)
    request.app[METRICS].observe(route.name if route else "unmatched", request.method, response.status,
                                 time.perf_counter() - start)  # fmt: skip
    return response


MIDDLEWARES = [measure, cors_preflight, errors, guards, auth]
