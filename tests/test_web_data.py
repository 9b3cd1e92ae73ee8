"""The owner's tables on their pages over HTTP: the grid of records paged both ways in a time
window, charts of numeric fields, CSV and JSON downloads read back and compared with the API's
values, deleting records and tables after a confirmation (CSRF, and the API's 409 as a page), and
the read-only context and bundles pages."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import re
from typing import Any

import aiohttp
import pytest
import yarl

from hatd.raw import repository as raw
from hatd.reads import encode_cursor
from hatd.web import data as web_data
from hatd.web.schemas import MAX_TRAIL
from tests.raw_helpers import HOUSE, KITCHEN, call, created, fields_by_name, new_table
from tests.test_bundles_contextual import _world
from tests.web_helpers import hidden_fields, logged_in

PAGES = ("/owner/tables/1", "/owner/tables/1/csv", "/owner/tables/1/json", "/owner/tables/1/delete",
         "/owner/records/1/delete", "/owner/context", "/owner/context/person/1", "/owner/bundles",
         "/owner/bundles/contextless/1", "/owner/bundles/contextual/1")  # fmt: skip


def _rows(page: str) -> list[str]:
    """The record names of a grid, in order."""
    return [html.unescape(name) for name in re.findall(r'<th scope="row"><span class="cell">([^<]*)</span>', page)]


def _href(page: str, anchor: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)"[^>]* id="{anchor}"', page)
    return html.unescape(found.group(1)) if found else None


async def _kitchen_records(client, token, count: int, *, day: int = 1) -> dict[str, Any]:
    """The kitchen table with `count` records, a minute apart from 10:00 on 2026-02-<day>: a number in
    tableTestField, text in the subtable's tableTestField3."""
    kitchen = await new_table(client, token, KITCHEN)
    field = kitchen["fields"][0]["id"]
    sub_field = kitchen["subTables"][0]["fields"][0]["id"]
    await created(client, token, "/data/record/values", [
        {"record": {"name": f"record {i:02}", "lastUpdated": f"2026-02-{day:02}T10:{i:02}:00Z"},
         "values": [{"value": str(i * 1.5), "field": {"id": field}}, {"value": f"sub <{i}>", "field": {"id": sub_field}}]}
        for i in range(count)
    ])  # fmt: skip
    return kitchen


