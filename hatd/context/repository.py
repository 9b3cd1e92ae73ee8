"""The context domain in the database: entities, their links, types and properties, and the
vocabulary that describes them (types and their links, units, properties, person relationship
types). Takes a connection, returns JSON text built by PostgreSQL, raises domain errors; knows
nothing of HTTP."""

from __future__ import annotations

import asyncpg

from hatd.context.schemas import PersonLinkSchema
from hatd.db import Conn, fetch_json, queries
from hatd.errors import BadRequest, Conflict, NotFound
from hatd.validation import load

Q = queries("context")
TYPE_LINKS_LOCK_ID = 0x6861_7403


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
    await conn.execute(Q.lock_type_links, TYPE_LINKS_LOCK_ID)
    if await conn.fetchval(Q.type_reaches, linked_id, type_id):
        raise BadRequest(
            f"Type {linked_id} already leads to type {type_id}: the link would make a cycle", message="Not allowed"
        )
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


# -- entities ----------------------------------------------------------------------------------

E = queries("entities")

KINDS = ("person", "thing", "event", "location", "organisation")
# Which kinds an entity of each kind may link to (seed 002, "Entity Can be linked to Entities").
MAY_LINK_TO = {
    "person": ("person", "location", "organisation"),
    "thing": ("thing", "person"),
    "event": ("event", "location", "organisation", "person", "thing"),
    "location": ("location", "thing"),
    "organisation": ("organisation", "location"),
}


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


async def create_entity(conn: Conn, kind: str, name: str, person_id: str | None) -> str:
    if kind == "person" and person_id is None:
        raise BadRequest("personId: Missing data for required field.", message="Invalid request")
    if kind != "person" and person_id is not None:
        raise BadRequest(f"personId: only a person has one, not {_a(kind)}", message="Invalid request")
    text: str = await conn.fetchval(E.insert_entity, kind, name, person_id)
    return text


async def entities(conn: Conn, kind: str) -> str:
    text: str = await conn.fetchval(E.entities_json, kind)
    return text


async def entity(conn: Conn, kind: str, entity_id: int) -> str:
    return await fetch_json(conn, E.entity_json, kind, entity_id, missing=f"There is no {kind} with id {entity_id}")


async def entity_values(conn: Conn, kind: str, entity_id: int) -> str:
    return await fetch_json(
        conn, E.entity_values_json, kind, entity_id, missing=f"There is no {kind} with id {entity_id}"
    )


async def _require_entity(conn: Conn, kind: str, entity_id: int) -> None:
    """NotFound unless the entity exists and is of that kind; locks it until the transaction ends."""
    if await conn.fetchval(E.entity_kind, entity_id) != kind:
        raise NotFound(f"There is no {kind} with id {entity_id}")


async def _person_relationship(conn: Conn, given: object) -> tuple[int, str]:
    """The existing person relationship type a person-to-person link names: {"id", "name"} (each
    optional, both must agree) or its name."""
    if isinstance(given, str):
        wanted = {"id": None, "name": given}
    elif isinstance(given, dict):
        wanted = load(PersonLinkSchema, {"relationshipType": given})["relationshipType"]
    else:
        wanted = {"id": None, "name": None}
    if wanted["id"] is None and not wanted["name"]:
        raise BadRequest(
            'relationshipType: a person relationship type, as {"id": ..., "name": ...} or its name',
            message="Invalid request",
        )
    row = await conn.fetchrow(E.person_relationship_type, wanted["id"], wanted["name"])
    if row is None:
        named = " and ".join(
            part
            for part in (f"id {wanted['id']}" if wanted["id"] else "", repr(wanted["name"]) if wanted["name"] else "")
            if part
        )
        raise BadRequest(
            f"relationshipType: there is no person relationship type {named} (POST /person/relationshipType)",
            message="Unknown reference",
        )
    return row["id"], row["name"]


