"""Raw data rules that cut across routes: who may call what, ids in paths, inputs the database
cannot hold, and links made at the same time."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hatd.raw.views import ROUTES
from tests.conftest import auth, new_account
from tests.raw_helpers import KITCHEN, NEST, call, created, new_record, new_table, not_found, ok

# A body each writing route would accept, so that a missed role check would show as a change.
BODIES: dict[str, Any] = {
    "create_table": {"name": "intruder", "source": "debit"},
    "link_subtable": {},
    "create_field": {"name": "intruder", "tableId": 1},
    "create_record": {"name": "intruder"},
    "add_record_values": [{"value": "intruder", "field": {"id": 1}}],
    "create_records_with_values": {"record": {"name": "intruder"}, "values": [{"value": "x", "field": {"id": 1}}]},
    "create_values": {"value": "intruder", "field": {"id": 1}, "record": {"id": 1}},
}


def concrete(path: str) -> str:
    """A declared path with real ids: table, field, record and value 1, and table 3 (nest) as subId."""
    return path.replace(r"{id:\d+}", "1").replace(r"{subId:\d+}", "3")


def template(path: str) -> str:
    """A declared path as people write it: /data/table/{id} (without the route's regular expression)."""
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)


def every_path() -> list[tuple[Any, str]]:
    return [(route, path) for route in ROUTES for path in (route.path, *route.aliases)]


async def world(client: TestClient[Any, Any], token: str) -> dict[str, Any]:
    """Kitchen (tables 1 and 2, fields 1 to 4), nest (table 3), record 1 with value 1; and how it all reads."""
    kitchen = await new_table(client, token, KITCHEN)
    nest = await new_table(client, token, NEST)
    record = await new_record(client, token)
    await created(client, token, f"/data/record/{record['id']}/values", [{"value": "v", "field": {"id": 1}}])
    assert (kitchen["id"], nest["id"], record["id"]) == (1, 3, 1)
    return await snapshot(client, token)


async def snapshot(client: TestClient[Any, Any], token: str) -> dict[str, Any]:
    return {
        "sources": await ok(client, token, "/data/sources"),
        "kitchen": await ok(client, token, "/data/table/1"),
        "nest": await ok(client, token, "/data/table/3"),
        "field": await ok(client, token, "/data/field/1/values"),
        "record": await ok(client, token, "/data/record/1"),
        "next record": (await call(client, "GET", "/data/record/2", token))[0],
    }


def forbidden(route: Any, role: str) -> dict[str, str]:
    allowed = ", ".join(sorted(route.roles))
    return {
        "message": "Forbidden",
        "cause": f"{route.method} {template(route.path)} is for {allowed}; this is a {role} token",
    }


async def token_for(client: TestClient[Any, Any], owner_token: str, platform_token: str, role: str) -> str:
    if role == "owner":
        return owner_token
    if role == "platform":
        return platform_token
    return (await new_account(client, owner_token, role=role))[1]


# -- who -------------------------------------------------------------------------------------


async def test_a_data_debit_account_is_refused_every_raw_route(client, owner_token):
    before = await world(client, owner_token)
    _, token = await new_account(client, owner_token, role="dataDebit")
    paths = every_path()
    assert len(paths) == len(ROUTES) + 4  # /table, /field, /record .../values and /data/value
    for route, path in paths:
        response = await client.request(route.method, concrete(path), json=BODIES.get(route.name), headers=auth(token))
        assert response.status == 403, (route.method, path)
        assert await response.json() == forbidden(route, "dataDebit"), (route.method, path)
    assert await snapshot(client, owner_token) == before


@pytest.mark.parametrize("role", ["platform", "dataCredit"])
async def test_only_the_owner_reads_values_and_deletes(client, owner_token, platform_token, role):
    before = await world(client, owner_token)
    token = await token_for(client, owner_token, platform_token, role)
    owner_only = [(route, path) for route, path in every_path() if route.roles == {"owner"}]
    assert sorted({route.name for route, _ in owner_only}) == [
        "delete_field",
        "delete_record",
        "delete_table",
        "delete_value",
        "field_values",
        "record_values",
        "table_values",
    ]
    for route, path in owner_only:
        response = await client.request(route.method, concrete(path), headers=auth(token))
        assert response.status == 403, (route.method, path)
        assert await response.json() == forbidden(route, role), (route.method, path)
    assert await snapshot(client, owner_token) == before


