"""Raw data in the database: table trees, fields, records, values. Takes a connection, returns
JSON text built by PostgreSQL or plain data, raises domain errors; knows nothing of HTTP."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from hatd import jsontext
from hatd.db import Conn, fetch_json, queries
from hatd.errors import BadRequest, Conflict, NotFound
from hatd.raw.schemas import ValueBatch
from hatd.reads import Position, Window

Q = queries("raw")
TABLE_LINKS_LOCK_ID = 0x6861_7402


# -- structure -------------------------------------------------------------------------------


async def _create_tree(conn: asyncpg.Connection, table: dict[str, Any]) -> int:
    try:
        table_id: int = await conn.fetchval(Q.insert_table, table["name"], table["source"])
    except asyncpg.UniqueViolationError:
        raise Conflict(f"A table named {table['name']!r} with source {table['source']!r} already exists") from None
    if table["fields_"]:
        await conn.execute(Q.insert_fields, table_id, [f["name"] for f in table["fields_"]])
    for sub in table["subTables"]:
        await conn.execute(Q.link_tables, table_id, await _create_tree(conn, sub), "parent_child")
    return table_id


async def create_table(conn: asyncpg.Connection, table: dict[str, Any]) -> str:
    """Creates a table with its fields and subtables; returns the tree as JSON text."""
    table_id = await _create_tree(conn, table)
    text: str = await conn.fetchval(Q.table_json, table_id)
    return text


async def table_json(conn: Conn, table_id: int) -> str:
    return await fetch_json(conn, Q.table_json, table_id, missing=f"There is no table with id {table_id}")


async def find_table(conn: Conn, name: str, source: str) -> str:
    table_id = await conn.fetchval(Q.find_table_id, name, source)
    if table_id is None:
        raise NotFound(f"There is no table named {name!r} with source {source!r}")
    return await table_json(conn, table_id)


async def sources(conn: Conn) -> str:
    text: str = await conn.fetchval(Q.sources_json)
    return text


async def table_summaries(conn: Conn) -> list[asyncpg.Record]:
    """Each top-level table with its subtable count, records held and last update."""
    rows: list[asyncpg.Record] = await conn.fetch(Q.table_summaries)
    return rows


async def table_exists(conn: Conn, table_id: int) -> bool:
    found: bool = await conn.fetchval(Q.table_exists, table_id)
    return found


async def find_table_id(conn: Conn, name: str, source: str) -> int | None:
    """The id of the table with this name and source, if there is one."""
    found: int | None = await conn.fetchval(Q.find_table_id, name, source)
    return found


async def is_below(conn: Conn, table_id: int, under: int) -> bool:
    """Whether table `table_id` is table `under` or lies anywhere below it."""
    found: bool = await conn.fetchval(Q.is_descendant, under, table_id)
    return found


async def _require_table(conn: Conn, table_id: int) -> None:
    if not await conn.fetchval(Q.table_exists, table_id):
        raise NotFound(f"There is no table with id {table_id}")


async def link_subtable(conn: asyncpg.Connection, parent_id: int, child_id: int, relationship: str) -> str:
    """Makes `child_id` a subtable of `parent_id`; returns the parent's tree as JSON text."""
    await _require_table(conn, parent_id)
    await _require_table(conn, child_id)
    await conn.execute(Q.lock_table_links, TABLE_LINKS_LOCK_ID)
    if await conn.fetchval(Q.is_descendant, child_id, parent_id):
        raise BadRequest(
            f"Table {parent_id} is table {child_id} or lies below it: the link would make a cycle",
            message="Not allowed",
        )
    try:
        await conn.execute(Q.link_tables, parent_id, child_id, relationship)
    except asyncpg.UniqueViolationError:
        raise Conflict(f"Table {child_id} is already a subtable of table {parent_id}") from None
    except asyncpg.ForeignKeyViolationError:  # deleted by another request since the check
        raise NotFound(f"Table {parent_id} or {child_id} was deleted meanwhile") from None
    await conn.execute(Q.touch_table, parent_id)
    return await table_json(conn, parent_id)


async def create_field(conn: asyncpg.Connection, table_id: int, name: str) -> str:
    await _require_table(conn, table_id)
    try:
        text: str = await conn.fetchval(Q.insert_field, table_id, name)
    except asyncpg.ForeignKeyViolationError:  # deleted by another request since the check
        raise NotFound(f"There is no table with id {table_id}") from None
    await conn.execute(Q.touch_table, table_id)
    return text


