"""Raw data values in: into a record, with new records, one by one; and deleting values, records,
fields and tables (seed 002, "Filling Data Structures", "Creating a Value within Field and Record")."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import OWNER, auth, login
from tests.raw_helpers import (
    KITCHEN,
    NEST,
    TIME,
    T,
    call,
    created,
    fields_by_name,
    new_record,
    new_table,
    not_found,
    ok,
    untimed,
    walk,
)


async def kitchen_and_record(client: TestClient[Any, Any], token: str) -> tuple[dict[str, Any], dict[str, int], Any]:
    """The spec's kitchen table, its fields by name, and a new record."""
    kitchen = await new_table(client, token)
    return kitchen, fields_by_name(kitchen), await new_record(client, token, "kitchenRow")


def value_json(value_id: int, value: str, field: tuple[int, int, str], record: Any = None) -> dict[str, Any]:
    """A value as the write routes answer with it; `field` is (id, tableId, name)."""
    answer = {
        "id": value_id,
        "value": value,
        "dateCreated": T,
        "lastUpdated": T,
        "field": {"id": field[0], "tableId": field[1], "name": field[2]},
    }
    if record is not None:
        answer["record"] = {"id": record["id"], "name": record["name"]}
    return answer


async def stored(client: TestClient[Any, Any], token: str, field_ids: Iterable[int]) -> list[tuple[int, str]]:
    """(field id, value) for every value at these fields, sorted (read with GET /data/field/{id}/values)."""
    found: list[tuple[int, str]] = []
    for field_id in field_ids:
        found += [
            (field_id, v["value"])
            for v in (await ok(client, token, f"/data/field/{field_id}/values")).get("values", [])
        ]
    return sorted(found)


# -- POST /data/record/{id}/values ---------------------------------------------------------------


async def test_the_spec_list_is_stored_in_the_record(client, owner_token):
    kitchen, f, record = await kitchen_and_record(client, owner_token)
    electricity = kitchen["subTables"][0]["id"]
    body = [
        {"value": "testValue2-1", "field": {"id": f["tableTestField"], "name": "tableTestField"}},
        # The request's name is not the field's: the id decides, and the answer shows the stored name.
        {"value": "testValue2-2", "field": {"id": f["tableTestField3"], "name": "tableTestField-3"}},
    ]
    response = await client.post(f"/data/record/{record['id']}/values", json=body, headers=auth(owner_token))
    assert response.status == 201
    answer = await response.json()
    assert untimed(answer) == [
        value_json(answer[0]["id"], "testValue2-1", (f["tableTestField"], kitchen["id"], "tableTestField"), record),
        value_json(answer[1]["id"], "testValue2-2", (f["tableTestField3"], electricity, "tableTestField3"), record),
    ]
    assert answer[0]["id"] != answer[1]["id"]
    assert await stored(client, owner_token, f.values()) == [
        (f["tableTestField"], "testValue2-1"),
        (f["tableTestField3"], "testValue2-2"),
    ]


async def test_numbers_and_booleans_are_stored_as_their_json_text(client, owner_token):
    _, f, record = await kitchen_and_record(client, owner_token)
    given = [5, 1.5, True, False, -3, 0, 12345678901234567890, 1e100, "text", "", " 7 "]
    body = [{"value": v, "field": {"id": f["tableTestField"]}} for v in given]
    answer = await created(client, owner_token, f"/data/record/{record['id']}/values", body)
    texts = ["5", "1.5", "true", "false", "-3", "0", "12345678901234567890", "1e+100", "text", "", " 7 "]
    assert [v["value"] for v in answer] == texts
    assert await stored(client, owner_token, [f["tableTestField"]]) == sorted((f["tableTestField"], t) for t in texts)


