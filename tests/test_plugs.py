"""The data plugs over real HTTP into a real hatd: the records and entities each file makes,
checked field by field; a second import that changes nothing; bad items refused by their line,
and nothing stored from them; a malformed file refused whole, with its line; `hatd plug` itself."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from hatd.client import AsyncHat
from hatd.plugs import CsvPlug, FileRefused, GpxPlug, IcalPlug, Summary, import_file
from hatd.tokens import TokenService
from hatd.web import upload as upload_page
from tests.conftest import OWNER, login
from tests.plug_samples import CSV, GPX, ICS
from tests.web_helpers import logged_in

REPO = Path(__file__).resolve().parent.parent


def base(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("/"))


async def records(hat: AsyncHat, name: str, source: str) -> dict[str, dict[str, str]]:
    """Every record of a table: {record name: {field: value}}."""
    table = await hat.find_table(name, source)
    assert table is not None
    out: dict[str, dict[str, str]] = {}
    async for item in hat.table_values(table):
        values = {}
        for tree in item["tables"]:
            for field in tree["fields"]:
                for value in field.get("values") or []:
                    values[field["name"]] = value["value"]
        out[item["name"]] = values | {"@time": item["lastUpdated"]}
    return out


def refusals(summary: Summary) -> list[str]:
    return [str(refusal) for refusal in summary.refused]


async def test_ical_events_with_their_entities_and_a_second_import(client: TestClient[Any, Any]) -> None:
    async with await AsyncHat.login(base(client), *OWNER) as hat:
        summary = await import_file(hat, IcalPlug(), ICS.encode(), "work.ics")
        assert (summary.new, summary.existing, summary.error) == (3, 0, None)
        broken_time, *others = refusals(summary)
        assert broken_time.startswith("VEVENT on line 57: DTSTART: ") and "2026XX01T090000Z" in broken_time
        assert others == [
            "VEVENT on line 62: line 65: not an iCalendar content line: 'this line is not a property'",
            "VEVENT on line 68: it has no UID, which names an event",
        ]
        assert summary.entities == 4  # three events, one place
        stored = await records(hat, "events", "ical")
        assert stored == {
            "standup-1@hat.test": {
                "key": "standup-1@hat.test", "uid": "standup-1@hat.test",
                "start": "2026-01-05T09:30:00+00:00", "end": "2026-01-05T09:45:00+00:00", "timezone": "Europe/London",
                "allDay": "false", "summary": "Stand-up", "location": "Room 4, Floor 2",
                "organizer": "mailto:ann@hat.test",
                "attendees": json.dumps([
                    {"address": "mailto:ann@hat.test", "name": "Ann Lee", "role": "REQ-PARTICIPANT", "status": "ACCEPTED"},
                    {"address": "mailto:bob@hat.test", "name": "Bob"},
                ]),
                "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=10", "exdate": "EXDATE;TZID=Europe/London:20260112T093000",
                "calendar": "Work", "@time": "2026-01-05T09:30:00.000Z",
            },
            "standup-1@hat.test 2026-01-19T09:30:00+00:00": {
                "key": "standup-1@hat.test 2026-01-19T09:30:00+00:00", "uid": "standup-1@hat.test",
                "recurrenceId": "2026-01-19T09:30:00+00:00",
                "start": "2026-01-19T11:00:00+00:00", "end": "2026-01-19T11:15:00+00:00", "timezone": "Europe/London",
                "allDay": "false", "summary": "Stand-up (moved)", "location": "Room 4, Floor 2", "calendar": "Work",
                "@time": "2026-01-19T11:00:00.000Z",
            },
            "holiday@hat.test": {
                "key": "holiday@hat.test", "uid": "holiday@hat.test", "start": "2026-06-01", "end": "2026-06-03",
                "allDay": "true", "summary": "Holiday", "description": "Two days off\nat last",
                "categories": "PERSONAL,TRAVEL", "calendar": "Work", "@time": "2026-06-01T00:00:00.000Z",
            },
        }  # fmt: skip

        events = {entity.name: entity for entity in await hat.entities("event")}
        assert sorted(events) == ["Holiday", "Stand-up", "Stand-up (moved)"]
        [place] = await hat.entities("location")
        assert place.name == "Room 4, Floor 2"
        standup = await hat.entity_values(events["Stand-up"])
        assert [link["location"]["id"] for link in standup["locations"]] == [place.id]
        [start] = standup["staticProperties"]
        assert (start["relationshipType"], start["record"]["name"], start["property"]["name"]) == (
            "start", "standup-1@hat.test", "Date and Time",
        )  # fmt: skip
        assert [v["value"] for v in start["field"]["values"]] == ["2026-01-05T09:30:00+00:00"]
        holiday = await hat.entity_values(events["Holiday"])
        assert "locations" not in holiday or holiday["locations"] == []
        [address] = (await hat.entity_values(place))["staticProperties"]
        assert (address["relationshipType"], [v["value"] for v in address["field"]["values"]]) == (
            "address", ["Room 4, Floor 2"],
        )  # fmt: skip

        again = await import_file(hat, IcalPlug(), ICS.encode(), "work.ics")
        assert (again.new, again.existing, again.entities, len(again.refused)) == (0, 3, 0, 3)
        assert await records(hat, "events", "ical") == stored
        assert len(await hat.entities("event")) == 3 and len(await hat.entities("location")) == 1


async def test_ical_entities_missing_after_a_stopped_import_are_made_by_the_next(client: TestClient[Any, Any]) -> None:
    async with await AsyncHat.login(base(client), *OWNER) as hat:
        plug = IcalPlug()

        async def stopped(*args: Any) -> None:  # as if the import stopped after the records
            return None

        plug.after = stopped  # type: ignore[method-assign]
        assert (await import_file(hat, plug, ICS.encode(), "work.ics")).new == 3
        assert await hat.entities("event") == []
        resumed = await import_file(hat, IcalPlug(), ICS.encode(), "work.ics")
        assert (resumed.new, resumed.existing, resumed.entities) == (0, 3, 4)
        assert len(await hat.entities("event")) == 3


async def test_gpx_tracks_points_and_waypoints(client: TestClient[Any, Any]) -> None:
    async with await AsyncHat.login(base(client), *OWNER) as hat:
        summary = await import_file(hat, GpxPlug(), GPX.encode(), "run.gpx")
        assert (summary.new, summary.existing, summary.error) == (5, 0, None)
        track = "Morning Run 2026-01-05T07:00:00+00:00"
        assert refusals(summary) == [
            "<trkpt> on line 17: lat='north' is not a number from -90 to 90",
            "<trkpt> on line 21: <time> 'yesterday' is not a time",
            f"<trkpt> on line 22: its identity is <trkpt> on line 20's too ({track} @ 2026-01-05T07:10:00+00:00)",
        ]
        assert await records(hat, "tracks", "gpx") == {
            track: {
                "key": track, "name": "Morning Run", "type": "running", "segments": "2", "points": "4",
                "start": "2026-01-05T07:00:00+00:00", "end": "2026-01-05T07:10:00+00:00",
                "@time": "2026-01-05T07:00:00.000Z",
            }
        }  # fmt: skip
        points = await records(hat, "points", "gpx")
        assert points == {
            f"{track} @ 2026-01-05T07:00:00+00:00": {
                "key": f"{track} @ 2026-01-05T07:00:00+00:00", "track": track, "segment": "1",
                "lat": "51.5007", "lon": "-0.1246", "ele": "11.0", "time": "2026-01-05T07:00:00Z", "hr": "120",
                "@time": "2026-01-05T07:00:00.000Z",
            },
            f"{track} @ 2026-01-05T07:00:05+00:00": {
                "key": f"{track} @ 2026-01-05T07:00:05+00:00", "track": track, "segment": "1",
                "lat": "51.5010", "lon": "-0.1250", "ele": "11.5", "time": "2026-01-05T07:00:05Z",
                "@time": "2026-01-05T07:00:05.000Z",
            },
            f"{track} @ 2026-01-05T07:10:00+00:00": {
                "key": f"{track} @ 2026-01-05T07:10:00+00:00", "track": track, "segment": "2",
                "lat": "51.5020", "lon": "-0.1260", "time": "2026-01-05T07:10:00Z",
                "@time": "2026-01-05T07:10:00.000Z",
            },
        }  # fmt: skip
        waypoints = await records(hat, "waypoints", "gpx")
        assert [(name, {k: v for k, v in values.items() if k != "@time"}) for name, values in waypoints.items()] == [
            ("Kew Gardens @ 51.4787,-0.2955", {
                "key": "Kew Gardens @ 51.4787,-0.2955", "name": "Kew Gardens", "lat": "51.4787", "lon": "-0.2955",
                "ele": "6.5", "symbol": "Park",
            })
        ]  # fmt: skip

        again = await import_file(hat, GpxPlug(), GPX.encode(), "run.gpx")
        assert (again.new, again.existing) == (0, 5)
        assert await records(hat, "points", "gpx") == points


async def test_a_malformed_file_is_refused_whole_with_its_line(client: TestClient[Any, Any]) -> None:
    broken_gpx = GPX.replace("</trkseg>\n    <trkseg>", "</trkseg>\n    <trkseg", 1)
    broken_ics = ICS.replace("END:VEVENT\nBEGIN:VEVENT\nUID:holiday", "END:VTODO\nBEGIN:VEVENT\nUID:holiday")
    async with await AsyncHat.login(base(client), *OWNER) as hat:
        gpx = await import_file(hat, GpxPlug(), broken_gpx.encode(), "run.gpx")
        assert gpx.error is not None and gpx.error.startswith("line 20: not well-formed XML")
        ics = await import_file(hat, IcalPlug(), broken_ics.encode(), "work.ics")
        assert ics.error == "line 47: END:VTODO closes BEGIN:VEVENT"
        not_ics = await import_file(hat, IcalPlug(), b"hello\n", "notes.ics")
        assert not_ics.error == "line 1: an iCalendar file starts with BEGIN:VCALENDAR"
        latin = await import_file(hat, CsvPlug(), "a,b\n1,2\ncaf\xe9,3\n".encode("latin-1"), "x.csv")
        assert latin.error == "line 3: not UTF-8 text"
        kml = await import_file(hat, GpxPlug(), b'<?xml version="1.0"?>\n<kml><Placemark/></kml>', "places.gpx")
        assert kml.error == "line 2: the root element is <kml>, not <gpx>"
        bomb = b'<?xml version="1.0"?><!DOCTYPE gpx [<!ENTITY a "aaaa">]><gpx>&a;</gpx>'
        assert (await import_file(hat, GpxPlug(), bomb, "bomb.gpx")).error is not None
        assert Summary("x.gpx", error="line 3: bad").lines() == ["x.gpx: refused, nothing stored: line 3: bad"]
        assert await hat.sources() == []  # nothing of any of them was stored


async def test_csv_rows_with_a_key_and_a_time(client: TestClient[Any, Any]) -> None:
    shop = CSV.replace("date,item", "date,id,item").splitlines()
    keyed = "\n".join([shop[0]] + [line.replace(",", f",k{n},", 1) for n, line in enumerate(shop[1:], 1)]) + "\n"
    async with await AsyncHat.login(base(client), *OWNER) as hat:
        plug = CsvPlug("shopping", key="id", time="date", source="receipts")
        summary = await import_file(hat, plug, keyed.encode(), "receipts.csv")
        assert (summary.new, summary.existing) == (4, 0)
        assert refusals(summary) == [
            "line 6: date 'not a date' is not a time (ISO-8601 or unix seconds)",
            "line 7: 4 cells where the header has 5",
        ]
        stored = await records(hat, "shopping", "receipts")
        assert stored == {
            "k1": {"key": "k1", "date": "2026-01-03T10:00:00Z", "id": "k1", "item": "bread", "amount": "2.40",
                   "shop": "Baker", "@time": "2026-01-03T10:00:00.000Z"},
            "k2": {"key": "k2", "date": "2026-01-04T11:30:00Z", "id": "k2", "item": "milk", "amount": "1.10",
                   "@time": "2026-01-04T11:30:00.000Z"},
            "k3": {"key": "k3", "date": "2026-01-05", "id": "k3", "item": "tea, green", "amount": "3.99",
                   "shop": "Corner\nShop", "@time": "2026-01-05T00:00:00.000Z"},
            "k7": {"key": "k7", "date": "2026-01-07T09:00:00Z", "id": "k7", "item": "bread", "amount": "2.40",
                   "shop": "Baker", "@time": "2026-01-07T09:00:00.000Z"},
        }  # fmt: skip
        table = await hat.find_table("shopping", "receipts")
        assert table is not None and [f.name for f in table.fields] == ["key", "date", "id", "item", "amount", "shop"]
        again = await import_file(hat, plug, keyed.encode(), "receipts.csv")
        assert (again.new, again.existing, len(again.refused)) == (0, 4, 2)
        assert await records(hat, "shopping", "receipts") == stored
        missing = await import_file(hat, CsvPlug(key="nope"), keyed.encode(), "receipts.csv")
        assert missing.error == "--key 'nope': the header has no such column (date, id, item, amount, shop)"


async def test_csv_without_a_key_knows_a_row_by_its_content(client: TestClient[Any, Any]) -> None:
    text = "city;visits\nLeeds;3\nYork;1\nLeeds;3\n\n"
    async with await AsyncHat.login(base(client), *OWNER) as hat:
        first = await import_file(hat, CsvPlug(), text.encode(), "cities.csv")
        assert (first.new, refusals(first)) == (
            2,
            ["line 4: its identity is line 2's too (" + row_key("Leeds", "3") + ")"],
        )
        assert (await import_file(hat, CsvPlug(), (text + "Hull;7\n").encode(), "cities.csv")).new == 1
        assert sorted(v["city"] for v in (await records(hat, "cities", "csv")).values()) == ["Hull", "Leeds", "York"]


def row_key(*cells: str) -> str:
    """The key the CSV plug gives a row without a key column: a hash of its cells."""
    return "row " + hashlib.sha256("\x1f".join(cells).encode()).hexdigest()[:32]


async def test_an_item_the_hat_refuses_is_found_and_the_good_ones_go_in(make_client: Any) -> None:
    """A batch the HAT refuses (here: one row too big for its body limit) is split until the bad
    row is alone; it is refused with the HAT's words, and the rows around it are stored."""
    client = await make_client(max_body=20_000)
    rows = [f"r{i},{'x' * (30_000 if i == 7 else 10)}" for i in range(12)]
    async with await AsyncHat.login(base(client), *OWNER) as hat:
        summary = await import_file(hat, CsvPlug(key="id"), ("id,text\n" + "\n".join(rows)).encode(), "big.csv")
        assert summary.new == 11
        [refused] = summary.refused
        assert refused.where == "line 9" and refused.why.startswith("the HAT refused it: ")
        assert "r7" not in await records(hat, "big", "csv")


