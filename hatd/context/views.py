"""The context vocabulary: data types, units of measurement, properties and person relationship
types. Seed 002, "Creating Person Relationship Types" and "Data Type Annotations" to "System Units
of Measurement". (Entities and their links build on these.)"""

from __future__ import annotations

from aiohttp import web

from hatd import db
from hatd.context import repository
from hatd.context.schemas import (
    CreatedIdSchema,
    NameQuerySchema,
    NewPropertySchema,
    NewRelationshipTypeSchema,
    NewTypeSchema,
    NewUnitSchema,
    PropertySchema,
    RelationshipTypeSchema,
    TypeLinkSchema,
    TypeSchema,
    UnitSchema,
)
from hatd.http import json_response, json_text, parse_body, parse_query, path_id
from hatd.routing import ALL_ROLES, OWNER, PLATFORM, Route
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


ROUTES = [
    Route("POST", "/type/type", create_type, name="create_type", roles=VOCABULARY_WRITERS, body=NewTypeSchema,
          response=TypeSchema, status=201, errors=(409,), summary="Create a data type (names are unique)"),
    Route("GET", "/type/type", list_types, name="list_types", roles=ALL_ROLES, query=NameQuerySchema,
          response=TypeSchema, many=True, summary="The data types", description=BY_NAME),
    Route("POST", r"/type/{id:\d+}/type/{linkedId:\d+}", link_types, name="link_types", roles=VOCABULARY_WRITERS,
          body=TypeLinkSchema, response=CreatedIdSchema, status=201, errors=(409,),
          summary="Link a type to another (relationshipType \"subtype\": the first is a kind of the second)"),
    Route("POST", "/type/unitofmeasurement", create_unit, name="create_unit", roles=VOCABULARY_WRITERS,
          body=NewUnitSchema, response=UnitSchema, status=201, errors=(409,),
          summary="Create a unit of measurement (names are unique)"),
    Route("GET", "/type/unitofmeasurement", list_units, name="list_units", roles=ALL_ROLES, query=NameQuerySchema,
          response=UnitSchema, many=True, summary="The units of measurement", description=BY_NAME),
    Route("POST", "/property", create_property, name="create_property", roles=VOCABULARY_WRITERS,
          body=NewPropertySchema, response=PropertySchema, status=201, errors=(409,),
          summary="Create a property of a type and a unit, both by id (names are unique)"),
    Route("GET", "/property", list_properties, name="list_properties", roles=ALL_ROLES, query=NameQuerySchema,
          response=PropertySchema, many=True, summary="The properties, with their type and unit", description=BY_NAME),
    Route("POST", "/person/relationshipType", create_relationship_type, name="create_relationship_type",
          roles=OWNER_ONLY, body=NewRelationshipTypeSchema, response=RelationshipTypeSchema, status=201,
          errors=(409,), summary="Create a person relationship type (names are unique)"),
    Route("GET", "/person/relationshipType", list_relationship_types, name="list_relationship_types",
          roles=OWNER_ONLY, response=RelationshipTypeSchema, many=True, summary="The person relationship types"),
]  # fmt: skip
