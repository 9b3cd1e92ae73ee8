"""Raw data structure: tables with fields and subtables, links between tables, fields and records
(seed 002, "Raw Data Input and Output")."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import auth
from tests.raw_helpers import (
    HOUSE,
    KITCHEN,
    TIME,
    T,
    all_ids,
    call,
    expected_tree,
    field_json,
    new_record,
    new_table,
    not_found,
    ok,
    table_json,
    tables_by_name,
    untimed,
)

# -- creating tables ---------------------------------------------------------------------------


async def test_kitchen_example_creates_the_whole_tree(client, owner_token):
    response = await client.post("/data/table", json=KITCHEN, headers=auth(owner_token))
    assert response.status == 201
    body = await response.json()
    kitchen, electricity = body["id"], body["subTables"][0]["id"]
    f = [field["id"] for field in body["fields"] + body["subTables"][0]["fields"]]
    assert untimed(body) == table_json(
        kitchen,
        "kitchen",
        "fibaro",
        [field_json(f[0], "tableTestField", kitchen), field_json(f[1], "tableTestField2", kitchen)],
        [
            table_json(
                electricity,
                "kitchenElectricity",
                "fibaro",
                [field_json(f[2], "tableTestField3", electricity), field_json(f[3], "tableTestField4", electricity)],
            )
        ],
    )
    assert all(isinstance(i, int) for i in [kitchen, electricity, *f])
    assert len({kitchen, electricity}) == 2
    assert len(set(f)) == 4
    assert await ok(client, owner_token, f"/data/table/{kitchen}") == body
    assert await ok(client, owner_token, f"/data/table/{electricity}") == body["subTables"][0]


async def test_a_table_without_fields_or_subtables(client, owner_token):
    body = await new_table(client, owner_token, {"name": "kitchen", "source": "fibaro"})
    assert untimed(body) == table_json(body["id"], "kitchen", "fibaro")
    assert body["dateCreated"] == body["lastUpdated"]
    assert await ok(client, owner_token, f"/data/table/{body['id']}") == body


async def test_a_three_level_tree_round_trips(client, owner_token):
    body = await new_table(client, owner_token, HOUSE)
    assert untimed(body) == expected_tree(HOUSE, body)
    tables, fields = all_ids(body)
    assert len(set(tables)) == 4
    assert len(set(fields)) == 4
    assert await ok(client, owner_token, f"/data/table/{body['id']}") == body
    room = body["subTables"][0]
    assert await ok(client, owner_token, f"/data/table/{room['id']}") == room
    assert await ok(client, owner_token, f"/data/table/{room['subTables'][0]['id']}") == room["subTables"][0]


async def test_get_an_unknown_table_is_404(client, owner_token):
    assert await call(client, "GET", "/data/table/999", owner_token) == (
        404,
        not_found("There is no table with id 999"),
    )


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        ({"source": "s"}, "name: Missing data for required field."),
        ({"name": "", "source": "s"}, "name: Length must be between 1 and 500."),
        ({"name": "n" * 501, "source": "s"}, "name: Length must be between 1 and 500."),
        ({"name": "n"}, "source: Missing data for required field."),
        ({"name": 5, "source": "s"}, "name: Not a valid string."),
        ({"name": "n", "source": "s", "fields": [{}]}, "fields.0.name: Missing data for required field."),
        (
            {"name": "n", "source": "s", "subTables": [{"name": "m", "source": "s"}, {"name": "m"}]},
            "subTables.1.source: Missing data for required field.",
        ),
    ],
    ids=["no-name", "empty-name", "long-name", "no-source", "name-type", "field-name", "sub-source"],
)
async def test_invalid_tables_are_400_naming_the_field(client, owner_token, body, cause):
    assert await call(client, "POST", "/data/table", owner_token, body) == (
        400,
        {"message": "Invalid request", "cause": cause},
    )
    assert await ok(client, owner_token, "/data/sources") == []


@pytest.mark.parametrize(
    "body",
    [
        KITCHEN,
        {"name": "pantry", "source": "fibaro", "subTables": [{"name": "kitchen", "source": "fibaro"}]},
        {"name": "pantry", "source": "fibaro", "subTables": [{"name": "kitchenElectricity", "source": "fibaro"}]},
        {
            "name": "pantry",
            "source": "fibaro",
            "fields": [{"name": "shelf"}],
            "subTables": [
                {"name": "twin", "source": "fibaro", "fields": [{"name": "a"}]},
                {"name": "twin", "source": "fibaro"},
            ],
        },
        {"name": "pantry", "source": "fibaro", "subTables": [{"name": "pantry", "source": "fibaro"}]},
        {
            "name": "pantry",
            "source": "fibaro",
            "subTables": [
                {"name": "shelf", "source": "fibaro", "subTables": [{"name": "jar", "source": "fibaro"}]},
                {"name": "cupboard", "source": "fibaro", "subTables": [{"name": "jar", "source": "fibaro"}]},
            ],
        },
    ],
    ids=["top-level", "as-subtable", "existing-subtable", "twin-subtables", "same-as-parent", "third-level-twins"],
)
async def test_a_duplicate_name_and_source_is_409_and_nothing_of_the_request_exists(client, owner_token, body):
    kitchen = await new_table(client, owner_token)
    sources = await ok(client, owner_token, "/data/sources")
    status, answer = await call(client, "POST", "/data/table", owner_token, body)
    assert status == 409
    assert answer["message"] == "Conflict"
    assert re.fullmatch(r"A table named '[A-Za-z]+' with source 'fibaro' already exists", answer["cause"]), answer
    assert await ok(client, owner_token, "/data/sources") == sources
    for name in ("pantry", "twin", "shelf", "cupboard", "jar"):
        assert await call(client, "GET", f"/data/table?name={name}&source=fibaro", owner_token) == (
            404,
            not_found(f"There is no table named {name!r} with source 'fibaro'"),
        )
    assert await ok(client, owner_token, f"/data/table/{kitchen['id']}") == kitchen


async def test_the_conflict_names_the_duplicate(client, owner_token):
    await new_table(client, owner_token)
    body = {"name": "pantry", "source": "fibaro", "subTables": [{"name": "kitchenElectricity", "source": "fibaro"}]}
    assert await call(client, "POST", "/data/table", owner_token, body) == (
        409,
        {"message": "Conflict", "cause": "A table named 'kitchenElectricity' with source 'fibaro' already exists"},
    )


async def test_same_name_from_another_source_is_another_table(client, owner_token):
    first = await new_table(client, owner_token, {"name": "kitchen", "source": "fibaro"})
    second = await new_table(client, owner_token, {"name": "kitchen", "source": "nest"})
    assert first["id"] != second["id"]
    assert [t["id"] for t in await ok(client, owner_token, "/data/sources")] == [first["id"], second["id"]]


# -- finding tables and listing sources --------------------------------------------------------


async def test_find_a_table_by_name_and_source(client, owner_token):
    kitchen = await new_table(client, owner_token)
    await new_table(client, owner_token, {"name": "kitchen", "source": "nest"})
    assert await ok(client, owner_token, "/data/table?name=kitchen&source=fibaro") == kitchen
    assert await ok(client, owner_token, "/data/table?name=kitchenElectricity&source=fibaro") == kitchen["subTables"][0]


@pytest.mark.parametrize(
    ("query", "cause"),
    [
        ("name=kitchen&source=nest", "There is no table named 'kitchen' with source 'nest'"),
        ("name=Kitchen&source=fibaro", "There is no table named 'Kitchen' with source 'fibaro'"),
        ("name=pantry&source=fibaro", "There is no table named 'pantry' with source 'fibaro'"),
    ],
)
async def test_find_an_unknown_table_is_404(client, owner_token, query, cause):
    await new_table(client, owner_token)
    assert await call(client, "GET", f"/data/table?{query}", owner_token) == (404, not_found(cause))


@pytest.mark.parametrize(
    ("query", "cause"),
    [
        ("source=fibaro", "name: Missing data for required field."),
        ("name=kitchen", "source: Missing data for required field."),
        ("", "name: Missing data for required field.; source: Missing data for required field."),
        ("name=&source=fibaro", "name: Length must be between 1 and 500."),
    ],
    ids=["no-name", "no-source", "neither", "empty-name"],
)
async def test_find_needs_name_and_source(client, owner_token, query, cause):
    await new_table(client, owner_token)
    assert await call(client, "GET", f"/data/table?{query}", owner_token) == (
        400,
        {"message": "Invalid request", "cause": cause},
    )


async def test_sources_are_the_top_level_tables_without_fields_or_subtables(client, owner_token):
    assert await ok(client, owner_token, "/data/sources") == []
    kitchen = await new_table(client, owner_token)
    house = await new_table(client, owner_token, HOUSE)
    sources = await ok(client, owner_token, "/data/sources")
    assert untimed(sources) == [
        {"id": kitchen["id"], "name": "kitchen", "source": "fibaro", "dateCreated": T, "lastUpdated": T},
        {"id": house["id"], "name": "house", "source": "home", "dateCreated": T, "lastUpdated": T},
    ]
    assert [s["lastUpdated"] for s in sources] == [kitchen["lastUpdated"], house["lastUpdated"]]


# -- linking tables --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [None, {}, {"relationshipType": "contains"}, {"relationshipType": "parent_child", "other": 1}],
    ids=["no-body", "empty-object", "relationship", "unknown-key"],
)
async def test_link_an_existing_table_as_a_subtable(client, owner_token, body):
    kitchen = await new_table(client, owner_token)
    oven = await new_table(client, owner_token, {"name": "oven", "source": "fibaro", "fields": [{"name": "temp"}]})
    status, tree = await call(client, "POST", f"/data/table/{kitchen['id']}/table/{oven['id']}", owner_token, body)
    assert status == 201
    expected = {**kitchen, "lastUpdated": tree["lastUpdated"], "subTables": [*kitchen["subTables"], oven]}
    assert tree == expected
    assert TIME.fullmatch(tree["lastUpdated"])
    assert tree["lastUpdated"] >= kitchen["lastUpdated"]
    assert await ok(client, owner_token, f"/data/table/{kitchen['id']}") == tree
    assert [s["id"] for s in await ok(client, owner_token, "/data/sources")] == [kitchen["id"]]
    # A table may sit under several parents (it is still nobody's top-level table).
    house = await new_table(client, owner_token, {"name": "house", "source": "home"})
    status, tree = await call(client, "POST", f"/data/table/{house['id']}/table/{oven['id']}", owner_token)
    assert status == 201
    assert tree["subTables"] == [oven]
    assert [s["id"] for s in await ok(client, owner_token, "/data/sources")] == [kitchen["id"], house["id"]]


async def test_an_empty_relationship_type_is_400(client, owner_token):
    kitchen = await new_table(client, owner_token)
    oven = await new_table(client, owner_token, {"name": "oven", "source": "fibaro"})
    body = {"relationshipType": ""}
    assert await call(client, "POST", f"/data/table/{kitchen['id']}/table/{oven['id']}", owner_token, body) == (
        400,
        {"message": "Invalid request", "cause": "relationshipType: Length must be between 1 and 500."},
    )
    assert await ok(client, owner_token, f"/data/table/{kitchen['id']}") == kitchen


@pytest.mark.parametrize(
    ("parent", "child"),
    [("house", "house"), ("room", "house"), ("appliance", "house"), ("appliance", "room"), ("room", "room")],
    ids=["itself", "under-child", "under-grandchild", "room-under-its-appliance", "subtable-itself"],
)
async def test_a_link_that_makes_a_cycle_is_400(client, owner_token, parent, child):
    house = await new_table(client, owner_token, HOUSE)
    ids = tables_by_name(house)
    path = f"/data/table/{ids[parent]}/table/{ids[child]}"
    assert await call(client, "POST", path, owner_token) == (
        400,
        {
            "message": "Not allowed",
            "cause": f"Table {ids[parent]} is table {ids[child]} or lies below it: the link would make a cycle",
        },
    )
    assert await ok(client, owner_token, f"/data/table/{house['id']}") == house


async def test_linking_twice_is_409(client, owner_token):
    kitchen = await new_table(client, owner_token)
    electricity = kitchen["subTables"][0]["id"]
    assert await call(client, "POST", f"/data/table/{kitchen['id']}/table/{electricity}", owner_token) == (
        409,
        {"message": "Conflict", "cause": f"Table {electricity} is already a subtable of table {kitchen['id']}"},
    )
    oven = await new_table(client, owner_token, {"name": "oven", "source": "fibaro"})
    path = f"/data/table/{kitchen['id']}/table/{oven['id']}"
    assert (await call(client, "POST", path, owner_token, {"relationshipType": "contains"}))[0] == 201
    status, answer = await call(client, "POST", path, owner_token, {"relationshipType": "other"})
    assert (status, answer["message"]) == (409, "Conflict")
    tree = await ok(client, owner_token, f"/data/table/{kitchen['id']}")
    assert [s["id"] for s in tree["subTables"]] == [electricity, oven["id"]]


@pytest.mark.parametrize("unknown", ["parent", "child", "both"])
async def test_linking_unknown_tables_is_404(client, owner_token, unknown):
    kitchen = await new_table(client, owner_token)
    parent = 999 if unknown != "child" else kitchen["id"]
    child = 998 if unknown != "parent" else kitchen["id"]
    assert await call(client, "POST", f"/data/table/{parent}/table/{child}", owner_token) == (
        404,
        not_found(f"There is no table with id {999 if unknown != 'child' else 998}"),
    )
    assert await ok(client, owner_token, f"/data/table/{kitchen['id']}") == kitchen


# -- fields ----------------------------------------------------------------------------------


async def test_add_a_field_to_a_table(client, owner_token):
    kitchen = await new_table(client, owner_token)
    electricity = kitchen["subTables"][0]
    response = await client.post(
        "/data/field", json={"name": "voltage", "tableId": electricity["id"]}, headers=auth(owner_token)
    )
    assert response.status == 201
    field = await response.json()
    assert untimed(field) == field_json(field["id"], "voltage", electricity["id"])
    assert field["id"] not in all_ids(kitchen)[1]
    assert await ok(client, owner_token, f"/data/field/{field['id']}") == field
    tree = await ok(client, owner_token, f"/data/table/{electricity['id']}")
    assert tree["fields"] == [*electricity["fields"], field]


@pytest.mark.parametrize(
    ("body", "status", "answer"),
    [
        ({"name": "voltage", "tableId": 999}, 404, not_found("There is no table with id 999")),
        (
            {"name": "voltage"},
            400,
            {"message": "Invalid request", "cause": "tableId: Missing data for required field."},
        ),
        (
            {"name": "voltage", "tableId": "1"},
            400,
            {"message": "Invalid request", "cause": "tableId: Not a valid integer."},
        ),
        (
            {"name": "voltage", "tableId": 2**63},
            400,
            {
                "message": "Invalid request",
                "cause": "tableId: Must be greater than or equal to 1 and less than or equal to 9223372036854775807.",
            },
        ),
        ({"tableId": 1}, 400, {"message": "Invalid request", "cause": "name: Missing data for required field."}),
    ],
    ids=["unknown-table", "no-table", "string-id", "huge-id", "no-name"],
)
async def test_bad_fields_are_refused(client, owner_token, body, status, answer):
    kitchen = await new_table(client, owner_token)
    assert await call(client, "POST", "/data/field", owner_token, body) == (status, answer)
    assert await ok(client, owner_token, f"/data/table/{kitchen['id']}") == kitchen


async def test_get_an_unknown_field_is_404(client, owner_token):
    assert await call(client, "GET", "/data/field/999", owner_token) == (
        404,
        not_found("There is no field with id 999"),
    )


# -- records ---------------------------------------------------------------------------------


async def test_create_a_record(client, owner_token):
    response = await client.post("/data/record", json={"name": "testNewRecord"}, headers=auth(owner_token))
    assert response.status == 201
    record = await response.json()
    assert untimed(record) == {"id": record["id"], "name": "testNewRecord", "dateCreated": T, "lastUpdated": T}
    assert record["dateCreated"] == record["lastUpdated"]
    assert await ok(client, owner_token, f"/data/record/{record['id']}") == record


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2015-11-22T21:24:44Z", "2015-11-22T21:24:44.000Z"),
        ("2015-11-22T21:24:44.551Z", "2015-11-22T21:24:44.551Z"),
        ("2015-11-22T22:24:44+01:00", "2015-11-22T21:24:44.000Z"),
        ("2015-11-22T21:24:44", "2015-11-22T21:24:44.000Z"),
        (1448227484, "2015-11-22T21:24:44.000Z"),
        (1448227484.5, "2015-11-22T21:24:44.500Z"),
        ("1448227484", "2015-11-22T21:24:44.000Z"),
    ],
    ids=["iso-z", "iso-millis", "iso-offset", "iso-naive", "unix", "unix-fraction", "unix-string"],
)
async def test_a_record_keeps_the_sources_time(client, owner_token, given, stored):
    record = await new_record(client, owner_token, "kitchenElectricityRow", given)
    assert untimed(record) == {"id": record["id"], "name": "kitchenElectricityRow", "dateCreated": T, "lastUpdated": T}
    assert record["lastUpdated"] == stored
    assert await ok(client, owner_token, f"/data/record/{record['id']}") == record


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        ({}, "name: Missing data for required field."),
        (
            {"name": "r", "lastUpdated": "yesterday"},
            "lastUpdated: Not a time: give unix seconds or ISO-8601, in the years 2 to 9998.",
        ),
        (
            {"name": "r", "lastUpdated": True},
            "lastUpdated: Not a time: give unix seconds or ISO-8601, in the years 2 to 9998.",
        ),
        (
            {"name": "r", "lastUpdated": 1e20},
            "lastUpdated: Not a time: give unix seconds or ISO-8601, in the years 2 to 9998.",
        ),
        ({"name": "r" * 501}, "name: Longer than maximum length 500."),
    ],
    ids=["no-name", "bad-time", "bool-time", "huge-time", "long-name"],
)
async def test_bad_records_are_400(client, owner_token, body, cause):
    assert await call(client, "POST", "/data/record", owner_token, body) == (
        400,
        {"message": "Invalid request", "cause": cause},
    )


async def test_get_an_unknown_record_is_404(client, owner_token):
    assert await call(client, "GET", "/data/record/999", owner_token) == (
        404,
        not_found("There is no record with id 999"),
    )


def nested(depth: int) -> dict[str, Any]:
    """A chain of `depth` tables, each the only subtable of the one above."""
    table: dict[str, Any] = {"name": f"level{depth}", "source": "deep"}
    for level in range(depth - 1, 0, -1):
        table = {"name": f"level{level}", "source": "deep", "subTables": [table]}
    return table


async def test_trees_nest_up_to_32_deep(client, owner_token):
    body = await new_table(client, owner_token, nested(32))
    assert untimed(body) == expected_tree(nested(32), body)
    assert await ok(client, owner_token, f"/data/table/{body['id']}") == body
    assert await call(client, "POST", "/data/table", owner_token, {**nested(33), "source": "deeper"}) == (
        400,
        {"message": "Invalid request", "cause": "subTables: subTables may nest at most 32 deep"},
    )
