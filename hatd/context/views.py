"""Context: people, things, events, locations and organisations, their links, types and
properties; and the vocabulary that describes them (data types, units of measurement, properties,
person relationship types). Seed 002, "Contextualisation" to "System Units of Measurement"."""

from __future__ import annotations

from aiohttp import web

from hatd import db
from hatd.context import repository
from hatd.context.repository import KINDS, MAY_LINK_TO
from hatd.context.schemas import (
    CreatedIdSchema,
    EntitySchema,
    EntityValuesSchema,
    NameQuerySchema,
    NewEntitySchema,
    NewPropertySchema,
    NewRelationshipTypeSchema,
    NewTypeSchema,
    NewUnitSchema,
    PropertyLinkOutSchema,
    PropertyLinkSchema,
    PropertySchema,
    RelationshipSchema,
    RelationshipTypeSchema,
    TypeLinkSchema,
    TypeSchema,
    UnitSchema,
)
from hatd.errors import BadRequest
from hatd.http import json_response, json_text, parse_body, parse_query, path_id
from hatd.roles import ALL_ROLES, OWNER, PLATFORM
from hatd.routing import Route
from hatd.state import POOL

VOCABULARY_WRITERS = frozenset({OWNER, PLATFORM})
OWNER_ONLY = frozenset({OWNER})
BY_NAME = "With ?name=X: that one object (404 if none) instead of the list."


async def create_type(request: web.Request) -> web.Response:
    new = await parse_body(request, NewTypeSchema)
    return json_text(await repository.create_type(request.app[POOL], new["name"], new["description"]), status=201)


async def list_types(request: web.Request) -> web.Response:
    query = parse_query(request, NameQuerySchema)
    return json_text(await repository.types(request.app[POOL], query["name"]))


async def link_types(request: web.Request) -> web.Response:
    type_id, linked_id = path_id(request, "id", "type"), path_id(request, "linkedId", "type")
    link = await parse_body(request, TypeLinkSchema)
    async with db.transaction(request.app[POOL]) as conn:
        link_id = await repository.link_types(conn, type_id, linked_id, link["relationshipType"])
    return json_response({"id": link_id}, status=201)


async def create_unit(request: web.Request) -> web.Response:
    new = await parse_body(request, NewUnitSchema)
    unit = await repository.create_unit(request.app[POOL], new["name"], new["description"], new["symbol"])
    return json_text(unit, status=201)


async def list_units(request: web.Request) -> web.Response:
    query = parse_query(request, NameQuerySchema)
    return json_text(await repository.units(request.app[POOL], query["name"]))


async def create_property(request: web.Request) -> web.Response:
    new = await parse_body(request, NewPropertySchema)
    async with db.transaction(request.app[POOL]) as conn:
        created = await repository.create_property(
            conn, new["name"], new["description"], new["propertyType"]["id"], new["unitOfMeasurement"]["id"]
        )
    return json_text(created, status=201)


async def list_properties(request: web.Request) -> web.Response:
    query = parse_query(request, NameQuerySchema)
    return json_text(await repository.properties(request.app[POOL], query["name"]))


async def create_relationship_type(request: web.Request) -> web.Response:
    new = await parse_body(request, NewRelationshipTypeSchema)
    created = await repository.create_relationship_type(request.app[POOL], new["name"], new["description"])
    return json_text(created, status=201)


async def list_relationship_types(request: web.Request) -> web.Response:
    return json_text(await repository.relationship_types(request.app[POOL]))


# -- entities ----------------------------------------------------------------------------------


def _kind(request: web.Request) -> str:
    """The entity kind a route serves: the first segment of its declared path (/person/..., /thing/...)."""
    return request.match_info.route.resource.canonical.split("/")[1]  # type: ignore[union-attr]


async def create_entity(request: web.Request) -> web.Response:
    new = await parse_body(request, NewEntitySchema)
    created = await repository.create_entity(request.app[POOL], _kind(request), new["name"], new["personId"])
    return json_text(created, status=201)


async def list_entities(request: web.Request) -> web.Response:
    return json_text(await repository.entities(request.app[POOL], _kind(request)))


