"""GET /export: the whole HAT, streamed to its owner as the same document `hatd export` writes."""

from __future__ import annotations

import datetime as dt
import logging

from aiohttp import web

from hatd.exports import repository
from hatd.routing import OWNER, Route
from hatd.state import POOL, SETTINGS

log = logging.getLogger("hatd.exports")


async def export(request: web.Request) -> web.StreamResponse:
    """Streams the export as PostgreSQL makes it (chunked, flat memory whatever the HAT's size).
    The response starts only once the snapshot is taken and its header made, so a failure before
    that is an ordinary JSON error; one after it breaks the connection, so the client sees an
    incomplete transfer (and an import a file shorter than its header says), never a short 200."""
    day = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    response = web.StreamResponse(
        headers={"Content-Disposition": f'attachment; filename="hat-export-{day}.jsonl"'},
    )
    response.content_type = repository.MEDIA_TYPE
    response.enable_chunked_encoding()

    async def write(chunk: bytes) -> None:
        if not response.prepared:
            await response.prepare(request)
        await response.write(chunk)

    async with request.app[POOL].acquire() as conn:
        try:
            await repository.export_hat(conn, request.app[SETTINGS].issuer, write)
        except Exception as exc:
            if not response.prepared:
                raise
            if isinstance(exc, ConnectionError):
                log.info("GET /export: the client went away: %s", exc)
            else:
                log.exception("GET /export failed after the response started; breaking the connection")
            if request.transport is not None:
                request.transport.close()
            return response
    await response.write_eof()
    return response


ROUTES = [
    Route("GET", "/export", export, name="export", roles=frozenset({OWNER}), produces=repository.MEDIA_TYPE,
          head=False, summary="The whole HAT as one JSON Lines document (docs/export.md), streamed",
          description="Every row of every table but the secrets (password hashes, the signing key), as "
          "`hatd export` writes it; `hatd import` restores it into a new HAT."),
]  # fmt: skip
