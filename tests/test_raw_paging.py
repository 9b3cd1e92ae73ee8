"""Pages that cost what they hold: the per-table record index (data_table_records) follows every
write and delete, and the page queries reach their records through it, never through the whole
table. Plans are checked by the rows they touch (EXPLAIN ANALYZE), never by time."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from hatd.bundles.repository import Q as BUNDLES
from hatd.raw.repository import Q as RAW
from tests.conftest import OWNER, login
from tests.raw_helpers import KITCHEN, NEST, call, created, fields_by_name, new_table, ok, tables_by_name, walk


async def _records_of(client: TestClient[Any, Any], token: str, table_id: int) -> list[str]:
    return [item["name"] for item in await ok(client, token, f"/data/table/{table_id}/values")]


async def _index(database: str) -> set[tuple[int, int]]:
    conn = await asyncpg.connect(database)
    try:
        return {(r["table_id"], r["record_id"]) for r in await conn.fetch("SELECT * FROM data_table_records")}
    finally:
        await conn.close()


async def test_a_record_leaves_a_table_with_its_last_value_there(client: TestClient[Any, Any], database: str) -> None:
    token = await login(client, *OWNER)
    kitchen = await new_table(client, token)
    tables, f = tables_by_name(kitchen), fields_by_name(kitchen)
    [item] = await created(client, token, "/data/record/values", [{
        "record": {"name": "r1"},
        "values": [
            {"field": {"id": f["tableTestField"]}, "value": "a"},
            {"field": {"id": f["tableTestField2"]}, "value": "b"},
            {"field": {"id": f["tableTestField3"]}, "value": "sub"},
        ],
    }])  # fmt: skip
    record = item["record"]["id"]
    values = {v["field"]["id"]: v["id"] for v in item["values"]}
    sub = tables["kitchenElectricity"]
    assert await _index(database) == {(kitchen["id"], record), (sub, record)}
    assert await _records_of(client, token, sub) == ["r1"]

    # One of two values in the kitchen goes: the record stays there.
    assert (await call(client, "DELETE", f"/data/value/{values[f['tableTestField']]}", token))[0] == 200
    assert await _index(database) == {(kitchen["id"], record), (sub, record)}
    # Its only value in the subtable goes: it leaves the subtable, and still shows in the kitchen's tree.
    assert (await call(client, "DELETE", f"/data/value/{values[f['tableTestField3']]}", token))[0] == 200
    assert await _index(database) == {(kitchen["id"], record)}
    assert await _records_of(client, token, sub) == []
    assert await _records_of(client, token, kitchen["id"]) == ["r1"]
    # The field holding its last kitchen value goes: it leaves the kitchen too.
    assert (await call(client, "DELETE", f"/data/field/{f['tableTestField2']}", token))[0] == 200
    assert await _index(database) == set()
    assert await _records_of(client, token, kitchen["id"]) == []


async def test_deleting_a_record_or_a_table_empties_the_index(client: TestClient[Any, Any], database: str) -> None:
    token = await login(client, *OWNER)
    kitchen = await new_table(client, token)
    nest = await new_table(client, token, NEST)
    f = fields_by_name(kitchen)
    answer = await created(client, token, "/data/record/values", [
        {"record": {"name": f"r{i}"}, "values": [
            {"field": {"id": f["tableTestField"]}, "value": str(i)},
            {"field": {"id": nest["fields"][0]["id"]}, "value": str(i)},
        ]}
        for i in range(3)
    ])  # fmt: skip
    ids = [item["record"]["id"] for item in answer]
    assert len(await _index(database)) == 6
    assert (await call(client, "DELETE", f"/data/record/{ids[0]}", token))[0] == 200
    assert await _index(database) == {(t, r) for t in (kitchen["id"], nest["id"]) for r in ids[1:]}
    assert (await call(client, "DELETE", f"/data/table/{kitchen['id']}", token))[0] == 200
    assert await _index(database) == {(nest["id"], r) for r in ids[1:]}
    assert await _records_of(client, token, nest["id"]) == ["r2", "r1"]


async def test_a_table_linked_later_brings_its_records_into_the_tree(client: TestClient[Any, Any]) -> None:
    token = await login(client, *OWNER)
    kitchen = await new_table(client, token)
    nest = await new_table(client, token, NEST)
    f = fields_by_name(kitchen)
    await created(client, token, "/data/record/values", [
        {"record": {"name": "kitchen-only", "lastUpdated": "2020-01-01T00:00:00Z"},
         "values": [{"field": {"id": f["tableTestField"]}, "value": "k"}]},
        {"record": {"name": "nest-only", "lastUpdated": "2021-01-01T00:00:00Z"},
         "values": [{"field": {"id": nest["fields"][0]["id"]}, "value": "n"}]},
    ])  # fmt: skip
    assert await _records_of(client, token, kitchen["id"]) == ["kitchen-only"]
    assert (await call(client, "POST", f"/data/table/{kitchen['id']}/table/{nest['id']}", token, {}))[0] == 201
    assert await _records_of(client, token, kitchen["id"]) == ["nest-only", "kitchen-only"]


async def test_pages_over_a_tree_list_each_record_once_newest_first(client: TestClient[Any, Any]) -> None:
    token = await login(client, *OWNER)
    kitchen = await new_table(client, token)
    f = fields_by_name(kitchen)
    # Records holding values in the table, its subtable, or both; some at the same time (ties by id).
    body = []
    for i in range(23):
        held = (
            [f["tableTestField"]]
            if i % 3 == 0
            else [f["tableTestField3"]]
            if i % 3 == 1
            else [f["tableTestField2"], f["tableTestField4"]]
        )
        body.append(
            {
                "record": {"name": f"r{i}", "lastUpdated": f"2020-01-{1 + i // 2:02d}T00:00:00Z"},
                "values": [{"field": {"id": fid}, "value": str(i)} for fid in held],
            }
        )
    answer = await created(client, token, "/data/record/values", body)
    expected = [
        item["record"]["name"]
        for item in sorted(answer, key=lambda item: (item["record"]["lastUpdated"], item["record"]["id"]), reverse=True)
    ]
    for limit in (1, 4, 23, 50):
        pages = await walk(client, token, f"/data/table/{kitchen['id']}/values?limit={limit}")
        assert [item["name"] for body_, _ in pages for item in body_] == expected
        assert all(len(body_) <= limit for body_, _ in pages)
    # A window, paged.
    pages = await walk(
        client,
        token,
        f"/data/table/{kitchen['id']}/values?limit=2&starttime=2020-01-03T00:00:00Z&endtime=2020-01-05T00:00:00Z",
    )
    assert [item["name"] for body_, _ in pages for item in body_] == ["r9", "r8", "r7", "r6", "r5", "r4"]


# -- plans: a page touches what it holds ------------------------------------------------------


def _scans(plan: Any, relation: str) -> list[dict[str, Any]]:
    """Every scan node of `relation` in an EXPLAIN (FORMAT JSON) plan."""
    found = []
    if plan.get("Relation Name") == relation:
        found.append(plan)
    for child in plan.get("Plans", []):
        found += _scans(child, relation)
    return found


def _touched(scans: list[dict[str, Any]]) -> float:
    """The rows the scans read: those they gave and those their filter threw away."""
    return sum((s["Actual Rows"] + s.get("Rows Removed by Filter", 0)) * s["Actual Loops"] for s in scans)


async def _explain(conn: asyncpg.Connection, query: str, *args: Any) -> Any:
    """The executed plan of `query` as a generic plan: the one a prepared statement settles on
    after a few runs, where a "$1 IS NULL OR ..." bound cannot reach the index."""
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    statement = await conn.prepare(f"EXPLAIN (ANALYZE, FORMAT JSON) {query.rstrip().rstrip(';')}")
    [[row]] = await statement.fetch(*args)
    return json.loads(row)[0]["Plan"] if isinstance(row, str) else row[0]["Plan"]


async def _fill(conn: asyncpg.Connection, table_id: int, field_ids: list[int], records: int) -> None:
    await conn.execute(
        "INSERT INTO data_records (name, last_updated) SELECT 'r' || i, '2020-01-01'::timestamptz + i * interval '1 minute' "
        "FROM generate_series(1, $1) AS i",
        records,
    )
    await conn.execute(
        "INSERT INTO data_values (value, field_id, record_id) SELECT r.id::text, f, r.id "
        "FROM data_records r CROSS JOIN unnest($1::bigint[]) AS f",
        field_ids,
    )


def _page_args(item_id: int) -> list[tuple[Any, ...]]:
    """A page query's arguments for the pages every plan test looks at: the latest page, a page
    deep in the data, and a window (the rows _fill writes are a minute apart from 2020-01-01)."""
    at = dt.datetime.fromisoformat
    return [
        (item_id, None, None, None, None, 11),
        (item_id, None, None, at("2020-01-01T10:00:00+00:00"), 10**6, 11),
        (item_id, at("2020-01-01T01:00:00+00:00"), at("2020-01-02T00:00:00+00:00"), None, None, 11),
    ]


async def test_a_table_page_reads_only_its_records_from_the_index(client: TestClient[Any, Any], database: str) -> None:
    token = await login(client, *OWNER)
    kitchen = await new_table(client, token, KITCHEN)
    f = fields_by_name(kitchen)
    conn = await asyncpg.connect(database)
    try:
        await _fill(conn, kitchen["id"], [f["tableTestField"], f["tableTestField3"]], 3000)
        await conn.execute("ANALYZE")
        for args in _page_args(kitchen["id"]):
            plan = await _explain(conn, RAW.table_record_page, *args)
            scans = _scans(plan, "data_table_records")
            assert scans, plan
            # Two tables in the tree, each giving at most a page (11 rows) from the index.
            assert _touched(scans) <= 2 * 11, scans
            assert not _scans(plan, "data_values"), plan
    finally:
        await conn.close()


async def test_a_bundle_page_reads_only_its_records_from_the_index(client: TestClient[Any, Any], database: str) -> None:
    token = await login(client, *OWNER)
    kitchen = await new_table(client, token, KITCHEN)
    f = fields_by_name(kitchen)
    bundle = await created(client, token, "/bundles/contextless", {
        "name": "kitchen", "bundleTable": [{"name": "kitchen", "table": {"id": kitchen["id"]}}],
    })  # fmt: skip
    conn = await asyncpg.connect(database)
    try:
        await _fill(conn, kitchen["id"], [f["tableTestField"], f["tableTestField3"]], 3000)
        await conn.execute("ANALYZE")
        plan = await _explain(conn, BUNDLES.bundle_record_page, bundle["id"], None, None, 10, None, None, None)
        scans = _scans(plan, "data_table_records")
        assert scans, plan
        assert _touched(scans) <= 2 * 11, scans
    finally:
        await conn.close()


# -- streamed pages ---------------------------------------------------------------------------


async def test_a_page_longer_than_a_chunk_is_whole_and_in_order(client: TestClient[Any, Any], monkeypatch: Any) -> None:
    """Pages are written a chunk of records at a time: with chunks of 3, a page of 10 is the same
    array as the pages of 1 that walk it, and a record deleted is simply not there."""
    import hatd.jsontext

    monkeypatch.setattr(hatd.jsontext, "CHUNK", 3)
    monkeypatch.setattr(hatd.jsontext.array, "__defaults__", (3,))
    token = await login(client, *OWNER)
    kitchen = await new_table(client, token)
    f = fields_by_name(kitchen)
    answer = await created(client, token, "/data/record/values", [
        {"record": {"name": f"r{i}", "lastUpdated": f"2020-01-{i + 1:02d}T00:00:00Z"},
         "values": [{"field": {"id": f["tableTestField"]}, "value": str(i)},
                    {"field": {"id": f["tableTestField3"]}, "value": str(i)}]}
        for i in range(10)
    ])  # fmt: skip
    response = await client.get(f"/data/table/{kitchen['id']}/values?limit=10", headers={"X-Auth-Token": token})
    assert response.status == 200
    assert response.headers.get("Transfer-Encoding") == "chunked"
    whole = await response.json()
    walked = [item for body, _ in await walk(client, token, f"/data/table/{kitchen['id']}/values?limit=1")
              for item in body]  # fmt: skip
    assert whole == walked
    assert [item["name"] for item in whole] == [f"r{i}" for i in reversed(range(10))]
    assert (
        await client.get(f"/data/table/{kitchen['id']}/values?limit=0", headers={"X-Auth-Token": token})
    ).status == 200
    # An empty page is [] and a HEAD has no body.
    assert await ok(client, token, f"/data/table/{kitchen['id']}/values?endtime=2000-01-01T00:00:00Z") == []
    head = await client.head(f"/data/table/{kitchen['id']}/values", headers={"X-Auth-Token": token})
    assert head.status == 200 and await head.read() == b""
    assert answer


async def test_a_failure_while_writing_cuts_the_answer_short(client: TestClient[Any, Any], monkeypatch: Any) -> None:
    """Once a streamed page has begun, a failure cannot become an error status: the connection is
    closed, so the client sees a broken answer, never a complete-looking wrong one."""
    import aiohttp

    from hatd.raw import repository

    token = await login(client, *OWNER)
    kitchen = await new_table(client, token)
    f = fields_by_name(kitchen)
    await created(client, token, "/data/record/values", [
        {"record": {"name": f"r{i}"}, "values": [{"field": {"id": f["tableTestField"]}, "value": str(i)}]}
        for i in range(3)
    ])  # fmt: skip

    def broken(*args: Any, **kwargs: Any) -> Any:
        async def parts() -> Any:
            yield "["
            raise RuntimeError("the database went away")

        return parts()

    monkeypatch.setattr(repository, "records_json", broken)
    # Straight through aiohttp, past the test client's check of every answer against its schema.
    url = client.make_url(f"/data/table/{kitchen['id']}/values")
    async with aiohttp.ClientSession() as session, session.get(url, headers={"X-Auth-Token": token}) as response:
        assert response.status == 200
        try:
            body = await response.read()
        except aiohttp.ClientPayloadError:
            return
    raise AssertionError(f"a cut answer was delivered as if whole: {body!r}")


async def test_contextual_values_page_by_entity(client: TestClient[Any, Any]) -> None:
    token = await login(client, *OWNER)
    things = [await created(client, token, "/thing", {"name": f"thing {i}"}) for i in range(5)]
    await created(client, token, "/person", {"name": "Me", "personId": "me.hat"})
    bundle = await created(client, token, "/bundles/context", {"name": "things", "entities": [{"entityKind": "thing"}]})
    path = f"/bundles/context/{bundle['id']}/values"
    whole = await ok(client, token, path)
    assert [item["thing"]["name"] for item in whole] == [t["name"] for t in things]
    pages = await walk(client, token, path + "?limit=2")
    assert [len(body) for body, _ in pages] == [2, 2, 1]
    assert [item for body, _ in pages for item in body] == whole
    # A cursor belongs to its bundle.
    other = await created(client, token, "/bundles/context", {"name": "all", "entities": [{"entityKind": "person"}]})
    cursor = pages[0][1].split("cursor=")[1].split(">")[0]
    status, body = await call(client, "GET", f"/bundles/context/{other['id']}/values?cursor={cursor}", token)
    assert status == 400 and "cursor" in body["cause"]
    status, body = await call(client, "GET", path + "?limit=-1", token)
    assert status == 400


async def test_a_dataset_page_reads_only_the_tables_of_its_fields(client: TestClient[Any, Any], database: str) -> None:
    """A dataset naming a subtable's field pages through that subtable's records, not through the
    whole parent table's, and probes values record by record, never scanning them all."""
    token = await login(client, *OWNER)
    kitchen = await new_table(client, token)
    f = fields_by_name(kitchen)
    sources = [{"source": "fibaro", "datasets": [{
        "name": "kitchen", "description": "d",
        "fields": [{"name": "kitchenElectricity", "fields": [{"name": "tableTestField3"}]}]}]}]  # fmt: skip
    bundle = await created(client, token, "/bundles/contextless", {"name": "sub only", "sources": sources})
    conn = await asyncpg.connect(database)
    try:
        await _fill(conn, kitchen["id"], [f["tableTestField"]], 3000)
        await conn.execute(
            "INSERT INTO data_values (value, field_id, record_id) SELECT r.id::text, $1, r.id FROM data_records r "
            "WHERE r.id % 150 = 0",
            f["tableTestField3"],
        )
        await conn.execute("ANALYZE")
        plan = await _explain(conn, BUNDLES.bundle_record_page, bundle["id"], None, None, 10, None, None, None)
        assert _touched(_scans(plan, "data_table_records")) <= 11, plan
        assert not [s for s in _scans(plan, "data_values") if s["Node Type"] == "Seq Scan"], plan
    finally:
        await conn.close()
    pages = await walk(client, token, f"/bundles/contextless/{bundle['id']}/values?limit=7")
    assert sum(len(body["dataGroups"]["fibaro"][0]["data"]) for body, _ in pages) == 20