async def test_a_value_may_carry_its_own_time(client, owner_token):
    _, f, record = await kitchen_and_record(client, owner_token)
    body = [
        {"value": "a", "field": {"id": f["tableTestField"]}, "lastUpdated": "2015-11-22T21:24:44Z"},
        {"value": "b", "field": {"id": f["tableTestField"]}, "lastUpdated": 1448227484},
        {"value": "c", "field": {"id": f["tableTestField"]}},
    ]
    answer = await created(client, owner_token, f"/data/record/{record['id']}/values", body)
    assert [v["lastUpdated"] for v in answer[:2]] == ["2015-11-22T21:24:44.000Z"] * 2
    assert TIME.fullmatch(answer[2]["lastUpdated"])
    assert answer[2]["lastUpdated"] != "2015-11-22T21:24:44.000Z"


async def test_an_empty_list_stores_nothing(client, owner_token):
    _, f, record = await kitchen_and_record(client, owner_token)
    assert await call(client, "POST", f"/data/record/{record['id']}/values", owner_token, []) == (201, [])
    assert await stored(client, owner_token, f.values()) == []


@pytest.mark.parametrize(
    ("bad", "cause"),
    [
        ({"value": {"a": 1}}, "values.1.value: Must be a string, number or boolean"),
        ({"value": []}, "values.1.value: Must be a string, number or boolean"),
        ({"value": None}, "values.1.value: Must be a string, number or boolean"),
        ({}, "values.1.value: Missing data for required field."),
        ({"value": "x", "field": None}, "values.1.field: Missing data for required field."),
        ({"value": "x", "field": 3}, "values.1.field: Must be an object with an id."),
        ({"value": "x", "field": {"name": "tableTestField"}}, "values.1.field.id: Missing data for required field."),
        ({"value": "x", "field": {"id": "3"}}, "values.1.field.id: Not a valid id."),
        ({"value": "x", "field": {"id": 2**63}}, "values.1.field.id: Not a valid id."),
        ({"value": "x", "field": {"id": True}}, "values.1.field.id: Not a valid id."),
        (
            {"value": "x", "lastUpdated": "soon"},
            "values.1.lastUpdated: Not a time: give unix seconds or ISO-8601, in the years 2 to 9998.",
        ),
        ("x", "values.1: Must be an object."),
    ],
    ids=[
        "object",
        "array",
        "null",
        "no-value",
        "no-field",
        "field-number",
        "field-no-id",
        "field-id-string",
        "field-id-huge",
        "field-id-bool",
        "bad-time",
        "not-an-object",
    ],
)
async def test_a_bad_item_is_400_naming_its_index_and_nothing_is_stored(client, owner_token, bad, cause):
    _, f, record = await kitchen_and_record(client, owner_token)
    field = {"id": f["tableTestField2"]}
    good = {"value": "fine", "field": field}
    item = {"field": field, **bad} if isinstance(bad, dict) else bad
    status, answer = await call(client, "POST", f"/data/record/{record['id']}/values", owner_token, [good, item, good])
    assert (status, answer["message"]) == (400, "Invalid request")
    assert answer["cause"].startswith(cause), answer
    assert await stored(client, owner_token, f.values()) == []


@pytest.mark.parametrize(("value", "kind"), [({}, "an object"), ([], "an array"), (None, "null")])
async def test_a_value_of_the_wrong_kind_is_named_in_json_terms(client, owner_token, value, kind):
    _, f, record = await kitchen_and_record(client, owner_token)
    body = [{"value": value, "field": {"id": f["tableTestField"]}}]
    assert await call(client, "POST", f"/data/record/{record['id']}/values", owner_token, body) == (
        400,
        {"message": "Invalid request", "cause": f"values.0.value: Must be a string, number or boolean, not {kind}."},
    )


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        ({"value": "x", "field": {"id": 1}}, "values: Must be a list of values."),
        ("x", "values: Must be a list of values."),
    ],
    ids=["object", "string"],
)
async def test_the_body_must_be_a_list(client, owner_token, body, cause):
    _, _, record = await kitchen_and_record(client, owner_token)
    assert await call(client, "POST", f"/data/record/{record['id']}/values", owner_token, body) == (
        400,
        {"message": "Invalid request", "cause": cause},
    )


