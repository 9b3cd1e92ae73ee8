"""The context vocabulary over HTTP: data types and their links, units of measurement,
properties, person relationship types (seed 002, "Data Type Annotations" onwards)."""

from __future__ import annotations

import pytest

from tests.conftest import new_account
from tests.raw_helpers import T, call, untimed


async def _type(client, token, name: str, description: str | None = None) -> dict:
    status, body = await call(client, "POST", "/type/type", token, {"name": name, "description": description})
    assert status == 201, body
    return body


async def _unit(client, token, name: str, symbol: str | None = None) -> dict:
    body = {"name": name, "description": f"{name} unit", "symbol": symbol}
    status, answer = await call(client, "POST", "/type/unitofmeasurement", token, body)
    assert status == 201, answer
    return answer


async def test_create_and_find_a_type(client, owner_token):
    created = await _type(client, owner_token, "weight", "weight of a person")
    assert untimed(created) == {
        "id": created["id"],
        "name": "weight",
        "description": "weight of a person",
        "dateCreated": T,
        "lastUpdated": T,
    }
    assert await call(client, "GET", "/type/type?name=weight", owner_token) == (200, created)
    status, listed = await call(client, "GET", "/type/type", owner_token)
    assert status == 200
    assert listed[-1] == created
    assert await call(client, "GET", "/type/type?name=nothing", owner_token) == (
        404,
        {"message": "Not found", "cause": "There is no type named 'nothing'"},
    )


async def test_duplicate_names_are_409(client, owner_token):
    await _type(client, owner_token, "weight")
    assert await call(client, "POST", "/type/type", owner_token, {"name": "weight"}) == (
        409,
        {"message": "Conflict", "cause": "A type named 'weight' already exists"},
    )
    await _unit(client, owner_token, "stones")
    assert (await call(client, "POST", "/type/unitofmeasurement", owner_token, {"name": "stones"}))[0] == 409
    status, _ = await call(client, "POST", "/person/relationshipType", owner_token, {"name": "friend"})
    assert status == 201
    assert await call(client, "POST", "/person/relationshipType", owner_token, {"name": "friend"}) == (
        409,
        {"message": "Conflict", "cause": "A person relationship type named 'friend' already exists"},
    )


async def test_link_types(client, owner_token):
    child, parent = await _type(client, owner_token, "Kitchen"), await _type(client, owner_token, "Room")
    path = f"/type/{child['id']}/type/{parent['id']}"
    status, link = await call(client, "POST", path, owner_token, {"relationshipType": "subtype"})
    assert status == 201
    assert set(link) == {"id"} and isinstance(link["id"], int)
    assert await call(client, "POST", path, owner_token, {"relationshipType": "subtype"}) == (
        409,
        {"message": "Conflict", "cause": f"Type {child['id']} is already linked to type {parent['id']} as 'subtype'"},
    )
    assert (await call(client, "POST", path, owner_token, {"relationshipType": "partOf"}))[0] == 201
    assert await call(
        client, "POST", f"/type/{child['id']}/type/{child['id']}", owner_token, {"relationshipType": "x"}
    ) == (
        400,
        {"message": "Not allowed", "cause": f"Type {child['id']} cannot be linked to itself"},
    )
    assert await call(client, "POST", f"/type/{child['id']}/type/999999", owner_token, {"relationshipType": "x"}) == (
        404,
        {"message": "Not found", "cause": "There is no type with id 999999"},
    )
    assert await call(client, "POST", path, owner_token, {}) == (
        400,
        {"message": "Invalid request", "cause": "relationshipType: Missing data for required field."},
    )


async def test_units_of_measurement(client, owner_token):
    created = await _unit(client, owner_token, "meters", "m")
    assert untimed(created) == {
        "id": created["id"],
        "name": "meters",
        "description": "meters unit",
        "symbol": "m",
        "dateCreated": T,
        "lastUpdated": T,
    }
    assert await call(client, "GET", "/type/unitofmeasurement?name=meters", owner_token) == (200, created)
    status, listed = await call(client, "GET", "/type/unitofmeasurement", owner_token)
    assert status == 200 and listed[-1] == created


