"""What describes the server itself: the OpenAPI document, and whether it is healthy."""

from __future__ import annotations

import asyncio
import hmac
import logging

import asyncpg
from aiohttp import web
from marshmallow import Schema, fields

from hatd import db
from hatd.backup import service as backups
from hatd.errors import Forbidden
from hatd.http import json_response
from hatd.middleware import authenticate
from hatd.roles import OWNER, PLATFORM
from hatd.routing import PUBLIC, Route
from hatd.state import CALLERS, METRICS, POOL, SETTINGS

log = logging.getLogger("hatd.health")
# A health check that waits longer than this says the database is not answering.
HEALTH_TIMEOUT = 2.0


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"description": "ok, or unavailable"})
    database = fields.String(required=True)
    schemaVersion = fields.Integer(allow_none=True)


# Built once by create_app, from every route declared.
OPENAPI_KEY = web.AppKey("openapi", dict)


async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI_KEY])


async def health(request: web.Request) -> web.Response:
    """200 when the process serves and its database answers; 503 otherwise (for load balancers and
    orchestrators, so no token is needed and nothing about the HAT's data is said)."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            version = await request.app[POOL].fetchval(db.Q.health)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("health check: the database does not answer: %s", exc)
        return json_response({"status": "unavailable", "database": "unavailable", "schemaVersion": None}, status=503)
    return json_response({"status": "ok", "database": "ok", "schemaVersion": version})


class UpdateSchema(Schema):
    message = fields.String(required=True, metadata={"description": "Database updated"})
    applied = fields.List(fields.String(), required=True, metadata={"description": "Migrations applied now"})
    schemaVersion = fields.Integer(required=True)


async def update(request: web.Request) -> web.Response:
    """The original's GET /system/update: apply what is pending (migrations, the default vocabulary
    among them), and say so. hatd migrates when it starts, so there is usually nothing to do."""
    async with request.app[POOL].acquire() as conn:
        applied = await db.migrate(conn)
        version = await conn.fetchval(db.Q.health)
    names = [f"{m.version:04d}_{m.name}" for m in applied]
    return json_response({"message": "Database updated", "applied": names, "schemaVersion": version})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text: for the owner's token, or the configured scrape secret as a bearer token."""
    secret = request.app[SETTINGS].metrics_token
    given = request.headers.get("Authorization", "")
    if not (secret and hmac.compare_digest(given.encode(), f"Bearer {secret}".encode())):
        caller = await authenticate(request)
        if caller.role != OWNER:
            raise Forbidden(f"GET /metrics is for owner (or the scrape secret); this is a {caller.role} token")
    pool, callers = request.app[POOL], request.app[CALLERS]
    gauges = {
        "hatd_pool_connections": (
            "Database connections of the pool, by state.",
            {'state="in_use"': pool.get_size() - pool.get_idle_size(), 'state="idle"': pool.get_idle_size(),
             'state="max"': pool.get_max_size()},
        ),
        "hatd_values_stored_estimate": (
            "Raw values stored (PostgreSQL's estimate).",
            {"": await pool.fetchval(db.Q.values_stored_estimate)},
        ),
        "hatd_token_cache_listening": (
            "1 while token checks are answered from memory (changes are heard), 0 while each asks the database.",
            {"": int(callers.trusted)},
        ),
        "hatd_token_cache_lookups": (
            "Token checks since the process started, by where the account's standing came from.",
            {'source="memory"': callers.hits, 'source="database"': callers.misses},
        ),
        "hatd_token_cache_entries": ("Accounts and approvals held in memory.", {"": callers.size()}),
    }  # fmt: skip
    backup = request.app.get(backups.SERVICE)
    if backup is not None:
        gauges |= backups.gauges(await asyncio.to_thread(backup.status))
    return web.Response(text=request.app[METRICS].render(gauges), content_type="text/plain", charset="utf-8")


ROUTES = [
    Route("GET", "/api/openapi.json", openapi, name="openapi", roles=PUBLIC, summary="This document"),
    Route("GET", "/system/update", update, name="system_update", roles=frozenset({OWNER, PLATFORM}), head=False,
          response=UpdateSchema, summary="Apply pending migrations (the default vocabulary among them); 200 says so",
          description="The original's call: hat-client-scala-play expects 200 (\"Database updated\")."),
    Route("GET", "/health", health, name="health", roles=PUBLIC, response=HealthSchema, responses={503: HealthSchema},
          summary="Whether the process serves and its database answers (503 if not)"),
    # PUBLIC for the auth middleware: the handler takes the owner's token or the scrape secret itself.
    Route("GET", "/metrics", metrics, name="metrics", roles=PUBLIC, produces="text/plain", errors=(401, 403),
          summary="Prometheus metrics: requests and latency by route and status, the pool, values stored",
          description="The owner's X-Auth-Token, or Authorization: Bearer <HATD_METRICS_TOKEN>."),
]  # fmt: skip
