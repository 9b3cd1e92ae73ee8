"""Rumpel, the original's owner dashboard (dataswift/Rumpel, v1.3, 2017-02, `hat-api.service.ts`),
replayed against hatd: its requests in its own order and shapes (X-Auth-Token and Content-Type:
application/json on every call, GETs included, from another origin), and assertions on exactly what
it reads back. A KeyError or TypeError here is a crash in Rumpel."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from tests.raw_helpers import created
from tests.web_helpers import hidden_fields, logged_in

RUMPEL = "https://rumpel.example"
# notables.hatmodel.ts, shortened: the table Rumpel makes for the owner's notes.
NOTABLES = {
    "name": "notablesv1", "source": "rumpel",
    "fields": [{"name": "message"}, {"name": "kind"}, {"name": "created_time"}, {"name": "shared"}],
    "subTables": [
        {"name": "authorv1", "source": "rumpel", "fields": [{"name": "phata"}, {"name": "nick"}]},
        {"name": "locationv1", "source": "rumpel", "fields": [{"name": "latitude"}, {"name": "longitude"}]},
    ],
}  # fmt: skip


@pytest.fixture
async def client(make_client: Any) -> Any:
    """A HAT with the default CORS setting (any origin): Rumpel runs on its own origin."""
    return await make_client(cors_origins="*")


def headers(token: str) -> dict[str, str]:
    """What Rumpel sends on every HAT call (GET and DELETE included), from its own origin."""
    return {"Content-Type": "application/json", "X-Auth-Token": token, "Origin": RUMPEL}


async def rumpel_get(client: Any, token: str, path: str, **query: Any) -> Any:
    response = await client.get(path, params=query, headers=headers(token))
    assert response.status == 200, (path, await response.text())
    assert response.headers["Access-Control-Allow-Origin"] == RUMPEL  # else the browser hides the answer
    return await response.json()  # res.json(): every answer Rumpel reads is JSON


def mapping(table: dict[str, Any], prefix: str = "default") -> dict[str, int]:
    """Rumpel's mapDataSource: `fields` must be an array on every table node, each field with id and name."""
    found = {f"{prefix}_{field['name']}": field["id"] for field in table["fields"]}
    for sub in table.get("subTables") or []:
        found |= mapping(sub, f"{prefix}_{sub['name']}")
    return found


def process_node(node: dict[str, Any]) -> dict[str, Any]:
    """Rumpel's processNode over a raw (non-pretty) record's tables[0]."""
    values: dict[str, Any] = {}
    for field in node["fields"]:
        values[field["name"]] = field["values"][0]["value"] if "values" in field else None
    for sub in node.get("subTables") or []:
        values[sub["name"]] = process_node(sub)
    return values


async def rumpel_logs_in(client: Any) -> str:
    """The owner approved Rumpel on the Services page; Rumpel sends the browser to /hatlogin with an
    un-encoded redirect, and picks the token from its query."""
    csrf = await logged_in(client)
    approve = await client.post("/owner/services", data={"csrf": csrf, "name": "Rumpel", "origin": RUMPEL})
    assert approve.status == 200  # followed to the services page
    page = await client.get(f"/hatlogin?name=Rumpel&redirect={RUMPEL}/dashboard")
    answer = await client.post("/hatlogin", data=hidden_fields(await page.text()), allow_redirects=False)
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{RUMPEL}/dashboard"
    return parse_qs(location.query)["token"][0]


