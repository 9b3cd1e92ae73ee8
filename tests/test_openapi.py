"""GET /api/openapi.json documents every route the app serves, from the route table."""

from __future__ import annotations

import re

import pytest
from aiohttp import web

from tests.openapi_check import ResponseMismatch


async def test_every_route_is_documented_with_a_summary(client):
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    spec = await response.json()
    assert spec["openapi"] == "3.0.3"
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in client.app.router.routes()
        if route.method != "HEAD"
    }
    documented = {(method, path) for path, operations in spec["paths"].items() for method in operations}
    assert documented == served
    assert all(operation["summary"] for operations in spec["paths"].values() for operation in operations.values())


NO_TOKEN = "No X-Auth-Token header or query parameter"
# Public to the auth middleware, but the handler asks for a token itself (the owner's, or
# HATD_METRICS_TOKEN as a bearer token), as its description says.
CHECKS_ITS_OWN_TOKEN = {("get", "/metrics")}
# A value each path parameter's pattern accepts (the others take digits).
SAMPLES = {
    "linkedKind": "location",
    "kind": "thing",
    "userId": "00000000-0000-4000-8000-000000000000",
    "key": "00000000-0000-4000-8000-000000000000",
}


async def test_the_documented_roles_are_the_ones_the_server_enforces(client, owner_token, platform_token):
    """Not the document's rule again, but the server's answers: a route documented as public never
    asks for a token (it may check credentials of its own: a login, /metrics), a page for the owner's session sends a stranger away, any other route is 401
    without a token and 403 to a role it does not list, saying so (owner and platform tried)."""
    spec = await (await client.get("/api/openapi.json")).json()
    tokens = {"owner": owner_token, "platform": platform_token}
    seen = set()
    for path, operations in spec["paths"].items():
        concrete = re.sub(r"\{([^}]+)\}", lambda m: SAMPLES.get(m[1], "1"), path)
        for method, operation in operations.items():
            roles = operation["x-roles"]
            seen.add(tuple(roles))
            stranger = await client.request(method.upper(), concrete, allow_redirects=False)
            asks_for_a_token = stranger.status == 401 and NO_TOKEN in await stranger.text()
            where = (method, path, roles, stranger.status)
            if (method, path) in CHECKS_ITS_OWN_TOKEN:
                assert asks_for_a_token, where
            elif roles == ["public"]:
                assert not asks_for_a_token, where
            elif roles == ["owner (browser session)"]:
                assert stranger.status == (303 if method in ("get", "head") else 403), where
            else:
                assert asks_for_a_token, where
                for role, token in tokens.items():
                    answer = await client.request(method.upper(), concrete, headers={"X-Auth-Token": token})
                    body = await answer.text() if method != "head" else ""
                    refused = answer.status == 403 and f"this is a {role} token" in body
                    assert refused == (role not in roles), (role, *where, answer.status, body)
    assert {("public",), ("owner (browser session)",), ("owner",)} <= seen


async def test_schemas_come_from_marshmallow(client):
    spec = await (await client.get("/api/openapi.json")).json()
    create = spec["paths"]["/users/user"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/NewAccount"}
    new_account = spec["components"]["schemas"]["NewAccount"]
    assert set(new_account["required"]) == {"email", "pass", "name", "role"}
    assert new_account["properties"]["role"]["enum"] == ["dataDebit", "dataCredit"]
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Account"
    }
    assert create["responses"]["409"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    login = spec["paths"]["/user/access_token"]["get"]
    assert login["description"].startswith("Another spelling of GET /users/access_token.")
    assert "security" not in login
    assert spec["paths"]["/users/user"]["get"]["security"] == [{"XAuthToken": []}, {"AccessTokenQuery": []}]


async def test_the_owners_pages_are_documented_as_pages(client):
    spec = await (await client.get("/api/openapi.json")).json()
    enable = spec["paths"]["/owner/debits/{key}/enable"]["post"]
    assert enable["security"] == [{"OwnerSession": []}]
    assert set(enable["responses"]) >= {"303", "403", "404"} and "200" not in enable["responses"]
    assert enable["responses"]["403"]["content"] == {"text/html": {"schema": {"type": "string"}}}
    form = enable["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form == {"$ref": "#/components/schemas/ButtonForm"}
    assert spec["components"]["securitySchemes"]["OwnerSession"]["in"] == "cookie"
    assert spec["paths"]["/hatlogin"]["get"]["x-roles"] == ["public"]
    assert "429" in spec["paths"]["/owner/login"]["post"]["responses"]


async def test_a_response_that_strays_from_its_schema_fails_the_test(client, owner_token, monkeypatch):
    """The conftest's clients check every JSON response against the document (tests/openapi_check.py)."""
    from hatd.accounts import repository

    async def drifted(*args, **kwargs):
        return '[{"userId": "not a list of accounts any more"}]'

    monkeypatch.setattr(repository, "list_accounts", drifted)
    with pytest.raises(ResponseMismatch, match=r"GET /users/user \(/users/user\) answered 200; its body does not"):
        await client.get("/users/user", headers={"X-Auth-Token": owner_token})


async def test_an_undocumented_status_fails_the_test(client, owner_token, monkeypatch):
    from hatd.accounts import repository

    async def unpaid(*args, **kwargs):
        raise web.HTTPPaymentRequired()

    monkeypatch.setattr(repository, "list_accounts", unpaid)
    with pytest.raises(ResponseMismatch, match="answered 402, which its OpenAPI operation does not document"):
        await client.get("/users/user", headers={"X-Auth-Token": owner_token})


async def test_methods_a_path_does_not_serve_are_405_naming_the_documented_ones(client):
    """/dataDebit/propose is not a debit's key: GET and the like there are 405, Allow: POST."""
    spec = await (await client.get("/api/openapi.json")).json()
    assert set(spec["paths"]["/dataDebit/propose"]) == {"post"}
    for method in ("OPTIONS", "GET", "PUT", "PATCH"):
        response = await client.request(method, "/dataDebit/propose")
        assert response.status == 405, method
        assert response.headers["Allow"] == "POST"


async def test_lookups_by_name_are_documented_as_one_object(client, owner_token):
    spec = await (await client.get("/api/openapi.json")).json()
    for path in ("/type/type", "/type/unitofmeasurement", "/property"):
        schema = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        one, many = schema["oneOf"]
        assert many == {"type": "array", "items": one}
    response = await client.get("/type/type", params={"name": "City"}, headers={"X-Auth-Token": owner_token})
    assert response.status == 200 and (await response.json())["name"] == "City"
