"""Raw data at its edges: shared subtables, microsecond-equal times across pages, tokens in the
query, times at the ends of the calendar, deep nesting, huge bad batches, and races with deletes."""

from __future__ import annotations

import asyncio
import json
import re

import asyncpg
import pytest

from hatd.state import SETTINGS
from tests.conftest import OWNER, auth, login
from tests.raw_helpers import NEST, call, created, fields_by_name, new_record, new_table, ok, walk


async def test_deleting_a_table_keeps_a_subtable_another_table_holds(client, owner_token):
    a = await new_table(
        client,
        owner_token,
        {"name": "A", "source": "s", "subTables": [{"name": "S", "source": "s", "fields": [{"name": "fs"}]}]},
    )
    b = await new_table(client, owner_token, {"name": "B", "source": "s", "fields": [{"name": "fb"}]})
    shared = a["subTables"][0]
    await created(client, owner_token, f"/data/table/{b['id']}/table/{shared['id']}", None)
    record = await new_record(client, owner_token)
    values = [
        {"value": "in S", "field": {"id": shared["fields"][0]["id"]}},
        {"value": "in B", "field": {"id": b["fields"][0]["id"]}},
    ]
    await created(client, owner_token, f"/data/record/{record['id']}/values", values)
    assert (await call(client, "DELETE", f"/data/table/{a['id']}", owner_token))[0] == 200
    tree = await ok(client, owner_token, f"/data/table/{b['id']}")
    assert [sub["name"] for sub in tree["subTables"]] == ["S"]
    field = await ok(client, owner_token, f"/data/field/{shared['fields'][0]['id']}/values")
    assert [v["value"] for v in field["values"]] == ["in S"]
    assert (await call(client, "GET", f"/data/table/{a['id']}", owner_token))[0] == 404


async def test_records_with_the_same_microsecond_are_each_paged_once(make_client):
    client = await make_client(values_limit=1)
    token = await login(client, *OWNER)
    table = await new_table(client, token, NEST)
    field = table["fields"][0]["id"]
    # 2004-03-03T02:01:25.576089: a time that a float of microseconds rounds one microsecond early.
    items = [
        {
            "record": {"name": name, "lastUpdated": "2004-03-03T02:01:25.576089Z"},
            "values": [{"value": name, "field": {"id": field}}],
        }
        for name in ("a", "b", "c")
    ]
    await created(client, token, "/data/record/values", items)
    pages = await walk(client, token, f"/data/table/{table['id']}/values")
    assert sorted(item["name"] for body, _ in pages for item in body) == ["a", "b", "c"]


async def test_the_token_may_travel_in_the_query_of_reads_and_stays_out_of_links(make_client):
    client = await make_client(values_limit=1)
    token = await login(client, *OWNER)
    table = await new_table(client, token, NEST)
    for name in ("a", "b"):
        record = await new_record(client, token, name)
        await created(
            client,
            token,
            f"/data/record/{record['id']}/values",
            [{"value": name, "field": {"id": table["fields"][0]["id"]}}],
        )
    response = await client.get(f"/data/table/{table['id']}/values", params={"access_token": token})
    assert response.status == 200
    assert token not in response.headers["Link"]
    assert re.fullmatch(
        r'<http://hat\.test/data/table/\d+/values\?cursor=[\w-]+>; rel="next"', response.headers["Link"]
    )
    found = await client.get(
        "/data/table", params={"name": NEST["name"], "source": NEST["source"], "X-Auth-Token": token}
    )
    assert found.status == 200
    assert (await client.get("/type/type", params={"name": "City", "access_token": token})).status == 200


async def test_a_cursor_of_another_read_is_400(make_client):
    client = await make_client(values_limit=1)
    token = await login(client, *OWNER)
    one, two = (
        await new_table(client, token, NEST),
        await new_table(client, token, {"name": "other", "source": "s", "fields": [{"name": "f"}]}),
    )
    for table in (one, one):
        record = await new_record(client, token)
        await created(
            client,
            token,
            f"/data/record/{record['id']}/values",
            [{"value": "v", "field": {"id": table["fields"][0]["id"]}}],
        )
    response = await client.get(f"/data/table/{one['id']}/values", headers={"X-Auth-Token": token})
    cursor = re.search(r"cursor=([\w-]+)", response.headers["Link"]).group(1)
    assert await call(client, "GET", f"/data/table/{two['id']}/values?cursor={cursor}", token) == (
        400,
        {"message": "Invalid request", "cause": "cursor: Not a cursor this HAT made for this read."},
    )


