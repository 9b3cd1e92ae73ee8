"""What describes the server itself: the OpenAPI document, and whether it is healthy."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aiohttp import web
from marshmallow import Schema, fields

from hatd import db
from hatd.http import json_response
from hatd.routing import PUBLIC, Route
from hatd.state import POOL

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


ROUTES = [
    Route("GET", "/api/openapi.json", openapi, name="openapi", roles=PUBLIC, summary="This document"),
    Route("GET", "/health", health, name="health", roles=PUBLIC, response=HealthSchema, errors=(503,),
          summary="Whether the process serves and its database answers (503 if not)"),
]  # fmt: skip
