"""What describes the server itself: the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from hatd.http import json_response
from hatd.routing import PUBLIC, Route

# Built once by create_app, from every route declared.
OPENAPI_KEY = web.AppKey("openapi", dict)


async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI_KEY])


ROUTES = [
    Route("GET", "/api/openapi.json", openapi, name="openapi", roles=PUBLIC, summary="This document"),
]