async def test_unknown_fields_are_400_naming_them_and_nothing_is_stored(client, owner_token):
    _, f, record = await kitchen_and_record(client, owner_token)
    body = [
        {"value": "fine", "field": {"id": f["tableTestField"]}},
        {"value": "lost", "field": {"id": 999}},
        {"value": "fine", "field": {"id": f["tableTestField4"]}},
        {"value": "lost", "field": {"id": 998}},
        {"value": "lost", "field": {"id": 999}},
    ]
    assert await call(client, "POST", f"/data/record/{record['id']}/values", owner_token, body) == (
        400,
        {
            "message": "Unknown reference",
            "cause": "values.3: no field with id 998; values.1, values.4: no field with id 999; nothing was stored",
        },
    )
    assert await stored(client, owner_token, f.values()) == []


async def test_values_into_an_unknown_record_are_404(client, owner_token):
    _, f, _ = await kitchen_and_record(client, owner_token)
    body = [{"value": "x", "field": {"id": f["tableTestField"]}}]
    assert await call(client, "POST", "/data/record/999/values", owner_token, body) == (
        404,
        not_found("There is no record with id 999"),
    )
    # Nothing stored: the field has no values (and so no values key).
    assert await ok(client, owner_token, f"/data/field/{f['tableTestField']}/values") == await ok(
        client, owner_token, f"/data/field/{f['tableTestField']}"
    )


# -- POST /data/record/values ------------------------------------------------------------------


def record_with_values(name: str, fields: list[int], values: list[str], last_updated: Any = None) -> dict[str, Any]:
    record: dict[str, Any] = {"name": name} if last_updated is None else {"name": name, "lastUpdated": last_updated}
    return {
        "record": record,
        "values": [{"field": {"id": f, "name": "ignored"}, "value": v} for f, v in zip(fields, values, strict=True)],
    }


async def test_a_record_with_its_values_as_in_the_spec(client, owner_token):
    kitchen = await new_table(client, owner_token)
    f = fields_by_name(kitchen)
    electricity = kitchen["subTables"][0]["id"]
    body = {
        "record": {"lastUpdated": "2015-11-22T21:24:44Z", "name": "kitchenElectricityRow"},
        "values": [
            {"field": {"id": f["tableTestField2"], "name": "month2014"}, "value": "september2014"},
            {"field": {"id": f["tableTestField4"], "name": "month2015"}, "value": "september2015"},
        ],
    }
    response = await client.post("/data/record/values", json=body, headers=auth(owner_token))
    assert response.status == 201
    answer = await response.json()
    record = answer["record"]
    assert record["lastUpdated"] == "2015-11-22T21:24:44.000Z"
    assert untimed(answer) == {
        "record": {"id": record["id"], "name": "kitchenElectricityRow", "dateCreated": T, "lastUpdated": T},
        "values": [
            value_json(
                answer["values"][0]["id"], "september2014", (f["tableTestField2"], kitchen["id"], "tableTestField2")
            ),
            value_json(
                answer["values"][1]["id"], "september2015", (f["tableTestField4"], electricity, "tableTestField4")
            ),
        ],
    }
    assert await ok(client, owner_token, f"/data/record/{record['id']}") == record
    assert await stored(client, owner_token, f.values()) == [
        (f["tableTestField2"], "september2014"),
        (f["tableTestField4"], "september2015"),
    ]