@pytest.mark.parametrize("role", ["owner", "platform", "dataCredit"])
async def test_writers_create_structure_write_values_and_read_structure(client, owner_token, platform_token, role):
    token = await token_for(client, owner_token, platform_token, role)
    kitchen = await new_table(client, token)
    nest = await new_table(client, token, NEST)
    assert await ok(client, token, f"/data/table/{kitchen['id']}") == kitchen
    assert await ok(client, token, "/data/table?name=kitchen&source=fibaro") == kitchen
    assert [s["id"] for s in await ok(client, token, "/data/sources")] == [kitchen["id"], nest["id"]]
    tree = await created(client, token, f"/data/table/{kitchen['id']}/table/{nest['id']}", {})
    assert tree["subTables"][1] == nest
    field = await created(client, token, "/data/field", {"name": "power", "tableId": kitchen["id"]})
    assert await ok(client, token, f"/data/field/{field['id']}") == field
    record = await new_record(client, token)
    assert await ok(client, token, f"/data/record/{record['id']}") == record
    one = {"value": "1", "field": {"id": field["id"]}}
    assert len(await created(client, token, f"/data/record/{record['id']}/values", [one])) == 1
    assert (await created(client, token, "/data/record/values", {"record": {"name": "r"}, "values": [one]}))["values"]
    for path in ("/value", "/data/value"):
        assert (await created(client, token, path, {**one, "record": {"id": record["id"]}}))["value"] == "1"
    field_values = await ok(client, owner_token, f"/data/field/{field['id']}/values")
    assert [v["value"] for v in field_values["values"]] == ["1"] * 4


async def test_a_refusal_names_the_path_as_people_write_it(client, owner_token, platform_token):
    assert await call(client, "GET", "/data/table/1/values", platform_token) == (
        403,
        {"message": "Forbidden", "cause": "GET /data/table/{id}/values is for owner; this is a platform token"},
    )


async def test_no_token_is_401(client):
    response = await client.get("/data/sources")
    assert response.status == 401
    assert await response.json() == {
        "message": "The supplied authentication is invalid",
        "cause": "No X-Auth-Token header or query parameter",
    }


# -- ids in paths ----------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["0", str(2**63 - 1), str(2**63), str(2**64), "9" * 40])
async def test_ids_no_row_can_have_are_404(client, owner_token, number):
    before = await world(client, owner_token)
    for method, path, kind in [
        ("GET", "/data/table/{}", "table"),
        ("GET", "/data/field/{}", "field"),
        ("GET", "/data/record/{}", "record"),
        ("GET", "/data/table/{}/values", "table"),
        ("GET", "/field/{}/values", "field"),
        ("POST", "/data/table/{}/table/1", "table"),
        ("POST", "/data/table/1/table/{}", "table"),
        ("POST", "/data/record/{}/values", "record"),
        ("DELETE", "/data/value/{}", "value"),
        ("DELETE", "/data/record/{}", "record"),
        ("DELETE", "/data/field/{}", "field"),
        ("DELETE", "/data/table/{}", "table"),
    ]:
        body = [{"value": "v", "field": {"id": 1}}] if path.endswith("record/{}/values") else None
        assert await call(client, method, path.format(number), owner_token, body) == (
            404,
            not_found(f"There is no {kind} with id {number}"),
        ), (method, path)
    assert await snapshot(client, owner_token) == before


@pytest.mark.parametrize("path", ["/data/table/{}", "/data/record/{}/values"])
async def test_an_id_of_thousands_of_digits_is_404(client, owner_token, path):
    number = "9" * 5000
    status, body = await call(client, "GET", path.format(number), owner_token)
    assert (status, body["message"]) == (404, "Not found")


async def test_a_nul_in_the_query_is_refused(client, owner_token):
    await world(client, owner_token)
    before = await snapshot(client, owner_token)
    for field, query in (("name", "name=kit%00chen&source=fibaro"), ("source", "name=kitchen&source=fib%00aro")):
        assert await call(client, "GET", f"/data/table?{query}", owner_token) == (
            400,
            {"message": "Invalid request", "cause": f"{field}: holds a NUL or a byte that is not UTF-8"},
        )
    assert await snapshot(client, owner_token) == before


# -- links made at the same time -------------------------------------------------------------


async def test_links_made_at_once_never_make_a_cycle(client, owner_token):
    # Before the links were serialised, about one pair in three closed a cycle, and every tree read
    # that reached it failed (stack depth exceeded).
    pairs = [
        (
            (await new_table(client, owner_token, {"name": f"a{i}", "source": "race"}))["id"],
            (await new_table(client, owner_token, {"name": f"b{i}", "source": "race"}))["id"],
        )
        for i in range(16)
    ]
    links = [(x, y) for a, b in pairs for x, y in ((a, b), (b, a))]
    responses = await asyncio.gather(
        *(client.post(f"/data/table/{x}/table/{y}", headers=auth(owner_token)) for x, y in links)
    )
    statuses = [r.status for r in responses]
    # Of each pair of opposite links exactly one is made; the other would close a cycle.
    assert all(sorted(pair) == [201, 400] for pair in zip(statuses[::2], statuses[1::2], strict=True)), statuses
    for a, _ in pairs:
        assert (await call(client, "GET", f"/data/table/{a}", owner_token))[0] == 200
