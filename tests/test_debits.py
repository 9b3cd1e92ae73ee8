"""Data debits over HTTP: propose, enable, read under the debit's rules, and the log; and the
security rules, each a test (seed 002, "Sharing and Direct Data Debits")."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import auth, new_account
from tests.raw_helpers import KITCHEN, T, call, created, new_table, untimed

NOW = dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _proposal(kitchen: dict, *, start: dt.datetime | None = None, end: dt.datetime | None = None) -> dict:
    """The reference's example, with a window around now unless told otherwise."""
    return {
        "name": "DD Kitchen electricity on weekend parties",
        "startDate": _iso(start or NOW - dt.timedelta(days=1)),
        "endDate": _iso(end or NOW + dt.timedelta(days=1)),
        "rolling": False,
        "sell": True,
        "price": 100.0,
        "kind": "contextless",
        "bundleContextless": {
            "name": "Everything kitchen",
            "table": {"id": kitchen["id"], "name": "kitchen", "source": "fibaro"},
        },
    }


async def _kitchen_with_data(client, token) -> dict:
    kitchen = await new_table(client, token, KITCHEN)
    await new_table(client, token, {"name": "bedroom", "source": "fibaro", "fields": [{"name": "secret"}]})
    field = kitchen["fields"][0]["id"]
    await created(
        client,
        token,
        "/data/record/values",
        [{"record": {"name": f"r{i}"}, "values": [{"value": f"v{i}", "field": {"id": field}}]} for i in range(3)],
    )
    return kitchen


@pytest.fixture
async def setting(client, owner_token):
    kitchen = await _kitchen_with_data(client, owner_token)
    app, app_token = await new_account(client, owner_token, role="dataDebit")
    return kitchen, app, app_token


async def test_propose_as_in_the_reference(client, owner_token, setting):
    kitchen, _, app_token = setting
    status, debit = await call(
        client, "POST", "/dataDebit/propose", app_token, {**_proposal(kitchen), "key": "ignored"}
    )
    assert status == 201
    assert debit["key"] != "ignored" and len(debit["key"]) == 36
    bundle = debit.pop("bundleContextless")
    proposal = _proposal(kitchen)
    assert untimed(debit) == {
        "key": debit["key"],
        "name": "DD Kitchen electricity on weekend parties",
        "startDate": proposal["startDate"].replace("Z", ".000Z"),
        "endDate": proposal["endDate"].replace("Z", ".000Z"),
        "rolling": False,
        "sell": True,
        "price": 100,
        "kind": "contextless",
        "enabled": False,
        "dateCreated": T,
        "lastUpdated": T,
    }
    # The app sees the bundle's id and name, as in the reference's answer; the owner sees its tables.
    assert bundle == {"id": bundle["id"], "name": "Everything kitchen"}
    status, seen = await call(client, "GET", f"/dataDebit/{debit['key']}", owner_token)
    assert status == 200
    assert [t["bundleTable"]["table"]["id"] for t in seen["bundleContextless"]["tables"]] == [kitchen["id"]]


