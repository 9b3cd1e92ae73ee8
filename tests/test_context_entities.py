"""Entities over HTTP: people, things, events, locations and organisations; their links to each
other, their types, and their static and dynamic properties over raw data; the full /values read;
who may call them (seed 002, "Contextualisation" to "Data Type Annotations")."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import new_account
from tests.raw_helpers import KITCHEN, T, call, created, fields_by_name, new_record, new_table, ok, untimed

Client = TestClient[Any, Any]

KINDS = ("person", "thing", "event", "location", "organisation")
GROUP = {
    "person": "people",
    "thing": "things",
    "event": "events",
    "location": "locations",
    "organisation": "organisations",
}
# The spec's table "Entity Can be linked to Entities", written out again rather than imported.
MAY_LINK_TO = {
    "person": ("person", "location", "organisation"),
    "thing": ("thing", "person"),
    "event": ("event", "location", "organisation", "person", "thing"),
    "location": ("location", "thing"),
    "organisation": ("organisation", "location"),
}
ALLOWED = [(kind, linked) for kind in KINDS for linked in MAY_LINK_TO[kind]]
REFUSED = [(kind, linked) for kind in KINDS for linked in KINDS if linked not in MAY_LINK_TO[kind]]
DEFAULT_RELATIONSHIPS = ["agent", "children", "coach", "colleague", "spouse"]
MISSING = 999999


def _error(message: str, cause: str) -> dict[str, str]:
    return {"message": message, "cause": cause}


def _not_found(cause: str) -> dict[str, str]:
    return _error("Not found", cause)


def _invalid(cause: str) -> dict[str, str]:
    return _error("Invalid request", cause)


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


async def _entity(client: Client, token: str, kind: str, name: str | None = None) -> dict[str, Any]:
    """Creates an entity (a person gets a personId); returns the 201 answer."""
    body: dict[str, Any] = {"name": name or kind}
    if kind == "person":
        body["personId"] = f"{body['name']}.hat.org"
    entity: dict[str, Any] = await created(client, token, f"/{kind}", body)
    return entity


async def _link(client: Client, token: str, a: tuple[str, dict], b: tuple[str, dict], relationship: Any) -> int:
    path = f"/{a[0]}/{a[1]['id']}/{b[0]}/{b[1]['id']}"
    status, body = await call(client, "POST", path, token, {"relationshipType": relationship})
    assert status == 201, body
    assert set(body) == {"id"} and isinstance(body["id"], int)
    link_id: int = body["id"]
    return link_id


async def _relationship_ids(client: Client, token: str) -> dict[str, int]:
    return {r["name"]: r["id"] for r in await ok(client, token, "/person/relationshipType")}


async def _property(client: Client, token: str, name: str) -> dict[str, Any]:
    """A new property of a new type and unit, both named after it."""
    kind = await created(client, token, "/type/type", {"name": f"{name}Type", "description": f"{name} type"})
    unit = await created(client, token, "/type/unitofmeasurement", {"name": f"{name}Unit", "symbol": "u"})
    body = {"name": name, "propertyType": {"id": kind["id"]}, "unitOfMeasurement": {"id": unit["id"]}}
    prop: dict[str, Any] = await created(client, token, "/property", body)
    return prop


# -- creating, listing and finding --------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_create_find_and_list_each_kind(client, owner_token, kind):
    body: dict[str, Any] = {"name": "birthdayParty", "personId": "demo.hat.org"}
    if kind != "person":
        # Only a person carries a personId; another kind refuses one.
        article = "an" if kind[0] in "aeiou" else "a"
        assert await call(client, "POST", f"/{kind}", owner_token, body) == (
            400,
            _invalid(f"personId: only a person has one, not {article} {kind}"),
        )
        body = {"name": "birthdayParty"}
    status, entity = await call(client, "POST", f"/{kind}", owner_token, body)
    assert status == 201
    expected = {"id": entity["id"], "name": "birthdayParty"}
    if kind == "person":
        expected["personId"] = "demo.hat.org"
    assert entity == expected
    assert await call(client, "GET", f"/{kind}/{entity['id']}", owner_token) == (200, expected)
    assert await call(client, "GET", f"/{kind}", owner_token) == (200, [expected])
    # With nothing linked, /values is the entity alone, in a one-item list.
    assert await call(client, "GET", f"/{kind}/{entity['id']}/values", owner_token) == (200, [expected])
    for path in (f"/{kind}/{MISSING}", f"/{kind}/{MISSING}/values", f"/{kind}/{2**63}"):
        number = path.split("/")[2]
        assert await call(client, "GET", path, owner_token) == (404, _not_found(f"There is no {kind} with id {number}"))


async def test_a_person_needs_a_person_id(client, owner_token):
    assert await call(client, "POST", "/person", owner_token, {"name": "Me"}) == (
        400,
        _invalid("personId: Missing data for required field."),
    )
    assert await call(client, "POST", "/person", owner_token, {"name": "Me", "personId": ""}) == (
        400,
        _invalid("personId: Length must be between 1 and 200."),
    )
    assert await call(client, "GET", "/person", owner_token) == (200, [])


@pytest.mark.parametrize("kind", KINDS)
async def test_names_are_1_to_100_characters(client, owner_token, kind):
    extra = {"personId": "me.hat.org"} if kind == "person" else {}
    for name in ("", "n" * 101):
        assert await call(client, "POST", f"/{kind}", owner_token, {"name": name, **extra}) == (
            400,
            _invalid("name: Length must be between 1 and 100."),
        )
    assert await call(client, "POST", f"/{kind}", owner_token, extra) == (
        400,
        _invalid("name: Missing data for required field."),
    )
    assert await call(client, "GET", f"/{kind}", owner_token) == (200, [])
    status, longest = await call(client, "POST", f"/{kind}", owner_token, {"name": "n" * 100, **extra})
    assert (status, longest["name"]) == (201, "n" * 100)


async def test_lists_hold_one_kind_and_the_kinds_share_one_id_sequence(client, owner_token):
    made: list[tuple[str, dict]] = []
    for round_ in (1, 2):
        for kind in KINDS:
            made.append((kind, await _entity(client, owner_token, kind, f"{kind}{round_}")))
    ids = [entity["id"] for _, entity in made]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for kind in KINDS:
        assert await call(client, "GET", f"/{kind}", owner_token) == (200, [e for k, e in made if k == kind])
    # An id names one entity of one kind: under any other kind it is unknown.
    for kind, entity in made[:5]:
        for other in KINDS:
            path = f"/{other}/{entity['id']}"
            if other == kind:
                assert await call(client, "GET", path, owner_token) == (200, entity)
            else:
                cause = f"There is no {other} with id {entity['id']}"
                assert await call(client, "GET", path, owner_token) == (404, _not_found(cause))
                assert await call(client, "GET", path + "/values", owner_token) == (404, _not_found(cause))


# -- links between entities ---------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "linked_kind"), ALLOWED, ids=[f"{a}-{b}" for a, b in ALLOWED])
async def test_every_allowed_pair_links(client, owner_token, kind, linked_kind):
    assert len(ALLOWED) == 14  # 3 + 2 + 5 + 2 + 2 in the spec's table
    a = await _entity(client, owner_token, kind, "first")
    b = await _entity(client, owner_token, linked_kind, "second")
    relationship = "spouse" if kind == linked_kind == "person" else "relatedTo"
    link_id = await _link(client, owner_token, (kind, a), (linked_kind, b), relationship)
    group = [{"id": link_id, "relationshipType": relationship, linked_kind: b}]
    assert await call(client, "GET", f"/{kind}/{a['id']}/values", owner_token) == (
        200,
        [{**a, GROUP[linked_kind]: group}],
    )
    # A link goes one way: the linked entity's values do not show it.
    assert await call(client, "GET", f"/{linked_kind}/{b['id']}/values", owner_token) == (200, [b])
    path = f"/{kind}/{a['id']}/{linked_kind}/{b['id']}"
    assert await call(client, "POST", path, owner_token, {"relationshipType": relationship}) == (
        409,
        _error(
            "Conflict",
            f"{kind.capitalize()} {a['id']} is already linked to {linked_kind} {b['id']} as {relationship!r}",
        ),
    )


@pytest.mark.parametrize(
    ("kind", "linked_kind"),
    REFUSED,
    ids=[f"{a}-{b}" for a, b in REFUSED],
)
async def test_refused_pairs_are_400_and_store_nothing(client, owner_token, kind, linked_kind):
    a = await _entity(client, owner_token, kind, "first")
    b = await _entity(client, owner_token, linked_kind, "second")
    allowed = ", ".join(MAY_LINK_TO[kind])
    expected = _error("Not allowed", f"{_a(kind).capitalize()} may link to: {allowed}; not to {_a(linked_kind)}")
    path = f"/{kind}/{a['id']}/{linked_kind}/{b['id']}"
    assert await call(client, "POST", path, owner_token, {"relationshipType": "relatedTo"}) == (400, expected)
    assert await call(client, "GET", f"/{kind}/{a['id']}/values", owner_token) == (200, [a])


async def test_the_spec_wording_of_a_refusal(client, owner_token):
    thing, event = await _entity(client, owner_token, "thing"), await _entity(client, owner_token, "event")
    assert await call(
        client, "POST", f"/thing/{thing['id']}/event/{event['id']}", owner_token, {"relationshipType": "x"}
    ) == (400, {"message": "Not allowed", "cause": "A thing may link to: thing, person; not to an event"})


async def test_links_to_unknown_entities_are_404(client, owner_token):
    thing, person = await _entity(client, owner_token, "thing"), await _entity(client, owner_token, "person")
    body = {"relationshipType": "owns"}
    cases = [
        (f"/thing/{thing['id']}/person/{MISSING}", f"There is no person with id {MISSING}"),
        (f"/thing/{MISSING}/person/{person['id']}", f"There is no thing with id {MISSING}"),
        # An existing entity of another kind is unknown under this one.
        (f"/thing/{thing['id']}/person/{thing['id']}", f"There is no person with id {thing['id']}"),
        (f"/thing/{person['id']}/thing/{thing['id']}", f"There is no thing with id {person['id']}"),
    ]
    for path, cause in cases:
        assert await call(client, "POST", path, owner_token, body) == (404, _not_found(cause))
    assert await call(client, "GET", f"/thing/{thing['id']}/values", owner_token) == (200, [thing])


async def test_person_to_person_names_a_person_relationship_type(client, owner_token):
    kinds = await _relationship_ids(client, owner_token)
    assert list(kinds) == DEFAULT_RELATIONSHIPS
    me = await _entity(client, owner_token, "person", "Me")
    others = [await _entity(client, owner_token, "person", name) for name in ("Spouse", "Coach", "Colleague", "Agent")]
    spouse, coach, colleague, agent = others
    # By {"id", "name"} as the spec has it; by id alone; by its name.
    given = [
        (spouse, {"id": kinds["spouse"], "name": "spouse"}, "spouse"),
        (coach, {"id": kinds["coach"]}, "coach"),
        (colleague, "colleague", "colleague"),
        (agent, {"name": "agent"}, "agent"),
    ]
    links = [await _link(client, owner_token, ("person", me), ("person", other), rel) for other, rel, _ in given]
    people = [
        {"id": link_id, "relationshipType": name, "person": other}
        for link_id, (other, _, name) in zip(links, given, strict=True)
    ]
    assert await call(client, "GET", f"/person/{me['id']}/values", owner_token) == (200, [{**me, "people": people}])
    # The same relationship again, by name this time, is the same link.
    assert await call(
        client, "POST", f"/person/{me['id']}/person/{spouse['id']}", owner_token, {"relationshipType": "spouse"}
    ) == (
        409,
        _error("Conflict", f"Person {me['id']} is already linked to person {spouse['id']} as 'spouse'"),
    )
    # A relationship type the owner creates can be used at once.
    friend = await created(client, owner_token, "/person/relationshipType", {"name": "friend"})
    await _link(client, owner_token, ("person", me), ("person", spouse), {"id": friend["id"], "name": "friend"})


@pytest.mark.parametrize(
    ("relationship", "expected"),
    [
        (
            {"id": MISSING, "name": "spouse"},
            _error(
                "Unknown reference",
                f"relationshipType: there is no person relationship type id {MISSING} and 'spouse' "
                "(POST /person/relationshipType)",
            ),
        ),
        (
            {"id": MISSING},
            _error(
                "Unknown reference",
                f"relationshipType: there is no person relationship type id {MISSING} (POST /person/relationshipType)",
            ),
        ),
        (
            {"id": 0},
            _invalid(f"relationshipType.id: Must be greater than or equal to 1 and less than or equal to {2**63 - 1}."),
        ),
        (
            "enemy",
            _error(
                "Unknown reference",
                "relationshipType: there is no person relationship type 'enemy' (POST /person/relationshipType)",
            ),
        ),
        (
            {"name": "enemy"},
            _error(
                "Unknown reference",
                "relationshipType: there is no person relationship type 'enemy' (POST /person/relationshipType)",
            ),
        ),
        (5, _invalid('relationshipType: a person relationship type, as {"id": ..., "name": ...} or its name')),
        ({}, _invalid('relationshipType: a person relationship type, as {"id": ..., "name": ...} or its name')),
    ],
)
async def test_person_to_person_with_an_unknown_relationship_type_is_400(client, owner_token, relationship, expected):
    me, you = await _entity(client, owner_token, "person", "Me"), await _entity(client, owner_token, "person", "You")
    path = f"/person/{me['id']}/person/{you['id']}"
    assert await call(client, "POST", path, owner_token, {"relationshipType": relationship}) == (400, expected)
    assert await call(client, "GET", f"/person/{me['id']}/values", owner_token) == (200, [me])


async def test_person_to_person_with_a_relationship_type_id_beyond_bigint_is_400(client, owner_token):
    me, you = await _entity(client, owner_token, "person", "Me"), await _entity(client, owner_token, "person", "You")
    path = f"/person/{me['id']}/person/{you['id']}"
    # Like ids 0 and -1: an id no row can have is refused by the schema.
    assert await call(client, "POST", path, owner_token, {"relationshipType": {"id": 2**63, "name": "spouse"}}) == (
        400,
        _invalid(f"relationshipType.id: Must be greater than or equal to 1 and less than or equal to {2**63 - 1}."),
    )


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        ({"relationshipType": {"id": 5, "name": "spouse"}}, "relationshipType: a name of 1 to 200 characters"),
        ({"relationshipType": 5}, "relationshipType: a name of 1 to 200 characters"),
        ({"relationshipType": ""}, "relationshipType: a name of 1 to 200 characters"),
        ({"relationshipType": "r" * 201}, "relationshipType: a name of 1 to 200 characters"),
        ({}, "relationshipType: Missing data for required field."),
    ],
)
async def test_other_pairs_need_a_relationship_name(client, owner_token, body, cause):
    event, person = await _entity(client, owner_token, "event"), await _entity(client, owner_token, "person")
    path = f"/event/{event['id']}/person/{person['id']}"
    assert await call(client, "POST", path, owner_token, body) == (400, _invalid(cause))
    assert await call(client, "GET", f"/event/{event['id']}/values", owner_token) == (200, [event])


# -- types --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_give_an_entity_a_type(client, owner_token, kind):
    entity = await _entity(client, owner_token, kind)
    date = await ok(client, owner_token, "/type/type?name=Date")  # one of the default types, as in the spec
    path = f"/{kind}/{entity['id']}/type/{date['id']}"
    status, link = await call(client, "POST", path, owner_token, {"relationshipType": "date"})
    assert status == 201 and set(link) == {"id"} and isinstance(link["id"], int)
    assert await call(client, "POST", path, owner_token, {"relationshipType": "date"}) == (
        409,
        _error("Conflict", f"{kind.capitalize()} {entity['id']} already has type {date['id']} as 'date'"),
    )
    assert await call(client, "POST", path, owner_token, {}) == (
        400,
        _invalid("relationshipType: Missing data for required field."),
    )
    assert await call(client, "POST", path, owner_token, {"relationshipType": 3}) == (
        400,
        _invalid("relationshipType: a name of 1 to 200 characters"),
    )
    assert await call(
        client, "POST", f"/{kind}/{entity['id']}/type/{MISSING}", owner_token, {"relationshipType": "x"}
    ) == (
        404,
        _not_found(f"There is no type with id {MISSING}"),
    )
    assert await call(
        client, "POST", f"/{kind}/{MISSING}/type/{date['id']}", owner_token, {"relationshipType": "x"}
    ) == (
        404,
        _not_found(f"There is no {kind} with id {MISSING}"),
    )
    types = [{"id": link["id"], "relationshipType": "date", "type": date}]
    assert await call(client, "GET", f"/{kind}/{entity['id']}/values", owner_token) == (
        200,
        [{**entity, "types": types}],
    )


# -- properties ---------------------------------------------------------------------------------


async def _weights(client: Client, token: str) -> dict[str, Any]:
    """The kitchen table with values of tableTestField in three records (times out of id order),
    and one of tableTestField2; a person; two properties."""
    kitchen = await new_table(client, token, KITCHEN)
    fields = fields_by_name(kitchen)
    day1, day2, day3 = [await new_record(client, token, name) for name in ("Day 1", "Day 2", "Day 3")]
    weight, other = fields["tableTestField"], fields["tableTestField2"]
    values: dict[str, dict[str, Any]] = {}
    for record, items in (
        (day2, [("61.3", "2016-06-01T00:00:00Z", weight), ("61.2", "2016-01-01T00:00:00Z", weight)]),
        (day2, [("not a weight", "2018-01-01T00:00:00Z", other)]),
        (day3, [("62.0", "2017-01-01T00:00:00Z", weight)]),
        (day1, [("60.1", "2015-01-01T00:00:00Z", weight)]),
    ):
        body = [{"value": v, "lastUpdated": when, "field": {"id": f}} for v, when, f in items]
        for answer in await created(client, token, f"/data/record/{record['id']}/values", body):
            values[answer["value"]] = answer
    return {
        "kitchen": kitchen,
        "weight": weight,
        "other": other,
        "days": (day1, day2, day3),
        "values": values,
        "me": await _entity(client, token, "person", "Me"),
        "bodyWeight": await _property(client, token, "bodyWeight"),
        "weightHistory": await _property(client, token, "weightHistory"),
    }


def _value(value: dict[str, Any]) -> dict[str, Any]:
    """A value as /values shows it inside a field."""
    return {"id": value["id"], "value": value["value"], "dateCreated": T, "lastUpdated": T}


async def test_static_and_dynamic_property_links(client, owner_token):
    w = await _weights(client, owner_token)
    me, prop, day2 = w["me"], w["bodyWeight"], w["days"][1]
    base = f"/person/{me['id']}/property"
    # The spec's example body, with its `property` object and names beside the ids.
    spec_body = {
        "property": {
            "id": prop["id"],
            "name": "bodyWeight",
            "propertyType": {"name": "weight", "id": 19},
            "unitOfMeasurement": {"name": "kilograms", "id": 1},
        },
        "relationshipType": "weight",
        "field": {"id": w["weight"], "name": "Weight"},
        "record": {"id": day2["id"], "name": "Day 1"},
    }
    status, static = await call(client, "POST", f"{base}/static/{prop['id']}", owner_token, spec_body)
    assert status == 201 and set(static) == {"id"} and isinstance(static["id"], int)
    dynamic_body = {key: spec_body[key] for key in ("property", "relationshipType", "field")}
    status, dynamic = await call(client, "POST", f"{base}/dynamic/{prop['id']}", owner_token, dynamic_body)
    assert status == 201 and set(dynamic) == {"id"} and isinstance(dynamic["id"], int)

    field = {"id": w["weight"], "name": "tableTestField", "tableId": w["kitchen"]["id"]}
    assert await call(client, "GET", f"{base}/static", owner_token) == (
        200,
        [
            {
                "id": static["id"],
                "relationshipType": "weight",
                "property": prop,
                "field": field,
                "record": {"id": day2["id"], "name": "Day 2"},
            }
        ],
    )
    assert await call(client, "GET", f"{base}/dynamic", owner_token) == (
        200,
        [{"id": dynamic["id"], "relationshipType": "weight", "property": prop, "field": field}],
    )
    assert await call(client, "GET", f"/thing/{me['id']}/property/static", owner_token) == (
        404,
        _not_found(f"There is no thing with id {me['id']}"),
    )


async def test_property_link_errors(client, owner_token):
    w = await _weights(client, owner_token)
    me, prop, day2 = w["me"], w["bodyWeight"], w["days"][1]
    base = f"/person/{me['id']}/property"
    good = {"relationshipType": "weight", "field": {"id": w["weight"]}, "record": {"id": day2["id"]}}
    dynamic = {"relationshipType": "weight", "field": {"id": w["weight"]}}
    unknown_field = f"field.id: there is no field with id {MISSING}"
    unknown_record = f"record.id: there is no record with id {MISSING}"
    cases = [
        (
            "static",
            prop["id"],
            {k: good[k] for k in ("relationshipType", "field")},
            400,
            _invalid("record: Missing data for required field."),
        ),
        ("static", prop["id"], {**good, "field": {"id": MISSING}}, 400, _error("Unknown reference", unknown_field)),
        ("static", prop["id"], {**good, "record": {"id": MISSING}}, 400, _error("Unknown reference", unknown_record)),
        (
            "static",
            prop["id"],
            {**good, "field": {"id": MISSING}, "record": {"id": MISSING}},
            400,
            _error("Unknown reference", f"{unknown_field}; {unknown_record}"),
        ),
        ("static", MISSING, good, 404, _not_found(f"There is no property with id {MISSING}")),
        ("dynamic", MISSING, dynamic, 404, _not_found(f"There is no property with id {MISSING}")),
        ("dynamic", prop["id"], {**dynamic, "field": {"id": MISSING}}, 400, _error("Unknown reference", unknown_field)),
        (
            "dynamic",
            prop["id"],
            good,
            400,
            _invalid("record: a dynamic link is to a whole field; only a static link names a record"),
        ),
        (
            "static",
            prop["id"],
            {**good, "property": {"id": prop["id"] + 1}},
            400,
            _invalid(f"property.id: {prop['id'] + 1} differs from the path's property {prop['id']}"),
        ),
        (
            "dynamic",
            prop["id"],
            {"relationshipType": "weight"},
            400,
            _invalid("field: Missing data for required field."),
        ),
        (
            "dynamic",
            prop["id"],
            {"field": {"id": w["weight"]}},
            400,
            _invalid("relationshipType: Missing data for required field."),
        ),
    ]
    for how, property_id, body, status, expected in cases:
        assert await call(client, "POST", f"{base}/{how}/{property_id}", owner_token, body) == (status, expected), body
    for how in ("static", "dynamic"):
        path = f"/person/{MISSING}/property/{how}/{prop['id']}"
        assert await call(client, "POST", path, owner_token, good if how == "static" else dynamic) == (
            404,
            _not_found(f"There is no person with id {MISSING}"),
        )
        assert await call(client, "GET", f"{base}/{how}", owner_token) == (200, [])
    assert await call(client, "GET", f"/person/{me['id']}/values", owner_token) == (200, [me])


async def test_the_full_values_of_a_person(client, owner_token):
    w = await _weights(client, owner_token)
    me, values, (_, day2, _) = w["me"], w["values"], w["days"]
    spouse = await _entity(client, owner_token, "person", "Spouse")
    home = await _entity(client, owner_token, "location", "Home")
    work = await _entity(client, owner_token, "organisation", "Work")
    spouse_link = await _link(client, owner_token, ("person", me), ("person", spouse), "spouse")
    home_link = await _link(client, owner_token, ("person", me), ("location", home), "livesAt")
    work_link = await _link(client, owner_token, ("person", me), ("organisation", work), "worksFor")
    person_type = await created(client, owner_token, "/type/type", {"name": "Human", "description": "one of us"})
    type_link = await created(
        client, owner_token, f"/person/{me['id']}/type/{person_type['id']}", {"relationshipType": "is"}
    )
    prop, history = w["bodyWeight"], w["weightHistory"]
    static = await created(
        client,
        owner_token,
        f"/person/{me['id']}/property/static/{prop['id']}",
        {"relationshipType": "weight", "field": {"id": w["weight"]}, "record": {"id": day2["id"]}},
    )
    dynamic = await created(
        client,
        owner_token,
        f"/person/{me['id']}/property/dynamic/{history['id']}",
        {"relationshipType": "weighs", "field": {"id": w["weight"]}},
    )
    field = {"id": w["weight"], "name": "tableTestField", "tableId": w["kitchen"]["id"]}
    status, body = await call(client, "GET", f"/person/{me['id']}/values", owner_token)
    assert status == 200
    assert untimed(body) == [
        {
            "id": me["id"],
            "name": "Me",
            "personId": "Me.hat.org",
            "people": [{"id": spouse_link, "relationshipType": "spouse", "person": spouse}],
            "locations": [{"id": home_link, "relationshipType": "livesAt", "location": home}],
            "organisations": [{"id": work_link, "relationshipType": "worksFor", "organisation": work}],
            "types": [{"id": type_link["id"], "relationshipType": "is", "type": untimed(person_type)}],
            "staticProperties": [
                {
                    "id": static["id"],
                    "relationshipType": "weight",
                    "property": untimed(prop),
                    # Only Day 2's values of the field, newest first; not the other field's value in Day 2.
                    "field": {**field, "values": [_value(values["61.3"]), _value(values["61.2"])]},
                    "record": {"id": day2["id"], "name": "Day 2"},
                }
            ],
            "dynamicProperties": [
                {
                    "id": dynamic["id"],
                    "relationshipType": "weighs",
                    "property": untimed(history),
                    # Every value of the field, in any record, newest first by lastUpdated.
                    "field": {**field, "values": [_value(values[v]) for v in ("62.0", "61.3", "61.2", "60.1")]},
                }
            ],
        }
    ]
    assert list(body[0]) == [
        "id",
        "name",
        "personId",
        "people",
        "locations",
        "organisations",
        "types",
        "staticProperties",
        "dynamicProperties",
    ]
    assert body[0]["types"][0]["type"] == person_type
    assert body[0]["staticProperties"][0]["property"] == prop
    assert [v["lastUpdated"] for v in body[0]["dynamicProperties"][0]["field"]["values"]] == [
        "2017-01-01T00:00:00.000Z",
        "2016-06-01T00:00:00.000Z",
        "2016-01-01T00:00:00.000Z",
        "2015-01-01T00:00:00.000Z",
    ]
    # The other entities' values are untouched by Me's links.
    for kind, entity in (("person", spouse), ("location", home), ("organisation", work)):
        assert await call(client, "GET", f"/{kind}/{entity['id']}/values", owner_token) == (200, [entity])


# -- who ----------------------------------------------------------------------------------------


async def _owner_only_requests(client: Client, token: str) -> list[tuple[str, str, str, Any]]:
    """(method, path, route as the 403 names it, body) for the entity routes, on real ids."""
    person = await _entity(client, token, "person", "Me")
    home = await _entity(client, token, "location", "Home")
    kind = await created(client, token, "/type/type", {"name": "Human"})
    table = await new_table(client, token, KITCHEN)
    record = await new_record(client, token)
    prop = await _property(client, token, "bodyWeight")
    link_body = {
        "relationshipType": "weight",
        "field": {"id": table["fields"][0]["id"]},
        "record": {"id": record["id"]},
    }
    me = f"/person/{person['id']}"
    return [
        ("POST", "/person", "/person", {"name": "Other", "personId": "other.hat.org"}),
        ("GET", "/person", "/person", None),
        ("GET", me, "/person/{id}", None),
        ("GET", f"{me}/values", "/person/{id}/values", None),
        (
            "POST",
            f"{me}/location/{home['id']}",
            "/person/{id}/{linkedKind}/{linkedId}",
            {"relationshipType": "livesAt"},
        ),
        ("POST", f"{me}/type/{kind['id']}", "/person/{id}/type/{typeId}", {"relationshipType": "is"}),
        ("POST", f"{me}/property/static/{prop['id']}", "/person/{id}/property/static/{propertyId}", link_body),
        ("POST", f"{me}/property/dynamic/{prop['id']}", "/person/{id}/property/dynamic/{propertyId}", link_body),
        ("GET", f"{me}/property/static", "/person/{id}/property/static", None),
    ]


@pytest.mark.parametrize("role", ["platform", "dataCredit", "dataDebit"])
async def test_entities_are_the_owners(client, owner_token, platform_token, role):
    token = platform_token if role == "platform" else (await new_account(client, owner_token, role=role))[1]
    requests = await _owner_only_requests(client, owner_token)
    for method, path, route, body in requests:
        assert await call(client, method, path, token, body) == (
            403,
            _error("Forbidden", f"{method} {route} is for owner; this is a {role} token"),
        ), path
    # Nothing was stored: the owner still sees one person, and it bare.
    people = await ok(client, owner_token, "/person")
    assert len(people) == 1
    assert await ok(client, owner_token, f"/person/{people[0]['id']}/values") == people


async def test_no_token_is_401(client, owner_token):
    for method, path, _, body in await _owner_only_requests(client, owner_token):
        response = await client.request(method, path, json=body)
        assert response.status == 401, path
        assert await response.json() == _error(
            "The supplied authentication is invalid", "No X-Auth-Token header or query parameter"
        )


async def test_more_refusals_from_the_review(client, owner_token):
    thing = await _entity(client, owner_token, "thing")
    # An entity cannot link to itself.
    assert await call(
        client, "POST", f"/thing/{thing['id']}/thing/{thing['id']}", owner_token, {"relationshipType": "x"}
    ) == (
        400,
        _error("Not allowed", f"Thing {thing['id']} cannot be linked to itself"),
    )
    # Blank names are refused.
    assert await call(client, "POST", "/thing", owner_token, {"name": "   "}) == (
        400,
        _invalid("name: must not be blank"),
    )
    # Type links cannot close a cycle.
    a = await created(client, owner_token, "/type/type", {"name": "A kind"})
    b = await created(client, owner_token, "/type/type", {"name": "B kind"})
    assert (
        await call(client, "POST", f"/type/{a['id']}/type/{b['id']}", owner_token, {"relationshipType": "subtype"})
    )[0] == 201
    assert await call(
        client, "POST", f"/type/{b['id']}/type/{a['id']}", owner_token, {"relationshipType": "subtype"}
    ) == (
        400,
        _error("Not allowed", f"Type {a['id']} already leads to type {b['id']}: the link would make a cycle"),
    )
    # A nested object of the wrong type is named by its own name.
    assert await call(
        client, "POST", "/property", owner_token, {"name": "p", "propertyType": 5, "unitOfMeasurement": {"id": 1}}
    ) == (
        400,
        _invalid("propertyType: Invalid input type."),
    )


async def test_a_property_link_is_made_once_and_a_static_one_points_at_a_value(client, owner_token):
    w = await _weights(client, owner_token)
    me, prop = w["me"], w["bodyWeight"]
    body = {"relationshipType": "weight", "field": {"id": w["weight"]}}
    path = f"/person/{me['id']}/property/dynamic/{prop['id']}"
    assert (await call(client, "POST", path, owner_token, body))[0] == 201
    assert await call(client, "POST", path, owner_token, body) == (
        409,
        _error("Conflict", f"Person {me['id']} already has this property link"),
    )
    empty = await created(client, owner_token, "/data/record", {"name": "no weight here"})
    static = {**body, "record": {"id": empty["id"]}}
    assert await call(client, "POST", f"/person/{me['id']}/property/static/{prop['id']}", owner_token, static) == (
        400,
        _error(
            "Unknown reference",
            f"record.id: record {empty['id']} has no value in field {w['weight']}, "
            "so a static link would point at nothing",
        ),
    )
