"""GET /api/openapi.json documents every route the app serves, from the route table."""

from __future__ import annotations

from hatd.routing import ROUTES_KEY, plain_path


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