async def _two(database: str) -> tuple[asyncpg.Connection, asyncpg.Connection]:
    return await asyncpg.connect(database), await asyncpg.connect(database)


async def test_a_value_written_while_the_records_last_one_there_is_deleted_keeps_it_listed(
    client: TestClient[Any, Any], database: str
) -> None:
    token = await login(client, *OWNER)
    kitchen = await new_table(client, token)
    f = fields_by_name(kitchen)
    [item] = await created(client, token, "/data/record/values", [
        {"record": {"name": "r1"}, "values": [{"field": {"id": f["tableTestField"]}, "value": "a"}]}])  # fmt: skip
    record, value = item["record"]["id"], item["values"][0]["id"]
    writer, deleter = await _two(database)
    try:
        async with writer.transaction():
            # A new value of the record in the same table, as POST /data/record/{id}/values writes it.
            await writer.execute(
                "INSERT INTO data_values (value, field_id, record_id) VALUES ('b', $1, $2)",
                f["tableTestField2"],
                record,
            )
            # Meanwhile its old value there is deleted: the delete waits for the writer.
            deleting = asyncio.ensure_future(deleter.execute("DELETE FROM data_values WHERE id = $1", value))
            await asyncio.sleep(0.2)
            assert not deleting.done()
        await deleting
    finally:
        await writer.close()
        await deleter.close()
    assert await _index(database) == {(kitchen["id"], record)}
    assert await _records_of(client, token, kitchen["id"]) == ["r1"]


