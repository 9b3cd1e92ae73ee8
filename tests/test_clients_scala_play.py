"""hat-client-scala-play (dataswift, 2.3.0 / 2.4.0-SNAPSHOT, 2017: the last v1-only version),
replayed against hatd: each HatClient call in its own shape (Accept: application/json, credentials
as headers, dates as yyyy-MM-dd'T'HH:mm:ssZ with a +HHMM offset), the exact status it demands, and
the fields its Play-JSON formats require of the answer (a missing one fails the parse)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import jwt

from tests.conftest import OWNER, PLATFORM

JSON = {"Accept": "application/json"}


def _joda(moment: dt.datetime) -> str:
    """LocalDateTimeMarshalling's writer: yyyy-MM-dd'T'HH:mm:ssZ, the offset without a colon."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S%z")


def _reads_date(value: Any) -> None:
    """Joda's dateTimeParser: an ISO-8601 string (or epoch millis)."""
    assert isinstance(value, str | int), value
    if isinstance(value, str):
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def api_data_table(table: dict[str, Any]) -> None:
    assert isinstance(table["name"], str) and isinstance(table["source"], str)
    for field in table.get("fields") or []:
        api_data_field(field)
    for sub in table.get("subTables") or []:
        api_data_table(sub)


def api_data_field(field: dict[str, Any]) -> None:
    assert isinstance(field["name"], str)
    for value in field.get("values") or []:
        assert isinstance(value["value"], str)  # a JSON number fails the parse
        for key in ("dateCreated", "lastUpdated"):
            if key in value:
                _reads_date(value[key])


def api_data_record(record: dict[str, Any]) -> None:
    assert isinstance(record["name"], str)
    for table in record.get("tables") or []:
        api_data_table(table)


def api_data_debit(debit: dict[str, Any]) -> None:
    assert isinstance(debit["name"], str)
    _reads_date(debit["startDate"])
    _reads_date(debit["endDate"])
    assert isinstance(debit["rolling"], bool) and isinstance(debit["sell"], bool)
    assert isinstance(debit["price"], int | float) and not isinstance(debit["price"], bool)
    assert debit["kind"] in ("contextless", "contextual")
    if debit.get("bundleContextless") is not None:
        assert isinstance(debit["bundleContextless"]["name"], str)
    assert debit.get("bundleContextual") is None or isinstance(debit["bundleContextual"]["name"], str)


async def authenticate_for_token(client: Any, username: str, password: str) -> str:
    response = await client.get("/users/access_token", headers={**JSON, "username": username, "password": password})
    assert response.status == 200
    token: str = (await response.json())["accessToken"]
    return token


