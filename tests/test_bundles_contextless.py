"""Contextless bundles over HTTP: both shapes, slices evaluated in SQL, structure and values, and
the tables they hold kept from deletion (seed 002, "Contextless Bundling")."""

from __future__ import annotations

from tests.raw_helpers import KITCHEN, T, call, created, new_table, untimed


async def _kitchen_data(client, token):
    kitchen = await new_table(client, token, KITCHEN)
    f = {field["name"]: field["id"] for field in kitchen["fields"]}
    sub = kitchen["subTables"][0]
    f.update({field["name"]: field["id"] for field in sub["fields"]})
    rows = []
    for name, power, sub_value in (("morning", "10", "a"), ("noon", "55", "b"), ("night", "7", "c")):
        rows.append(
            await created(
                client,
                token,
                "/data/record/values",
                {
                    "record": {"name": name},
                    "values": [
                        {"value": power, "field": {"id": f["tableTestField"]}},
                        {"value": sub_value, "field": {"id": f["tableTestField3"]}},
                    ],
                },
            )
        )
    return kitchen, f, rows


async def test_the_references_shape_creates_a_bundle_of_the_whole_table(client, owner_token):
    kitchen, _, _ = await _kitchen_data(client, owner_token)
    body = {
        "name": "emptyBundle",
        "bundleTable": [
            {"name": "Everything kitchen", "table": {"id": kitchen["id"], "name": "kitchen", "source": "fibaro"}}
        ],
    }
    status, bundle = await call(client, "POST", "/bundles/contextless", owner_token, body)
    assert status == 201
    table = {"id": kitchen["id"], "name": "kitchen", "source": "fibaro"}
    item = {"id": bundle["tables"][0]["id"], "name": "Everything kitchen"}
    assert untimed(bundle) == {
        "id": bundle["id"],
        "name": "emptyBundle",
        "dateCreated": T,
        "lastUpdated": T,
        "tables": [{**item, "bundleTable": {**item, "table": table, "slices": []}}],
    }
    assert await call(client, "GET", f"/bundles/contextless/{bundle['id']}", owner_token) == (200, bundle)
    status, values = await call(client, "GET", f"/bundles/contextless/{bundle['id']}/values", owner_token)
    assert status == 200
    [group] = values["dataGroups"]
    data = group["Everything kitchen"]["data"]
    assert [record["name"] for record in data] == ["night", "noon", "morning"]
    expected = await call(client, "GET", f"/data/table/{kitchen['id']}/values", owner_token)
    assert data == expected[1]


async def test_the_originals_shape_with_slices_keeps_only_matching_records(client, owner_token):
    kitchen, f, _ = await _kitchen_data(client, owner_token)
    sub = kitchen["subTables"][0]
    body = {
        "name": "busy kitchen",
        "tables": [
            {
                "name": "busy",
                "bundleTable": {
                    "name": "busy",
                    "table": {"name": "kitchen", "source": "fibaro"},
                    "slices": [
                        # any slice; all its conditions
                        {
                            "table": {"id": kitchen["id"]},
                            "conditions": [
                                {"field": {"id": f["tableTestField"]}, "operator": "greaterThan", "value": "50"}
                            ],
                        },
                        {
                            "table": {"id": sub["id"]},
                            "conditions": [{"field": {"id": f["tableTestField3"]}, "operator": "equal", "value": "c"}],
                        },
                    ],
                },
            }
        ],
    }
    bundle = await created(client, owner_token, "/bundles/contextless", body)
    status, values = await call(client, "GET", f"/bundle/contextless/{bundle['id']}/values", owner_token)
    assert status == 200
    # "55" > "50" as text (noon); "c" (night). Not morning ("10" < "50", "a").
    assert [r["name"] for r in values["dataGroups"][0]["busy"]["data"]] == ["night", "noon"]


