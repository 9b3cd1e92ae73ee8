"""Typed keys for what the application and each request carry."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from hatd.accounts.passwords import Lanes
from hatd.callers import CallerCache
from hatd.metrics import Metrics
from hatd.outage import DatabaseWatch
from hatd.ratelimit import RateLimiter
from hatd.settings import Settings
from hatd.tokens import TokenService


@dataclass(frozen=True)
class Caller:
    """The account behind the request's token."""

    user_id: str
    role: str
    # The approved service the token was given to (hatd/services), if it was given to one.
    approval: str | None = None


SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
TOKENS = web.AppKey("tokens", TokenService)
LOGIN_LIMITER = web.AppKey("login_limiter", RateLimiter)
LOGIN_FAILURE_LIMITER = web.AppKey("login_failure_limiter", RateLimiter)
METRICS = web.AppKey("metrics", Metrics)
# Failed logins on the owner's login page, per client.
PAGE_LOGIN_LIMITER = web.AppKey("page_login_limiter", RateLimiter)
# Held while GET /export streams: one export at a time per HAT process.
EXPORT_LOCK = web.AppKey("export_lock", asyncio.Lock)
# Failed logins per device that has logged in before (hatd/accounts/devices.py).
DEVICE_LIMITER = web.AppKey("device_limiter", RateLimiter)
# The threads that check passwords at login.
PASSWORD_LANES = web.AppKey("password_lanes", Lanes)
# Whether the database is down, since when (503s and two log lines instead of a 500 per request).
DATABASE_WATCH = web.AppKey("database_watch", DatabaseWatch)
# What token checks need of the database, kept in memory while it listens for changes (hatd/callers.py).
CALLERS = web.AppKey("callers", CallerCache)
CALLER = web.RequestKey("caller", Caller)