async def test_the_whole_life_of_a_debit(client, owner_token, setting):
    kitchen, app, app_token = setting
    debit = await created(client, app_token, "/dataDebit/propose", _proposal(kitchen))
    key = debit["key"]
    # Not enabled yet: the proposer reads nothing; the owner reads always.
    assert await call(client, "GET", f"/dataDebit/{key}/values", app_token) == (
        403,
        {"message": "Forbidden", "cause": "The owner has not enabled this data debit"},
    )
    assert (await call(client, "GET", f"/dataDebit/{key}/values", owner_token))[0] == 200
    assert await call(client, "PUT", f"/dataDebit/{key}/enable", owner_token) == (
        200,
        {"message": "OK", "key": key, "enabled": True},
    )
    status, body = await call(client, "GET", f"/dataDebit/{key}/values", app_token)
    assert status == 200
    [group] = body["bundleContextless"]["dataGroups"]
    assert [r["name"] for r in group["Everything kitchen"]["data"]] == ["r2", "r1", "r0"]
    assert body["key"] == key and body["enabled"] is True
    # Another spelling, and disabling stops reads at once; enabling again works.
    assert (await call(client, "PUT", f"/directDebit/{key}/disable", owner_token))[0] == 200
    assert (await call(client, "GET", f"/dataDebit/{key}/values", app_token))[0] == 403
    assert (await call(client, "PUT", f"/dataDebit/{key}/enable", owner_token))[0] == 200
    assert (await call(client, "GET", f"/dataDebit/{key}/values", app_token))[0] == 200
    # The log: propose, the owner's read, enable, the reads, disable, enable.
    status, log = await call(client, "GET", f"/dataDebit/{key}/log", owner_token)
    assert status == 200
    assert [(entry["action"], entry["records"]) for entry in log] == [
        ("propose", None),
        ("values", 3),
        ("enable", None),
        ("values", 3),
        ("disable", None),
        ("enable", None),
        ("values", 3),
    ]
    assert {entry["account"] for entry in log if entry["action"] == "propose"} == {app["userId"]}
    # The owner lists every debit, a dataDebit account its own; reading one is the owner's, the
    # platform's and the proposer's.
    status, listed = await call(client, "GET", "/dataDebit", owner_token)
    assert status == 200 and [d["key"] for d in listed] == [key]
    assert (await call(client, "GET", f"/dataDebit/{key}", app_token))[0] == 200
    status, own = await call(client, "GET", "/dataDebit", app_token)
    assert status == 200 and own == listed


async def test_outside_its_window_a_debit_gives_nothing(client, owner_token, setting):
    kitchen, _, app_token = setting
    future = await created(
        client,
        app_token,
        "/dataDebit/propose",
        _proposal(kitchen, start=NOW + dt.timedelta(days=1), end=NOW + dt.timedelta(days=2)),
    )
    past = await created(
        client,
        app_token,
        "/dataDebit/propose",
        _proposal(kitchen, start=NOW - dt.timedelta(days=2), end=NOW - dt.timedelta(days=1)),
    )
    for debit, cause in ((future, "This data debit has not started yet"), (past, "This data debit has ended")):
        assert (await call(client, "PUT", f"/dataDebit/{debit['key']}/enable", owner_token))[0] == 200
        assert await call(client, "GET", f"/dataDebit/{debit['key']}/values", app_token) == (
            403,
            {"message": "Forbidden", "cause": cause},
        )


async def test_another_accounts_token_reads_nothing_and_keys_cannot_be_probed(client, owner_token, setting):
    kitchen, _, app_token = setting
    debit = await created(client, app_token, "/dataDebit/propose", _proposal(kitchen))
    await call(client, "PUT", f"/dataDebit/{debit['key']}/enable", owner_token)
    _, other_token = await new_account(client, owner_token, role="dataDebit")
    refusal = (
        403,
        {"message": "Forbidden", "cause": "There is no data debit with this key that this account may read"},
    )
    assert await call(client, "GET", f"/dataDebit/{debit['key']}/values", other_token) == refusal
    assert await call(client, "GET", f"/dataDebit/{debit['key']}", other_token) == refusal
    # An unknown key looks the same as someone else's.
    assert await call(client, "GET", "/dataDebit/5974832d-2dc1-4f49-adf1-c6d8bc790275/values", other_token) == refusal
    assert await call(client, "GET", "/dataDebit/not-a-key/values", other_token) == refusal
    assert (await call(client, "GET", "/dataDebit/5974832d-2dc1-4f49-adf1-c6d8bc790275/values", owner_token))[0] == 404


async def test_a_debit_account_can_read_nothing_else(client, owner_token, setting):
    kitchen, _, app_token = setting
    for method, path in (
        ("GET", f"/data/table/{kitchen['id']}/values"),
        ("GET", f"/data/table/{kitchen['id']}"),
        ("GET", "/data/sources"),
        ("GET", "/person"),
        ("GET", "/bundles/contextless/1/values"),
        ("POST", "/bundles/contextless"),
        ("PUT", "/dataDebit/5974832d-2dc1-4f49-adf1-c6d8bc790275/enable"),
    ):
        assert (await call(client, method, path, app_token, {} if method != "GET" else None))[0] == 403, path


