"""Route declarations. Each domain lists its routes in one table (`ROUTES` at the end of its
views.py): method, path, handler, who may call it, and the schemas that parse and document it.
The auth middleware reads `roles` from here and the OpenAPI document is generated from here."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import marshmallow
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# roles=PUBLIC: the route needs no token at all.
PUBLIC: frozenset[str] = frozenset()

JSON = "application/json"
HTML = "text/html"
# A path variable holding an account's userId, in its 8-4-4-4-12 hex form.
USER_ID = "{userId:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}}"

# A path variable with a pattern, which may hold one level of braces: {id:\d+}, {userId:[0-9a-f]{8}-...}.
_PATTERNED_VARIABLE = re.compile(r"\{(\w+):[^{}]*(?:\{[^{}]*\}[^{}]*)*\}")


def plain_path(path: str) -> str:
    """The path without variable patterns, as people and OpenAPI write it: /data/table/{id}."""
    return _PATTERNED_VARIABLE.sub(r"{\1}", path)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    name: str
    roles: frozenset[str]
    summary: str
    # Other spellings of the path that serve the same handler (the spec spells some two ways).
    aliases: tuple[str, ...] = ()
    body: type[marshmallow.Schema] | None = None
    query: type[marshmallow.Schema] | None = None
    # Headers the route reads, for the docs: name -> description.
    headers: dict[str, str] = field(default_factory=dict)
    response: type[marshmallow.Schema] | None = None
    many: bool = False
    # The answer is one `response` or a list of them (as the body was, or a ?name= lookup).
    one_or_many: bool = False
    # Another shape of each item of the answer, which the query may ask for (pretty=true).
    alternative: type[marshmallow.Schema] | None = None
    # Statuses whose JSON body is not the {"message", "cause"} of an error: status -> its schema.
    responses: dict[int, type[marshmallow.Schema]] = field(default_factory=dict)
    status: int = 200
    produces: str = JSON
    # False: the route answers `produces` whatever the Accept header says (no 406). For answers
    # that clients of the original fetch with an HTTP library that sends its own Accept.
    negotiated: bool = True
    # Error statuses the route answers with beyond the ones every route may (for the docs).
    errors: tuple[int, ...] = ()
    # GET routes answer HEAD too, unless running them has effects (a logged data read).
    head: bool = True
    description: str = ""
    # The body is an HTML form (application/x-www-form-urlencoded), not JSON.
    form: bool = False
    # ... sent as multipart/form-data, because it carries a file.
    multipart: bool = False
    # An owner's page: PUBLIC for the token middleware, it checks the owner's session cookie itself.
    session: bool = False

    @property
    def public(self) -> bool:
        return self.roles == PUBLIC


ROUTES_KEY = web.AppKey("routes", dict)


def add_routes(app: web.Application, routes: Iterable[Route]) -> None:
    """Register each route and its aliases; remember the declaration under the aiohttp route name."""
    table: dict[str, Route] = app.setdefault(ROUTES_KEY, {})
    for route in routes:
        for index, path in enumerate((route.path, *route.aliases)):
            name = route.name if index == 0 else f"{route.name}:alias{index}"
            if name in table:
                raise ValueError(f"route name {name!r} declared twice")
            app.router.add_route(route.method, path, route.handler, name=name)
            table[name] = route
            if route.method == "GET" and route.head:  # HEAD goes through the same checks as its GET
                app.router.add_route("HEAD", path, route.handler, name=f"{name}:head")
                table[f"{name}:head"] = route


def route_of(request: web.Request) -> Route | None:
    """The declaration of the route a request matched, or None (no route, or wrong method, or a
    request aiohttp's parser refused, which never reached routing)."""
    # aiohttp's match_info property asserts it is set; a request its parser refused has none.
    match_info = getattr(request, "_match_info", None)
    if match_info is None or match_info.http_exception is not None:
        return None
    resource_route = match_info.route
    name = resource_route.name
    if name is None:
        return None
    return request.app.get(ROUTES_KEY, {}).get(name)