async def test_pages_without_a_session_send_the_browser_to_the_login_page(client):
    for path in PAGES:
        response = await client.get(path, allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (303, f"/owner/login?next={path}"), path


async def test_a_table_page_is_a_grid_of_records_newest_first_with_subtables_grouped(client, owner_token):
    kitchen = await _kitchen_records(client, owner_token, 30)
    await logged_in(client)
    page = await (await client.get(f"/owner/tables/{kitchen['id']}")).text()
    assert '<p id="count"><strong>30</strong> records</p>' in page
    head = re.search(r"<thead>(.*?)</thead>", page, re.S).group(1)
    groups = re.findall(r'<th colspan="(\d+)" scope="colgroup" class="group"><span class="label">([^<]+)</span>', head)
    assert groups == [("2", "kitchen"), ("2", "kitchenElectricity")]
    names = re.findall(r'<th scope="col"><span class="label">([^<]+)</span></th>', head)
    assert names == ["tableTestField", "tableTestField2", "tableTestField3", "tableTestField4"]
    assert _rows(page) == [f"record {i:02}" for i in range(29, 4, -1)]  # newest first, 25 a page
    row = re.search(r'<tr id="record-\d+">(.*?)</tr>', page, re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row, re.S)
    assert cells[:4] == ['<span class="cell">43.5</span>', "", '<span class="cell">sub &lt;29&gt;</span>', ""]
    assert '<time datetime="2026-02-01T10:29:00.000Z">01 Feb 2026, 10:29 UTC</time>' in row


async def test_a_table_page_pages_older_and_back_to_newer(client, owner_token):
    kitchen = await _kitchen_records(client, owner_token, 60)
    await logged_in(client)
    first = await (await client.get(f"/owner/tables/{kitchen['id']}")).text()
    assert _href(first, "newer") is None and _href(first, "newest") is None
    second = await (await client.get(_href(first, "older"))).text()
    assert _rows(second) == [f"record {i:02}" for i in range(34, 9, -1)]
    third = await (await client.get(_href(second, "older"))).text()
    assert _rows(third) == [f"record {i:02}" for i in range(9, -1, -1)]
    assert _href(third, "older") is None
    back = await (await client.get(_href(third, "newer"))).text()
    assert _rows(back) == _rows(second)
    top = await (await client.get(_href(back, "newer"))).text()
    assert _rows(top) == _rows(first) and _href(top, "newer") is None
    assert _rows(await (await client.get(_href(third, "newest"))).text()) == _rows(first)


async def test_a_page_remembers_at_most_max_trail_newer_pages(client, owner_token):
    kitchen = await _kitchen_records(client, owner_token, 30)
    await logged_in(client)
    scope = f"page-table:{kitchen['id']}"
    moment = dt.datetime(2026, 2, 1, 10, 10, tzinfo=dt.UTC)
    trail = [encode_cursor(scope, moment + dt.timedelta(minutes=i), 10**6 + i) for i in range(MAX_TRAIL + 5)]
    here = encode_cursor(scope, moment, 10**6)
    page = await client.get(f"/owner/tables/{kitchen['id']}", params={"cursor": here, "trail": ".".join(trail)})
    text = await page.text()
    assert _rows(text) == [f"record {i:02}" for i in range(10, -1, -1)]
    newer = yarl.URL(_href(text, "newer"))
    assert newer.query["cursor"] == trail[-1] and newer.query["trail"].split(".") == trail[-MAX_TRAIL:-1]


async def test_a_time_window_narrows_the_grid_its_count_its_pages_and_its_downloads(client, owner_token):
    kitchen = await _kitchen_records(client, owner_token, 40)
    await logged_in(client)
    window = {"from": "2026-02-01T10:05", "to": "2026-02-01T10:34:00"}
    page = await (await client.get(f"/owner/tables/{kitchen['id']}", params=window)).text()
    assert '<p id="count"><strong>30</strong> records in this window</p>' in page
    assert 'value="2026-02-01T10:05"' in page and 'value="2026-02-01T10:34:00"' in page
    assert _rows(page) == [f"record {i:02}" for i in range(34, 9, -1)]
    older = _href(page, "older")
    assert "from=2026-02-01T10:05" in older and "to=2026-02-01T10:34:00" in older
    assert _rows(await (await client.get(older)).text()) == [f"record {i:02}" for i in range(9, 4, -1)]
    download = _href(page, "download-csv")
    assert download == f"/owner/tables/{kitchen['id']}/csv?from=2026-02-01T10:05&to=2026-02-01T10:34:00"
    rows = list(csv.reader(io.StringIO(await (await client.get(download)).text())))
    assert [row[2] for row in rows[1:]] == [f"record {i:02}" for i in range(34, 4, -1)]


@pytest.mark.parametrize(
    ("query", "cause"),
    [
        ({"from": "2026-02-02", "to": "2026-02-01"}, "from: from is after to"),
        ({"from": "yesterday"}, "from: Not a time"),
        ({"cursor": "nonsense"}, "cursor: Not a cursor this HAT made for this read."),
        ({"cursor": "", "trail": "nonsense"}, "cursor: Not a cursor this HAT made for this read."),
    ],
)
async def test_a_bad_window_or_place_is_a_400_page(client, owner_token, query, cause):
    kitchen = await new_table(client, owner_token, KITCHEN)
    await logged_in(client)
    for suffix in ("", "/csv", "/json"):
        response = await client.get(f"/owner/tables/{kitchen['id']}{suffix}", params=query)
        assert response.status == 400, suffix
        assert response.content_type == "text/html"
        assert cause in html.unescape(await response.text())


async def test_an_unknown_table_or_record_is_a_404_page(client):
    await logged_in(client)
    for path, cause in (
        ("/owner/tables/999999", "There is no table with id 999999"),
        ("/owner/tables/999999/csv", "There is no table with id 999999"),
        ("/owner/tables/999999/json", "There is no table with id 999999"),
        ("/owner/tables/999999/delete", "There is no table with id 999999"),
        ("/owner/records/999999/delete", "There is no record with id 999999"),
        ("/owner/context/person/999999", "There is no person with id 999999"),
        ("/owner/bundles/contextless/999999", "There is no contextless bundle with id 999999"),
        ("/owner/bundles/contextual/999999", "There is no contextual bundle with id 999999"),
    ):
        response = await client.get(path)
        assert response.status == 404, path
        assert response.content_type == "text/html", path
        assert cause in await response.text(), path
    assert (await client.get("/owner/context/dragon/1")).status == 404


async def test_numeric_fields_are_charted_as_svg(client, owner_token):
    kitchen = await _kitchen_records(client, owner_token, 3)
    await logged_in(client)
    page = await (await client.get(f"/owner/tables/{kitchen['id']}")).text()
    charts = re.findall(r'<svg class="chart" id="chart-(\d+)".*?</svg>', page, re.S)
    assert charts == [str(kitchen["fields"][0]["id"])]  # the subtable's text is not charted
    svg = re.search(r'<svg class="chart".*?</svg>', page, re.S).group(0)
    assert re.search(r'<path class="line" d="M8\.0,156\.0 L200\.0,89\.0 L392\.0,22\.0"/>', svg)
    assert ">max 3</text>" in svg and ">min 0</text>" in svg and svg.count(">01 Feb 2026</text>") == 2
    assert '<figcaption class="label">kitchen.tableTestField</figcaption><svg class="chart"' in page
    assert "<title" in svg and "kitchen.tableTestField: 3 values from 01 Feb 2026 to 01 Feb 2026" in svg


async def test_a_table_without_numbers_or_records_has_no_chart(client, owner_token):
    kitchen = await new_table(client, owner_token, KITCHEN)
    await logged_in(client)
    page = await (await client.get(f"/owner/tables/{kitchen['id']}")).text()
    assert "<svg" not in page and "No records." in page and '<p id="count"><strong>0</strong> records</p>' in page


async def test_names_and_values_are_escaped_on_the_page_and_in_the_charts(client, owner_token):
    evil = "<script>alert(1)</script>"
    table = await new_table(client, owner_token, {"name": evil, "source": "x&y", "fields": [{"name": evil}]})
    await created(client, owner_token, "/data/record/values", [
        {"record": {"name": evil}, "values": [{"value": "5", "field": {"id": table["fields"][0]["id"]}}]}
    ])  # fmt: skip
    await logged_in(client)
    page = await (await client.get(f"/owner/tables/{table['id']}")).text()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and 'id="chart-' in page


async def _api_records(client, token, table_id: int) -> list[dict[str, Any]]:
    response = await client.get(
        f"/data/table/{table_id}/values", params={"limit": "0"}, headers={"X-Auth-Token": token}
    )
    assert response.status == 200 and "Link" not in response.headers
    records: list[dict[str, Any]] = await response.json()
    return records


def _api_cells(record: dict[str, Any]) -> dict[str, list[str]]:
    """A record's values by `table.field` path, as the API gave them."""
    found: dict[str, list[str]] = {}

    def walk(tree: dict[str, Any], path: str) -> None:
        for field in tree["fields"]:
            found.setdefault(f"{path}.{field['name']}", []).extend(v["value"] for v in field["values"])
        for sub in tree["subTables"]:
            walk(sub, f"{path}.{sub['name']}" if path != record["tables"][0]["name"] else sub["name"])

    walk(record["tables"][0], record["tables"][0]["name"])
    return found


async def test_a_table_downloads_as_csv_with_its_subtables_streamed_page_by_page(client, owner_token, monkeypatch):
    monkeypatch.setattr(web_data, "DOWNLOAD_PAGE", 4)  # several reads of the table, one after another
    house = await new_table(client, owner_token, HOUSE)
    fields = fields_by_name(house)
    values = ['=HYPERLINK("http://evil")', "-12.5", "+1", "@SUM(A1)", "plain", "-2+3", "line\nbreak", 'a,b "c"']
    await created(client, owner_token, "/data/record/values", [
        {"record": {"name": f"=day {i}", "lastUpdated": f"2026-03-0{1 + i % 9}T08:00:00Z"},
         "values": [{"value": values[i % len(values)], "field": {"id": fields["address"]}},
                    {"value": f"room {i}", "field": {"id": fields["roomName"]}},
                    {"value": str(100 + i), "field": {"id": fields["watts"]}},
                    {"value": str(200 + i), "field": {"id": fields["watts"]}}]}
        for i in range(10)
    ])  # fmt: skip
    await logged_in(client)
    response = await client.get(f"/owner/tables/{house['id']}/csv")
    assert response.status == 200
    assert response.content_type == "text/csv" and response.charset == "utf-8"
    assert response.headers["Content-Disposition"] == f'attachment; filename="home-house-{house["id"]}.csv"'
    assert response.headers["Transfer-Encoding"] == "chunked"
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0] == ["record id", "record time", "record name", "house.address", "room.roomName", "room.floor",
                       "room.appliance.watts"]  # fmt: skip
    api = await _api_records(client, owner_token, house["id"])
    assert [int(row[0]) for row in rows[1:]] == [record["id"] for record in api]  # newest first, all of them
    for row, record in zip(rows[1:], api, strict=True):
        assert row[1] == record["lastUpdated"]
        assert row[2] == "'" + record["name"]  # "=day 3" would be a formula
        cells = _api_cells(record)
        address = cells["house.address"][0]
        shown = address if address in ("-12.5", "+1", "plain", "line\nbreak", 'a,b "c"') else "'" + address
        assert row[3:] == [shown, cells["room.roomName"][0], "", "\n".join(cells["room.appliance.watts"])]


