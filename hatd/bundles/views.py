"""Contextless bundles: named sets of raw tables, narrowed by slices, that data debits share.
Seed 002, "Contextless Bundling"; the original server's shape from its facts."""

from __future__ import annotations

from aiohttp import web

from hatd import db
from hatd.bundles import repository
from hatd.bundles.schemas import (
    BundleSchema,
    BundleValuesQuerySchema,
    BundleValuesSchema,
    NewBundleSchema,
    bundle_tables,
)
from hatd.http import json_text, page_limit, parse_body, parse_query, path_id
from hatd.routing import OWNER, Route
from hatd.state import POOL

OWNER_ONLY = frozenset({OWNER})


async def create_bundle(request: web.Request) -> web.Response:
    new = await parse_body(request, NewBundleSchema)
    async with db.transaction(request.app[POOL]) as conn:
        return json_text(await repository.create_bundle(conn, new["name"], bundle_tables(new)), status=201)


async def get_bundle(request: web.Request) -> web.Response:
    return json_text(await repository.bundle(request.app[POOL], path_id(request, "id", "contextless bundle")))


async def bundle_values(request: web.Request) -> web.Response:
    bundle_id = path_id(request, "id", "contextless bundle")
    query = parse_query(request, BundleValuesQuerySchema)
    limit = page_limit(request, query["limit"])
    window = (query["starttime"], query["endtime"])
    text, _ = await repository.bundle_values(request.app[POOL], bundle_id, window, limit)
    return json_text(text)


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
          description="Each table's newest `limit` records (default HATD_VALUES_LIMIT) within "
          "starttime/endtime, shaped as GET /data/table/{id}/values gives them, under dataGroups."),
]  # fmt: skip