async def test_the_hatd_plug_command(client: TestClient[Any, Any], tmp_path: Path) -> None:
    (tmp_path / "run.gpx").write_text(GPX)
    (tmp_path / "work.ics").write_text(ICS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HAT_", "HATD_"))}
    env |= {"HAT_USERNAME": OWNER[0], "HAT_PASSWORD": OWNER[1], "HATD_PORT": "not a port"}

    async def hatd(*args: str, environ: dict[str, str] = env) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hatd", "plug", *args, cwd=REPO, env=environ,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    code, out, err = await hatd("gpx", str(tmp_path / "run.gpx"), "--hat", base(client))
    assert (code, err) == (1, "")  # three points were refused
    assert out.splitlines()[0] == "run.gpx: 5 new, 0 already there, 3 refused"
    assert "  refused <trkpt> on line 17: lat='north' is not a number from -90 to 90" in out
    code, out, _ = await hatd("gpx", str(tmp_path / "run.gpx"), "--hat", base(client))
    assert out.splitlines()[0] == "run.gpx: 0 new, 5 already there, 3 refused"
    code, out, _ = await hatd("ical", str(tmp_path / "work.ics"), str(tmp_path / "none.ics"), "--hat", base(client))
    assert out.splitlines()[0] == "work.ics: 3 new, 0 already there, 3 refused; 4 entities made"
    assert code == 1 and out.splitlines()[-1].startswith(
        f"{tmp_path / 'none.ics'}: refused, nothing stored: cannot read it"
    )

    no_account = {k: v for k, v in env.items() if k not in ("HAT_USERNAME", "HAT_PASSWORD")}
    code, _, err = await hatd("gpx", str(tmp_path / "run.gpx"), "--hat", base(client), environ=no_account)
    assert (code, err.strip()) == (
        1,
        "hatd plug: no account: set HAT_TOKEN, or HAT_USERNAME and HAT_PASSWORD (or run it on a terminal)",
    )
    wrong = env | {"HAT_PASSWORD": "wrong"}
    code, _, err = await hatd("gpx", str(tmp_path / "run.gpx"), "--hat", base(client), environ=wrong)
    assert code == 1 and ": 401 " in err and "Wrong username or password" in err
    code, _, err = await hatd("gpx", str(tmp_path / "run.gpx"))
    assert (code, err.strip()) == (2, "hatd plug: give the HAT's address: --hat URL (or HAT_URL)")


async def test_the_owner_uploads_files_on_the_data_page(client: TestClient[Any, Any]) -> None:
    csrf = await logged_in(client)
    assert 'action="/owner/upload"' in await (await client.get("/owner")).text()

    async def upload(name: str, content: str, **fields: str) -> tuple[int, str]:
        form = aiohttp.FormData({"csrf": csrf, **fields})
        form.add_field("file", content.encode(), filename=name, content_type="application/octet-stream")
        response = await client.post("/owner/upload", data=form, allow_redirects=False)
        return response.status, re.sub(r"\s+", " ", await response.text())

    status, page = await upload("work.ics", ICS)
    assert status == 200
    assert (
        "<strong>3</strong> new records, <strong>0</strong> already there, <strong>3</strong> refused; <strong>4</strong> entities made."
        in page
    )
    assert "<li><strong>VEVENT on line 68</strong>: it has no UID, which names an event</li>" in page
    status, page = await upload("work.ics", ICS)
    assert "<strong>0</strong> new records, <strong>3</strong> already there" in page
    status, page = await upload("shop.csv", "when,what\n2026-01-01T10:00:00Z,tea\n", table="Shopping", time="when")
    assert (status, "<strong>1</strong> new record, " in page) == (200, True)
    async with AsyncHat(base(client), await login(client, *OWNER)) as hat:
        assert len(await records(hat, "events", "ical")) == 3
        [row] = (await records(hat, "Shopping", "csv")).values()
        assert (row["what"], row["@time"]) == ("tea", "2026-01-01T10:00:00.000Z")
        assert len(await hat.entities("event")) == 3

        status, page = await upload("run.gpx", GPX.replace("<trkseg>", "<trkseg", 1))
        assert status == 400 and "nothing from it was stored: line 13: not well-formed XML" in page
        assert await hat.find_table("points", "gpx") is None
    status, page = await upload("notes.txt", "hello")
    assert status == 400 and "is not a .ics, .gpx or .csv file" in page
    status, page = await upload("run.gpx", GPX, key="id")
    assert status == 400 and "table, key and time are for CSV files" in page
    form = aiohttp.FormData({"csrf": "forged"})
    form.add_field("file", b"x", filename="a.csv")
    assert (await client.post("/owner/upload", data=form)).status == 403


async def test_a_hat_that_stops_the_import_is_said_so(client: TestClient[Any, Any]) -> None:
    async with AsyncHat(base(client), "not-a-token") as hat:
        summary = await import_file(hat, CsvPlug(), b"a\n1\n", "one.csv")
    assert summary.error is None and summary.stopped is not None and not summary.ok
    assert "401" in summary.stopped and "/data/table" in summary.stopped
    assert summary.lines() == ["one.csv: 0 new, 0 already there, 0 refused", f"  stopped: {summary.stopped}"]


def test_an_odd_event_is_refused_alone_and_never_stops_the_file() -> None:
    calendar = (
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20260101T100000Z\r\nDTSTART:20260102T100000Z\r\n"
        "END:VEVENT\r\nBEGIN:VEVENT\r\nUID:b\r\nDTSTART:20260101T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    parsed = IcalPlug().parse(calendar.encode(), "odd.ics")
    assert [item.key for item in parsed.items] == ["b"]
    assert [str(r) for r in parsed.refused] == ["VEVENT on line 2: it has 2 DTSTART lines; an event has one"]


ODD_TIMES_GPX = """<?xml version="1.0"?>
<gpx version="1.1" creator="t" xmlns="http://www.topografix.com/GPX/1/1">
 <trk><name>Run</name><trkseg>
  <trkpt lat="51.0" lon="0.1"><time>2026-01-05T07:00:00Z</time></trkpt>
  <trkpt lat="51.1" lon="0.1"><time>9999-12-31T23:59:59-01:00</time></trkpt>
  <trkpt lat="51.2" lon="0.1"><time>0001-01-01T00:30:00+01:00</time></trkpt>
 </trkseg></trk>
 <wpt lat="51.3" lon="0.1"><time>9999-12-31T23:59:59-01:00</time></wpt>
</gpx>
"""


async def test_a_time_out_of_range_refuses_its_point_not_the_upload(client: TestClient[Any, Any]) -> None:
    """A time that is a date beyond the year 9999 (or before 1) in UTC refuses its point by its line;
    the upload page answers with the summary, not a 500."""
    csrf = await logged_in(client)
    form = aiohttp.FormData({"csrf": csrf})
    form.add_field("file", ODD_TIMES_GPX.encode(), filename="run.gpx", content_type="application/octet-stream")
    response = await client.post("/owner/upload", data=form, allow_redirects=False)
    page = re.sub(r"\s+", " ", await response.text())
    assert response.status == 200
    assert "<strong>2</strong> new records, <strong>0</strong> already there, <strong>3</strong> refused" in page
    for line in (5, 6, 8):
        assert f"on line {line}</strong>: &lt;time&gt; " in page and "is not a time" in page


async def test_a_plug_that_fails_unexpectedly_refuses_the_file_and_raises_nothing(client: TestClient[Any, Any]) -> None:
    class Broken(CsvPlug):
        def parse(self, data: bytes, name: str, *, max_items: int | None = None) -> Any:
            raise RecursionError("maximum recursion depth exceeded")

    async with await AsyncHat.login(base(client), *OWNER) as hat:
        summary = await import_file(hat, Broken(), b"a\n1\n", "x.csv")
        assert summary.error == "it cannot be read: RecursionError: maximum recursion depth exceeded"
        assert await hat.sources() == []


async def test_a_broken_csv_row_is_refused_and_the_rows_after_it_go_in(client: TestClient[Any, Any]) -> None:
    """A broken quote, a quote never closed, or a cell longer than the csv module's default limit
    refuses its own row by its line; the import goes on with the next physical line."""
    rows = ["n,v", "1,ok1", '2,"bad"x', "3,ok3", "4," + "x" * 200_000, "5,ok5", '6,"never closed', "7,ok7"]
    async with await AsyncHat.login(base(client), *OWNER) as hat:
        summary = await import_file(hat, CsvPlug(key="n"), ("\n".join(rows) + "\n").encode(), "x.csv")
        assert refusals(summary) == [
            "line 3: ',' expected after '\"'",
            "line 7: unexpected end of data",
        ]
        stored = await records(hat, "x", "csv")
        assert sorted(stored) == ["1", "3", "4", "5", "7"]
        assert stored["4"]["v"] == "x" * 200_000


RUN_GPX = """<?xml version="1.0"?>
<gpx version="1.1" creator="t" xmlns="http://www.topografix.com/GPX/1/1">
 <trk><name>Run</name><trkseg>
  <trkpt lat="{lat}" lon="0.1"><time>2026-01-05T07:00:00Z</time></trkpt>
  <trkpt lat="51.1" lon="0.1"><time>2026-01-05T07:00:05Z</time></trkpt>
  <trkpt lat="51.2" lon="0.1"><time>2026-01-05T07:00:10Z</time></trkpt>
 </trkseg></trk>
</gpx>
"""


async def test_a_corrected_gpx_file_adds_its_point_to_the_same_track(client: TestClient[Any, Any]) -> None:
    """A track is known by its first time whether or not that point was refused, so importing the
    file again once the point is fixed adds that point to the track and stores nothing twice."""
    track = "Run 2026-01-05T07:00:00+00:00"
    async with await AsyncHat.login(base(client), *OWNER) as hat:
        first = await import_file(hat, GpxPlug(), RUN_GPX.format(lat="5l.0").encode(), "run.gpx")
        assert (first.new, refusals(first)) == (3, ["<trkpt> on line 4: lat='5l.0' is not a number from -90 to 90"])
        fixed = await import_file(hat, GpxPlug(), RUN_GPX.format(lat="51.0").encode(), "run.gpx")
        assert (fixed.new, fixed.existing, fixed.refused) == (1, 3, [])
        assert list(await records(hat, "tracks", "gpx")) == [track]
        points = await records(hat, "points", "gpx")
        assert sorted(points) == [f"{track} @ 2026-01-05T07:00:{s}+00:00" for s in ("00", "05", "10")]
        assert {values["track"] for values in points.values()} == {track}


MOVED_INSTANCE = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//t//t//EN
BEGIN:VEVENT
UID:weekly-1
DTSTART;TZID=Europe/Berlin:20260105T100000
RECURRENCE-ID{rid}
SUMMARY:Standup moved
END:VEVENT
END:VCALENDAR
"""


async def test_one_recurrence_instance_written_two_ways_is_one_record(client: TestClient[Any, Any]) -> None:
    """A RECURRENCE-ID is known by its UTC time, however the file writes it (a floating or all-day
    one as it is)."""
    async with await AsyncHat.login(base(client), *OWNER) as hat:
        berlin = await import_file(
            hat, IcalPlug(), MOVED_INSTANCE.format(rid=";TZID=Europe/Berlin:20260105T090000").encode(), "a.ics"
        )
        utc = await import_file(hat, IcalPlug(), MOVED_INSTANCE.format(rid=":20260105T080000Z").encode(), "b.ics")
        assert (berlin.new, utc.new, utc.existing) == (1, 0, 1)
        floating = await import_file(hat, IcalPlug(), MOVED_INSTANCE.format(rid=":20260105T080000").encode(), "c.ics")
        day = await import_file(hat, IcalPlug(), MOVED_INSTANCE.format(rid=";VALUE=DATE:20260105").encode(), "d.ics")
        assert (floating.new, day.new) == (1, 1)
        stored = await records(hat, "events", "ical")
        assert sorted(stored) == [
            "weekly-1 2026-01-05",
            "weekly-1 2026-01-05T08:00:00",
            "weekly-1 2026-01-05T08:00:00+00:00",
        ]
        assert stored["weekly-1 2026-01-05T08:00:00+00:00"]["recurrenceId"] == "2026-01-05T09:00:00+01:00"


def test_a_plug_stops_reading_at_the_item_cap() -> None:
    """Each plug refuses a file with more items than the cap as soon as it reads one too many, so
    an import's memory is bounded by the cap, not by the file."""
    refused = re.escape("more than 3 items (rows, events, tracks and points), the most one import here takes")
    csv_rows = 'n,v\n1,a\n2,b\n\n3,"c"x\n4,d\n'
    assert len(CsvPlug().parse(csv_rows.encode(), "x.csv", max_items=4).items) == 3
    with pytest.raises(FileRefused, match=f"^line 6: {refused}: split the file, or import it with `hatd plug`$"):
        CsvPlug().parse(csv_rows.encode(), "x.csv", max_items=3)
    assert len(GpxPlug().parse(ODD_TIMES_GPX.encode(), "x.gpx", max_items=5).refused) == 3
    with pytest.raises(FileRefused, match=f"^line 6: {refused}"):  # the track, two points, then the third
        GpxPlug().parse(ODD_TIMES_GPX.encode(), "x.gpx", max_items=3)
    assert len(IcalPlug().parse(ICS.encode(), "x.ics", max_items=6).refused) == 3
    with pytest.raises(FileRefused, match=f"^line 57: {refused}"):  # the fourth VEVENT
        IcalPlug().parse(ICS.encode(), "x.ics", max_items=3)


async def test_the_upload_page_caps_items_and_the_refusals_it_lists(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    csrf = await logged_in(client)

    async def upload(name: str, content: str) -> tuple[int, str]:
        form = aiohttp.FormData({"csrf": csrf})
        form.add_field("file", content.encode(), filename=name, content_type="application/octet-stream")
        response = await client.post("/owner/upload", data=form, allow_redirects=False)
        return response.status, re.sub(r"\s+", " ", await response.text())

    rows = "n,v\n" + "".join(f"{i},ok,extra\n" for i in range(105)) + "105,ok\n"
    status, page = await upload("many.csv", rows)
    assert status == 200 and "<strong>105</strong> refused" in page
    assert page.count("cells where the header has 2</li>") == 100
    assert "<strong>line 101</strong>" in page and "<strong>line 102</strong>" not in page
    assert "And 5 more refused, not listed here; <code>hatd plug</code> lists every one." in page

    monkeypatch.setattr(upload_page, "MAX_ITEMS", 3)
    status, page = await upload("four.csv", "n\n1\n2\n3\n4\n")
    assert status == 400
    assert "nothing from it was stored: line 5: more than 3 items (rows, events, tracks and points)" in page
    async with AsyncHat(base(client), await login(client, *OWNER)) as hat:
        assert await hat.find_table("four", "csv") is None


async def test_the_upload_token_lives_as_long_as_the_upload_may_take(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    csrf = await logged_in(client)
    lifetimes: list[int | None] = []
    issue = TokenService.issue

    def spy(self: TokenService, *args: Any, **options: Any) -> str:
        lifetimes.append(options.get("ttl"))
        return issue(self, *args, **options)

    monkeypatch.setattr(TokenService, "issue", spy)

    async def upload() -> tuple[int, str]:
        form = aiohttp.FormData({"csrf": csrf})
        form.add_field("file", ICS.encode(), filename="work.ics", content_type="application/octet-stream")
        response = await client.post("/owner/upload", data=form, allow_redirects=False)
        return response.status, re.sub(r"\s+", " ", await response.text())

    assert (await upload())[0] == 200 and lifetimes == [600]
    monkeypatch.setattr(upload_page, "TIMEOUT", 0.001)  # the whole upload, not one request, is bounded
    status, page = await upload()
    assert status == 200 and lifetimes[1:] == [1]
    assert "The import stopped: it took longer than 0 minutes; what went in stays." in page


async def test_a_file_is_read_off_the_event_loop(client: TestClient[Any, Any]) -> None:
    """Parsing a big file takes seconds; on the upload page that must not stop the server."""
    loop_thread = threading.get_ident()
    parsed_in: list[int] = []

    class Watched(CsvPlug):
        def parse(self, data: bytes, name: str, *, max_items: int | None = None) -> Any:
            parsed_in.append(threading.get_ident())
            return super().parse(data, name, max_items=max_items)

    async with await AsyncHat.login(base(client), *OWNER) as hat:
        assert (await import_file(hat, Watched(), b"a\n1\n", "w.csv")).new == 1
    assert len(parsed_in) == 1 and parsed_in[0] != loop_thread