@pytest.mark.parametrize(
    "when",
    [
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
        -62135596800,
    ],
)
async def test_times_at_the_ends_of_the_calendar_are_400(client, owner_token, when):
    status, body = await call(client, "POST", "/data/record", owner_token, {"name": "r", "lastUpdated": when})
    assert (status, body) == (
        400,
        {
            "message": "Invalid request",
            "cause": "lastUpdated: Not a time: give unix seconds or ISO-8601, in the years 2 to 9998.",
        },
    )
    table = await new_table(client, owner_token, NEST)
    status, body = await call(
        client, "GET", f"/data/table/{table['id']}/values?starttime={when}".replace("+", "%2B"), owner_token
    )
    assert status == 400


async def test_a_reversed_time_window_is_400(client, owner_token):
    table = await new_table(client, owner_token, NEST)
    assert await call(
        client, "GET", f"/data/table/{table['id']}/values?starttime=2030-01-01&endtime=2020-01-01", owner_token
    ) == (
        400,
        {"message": "Invalid request", "cause": "starttime: starttime is after endtime"},
    )


async def test_subtables_nested_hundreds_deep_are_400_not_500(client, owner_token):
    body: dict = {"name": "t0", "source": "deep"}
    for depth in range(1, 400):
        body = {"name": f"t{depth}", "source": "deep", "subTables": [body]}
    status, answer = await call(client, "POST", "/data/table", owner_token, body)
    assert status == 400
    assert answer["cause"] in ("The body nests too deep", "subTables: subTables may nest at most 32 deep")
    assert await call(client, "GET", "/data/sources", owner_token) == (200, [])


async def test_a_huge_batch_of_unknown_fields_gets_a_short_answer(client, owner_token):
    record = await new_record(client, owner_token)
    batch = [{"value": "v", "field": {"id": 10_000_000 + i}} for i in range(20_000)]
    status, answer = await call(client, "POST", f"/data/record/{record['id']}/values", owner_token, batch)
    assert status == 400
    assert len(answer["cause"]) < 1000
    assert answer["cause"].startswith("values.0: no field with id 10000000; values.1: no field with id 10000001;")
    assert answer["cause"].endswith("and 19990 more unknown field ids; nothing was stored")


async def _wait_until_blocked(conn: asyncpg.Connection, request: asyncio.Task[object]) -> None:
    """Returns once another session of this database waits on a lock (the request under test), so
    that a race is proved to have happened rather than slept for; fails if the request ends first
    or never waits (the race path did not run)."""
    for _ in range(1000):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
        )
        if waiting:
            return
        assert not request.done(), f"the request ended without waiting on the lock: {request.result()}"
        await asyncio.sleep(0.01)
    raise AssertionError("the request never waited on the lock")


async def test_a_field_added_to_a_table_being_deleted_is_404_not_500(client, owner_token):
    table = await new_table(client, owner_token, NEST)
    conn = await asyncpg.connect(client.app[SETTINGS].database_url)
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("DELETE FROM data_tables WHERE id = $1", table["id"])
        adding = asyncio.create_task(
            call(client, "POST", "/data/field", owner_token, {"name": "late", "tableId": table["id"]})
        )
        await _wait_until_blocked(conn, adding)  # the insert waits on the deleted row's lock
        await transaction.commit()
        status, answer = await adding
    finally:
        await conn.close()
    assert (status, answer) == (404, {"message": "Not found", "cause": f"There is no table with id {table['id']}"})