async def get_entity(request: web.Request) -> web.Response:
    kind = _kind(request)
    return json_text(await repository.entity(request.app[POOL], kind, path_id(request, "id", kind)))


async def entity_values(request: web.Request) -> web.Response:
    kind = _kind(request)
    return json_text(await repository.entity_values(request.app[POOL], kind, path_id(request, "id", kind)))


async def link_entities(request: web.Request) -> web.Response:
    kind, linked_kind = _kind(request), request.match_info["linkedKind"]
    entity_id, linked_id = path_id(request, "id", kind), path_id(request, "linkedId", linked_kind)
    body = await parse_body(request, RelationshipSchema)
    async with db.transaction(request.app[POOL]) as conn:
        link_id = await repository.link_entities(
            conn, kind, entity_id, linked_kind, linked_id, body["relationshipType"]
        )
    return json_response({"id": link_id}, status=201)


async def add_type(request: web.Request) -> web.Response:
    kind = _kind(request)
    entity_id, type_id = path_id(request, "id", kind), path_id(request, "typeId", "type")
    body = await parse_body(request, RelationshipSchema)
    async with db.transaction(request.app[POOL]) as conn:
        link_id = await repository.add_type(conn, kind, entity_id, type_id, body["relationshipType"])
    return json_response({"id": link_id}, status=201)


async def _add_property(request: web.Request, static: bool) -> web.Response:
    kind = _kind(request)
    entity_id, property_id = path_id(request, "id", kind), path_id(request, "propertyId", "property")
    body = await parse_body(request, PropertyLinkSchema)
    if static and body["record"] is None:
        raise BadRequest("record: Missing data for required field.", message="Invalid request")
    if not static and body["record"] is not None:
        raise BadRequest(
            "record: a dynamic link is to a whole field; only a static link names a record", message="Invalid request"
        )
    if body["property"] is not None and body["property"]["id"] != property_id:
        raise BadRequest(
            f"property.id: {body['property']['id']} differs from the path's property {property_id}",
            message="Invalid request",
        )
    record_id = body["record"]["id"] if static else None
    async with db.transaction(request.app[POOL]) as conn:
        link_id = await repository.add_property(
            conn, kind, entity_id, property_id, body["relationshipType"], body["field"]["id"], record_id
        )
    return json_response({"id": link_id}, status=201)


async def add_static_property(request: web.Request) -> web.Response:
    return await _add_property(request, static=True)


async def add_dynamic_property(request: web.Request) -> web.Response:
    return await _add_property(request, static=False)


async def static_properties(request: web.Request) -> web.Response:
    kind = _kind(request)
    return json_text(await repository.property_links(request.app[POOL], kind, path_id(request, "id", kind), True))


async def dynamic_properties(request: web.Request) -> web.Response:
    kind = _kind(request)
    return json_text(await repository.property_links(request.app[POOL], kind, path_id(request, "id", kind), False))


LINKED_KIND = "{linkedKind:" + "|".join(KINDS) + "}"


