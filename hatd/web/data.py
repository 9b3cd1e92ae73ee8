"""The owner's tables on their pages: a table's records as a grid with charts of its numeric
fields, paged both ways within a time window; the table downloaded as CSV or JSON; and deleting a
record or a table after a page that says what goes with it. Reads and deletes go through the same
raw repository functions as the API's routes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import re
from typing import Any

from aiohttp import web
from marshmallow import ValidationError

from hatd import db
from hatd.bundles import repository as bundles
from hatd.errors import BadRequest
from hatd.http import parse_query, path_id
from hatd.raw import repository as raw
from hatd.raw.schemas import TableValuesItemSchema
from hatd.reads import decode_cursor, encode_cursor
from hatd.routing import HTML, JSON, PUBLIC, Route
from hatd.state import POOL
from hatd.validation import validation_cause
from hatd.web import charts, grid
from hatd.web.pages import FORM, SESSION, owner_page, render, see_other
from hatd.web.schemas import MAX_TRAIL, ButtonFormSchema, TableViewQuerySchema, local_path

log = logging.getLogger("hatd.web")

RECORDS_PER_PAGE = 25
# The charts draw the newest records of the window, up to this many.
CHART_RECORDS = 500
# The downloads read the table this many records at a time.
DOWNLOAD_PAGE = 2000
# A client that takes nothing of a download for this long ends it: it must not hold a pooled
# connection and an old snapshot open (as GET /export's WRITE_TIMEOUT).
WRITE_TIMEOUT = 60.0
CSV_TYPE = "text/csv"


def _view(request: web.Request, table_id: int) -> dict[str, Any]:
    """The window and place a table's page (or download) was asked for: 400 for a bad one."""
    query = parse_query(request, TableViewQuerySchema)
    scope = f"page-table:{table_id}"
    trail = query["trail"].split(".") if query["trail"] else []
    try:
        after = decode_cursor(scope, query["cursor"]) if query["cursor"] else (None, None)
        for cursor in trail:
            decode_cursor(scope, cursor)
    except ValidationError as exc:
        raise BadRequest(validation_cause(exc), message="Invalid request") from None
    return {
        "scope": scope, "window": (query["start"], query["end"]), "after": after,
        "cursor": query["cursor"], "trail": trail[-MAX_TRAIL:],
    }  # fmt: skip


def _link(request: web.Request, cursor: str | None, trail: list[str]) -> str:
    """This page's URL at another place, keeping its window."""
    query = {k: v for k, v in request.query.items() if k in ("from", "to") and v}
    if cursor:
        query["cursor"] = cursor
    if trail:
        query["trail"] = ".".join(trail[-MAX_TRAIL:])
    return str(request.rel_url.with_query(query))


@owner_page
async def table_page(request: web.Request) -> web.StreamResponse:
    table_id = path_id(request, "id", "table")
    view = _view(request, table_id)
    window = view["window"]
    async with request.app[POOL].acquire() as conn:
        table = json.loads(await raw.table_json(conn, table_id))
        count = await raw.table_record_count(conn, table_id, window)
        text, more = await raw.table_values(conn, table_id, window, view["after"], RECORDS_PER_PAGE)
        records = json.loads(text)
        if view["cursor"] is None and more is None:  # the page holds the whole window
            charted = records
        else:
            charted = json.loads((await raw.table_values(conn, table_id, window, (None, None), CHART_RECORDS))[0])
    found = grid.groups(table)
    cols = grid.columns(found)
    series = charts.numeric_series(charted, cols)
    cursor, trail = view["cursor"], view["trail"]
    older = _link(request, encode_cursor(view["scope"], *more), [*trail, cursor] if cursor else trail) if more else None
    newer = _link(request, trail[-1] if trail else None, trail[:-1]) if cursor else None
    context = {
        "table": table, "groups": found, "columns": cols, "rows": grid.rows(records, cols), "count": count,
        "older": older, "newer": newer, "newest": _link(request, None, []) if cursor else None,
        "charts": [(s.name, charts.line_chart(s, f"chart-{s.field_id}")) for s in series],
        "charted": len(charted), "from": request.query.get("from", ""), "to": request.query.get("to", ""),
        "window": any(window), "download": _link(request, None, []).partition("?")[2],
        "back": str(request.rel_url),
    }  # fmt: skip
    return render(request, "table.html", context)


# -- downloads ---------------------------------------------------------------------------------


