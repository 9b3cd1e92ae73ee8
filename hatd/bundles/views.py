"""Bundles, what data debits share: contextless ones (raw tables narrowed by slices) and
contextual ones (entities and their properties, picked by selectors). Seed 002, "Data Bundling";
the original server's shapes from its facts."""

from __future__ import annotations

from aiohttp import web

from hatd import db
from hatd.bundles import repository
from hatd.bundles.schemas import (
    BundleSchema,
    BundleValuesQuerySchema,
    BundleValuesSchema,
    ContextualBundleSchema,
    ContextualValuesItemSchema,
    EntitySelectionSchema,
    EntitySelectorSchema,
    NewBundleSchema,
    NewContextualBundleSchema,
    PropertySelectionSchema,
    PropertySelectorSchema,
)
from hatd.http import json_text, parse_body, parse_query, path_id
from hatd.paging import paged_stream, read_page
from hatd.reads import PageQuerySchema, PrettyQuerySchema
from hatd.roles import OWNER
from hatd.routing import Route
from hatd.state import POOL

OWNER_ONLY = frozenset({OWNER})


async def create_bundle(request: web.Request) -> web.Response:
    new = await parse_body(request, NewBundleSchema)
    async with db.transaction(request.app[POOL]) as conn:
        return json_text(await repository.create_bundle(conn, new), status=201)


async def get_bundle(request: web.Request) -> web.Response:
    return json_text(await repository.bundle(request.app[POOL], path_id(request, "id", "contextless bundle")))


async def bundle_values(request: web.Request) -> web.StreamResponse:
    bundle_id = path_id(request, "id", "contextless bundle")
    scope = f"bundle:{bundle_id}"
    window, after, limit = read_page(request, scope)
    pretty = parse_query(request, PrettyQuerySchema)["pretty"]
    async with db.snapshot(request.app[POOL]) as conn:
        page = await repository.bundle_values(conn, bundle_id, window, after, limit, pretty=pretty)
        return await paged_stream(request, scope, page.parts, page.more)


async def create_contextual(request: web.Request) -> web.Response:
    new = await parse_body(request, NewContextualBundleSchema)
    async with db.transaction(request.app[POOL]) as conn:
        bundle_id = await repository.insert_contextual_bundle(conn, new["name"], new["entities"])
        return json_text(await repository.contextual_bundle(conn, bundle_id), status=201)


async def get_contextual(request: web.Request) -> web.Response:
    bundle_id = path_id(request, "id", "contextual bundle")
    return json_text(await repository.contextual_bundle(request.app[POOL], bundle_id))


async def contextual_values(request: web.Request) -> web.StreamResponse:
    bundle_id = path_id(request, "id", "contextual bundle")
    scope = f"context:{bundle_id}"
    _, after, limit = read_page(request, scope)
    async with db.snapshot(request.app[POOL]) as conn:
        page = await repository.contextual_values(conn, bundle_id, after, limit)
        return await paged_stream(request, scope, page.parts, page.more)


async def add_entity_selection(request: web.Request) -> web.Response:
    bundle_id = path_id(request, "id", "contextual bundle")
    selector = await parse_body(request, EntitySelectorSchema)
    async with db.transaction(request.app[POOL]) as conn:
        await repository.contextual_bundle(conn, bundle_id)
        selection_id = await repository.add_entity_selection(conn, bundle_id, selector, "body")
        return json_text(await repository.entity_selection(conn, selection_id), status=201)


async def add_property_selection(request: web.Request) -> web.Response:
    bundle_id = path_id(request, "id", "contextual bundle")
    selection_id = path_id(request, "selectionId", "entity selection")
    selector = await parse_body(request, PropertySelectorSchema)
    async with db.transaction(request.app[POOL]) as conn:
        await repository.require_entity_selection(conn, bundle_id, selection_id)
        property_id = await repository.add_property_selection(conn, selection_id, selector)
        return json_text(await repository.property_selection(conn, property_id), status=201)