async def test_two_deletes_of_a_records_last_values_there_unlist_it(
    client: TestClient[Any, Any], database: str
) -> None:
    token = await login(client, *OWNER)
    kitchen = await new_table(client, token)
    f = fields_by_name(kitchen)
    [item] = await created(client, token, "/data/record/values", [
        {"record": {"name": "r1"}, "values": [{"field": {"id": f["tableTestField"]}, "value": "a"},
                                              {"field": {"id": f["tableTestField2"]}, "value": "b"}]}])  # fmt: skip
    v1, v2 = (v["id"] for v in item["values"])
    one, two = await _two(database)
    try:
        async with one.transaction():
            await one.execute("DELETE FROM data_values WHERE id = $1", v1)
            other = asyncio.ensure_future(two.execute("DELETE FROM data_values WHERE id = $1", v2))
            await asyncio.sleep(0.2)
            assert not other.done()
        await other
    finally:
        await one.close()
        await two.close()
    assert await _index(database) == set()
    assert await _records_of(client, token, kitchen["id"]) == []


# -- field pages ------------------------------------------------------------------------------

FIELD_ORDER = """
SELECT coalesce(array_agg(v.id ORDER BY r.last_updated DESC, v.id DESC), '{}')
FROM data_values v JOIN data_records r ON r.id = v.record_id
WHERE v.field_id = $1 AND r.last_updated BETWEEN $2 AND $3
"""


