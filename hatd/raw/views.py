"""Raw data: tables, fields, records and values, in and out. Seed 002, "Raw Data Input and Output"."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hatd import db
from hatd.bundles import repository as bundles
from hatd.http import json_text, parse_body, parse_query, path_id, read_json
from hatd.paging import paged, paged_stream, read_page
from hatd.raw import repository
from hatd.raw.schemas import (
    DeletedSchema,
    FieldSchema,
    FieldValuesSchema,
    LinkSchema,
    NewFieldSchema,
    NewRecordSchema,
    NewRecordValuesSchema,
    NewTableSchema,
    NewValuesSchema,
    PrettyRecordSchema,
    RecordSchema,
    RecordValuesSchema,
    RecordWithValuesSchema,
    TableQuerySchema,
    TableSchema,
    TableValuesItemSchema,
    ValueSchema,
    plain_records_with_values,
)
from hatd.reads import PageQuerySchema, PrettyQuerySchema
from hatd.roles import DATA_CREDIT, OWNER, PLATFORM
from hatd.routing import Route
from hatd.state import POOL
from hatd.validation import load

WRITERS = frozenset({OWNER, PLATFORM, DATA_CREDIT})
OWNER_ONLY = frozenset({OWNER})


# -- structure -------------------------------------------------------------------------------


async def create_table(request: web.Request) -> web.Response:
    table = await parse_body(request, NewTableSchema)
    async with db.transaction(request.app[POOL]) as conn:
        return json_text(await repository.create_table(conn, table), status=201)


async def get_table(request: web.Request) -> web.Response:
    return json_text(await repository.table_json(request.app[POOL], path_id(request, "id", "table")))


async def find_table(request: web.Request) -> web.Response:
    query = parse_query(request, TableQuerySchema)
    return json_text(await repository.find_table(request.app[POOL], query["name"], query["source"]))


async def list_sources(request: web.Request) -> web.Response:
    return json_text(await repository.sources(request.app[POOL]))


async def link_subtable(request: web.Request) -> web.Response:
    parent, child = path_id(request, "id", "table"), path_id(request, "subId", "table")
    link = load(LinkSchema, await read_json(request) if request.body_exists else {})
    async with db.transaction(request.app[POOL]) as conn:
        tree = await repository.link_subtable(conn, parent, child, link["relationshipType"])
    return json_text(tree, status=201)


async def create_field(request: web.Request) -> web.Response:
    new = await parse_body(request, NewFieldSchema)
    async with db.transaction(request.app[POOL]) as conn:
        return json_text(await repository.create_field(conn, new["tableId"], new["name"]), status=201)


async def get_field(request: web.Request) -> web.Response:
    return json_text(await repository.field_json(request.app[POOL], path_id(request, "id", "field")))


async def create_record(request: web.Request) -> web.Response:
    new = await parse_body(request, NewRecordSchema)
    async with db.transaction(request.app[POOL]) as conn:
        return json_text(await repository.create_record(conn, new["name"], new["lastUpdated"]), status=201)


async def get_record(request: web.Request) -> web.Response:
    return json_text(await repository.record_json(request.app[POOL], path_id(request, "id", "record")))


# -- values in -------------------------------------------------------------------------------


def _one_or_many(body: Any) -> tuple[list[Any], bool]:
    """The spec lets several routes take one object or a list of them; the answer has the same form."""
    return (body, True) if isinstance(body, list) else ([body], False)


def _unwrap(array_text: str, many: bool) -> str:
    """The single element of a JSON array PostgreSQL built, as text, without decoding it."""
    return array_text if many else array_text[1:-1]


async def add_record_values(request: web.Request) -> web.Response:
    record_id = path_id(request, "id", "record")
    batch = load(RecordValuesSchema, {"values": await read_json(request)})["values"]
    async with db.transaction(request.app[POOL]) as conn:
        return json_text(await repository.add_values(conn, batch, record_id), status=201)


async def create_records_with_values(request: web.Request) -> web.Response:
    items, many = _one_or_many(await read_json(request))
    loaded = plain_records_with_values(items)
    if loaded is None:  # something is off: the schema says what, in its own words
        loaded = load(NewRecordValuesSchema, items, many=True)
    if not loaded:
        return json_text("[]", status=201)
    async with request.app[POOL].acquire() as conn:  # one statement: a transaction of its own
        text = await repository.create_records_with_values(conn, loaded)
    return json_text(_unwrap(text, many), status=201)


async def create_values(request: web.Request) -> web.Response:
    items, many = _one_or_many(await read_json(request))
    batch = load(NewValuesSchema, {"values": items})["values"]
    async with db.transaction(request.app[POOL]) as conn:
        text = await repository.add_values(conn, batch)
    return json_text(_unwrap(text, many), status=201)


# -- values out ------------------------------------------------------------------------------


async def table_values(request: web.Request) -> web.StreamResponse:
    table_id = path_id(request, "id", "table")
    scope = f"table:{table_id}"
    window, after, limit = read_page(request, scope)
    pretty = parse_query(request, PrettyQuerySchema)["pretty"]
    async with db.snapshot(request.app[POOL]) as conn:
        page = await repository.table_page(conn, table_id, window, after, limit)
        records = repository.records_json(conn, table_id, page.ids, pretty=pretty)
        return await paged_stream(request, scope, records, page.more)


async def field_values(request: web.Request) -> web.Response:
    field_id = path_id(request, "id", "field")
    scope = f"field:{field_id}"
    window, after, limit = read_page(request, scope)
    text, more = await repository.field_values(request.app[POOL], field_id, window, after, limit)
    return paged(request, scope, text, more)


async def record_values(request: web.Request) -> web.Response:
    pretty = parse_query(request, PrettyQuerySchema)["pretty"]
    return json_text(await repository.record_values(request.app[POOL], path_id(request, "id", "record"), pretty=pretty))


# -- deleting --------------------------------------------------------------------------------


async def _delete(request: web.Request, kind: str) -> web.Response:
    item_id = path_id(request, "id", kind)
    async with db.transaction(request.app[POOL]) as conn:
        if kind == "table":
            await repository.delete_table(conn, item_id, holders=bundles.bundles_holding)
        else:
            await repository.delete(conn, kind, item_id, holders=bundles.bundles_holding)
    # The original's words ("Record 5 deleted"): Rumpel looks for "deleted" in the message.
    return json_text(f'{{"message": "{kind.capitalize()} {item_id} deleted", "{kind}Id": {item_id}}}')


async def delete_value(request: web.Request) -> web.Response:
    return await _delete(request, "value")


async def delete_record(request: web.Request) -> web.Response:
    return await _delete(request, "record")


async def delete_field(request: web.Request) -> web.Response:
    return await _delete(request, "field")


async def delete_table(request: web.Request) -> web.Response:
    return await _delete(request, "table")


PAGING = (
    "Paged: `limit` (0: the largest page), `starttime`/`endtime` (unix seconds or ISO-8601, on the record's "
    'lastUpdated), newest first; a `Link: <...>; rel="next"` header gives the next page\'s URL (with `cursor`).'
)
PRETTY = (
    " `pretty=true` (the original's flattened records): each record as {id, name, lastUpdated, data: {<table>: "
    "{<field>: value (several: a list), <subtable>: {...}}}}; a field with no value is left out."
)

ROUTES = [
    Route("POST", "/data/table", create_table, name="create_table", roles=WRITERS, body=NewTableSchema,
          response=TableSchema, status=201, errors=(409,),
          summary="Create a table with its fields and subtables, to any depth"),
    Route("GET", "/data/table", find_table, name="find_table", roles=WRITERS, query=TableQuerySchema,
          response=TableSchema, summary="Find the table with this name and source (404 if none)"),
    Route("GET", r"/data/table/{id:\d+}", get_table, name="get_table", roles=WRITERS, response=TableSchema,
          summary="A table with its fields and subtables"),
    Route("GET", "/data/sources", list_sources, name="list_sources", roles=WRITERS, response=TableSchema, many=True,
          summary="The top-level tables (those that are nobody's subtable)"),
    Route("POST", r"/data/table/{id:\d+}/table/{subId:\d+}", link_subtable, name="link_subtable", roles=WRITERS,
          body=LinkSchema, response=TableSchema, status=201, errors=(409,),
          summary="Make an existing table a subtable of another (cycles refused)"),
    Route("POST", "/data/field", create_field, name="create_field", roles=WRITERS, body=NewFieldSchema,
          response=FieldSchema, status=201, summary="Add a field to a table"),
    Route("GET", r"/data/field/{id:\d+}", get_field, name="get_field", roles=WRITERS, response=FieldSchema,
          summary="A field"),
    Route("POST", "/data/record", create_record, name="create_record", roles=WRITERS, body=NewRecordSchema,
          response=RecordSchema, status=201, summary="Create a record"),
    Route("GET", r"/data/record/{id:\d+}", get_record, name="get_record", roles=WRITERS, response=RecordSchema,
          summary="A record"),
    Route("POST", r"/data/record/{id:\d+}/values", add_record_values, name="add_record_values", roles=WRITERS,
          response=ValueSchema, many=True, status=201,
          summary="Store a list of {value, field: {id}} in a record (all or nothing)"),
    Route("POST", "/data/record/values", create_records_with_values, name="create_records_with_values",
          roles=WRITERS, body=NewRecordValuesSchema, response=RecordWithValuesSchema, one_or_many=True, status=201,
          summary="Create a record with its values, or a list of them (all or nothing)",
          description="The body is one {record, values} or a list; the answer has the same form."),
    Route("POST", "/value", create_values, name="create_values", roles=WRITERS, aliases=("/data/value",),
          response=ValueSchema, one_or_many=True, status=201,
          summary="Store one value or a list, each naming its field and record (all or nothing)",
          description="/value is the reference's spelling, /data/value the original server's: both are served."),
    Route("GET", r"/data/table/{id:\d+}/values", table_values, name="table_values", roles=OWNER_ONLY,
          aliases=(r"/table/{id:\d+}/values",), query=PageQuerySchema, response=TableValuesItemSchema, many=True,
          alternative=PrettyRecordSchema,
          summary="A table's records, each with the table tree and its values", description=PAGING + PRETTY),
    Route("GET", r"/data/field/{id:\d+}/values", field_values, name="field_values", roles=OWNER_ONLY,
          aliases=(r"/field/{id:\d+}/values",), query=PageQuerySchema, response=FieldValuesSchema,
          summary="A field with its values", description=PAGING),
    Route("GET", r"/data/record/{id:\d+}/values", record_values, name="record_values", roles=OWNER_ONLY,
          aliases=(r"/record/{id:\d+}/values",), query=PrettyQuerySchema, response=TableValuesItemSchema,
          alternative=PrettyRecordSchema,
          summary="A record with the table trees that hold its values"),
    Route("DELETE", r"/data/value/{id:\d+}", delete_value, name="delete_value", roles=OWNER_ONLY,
          response=DeletedSchema,
          summary="Delete a value"),
    Route("DELETE", r"/data/record/{id:\d+}", delete_record, name="delete_record", roles=OWNER_ONLY,
          response=DeletedSchema,
          summary="Delete a record and its values"),
    Route("DELETE", r"/data/field/{id:\d+}", delete_field, name="delete_field", roles=OWNER_ONLY,
          response=DeletedSchema,
          summary="Delete a field and its values"),
    Route("DELETE", r"/data/table/{id:\d+}", delete_table, name="delete_table", roles=OWNER_ONLY,
          response=DeletedSchema,
          summary="Delete a table with every table below it, their fields and values, and the records left empty"),
]  # fmt: skip