async def test_an_app_lists_only_the_debits_it_proposed(client, owner_token, platform_token, setting):
    kitchen, app, app_token = setting
    mine = await created(client, app_token, "/dataDebit/propose", _proposal(kitchen))
    _, other_token = await new_account(client, owner_token, role="dataDebit")
    theirs = await created(client, other_token, "/dataDebit/propose", _proposal(kitchen))
    await created(client, owner_token, "/dataDebit/propose", _proposal(kitchen))
    status, listed = await call(client, "GET", "/dataDebit", app_token)
    assert status == 200
    assert [(d["key"], d["proposer"]) for d in listed] == [(mine["key"], app["userId"])]
    assert [d["key"] for d in (await call(client, "GET", "/dataDebit", other_token))[1]] == [theirs["key"]]
    assert len((await call(client, "GET", "/dataDebit", owner_token))[1]) == 3
    # The platform and dataCredit accounts list nothing (as the original: the owner's and proposers').
    assert (await call(client, "GET", "/dataDebit", platform_token))[0] == 403
    _, credit_token = await new_account(client, owner_token, role="dataCredit")
    assert (await call(client, "GET", "/dataDebit", credit_token))[0] == 403


async def test_disabling_the_account_stops_its_reads_at_once(client, owner_token, setting):
    kitchen, app, app_token = setting
    debit = await created(client, app_token, "/dataDebit/propose", _proposal(kitchen))
    await call(client, "PUT", f"/dataDebit/{debit['key']}/enable", owner_token)
    assert (await call(client, "GET", f"/dataDebit/{debit['key']}/values", app_token))[0] == 200
    await call(client, "PUT", f"/users/user/{app['userId']}/disable", owner_token)
    assert (await call(client, "GET", f"/dataDebit/{debit['key']}/values", app_token))[0] == 401


async def test_a_bundle_shares_only_its_tables_never_a_sibling(client, owner_token, setting):
    kitchen, _, app_token = setting
    debit = await created(client, app_token, "/dataDebit/propose", _proposal(kitchen))
    await call(client, "PUT", f"/dataDebit/{debit['key']}/enable", owner_token)
    response = await client.get(f"/dataDebit/{debit['key']}/values", headers=auth(app_token))
    text = await response.text()
    assert "bedroom" not in text and "secret" not in text
    assert "kitchenElectricity" in text  # the bundled table's subtable comes with it


async def test_only_the_owner_proposes_an_existing_bundle_by_id(client, owner_token, setting):
    kitchen, _, app_token = setting
    bundle = await created(
        client,
        owner_token,
        "/bundles/contextless",
        {"name": "b", "bundleTable": [{"name": "k", "table": {"id": kitchen["id"]}}]},
    )
    by_id = {**_proposal(kitchen), "bundleContextless": {"id": bundle["id"]}}
    assert await call(client, "POST", "/dataDebit/propose", app_token, by_id) == (
        403,
        {
            "message": "Forbidden",
            "cause": "Only the owner may propose a debit of an existing bundle; give the bundle inline",
        },
    )
    status, debit = await call(client, "POST", "/dataDebit/propose", owner_token, by_id)
    assert status == 201 and debit["bundleContextless"]["id"] == bundle["id"]


