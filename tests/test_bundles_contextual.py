"""Contextual bundles and contextual debits over HTTP: entity selectors by id, name and kind;
property selectors by static/dynamic, name, type and unit; only what they select is shared
(seed 002, "Contextual Bundling")."""

from __future__ import annotations

import datetime as dt

from tests.conftest import new_account
from tests.raw_helpers import NEST, T, call, created, new_record, new_table, untimed


async def _world(client, token):
    """Me (weight, dynamic; height, static), a spouse, and a thing; and the property ids."""
    table = await new_table(client, token, {**NEST, "fields": [{"name": "weight"}, {"name": "height"}]})
    weight_field, height_field = (f["id"] for f in table["fields"])
    record = await new_record(client, token, "day1")
    await created(client, token, f"/data/record/{record['id']}/values", [
        {"value": "70", "field": {"id": weight_field}},
        {"value": "180", "field": {"id": height_field}},
    ])  # fmt: skip
    props = {p["name"]: p for p in (await call(client, "GET", "/property", token))[1]}
    me = await created(client, token, "/person", {"name": "Me", "personId": "me.hat"})
    spouse = await created(client, token, "/person", {"name": "Spouse", "personId": "spouse.hat"})
    phone = await created(client, token, "/thing", {"name": "Phone"})
    await created(client, token, f"/person/{me['id']}/property/dynamic/{props['weight (kg)']['id']}",
                  {"relationshipType": "weight", "field": {"id": weight_field}})  # fmt: skip
    await created(client, token, f"/person/{me['id']}/property/static/{props['height (cm)']['id']}",
                  {"relationshipType": "height", "field": {"id": height_field}, "record": {"id": record["id"]}})  # fmt: skip
    await created(client, token, f"/person/{me['id']}/person/{spouse['id']}", {"relationshipType": "spouse"})
    return me, spouse, phone, props


async def test_create_read_and_extend_a_contextual_bundle(client, owner_token):
    me, _, phone, _ = await _world(client, owner_token)
    body = {
        "name": "emptyBundleTest5-1",
        "entities": [
            {
                "entityKind": "person",
                "properties": [{"propertyRelationshipKind": "dynamic", "propertyName": "weight (kg)"}],
            },
            {"entityName": "Phone"},
        ],
    }
    status, bundle = await call(client, "POST", "/bundles/context", owner_token, body)
    assert status == 201
    first = bundle["entities"][0]
    assert untimed(bundle) == {
        "id": bundle["id"],
        "name": "emptyBundleTest5-1",
        "dateCreated": T,
        "lastUpdated": T,
        "entities": [
            {
                "id": first["id"],
                "entityId": None,
                "entityName": None,
                "entityKind": "person",
                "properties": [
                    {
                        "id": first["properties"][0]["id"],
                        "propertyRelationshipKind": "dynamic",
                        "propertyName": "weight (kg)",
                        "propertyType": None,
                        "propertyUnitofmeasurement": None,
                    }
                ],
            },
            {
                "id": bundle["entities"][1]["id"],
                "entityId": None,
                "entityName": "Phone",
                "entityKind": None,
                "properties": [],
            },
        ],
    }
    assert await call(client, "GET", f"/bundle/context/{bundle['id']}", owner_token) == (200, bundle)
    status, values = await call(client, "GET", f"/bundles/context/{bundle['id']}/values", owner_token)
    assert status == 200
    assert [(v["kind"], v[v["kind"]]["name"]) for v in values] == [
        ("person", "Me"),
        ("person", "Spouse"),
        ("thing", "Phone"),
    ]
    mine = values[0]["person"]
    assert mine["personId"] == "me.hat"
    # Only the dynamic weight: the static height is not selected; links to the spouse are not followed.
    assert mine["staticProperties"] == []
    assert [(p["property"]["name"], [v["value"] for v in p["field"]["values"]]) for p in mine["dynamicProperties"]] == [
        ("weight (kg)", ["70"])
    ]
    assert "people" not in mine
    # Add a selector for me by id with every property, then a property selector to it.
    status, added = await call(
        client, "POST", f"/bundles/context/{bundle['id']}/entitySelection", owner_token, {"entityId": me["id"]}
    )
    # The answer is the new selection, with the id the next call needs.
    assert status == 201
    assert added == {"id": added["id"], "entityId": me["id"], "entityName": None, "entityKind": None, "properties": []}
    extended = (await call(client, "GET", f"/bundles/context/{bundle['id']}", owner_token))[1]
    assert len(extended["entities"]) == 3 and extended["entities"][2] == added
    status, values = await call(client, "GET", f"/bundles/context/{bundle['id']}/values", owner_token)
    mine = values[0]["person"]
    assert [p["property"]["name"] for p in mine["staticProperties"]] == ["height (cm)"]
    assert [v["value"] for v in mine["staticProperties"][0]["field"]["values"]] == ["180"]
    path = f"/bundles/context/{bundle['id']}/entitySelection/{added['id']}/propertySelection"
    status, narrowed = await call(client, "POST", path, owner_token, {"propertyType": "QuantitativeValue"})
    assert status == 201
    assert narrowed == {"id": narrowed["id"], "propertyRelationshipKind": None, "propertyName": None,
                        "propertyType": "QuantitativeValue", "propertyUnitofmeasurement": None}  # fmt: skip
    extended = (await call(client, "GET", f"/bundles/context/{bundle['id']}", owner_token))[1]
    assert extended["entities"][2]["properties"] == [narrowed]
    status, values = await call(client, "GET", f"/bundles/context/{bundle['id']}/values", owner_token)
    assert values[0]["person"]["staticProperties"] == []  # height is a Distance, not a QuantitativeValue
    assert phone["id"] == values[2]["thing"]["id"]