async def test_bad_bundles_are_400_and_create_nothing(client, owner_token):
    kitchen, f, _ = await _kitchen_data(client, owner_token)
    other = await new_table(client, owner_token, {"name": "garden", "source": "s", "fields": [{"name": "g"}]})
    cases = [
        (
            {"name": "b"},
            "bundleTable: give the bundle's tables as bundleTable (or tables, or sources with datasets: the original's shapes)",
        ),
        ({"name": "b", "bundleTable": []}, "bundleTable: a bundle needs at least one table"),
        (
            {"name": "b", "bundleTable": [{"name": "t", "table": {"id": 999999}}]},
            "tables.0.table: there is no table with id 999999",
        ),
        (
            {"name": "b", "bundleTable": [{"name": "t", "table": {"name": "nope", "source": "x"}}]},
            "tables.0.table: there is no table named 'nope' with source 'x'",
        ),
        (
            {"name": "b", "bundleTable": [{"name": "t", "table": {"name": "kitchen"}}]},
            "bundleTable.0.table: give the table's id, or its name and source",
        ),
        (
            {
                "name": "b",
                "bundleTable": [
                    {
                        "name": "t",
                        "table": {"id": kitchen["id"]},
                        "slices": [
                            {
                                "table": {"id": other["id"]},
                                "conditions": [
                                    {"field": {"id": other["fields"][0]["id"]}, "operator": "equal", "value": "x"}
                                ],
                            }
                        ],
                    }
                ],
            },
            f"tables.0.slices.0.table: table {other['id']} is not table {kitchen['id']} or one of its subtables",
        ),
        (
            {
                "name": "b",
                "bundleTable": [
                    {
                        "name": "t",
                        "table": {"id": kitchen["id"]},
                        "slices": [
                            {
                                "table": {"id": kitchen["id"]},
                                "conditions": [
                                    {"field": {"id": f["tableTestField3"]}, "operator": "equal", "value": "x"}
                                ],
                            }
                        ],
                    }
                ],
            },
            f"tables.0.slices.0.conditions.0.field: field {f['tableTestField3']} "
            f"is not a field of table {kitchen['id']}",
        ),
        (
            {
                "name": "b",
                "bundleTable": [
                    {
                        "name": "t",
                        "table": {"id": kitchen["id"]},
                        "slices": [
                            {
                                "table": {"id": kitchen["id"]},
                                "conditions": [
                                    {"field": {"id": f["tableTestField"]}, "operator": "between", "value": "x"}
                                ],
                            }
                        ],
                    }
                ],
            },
            "bundleTable.0.slices.0.conditions.0.operator: "
            "Must be one of: equal, notEqual, greaterThan, lessThan, like.",
        ),
    ]
    for body, cause in cases:
        status, answer = await call(client, "POST", "/bundles/contextless", owner_token, body)
        assert status == 400, (body, answer)
        assert answer["cause"] == cause
    assert await call(client, "GET", "/bundles/contextless/1", owner_token) == (
        404,
        {"message": "Not found", "cause": "There is no contextless bundle with id 1"},
    )


async def test_a_bundled_table_or_sliced_field_cannot_be_deleted(client, owner_token):
    kitchen, f, _ = await _kitchen_data(client, owner_token)
    body = {
        "name": "kitchen share",
        "bundleTable": [
            {
                "name": "k",
                "table": {"id": kitchen["id"]},
                "slices": [
                    {
                        "table": {"id": kitchen["id"]},
                        "conditions": [{"field": {"id": f["tableTestField"]}, "operator": "like", "value": "%"}],
                    }
                ],
            }
        ],
    }
    await created(client, owner_token, "/bundles/contextless", body)
    conflict = (409, {"message": "Conflict", "cause": "Bundles still use it: kitchen share; delete those first"})
    assert await call(client, "DELETE", f"/data/table/{kitchen['id']}", owner_token) == conflict
    assert await call(client, "DELETE", f"/data/field/{f['tableTestField']}", owner_token) == conflict
    assert (await call(client, "GET", f"/data/table/{kitchen['id']}", owner_token))[0] == 200


async def test_bundles_are_the_owners(client, platform_token):
    assert (await call(client, "POST", "/bundles/contextless", platform_token, {"name": "b"}))[0] == 403
    assert (await call(client, "GET", "/bundles/contextless/1/values", platform_token))[0] == 403