async def test_a_table_downloads_as_the_apis_json(client, owner_token, monkeypatch):
    monkeypatch.setattr(web_data, "DOWNLOAD_PAGE", 7)
    kitchen = await _kitchen_records(client, owner_token, 20)
    await logged_in(client)
    response = await client.get(f"/owner/tables/{kitchen['id']}/json")
    assert response.status == 200 and response.content_type == "application/json"
    assert response.headers["Content-Disposition"] == f'attachment; filename="fibaro-kitchen-{kitchen["id"]}.json"'
    assert json.loads(await response.text()) == await _api_records(client, owner_token, kitchen["id"])
    empty = await new_table(client, owner_token, {"name": "empty", "source": "x"})
    assert await (await client.get(f"/owner/tables/{empty['id']}/json")).json() == []
    rows = list(csv.reader(io.StringIO(await (await client.get(f"/owner/tables/{empty['id']}/csv")).text())))
    assert rows == [["record id", "record time", "record name"]]


async def test_a_download_that_breaks_midway_never_looks_complete(client, owner_token, monkeypatch):
    monkeypatch.setattr(web_data, "DOWNLOAD_PAGE", 2)
    kitchen = await _kitchen_records(client, owner_token, 5)
    await logged_in(client)
    read = raw.table_values
    reads: list[int] = []

    async def failing(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        if len(reads) > 1:
            raise RuntimeError("the database went away")
        return await read(*args, **kwargs)

    monkeypatch.setattr(raw, "table_values", failing)
    for suffix in ("csv", "json"):
        reads.clear()
        with pytest.raises(aiohttp.ClientPayloadError):  # (the JSON one: as the test client checks its body)
            response = await client.get(f"/owner/tables/{kitchen['id']}/{suffix}")
            assert response.status == 200  # the answer had started
            await response.read()


async def test_the_owner_deletes_a_record_after_its_confirmation(client, owner_token):
    kitchen = await _kitchen_records(client, owner_token, 3)
    csrf = await logged_in(client)
    page = await (await client.get(f"/owner/tables/{kitchen['id']}")).text()
    record_id = int(re.search(r'<tr id="record-(\d+)">', page).group(1))
    confirm_path = _href(page, f"delete-record-{record_id}")
    assert confirm_path == f"/owner/records/{record_id}/delete?back=/owner/tables/{kitchen['id']}"
    confirm = await (await client.get(confirm_path)).text()
    going = " ".join(re.search(r'<p id="going">(.*?)</p>', confirm, re.S).group(1).split())
    assert f"Record <strong>#{record_id}</strong>" in going
    assert '<strong id="going-values">2</strong> values' in going and "kitchen, kitchenElectricity" in going
    form = hidden_fields(confirm)
    assert form == {"csrf": csrf, "back": f"/owner/tables/{kitchen['id']}"}

    for forged in ({"back": form["back"]}, {**form, "csrf": "forged"}):  # no token, or not the session's
        refused = await client.post(f"/owner/records/{record_id}/delete", data=forged, allow_redirects=False)
        assert refused.status == 403 and refused.content_type == "text/html"
    assert (await call(client, "GET", f"/data/record/{record_id}", owner_token))[0] == 200

    done = await client.post(f"/owner/records/{record_id}/delete", data=form, allow_redirects=False)
    assert (done.status, done.headers["Location"]) == (303, f"/owner/tables/{kitchen['id']}")
    assert (await call(client, "GET", f"/data/record/{record_id}", owner_token))[0] == 404
    assert "<strong>2</strong> records" in await (await client.get(f"/owner/tables/{kitchen['id']}")).text()
    hostile = await client.get(f"/owner/records/{record_id - 1}/delete", params={"back": "//evil.example/"})
    assert hidden_fields(await hostile.text())["back"] == "/owner"
    gone = await client.post(f"/owner/records/{record_id - 1}/delete", data={"csrf": csrf, "back": "//evil.example/"},
                             allow_redirects=False)  # fmt: skip
    assert (gone.status, gone.headers["Location"]) == (303, "/owner")
    again = await client.post(f"/owner/records/{record_id}/delete", data=form)
    assert again.status == 404 and f"There is no record with id {record_id}" in await again.text()


async def test_the_owner_deletes_a_table_after_its_confirmation(client, owner_token):
    kitchen = await _kitchen_records(client, owner_token, 4)
    csrf = await logged_in(client)
    confirm = await (await client.get(f"/owner/tables/{kitchen['id']}/delete")).text()
    going = " ".join(re.search(r'<ul id="going">(.*?)</ul>', confirm, re.S).group(1).split())
    assert 'the table <strong class="label">kitchen</strong> (fibaro)' in going
    assert 'its subtable <strong class="label">kitchenElectricity</strong>' in going
    assert '<strong id="going-values">8</strong> values in them' in going
    assert '<strong id="going-records">4</strong> records left with no values' in going
    assert 'id="bundled"' not in confirm
    refused = await client.post(f"/owner/tables/{kitchen['id']}/delete", data={}, allow_redirects=False)
    assert refused.status == 403
    done = await client.post(f"/owner/tables/{kitchen['id']}/delete", data=hidden_fields(confirm),
                             allow_redirects=False)  # fmt: skip
    assert hidden_fields(confirm) == {"csrf": csrf}
    assert (done.status, done.headers["Location"]) == (303, "/owner")
    assert (await call(client, "GET", f"/data/table/{kitchen['id']}", owner_token))[0] == 404
    assert (await call(client, "GET", f"/data/table/{kitchen['subTables'][0]['id']}", owner_token))[0] == 404


async def test_a_table_a_bundle_uses_is_refused_with_a_409_page(client, owner_token):
    kitchen = await _kitchen_records(client, owner_token, 2)
    await created(client, owner_token, "/bundles/contextless", {
        "name": "Kitchen for the app",
        "bundleTable": [{"name": "k", "table": {"id": kitchen["id"], "name": "kitchen", "source": "fibaro"}}],
    })  # fmt: skip
    csrf = await logged_in(client)
    confirm = await (await client.get(f"/owner/tables/{kitchen['id']}/delete")).text()
    assert "Bundles still use it: Kitchen for the app." in confirm
    response = await client.post(f"/owner/tables/{kitchen['id']}/delete", data={"csrf": csrf}, allow_redirects=False)
    assert response.status == 409 and response.content_type == "text/html"
    text = await response.text()
    assert "Bundles still use it: Kitchen for the app; delete those first" in text and "<!doctype html>" in text
    assert (await call(client, "GET", f"/data/table/{kitchen['id']}", owner_token))[0] == 200


async def test_the_table_and_data_pages_link_to_the_new_pages(client, owner_token):
    kitchen = await _kitchen_records(client, owner_token, 1)
    await logged_in(client)
    home = await (await client.get("/owner")).text()
    for link in ("/owner/context", "/owner/bundles", f"/owner/tables/{kitchen['id']}/csv",
                 f"/owner/tables/{kitchen['id']}/json"):  # fmt: skip
        assert f'href="{link}"' in home, link
    page = await (await client.get(f"/owner/tables/{kitchen['id']}")).text()
    assert _href(page, "delete-table") == f"/owner/tables/{kitchen['id']}/delete"
    assert _href(page, "download-json") == f"/owner/tables/{kitchen['id']}/json"
    assert '<a href="/owner/context" aria-current="page">' in await (await client.get("/owner/bundles")).text()


async def test_the_context_pages_show_entities_with_types_links_and_property_values(client, owner_token):
    me, spouse, phone, _ = await _world(client, owner_token)
    kind = await created(client, owner_token, "/type/type", {"name": "human", "description": "a person"})
    await created(client, owner_token, f"/person/{me['id']}/type/{kind['id']}", {"relationshipType": "is"})
    await logged_in(client)
    listing = await (await client.get("/owner/context")).text()
    people = re.search(r'<section class="card" id="kind-person">(.*?)</section>', listing, re.S).group(1)
    assert 'People <span class="muted">(2)</span>' in people
    assert f'<a href="/owner/context/person/{me["id"]}" class="label">Me</a>' in people
    assert f'<a href="/owner/context/thing/{phone["id"]}" class="label">Phone</a>' in listing
    assert 'id="kind-organisation"' in listing and "None yet." in listing

    page = await (await client.get(f"/owner/context/person/{me['id']}")).text()
    assert "<dt>Person id</dt><dd>me.hat</dd>" in page
    assert '<span class="label">human</span> <span class="muted">(is)</span>' in page
    assert f'person <a href="/owner/context/person/{spouse["id"]}" class="label">Spouse</a>' in page
    static = page.split("<h2>Static properties</h2>")[1].split("<h2>Dynamic properties</h2>")
    assert "height (cm)" in static[0] and '<span class="cell">180</span>' in static[0]
    assert "weight (kg)" in static[1] and '<span class="cell">70</span>' in static[1]
    assert "<dt>Unit</dt><dd>kilogram (kg)</dd>" in static[1]


async def test_the_bundles_pages_show_what_each_bundle_holds(client, owner_token):
    kitchen = await _kitchen_records(client, owner_token, 1)
    me, _, _, _ = await _world(client, owner_token)
    sub_field = kitchen["subTables"][0]["fields"][0]["id"]
    contextless = await created(client, owner_token, "/bundles/contextless", {
        "name": "Kitchen <evenings>",
        "bundleTable": [{"name": "k", "table": {"id": kitchen["id"], "name": "kitchen", "source": "fibaro"},
                         "slices": [{"table": {"id": kitchen["subTables"][0]["id"], "name": "kitchenElectricity",
                                               "source": "fibaro"},
                                     "conditions": [{"field": {"id": sub_field}, "operator": "equal",
                                                     "value": "sub <0>"}]}]}],
    })  # fmt: skip
    contextual = await created(client, owner_token, "/bundles/context", {
        "name": "My weight", "entities": [{"entityKind": "person", "entityName": "Me",
                                          "properties": [{"propertyRelationshipKind": "dynamic"}]}],
    })  # fmt: skip
    await logged_in(client)
    listing = await (await client.get("/owner/bundles")).text()
    rows = re.findall(r'<tr id="bundle-(\w+)-(\d+)">.*?class="bundle-name">([^<]+)</a>.*?<td class="num">([^<]+)</td>',
                      listing, re.S)  # fmt: skip
    assert rows == [("contextless", str(contextless["id"]), "Kitchen &lt;evenings&gt;", "1 table"),
                    ("contextual", str(contextual["id"]), "My weight", "1 selection")]  # fmt: skip

    page = await (await client.get(f"/owner/bundles/contextless/{contextless['id']}")).text()
    assert f'<a href="/owner/tables/{kitchen["id"]}" class="label">kitchen</a> (fibaro)' in page
    assert '<span class="label">tableTestField3</span> equal “<span class="label">sub &lt;0&gt;</span>”' in page

    page = await (await client.get(f"/owner/bundles/contextual/{contextual['id']}")).text()
    assert "Entities of kind person named" in " ".join(page.split())
    selected = re.search(r'<ul id="selected">(.*?)</ul>', page, re.S).group(1)
    assert f'<a href="/owner/context/person/{me["id"]}" class="label">Me</a>' in selected
    assert "0 static and 1 dynamic properties" in " ".join(selected.split())