async def field_json(conn: Conn, field_id: int) -> str:
    return await fetch_json(conn, Q.field_json, field_id, missing=f"There is no field with id {field_id}")


async def create_record(conn: Conn, name: str, last_updated: dt.datetime | None) -> str:
    text: str = await conn.fetchval(Q.insert_record, name, last_updated)
    return text


async def record_json(conn: Conn, record_id: int) -> str:
    return await fetch_json(conn, Q.record_json, record_id, missing=f"There is no record with id {record_id}")


# -- values in -------------------------------------------------------------------------------


def _unknown(kind: str, labels: list[str], ids: list[int], missing: set[int]) -> list[str]:
    """Causes naming the items of a batch (by their labels) whose `kind` id is in `missing`: at
    most 10 ids, with at most 10 items each, so a huge bad batch gets a short answer."""
    causes = []
    naming: dict[int, list[str]] = {}
    for label, item_id in zip(labels, ids, strict=True):
        if item_id in missing:
            naming.setdefault(item_id, []).append(label)
    for item_id in sorted(naming)[:10]:
        items = naming[item_id]
        more = f" and {len(items) - 10} more" if len(items) > 10 else ""
        causes.append(f"{', '.join(items[:10])}{more}: no {kind} with id {item_id}")
    if len(naming) > 10:
        causes.append(f"and {len(naming) - 10} more unknown {kind} ids")
    return causes


def _refuse(causes: list[str]) -> None:
    if causes:
        raise BadRequest("; ".join(causes) + "; nothing was stored", message="Unknown reference")


async def _check_references(
    conn: Conn, labels: list[str], field_ids: list[int], record_ids: list[int] | None = None
) -> None:
    """BadRequest naming the items of the batch whose field or record does not exist."""
    causes = []
    for kind, ids, query in (("field", field_ids, Q.missing_fields), ("record", record_ids or [], Q.missing_records)):
        missing = set(await conn.fetchval(query, ids)) if ids else set()
        if missing:
            causes += _unknown(kind, labels, ids, missing)
    _refuse(causes)


async def _insert(conn: asyncpg.Connection, query: str, *args: Any) -> str:
    """Runs an insert of values; a field or record deleted by another request since the check
    is the client's bad luck, not a server error."""
    try:
        text: str = await conn.fetchval(query, *args)
    except asyncpg.ForeignKeyViolationError:
        raise Conflict("A field or record of the batch was deleted meanwhile; nothing was stored") from None
    return text


async def add_values(conn: asyncpg.Connection, batch: ValueBatch, record_id: int | None = None) -> str:
    """Stores a batch in one statement; each value goes to its own record, or to `record_id`.
    Returns the stored values as a JSON array (text)."""
    if record_id is not None:
        if not await conn.fetchval(Q.record_exists, record_id):
            raise NotFound(f"There is no record with id {record_id}")
        records: list[int] = [record_id] * len(batch)
    else:
        records = [r for r in batch.record_ids if r is not None]
    labels = [f"values.{index}" for index in range(len(batch))]
    await _check_references(conn, labels, batch.field_ids, None if record_id is not None else records)
    return await _insert(conn, Q.insert_values, batch.texts, batch.field_ids, records, batch.times)


async def create_records_with_values(conn: Conn, items: list[dict[str, Any]]) -> str:
    """Creates records and their values in one statement (its own transaction: no round trip to
    open or commit one); returns a JSON array (text) of {record, values} in the order given.

    The ids come from the sequences in order, so the answer is written from the batch itself
    (created_json) rather than read back: reading a batch of thousands back cost more than the
    rest of the request together."""
    texts: list[str] = []
    field_ids: list[int] = []
    times: list[dt.datetime | None] = []
    for item in items:
        batch: ValueBatch = item["values"]
        texts += batch.texts
        field_ids += batch.field_ids
        times += batch.times
    distinct_fields = list(set(field_ids))
    try:
        now, record_ids, value_ids, known, tables, names = await conn.fetchrow(
            Q.insert_records_with_values,
            [item["record"]["name"] for item in items],
            [item["record"]["lastUpdated"] for item in items],
            orjson.dumps(texts).decode(),
            orjson.dumps(field_ids).decode(),
            [len(item["values"]) for item in items],
            times if any(time is not None for time in times) else None,  # most batches: all now
            distinct_fields,
        )
    except asyncpg.ForeignKeyViolationError:  # a field deleted by another request meanwhile
        raise Conflict("A field or record of the batch was deleted meanwhile; nothing was stored") from None
    fields = {f: (table, name) for f, table, name in zip(known, tables, names, strict=True)}
    if len(fields) < len(distinct_fields):  # nothing was stored
        labels = [f"{index}.values.{n}" for index, item in enumerate(items) for n in range(len(item["values"]))]
        _refuse(_unknown("field", labels, field_ids, set(field_ids) - fields.keys()))
    return created_json(items, record_ids, orjson.loads(value_ids), now, fields)


