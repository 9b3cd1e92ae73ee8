"""Contextless bundles in the database. Takes a connection, returns JSON text built by
PostgreSQL, raises domain errors; knows nothing of HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from hatd import jsontext
from hatd.bundles.schemas import bundle_tables
from hatd.db import Conn, fetch_json, queries
from hatd.errors import BadRequest, NotFound
from hatd.raw import repository as raw

Q = queries("bundles")


async def _table_id(conn: Conn, ref: dict[str, Any], where: str) -> int:
    if ref["id"] is not None:
        if not await raw.table_exists(conn, ref["id"]):
            raise BadRequest(f"{where}: there is no table with id {ref['id']}", message="Unknown reference")
        return int(ref["id"])
    found = await raw.find_table_id(conn, ref["name"], ref["source"])
    if found is None:
        raise BadRequest(
            f"{where}: there is no table named {ref['name']!r} with source {ref['source']!r}",
            message="Unknown reference",
        )
    return int(found)


async def create_bundle(conn: asyncpg.Connection, new: dict[str, Any]) -> str:
    """Creates a bundle as NewBundleSchema loaded it; returns its structure as JSON text."""
    return await bundle(conn, await insert_new_bundle(conn, new))


async def insert_new_bundle(conn: asyncpg.Connection, new: dict[str, Any], *, strict: bool = True) -> int:
    """Creates a bundle as NewBundleSchema loaded it, in whichever dialect it came; returns its id.
    `strict`: refuse a dataset that names no existing field (else it shares nothing)."""
    if new.get("sources") is not None:
        return await insert_dataset_bundle(conn, new["name"], new["sources"], strict=strict)
    return await insert_bundle(conn, new["name"], bundle_tables(new))


async def insert_bundle(conn: asyncpg.Connection, name: str, tables: list[dict[str, Any]]) -> int:
    """Creates a bundle of tables with their slices; returns its id. Every table, slice table and
    condition field must exist and fit; otherwise BadRequest, and the caller's transaction undoes it."""
    bundle_id: int = await conn.fetchval(Q.insert_bundle, name)
    for position, table in enumerate(tables):
        where = f"tables.{position}"
        table_id = await _table_id(conn, table["table"], f"{where}.table")
        bundle_table_id = await conn.fetchval(Q.insert_bundle_table, bundle_id, table["name"], table_id, position)
        for slice_position, part in enumerate(table["slices"]):
            at = f"{where}.slices.{slice_position}"
            slice_table = await _table_id(conn, part["table"], f"{at}.table")
            if not await raw.is_below(conn, slice_table, table_id):
                raise BadRequest(
                    f"{at}.table: table {slice_table} is not table {table_id} or one of its subtables",
                    message="Not allowed",
                )
            conditions = part["conditions"]
            wanted = [c["field"]["id"] for c in conditions]
            belonging = set(await conn.fetchval(Q.fields_of_table, wanted, slice_table))
            for index, field_id in enumerate(wanted):
                if field_id not in belonging:
                    raise BadRequest(
                        f"{at}.conditions.{index}.field: field {field_id} is not a field of table {slice_table}",
                        message="Not allowed",
                    )
            slice_id = await conn.fetchval(Q.insert_slice, bundle_table_id, slice_table, slice_position)
            await conn.execute(
                Q.insert_conditions,
                slice_id,
                wanted,
                [c["operator"] for c in conditions],
                [c["value"] for c in conditions],
            )
    return bundle_id