async def test_a_list_of_records_with_values_answers_a_list_in_the_same_order(client, owner_token):
    kitchen = await new_table(client, owner_token)
    f = fields_by_name(kitchen)
    body = [
        record_with_values("first", [f["tableTestField"], f["tableTestField3"]], ["1a", "1b"], 1448227484),
        record_with_values("second", [], []),
        record_with_values("third", [f["tableTestField4"]] * 3, ["3a", "3b", "3c"], "2010-01-01T00:00:00Z"),
        record_with_values("fourth", [f["tableTestField2"]], ["4a"]),
    ]
    del body[1]["values"]  # values may be left out
    answer = await created(client, owner_token, "/data/record/values", body)
    assert [item["record"]["name"] for item in answer] == ["first", "second", "third", "fourth"]
    assert [[v["value"] for v in item["values"]] for item in answer] == [["1a", "1b"], [], ["3a", "3b", "3c"], ["4a"]]
    assert [[v["field"]["id"] for v in item["values"]] for item in answer] == [
        [f["tableTestField"], f["tableTestField3"]],
        [],
        [f["tableTestField4"]] * 3,
        [f["tableTestField2"]],
    ]
    assert [item["record"]["lastUpdated"] for item in answer[:3:2]] == [
        "2015-11-22T21:24:44.000Z",
        "2010-01-01T00:00:00.000Z",
    ]
    assert len({item["record"]["id"] for item in answer}) == 4
    for item in answer:
        assert await ok(client, owner_token, f"/data/record/{item['record']['id']}") == item["record"]
    assert await stored(client, owner_token, f.values()) == sorted(
        (v["field"]["id"], v["value"]) for item in answer for v in item["values"]
    )


async def test_an_empty_list_of_records_creates_nothing(client, owner_token):
    assert await call(client, "POST", "/data/record/values", owner_token, []) == (201, [])


@pytest.mark.parametrize(
    ("where", "bad", "message", "cause"),
    [
        (0, {"field": {"id": 999}, "value": "x"}, "Unknown reference", "0.values.2: no field with id 999"),
        (2, {"field": {"id": 999}, "value": "x"}, "Unknown reference", "2.values.2: no field with id 999"),
        (1, {"value": "x"}, "Invalid request", "1.values.2.field: Missing data for required field."),
        (2, {"field": {"id": 0}, "value": "x"}, "Invalid request", "2.values.2.field.id: Not a valid id."),
        (1, "no-record", "Invalid request", "1.record: Missing data for required field."),
    ],
    ids=["unknown-field-first", "unknown-field-last", "no-field-middle", "bad-field-id-last", "no-record-middle"],
)
async def test_one_bad_record_anywhere_is_400_and_nothing_is_stored(client, owner_token, where, bad, message, cause):
    kitchen = await new_table(client, owner_token)
    f = fields_by_name(kitchen)
    before = await new_record(client, owner_token, "before")
    body = [record_with_values(f"r{i}", [f["tableTestField"], f["tableTestField3"]], ["a", "b"]) for i in range(3)]
    if bad == "no-record":
        del body[where]["record"]
    else:
        body[where]["values"].append(bad)
    if message == "Unknown reference":
        cause += "; nothing was stored"
    assert await call(client, "POST", "/data/record/values", owner_token, body) == (
        400,
        {"message": message, "cause": cause},
    )
    # No record was made: every id between one made before and one made after is unknown.
    after = await new_record(client, owner_token, "after")
    for record_id in range(before["id"] + 1, after["id"]):
        assert (await call(client, "GET", f"/data/record/{record_id}", owner_token))[0] == 404
    assert await stored(client, owner_token, f.values()) == []


# -- POST /value and /data/value ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/value", "/data/value"])
async def test_one_value_naming_its_field_and_record(client, owner_token, path):
    kitchen, f, record = await kitchen_and_record(client, owner_token)
    body = {
        "value": "testValue",
        "field": {"id": f["tableTestField"], "name": "tableTestField"},
        "record": {"id": record["id"], "name": "another name"},
    }
    response = await client.post(path, json=body, headers=auth(owner_token))
    assert response.status == 201
    answer = await response.json()
    assert untimed(answer) == value_json(
        answer["id"], "testValue", (f["tableTestField"], kitchen["id"], "tableTestField"), record
    )
    assert await stored(client, owner_token, f.values()) == [(f["tableTestField"], "testValue")]