async def test_field_pages_list_each_value_once_newest_record_first_and_ties_by_id(
    client: TestClient[Any, Any], database: str
) -> None:
    """Records sharing a time, each with several values of the field whose ids interleave with
    the others': every page size and window walks every value once, in the one order."""
    token = await login(client, *OWNER)
    kitchen = await new_table(client, token, KITCHEN)
    f = fields_by_name(kitchen)
    field, other = f["tableTestField"], f["tableTestField3"]
    times = ["2020-01-01T00:00:00Z"] * 4 + ["2020-01-02T00:00:00Z"] * 3 + ["2019-06-01T00:00:00Z"] * 2
    items = [
        {"record": {"name": f"r{i}", "lastUpdated": t}, "values": [{"value": f"{i}.0", "field": {"id": field}}]}
        for i, t in enumerate(times)
    ]
    records = [item["record"]["id"] for item in await created(client, token, "/data/record/values", items)]
    for round_ in (1, 2):  # more values, a record at a time, so ids interleave across records
        for i, record in enumerate(records):
            if i % 3 >= round_ - 1:
                values = [{"value": f"{i}.{round_}", "field": {"id": field}}, {"value": "x", "field": {"id": other}}]
                await created(client, token, f"/data/record/{record}/values", values)
    conn = await asyncpg.connect(database)
    try:
        for window in (("", ""), ("2019-12-31T00:00:00Z", "2020-01-01T00:00:00Z"), ("2020-01-01T00:00:00Z", "")):
            bounds = [
                dt.datetime.fromisoformat((w or default).replace("Z", "+00:00"))
                for w, default in zip(window, ("0002-01-01T00:00:00Z", "9998-01-01T00:00:00Z"), strict=True)
            ]
            expected = await conn.fetchval(FIELD_ORDER, field, *bounds)
            assert len(expected) > 5
            for limit in (1, 2, 3, 4, 5, 7, 100):
                path = f"/data/field/{field}/values?limit={limit}&starttime={window[0]}&endtime={window[1]}"
                pages = await walk(client, token, path)
                walked = [v["id"] for body, _ in pages for v in body.get("values", [])]
                assert walked == expected, (window, limit)
    finally:
        await conn.close()


async def test_a_field_page_reads_only_its_records_and_their_values(
    client: TestClient[Any, Any], database: str
) -> None:
    token = await login(client, *OWNER)
    kitchen = await new_table(client, token, KITCHEN)
    f = fields_by_name(kitchen)
    conn = await asyncpg.connect(database)
    try:
        await _fill(conn, kitchen["id"], [f["tableTestField"], f["tableTestField2"], f["tableTestField3"]], 3000)
        await conn.execute("ANALYZE")
        for args in _page_args(f["tableTestField"]):
            plan = await _explain(conn, RAW.field_value_page, *args)
            records, values = _scans(plan, "data_table_records"), _scans(plan, "data_values")
            assert records and values, plan
            # A page (11) of records and the records of its oldest time again, and their values (in
            # three fields each, which a lookup by record may read) out of 3,000 records' 9,000.
            assert _touched(records) <= 11 + 2, records
            assert _touched(values) <= 3 * (11 + 2), values
    finally:
        await conn.close()