@pytest.mark.parametrize(
    ("change", "cause"),
    [
        ({"endDate": "2015-01-01T00:00:00Z", "startDate": "2016-01-01T00:00:00Z"}, "endDate: must be after startDate"),
        ({"kind": "other"}, "kind: Must be one of: contextless, contextual."),
        ({"kind": "contextual"}, "bundleContextual: a contextual debit needs a contextual bundle"),
        ({"bundleContextless": None}, "bundleContextless: a contextless debit needs a contextless bundle"),
        (
            {"bundleContextless": {"name": "x"}},
            "bundleContextless: Must be a bundle: {id}, {name, bundleTable}, or {name, table}.",
        ),
        ({"rolling": "yes"}, "rolling: Not a valid boolean."),
        ({"price": -1}, "price: Must be greater than or equal to 0 and less than or equal to 1000000000000000.0."),
    ],
)
async def test_bad_proposals_are_400_and_store_nothing(client, owner_token, setting, change, cause):
    kitchen, _, app_token = setting
    body = {**_proposal(kitchen), **change}
    if change.get("bundleContextless", 0) is None:
        del body["bundleContextless"]
    status, answer = await call(client, "POST", "/dataDebit/propose", app_token, body)
    assert (status, answer["cause"]) == (400, cause)
    assert await call(client, "GET", "/dataDebit", owner_token) == (200, [])


async def test_a_table_linked_under_a_bundled_table_later_is_never_shared(client, owner_token, setting):
    kitchen, _, app_token = setting
    debit = await created(client, app_token, "/dataDebit/propose", _proposal(kitchen))
    await call(client, "PUT", f"/dataDebit/{debit['key']}/enable", owner_token)
    secret = await new_table(client, owner_token, {"name": "bank", "source": "secret", "fields": [{"name": "pin"}]})
    record = (await call(client, "GET", f"/data/table/{kitchen['id']}/values", owner_token))[1][0]
    await created(
        client,
        owner_token,
        f"/data/record/{record['id']}/values",
        [{"value": "PIN-1234", "field": {"id": secret["fields"][0]["id"]}}],
    )
    # Any writer may link tables; the bundle keeps the tree it was made with.
    _, credit_token = await new_account(client, owner_token, role="dataCredit")
    await created(client, credit_token, f"/data/table/{kitchen['id']}/table/{secret['id']}", None)
    response = await client.get(f"/dataDebit/{debit['key']}/values", headers=auth(app_token))
    text = await response.text()
    assert response.status == 200
    assert "PIN-1234" not in text and "bank" not in text


async def test_an_app_learns_nothing_of_the_owners_tables_from_refusals(client, setting):
    _, _, app_token = setting
    answers = set()
    for table in ({"id": 999999}, {"name": "bedroom", "source": "nowhere"}):
        body = {**_proposal({"id": 1}), "bundleContextless": {"name": "x", "table": table}}
        status, answer = await call(client, "POST", "/dataDebit/propose", app_token, body)
        answers.add((status, answer["cause"]))
    assert answers == {(400, "The bundle names a table, field or entity that does not exist or does not fit")}


async def test_a_like_pattern_ending_in_a_backslash_is_just_text(client, owner_token, setting):
    kitchen, _, _ = setting
    field = kitchen["fields"][0]["id"]
    body = {
        "name": "b",
        "bundleTable": [
            {
                "name": "k",
                "table": {"id": kitchen["id"]},
                "slices": [
                    {
                        "table": {"id": kitchen["id"]},
                        "conditions": [{"field": {"id": field}, "operator": "like", "value": "%\\"}],
                    }
                ],
            }
        ],
    }
    bundle = await created(client, owner_token, "/bundles/contextless", body)
    status, values = await call(client, "GET", f"/bundles/contextless/{bundle['id']}/values", owner_token)
    assert status == 200 and values["dataGroups"][0]["k"]["data"] == []


async def test_head_on_debit_values_is_not_a_read(client, owner_token, setting):
    kitchen, _, app_token = setting
    debit = await created(client, app_token, "/dataDebit/propose", _proposal(kitchen))
    await call(client, "PUT", f"/dataDebit/{debit['key']}/enable", owner_token)
    assert (await client.head(f"/dataDebit/{debit['key']}/values", headers=auth(app_token))).status == 405
    _, log = await call(client, "GET", f"/dataDebit/{debit['key']}/log", owner_token)
    assert [e["action"] for e in log] == ["propose", "enable"]