def created_json(
    items: list[dict[str, Any]],
    record_ids: list[int],
    value_ids: list[int],
    now: dt.datetime,
    fields: dict[int, tuple[int, str]],
) -> str:
    """What POST /data/record/values answers: the new records, in the order given (their ids'
    order), each with its values in order (`value_ids` in the order of the batch), written byte for
    byte as data_record_json, data_value_json and json_agg would (sql/functions/raw.sql; a test
    holds the two to the same bytes). Every time not given is `now`."""
    string, stamp = jsontext.string, jsontext.string(jsontext.hat_time(now))

    def time(when: dt.datetime | None) -> str:
        return stamp if when is None else string(jsontext.hat_time(when))

    field_json = {
        f: f'{{"id" : {f}, "tableId" : {table}, "name" : {string(name)}}}' for f, (table, name) in fields.items()
    }

    def after(f: int, when: dt.datetime | None) -> str:
        return f', "dateCreated" : {stamp}, "lastUpdated" : {time(when)}, "field" : {field_json[f]}}}'

    untimed = {f: after(f, None) for f in fields}  # what follows the text of most values, by field
    answer = []
    ids = iter(value_ids)
    for item, record_id in zip(items, record_ids, strict=True):
        batch: ValueBatch = item["values"]
        written = [  # `ids` last: zip stops at the end of the batch before taking an id of the next
            f'{{"id" : {value_id}, "value" : {string(text)}{untimed[f] if when is None else after(f, when)}'
            for text, f, when, value_id in zip(batch.texts, batch.field_ids, batch.times, ids, strict=False)
        ]
        answer.append(
            f'{{"record" : {{"id" : {record_id}, "name" : {string(item["record"]["name"])}, "dateCreated" : '
            f'{stamp}, "lastUpdated" : {time(item["record"]["lastUpdated"])}}}, "values" : [{", ".join(written)}]}}'
        )
    return "[" + ", ".join(answer) + "]"


# -- values out ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """The rows of a page, in order, and the position after it when another page follows."""

    ids: list[int]
    more: Position | None


async def _page(
    conn: Conn, page_query: str, item_id: int, window: tuple[Any, Any], after: tuple[Any, Any], limit: int
) -> Page:
    """Runs a page query (limit + 1 rows, to know whether more follow)."""
    rows = await conn.fetch(page_query, item_id, *window, *after, limit + 1)
    page = rows[:limit]
    return Page([r["id"] for r in page], (page[-1]["last_updated"], page[-1]["id"]) if len(rows) > limit else None)


async def table_page(conn: Conn, table_id: int, window: tuple[Any, Any], after: tuple[Any, Any], limit: int) -> Page:
    """The records of a page under a table, newest first: those with values anywhere in its tree."""
    await _require_table(conn, table_id)
    return await _page(conn, Q.table_record_page, table_id, window, after, limit)


def records_json(
    conn: Conn,
    table_id: int,
    record_ids: Sequence[int],
    *,
    within: list[int] | None = None,
    fields: list[int] | None = None,
    pretty: bool = False,
) -> AsyncIterator[str]:
    """The records, each with the tree under the table and its values (only the tables `within`
    and the `fields`, when given; or, `pretty`, flattened to {field: value}), as a JSON array
    written a chunk of records at a time."""

    async def chunk(ids: Sequence[int]) -> str | None:
        text: str | None = await conn.fetchval(Q.records_values_json, table_id, ids, within, fields, pretty)
        return text

    return jsontext.array(record_ids, chunk)


