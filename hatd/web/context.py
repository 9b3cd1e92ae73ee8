"""The owner's context and bundles, read-only: the entities of each kind (people, things, events,
locations, organisations) with their types, links and properties and each property's values; and
the bundles, contextless and contextual, with what they hold. Reads through the same repository
functions as the API's routes."""

from __future__ import annotations

import json

from aiohttp import web

from hatd import jsontext
from hatd.bundles import repository as bundles
from hatd.context import repository as context
from hatd.errors import NotFound
from hatd.http import path_id
from hatd.routing import HTML, PUBLIC, Route
from hatd.state import POOL, SETTINGS
from hatd.web.pages import owner_page, render

KINDS = context.KINDS
# The keys entity_values gives linked entities under, by kind.
LINKED = {"person": "people", "thing": "things", "event": "events", "location": "locations",
          "organisation": "organisations"}  # fmt: skip


@owner_page
async def context_page(request: web.Request) -> web.StreamResponse:
    async with request.app[POOL].acquire() as conn:
        kinds = {kind: json.loads(await context.entities(conn, kind)) for kind in KINDS}
    return render(request, "context.html", {"kinds": kinds, "linked": LINKED})


@owner_page
async def entity_page(request: web.Request) -> web.StreamResponse:
    kind = request.match_info["kind"]
    if kind not in KINDS:  # the route admits the five kinds only; this keeps mypy and readers sure
        raise NotFound(f"There is no kind of entity named {kind!r}")
    entity_id = path_id(request, "id", kind)
    entity = json.loads(await context.entity_values(request.app[POOL], kind, entity_id))[0]
    linked = [(other, item) for other in KINDS for item in entity.get(LINKED[other]) or []]
    return render(request, "entity.html", {"kind": kind, "entity": entity, "linked": linked})


@owner_page
async def bundles_page(request: web.Request) -> web.StreamResponse:
    items = json.loads(await bundles.listing(request.app[POOL]))
    return render(request, "bundles.html", {"bundles": items})


@owner_page
async def contextless_page(request: web.Request) -> web.StreamResponse:
    bundle_id = path_id(request, "id", "contextless bundle")
    bundle = json.loads(await bundles.bundle(request.app[POOL], bundle_id))
    return render(request, "bundle.html", {"bundle": bundle, "kind": "contextless"})


@owner_page
async def contextual_page(request: web.Request) -> web.StreamResponse:
    bundle_id = path_id(request, "id", "contextual bundle")
    async with request.app[POOL].acquire() as conn:
        bundle = json.loads(await bundles.contextual_bundle(conn, bundle_id))
        page = await bundles.contextual_values(conn, bundle_id, (None, None), request.app[SETTINGS].values_max_limit)
        text = await jsontext.joined(page.parts)
    selected = [(item["kind"], item[item["kind"]]) for item in json.loads(text)]
    return render(request, "bundle.html", {"bundle": bundle, "kind": "contextual", "selected": selected})


KIND_PATH = "{kind:(?:person|thing|event|location|organisation)}"

ROUTES = [
    Route("GET", "/owner/context", context_page, name="owner_context", roles=PUBLIC, session=True, produces=HTML,
          summary="The entities of each kind: people, things, events, locations, organisations"),
    Route("GET", rf"/owner/context/{KIND_PATH}/{{id:\d+}}", entity_page, name="owner_entity", roles=PUBLIC,
          session=True, produces=HTML,
          summary="One entity: its types, the entities it links to, its properties and their values"),
    Route("GET", "/owner/bundles", bundles_page, name="owner_bundles", roles=PUBLIC, session=True, produces=HTML,
          summary="The bundles, contextless and contextual, with how much each holds"),
    Route("GET", r"/owner/bundles/contextless/{id:\d+}", contextless_page, name="owner_bundle_contextless",
          roles=PUBLIC, session=True, produces=HTML,
          summary="A contextless bundle: its tables, slices and conditions (or its datasets)"),
    Route("GET", r"/owner/bundles/contextual/{id:\d+}", contextual_page, name="owner_bundle_contextual",
          roles=PUBLIC, session=True, produces=HTML,
          summary="A contextual bundle: its entity and property selectors, and the entities they select"),
]  # fmt: skip
