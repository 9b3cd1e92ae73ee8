"""The context vocabulary in the database: types and their links, units, properties, person
relationship types. Takes a connection, returns JSON text built by PostgreSQL, raises domain
errors; knows nothing of HTTP."""

from __future__ import annotations

import asyncpg

from hatd.db import Conn, queries
from hatd.errors import BadRequest, Conflict, NotFound

Q = queries("context")


async def _insert(conn: Conn, query: str, kind: str, name: str, *args: object) -> str:
    try:
        text: str = await conn.fetchval(query, name, *args)
    except asyncpg.UniqueViolationError:
        raise Conflict(f"A {kind} named {name!r} already exists") from None
    return text


async def _one_or_all(conn: Conn, kind: str, name: str | None, by_name: str, every: str) -> str:
    if name is None:
        text: str = await conn.fetchval(every)
        return text
    found: str | None = await conn.fetchval(by_name, name)
    if found is None:
        raise NotFound(f"There is no {kind} named {name!r}")
    return found


async def create_type(conn: Conn, name: str, description: str | None) -> str:
    return await _insert(conn, Q.insert_type, "type", name, description)


async def types(conn: Conn, name: str | None) -> str:
    return await _one_or_all(conn, "type", name, Q.type_by_name_json, Q.types_json)


async def link_types(conn: Conn, type_id: int, linked_id: int, relationship: str) -> int:
    """Links one type to another ("subtype": child to parent); returns the link's id."""
    if type_id == linked_id:
        raise BadRequest(f"Type {type_id} cannot be linked to itself", message="Not allowed")
    missing = await conn.fetchval(Q.missing_types, [type_id, linked_id])
    if missing:
        raise NotFound(f"There is no type with id {', '.join(map(str, missing))}")
    try:
        link_id: int = await conn.fetchval(Q.link_types, type_id, linked_id, relationship)
    except asyncpg.UniqueViolationError:
        raise Conflict(f"Type {type_id} is already linked to type {linked_id} as {relationship!r}") from None
    return link_id


async def create_unit(conn: Conn, name: str, description: str | None, symbol: str | None) -> str:
    return await _insert(conn, Q.insert_unit, "unit of measurement", name, description, symbol)


async def units(conn: Conn, name: str | None) -> str:
    return await _one_or_all(conn, "unit of measurement", name, Q.unit_by_name_json, Q.units_json)


async def create_property(conn: Conn, name: str, description: str | None, type_id: int, unit_id: int) -> str:
    """Creates a property of an existing type and unit (BadRequest naming whichever is missing)."""
    causes = []
    if await conn.fetchval(Q.missing_types, [type_id]):
        causes.append(f"propertyType.id: there is no type with id {type_id}")
    if not await conn.fetchval(Q.unit_exists, unit_id):
        causes.append(f"unitOfMeasurement.id: there is no unit of measurement with id {unit_id}")
    if causes:
        raise BadRequest("; ".join(causes), message="Unknown reference")
    return await _insert(conn, Q.insert_property, "property", name, description, type_id, unit_id)


async def properties(conn: Conn, name: str | None) -> str:
    return await _one_or_all(conn, "property", name, Q.property_by_name_json, Q.properties_json)


async def create_relationship_type(conn: Conn, name: str, description: str | None) -> str:
    return await _insert(conn, Q.insert_relationship_type, "person relationship type", name, description)


async def relationship_types(conn: Conn) -> str:
    text: str = await conn.fetchval(Q.relationship_types_json)
    return text