def _entity_routes(kind: str) -> list[Route]:
    """The routes of one entity kind: the same handlers at /person, /thing, ..."""
    base, one = f"/{kind}", f"/{kind}/{{id:\\d+}}"
    allowed = ", ".join(MAY_LINK_TO[kind])
    return [
        Route("POST", base, create_entity, name=f"create_{kind}", roles=OWNER_ONLY, body=NewEntitySchema,
              response=EntitySchema, status=201, summary=f"Create a {kind}"
              + (" (personId is mandatory)" if kind == "person" else "")),
        Route("GET", base, list_entities, name=f"list_{kind}", roles=OWNER_ONLY, response=EntitySchema, many=True,
              summary=f"Every {kind}, without links"),
        Route("GET", one, get_entity, name=f"get_{kind}", roles=OWNER_ONLY, response=EntitySchema,
              summary=f"A {kind}"),
        Route("GET", one + "/values", entity_values, name=f"{kind}_values", roles=OWNER_ONLY,
              response=EntityValuesSchema, many=True,
              summary=f"A {kind} with its linked entities, types and properties with their values",
              description="A one-item list, as in the reference's /thing/ID/values example; "
              "empty groups are left out."),
        Route("POST", one + "/" + LINKED_KIND + "/{linkedId:\\d+}", link_entities, name=f"link_{kind}",
              roles=OWNER_ONLY, body=RelationshipSchema, response=CreatedIdSchema, status=201, errors=(409,),
              summary=f"Link a {kind} to another entity (a {kind} may link to: {allowed})",
              description="Person to person names an existing person relationship type: "
              "{\"relationshipType\": {\"id\": ..., \"name\": ...}} or its name."),
        Route("POST", one + "/type/{typeId:\\d+}", add_type, name=f"type_{kind}", roles=OWNER_ONLY,
              body=RelationshipSchema, response=CreatedIdSchema, status=201, errors=(409,),
              summary=f"Give a {kind} a type"),
        Route("POST", one + "/property/static/{propertyId:\\d+}", add_static_property,
              name=f"static_property_{kind}", roles=OWNER_ONLY, body=PropertyLinkSchema, response=CreatedIdSchema,
              status=201, summary=f"Link a {kind} to a property over one field of one record"),
        Route("POST", one + "/property/dynamic/{propertyId:\\d+}", add_dynamic_property,
              name=f"dynamic_property_{kind}", roles=OWNER_ONLY, body=PropertyLinkSchema, response=CreatedIdSchema,
              status=201, summary=f"Link a {kind} to a property over a whole field"),
        Route("GET", one + "/property/static", static_properties, name=f"static_properties_{kind}",
              roles=OWNER_ONLY, response=PropertyLinkOutSchema, many=True,
              summary=f"A {kind}'s static property links"),
        Route("GET", one + "/property/dynamic", dynamic_properties, name=f"dynamic_properties_{kind}",
              roles=OWNER_ONLY, response=PropertyLinkOutSchema, many=True,
              summary=f"A {kind}'s dynamic property links"),
    ]  # fmt: skip


ROUTES = [
    Route("POST", "/type/type", create_type, name="create_type", roles=VOCABULARY_WRITERS, body=NewTypeSchema,
          response=TypeSchema, status=201, errors=(409,), summary="Create a data type (names are unique)"),
    Route("GET", "/type/type", list_types, name="list_types", roles=ALL_ROLES, query=NameQuerySchema,
          response=TypeSchema, many=True, one_or_many=True, summary="The data types", description=BY_NAME),
    Route("POST", r"/type/{id:\d+}/type/{linkedId:\d+}", link_types, name="link_types", roles=VOCABULARY_WRITERS,
          body=TypeLinkSchema, response=CreatedIdSchema, status=201, errors=(409,),
          summary="Link a type to another (relationshipType \"subtype\": the first is a kind of the second)"),
    Route("POST", "/type/unitofmeasurement", create_unit, name="create_unit", roles=VOCABULARY_WRITERS,
          body=NewUnitSchema, response=UnitSchema, status=201, errors=(409,),
          summary="Create a unit of measurement (names are unique)"),
    Route("GET", "/type/unitofmeasurement", list_units, name="list_units", roles=ALL_ROLES, query=NameQuerySchema,
          response=UnitSchema, many=True, one_or_many=True, summary="The units of measurement", description=BY_NAME),
    Route("POST", "/property", create_property, name="create_property", roles=VOCABULARY_WRITERS,
          body=NewPropertySchema, response=PropertySchema, status=201, errors=(409,),
          summary="Create a property of a type and a unit, both by id (names are unique)"),
    Route("GET", "/property", list_properties, name="list_properties", roles=ALL_ROLES, query=NameQuerySchema,
          response=PropertySchema, many=True, one_or_many=True,
          summary="The properties, with their type and unit", description=BY_NAME),
    Route("POST", "/person/relationshipType", create_relationship_type, name="create_relationship_type",
          roles=OWNER_ONLY, body=NewRelationshipTypeSchema, response=RelationshipTypeSchema, status=201,
          errors=(409,), summary="Create a person relationship type (names are unique)"),
    Route("GET", "/person/relationshipType", list_relationship_types, name="list_relationship_types",
          roles=OWNER_ONLY, response=RelationshipTypeSchema, many=True, summary="The person relationship types"),
    *(route for kind in KINDS for route in _entity_routes(kind)),
]  # fmt: skip