@pytest.mark.parametrize("path", ["/value", "/data/value"])
async def test_a_list_of_values_answers_a_list_in_order(client, owner_token, path):
    kitchen, f, first = await kitchen_and_record(client, owner_token)
    second = await new_record(client, owner_token, "second")
    electricity = kitchen["subTables"][0]["id"]
    body = [
        {"value": "v1", "field": {"id": f["tableTestField3"]}, "record": {"id": second["id"]}},
        {"value": 2, "field": {"id": f["tableTestField"]}, "record": {"id": first["id"]}},
        {"value": "v3", "field": {"id": f["tableTestField"]}, "record": {"id": second["id"]}},
    ]
    answer = await created(client, owner_token, path, body)
    assert untimed(answer) == [
        value_json(answer[0]["id"], "v1", (f["tableTestField3"], electricity, "tableTestField3"), second),
        value_json(answer[1]["id"], "2", (f["tableTestField"], kitchen["id"], "tableTestField"), first),
        value_json(answer[2]["id"], "v3", (f["tableTestField"], kitchen["id"], "tableTestField"), second),
    ]
    assert await stored(client, owner_token, f.values()) == [
        (f["tableTestField"], "2"),
        (f["tableTestField"], "v3"),
        (f["tableTestField3"], "v1"),
    ]


@pytest.mark.parametrize("path", ["/value", "/data/value"])
@pytest.mark.parametrize(
    ("field", "record", "cause"),
    [
        (999, None, "values.1: no field with id 999; nothing was stored"),
        (None, 999, "values.1: no record with id 999; nothing was stored"),
        (999, 998, "values.1: no field with id 999; values.1: no record with id 998; nothing was stored"),
    ],
    ids=["field", "record", "both"],
)
async def test_unknown_fields_or_records_are_400_and_nothing_is_stored(client, owner_token, path, field, record, cause):
    _, f, known = await kitchen_and_record(client, owner_token)
    body = [
        {"value": "fine", "field": {"id": f["tableTestField"]}, "record": {"id": known["id"]}},
        {"value": "lost", "field": {"id": field or f["tableTestField"]}, "record": {"id": record or known["id"]}},
    ]
    assert await call(client, "POST", path, owner_token, body) == (
        400,
        {"message": "Unknown reference", "cause": cause},
    )
    assert await stored(client, owner_token, f.values()) == []


ONE = {"value": "x", "field": {"id": 1}}


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        (ONE, "values.0.record: Missing data for required field."),
        ([{**ONE, "record": {"id": 1}}, {**ONE, "record": {}}], "values.1.record.id: Missing data for required field."),
    ],
    ids=["one", "list"],
)
async def test_a_value_must_name_its_record(client, owner_token, body, cause):
    _, f, _ = await kitchen_and_record(client, owner_token)
    assert await call(client, "POST", "/value", owner_token, body) == (
        400,
        {"message": "Invalid request", "cause": cause},
    )
    assert await stored(client, owner_token, f.values()) == []


# -- deleting ----------------------------------------------------------------------------------


async def store(client: TestClient[Any, Any], token: str, record_id: int, values: dict[int, str]) -> list[int]:
    """Stores {field id: value} in a record; returns the value ids."""
    body = [{"value": v, "field": {"id": f}} for f, v in values.items()]
    return [v["id"] for v in await created(client, token, f"/data/record/{record_id}/values", body)]


async def test_delete_a_value(client, owner_token):
    _, f, record = await kitchen_and_record(client, owner_token)
    kept, gone = await store(
        client, owner_token, record["id"], {f["tableTestField"]: "kept", f["tableTestField3"]: "gone"}
    )
    assert await call(client, "DELETE", f"/data/value/{gone}", owner_token) == (
        200,
        {"message": f"Value {gone} deleted", "valueId": gone},
    )
    assert await stored(client, owner_token, f.values()) == [(f["tableTestField"], "kept")]
    assert await call(client, "DELETE", f"/data/value/{gone}", owner_token) == (
        404,
        not_found(f"There is no value with id {gone}"),
    )
    assert kept != gone