async def test_property_with_its_type_and_unit_as_in_the_spec(client, owner_token):
    weight = await _type(client, owner_token, "weight", "weight of a person")
    kilograms = await _unit(client, owner_token, "kilograms", "kg")
    body = {
        "name": "bodyWeight",
        "description": "body weight of a person",
        "propertyType": {"name": "a name that is ignored", "id": weight["id"]},
        "unitOfMeasurement": {"name": "kilograms", "id": kilograms["id"]},
    }
    status, created = await call(client, "POST", "/property", owner_token, body)
    assert status == 201
    assert untimed(created) == {
        "id": created["id"],
        "name": "bodyWeight",
        "description": "body weight of a person",
        "propertyType": untimed(weight),
        "unitOfMeasurement": untimed(kilograms),
        "dateCreated": T,
        "lastUpdated": T,
    }
    assert await call(client, "GET", "/property?name=bodyWeight", owner_token) == (200, created)
    status, listed = await call(client, "GET", "/property", owner_token)
    assert status == 200 and listed[-1] == created


async def test_property_with_unknown_type_or_unit_is_400_and_creates_nothing(client, owner_token):
    body = {"name": "p", "propertyType": {"id": 999998}, "unitOfMeasurement": {"id": 999999}}
    assert await call(client, "POST", "/property", owner_token, body) == (
        400,
        {
            "message": "Unknown reference",
            "cause": "propertyType.id: there is no type with id 999998; "
            "unitOfMeasurement.id: there is no unit of measurement with id 999999",
        },
    )
    assert (await call(client, "GET", "/property?name=p", owner_token))[0] == 404
    assert await call(client, "POST", "/property", owner_token, {"name": "p"}) == (
        400,
        {
            "message": "Invalid request",
            "cause": "propertyType: Missing data for required field.; "
            "unitOfMeasurement: Missing data for required field.",
        },
    )


async def test_person_relationship_types(client, owner_token):
    status, created = await call(client, "POST", "/person/relationshipType", owner_token, {"name": "friend"})
    assert (status, created) == (201, {"id": created["id"], "name": "friend", "description": None})
    status, listed = await call(client, "GET", "/person/relationshipType", owner_token)
    assert status == 200 and listed[-1] == created


@pytest.mark.parametrize("role", ["dataDebit", "dataCredit"])
async def test_who_may_do_what(client, owner_token, platform_token, role):
    _, token = await new_account(client, owner_token, role=role)
    # Reading types, units and properties: any valid token.
    for path in ("/type/type", "/type/unitofmeasurement", "/property"):
        assert (await call(client, "GET", path, token))[0] == 200
    # Creating them: the owner and the platform only.
    for path, body in (("/type/type", {"name": "t"}), ("/type/unitofmeasurement", {"name": "u"})):
        assert (await call(client, "POST", path, token, body))[0] == 403
        assert (await call(client, "POST", path, platform_token, {"name": body["name"] + role}))[0] == 201
    # Relationship types are the owner's.
    assert (await call(client, "GET", "/person/relationshipType", token))[0] == 403
    assert (await call(client, "GET", "/person/relationshipType", platform_token))[0] == 403
    assert (await call(client, "POST", "/person/relationshipType", platform_token, {"name": "x"}))[0] == 403
    assert (await client.get("/type/type")).status == 401


async def test_a_new_hat_has_the_original_default_vocabulary(client, owner_token):
    _, types = await call(client, "GET", "/type/type", owner_token)
    _, units = await call(client, "GET", "/type/unitofmeasurement", owner_token)
    _, properties = await call(client, "GET", "/property", owner_token)
    _, relationships = await call(client, "GET", "/person/relationshipType", owner_token)
    assert (len(types), len(units), len(properties), len(relationships)) == (62, 36, 50, 5)
    names = {t["name"] for t in types}
    assert {"SearchAction", "Airport", "PostalAddress", "QuantitativeValue"} <= names
    assert not {"SearchActon", "Airpot"} & names
    assert all(t["description"] for t in types + units + properties + relationships)
    assert [r["name"] for r in relationships] == ["agent", "children", "coach", "colleague", "spouse"]
    second = next(u for u in units if u["name"] == "second")
    assert second["symbol"] == "s"
    weight = next(p for p in properties if p["name"] == "weight (kg)")
    assert (weight["propertyType"]["name"], weight["unitOfMeasurement"]["name"]) == ("QuantitativeValue", "kilogram")
    # The 19 subtype links of the original: a type linked again as a subtype is a duplicate.
    ids = {t["name"]: t["id"] for t in types}
    for child, parent in (("City", "AdministrativeArea"), ("SearchAction", "Action"), ("Airport", "CivicStructure")):
        status, _ = await call(
            client, "POST", f"/type/{ids[child]}/type/{ids[parent]}", owner_token, {"relationshipType": "subtype"}
        )
        assert status == 409
