"""Typed keys for what the application and each request carry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from hatd.accounts.throttle import LoginThrottle
from hatd.callers import CallerCache
from hatd.metrics import Metrics
from hatd.outage import DatabaseWatch
from hatd.settings import Settings
from hatd.tokens import TokenService


@dataclass(frozen=True)
class Caller:
    """The account behind the request's token."""

    user_id: str
    role: str
    # The approved service the token was given to (hatd/services), if it was given to one.
    approval: str | None = None


@dataclass(frozen=True)
class PageHooks:
    """What the middleware asks of the owner's pages (hatd/web/pages.py) without importing them:
    whether a request is for a page, and an error answered as a page."""

    is_page: Callable[[web.Request], bool]
    error_page: Callable[[web.Request, int, str, str, dict[str, str] | None], web.Response]


SETTINGS = web.AppKey("settings", Settings)
# Set by hatd/web/pages.py's setup; an app without pages answers every error as JSON.
PAGE_HOOKS = web.AppKey("page_hooks", PageHooks)
POOL = web.AppKey("pool", asyncpg.Pool)
TOKENS = web.AppKey("tokens", TokenService)
# Every password check's limits and bcrypt lanes (hatd/accounts/throttle.py).
LOGIN_THROTTLE = web.AppKey("login_throttle", LoginThrottle)
METRICS = web.AppKey("metrics", Metrics)
# Held while GET /export streams: one export at a time per HAT process.
EXPORT_LOCK = web.AppKey("export_lock", asyncio.Lock)
# Whether the database is down, since when (503s and two log lines instead of a 500 per request).
DATABASE_WATCH = web.AppKey("database_watch", DatabaseWatch)
# What token checks need of the database, kept in memory while it listens for changes (hatd/callers.py).
CALLERS = web.AppKey("callers", CallerCache)
CALLER = web.RequestKey("caller", Caller)
