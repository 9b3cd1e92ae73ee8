"""The aiohttp application: settings, pool, token service, middlewares and every domain's routes.

A data domain joins by adding its package (views.py with a ROUTES table, schemas.py,
repository.py, sql/queries/<domain>.sql, a migration) and one line in DOMAINS below."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from hatd import db
from hatd.accounts import repository as accounts
from hatd.accounts import views as accounts_views
from hatd.accounts.passwords import Lanes
from hatd.bundles import views as bundles_views
from hatd.context import views as context_views
from hatd.debits import views as debits_views
from hatd.exports import views as exports_views
from hatd.metrics import Metrics
from hatd.middleware import MIDDLEWARES, add_cors_headers
from hatd.openapi import spec_for
from hatd.outage import DatabaseWatch
from hatd.ratelimit import RateLimiter
from hatd.raw import views as raw_views
from hatd.routing import ROUTES_KEY, Route, add_routes
from hatd.services import approvals
from hatd.settings import Settings
from hatd.state import (
    DATABASE_WATCH,
    DEVICE_LIMITER,
    EXPORT_LOCK,
    LOGIN_FAILURE_LIMITER,
    LOGIN_LIMITER,
    METRICS,
    PAGE_LOGIN_LIMITER,
    PASSWORD_LANES,
    POOL,
    SETTINGS,
    TOKENS,
)
from hatd.system import views as system_views
from hatd.system.views import OPENAPI_KEY
from hatd.tokens import TokenService
from hatd.web import pages
from hatd.web import upload as web_upload
from hatd.web import views as web_views

log = logging.getLogger("hatd")

USERNAME_FACTOR = 5

DOMAINS: list[list[Route]] = [
    accounts_views.ROUTES,
    raw_views.ROUTES,
    context_views.ROUTES,
    bundles_views.ROUTES,
    debits_views.ROUTES,
    exports_views.ROUTES,
    system_views.ROUTES,
    web_views.ROUTES,
    web_upload.ROUTES,
]


async def _close(lanes: Lanes) -> None:
    lanes.close()


class HatNotCreated(RuntimeError):
    """The database has no signing key: the HAT was never created."""


def create_app(settings: Settings, *, pool: asyncpg.Pool | None = None) -> web.Application:
    """The application for one HAT. With `pool`, it uses that pool and leaves closing it to the
    caller; otherwise it opens one on settings.database_url for its own lifetime."""
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=settings.max_body)
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    # Every login attempt costs the client a token. Failed ones also cost the username a token, from
    # a bucket USERNAME_FACTOR times larger and faster, so that guessing one account from many
    # addresses is slowed, yet one client alone can never lock the owner out.
    app[LOGIN_LIMITER] = RateLimiter(burst=settings.login_burst, refill_seconds=settings.login_refill_seconds)
    app[LOGIN_FAILURE_LIMITER] = RateLimiter(
        burst=settings.login_burst * USERNAME_FACTOR, refill_seconds=settings.login_refill_seconds / USERNAME_FACTOR
    )
    app[PAGE_LOGIN_LIMITER] = RateLimiter(
        burst=settings.page_login_burst, refill_seconds=settings.page_login_refill_seconds
    )
    # A device that has logged in before has its own bucket of failures (hatd/accounts/devices.py).
    app[DEVICE_LIMITER] = RateLimiter(burst=settings.login_burst, refill_seconds=settings.login_refill_seconds)
    app[PASSWORD_LANES] = lanes = Lanes.create()
    app.on_cleanup.append(lambda _: _close(lanes))
    app[DATABASE_WATCH] = watch = DatabaseWatch()
    app.on_cleanup.append(lambda _: watch.close())
    app[EXPORT_LOCK] = asyncio.Lock()
    for routes in DOMAINS:
        add_routes(app, routes)
    pages.setup(app)
    app.on_response_prepare.append(add_cors_headers)

    async def database(app: web.Application) -> AsyncIterator[None]:
        own_pool = pool is None
        app[POOL] = pool or await db.create_pool(
            settings.database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size
        )
        try:
            keys = await accounts.current_signing_key(app[POOL])
            if keys is None:
                raise HatNotCreated("this database holds no HAT yet: run `hatd create-owner` (or `hatd serve`) first")
            app[TOKENS] = TokenService(
                keys, issuer=settings.issuer, ttl=settings.token_ttl, former_issuers=(settings.address,)
            )
            async with db.transaction(app[POOL]) as conn:
                await approvals.withdraw_stale_presets(conn, settings)
            yield
        finally:
            if own_pool:
                await app[POOL].close()

    app.cleanup_ctx.append(database)
    unique = {id(route): route for route in app[ROUTES_KEY].values()}
    app[OPENAPI_KEY] = spec_for(list(unique.values()))
    return app
