"""Raw data values out: by table, by field, by record, and in pages (seed 002, "Retrieving Raw Data")."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import OWNER, auth, login
from tests.raw_helpers import (
    NEST,
    T,
    call,
    created,
    fields_by_name,
    new_record,
    new_table,
    not_found,
    ok,
    untimed,
    walk,
)

# Each record's values in the spec's kitchen (field name -> values), and the record's time.
ROWS: dict[str, tuple[str, dict[str, list[str]]]] = {
    "both": ("2014-06-01T00:00:00Z", {"tableTestField": ["both-1"]}),
    "old": ("2015-01-01T00:00:00Z", {"tableTestField": ["old-1"], "tableTestField2": ["old-2"]}),
    "mid": ("2016-01-01T00:00:00Z", {"tableTestField4": ["mid-4"]}),
    "new": (
        "2017-01-01T00:00:00Z",
        {"tableTestField": ["new-1"], "tableTestField2": ["new-2"], "tableTestField3": ["new-3a", "new-3b"]},
    ),
}


async def scene(client: TestClient[Any, Any], token: str) -> dict[str, Any]:
    """The kitchen, a nest table, records holding the ROWS (`both` also holds a nest value) and a
    record with no values: {"kitchen", "nest", "records": name -> record, "values": value id -> value,
    "answer": what POST /data/record/values answered}."""
    kitchen = await new_table(client, token)
    nest = await new_table(client, token, NEST)
    f = fields_by_name(kitchen)
    body = [
        {
            "record": {"name": name, "lastUpdated": time},
            "values": [{"field": {"id": f[field]}, "value": v} for field, values in held.items() for v in values],
        }
        for name, (time, held) in ROWS.items()
    ]
    body[0]["values"].append({"field": {"id": nest["fields"][0]["id"]}, "value": "21"})
    answer = await created(client, token, "/data/record/values", body)
    records = {item["record"]["name"]: item["record"] for item in answer}
    records["empty"] = await new_record(client, token, "empty", "2018-01-01T00:00:00Z")
    values = {v["id"]: v for item in answer for v in item["values"]}
    return {"kitchen": kitchen, "nest": nest, "records": records, "values": values, "answer": answer}


def with_values(table: dict[str, Any], record: dict[str, Any], answer: list[Any]) -> dict[str, Any]:
    """`table`'s tree with, at each field, the values of `record` (as POST /data/record/values answered them);
    a field with none is left out, as the original left it out, and every (sub)table stays."""
    mine = next(item["values"] for item in answer if item["record"]["id"] == record["id"])

    def values_at(field_id: int) -> list[dict[str, Any]]:
        return [
            {"id": v["id"], "value": v["value"], "dateCreated": T, "lastUpdated": T}
            for v in mine
            if v["field"]["id"] == field_id
        ]

    return {
        **untimed(table),
        "fields": [{**untimed(f), "values": values_at(f["id"])} for f in table["fields"] if values_at(f["id"])],
        "subTables": [with_values(sub, record, answer) for sub in table["subTables"]],
    }


def item(record: dict[str, Any], tables: list[dict[str, Any]]) -> dict[str, Any]:
    return {**untimed(record), "tables": tables}


# -- by table --------------------------------------------------------------------------------


async def test_table_values_are_one_item_per_record_newest_first(client, owner_token):
    s = await scene(client, owner_token)
    kitchen, records, answer = s["kitchen"], s["records"], s["answer"]
    for prefix in ("/data", ""):  # the spec spells the route both ways
        response = await client.get(f"{prefix}/table/{kitchen['id']}/values", headers=auth(owner_token))
        assert response.status == 200
        assert "Link" not in response.headers
        body = await response.json()
        assert untimed(body) == [
            item(records[name], [with_values(kitchen, records[name], answer)]) for name in ("new", "mid", "old", "both")
        ]
        assert [i["lastUpdated"] for i in body] == [
            "2017-01-01T00:00:00.000Z",
            "2016-01-01T00:00:00.000Z",
            "2015-01-01T00:00:00.000Z",
            "2014-06-01T00:00:00.000Z",
        ]
    # A subtable's values: only the records with values there, each with the subtable's tree.
    electricity = kitchen["subTables"][0]
    body = await ok(client, owner_token, f"/data/table/{electricity['id']}/values")
    assert untimed(body) == [
        item(records[name], [with_values(electricity, records[name], answer)]) for name in ("new", "mid")
    ]
    # A table without values has no items.
    pantry = await new_table(client, owner_token, {"name": "pantry", "source": "fibaro", "fields": [{"name": "jar"}]})
    assert await ok(client, owner_token, f"/data/table/{pantry['id']}/values") == []


@pytest.mark.parametrize("prefix", ["/data", ""])
async def test_values_of_an_unknown_table_are_404(client, owner_token, prefix):
    assert await call(client, "GET", f"{prefix}/table/999/values", owner_token) == (
        404,
        not_found("There is no table with id 999"),
    )


# -- by field --------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/data", ""])
async def test_field_values_are_the_field_with_its_values_newest_record_first(client, owner_token, prefix):
    s = await scene(client, owner_token)
    f = fields_by_name(s["kitchen"])
    response = await client.get(f"{prefix}/field/{f['tableTestField']}/values", headers=auth(owner_token))
    assert response.status == 200
    assert "Link" not in response.headers
    body = await response.json()
    by_value = {v["value"]: v["id"] for v in s["values"].values()}
    field = s["kitchen"]["fields"][0]
    assert untimed(body) == {
        **untimed(field),
        "values": [
            {"id": by_value[v], "value": v, "dateCreated": T, "lastUpdated": T} for v in ("new-1", "old-1", "both-1")
        ],
    }
    electricity_field = await ok(client, owner_token, f"{prefix}/field/{f['tableTestField3']}/values")
    assert [v["value"] for v in electricity_field["values"]] == ["new-3b", "new-3a"]


async def test_a_field_without_values_has_no_values_key(client, owner_token):
    # As the original: a client reading values[0] is never handed an empty list.
    kitchen = await new_table(client, owner_token)
    field = kitchen["fields"][1]
    assert await ok(client, owner_token, f"/data/field/{field['id']}/values") == field


@pytest.mark.parametrize("prefix", ["/data", ""])
async def test_values_of_an_unknown_field_are_404(client, owner_token, prefix):
    assert await call(client, "GET", f"{prefix}/field/999/values", owner_token) == (
        404,
        not_found("There is no field with id 999"),
    )


# -- by record -------------------------------------------------------------------------------


async def test_record_values_are_the_trees_holding_its_values(client, owner_token):
    s = await scene(client, owner_token)
    kitchen, nest, records, answer = s["kitchen"], s["nest"], s["records"], s["answer"]
    for prefix, name in [("/data", "new"), ("", "new"), ("/data", "mid"), ("", "old")]:
        body = await ok(client, owner_token, f"{prefix}/record/{records[name]['id']}/values")
        assert untimed(body) == item(records[name], [with_values(kitchen, records[name], answer)])
    # A record with values in two top-level tables: both trees, in the order of their ids.
    body = await ok(client, owner_token, f"/data/record/{records['both']['id']}/values")
    assert untimed(body) == item(
        records["both"], [with_values(kitchen, records["both"], answer), with_values(nest, records["both"], answer)]
    )
    assert await ok(client, owner_token, f"/record/{records['empty']['id']}/values") == {
        **records["empty"],
        "tables": [],
    }
    assert await call(client, "GET", "/data/record/999/values", owner_token) == (
        404,
        not_found("There is no record with id 999"),
    )


async def test_record_values_of_a_subtable_show_the_whole_tree_above_it(client, owner_token):
    kitchen = await new_table(client, owner_token)
    house = await new_table(client, owner_token, {"name": "house", "source": "home"})
    link = f"/data/table/{house['id']}/table/{kitchen['id']}"
    house = await created(client, owner_token, link, None)
    field = kitchen["subTables"][0]["fields"][0]["id"]
    answer = await created(
        client,
        owner_token,
        "/data/record/values",
        [{"record": {"name": "deep"}, "values": [{"field": {"id": field}, "value": "v"}]}],
    )
    record = answer[0]["record"]
    body = await ok(client, owner_token, f"/data/record/{record['id']}/values")
    assert untimed(body) == item(record, [with_values(house, record, answer)])


# -- paging ----------------------------------------------------------------------------------

TIMES = [1420070400 + day * 86400 for day in range(5)]  # 2015-01-01 .. 2015-01-05, one record a day


async def paged_client(make_client: Any) -> tuple[TestClient[Any, Any], str]:
    client = await make_client(values_limit=2, values_max_limit=5)
    return client, await login(client, *OWNER)


async def daily_records(
    client: TestClient[Any, Any], token: str, times: list[Any] = TIMES
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The kitchen and one record per time, each with one value in tableTestField; the records
    newest first."""
    kitchen = await new_table(client, token)
    field = kitchen["fields"][0]["id"]
    body = [
        {"record": {"name": f"day{i}", "lastUpdated": t}, "values": [{"field": {"id": field}, "value": f"day{i}"}]}
        for i, t in enumerate(times)
    ]
    answer = await created(client, token, "/data/record/values", body)
    return kitchen, sorted((i["record"] for i in answer), key=lambda r: (r["lastUpdated"], r["id"]), reverse=True)