async def test_delete_a_record_with_its_values(client, owner_token):
    kitchen, f, record = await kitchen_and_record(client, owner_token)
    other = await new_record(client, owner_token, "other")
    (gone,) = await store(client, owner_token, record["id"], {f["tableTestField"]: "gone"})
    await store(client, owner_token, other["id"], {f["tableTestField"]: "kept"})
    assert await call(client, "DELETE", f"/data/record/{record['id']}", owner_token) == (
        200,
        {"message": f"Record {record['id']} deleted", "recordId": record["id"]},
    )
    assert await call(client, "GET", f"/data/record/{record['id']}", owner_token) == (
        404,
        not_found(f"There is no record with id {record['id']}"),
    )
    assert (await call(client, "DELETE", f"/data/value/{gone}", owner_token))[0] == 404
    assert await stored(client, owner_token, f.values()) == [(f["tableTestField"], "kept")]
    assert await ok(client, owner_token, f"/data/record/{other['id']}") == other
    assert await ok(client, owner_token, f"/data/table/{kitchen['id']}") == kitchen


async def test_delete_a_field_with_its_values(client, owner_token):
    kitchen, f, record = await kitchen_and_record(client, owner_token)
    (gone, _) = await store(
        client, owner_token, record["id"], {f["tableTestField"]: "gone", f["tableTestField2"]: "kept"}
    )
    assert await call(client, "DELETE", f"/data/field/{f['tableTestField']}", owner_token) == (
        200,
        {"message": f"Field {f['tableTestField']} deleted", "fieldId": f["tableTestField"]},
    )
    assert await call(client, "GET", f"/data/field/{f['tableTestField']}", owner_token) == (
        404,
        not_found(f"There is no field with id {f['tableTestField']}"),
    )
    tree = await ok(client, owner_token, f"/data/table/{kitchen['id']}")
    assert tree == {**kitchen, "fields": kitchen["fields"][1:]}
    assert (await call(client, "DELETE", f"/data/value/{gone}", owner_token))[0] == 404
    assert await stored(client, owner_token, list(f.values())[1:]) == [(f["tableTestField2"], "kept")]
    assert await ok(client, owner_token, f"/data/record/{record['id']}") == record


async def test_delete_a_table_with_everything_below_it(client, owner_token):
    kitchen, f, only_kitchen = await kitchen_and_record(client, owner_token)
    nest = await new_table(client, owner_token, NEST)
    temperature = nest["fields"][0]["id"]
    both = await new_record(client, owner_token, "both")
    empty = await new_record(client, owner_token, "empty")
    gone_values = await store(
        client, owner_token, only_kitchen["id"], {f["tableTestField"]: "a", f["tableTestField4"]: "b"}
    )
    gone_values += await store(client, owner_token, both["id"], {f["tableTestField3"]: "c"})
    await store(client, owner_token, both["id"], {temperature: "21"})

    assert await call(client, "DELETE", f"/data/table/{kitchen['id']}", owner_token) == (
        200,
        {"message": f"Table {kitchen['id']} deleted", "tableId": kitchen["id"]},
    )
    for table in (kitchen, kitchen["subTables"][0]):
        assert await call(client, "GET", f"/data/table/{table['id']}", owner_token) == (
            404,
            not_found(f"There is no table with id {table['id']}"),
        )
    for field_id in f.values():
        assert (await call(client, "GET", f"/data/field/{field_id}", owner_token))[0] == 404
    for value_id in gone_values:
        assert (await call(client, "DELETE", f"/data/value/{value_id}", owner_token))[0] == 404
    for name in ("kitchen", "kitchenElectricity"):
        assert (await call(client, "GET", f"/data/table?name={name}&source=fibaro", owner_token))[0] == 404
    # The record that held values only in the kitchen went with it; the others stay.
    assert (await call(client, "GET", f"/data/record/{only_kitchen['id']}", owner_token))[0] == 404
    assert await ok(client, owner_token, f"/data/record/{both['id']}") == both
    assert await ok(client, owner_token, f"/data/record/{empty['id']}") == empty
    assert await stored(client, owner_token, [temperature]) == [(temperature, "21")]
    assert [s["id"] for s in await ok(client, owner_token, "/data/sources")] == [nest["id"]]
    assert await ok(client, owner_token, f"/data/table/{nest['id']}") == nest
    # The name and source are free again.
    again = await new_table(client, owner_token, KITCHEN)
    assert again["id"] != kitchen["id"]