CONTEXT = r"/bundles/context/{id:\d+}"
CONTEXT_ONE = r"/bundle/context/{id:\d+}"
SELECTION = r"/entitySelection/{selectionId:\d+}/propertySelection"

ROUTES = [
    Route("POST", "/bundles/contextless", create_bundle, name="create_bundle_contextless", roles=OWNER_ONLY,
          aliases=("/bundle/contextless",), body=NewBundleSchema, response=BundleSchema, status=201,
          summary="Create a contextless bundle of raw tables (with slices)",
          description="Takes the reference's {name, bundleTable: [{name, table}]} or the original server's "
          "{name, tables: [{name, bundleTable: {name, table, slices}}]}. A table is named by id, or by name "
          "and source. A record is in a sliced table if any slice matches, and a slice matches if all its "
          "conditions (equal, notEqual, greaterThan, lessThan, like; values compared as text) hold."),
    Route("GET", r"/bundles/contextless/{id:\d+}", get_bundle, name="get_bundle_contextless", roles=OWNER_ONLY,
          aliases=(r"/bundle/contextless/{id:\d+}",), response=BundleSchema,
          summary="A contextless bundle's structure"),
    Route("GET", r"/bundles/contextless/{id:\d+}/values", bundle_values, name="bundle_contextless_values",
          roles=OWNER_ONLY, aliases=(r"/bundle/contextless/{id:\d+}/values",), query=BundleValuesQuerySchema,
          response=BundleValuesSchema,
          summary="A contextless bundle's data: for each table, its records with nested values",
          description="Paged like the raw reads: up to `limit` records over all the bundle's tables, newest "
          "first, within starttime/endtime, shaped as GET /data/table/{id}/values gives them, under "
          "dataGroups; a Link header leads to the next page."),
    Route("POST", "/bundles/context", create_contextual, name="create_bundle_contextual", roles=OWNER_ONLY,
          aliases=("/bundle/context",), body=NewContextualBundleSchema, response=ContextualBundleSchema, status=201,
          summary="Create a contextual bundle: entity selectors, each with optional property selectors"),
    Route("GET", CONTEXT, get_contextual, name="get_bundle_contextual", roles=OWNER_ONLY, aliases=(CONTEXT_ONE,),
          response=ContextualBundleSchema, summary="A contextual bundle's selectors"),
    Route("GET", CONTEXT + "/values", contextual_values, name="bundle_contextual_values", roles=OWNER_ONLY,
          aliases=(CONTEXT_ONE + "/values",), query=PageQuerySchema, response=ContextualValuesItemSchema, many=True,
          summary="The selected entities, with the properties their selectors admit and those values",
          description="[{\"kind\": \"person\", \"person\": {id, name, personId, staticProperties, "
          "dynamicProperties}}]; links to other entities are not followed. Paged by entity, in id order: up "
          "to `limit` entities, and a Link header to the next page (starttime/endtime do not apply)."),
    Route("POST", CONTEXT + "/entitySelection", add_entity_selection, name="add_entity_selection",
          roles=OWNER_ONLY, aliases=(CONTEXT_ONE + "/entitySelection",), body=EntitySelectorSchema,
          response=EntitySelectionSchema, status=201,
          summary="Add an entity selector to a contextual bundle; answers the new selection with its id",
          description="The answer's `id` is the SELECTION_ID that .../entitySelection/{selectionId}/propertySelection "
          "takes (the original answered the new selection too)."),
    Route("POST", CONTEXT + SELECTION, add_property_selection, name="add_property_selection", roles=OWNER_ONLY,
          aliases=(CONTEXT_ONE + SELECTION,), body=PropertySelectorSchema, response=PropertySelectionSchema,
          status=201, summary="Add a property selector to an entity selection; answers the new property selection"),
]  # fmt: skip