async def test_rumpel_logs_in_and_lives_on_the_hat(client):
    token = await rumpel_logs_in(client)
    payload = jwt.decode(token, options={"verify_signature": False})  # angular2-jwt decodeToken
    # Every URL Rumpel builds is 'https://' + iss: the bare host, no scheme.
    assert payload["iss"] == "hat.test"
    assert payload["accessScope"] == "owner" and isinstance(payload["exp"], int)
    assert (await rumpel_get(client, token, "/users/access_token/validate"))["message"] == "Authenticated"

    # The browser's preflight for its custom headers.
    preflight = await client.options(
        "/data/sources",
        headers={"Origin": RUMPEL, "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "content-type,x-auth-token"},
    )  # fmt: skip
    assert preflight.status == 204
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "x-auth-token" in allowed and "content-type" in allowed

    # Notables: look the table up (404 means "make it"), make it, map its fields.
    missing = await client.get("/data/table", params={"name": "notablesv1", "source": "rumpel"}, headers=headers(token))
    assert missing.status == 404
    table = await created(client, token, "/data/table", NOTABLES)
    ids = mapping(table)
    assert mapping(await rumpel_get(client, token, f"/data/table/{table['id']}")) == ids
    sources = await rumpel_get(client, token, "/data/sources")
    assert [(t["id"], t["name"], t["source"]) for t in sources] == [(table["id"], "notablesv1", "rumpel")]
    assert all("lastUpdated" in t for t in sources)

    # Two notes, posted as Rumpel's createRecord does: every value a string, the record named by a date.
    for n, created_time in enumerate(["2017-02-07T12:30:00+00:00", "2017-02-07T12:40:00+00:00"]):
        note = {"message": f"note {n}", "kind": "note", "created_time": created_time, "shared": "false"}
        values = [{"value": v, "field": {"id": ids[f"default_{k}"], "name": k}} for k, v in note.items()]
        values.append({"value": "hat.test", "field": {"id": ids["default_authorv1_phata"], "name": "phata"}})
        answer = await client.post(
            "/data/record/values",
            json=[{"record": {"name": f"2017-02-07T12:4{n}:00.000Z"}, "values": values}],
            headers=headers(token),
        )
        assert answer.status == 201
        await answer.json()

    # The tiles read pretty records, newest first, limit and starttime in unix seconds.
    pretty = await rumpel_get(client, token, f"/data/table/{table['id']}/values", pretty="true", limit=50, starttime=0)
    assert [r["data"]["notablesv1"]["message"] for r in pretty] == ["note 1", "note 0"]
    newest = pretty[0]
    assert set(newest) == {"id", "name", "lastUpdated", "data"}
    notable = newest["data"]["notablesv1"]
    assert notable == {
        "message": "note 1", "kind": "note", "created_time": "2017-02-07T12:40:00+00:00", "shared": "false",
        "authorv1": {"phata": "hat.test"}, "locationv1": {},
    }  # fmt: skip
    # getFirstNotable: limit=1 is the record just posted.
    first = await rumpel_get(client, token, f"/data/table/{table['id']}/values", pretty="true", limit=1, starttime=0)
    assert [r["id"] for r in first] == [newest["id"]]

    # The raw read through processNode: fields with no value are absent, never "values": [].
    raw = await rumpel_get(client, token, f"/data/table/{table['id']}/values", starttime=0)
    processed = [process_node(record["tables"][0]) for record in raw]
    assert processed[0] == {
        "message": "note 1", "kind": "note", "created_time": "2017-02-07T12:40:00+00:00", "shared": "false",
        "authorv1": {"phata": "hat.test"}, "locationv1": {},
    }  # fmt: skip

    # Deleting a note: Rumpel drops it only if the message says "deleted".
    response = await client.delete(f"/data/record/{newest['id']}", headers=headers(token))
    assert response.status == 200
    assert (await response.json())["message"].find("deleted") > -1

    # Data plugs and the market: an application token for each, read as accessToken, exp decoded.
    for name, resource in [
        ("MarketSquare", "https://marketsquare.hubofallthings.com"),
        ("Facebook", "https://social-plug.hubofallthings.com/api/user/token/status"),
    ]:
        answer = await rumpel_get(client, token, "/users/application_token", name=name, resource=resource)
        claims = jwt.decode(answer["accessToken"], options={"verify_signature": False})
        assert (claims["accessScope"], claims["resource"], claims["iss"]) == ("validate", resource, "hat.test")
        assert isinstance(claims["exp"], int)


async def test_rumpel_reads_and_accepts_a_data_debit(client, owner_token):
    token = await rumpel_logs_in(client)
    profile = await created(client, owner_token, "/data/table", {
        "name": "profile_picture", "source": "facebook", "fields": [{"name": "url"}, {"name": "height"}],
    })  # fmt: skip
    url = profile["fields"][0]["id"]  # height has no value: processNode gives it no key at all
    await created(client, owner_token, "/data/record/values", [
        {"record": {"name": "pic"}, "values": [{"value": "https://x/p.jpg", "field": {"id": url}}]},
    ])  # fmt: skip
    debit = await created(client, owner_token, "/dataDebit/propose", {
        "name": "Frivolous offer", "startDate": "2016-09-15T00:00:00Z", "endDate": "2036-10-16T00:00:00Z",
        "rolling": False, "sell": True, "price": 100, "kind": "contextless",
        "bundleContextless": {"name": "Bundle for Offer Frivolous offer", "sources": [{"source": "facebook",
            "datasets": [{"name": "profile_picture", "description": "Your picture",
                          "fields": [{"name": "url", "description": "Address"},
                                     {"name": "height", "description": "Height"}]}]}]},
    })  # fmt: skip

    # The data debit tile: every debit has a key and a bundleContextless with a name.
    listed = await rumpel_get(client, token, "/dataDebit")
    assert [(d["key"], d["bundleContextless"]["name"], d["kind"]) for d in listed] == [
        (debit["key"], "Bundle for Offer Frivolous offer", "contextless")
    ]
    assert all("endDate" in d for d in listed)
    # The confirm page: limit=0&starttime=0 literally, then transformDataDebit.
    raw = await rumpel_get(client, token, f"/dataDebit/{debit['key']}/values?limit=0&starttime=0")
    groups = raw["bundleContextless"]["dataGroups"]
    shared = {
        source: [{"name": group["name"], "data": [process_node(r["tables"][0]) for r in group["data"]]}
                 for group in groups[source]]
        for source in groups
    }  # fmt: skip
    assert shared == {"facebook": [{"name": "profile_picture", "data": [{"url": "https://x/p.jpg"}]}]}
    for key in ("dateCreated", "startDate", "endDate", "lastUpdated", "name", "price", "rolling", "sell", "key"):
        assert key in raw, key
    assert raw["enabled"] is False
    assert (await rumpel_get(client, token, f"/dataDebit/{debit['key']}"))["enabled"] is False
    # Accept it: PUT with {} (and the 2017 HAT-bundled Rumpel's POST).
    response = await client.put(f"/dataDebit/{debit['key']}/enable", json={}, headers=headers(token))
    assert response.status == 200
    assert (await rumpel_get(client, token, f"/dataDebit/{debit['key']}"))["enabled"] is True
    response = await client.post(f"/dataDebit/{debit['key']}/disable", json={}, headers=headers(token))
    assert response.status == 200
    assert (await rumpel_get(client, token, f"/dataDebit/{debit['key']}"))["enabled"] is False
