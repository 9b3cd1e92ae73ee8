"""GET /api/openapi.json documents every route the app serves, from the route table."""

from __future__ import annotations

import pytest
from aiohttp import web

from hatd.routing import ROUTES_KEY, plain_path
from tests.openapi_check import ResponseMismatch


async def test_every_route_is_documented_with_its_roles(client):
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
    for name, route in client.app[ROUTES_KEY].items():
        if name.endswith(":head"):
            continue
        path = route.path if ":alias" not in name else route.aliases[int(name.rsplit("alias", 1)[1]) - 1]
        operation = spec["paths"][plain_path(path)][route.method.lower()]
        assert operation["x-roles"] == (
            ["owner (browser session)"] if route.session else sorted(route.roles) or ["public"]
        )
        assert operation["summary"]


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
