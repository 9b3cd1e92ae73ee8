"""GET /export: the whole HAT, streamed to its owner as the same document `hatd export` writes."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from aiohttp import web
from asyncpg import PostgresError

from hatd.errors import Conflict
from hatd.exports import repository
from hatd.roles import OWNER
from hatd.routing import Route
from hatd.state import EXPORT_LOCK, POOL, SETTINGS

log = logging.getLogger("hatd.exports")


# A write the client has taken none of for this many seconds aborts the export: a client that
# stops reading must not hold a pooled connection and an old snapshot (PostgreSQL keeps every row
# version since) for as long as the COPY's own time limit.
WRITE_TIMEOUT = 60.0


class ExportStalled(RuntimeError):
    """The client stopped reading the export."""


async def export(request: web.Request) -> web.StreamResponse:
    """Streams the export as PostgreSQL makes it (chunked, flat memory whatever the HAT's size).
    The response starts only once the snapshot is taken and its header made, so a failure before
    that is an ordinary JSON error; one after it breaks the connection, so the client sees an
    incomplete transfer (and an import a file shorter than its header says), never a short 200.
    One at a time per HAT process: a second gets 409 while the first streams."""
    lock = request.app[EXPORT_LOCK]
    if lock.locked():
        raise Conflict("An export of this HAT is under way; one runs at a time: try again when it has ended")
    async with lock:
        return await _export(request)


async def _export(request: web.Request) -> web.StreamResponse:
    day = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    response = web.StreamResponse(
        headers={"Content-Disposition": f'attachment; filename="hat-export-{day}.jsonl"', "Cache-Control": "no-store"},
    )
    response.content_type = repository.MEDIA_TYPE
    response.enable_chunked_encoding()

    async def write(chunk: bytes) -> None:
        if not response.prepared:
            await response.prepare(request)
        timeout = WRITE_TIMEOUT  # read at each write, so that a test can shorten it
        try:
            await asyncio.wait_for(response.write(chunk), timeout)
        except TimeoutError:
            raise ExportStalled(f"the client took nothing for {timeout:g} s") from None

    async with request.app[POOL].acquire() as conn:
        try:
            await repository.export_hat(conn, request.app[SETTINGS].address, write)
        except Exception as exc:
            if not response.prepared:
                raise
            # The status line has gone out as 200 (and the access log will say 200): this line says
            # the transfer broke, and why (never a row: the cause is ours, or the failure's class and SQLSTATE).
            if isinstance(exc, ExportStalled | ConnectionError):
                cause = f"{type(exc).__name__}: {exc}"
            else:
                cause = type(exc).__name__ + (f" (SQLSTATE {exc.sqlstate})" if isinstance(exc, PostgresError) else "")
                log.debug("GET /export failed", exc_info=True)
            log.warning("GET /export aborted after the 200 response started, the transfer is broken: %s", cause)
            if request.transport is not None:
                request.transport.close()
            return response
    await response.write_eof()
    return response


ROUTES = [
    Route("GET", "/export", export, name="export", roles=frozenset({OWNER}), produces=repository.MEDIA_TYPE,
          head=False, errors=(409,), summary="The whole HAT as one JSON Lines document (docs/export.md), streamed",
          description="Every row of every table but the secrets (password hashes, the signing key), as "
          "`hatd export` writes it; `hatd import` restores it into a new HAT."),
]  # fmt: skip