def routes(kitchen: dict[str, Any]) -> dict[str, str]:
    return {
        "table": f"/data/table/{kitchen['id']}/values",
        "field": f"/data/field/{kitchen['fields'][0]['id']}/values",
    }


def names(kind: str, page: Any) -> list[str]:
    """The record names on a page of table values, or the values (named as their records) on a page of field values."""
    return [i["name"] for i in page] if kind == "table" else [v["value"] for v in page.get("values", [])]


KINDS = ["table", "field"]


@pytest.mark.parametrize("kind", KINDS)
async def test_pages_follow_the_link_header_until_the_last(make_client, kind):
    client, token = await paged_client(make_client)
    kitchen, records = await daily_records(client, token)
    pages = await walk(client, token, routes(kitchen)[kind])
    assert [names(kind, page) for page, _ in pages] == [["day4", "day3"], ["day2", "day1"], ["day0"]]
    links = [link for _, link in pages]
    assert links[-1] is None
    for link in links[:-1]:
        assert re.fullmatch(rf'<http://hat\.test{re.escape(routes(kitchen)[kind])}\?cursor=[\w-]+>; rel="next"', link)
    if kind == "table":
        assert [i["id"] for page, _ in pages for i in page] == [r["id"] for r in records]


@pytest.mark.parametrize("kind", KINDS)
async def test_records_of_the_same_time_are_each_paged_once(make_client, kind):
    client, token = await paged_client(make_client)
    kitchen, _ = await daily_records(client, token, [TIMES[0]] * 3 + [TIMES[1]] * 4)
    pages = await walk(client, token, routes(kitchen)[kind] + "?limit=2")
    seen = [name for page, _ in pages for name in names(kind, page)]
    assert [len(names(kind, page)) for page, _ in pages] == [2, 2, 2, 1]
    assert sorted(seen) == [f"day{i}" for i in range(7)]
    assert set(seen[:4]) == {"day3", "day4", "day5", "day6"}