async def test_the_originals_later_dialect_is_answered_in_that_dialect(client, owner_token):
    # {name, sources: [{source, datasets: [{name, description, fields}]}]}: fields by name, a field
    # with fields of its own naming a subtable; only those fields' values are shared.
    kitchen, _, _ = await _kitchen_data(client, owner_token)
    sources = [{"source": "fibaro", "datasets": [{
        "name": "kitchen", "description": "Kitchen sensors",
        "fields": [{"name": "kitchenElectricity", "description": "power",
                    "fields": [{"name": "tableTestField3", "description": "third"}]}],
    }]}]  # fmt: skip
    status, bundle = await call(
        client, "POST", "/bundles/contextless", owner_token, {"name": "sub only", "sources": sources}
    )
    assert status == 201
    assert untimed(bundle) == {"id": bundle["id"], "name": "sub only", "dateCreated": T, "lastUpdated": T,
                               "sources": sources}  # fmt: skip
    assert (await call(client, "GET", f"/bundles/contextless/{bundle['id']}", owner_token))[1] == bundle

    status, values = await call(client, "GET", f"/bundles/contextless/{bundle['id']}/values", owner_token)
    assert status == 200
    [dataset] = values["dataGroups"]["fibaro"]
    assert dataset["name"] == "kitchen"
    # The structure it shows is only what it names: no unnamed field or subtable, nor one linked in later.
    table = dataset["table"]
    assert (table["id"], table["fields"]) == (kitchen["id"], [])
    assert [(t["name"], [f["name"] for f in t["fields"]], t["subTables"]) for t in table["subTables"]] == [
        ("kitchenElectricity", ["tableTestField3"], [])
    ]
    # Each record holds the one named field (in the subtable); the kitchen's own field is not shared.
    shared = [(r["name"], r["tables"][0]["fields"], [(x["name"], [v["value"] for v in x["values"]])
               for x in r["tables"][0]["subTables"][0]["fields"]]) for r in dataset["data"]]  # fmt: skip
    assert shared == [("night", [], [("tableTestField3", ["c"])]), ("noon", [], [("tableTestField3", ["b"])]),
                      ("morning", [], [("tableTestField3", ["a"])])]  # fmt: skip
    # pretty=true flattens the same records.
    status, pretty = await call(client, "GET", f"/bundles/contextless/{bundle['id']}/values?pretty=true", owner_token)
    assert [r["data"] for r in pretty["dataGroups"]["fibaro"][0]["data"]] == [
        {"kitchen": {"kitchenElectricity": {"tableTestField3": v}}} for v in ("c", "b", "a")
    ]
    # The table it holds stays while it does.
    assert (await call(client, "DELETE", f"/data/table/{kitchen['id']}", owner_token))[0] == 409


async def test_pretty_bundle_values_in_the_references_dialect(client, owner_token):
    kitchen, _, _ = await _kitchen_data(client, owner_token)
    body = {"name": "b", "bundleTable": [{"name": "all", "table": {"id": kitchen["id"]}}]}
    bundle = await created(client, owner_token, "/bundles/contextless", body)
    status, pretty = await call(client, "GET", f"/bundles/contextless/{bundle['id']}/values?pretty=true", owner_token)
    assert status == 200
    [group] = pretty["dataGroups"]
    assert [set(r) for r in group["all"]["data"]] == [{"id", "name", "lastUpdated", "data"}] * 3
    assert group["all"]["data"][0]["data"] == {
        "kitchen": {"tableTestField": "7", "kitchenElectricity": {"tableTestField3": "c"}}
    }


async def test_datasets_refuse_what_would_cost_or_break_and_an_app_learns_no_field_names(client, owner_token):
    from tests.conftest import new_account

    await _kitchen_data(client, owner_token)
    deep = [{"name": "kitchenElectricity", "fields": [{"name": "tableTestField3"}] * 11}] * 100
    for sources, cause in [
        # Field entries over the whole bundle are bounded (each is resolved by the database).
        ([{"source": "fibaro", "datasets": [{"name": "kitchen", "fields": deep}]}],
         "sources: a bundle's datasets name at most 1000 fields in all"),
        # A dataset is a bundle table: its name is at most 200 characters.
        ([{"source": "fibaro", "datasets": [{"name": "k" * 300, "fields": [{"name": "x"}]}]}],
         "sources.0.datasets.0.name: Length must be between 1 and 200."),
    ]:  # fmt: skip
        status, body = await call(
            client, "POST", "/bundles/contextless", owner_token, {"name": "b", "sources": sources}
        )
        assert (status, body["cause"]) == (400, cause)
    # An app naming only fields the owner does not have gets its debit (which shares nothing), the
    # same answer as for fields that exist: no oracle, field by field.
    _, app_token = await new_account(client, owner_token)
    window = {"startDate": "2020-01-01T00:00:00Z", "endDate": "2099-01-01T00:00:00Z"}
    keys = []
    for field in ("no such field", "tableTestField"):
        proposal = {"name": "d", **window, "rolling": False, "sell": False, "price": 0, "kind": "contextless",
                    "bundleContextless": {"name": "b", "sources": [{"source": "fibaro", "datasets": [
                        {"name": "kitchen", "description": "", "fields": [{"name": field, "description": ""}]}]}]}}  # fmt: skip
        status, debit = await call(client, "POST", "/dataDebit/propose", app_token, proposal)
        assert status == 201
        keys.append(debit["key"])
        assert (await call(client, "PUT", f"/dataDebit/{debit['key']}/enable", owner_token))[0] == 200
    nothing = (await call(client, "GET", f"/dataDebit/{keys[0]}/values", app_token))[1]
    assert nothing["bundleContextless"]["dataGroups"]["fibaro"][0]["data"] == []
    something = (await call(client, "GET", f"/dataDebit/{keys[1]}/values", app_token))[1]
    assert len(something["bundleContextless"]["dataGroups"]["fibaro"][0]["data"]) == 3