async def test_a_deadlock_is_a_409_that_changed_nothing(client, owner_token):
    """A real deadlock in PostgreSQL: another session holds field b and asks for field a, while
    the request's values (a, then b) hold a and wait for b. The other session waits 30 s before
    it looks for deadlocks and the request's session 1 s, so the request is the one undone."""
    table = await new_table(
        client, owner_token, {"name": "locks", "source": "deadlock", "fields": [{"name": "a"}, {"name": "b"}]}
    )
    a, b = (field["id"] for field in table["fields"])
    conn = await asyncpg.connect(client.app[SETTINGS].database_url)
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("SET LOCAL deadlock_timeout = '30s'")
        await conn.execute("SELECT 1 FROM data_fields WHERE id = $1 FOR UPDATE", b)
        body = {
            "record": {"name": "r"},
            "values": [{"value": "1", "field": {"id": a}}, {"value": "2", "field": {"id": b}}],
        }
        storing = asyncio.create_task(call(client, "POST", "/data/record/values", owner_token, body))
        await _wait_until_blocked(conn, storing)
        await conn.execute("SELECT 1 FROM data_fields WHERE id = $1 FOR UPDATE", a)  # the cycle closes here
        status, answer = await storing
        await transaction.rollback()
    finally:
        await conn.close()
    assert (status, answer) == (
        409,
        {"message": "Conflict", "cause": "The request collided with another one; nothing was stored; try again"},
    )
    for field in (a, b):
        assert (await ok(client, owner_token, f"/data/field/{field}/values")).get("values", []) == []
    conn = await asyncpg.connect(client.app[SETTINGS].database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM data_records") == 0
    finally:
        await conn.close()


async def test_records_with_values_whose_field_is_deleted_meanwhile_are_409_and_nothing_is_stored(client, owner_token):
    f = fields_by_name(await new_table(client, owner_token))
    kept, doomed = f["tableTestField"], f["tableTestField3"]
    before = await new_record(client, owner_token, "before")
    conn = await asyncpg.connect(client.app[SETTINGS].database_url)
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("DELETE FROM data_fields WHERE id = $1", doomed)
        body = [
            {"record": {"name": "r"}, "values": [{"value": "a", "field": {"id": kept}}]},
            {"record": {"name": "s"}, "values": [{"value": "b", "field": {"id": doomed}}]},
        ]
        writing = asyncio.create_task(call(client, "POST", "/data/record/values", owner_token, body))
        await asyncio.sleep(0.3)  # the field still exists for the request, whose copy waits on the row's lock
        await transaction.commit()
        status, answer = await writing
    finally:
        await conn.close()
    assert (status, answer) == (
        409,
        {"message": "Conflict", "cause": "A field or record of the batch was deleted meanwhile; nothing was stored"},
    )
    after = await new_record(client, owner_token, "after")
    for record_id in range(before["id"] + 1, after["id"]):
        assert (await call(client, "GET", f"/data/record/{record_id}", owner_token))[0] == 404
    assert "values" not in await ok(client, owner_token, f"/data/field/{kept}/values")  # none there


async def test_records_with_values_take_plain_and_unusual_items_alike(client, owner_token):
    """Plain items and ones the schema must look at (numbers, null times, unknown keys, no
    values) in one batch: the answer keeps the order and each value's text."""
    table = await new_table(client, owner_token, NEST)
    field = table["fields"][0]["id"]
    body = [
        {"record": {"name": "plain"}, "values": [{"value": "p", "field": {"id": field}}]},
        {
            "record": {"name": "unusual", "lastUpdated": None, "extra": 1},
            "values": [
                {"value": 1.5, "field": {"id": field, "name": "ignored"}, "lastUpdated": None},
                {"value": True, "field": {"id": field}, "other": [1]},
            ],
            "unknown": {"x": 1},
        },
        {"record": {"name": "no values", "lastUpdated": "2015-11-22T21:24:44Z"}},
        {"record": {"name": "plain again"}, "values": [{"value": "q", "field": {"id": field}}]},
    ]
    answer = await created(client, owner_token, "/data/record/values", body)
    assert {v["lastUpdated"] == v["dateCreated"] for item in answer for v in item["values"]} == {True}
    body[3]["values"].append({"value": "timed", "field": {"id": field}, "lastUpdated": "2010-01-01T00:00:00Z"})
    timed = await created(client, owner_token, "/data/record/values", body)
    assert [v["lastUpdated"] == v["dateCreated"] for item in timed for v in item["values"]] == [True] * 4 + [False]
    assert timed[3]["values"][1]["lastUpdated"] == "2010-01-01T00:00:00.000Z"
    assert [item["record"]["name"] for item in answer] == ["plain", "unusual", "no values", "plain again"]
    assert [[v["value"] for v in item["values"]] for item in answer] == [["p"], ["1.5", "true"], [], ["q"]]
    assert answer[2]["record"]["lastUpdated"] == "2015-11-22T21:24:44.000Z"
    ids = [item["record"]["id"] for item in answer]
    assert ids == sorted(ids)
    values = [v for item in answer for v in item["values"]]
    assert [v["id"] for v in values] == sorted(v["id"] for v in values)


# What the database's own functions write of records and their values (the read-back the answer
# of POST /data/record/values was, before it was written from the batch): the answer must stay
# byte for byte this.
STORED_RECORDS_JSON = """
SELECT coalesce(json_agg(json_build_object(
           'record', data_record_json(r), 'values', coalesce(g.vals, '[]'::json)) ORDER BY r.id), '[]')::text
FROM data_records r
LEFT JOIN LATERAL (
    SELECT json_agg(json_build_object(
               'id', v.id, 'value', v.value,
               'dateCreated', hat_time(v.date_created), 'lastUpdated', hat_time(v.last_updated),
               'field', json_build_object('id', f.id, 'tableId', f.table_id, 'name', f.name)) ORDER BY v.id) AS vals
    FROM data_values v JOIN data_fields f ON f.id = v.field_id
    WHERE v.record_id = r.id
) AS g ON true
WHERE r.id = ANY ($1::bigint[])
"""

ODD_TEXTS = [
    'quote " backslash \\ slash /',
    "controls \b\f\n\r\t \x01\x1f \x7f",
    "unicode é ü 漢字 😀 \u2028\u2029 \ufeff",
    "",
    "x" * 5000,
]


async def test_records_with_values_answer_what_the_database_writes_of_them(client, owner_token):
    """The answer is written from the batch, not read back: it must be the very bytes the
    database's JSON functions give for the rows stored, whatever the texts, times and tables."""
    table = await new_table(client, owner_token, NEST)
    f = fields_by_name(table)
    odd = await new_table(
        client, owner_token, {"name": "odd", "source": "s", "fields": [{"name": 'name "with" \\ \n ü'}]}
    )
    field_ids = [*f.values(), odd["fields"][0]["id"]]
    times = [None, "2020-01-01T00:00:00.9996Z", 1.5, "1999-12-31T23:59:59.123456+05:30", "0002-01-01T00:00:00Z"]
    body = [
        {
            "record": {"name": text[:500], **({"lastUpdated": times[i]} if times[i] else {})},
            "values": [
                {"value": t, "field": {"id": field_ids[(i + n) % len(field_ids)]}, **({"lastUpdated": w} if w else {})}
                for n, (t, w) in enumerate(zip(ODD_TEXTS, times[i:] + times[:i], strict=True))
            ],
        }
        for i, text in enumerate(ODD_TEXTS)
    ]
    body.insert(2, {"record": {"name": "no values"}})
    untimed_body = [
        {
            "record": {"name": "plain"},
            "values": [{"value": t, "field": {"id": field_ids[n % len(field_ids)]}} for n, t in enumerate(ODD_TEXTS)],
        }
    ]
    for batch in (body, untimed_body, [body[2]]):
        response = await client.post("/data/record/values", data=json.dumps(batch), headers=auth(owner_token))
        text = await response.text()
        assert response.status == 201, text
        ids = [item["record"]["id"] for item in json.loads(text)]
        conn = await asyncpg.connect(client.app[SETTINGS].database_url)
        try:
            assert text == await conn.fetchval(STORED_RECORDS_JSON, ids)
        finally:
            await conn.close()
