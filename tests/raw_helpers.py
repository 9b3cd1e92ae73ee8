"""Shared helpers of the test_raw_* modules: example tables, the HAT's time format, and short
ways to call the raw data routes."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import auth

# Every time leaves the HAT as ISO-8601 in UTC with milliseconds: 2015-11-22T21:24:44.000Z.
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
T = "<time>"

KITCHEN: dict[str, Any] = {
    "name": "kitchen",
    "source": "fibaro",
    "fields": [{"name": "tableTestField"}, {"name": "tableTestField2"}],
    "subTables": [
        {
            "name": "kitchenElectricity",
            "source": "fibaro",
            "fields": [{"name": "tableTestField3"}, {"name": "tableTestField4"}],
        }
    ],
}

HOUSE: dict[str, Any] = {
    "name": "house",
    "source": "home",
    "fields": [{"name": "address"}],
    "subTables": [
        {
            "name": "room",
            "source": "home",
            "fields": [{"name": "roomName"}, {"name": "floor"}],
            "subTables": [{"name": "appliance", "source": "home", "fields": [{"name": "watts"}]}],
        },
        {"name": "garden", "source": "home"},
    ],
}


def untimed(data: Any) -> Any:
    """`data` with every dateCreated and lastUpdated checked for the HAT's time format and replaced by T."""
    if isinstance(data, list):
        return [untimed(item) for item in data]
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if key in ("dateCreated", "lastUpdated"):
                assert isinstance(value, str), (key, value)
                assert TIME.fullmatch(value), (key, value)
                out[key] = T
            else:
                out[key] = untimed(value)
        return out
    return data


def field_json(field_id: int, name: str, table_id: int, **extra: Any) -> dict[str, Any]:
    return {"id": field_id, "name": name, "tableId": table_id, "dateCreated": T, "lastUpdated": T, **extra}


def table_json(
    table_id: int, name: str, source: str, fields: list[Any] | None = None, subs: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "id": table_id,
        "name": name,
        "source": source,
        "dateCreated": T,
        "lastUpdated": T,
        "fields": fields or [],
        "subTables": subs or [],
    }


def expected_tree(request: dict[str, Any], created: dict[str, Any]) -> dict[str, Any]:
    """What the HAT should answer for a POST /data/table of `request`, given the ids it chose."""
    fields = [
        field_json(made["id"], asked["name"], created["id"])
        for asked, made in zip(request.get("fields", []), created["fields"], strict=True)
    ]
    subs = [
        expected_tree(asked, made)
        for asked, made in zip(request.get("subTables", []), created["subTables"], strict=True)
    ]
    return table_json(created["id"], request["name"], request["source"], fields, subs)


def all_ids(tree: dict[str, Any]) -> tuple[list[int], list[int]]:
    """(table ids, field ids) anywhere in a tree."""
    tables, fields = [tree["id"]], [f["id"] for f in tree["fields"]]
    for sub in tree["subTables"]:
        more_tables, more_fields = all_ids(sub)
        tables += more_tables
        fields += more_fields
    return tables, fields


def fields_by_name(tree: dict[str, Any]) -> dict[str, int]:
    """Field name -> id, for every field in a tree (the trees here never repeat a field name)."""
    found = {f["name"]: f["id"] for f in tree["fields"]}
    for sub in tree["subTables"]:
        found.update(fields_by_name(sub))
    return found


def tables_by_name(tree: dict[str, Any]) -> dict[str, int]:
    found = {tree["name"]: tree["id"]}
    for sub in tree["subTables"]:
        found.update(tables_by_name(sub))
    return found


async def call(client: TestClient[Any, Any], method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    response = await client.request(method, path, json=body, headers=auth(token))
    return response.status, await response.json()


async def created(client: TestClient[Any, Any], token: str, path: str, body: Any) -> Any:
    status, data = await call(client, "POST", path, token, body)
    assert status == 201, data
    return data


async def new_table(client: TestClient[Any, Any], token: str, body: dict[str, Any] = KITCHEN) -> dict[str, Any]:
    table: dict[str, Any] = await created(client, token, "/data/table", body)
    return table


async def new_record(
    client: TestClient[Any, Any], token: str, name: str = "row", last_updated: Any = None
) -> dict[str, Any]:
    body = {"name": name} if last_updated is None else {"name": name, "lastUpdated": last_updated}
    record: dict[str, Any] = await created(client, token, "/data/record", body)
    return record


async def ok(client: TestClient[Any, Any], token: str, path: str) -> Any:
    status, data = await call(client, "GET", path, token)
    assert status == 200, data
    return data


def not_found(cause: str) -> dict[str, str]:
    return {"message": "Not found", "cause": cause}


NEST: dict[str, Any] = {"name": "thermostat", "source": "nest", "fields": [{"name": "temperature"}]}


async def walk(client: TestClient[Any, Any], token: str, path: str) -> list[Any]:
    """The pages of a values read, following its Link headers: [(body, Link or None), ...]."""
    pages: list[Any] = []
    following: str | None = path
    while following:
        response = await client.get(following, headers=auth(token))
        assert response.status == 200, await response.text()
        link = response.headers.get("Link")
        pages.append((await response.json(), link))
        if link is None:
            break
        match = re.fullmatch(r'<http://hat\.test(/[^>]*)>; rel="next"', link)
        assert match, link
        following = match.group(1)
    return pages