@pytest.mark.parametrize(("limit", "count"), [(1, 1), (3, 3), (5, 5)])
async def test_limit_sets_the_page_size(make_client, limit, count):
    kind = "field"
    client, token = await paged_client(make_client)
    kitchen, _ = await daily_records(client, token)
    response = await client.get(f"{routes(kitchen)[kind]}?limit={limit}", headers=auth(token))
    assert response.status == 200
    assert len(names(kind, await response.json())) == count
    assert ("Link" in response.headers) == (count < 5)
    if count < 5:
        assert f"limit={limit}" in response.headers["Link"]


@pytest.mark.parametrize("kind", KINDS)
async def test_limit_zero_is_the_largest_page_with_its_link(make_client, kind):
    # Rumpel asks for limit=0 (the original ignored the limit): the largest page, then the Link.
    client, token = await paged_client(make_client)
    kitchen, _ = await daily_records(client, token, [*TIMES, TIMES[-1] + 86400])
    pages = await walk(client, token, routes(kitchen)[kind] + "?limit=0&starttime=0")
    assert [names(kind, page) for page, _ in pages] == [["day5", "day4", "day3", "day2", "day1"], ["day0"]]
    assert "limit=0" in pages[0][1]


@pytest.mark.parametrize("kind", ["table", "field"])
@pytest.mark.parametrize(
    ("query", "cause"),
    [
        ("limit=6", "limit: at most 5"),
        ("limit=-1", "limit: Must be greater than or equal to 0."),
        ("limit=many", "limit: Not a valid integer."),
        ("starttime=yesterday", "starttime: Not a time: give unix seconds or ISO-8601, in the years 2 to 9998."),
        ("endtime=1e30", "endtime: Not a time: give unix seconds or ISO-8601, in the years 2 to 9998."),
    ],
    ids=["limit-over-max", "limit-negative", "limit-word", "starttime", "endtime"],
)
async def test_bad_paging_parameters_are_400(make_client, kind, query, cause):
    client, token = await paged_client(make_client)
    kitchen, _ = await daily_records(client, token, TIMES[:1])
    response = await client.get(f"{routes(kitchen)[kind]}?{query}", headers=auth(token))
    assert response.status == 400
    assert await response.json() == {"message": "Invalid request", "cause": cause}


