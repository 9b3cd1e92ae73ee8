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
from hatd.accounts.throttle import LoginThrottle
from hatd.bundles import views as bundles_views
from hatd.callers import CallerCache
from hatd.context import views as context_views
from hatd.debits import views as debits_views
from hatd.exports import views as exports_views
from hatd.metrics import Metrics
from hatd.middleware import MIDDLEWARES, add_cors_headers
from hatd.openapi import spec_for
from hatd.outage import DatabaseWatch
from hatd.raw import views as raw_views
from hatd.routing import ROUTES_KEY, Route, add_routes
from hatd.services import approvals
from hatd.settings import Settings
from hatd.state import (
    CALLERS,
    DATABASE_WATCH,
    EXPORT_LOCK,
    LOGIN_THROTTLE,
    METRICS,
    POOL,
    SETTINGS,
    TOKENS,
)
from hatd.system import views as system_views
from hatd.system.views import OPENAPI_KEY
from hatd.tokens import TokenService
from hatd.web import context as web_context
from hatd.web import data as web_data
from hatd.web import manage as web_manage
from hatd.web import pages
from hatd.web import upload as web_upload
from hatd.web import views as web_views

log = logging.getLogger("hatd")

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
    web_manage.ROUTES,
    web_data.ROUTES,
    web_context.ROUTES,
]


async def _close(throttle: LoginThrottle) -> None:
    throttle.close()


class HatNotCreated(RuntimeError):
    """The database has no signing key: the HAT was never created."""


def create_app(settings: Settings, *, pool: asyncpg.Pool | None = None) -> web.Application:
    """The application for one HAT. With `pool`, it uses that pool and leaves closing it to the
    caller; otherwise it opens one on settings.database_url for its own lifetime."""
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=settings.max_body)
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[LOGIN_THROTTLE] = throttle = LoginThrottle(settings)
    app.on_cleanup.append(lambda _: _close(throttle))
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
    app[CALLERS] = callers = CallerCache()

    async def listening(app: web.Application) -> AsyncIterator[None]:
        # Its own connection, outside the pool: it LISTENs for as long as the process serves.
        task = asyncio.create_task(callers.listen(settings.database_url))
        await callers.attempted.wait()  # serve from memory from the first request, if it can
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    app.cleanup_ctx.append(listening)
    unique = {id(route): route for route in app[ROUTES_KEY].values()}
    app[OPENAPI_KEY] = spec_for(list(unique.values()))
    return app