async def link_entities(
    conn: asyncpg.Connection, kind: str, entity_id: int, linked_kind: str, linked_id: int, relationship: object
) -> int:
    """Links one entity to another where the kinds allow it; returns the link's id."""
    if linked_kind not in MAY_LINK_TO[kind]:
        raise BadRequest(
            f"{_a(kind).capitalize()} may link to: {', '.join(MAY_LINK_TO[kind])}; not to {_a(linked_kind)}",
            message="Not allowed",
        )
    await _require_entity(conn, kind, entity_id)
    await _require_entity(conn, linked_kind, linked_id)
    if entity_id == linked_id:
        raise BadRequest(f"{kind.capitalize()} {entity_id} cannot be linked to itself", message="Not allowed")
    person_type_id = None
    if kind == linked_kind == "person":
        person_type_id, relationship = await _person_relationship(conn, relationship)
    elif not isinstance(relationship, str) or not 0 < len(relationship) <= 200:
        raise BadRequest("relationshipType: a name of 1 to 200 characters", message="Invalid request")
    try:
        link_id: int = await conn.fetchval(E.link_entities, entity_id, linked_id, relationship, person_type_id)
    except asyncpg.UniqueViolationError:
        raise Conflict(
            f"{kind.capitalize()} {entity_id} is already linked to {linked_kind} {linked_id} as {relationship!r}"
        ) from None
    return link_id


async def add_type(conn: asyncpg.Connection, kind: str, entity_id: int, type_id: int, relationship: object) -> int:
    if not isinstance(relationship, str) or not 0 < len(relationship) <= 200:
        raise BadRequest("relationshipType: a name of 1 to 200 characters", message="Invalid request")
    await _require_entity(conn, kind, entity_id)
    if await conn.fetchval(Q.missing_types, [type_id]):
        raise NotFound(f"There is no type with id {type_id}")
    try:
        link_id: int = await conn.fetchval(E.add_type, entity_id, type_id, relationship)
    except asyncpg.UniqueViolationError:
        raise Conflict(f"{kind.capitalize()} {entity_id} already has type {type_id} as {relationship!r}") from None
    return link_id


async def add_property(
    conn: asyncpg.Connection,
    kind: str,
    entity_id: int,
    property_id: int,
    relationship: str,
    field_id: int,
    record_id: int | None,
) -> int:
    """Links an entity to a property over a field (dynamic) or one field of one record (static)."""
    await _require_entity(conn, kind, entity_id)
    if not await conn.fetchval(E.property_exists, property_id):
        raise NotFound(f"There is no property with id {property_id}")
    causes = []
    if not await conn.fetchval(E.field_exists, field_id):
        causes.append(f"field.id: there is no field with id {field_id}")
    if record_id is not None and not await conn.fetchval(E.record_exists, record_id):
        causes.append(f"record.id: there is no record with id {record_id}")
    if causes:
        raise BadRequest("; ".join(causes), message="Unknown reference")
    if record_id is not None and not await conn.fetchval(E.field_has_value_in_record, field_id, record_id):
        raise BadRequest(
            f"record.id: record {record_id} has no value in field {field_id}, so a static link would point at nothing",
            message="Unknown reference",
        )
    try:
        link_id: int = await conn.fetchval(E.add_property, entity_id, property_id, relationship, field_id, record_id)
    except asyncpg.UniqueViolationError:
        raise Conflict(f"{kind.capitalize()} {entity_id} already has this property link") from None
    except asyncpg.ForeignKeyViolationError:  # deleted by another request since the checks
        raise BadRequest(
            f"field.id or record.id: field {field_id} or record {record_id} was deleted meanwhile",
            message="Unknown reference",
        ) from None
    return link_id


async def property_links(conn: Conn, kind: str, entity_id: int, static: bool) -> str:
    return await fetch_json(
        conn, E.property_links_json, kind, entity_id, static, missing=f"There is no {kind} with id {entity_id}"
    )