async def test_delete_a_subtable_leaves_its_parent(client, owner_token):
    kitchen, f, in_parent = await kitchen_and_record(client, owner_token)
    in_sub = await new_record(client, owner_token, "sub")
    electricity = kitchen["subTables"][0]["id"]
    await store(client, owner_token, in_parent["id"], {f["tableTestField"]: "a", f["tableTestField3"]: "b"})
    await store(client, owner_token, in_sub["id"], {f["tableTestField4"]: "c"})
    assert (await call(client, "DELETE", f"/data/table/{electricity}", owner_token))[0] == 200
    assert await ok(client, owner_token, f"/data/table/{kitchen['id']}") == {**kitchen, "subTables": []}
    assert (await call(client, "GET", f"/data/record/{in_sub['id']}", owner_token))[0] == 404
    assert await ok(client, owner_token, f"/data/record/{in_parent['id']}") == in_parent
    assert await stored(client, owner_token, [f["tableTestField"], f["tableTestField2"]]) == [
        (f["tableTestField"], "a")
    ]
    for field_id in (f["tableTestField3"], f["tableTestField4"]):
        assert (await call(client, "GET", f"/data/field/{field_id}", owner_token))[0] == 404


@pytest.mark.parametrize("kind", ["value", "record", "field", "table"])
async def test_deleting_an_unknown_thing_is_404(client, owner_token, kind):
    assert await call(client, "DELETE", f"/data/{kind}/999", owner_token) == (
        404,
        not_found(f"There is no {kind} with id 999"),
    )


# -- many writers at once ----------------------------------------------------------------------


WORKERS, BATCHES, RECORDS = 16, 5, 3


@pytest.mark.parametrize("reader", ["field", "table"])
async def test_concurrent_batches_are_all_stored_and_read_back(make_client, reader):
    client = await make_client(values_limit=7, values_max_limit=50)
    token = await login(client, *OWNER)
    kitchen = await new_table(client, token)
    f = fields_by_name(kitchen)

    async def writer(worker: int) -> int:
        acknowledged = 0
        for batch in range(BATCHES):
            body = [
                record_with_values(
                    f"w{worker}b{batch}r{i}",
                    [f["tableTestField"], f["tableTestField4"]],
                    [f"{worker}.{batch}.{i}", "x"],
                    # Many records share a time, so that pages end between equal times.
                    1448227484 + (worker * BATCHES + batch) % 5,
                )
                for i in range(RECORDS)
            ]
            response = await client.post("/data/record/values", json=body, headers=auth(token))
            if response.status == 201:
                acknowledged += sum(len(item["values"]) for item in await response.json())
        return acknowledged

    # 16 writers at once, each sending its batches one after another.
    acknowledged = sum(await asyncio.gather(*(writer(w) for w in range(WORKERS))))
    assert acknowledged == WORKERS * BATCHES * RECORDS * 2
    if reader == "field":
        values = [
            v
            for field_id in (f["tableTestField"], f["tableTestField4"])
            for page, _ in await walk(client, token, f"/data/field/{field_id}/values")
            for v in page["values"]
        ]
        assert len({v["id"] for v in values}) == len(values) == acknowledged
        assert sorted(v["value"] for v in values if v["value"] != "x") == sorted(
            f"{w}.{b}.{i}" for w in range(WORKERS) for b in range(BATCHES) for i in range(RECORDS)
        )
    else:
        items = [item for page, _ in await walk(client, token, f"/data/table/{kitchen['id']}/values") for item in page]
        assert len({item["id"] for item in items}) == len(items) == WORKERS * BATCHES * RECORDS
        kitchens = [table for item in items for table in item["tables"]]
        fields = [field for table in kitchens for field in [*table["fields"], *table["subTables"][0]["fields"]]]
        assert sum(len(field["values"]) for field in fields) == acknowledged
        times = [item["lastUpdated"] for item in items]
        assert times == sorted(times, reverse=True)
