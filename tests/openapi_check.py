"""Every JSON response a test receives is checked against the OpenAPI document the app serves
(`GET /api/openapi.json`): its status must be one the route documents, and its body must match
that status's schema. The conftest's clients do this for every request, so the document and the
responses cannot drift apart. A new route or a changed shape needs only its schema right.

openapi-schema-validator checks OpenAPI 3.0's dialect of JSON Schema (`nullable`, and the
document's `$ref`s), which plain jsonschema does not know."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web
from aiohttp.client import ClientResponse
from aiohttp.test_utils import TestClient, make_mocked_request
from openapi_schema_validator import OAS30Validator

from hatd.routing import ROUTES_KEY, plain_path
from hatd.system.views import OPENAPI_KEY


class ResponseMismatch(AssertionError):
    """A response the OpenAPI document does not describe."""


# The components' text, by the document they belong to (the same document is shared by every app
# of the run: hatd.openapi.spec_for), so that it is not serialised again for every response.
_COMPONENTS: dict[int, tuple[dict[str, Any], str]] = {}


def _components_text(spec: dict[str, Any]) -> str:
    if id(spec) not in _COMPONENTS:
        _COMPONENTS[id(spec)] = (spec, json.dumps(spec["components"], sort_keys=True))
    return _COMPONENTS[id(spec)][1]


@functools.cache
def _validator(components_text: str, schema_text: str) -> OAS30Validator:
    # The document's components ride along in the schema, where its "#/components/..." refs find them.
    return OAS30Validator({**json.loads(schema_text), "components": json.loads(components_text)})


async def operation_of(app: web.Application, method: str, raw_path: str) -> tuple[str, dict[str, Any]] | None:
    """(the documented path, the operation) a request reaches, or None when no route matches."""
    match = await app.router.resolve(make_mocked_request(method, raw_path, app=app))
    if match.http_exception is not None or match.route.name is None:
        return None
    name = match.route.name.removesuffix(":head")
    route = app[ROUTES_KEY].get(name)
    if route is None:
        return None
    path = route.path if ":alias" not in name else route.aliases[int(name.rsplit("alias", 1)[1]) - 1]
    documented = plain_path(path)
    return documented, app[OPENAPI_KEY]["paths"][documented][route.method.lower()]


async def check_response(app: web.Application, response: ClientResponse) -> None:
    """ResponseMismatch if the OpenAPI document does not describe this response."""
    method = response.method
    found = await operation_of(app, method, response.url.raw_path_qs)
    if found is None:
        return
    path, operation = found
    where = f"{method} {response.url.raw_path} ({path}) answered {response.status}"
    documented = operation["responses"].get(str(response.status))
    if documented is None:
        raise ResponseMismatch(
            f"{where}, which its OpenAPI operation does not document: {sorted(operation['responses'])}"
        )
    if method == "HEAD" or response.content_type != "application/json":
        return
    content = documented.get("content", {}).get("application/json")
    if content is None:
        raise ResponseMismatch(f"{where} with JSON, which its OpenAPI operation documents as {documented}")
    components = _components_text(app[OPENAPI_KEY])
    validator = _validator(components, json.dumps(content["schema"], sort_keys=True))
    body = json.loads(await response.read())
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        shown = "\n".join(_described(e) for e in errors[:5])
        raise ResponseMismatch(f"{where}; its body does not match the documented schema:\n{shown}")


def _described(error: Any) -> str:
    at = "/".join(map(str, error.absolute_path)) or "(top)"
    schema_at = "/".join(map(str, error.absolute_schema_path))
    if error.validator == "additionalProperties":
        return f"  at {at}: {error.message} (schema at {schema_at})"
    return f"  at {at}: fails {error.validator} {error.validator_value!s:.200} (schema at {schema_at}); value {error.instance!s:.150}"


_UNDOCUMENTED: dict[int, int] = {}


@contextmanager
def expect_undocumented(client: TestClient[Any, Any], status: int) -> Iterator[None]:
    """For a test that provokes what no route documents (a bug's 500): responses with this status
    pass unchecked inside the block."""
    _UNDOCUMENTED[id(client)] = status
    try:
        yield
    finally:
        _UNDOCUMENTED.pop(id(client), None)


def check_every_response(client: TestClient[Any, Any]) -> TestClient[Any, Any]:
    """Make the test client check each response it receives against the app's OpenAPI document."""
    request = client._request

    async def checked(method: str, path: Any, **kwargs: Any) -> ClientResponse:
        response = await request(method, path, **kwargs)
        if _UNDOCUMENTED.get(id(client)) != response.status:
            await check_response(client.app, response)
        return response

    client._request = checked  # type: ignore[method-assign]
    return client