@pytest.mark.parametrize("kind", ["table", "field"])
@pytest.mark.parametrize("cursor", ["garbage", "MTIzOmFiYw", "%21%21"], ids=["garbage", "not-numbers", "not-base64"])
async def test_a_cursor_the_hat_did_not_make_is_400(make_client, kind, cursor):
    client, token = await paged_client(make_client)
    kitchen, _ = await daily_records(client, token, TIMES[:1])
    response = await client.get(f"{routes(kitchen)[kind]}?cursor={cursor}", headers=auth(token))
    assert response.status == 400
    assert await response.json() == {
        "message": "Invalid request",
        "cause": "cursor: Not a cursor this HAT made for this read.",
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (f"starttime={TIMES[2]}", ["day4", "day3", "day2"]),
        (f"endtime={TIMES[1]}", ["day1", "day0"]),
        (f"starttime={TIMES[1]}&endtime={TIMES[3]}", ["day3", "day2", "day1"]),
        ("starttime=2015-01-02T00:00:00Z&endtime=2015-01-04T00:00:00.000Z", ["day3", "day2", "day1"]),
        ("starttime=2015-01-02T01:00:00%2B01:00&endtime=2015-01-03T12:00:00", ["day2", "day1"]),
        ("starttime=2016-01-01T00:00:00Z", []),
    ],
    ids=["start", "end", "both-unix", "both-iso", "offset-and-naive", "after-all"],
)
async def test_a_time_window_on_the_records_last_updated(make_client, query, expected):
    kind = "field"
    client, token = await paged_client(make_client)
    kitchen, _ = await daily_records(client, token)
    pages = await walk(client, token, f"{routes(kitchen)[kind]}?limit=5&{query}")
    assert [name for page, _ in pages for name in names(kind, page)] == expected


async def test_the_link_keeps_the_window_and_the_limit(make_client):
    kind = "field"
    client, token = await paged_client(make_client)
    kitchen, _ = await daily_records(client, token)
    pages = await walk(client, token, f"{routes(kitchen)[kind]}?limit=1&starttime={TIMES[1]}&endtime={TIMES[3]}")
    assert [names(kind, page) for page, _ in pages] == [["day3"], ["day2"], ["day1"]]
    for _, link in pages[:-1]:
        assert f"starttime={TIMES[1]}" in link
        assert f"endtime={TIMES[3]}" in link
        assert "limit=1" in link


async def test_the_default_page_size_comes_from_the_settings(make_client):
    client = await make_client(values_limit=3, values_max_limit=3)
    token = await login(client, *OWNER)
    kitchen, _ = await daily_records(client, token)
    response = await client.get(routes(kitchen)["field"], headers=auth(token))
    assert len((await response.json())["values"]) == 3
    assert "Link" in response.headers
    response = await client.get(routes(kitchen)["field"] + "?limit=4", headers=auth(token))
    assert await response.json() == {"message": "Invalid request", "cause": "limit: at most 3"}
