"""The owner uploads a .ics, .gpx or .csv file on the data page, and the same data plug that
`hatd plug` runs imports it: through hatd.client, against this HAT's own API, with a token made for
the owner's session. So an upload goes through every check a plug's request does, and the page
never takes a shortcut into the database that the plugs cannot."""

from __future__ import annotations

import asyncio
import math
from pathlib import PurePath

from aiohttp import web
from marshmallow import ValidationError

from hatd.client.aio import AsyncHat
from hatd.errors import BadRequest
from hatd.plugs import EXTENSIONS, Summary, import_file, make_plug
from hatd.roles import OWNER
from hatd.routing import HTML, PUBLIC, Route
from hatd.state import TOKENS
from hatd.validation import validation_cause
from hatd.web.pages import FORM, SESSION, owner_page, render
from hatd.web.schemas import UploadFormSchema

# An upload's import reads and writes many pages of the API; give it time, not forever (seconds,
# for the whole upload; its token lives as long).
TIMEOUT = 600.0
# The most items (rows, events, tracks and points) one uploaded file may hold: an import holds
# them all in memory (a few hundred bytes to 2 kB each), and a server must not give an upload GBs.
# A bigger file is refused with a 400 page saying so; `hatd plug` has no such cap. docs/plugs.md.
MAX_ITEMS = 100_000
# The most refusals the summary page lists (it says how many more there are).
SHOWN_REFUSALS = 100


def own_address(request: web.Request) -> str:
    """This server as the upload's client reaches it: the address and port the request came in on
    (the HAT's public address may be a proxy that this machine cannot reach)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not isinstance(sockname, tuple) or len(sockname) < 2:
        raise BadRequest("This server cannot call its own API from here", message="Upload not available")
    host, port = str(sockname[0]), int(sockname[1])
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@owner_page
async def upload(request: web.Request) -> web.StreamResponse:
    try:
        options = UploadFormSchema().load(request[FORM])
    except ValidationError as exc:
        raise BadRequest(validation_cause(exc), message="Invalid form") from None
    posted = (await request.post()).get("file")
    if not isinstance(posted, web.FileField) or not posted.filename:
        raise BadRequest("file: choose a .ics, .gpx or .csv file to upload", message="Invalid form")
    name = PurePath(posted.filename).name
    kind = EXTENSIONS.get(PurePath(name).suffix.lower())
    if kind is None:
        raise BadRequest(f"file: {name!r} is not a .ics, .gpx or .csv file", message="Invalid form")
    if kind != "csv" and (options["table"] or options["key"] or options["time"]):
        raise BadRequest("table, key and time are for CSV files", message="Invalid form")
    data = await asyncio.to_thread(posted.file.read)  # aiohttp keeps an upload in a temporary file
    plug = make_plug(kind, table=options["table"].strip(), key=options["key"], time=options["time"])
    # The token lives as long as the upload may take (not an API token's hours), and the upload
    # takes no longer: past its timeout, it stops, and uploading the file again finishes it.
    token = request.app[TOKENS].issue(request[SESSION].user_id, OWNER, ttl=math.ceil(TIMEOUT))
    try:
        async with asyncio.timeout(TIMEOUT), AsyncHat(own_address(request), token, timeout=TIMEOUT) as hat:
            summary = await import_file(hat, plug, data, name, max_items=MAX_ITEMS)
    except TimeoutError:
        summary = Summary(name, stopped=f"it took longer than {TIMEOUT // 60:.0f} minutes; what went in stays")
    status = 400 if summary.error is not None else 200
    context = {"summary": summary, "kind": kind, "shown": SHOWN_REFUSALS}
    return render(request, "upload.html", context, status=status)


ROUTES = [
    Route("POST", "/owner/upload", upload, name="owner_upload", roles=PUBLIC, session=True, produces=HTML,
          body=UploadFormSchema, form=True, multipart=True, errors=(413,),
          summary="Import a .ics, .gpx or .csv file with the data plugs; a page says what was stored",
          description="The same plug code as `hatd plug`, through this HAT's own API with the owner's rights: "
          "a second upload of the same file stores nothing twice; bad items are refused by their line, and the "
          "good ones stored. 400 when the whole file is refused (nothing stored)."),
]  # fmt: skip
