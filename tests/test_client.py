"""hatd.client against a real hatd over HTTP: logging in, tables found or made, records stored in
batches, values read over every page, context, bundles and debits; the sync client alike; and,
against a small fake server, which answers it retries (429, 503 with Retry-After) and which not."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hatd.client import AsyncHat, Hat, HatError, NewRecord, TableSpec
from hatd.client.aio import next_link, retry_delay
from tests.conftest import OWNER


def base(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("/"))


async def test_tables_are_found_or_made_and_grow_the_fields_asked_for(client: TestClient[Any, Any]) -> None:
    async with await AsyncHat.login(base(client), *OWNER) as hat:
        made = await hat.table("runs", "watch", ["distance"], [TableSpec("laps", "watch", ["lap"])])
        assert (made.name, made.source, [f.name for f in made.fields]) == ("runs", "watch", ["distance"])
        assert [(t.name, [f.name for f in t.fields]) for t in made.subtables] == [("laps", ["lap"])]
        again = await hat.table("runs", "watch", ["distance", "pace"], [TableSpec("laps", "watch", ["lap", "hr"])])
        assert again.id == made.id
        assert [f.name for f in again.fields] == ["distance", "pace"]
        assert again.field("distance") == made.field("distance")
        assert [f.name for f in again.subtable("laps").fields] == ["lap", "hr"]
        assert await hat.table("runs", "watch", ["distance"]) == await hat.get_table(made.id)
        assert await hat.find_table("runs", "elsewhere") is None
        assert [t.id for t in await hat.sources()] == [made.id]


async def test_records_go_in_batches_and_every_page_is_read(client: TestClient[Any, Any]) -> None:
    sent: list[int] = []
    async with await AsyncHat.login(base(client), *OWNER, batch_values=5) as hat:
        table = await hat.table("readings", "meter", ["kwh", "note"])
        kwh, note = table.field("kwh"), table.field("note")
        start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        records = [
            NewRecord(
                f"r{i}", {kwh: i * 1.5, note: f"reading {i}"} if i % 2 else {kwh: i}, start + dt.timedelta(hours=i)
            )
            for i in range(9)
        ]
        original = hat.create_batch

        async def counting(batch: Any) -> Any:
            sent.append(sum(len(r.values) for r in batch))
            return await original(batch)

        hat.create_batch = counting  # type: ignore[method-assign]
        stored = await hat.create_records(records)
        assert [r.name for r in stored] == [f"r{i}" for i in range(9)]
        assert sent == [4, 5, 4]  # at most five values a request (records of 1, 2, 1, 2, ...); none split
        assert stored[3].last_updated == "2026-01-01T03:00:00.000Z"

        read = [item async for item in hat.table_values(table, page_size=2)]
        assert [item["name"] for item in read] == [f"r{i}" for i in reversed(range(9))]
        assert [item["id"] for item in read] == [r.id for r in reversed(stored)]
        values = [value["value"] async for value in hat.field_values(kwh, page_size=4)]
        assert values == ["8", "10.5", "6", "7.5", "4", "4.5", "2", "1.5", "0"]
        window = [
            v["value"]
            async for v in hat.field_values(note, start="2026-01-01T04:00:00Z", end=start + dt.timedelta(hours=6))
        ]
        assert window == ["reading 5"]
        one = await hat.record_values(stored[1])
        assert one["name"] == "r1"
        await hat.add_values(stored[0], {note: "added later"})
        assert [v["value"] async for v in hat.field_values(note)][-1] == "added later"


async def test_refusals_carry_the_servers_message_and_cause(client: TestClient[Any, Any]) -> None:
    with pytest.raises(HatError) as wrong:
        await AsyncHat.login(base(client), OWNER[0], "not-the-password")
    assert (wrong.value.status, wrong.value.bad_input) == (401, True)
    assert wrong.value.cause == "Wrong username or password"
    async with await AsyncHat.login(base(client), *OWNER) as hat:
        with pytest.raises(HatError) as missing:
            await hat.create_field(999999, "x")
        assert missing.value.status in (400, 404) and missing.value.cause
        table = await hat.table("t", "s", ["f"])
        with pytest.raises(HatError) as bad:
            await hat.create_records([NewRecord("x", {table.field("f"): "v"}, "not a time")])
        assert bad.value.status == 400
        assert bad.value.message == "Invalid request"
        assert "lastUpdated" in bad.value.cause
        assert "POST" in str(bad.value) and "/data/record/values" in str(bad.value)
    unreachable = AsyncHat("http://127.0.0.1:9", "token", retries=0)
    with pytest.raises(HatError) as down:
        await unreachable.get_table(1)
    await unreachable.close()
    assert down.value.status == 0 and down.value.message == "The HAT cannot be reached"


async def test_context_bundles_and_debits(client: TestClient[Any, Any]) -> None:
    async with await AsyncHat.login(base(client), *OWNER) as hat:
        table = await hat.table("visits", "maps", ["place", "when"])
        record = (
            await hat.create_records([NewRecord("v1", {table.field("place"): "Kew", table.field("when"): "noon"})])
        )[0]
        place = await hat.create_entity("location", "Kew Gardens")
        trip = await hat.create_entity("event", "A walk")
        await hat.link_entities(trip, place, "location")
        address = (await hat.properties("Location Address"))[0]
        assert await hat.properties("No such property") == []
        await hat.add_property(place, address["id"], table.field("place"), "address", record)
        [link] = await hat.property_links(place)
        assert (link["relationshipType"], link["record"]["id"], link["field"]["id"]) == (
            "address",
            record.id,
            table.field("place").id,
        )
        assert [e.name for e in await hat.entities("location")] == ["Kew Gardens"]
        values = await hat.entity_values(trip)
        assert values["locations"][0]["location"]["name"] == "Kew Gardens"
        with pytest.raises(ValueError, match="not an entity kind"):
            await hat.entities("planet")

        bundle = await hat.create_contextless_bundle("my visits", {"visits": table})
        assert (await hat.contextless_bundle(bundle["id"]))["name"] == "my visits"
        pages = [page async for page in hat.contextless_bundle_values(bundle["id"])]
        assert "v1" in str(pages[0]["dataGroups"])
        contextual = await hat.create_contextual_bundle("places", [{"entityKind": "location"}])
        assert [item["location"]["name"] for item in await hat.contextual_bundle_values(contextual["id"])] == [
            "Kew Gardens"
        ]

        now = dt.datetime.now(dt.UTC)
        debit = await hat.propose_debit(
            "share visits", start=now - dt.timedelta(days=1), end=now + dt.timedelta(days=1), contextless=bundle["id"]
        )
        assert (debit["enabled"], debit["kind"]) == (False, "contextless")
        await hat.enable_debit(debit["key"])
        assert (await hat.debit(debit["key"]))["enabled"] is True
        shared = [page async for page in hat.debit_values(debit["key"])]
        assert "Kew" in str(shared[0]["bundleContextless"])
        with pytest.raises(ValueError, match="give one bundle"):
            await hat.propose_debit("none", start=now, end=now)


async def test_the_sync_client_does_the_same(client: TestClient[Any, Any]) -> None:
    def work() -> tuple[list[str], int, int]:
        with Hat.login(base(client), *OWNER, batch_values=3) as hat:
            table = hat.table("notes", "diary", ["text"])
            field = table.field("text")
            hat.create_records([NewRecord(f"n{i}", {field: f"note {i}"}, 1_700_000_000 + i) for i in range(7)])
            texts = [value["value"] for value in hat.field_values(field, page_size=2)]
            first_two = []
            for item in hat.table_values(table, page_size=2):  # leaving early closes the pages
                first_two.append(item["name"])
                if len(first_two) == 2:
                    break
            again = hat.table("notes", "diary", ["text"])
            return texts + first_two, again.id, table.id

    texts, again, first = await asyncio.to_thread(work)
    assert texts == [f"note {i}" for i in reversed(range(7))] + ["n6", "n5"]
    assert again == first


async def test_only_what_the_server_calls_temporary_is_retried(aiohttp_server: Any) -> None:
    calls: list[str] = []
    plan = {"/busy": [503, 503, 200], "/slow": [429, 200], "/bad": [400, 200], "/always": [503] * 10}

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.path)
        status = plan[request.path].pop(0)
        if status == 200:
            return web.json_response({"ok": request.headers.get("X-Auth-Token")})
        headers = {"Retry-After": "0"} if request.path != "/slow" else {"Retry-After": "1"}
        return web.json_response({"message": "Nope", "cause": f"status {status}"}, status=status, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{name}", handler)
    server = await aiohttp_server(app)
    async with AsyncHat(str(server.make_url("/")), "tok", retries=3) as hat:
        assert await hat.request("POST", "/busy", {"a": 1}) == {"ok": "tok"}
        began = asyncio.get_running_loop().time()
        assert await hat.request("GET", "/slow") == {"ok": "tok"}
        assert asyncio.get_running_loop().time() - began >= 0.9  # Retry-After: 1 was waited out
        with pytest.raises(HatError) as bad:
            await hat.request("POST", "/bad", {})
        assert (bad.value.status, bad.value.message, bad.value.cause) == (400, "Nope", "status 400")
        with pytest.raises(HatError) as busy:
            await hat.request("GET", "/always")
        assert busy.value.status == 503 and not busy.value.bad_input
    assert calls == ["/busy"] * 3 + ["/slow"] * 2 + ["/bad"] + ["/always"] * 4


def test_link_and_retry_after_parsing() -> None:
    assert (
        next_link('<http://h/data/field/1/values?cursor=abc>; rel="next"') == "http://h/data/field/1/values?cursor=abc"
    )
    assert next_link('<http://h/a>; rel="prev", <http://h/b>; rel=next') == "http://h/b"
    assert next_link(None) is None and next_link('<http://h/a>; rel="prev"') is None
    assert retry_delay("7", 0) == 7
    assert retry_delay(None, 0) == 0.5 and retry_delay(None, 3) == 4 and retry_delay(None, 20) == 30
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 25 <= retry_delay(later, 0) <= 30
    assert retry_delay("garbage", 1) == 1.0


async def test_a_link_from_another_address_is_read_from_the_clients(make_client: Any) -> None:
    """The HAT writes its Link with its public address; behind a proxy or a port map, the client
    follows it on the address it was given."""
    client = await make_client(hat_address="https://hat.elsewhere.test")
    async with await AsyncHat.login(base(client), *OWNER) as hat:
        table = await hat.table("t", "s", ["f"])
        await hat.create_records([NewRecord(f"r{i}", {table.field("f"): i}) for i in range(3)])
        assert len([v async for v in hat.field_values(table.field("f"), page_size=1)]) == 3


async def test_a_redirect_is_not_followed_and_sends_nothing_elsewhere(aiohttp_server: Any) -> None:
    """A server (or something in front of it) answering 307 to another origin gets neither the
    password nor the token there, nor the body again: the client raises, with the status and where
    it was sent."""
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append((request.method, dict(request.headers), await request.read()))
        return web.json_response({"accessToken": "stolen", "userId": "u"})

    other_app = web.Application()
    other_app.router.add_route("*", "/{path:.*}", elsewhere)
    other = await aiohttp_server(other_app)

    async def hop(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(str(other.make_url(request.path_qs)))

    hop_app = web.Application()
    hop_app.router.add_route("*", "/{path:.*}", hop)
    first = await aiohttp_server(hop_app)
    location = str(other.make_url("/users/access_token"))
    async with AsyncHat(str(first.make_url("/"))) as hat:
        with pytest.raises(HatError) as login:
            await hat.log_in(*OWNER)
    assert (login.value.status, login.value.location) == (307, location)
    assert f"307 The HAT answered with a redirect, not followed: to {location}" in str(login.value)
    async with AsyncHat(str(first.make_url("/")), "OWNER-TOKEN") as hat:
        with pytest.raises(HatError) as write:
            await hat.request("POST", "/api/v2.6/data/x", {"a": 1})
    assert (write.value.status, write.value.location) == (307, str(other.make_url("/api/v2.6/data/x")))
    assert write.value.bad_input is False  # not a request to give up on for good: the address is wrong
    assert seen == []