async def test_bad_contextual_bundles_are_400_or_404(client, owner_token):
    cases = [
        ({"name": "b", "entities": []}, 400, "entities: Length must be between 1 and 100."),
        ({"name": "b", "entities": [{}]}, 400, "entities.0: give entityId, entityName or entityKind"),
        ({"name": "b", "entities": [{"entityKind": "dog"}]}, 400, "entities.0.entityKind: Must be one of: person, thing, event, location, organisation."),
        ({"name": "b", "entities": [{"entityId": 999999}]}, 400, "entities.0.entityId: there is no entity with id 999999"),
        ({"name": "b", "entities": [{"entityKind": "person", "properties": [{"propertyRelationshipKind": "both"}]}]}, 400,
         "entities.0.properties.0.propertyRelationshipKind: Must be one of: static, dynamic."),
    ]  # fmt: skip
    for body, status, cause in cases:
        answer = await call(client, "POST", "/bundles/context", owner_token, body)
        assert (answer[0], answer[1]["cause"]) == (status, cause)
    assert (await call(client, "GET", "/bundles/context/1", owner_token))[0] == 404
    assert (await call(client, "POST", "/bundles/context/1/entitySelection/1/propertySelection", owner_token, {}))[
        0
    ] == 404


async def test_a_contextual_debit_shares_only_what_its_bundle_selects(client, owner_token):
    me, spouse, _, _ = await _world(client, owner_token)
    _, app_token = await new_account(client, owner_token, role="dataDebit")
    now = dt.datetime.now(dt.UTC)
    proposal = {
        "name": "weights",
        "startDate": (now - dt.timedelta(days=1)).isoformat(),
        "endDate": (now + dt.timedelta(days=1)).isoformat(),
        "rolling": False,
        "sell": False,
        "price": 0,
        "kind": "contextual",
        "bundleContextual": {
            "name": "my weight",
            "entities": [{"entityId": me["id"], "properties": [{"propertyName": "weight (kg)"}]}],
        },
    }
    debit = await created(client, app_token, "/dataDebit/propose", proposal)
    assert debit["bundleContextual"]["name"] == "my weight" and "bundleContextless" not in debit
    assert (await call(client, "GET", f"/dataDebit/{debit['key']}/values", app_token))[0] == 403
    await call(client, "PUT", f"/dataDebit/{debit['key']}/enable", owner_token)
    status, body = await call(client, "GET", f"/dataDebit/{debit['key']}/values", app_token)
    assert status == 200
    assert [(item["kind"], item["person"]["name"]) for item in body["bundleContextual"]] == [("person", "Me")]
    text = str(body)
    # (the height's value is "180"; as a bare substring it could match a timestamp's milliseconds)
    assert "Spouse" not in text and "height" not in text and "'value': '180'" not in text
    assert spouse["id"] != me["id"]
    status, log = await call(client, "GET", f"/dataDebit/{debit['key']}/log", owner_token)
    assert [(e["action"], e["records"]) for e in log] == [("propose", None), ("enable", None), ("values", 1)]
