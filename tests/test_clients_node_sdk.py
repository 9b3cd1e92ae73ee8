"""hat-node-sdk (Hub-of-all-Things, v0.1.3, 2016) with the HAT services of the data plugs that use it
(DataPlugCalendar, DataPlugDropbox, DataPlugFacebook, `app/services/hat.service.js`), replayed
against hatd in their own order and shapes, with assertions on exactly what they read back."""

from __future__ import annotations

import json
from typing import Any

import jwt

from tests.conftest import PLATFORM

# lib/Client.js: every request carries these, and a Host header taken from the HAT's URL.
SDK_HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}
CALENDAR_MODEL = {"name": "events", "source": "ical",
                  "fields": [{"name": "calendarName"}, {"name": "startDate"}, {"name": "endDate"}, {"name": "summary"}]}  # fmt: skip
FACEBOOK_EVENTS = {
    "name": "events", "source": "facebook", "fields": [{"name": "id"}, {"name": "name"}],
    "subTables": [{"name": "place", "source": "facebook", "fields": [{"name": "name"}],
                   "subTables": [{"name": "location", "source": "facebook", "fields": [{"name": "city"}]}]}],
}  # fmt: skip


def sdk_end(status: int, body: str) -> tuple[Any, Any]:
    """lib/Req.js: (err, data). A body with braces is parsed and handed back as data (even for a 4xx);
    anything else becomes an error."""
    if "{" in body and "}" in body:
        return None, json.loads(body)
    return {"error_summary": body}, None


def map_ids(model: dict[str, Any], prefix: str = "") -> dict[str, int]:
    """mapDataSourceModelIds: throws 'HAT data source model invalid' without fields and ids."""
    if "fields" not in model or "id" not in model:
        raise ValueError("HAT data source model invalid")
    found = {f"{prefix}{field['name']}": field["id"] for field in model["fields"]}
    for sub in model.get("subTables") or []:
        found |= map_ids(sub, f"{prefix}{sub['name']}_")
    return found


async def plug_access_token(client: Any, username: str, password: str, *, as_headers: bool) -> str:
    """The plugs' getAccessToken: credentials in the query (Calendar, Dropbox) or as headers (Facebook);
    only accessToken is read, and a 401 or 500 is an error."""
    if as_headers:
        response = await client.get("/users/access_token", headers={**SDK_HEADERS, "username": username,
                                                                    "password": password})  # fmt: skip
    else:
        response = await client.get(
            "/users/access_token", params={"username": username, "password": password}, headers=SDK_HEADERS
        )
    assert response.status not in (401, 500)
    token: str = (await response.json())["accessToken"]
    return token


async def get_or_create_model(client: Any, token: str, model: dict[str, Any]) -> dict[str, int]:
    """hat.service.js: GET /data/table?name&source (model.id, or make it), then GET /data/table/{id}."""
    headers = {**SDK_HEADERS, "X-Auth-Token": token, "Host": "hat.test"}
    response = await client.get("/data/table", params={"name": model["name"], "source": model["source"]},
                                headers=headers)  # fmt: skip
    err, found = sdk_end(response.status, await response.text())
    assert err is None  # a 404's {"message", "cause"} is data without an id: the plug makes the table
    if "id" not in found:
        response = await client.post("/data/table", data=json.dumps(model), headers=headers)
        err, found = sdk_end(response.status, await response.text())
        assert err is None and "id" in found
    response = await client.get(f"/data/table/{found['id']}", headers=headers)
    err, structure = sdk_end(response.status, await response.text())
    assert err is None
    return map_ids(structure)


async def test_the_calendar_plug_stores_events_twice_without_duplicating_the_table(client):
    token = await plug_access_token(client, *PLATFORM, as_headers=False)
    ids = await get_or_create_model(client, token, CALENDAR_MODEL)
    assert set(ids) == {"calendarName", "startDate", "endDate", "summary"}
    # A second run finds the table (the single-object answer of GET /data/table) and reuses it.
    assert await get_or_create_model(client, token, CALENDAR_MODEL) == ids
    # createMultipleRecords: normalizeJSONValueTypes made every value a string.
    records = [{"record": {"name": "default_Thu Jul 21 2016 12:00:00 GMT+0100 (BST)"},
                "values": [{"value": "Work", "field": {"id": ids["calendarName"], "name": "calendarName"}},
                           {"value": "1469098800", "field": {"id": ids["startDate"], "name": "startDate"}}]}]  # fmt: skip
    response = await client.post(
        "/data/record/values", data=json.dumps(records), headers={**SDK_HEADERS, "X-Auth-Token": token}
    )
    assert response.status == 201
    err, stored = sdk_end(response.status, await response.text())
    assert err is None and stored[0]["record"]["name"].startswith("default_Thu Jul 21")


async def test_the_facebook_plug_verifies_the_token_from_iss_and_stores_nested_tables(client, owner_token):
    # The owner opens the plug with an application token (Rumpel's getApplicationToken).
    response = await client.get(
        "/users/application_token",
        params={"name": "Facebook", "resource": "https://social-plug.example/hat/authenticate"},
        headers={"X-Auth-Token": owner_token},
    )
    assert response.status == 200
    token = (await response.json())["accessToken"]
    # verifyToken: `${protocol}://${iss}/publickey` with no Accept header, the body used raw as the PEM.
    decoded = jwt.decode(token, options={"verify_signature": False})
    assert decoded["iss"] == "hat.test" and "://" not in decoded["iss"]
    response = await client.get("/publickey", skip_auto_headers=["Accept"])
    assert response.status == 200
    payload = jwt.decode(token, await response.text(), algorithms=["RS256"], options={"verify_aud": False})
    assert payload["iss"] == "hat.test"
    # Then its own credentials, as headers, against the HAT named by iss.
    plug = await plug_access_token(client, *PLATFORM, as_headers=True)
    ids = await get_or_create_model(client, plug, FACEBOOK_EVENTS)
    assert set(ids) == {"id", "name", "place_name", "place_location_city"}
    records = [{"record": {"name": "fb event 1"},
                "values": [{"value": "1234", "field": {"id": ids["id"], "name": "id"}},
                           {"value": "London", "field": {"id": ids["place_location_city"], "name": "city"}}]}]  # fmt: skip
    response = await client.post(
        "/data/record/values", data=json.dumps(records), headers={**SDK_HEADERS, "X-Auth-Token": plug}
    )
    assert response.status == 201
    # A value naming a field without its id is refused whole, as the original refused it.
    bad = [{"record": {"name": "x"}, "values": [{"value": "v", "field": {"name": "nick"}}]}]
    response = await client.post(
        "/data/record/values", data=json.dumps(bad), headers={**SDK_HEADERS, "X-Auth-Token": plug}
    )
    assert response.status == 400
    assert set(await response.json()) == {"message", "cause"}