async def insert_dataset_bundle(
    conn: asyncpg.Connection, name: str, sources: list[dict[str, Any]], *, strict: bool = True
) -> int:
    """Creates a bundle in the original's later dialect: for each source, datasets (a table by the
    source and the dataset's name) sharing the fields they name; returns its id. As the original, a
    field that does not exist is passed over. `strict` (the owner): a dataset must name at least one
    that does; otherwise (an app) such a dataset is kept and shares nothing, so that an app cannot
    learn, field by field, which the owner has."""
    bundle_id: int = await conn.fetchval(Q.insert_bundle, name)
    position = 0
    for source_index, source in enumerate(sources):
        for index, dataset in enumerate(source["datasets"]):
            where = f"sources.{source_index}.datasets.{index}"
            ref = {"id": None, "name": dataset["name"], "source": source["source"]}
            table_id = await _table_id(conn, ref, where)
            found = await conn.fetchrow(Q.dataset_fields, table_id, dataset_leaves(dataset["fields_"]))
            if strict and not found["field_ids"]:
                raise BadRequest(
                    f"{where}.fields: none of the fields exist in table {dataset['name']!r} of {source['source']!r}",
                    message="Unknown reference",
                )
            bundle_table_id = await conn.fetchval(Q.insert_bundle_table, bundle_id, dataset["name"], table_id, position)
            await conn.execute(
                Q.insert_dataset, bundle_table_id, source["source"], dataset["description"],
                dataset_fields_json(dataset["fields_"]), found["field_ids"], found["tables"],
            )  # fmt: skip
            position += 1
    return bundle_id