def _filename(table: dict[str, Any], extension: str) -> str:
    """source-name-id.ext in characters every browser and file system keeps."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{table['source']}-{table['name']}")[:80].strip("._")
    return f"{stem or 'table'}-{table['id']}.{extension}"


async def _download(request: web.Request, extension: str) -> web.StreamResponse:
    """Streams every record of the table in the window, DOWNLOAD_PAGE at a time through the API's
    paged read, from one snapshot (so a record written meanwhile is in it whole or not at all)."""
    table_id = path_id(request, "id", "table")
    window = _view(request, table_id)["window"]
    pool = request.app[POOL]
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        table = json.loads(await raw.table_json(conn, table_id))  # 404 before the answer starts
        cols = grid.columns(grid.groups(table))
        response = web.StreamResponse(headers={
            "Content-Disposition": f'attachment; filename="{_filename(table, extension)}"',
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
        })  # fmt: skip
        response.content_type = CSV_TYPE if extension == "csv" else JSON
        response.charset = "utf-8"
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            await _write_pages(response, conn, table_id, window, cols, extension)
        except Exception as exc:  # the 200 is out: break the transfer so the client sees it incomplete
            log.warning("Download of table %s broke after it started: %s", table_id, type(exc).__name__)
            if request.transport is not None:
                request.transport.close()
            return response
    await response.write_eof()
    return response


async def _send(response: web.StreamResponse, chunk: bytes) -> None:
    await asyncio.wait_for(response.write(chunk), WRITE_TIMEOUT)


async def _write_pages(
    response: web.StreamResponse, conn: db.Conn, table_id: int, window: Any, cols: list[grid.Column], extension: str
) -> None:
    after: Any = (None, None)
    first = True
    if extension == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(grid.csv_header(cols))
    else:
        await _send(response, b"[")
    while True:
        text, more = await raw.table_values(conn, table_id, window, after, DOWNLOAD_PAGE)
        if extension == "csv":
            writer.writerows(grid.csv_row(record, cols) for record in json.loads(text))
            await _send(response, buffer.getvalue().encode())
            buffer.seek(0)
            buffer.truncate()
        else:
            items = text.strip()[1:-1].strip()  # the page's array, without decoding it
            if items:
                await _send(response, (items if first else "," + items).encode())
                first = False
        if more is None:
            break
        after = more
    if extension != "csv":
        await _send(response, b"]")


@owner_page
async def table_csv(request: web.Request) -> web.StreamResponse:
    return await _download(request, "csv")


@owner_page
async def table_json(request: web.Request) -> web.StreamResponse:
    return await _download(request, "json")


# -- deleting ----------------------------------------------------------------------------------


@owner_page
async def confirm_table_delete(request: web.Request) -> web.StreamResponse:
    table_id = path_id(request, "id", "table")
    async with request.app[POOL].acquire() as conn:
        going = await raw.table_deletion(conn, table_id, holders=bundles.bundles_holding)
    context = {"kind": "table", "table": going["tables"][0], "going": going, "csrf": request[SESSION].csrf}
    return render(request, "delete.html", context)


@owner_page
async def delete_table(request: web.Request) -> web.StreamResponse:
    """Deletes the table as DELETE /data/table/{id} does: a bundle that still uses it makes a 409 page."""
    table_id = path_id(request, "id", "table")
    async with db.transaction(request.app[POOL]) as conn:
        await raw.delete_table(conn, table_id, holders=bundles.bundles_holding)
    return see_other("/owner")


def _back(request: web.Request, given: str | None) -> str:
    return local_path(given) if given else "/owner"


@owner_page
async def confirm_record_delete(request: web.Request) -> web.StreamResponse:
    record_id = path_id(request, "id", "record")
    async with request.app[POOL].acquire() as conn:
        going = await raw.record_deletion(conn, record_id)
    back = _back(request, request.query.get("back"))
    context = {"kind": "record", "record": going, "back": back, "csrf": request[SESSION].csrf}
    return render(request, "delete.html", context)


@owner_page
async def delete_record(request: web.Request) -> web.StreamResponse:
    record_id = path_id(request, "id", "record")
    async with db.transaction(request.app[POOL]) as conn:
        await raw.delete(conn, "record", record_id, holders=bundles.bundles_holding)
    return see_other(_back(request, request[FORM].get("back")))


WINDOW = "`from` and `to` (ISO-8601, no zone: UTC) narrow it to a time window, on the records' lastUpdated."

ROUTES = [
    Route("GET", r"/owner/tables/{id:\d+}", table_page, name="owner_table", roles=PUBLIC, session=True,
          produces=HTML, query=TableViewQuerySchema, errors=(400,),
          summary="A table's records as a grid, 25 a page, newest first, with charts of its numeric fields",
          description=f"{WINDOW} `cursor` and `trail` page to older and back to newer records."),
    Route("GET", r"/owner/tables/{id:\d+}/csv", table_csv, name="owner_table_csv", roles=PUBLIC, session=True,
          produces=CSV_TYPE, query=TableViewQuerySchema, head=False,
          summary="Download a table with its subtables as CSV: one row per record",
          description="Columns: record id, record time, record name, then <table>.<field> and "
          "<subtable>.<field>; several values of one field share a cell, one a line. A cell that a "
          f"spreadsheet would read as a formula starts with '. {WINDOW}"),
    Route("GET", r"/owner/tables/{id:\d+}/json", table_json, name="owner_table_json", roles=PUBLIC, session=True,
          produces=JSON, query=TableViewQuerySchema, head=False, response=TableValuesItemSchema, many=True,
          summary="Download a table with its subtables as JSON: every record as GET /data/table/{id}/values "
          "gives it", description=WINDOW),
    Route("GET", r"/owner/tables/{id:\d+}/delete", confirm_table_delete, name="owner_confirm_table_delete",
          roles=PUBLIC, session=True, produces=HTML,
          summary="What deleting a table takes with it (values, subtables, records), and its Delete button"),
    Route("POST", r"/owner/tables/{id:\d+}/delete", delete_table, name="owner_delete_table", roles=PUBLIC,
          session=True, produces=HTML, body=ButtonFormSchema, form=True, status=303, errors=(409,),
          summary="Delete a table as DELETE /data/table/{id} does; 303 to the data page (409: a bundle uses it)"),
    Route("GET", r"/owner/records/{id:\d+}/delete", confirm_record_delete, name="owner_confirm_record_delete",
          roles=PUBLIC, session=True, produces=HTML,
          summary="What deleting a record takes with it (its values), and its Delete button"),
    Route("POST", r"/owner/records/{id:\d+}/delete", delete_record, name="owner_delete_record", roles=PUBLIC,
          session=True, produces=HTML, body=ButtonFormSchema, form=True, status=303,
          summary="Delete a record and its values as DELETE /data/record/{id} does; 303 back"),
]  # fmt: skip