@pytest.mark.parametrize(("field", "value"), [("rolling", 1), ("sell", "true"), ("price", "5")])
async def test_lookalike_types_are_refused(client, setting, field, value):
    kitchen, _, app_token = setting
    status, answer = await call(client, "POST", "/dataDebit/propose", app_token, {**_proposal(kitchen), field: value})
    assert status == 400 and answer["cause"].startswith(f"{field}: Not a valid")


async def test_debit_values_page_through_every_table_with_a_cursor(client, owner_token, setting):
    kitchen, _, app_token = setting
    garden = await new_table(client, owner_token, {"name": "garden", "source": "fibaro", "fields": [{"name": "rain"}]})
    # One record with values in both tables (it belongs to both groups), two more in the garden only.
    items = [
        {
            "record": {"name": "both"},
            "values": [
                {"value": "k", "field": {"id": kitchen["fields"][0]["id"]}},
                {"value": "g", "field": {"id": garden["fields"][0]["id"]}},
            ],
        }
    ]
    items += [
        {"record": {"name": f"g{i}"}, "values": [{"value": "g", "field": {"id": garden["fields"][0]["id"]}}]}
        for i in range(2)
    ]
    await created(client, owner_token, "/data/record/values", items)
    proposal = {
        **_proposal(kitchen),
        "bundleContextless": {
            "name": "two",
            "bundleTable": [
                {"name": "k", "table": {"id": kitchen["id"]}},
                {"name": "g", "table": {"id": garden["id"]}},
            ],
        },
    }
    debit = await created(client, app_token, "/dataDebit/propose", proposal)
    await call(client, "PUT", f"/dataDebit/{debit['key']}/enable", owner_token)
    seen, path, pages = [], f"/dataDebit/{debit['key']}/values?limit=2", 0
    while path:
        response = await client.get(path, headers=auth(app_token))
        assert response.status == 200, await response.text()
        body = await response.json()
        pages += 1
        for group in body["bundleContextless"]["dataGroups"]:
            for name, content in group.items():
                seen += [(name, record["name"]) for record in content["data"]]
        link = response.headers.get("Link")
        path = link[len("<http://hat.test") : link.index(">")] if link else None
    assert pages == 4
    assert sorted(seen) == sorted(
        [("k", "both"), ("k", "r0"), ("k", "r1"), ("k", "r2"), ("g", "both"), ("g", "g0"), ("g", "g1")]
    )
    # A cursor is bound to its debit.
    other = await created(client, app_token, "/dataDebit/propose", _proposal(kitchen))
    await call(client, "PUT", f"/dataDebit/{other['key']}/enable", owner_token)
    first = await client.get(f"/dataDebit/{debit['key']}/values?limit=2", headers=auth(app_token))
    cursor = first.headers["Link"].split("cursor=")[1].split(">")[0]
    status, answer = await call(client, "GET", f"/dataDebit/{other['key']}/values?cursor={cursor}", app_token)
    assert (status, answer["cause"]) == (400, "cursor: Not a cursor this HAT made for this read.")


async def test_the_platform_proposes_but_never_reads_debit_values(client, owner_token, platform_token, setting):
    kitchen, _, _ = setting
    debit = await created(client, platform_token, "/dataDebit/propose", _proposal(kitchen))
    await call(client, "PUT", f"/dataDebit/{debit['key']}/enable", owner_token)
    status, answer = await call(client, "GET", f"/dataDebit/{debit['key']}/values", platform_token)
    assert (status, answer["message"]) == (403, "Forbidden")


async def test_a_forged_cursor_is_400_not_500(client, owner_token, setting):
    import base64

    kitchen, _, _ = setting
    forged = base64.urlsafe_b64encode(f"table:{kitchen['id']}:0:-99999999999999999999999".encode()).decode().rstrip("=")
    status, answer = await call(client, "GET", f"/data/table/{kitchen['id']}/values?cursor={forged}", owner_token)
    assert (status, answer["cause"]) == (400, "cursor: Not a cursor this HAT made for this read.")