def dataset_leaves(given: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fields a dataset names, as {"path": [subtable names], "name"}: a field with fields of its
    own names the subtable of that name (walked without recursion: the schema bounds the depth)."""
    leaves: list[dict[str, Any]] = []
    stack: list[tuple[list[str], list[dict[str, Any]]]] = [([], given)]
    while stack:
        path, fields = stack.pop()
        for field in fields:
            if field["fields_"]:
                stack.append(([*path, field["name"]], field["fields_"]))
            else:
                leaves.append({"path": path, "name": field["name"]})
    return leaves


def dataset_fields_json(given: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A dataset's fields as the client gave them, to answer in its dialect."""
    return [
        {"name": f["name"], "description": f["description"], **({"fields": dataset_fields_json(f["fields_"])}
                                                                 if f["fields_"] else {})}
        for f in given
    ]  # fmt: skip


async def bundle(conn: Conn, bundle_id: int) -> str:
    return await fetch_json(
        conn, Q.bundle_json, bundle_id, missing=f"There is no contextless bundle with id {bundle_id}"
    )


# A page of a bundle ends at a (record, bundle table) pair: its record's time, and, in the cursor's
# one id, the record id and the table's position together (positions are below MAX_TABLES).
MAX_TABLES = 100


def pack_position(record_id: int, position: int) -> int:
    return record_id * MAX_TABLES + position


def unpack_position(packed: int) -> tuple[int, int]:
    record_id, position = divmod(packed, MAX_TABLES)
    return record_id, position


@dataclass(frozen=True)
class ValuesPage:
    """A page of a values read: its JSON body as it is produced, how many records (or entities) it
    holds, and the position after it when another page follows."""

    parts: AsyncIterator[str]
    records: int
    more: tuple[dt.datetime, int] | None


async def bundle_values(
    conn: Conn, bundle_id: int, window: tuple[Any, Any], after: tuple[Any, Any], limit: int, *, pretty: bool = False
) -> ValuesPage:
    """A page of the bundle's data groups: up to `limit` records over all its tables, newest
    first, in the window, passing the slices, after the cursor position `after` (time, packed id),
    each group's records written a chunk at a time into the envelope PostgreSQL builds."""
    mark = jsontext.marker()
    envelope: str | None = await conn.fetchval(Q.bundle_values_envelope, bundle_id, mark)
    if envelope is None:
        raise NotFound(f"There is no contextless bundle with id {bundle_id}")
    when, packed = after
    record_id, position = unpack_position(packed) if packed is not None else (None, None)
    rows = await conn.fetch(Q.bundle_record_page, bundle_id, *window, limit, when, record_id, position)
    page = rows[:limit]
    last = page[-1] if len(rows) > limit else None
    more = (last["last_updated"], pack_position(last["id"], last["position"])) if last else None
    groups = {g["position"]: g for g in await conn.fetch(Q.bundle_groups, bundle_id)}
    ids_of: dict[int, list[int]] = {}
    for row in page:
        ids_of.setdefault(row["position"], []).append(row["id"])

    async def parts() -> AsyncIterator[str]:
        for piece in jsontext.split_envelope(envelope, mark):
            if isinstance(piece, str):
                yield piece
                continue
            group = groups[piece]
            records = ids_of.get(piece, [])
            parts = raw.records_json(
                conn, group["table_id"], records, within=group["within"], fields=group["fields"], pretty=pretty
            )
            async for part in parts:
                yield part

    return ValuesPage(parts(), len(page), more)


async def bundles_holding(conn: Conn, table_ids: list[int], field_ids: list[int]) -> list[str]:
    """Names of the bundles that hold any of these tables, or slice on any of these fields."""
    names = set(await conn.fetchval(Q.bundles_using_tables, table_ids)) if table_ids else set()
    if field_ids:
        names |= set(await conn.fetchval(Q.bundles_using_fields, field_ids))
    return sorted(names)


# -- contextual bundles -------------------------------------------------------------------------


async def add_entity_selection(conn: asyncpg.Connection, bundle_id: int, selector: dict[str, Any], where: str) -> int:
    """Adds an entity selector with its property selectors; returns the selection's id."""
    if selector["entityId"] is not None and not await conn.fetchval(Q.entity_exists, selector["entityId"]):
        raise BadRequest(
            f"{where}.entityId: there is no entity with id {selector['entityId']}", message="Unknown reference"
        )
    selection_id: int = await conn.fetchval(
        Q.insert_entity_selection, bundle_id, selector["entityId"], selector["entityName"], selector["entityKind"]
    )
    for prop in selector["properties"]:
        await add_property_selection(conn, selection_id, prop)
    return selection_id


async def add_property_selection(conn: asyncpg.Connection, selection_id: int, prop: dict[str, Any]) -> int:
    """Adds a property selector to an entity selection; returns its id."""
    property_selection_id: int = await conn.fetchval(
        Q.insert_property_selection, selection_id, prop["propertyRelationshipKind"], prop["propertyName"],
        prop["propertyType"], prop["propertyUnitofmeasurement"],
    )  # fmt: skip
    return property_selection_id


async def entity_selection(conn: Conn, selection_id: int) -> str:
    """One entity selection with its property selections, as JSON text."""
    text: str = await conn.fetchval(Q.entity_selection_json, selection_id)
    return text


async def property_selection(conn: Conn, selection_id: int) -> str:
    """One property selection, as JSON text."""
    text: str = await conn.fetchval(Q.property_selection_json, selection_id)
    return text


async def insert_contextual_bundle(conn: asyncpg.Connection, name: str, selectors: list[dict[str, Any]]) -> int:
    bundle_id: int = await conn.fetchval(Q.insert_contextual_bundle, name)
    for index, selector in enumerate(selectors):
        await add_entity_selection(conn, bundle_id, selector, f"entities.{index}")
    return bundle_id


async def contextual_bundle(conn: Conn, bundle_id: int) -> str:
    return await fetch_json(
        conn, Q.contextual_bundle_json, bundle_id, missing=f"There is no contextual bundle with id {bundle_id}"
    )


async def require_entity_selection(conn: Conn, bundle_id: int, selection_id: int) -> None:
    await contextual_bundle(conn, bundle_id)
    if await conn.fetchval(Q.entity_selection_bundle, bundle_id, selection_id) is None:
        raise NotFound(f"Contextual bundle {bundle_id} has no entity selection {selection_id}")


# Entities page by id alone: their cursor's time is this, always.
ENTITY_PAGE_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


async def contextual_values(conn: Conn, bundle_id: int, after: tuple[Any, Any], limit: int) -> ValuesPage:
    """A page of the entities the bundle selects, in id order after the cursor's, with the
    properties its selectors admit and their values, as a JSON array written a chunk at a time."""
    if not await conn.fetchval(Q.contextual_bundle_exists, bundle_id):
        raise NotFound(f"There is no contextual bundle with id {bundle_id}")
    rows = await conn.fetch(Q.contextual_entity_page, bundle_id, after[1], limit + 1)
    page = [row["id"] for row in rows[:limit]]
    more = (ENTITY_PAGE_TIME, page[-1]) if len(rows) > limit else None

    async def chunk(ids: Sequence[int]) -> str | None:
        text: str | None = await conn.fetchval(Q.contextual_values_json, bundle_id, ids)
        return text

    return ValuesPage(jsontext.array(page, chunk), len(page), more)


async def listing(conn: Conn) -> str:
    """Every bundle, contextless and contextual, with how much it holds, as a JSON array (text)."""
    text: str = await conn.fetchval(Q.bundle_listing)
    return text
