"""The OpenAPI document, generated from the route table and its marshmallow schemas, so every
route a domain declares documents itself."""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

import hatd
from hatd.routing import HTML, JSON, Route, plain_path

_ERROR_STATUSES = {
    303: "See other: to the owner's login page when there is no session (or on, when there is one)",
    400: "Bad request: malformed JSON, or a field that fails validation (the cause names it)",
    401: "No token, or an invalid, expired or foreign one, or a disabled account",
    403: "The token's role may not call this route",
    404: "No such route or item",
    405: "Method not allowed",
    406: "The Accept header excludes what the route answers with",
    409: "Conflicts with what exists",
    413: "The body is larger than HATD_MAX_BODY",
    429: "Too many requests",
    503: "The database does not answer, or the request took too long",
}


class ErrorSchema(Schema):
    message = fields.String(required=True, metadata={"description": "What kind of failure"})
    cause = fields.String(required=True, metadata={"description": "What exactly went wrong"})


def _schema_name(schema: type[Schema] | Schema) -> str:
    cls = schema if isinstance(schema, type) else type(schema)
    return cls.__name__.removesuffix("Schema")


def _error_statuses(route: Route, path: str) -> set[int]:
    # 503: the database does not answer (any route may meet it: the token check asks the database).
    statuses = {404, 405, 406, 413, 503, *route.errors, *route.responses}
    if route.body is not None or route.query is not None or "{" in path or route.method in ("POST", "PUT", "PATCH"):
        statuses.add(400)
    if route.method in ("POST", "PUT", "PATCH", "DELETE"):  # a conflict, or a collision with another write
        statuses.add(409)
    if not route.public:
        statuses |= {401, 403}
    if route.session and route.method == "POST":  # no session, or a form without its CSRF token
        statuses.add(403)
    if route.session and route.method == "GET":  # no session: to the login page
        statuses.add(303)
    return statuses


def _roles(route: Route) -> list[str]:
    if route.session:
        return ["owner (browser session)"]
    return sorted(route.roles) if not route.public else ["public"]


def _operation(route: Route, spec: APISpec, path: str) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", plain_path(path))
    ]
    params += [
        {"in": "header", "name": name, "required": False, "schema": {"type": "string"}, "description": text}
        for name, text in route.headers.items()
    ]
    if route.query is not None:
        params.append({"in": "query", "schema": route.query})
    response: dict[str, Any] = {"description": "Success"}
    if route.produces == JSON and route.response is not None:
        schema: Any = route.response
        if route.alternative is not None:
            schema = {"oneOf": [schema, route.alternative]}
        if route.one_or_many:
            schema = {"oneOf": [schema, {"type": "array", "items": schema}]}
        elif route.many:
            schema = {"type": "array", "items": schema}
        response["content"] = {JSON: {"schema": schema}}
    elif route.produces == JSON:
        response["content"] = {JSON: {"schema": {"type": "object"}}}
    elif route.status == 303:  # a redirect: no body, a Location
        response["headers"] = {"Location": {"schema": {"type": "string"}, "description": "Where to go"}}
    elif route.produces != JSON:
        response["content"] = {route.produces: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(route.status): response}
    for status in sorted(_error_statuses(route, path)):
        text = _ERROR_STATUSES[status]
        if status == 303:
            responses["303"] = {"description": text, "headers": {"Location": {"schema": {"type": "string"}}}}
        elif status in route.responses:
            responses[str(status)] = {"description": text, "content": {JSON: {"schema": route.responses[status]}}}
        elif route.produces == HTML or route.session:  # pages answer errors as pages: same message and cause
            responses[str(status)] = {"description": text, "content": {HTML: {"schema": {"type": "string"}}}}
        else:
            responses[str(status)] = {"description": text, "content": {JSON: {"schema": "Error"}}}
    operation: dict[str, Any] = {
        "operationId": route.name if path == route.path else f"{route.name}_{route.aliases.index(path) + 1}",
        "summary": route.summary,
        "parameters": params,
        "responses": responses,
        "x-roles": sorted(route.roles)
        if not route.public
        else ["owner (browser session)" if route.session else "public"],
    }
    description = route.description
    if path != route.path:
        description = f"Another spelling of {route.method} {route.path}. {description}".strip()
    if description:
        operation["description"] = description
    if not route.public:
        operation["security"] = [{"XAuthToken": []}, {"AccessTokenQuery": []}]
    if route.session:
        operation["security"] = [{"OwnerSession": []}]
    if route.body is not None:
        media = "application/x-www-form-urlencoded" if route.form else JSON
        media = "multipart/form-data" if route.multipart else media
        operation["requestBody"] = {"required": True, "content": {media: {"schema": route.body}}}
    return operation


def build_spec(routes: list[Route]) -> dict[str, Any]:
    spec = APISpec(
        title="hatd: a HAT personal data server",
        version=hatd.__version__,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin(schema_name_resolver=_schema_name)],
        info={
            "description": 'The HAT API (seed 002). Every error body is {"message", "cause"} (on the owner\'s '
            "HTML pages, a page showing them)."
        },
    )
    spec.components.schema("Error", schema=ErrorSchema)
    spec.components.security_scheme("XAuthToken", {"type": "apiKey", "in": "header", "name": "X-Auth-Token"})
    spec.components.security_scheme("AccessTokenQuery", {"type": "apiKey", "in": "query", "name": "access_token"})
    spec.components.security_scheme("OwnerSession", {
        "type": "apiKey", "in": "cookie", "name": "hatd_session_<tag>",
        "description": "The owner's browser session, from POST /owner/login (the name carries a tag of the HAT's "
        "address; __Host- in front over https). Forms also carry the session's CSRF token as `csrf`.",
    })  # fmt: skip
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        for path in (route.path, *route.aliases):
            paths.setdefault(plain_path(path), {})[route.method.lower()] = _operation(route, spec, path)
    for path, operations in sorted(paths.items()):
        spec.path(path=path, operations=operations)
    return spec.to_dict()


# Documents built, by the routes they describe (ids of the module-level Route objects, kept alive
# here with them): an app built again in the same process (the test suite builds hundreds) reuses
# its document instead of spending a tenth of a second on it. Nothing writes to a document.
_BUILT: dict[tuple[int, ...], tuple[list[Route], dict[str, Any]]] = {}


def spec_for(routes: list[Route]) -> dict[str, Any]:
    """build_spec(routes), built once per process for the same routes."""
    key = tuple(map(id, routes))
    if key not in _BUILT:
        _BUILT[key] = (list(routes), build_spec(routes))
    return _BUILT[key][1]