async def table_values(
    conn: Conn, table_id: int, window: tuple[Any, Any], after: tuple[Any, Any], limit: int, *, pretty: bool = False
) -> tuple[str, Position | None]:
    """A page of records under a table, each with the tree and its values (or, `pretty`, flattened
    to {field: value}), as a JSON array (text), whole."""
    page = await table_page(conn, table_id, window, after, limit)
    return await jsontext.joined(records_json(conn, table_id, page.ids, pretty=pretty)), page.more


async def field_values(
    conn: Conn, field_id: int, window: tuple[Any, Any], after: tuple[Any, Any], limit: int
) -> tuple[str, Position | None]:
    """A field with a page of its values, as JSON text."""
    page = await _page(conn, Q.field_value_page, field_id, window, after, limit)
    text: str | None = await conn.fetchval(Q.field_values_json, field_id, page.ids)
    if text is None:
        raise NotFound(f"There is no field with id {field_id}")
    return text, page.more


async def record_values(conn: Conn, record_id: int, *, pretty: bool = False) -> str:
    return await fetch_json(
        conn, Q.record_values_json, record_id, pretty, missing=f"There is no record with id {record_id}"
    )


# -- deleting --------------------------------------------------------------------------------


# Who still uses tables or fields, by name (bundles.bundles_holding): raw data knows nothing of
# what is built on it, so those who delete it say who to ask.
Holders = Callable[[Conn, list[int], list[int]], Awaitable[list[str]]]


async def delete(conn: asyncpg.Connection, kind: str, item_id: int, *, holders: Holders) -> None:
    """Deletes a value, record or field (with what hangs off it); Conflict if `holders` still use
    the field."""
    query = {"value": Q.delete_value, "record": Q.delete_record, "field": Q.delete_field}[kind]
    if kind == "field":
        await _refuse_if_held(conn, holders, [], [item_id])
    if await conn.fetchval(query, item_id) is None:
        raise NotFound(f"There is no {kind} with id {item_id}")


async def _refuse_if_held(conn: Conn, holders: Holders, table_ids: list[int], field_ids: list[int]) -> None:
    """Conflict naming the bundles that still hold these tables or slice on these fields."""
    names = await holders(conn, table_ids, field_ids)
    if names:
        raise Conflict(f"Bundles still use it: {', '.join(names)}; delete those first")


async def delete_table(conn: asyncpg.Connection, table_id: int, *, holders: Holders) -> int:
    """Deletes a table, the tables below it that no other table holds, their fields and values,
    and the records left without values; returns how many tables went. Conflict if `holders`
    still use any of them."""
    ids = await conn.fetchval(Q.deletable_tree_ids, table_id)
    if not ids:
        raise NotFound(f"There is no table with id {table_id}")
    await _refuse_if_held(conn, holders, ids, [])
    # Lock the fields first, as writers of values do, so a concurrent write waits rather than deadlocks.
    await conn.execute(Q.lock_tree_fields, ids)
    deleted: int = await conn.fetchval(Q.delete_tables, ids)
    return deleted


# -- what goes with what (the owner's pages) ---------------------------------------------------

OVERVIEW = queries("raw_overview")


async def table_record_count(conn: Conn, table_id: int, window: Window) -> int:
    """How many records table_values pages through in the window."""
    await _require_table(conn, table_id)
    count: int = await conn.fetchval(OVERVIEW.table_record_count, table_id, *window)
    return count


async def table_deletion(conn: Conn, table_id: int, *, holders: Holders) -> dict[str, Any]:
    """What delete_table would take: {"tables": [{id, name, source}] (the table first, then the
    subtables that go with it), "values", "records" (those left without values), "bundles" (the
    names of those that still use it, which make the delete a Conflict)}."""
    ids = await conn.fetchval(Q.deletable_tree_ids, table_id)
    if not ids:
        raise NotFound(f"There is no table with id {table_id}")
    row = await conn.fetchrow(OVERVIEW.tables_deletion, ids)
    tables = sorted(json.loads(row["tables"]), key=lambda t: (t["id"] != table_id, t["id"]))
    names = await holders(conn, ids, [])
    return {"tables": tables, "values": row["values"], "records": row["records"], "bundles": names}


async def record_deletion(conn: Conn, record_id: int) -> dict[str, Any]:
    """What deleting a record takes: {"id", "name", "last_updated", "values", "tables" (names)}."""
    row = await conn.fetchrow(OVERVIEW.record_deletion, record_id)
    if row is None:
        raise NotFound(f"There is no record with id {record_id}")
    return dict(row)