async def test_the_scala_client_sets_up_an_app_and_reads_its_debit(client):
    # retrievePublicKey: Accept text/plain, 200, PEM.
    response = await client.get("/publickey", headers={"Accept": "text/plain"})
    assert response.status == 200
    assert (await response.text()).startswith("-----BEGIN PUBLIC KEY-----")

    platform = await authenticate_for_token(client, *PLATFORM)
    # update: 200.
    response = await client.get("/system/update", headers={**JSON, "X-Auth-Token": platform})
    assert response.status == 200
    assert (await response.json())["message"] == "Database updated"

    # createAccount: 201 (body ignored); enableAccount: PUT with an empty text/plain body, 200.
    user = {"userId": "a08ef76a-ca8e-4505-ab41-d3c740d6f414", "email": "dex@example.org", "pass": "pa55word",
            "name": "dex", "role": "dataDebit"}  # fmt: skip
    response = await client.post("/users/user", json=user, headers={**JSON, "X-Auth-Token": platform})
    assert response.status == 201
    response = await client.put(
        f"/users/user/{user['userId']}/enable",
        data=b"",
        headers={**JSON, "X-Auth-Token": platform, "Content-Type": "text/plain; charset=utf-8"},
    )
    assert response.status == 200

    # createDataTable: 201 with the created table; dataTableByName: 200, 404 when there is none.
    owner = await authenticate_for_token(client, *OWNER)
    table = {"name": "posts", "source": "facebook", "fields": [{"name": "message"}, {"name": "story"}],
             "subTables": [{"name": "place", "source": "facebook", "fields": [{"name": "name"}]}]}  # fmt: skip
    response = await client.post("/data/table", json=table, headers={**JSON, "X-Auth-Token": platform})
    assert response.status == 201
    made = await response.json()
    api_data_table(made)
    response = await client.get(
        "/data/table", params={"name": "nope", "source": "facebook"}, headers={**JSON, "X-Auth-Token": platform}
    )
    assert response.status == 404
    response = await client.get(
        "/data/table", params={"name": "posts", "source": "facebook"}, headers={**JSON, "X-Auth-Token": platform}
    )
    assert response.status == 200
    api_data_table(await response.json())
    message, place = made["fields"][0], made["subTables"][0]["fields"][0]

    # createBatchRecords: 201, Seq[ApiRecordValues]; the record's own time in the Joda form.
    when = dt.datetime(2017, 7, 13, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    batch = [{"record": {"name": f"post{i}", "lastUpdated": _joda(when + dt.timedelta(minutes=i))},
              "values": [{"field": {"id": message["id"], "name": "message"}, "value": f"hello {i}"},
                         {"field": {"id": place["id"], "name": "name"}, "value": "Home"}]}
             for i in range(3)]  # fmt: skip
    response = await client.post("/data/record/values", json=batch, headers={**JSON, "X-Auth-Token": platform})
    assert response.status == 201
    posted = await response.json()
    for item in posted:
        api_data_record(item["record"])
        for value in item["values"]:
            assert isinstance(value["value"], str) and isinstance(value["field"]["name"], str)
    assert posted[0]["record"]["lastUpdated"] == "2017-07-13T09:00:00.000Z"

    # proposeDataDebit (2.4.0-SNAPSHOT): the later dialect, 201 parsed as ApiDataDebit.
    app = await authenticate_for_token(client, "dex@example.org", "pa55word")
    starts = dt.datetime.now(dt.timezone(dt.timedelta(hours=1))) - dt.timedelta(hours=1)
    proposal = {
        "name": "Offer X", "startDate": _joda(starts), "endDate": _joda(starts + dt.timedelta(days=31)),
        "rolling": False, "sell": True, "price": 0.0, "kind": "contextless",
        "bundleContextless": {"name": "Bundle for Offer Offer X", "sources": [{"source": "facebook", "datasets": [
            {"name": "posts", "description": "Posts",
             "fields": [{"name": "message", "description": "Message"},
                        {"name": "place", "description": "Place", "fields": [{"name": "name", "description": "Name"}]},
                        {"name": "not here yet", "description": "passed over, as the original did"}]}]}]},
    }  # fmt: skip
    response = await client.post("/dataDebit/propose", json=proposal, headers={**JSON, "X-Auth-Token": app})
    assert response.status == 201, await response.text()
    debit = await response.json()
    api_data_debit(debit)
    assert debit["enabled"] is False
    # The owner sees the bundle in the dialect it was made in, descriptions and all.
    response = await client.get(f"/dataDebit/{debit['key']}", headers={**JSON, "X-Auth-Token": owner})
    mine = await response.json()
    assert mine["bundleContextless"]["sources"] == proposal["bundleContextless"]["sources"]
    assert (await client.put(f"/dataDebit/{debit['key']}/enable", headers={"X-Auth-Token": owner})).status == 200

    # dataDebitValues: no query at all, 200, parsed as ApiDataDebitOut.
    response = await client.get(f"/dataDebit/{debit['key']}/values", headers={**JSON, "X-Auth-Token": app})
    assert response.status == 200
    out = await response.json()
    api_data_debit(out)
    bundle = out["bundleContextless"]
    assert isinstance(bundle["id"], int) and isinstance(bundle["name"], str)
    [dataset] = bundle["dataGroups"]["facebook"]
    assert dataset["name"] == "posts"
    api_data_table(dataset["table"])
    for record in dataset["data"]:
        api_data_record(record)
    # Only the fields the dataset named: message, and place's name; never story.
    assert [
        (record["name"], [(f["name"], f["values"][0]["value"]) for f in record["tables"][0]["fields"]],
         [(f["name"], f["values"][0]["value"]) for f in record["tables"][0]["subTables"][0]["fields"]])
        for record in dataset["data"]
    ] == [(f"post{i}", [("message", f"hello {i}")], [("name", "Home")]) for i in (2, 1, 0)]  # fmt: skip

    # The token's claims the client's verifier reads.
    claims = jwt.decode(app, options={"verify_signature": False})
    assert (claims["iss"], claims["resource"], claims["accessScope"]) == ("hat.test", "hat.test", "dataDebit")


async def test_a_dataset_that_names_no_existing_field_is_refused(client, owner_token):
    made = await client.post("/data/table", json={"name": "posts", "source": "facebook", "fields": [{"name": "m"}]},
                             headers={"X-Auth-Token": owner_token})  # fmt: skip
    assert made.status == 201
    for sources, cause in [
        ([{"source": "facebook", "datasets": [{"name": "posts", "description": "", "fields": [{"name": "x"}]}]}],
         "sources.0.datasets.0.fields: none of the fields exist in table 'posts' of 'facebook'"),
        ([{"source": "twitter", "datasets": [{"name": "posts", "description": "", "fields": [{"name": "m"}]}]}],
         "sources.0.datasets.0: there is no table named 'posts' with source 'twitter'"),
        ([{"source": "facebook", "datasets": [{"name": "posts", "description": "", "fields": []}]}],
         "sources.0.datasets.0.fields: Length must be between 1 and 1000."),
    ]:  # fmt: skip
        response = await client.post(
            "/bundles/contextless", json={"name": "b", "sources": sources}, headers={"X-Auth-Token": owner_token}
        )
        assert response.status == 400
        assert (await response.json())["cause"] == cause
    listed = await client.get("/dataDebit", headers={"X-Auth-Token": owner_token})
    assert await listed.json() == []
