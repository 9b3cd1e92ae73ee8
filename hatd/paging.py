"""Paged reads, the same for raw values, bundles and data debits: `limit`, a `starttime`/`endtime`
window, newest first, and a `Link: <...>; rel="next"` header whose URL carries an opaque cursor
bound to the read it was made for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from marshmallow import ValidationError

from hatd.errors import BadRequest
from hatd.http import json_text, page_limit, parse_query, stream_json
from hatd.reads import PageQuerySchema, Window, decode_cursor, encode_cursor
from hatd.state import SETTINGS
from hatd.validation import validation_cause


def read_page(request: web.Request, scope: str) -> tuple[Window, tuple[Any, Any], int]:
    """(time window, cursor position, limit) from the query of a read of `scope` ("table:4")."""
    query = parse_query(request, PageQuerySchema)
    limit = page_limit(request, query["limit"])
    try:
        after = decode_cursor(scope, query["cursor"]) if query["cursor"] else (None, None)
    except ValidationError as exc:
        raise BadRequest(validation_cause(exc), message="Invalid request") from None
    return (query["starttime"], query["endtime"]), after, limit


def _link(request: web.Request, scope: str, more: Any) -> dict[str, str]:
    """The Link header to the next page when `more` (the position after this page) is given."""
    if more is None:
        return {}
    # The next page's URL, without any token the client put in the query: headers get logged.
    query = {k: v for k, v in request.query.items() if k.lower() not in ("access_token", "x-auth-token")}
    following = request.rel_url.with_query({**query, "cursor": encode_cursor(scope, *more)})
    return {"Link": f'<{request.app[SETTINGS].address}{following}>; rel="next"'}


def paged(request: web.Request, scope: str, text: str, more: Any) -> web.Response:
    """The page, with a Link to the next one when `more` (the position after this page) is given."""
    response = json_text(text)
    response.headers.update(_link(request, scope, more))
    return response


async def paged_stream(request: web.Request, scope: str, parts: AsyncIterator[str], more: Any) -> web.StreamResponse:
    """The page written as it is produced, with a Link to the next one as `paged` gives it."""
    return await stream_json(request, parts, headers=_link(request, scope, more))
