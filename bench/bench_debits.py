"""Data debit benchmark: GET /dataDebit/{key}/values for a contextless bundle of 3 tables x 10,000
records and for a contextual bundle of 100 entities, as the app that proposed it, against a real
`hatd serve` on the embedded PostgreSQL, beside the bare SQL that builds the same bundle JSON.

Prints figures; asserts nothing about time."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import statistics
import time
from typing import Any

import aiohttp
import asyncpg
from common import OWNER, percentile, records_with_values, request_json, served_hat

from hatd.db import queries

BUNDLES = queries("bundles")
RAW = queries("raw")
TABLES, RECORDS, FIELDS = 3, 10_000, 5
ENTITIES = 100
REQUESTS = 10


async def _timed(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[list[float], int]:
    samples, size = [], 0
    for attempt in range(REQUESTS + 1):
        start = time.perf_counter()
        async with http.get(url, headers=headers) as response:
            body = await response.read()
            assert response.status == 200, body[:300]
        if attempt:
            samples.append(time.perf_counter() - start)
        size = len(body)
    return samples, size


async def _bare_contextless(conn: asyncpg.Connection, bundle_id: int, limit: int) -> None:
    """The queries hatd runs for a page of a contextless bundle, each group's records in one go."""
    await conn.fetchval(BUNDLES.bundle_values_envelope, bundle_id, "marker")
    rows = (await conn.fetch(BUNDLES.bundle_record_page, bundle_id, None, None, limit, None, None, None))[:limit]
    for group in await conn.fetch(BUNDLES.bundle_groups, bundle_id):
        ids = [r["id"] for r in rows if r["position"] == group["position"]]
        await conn.fetchval(RAW.records_values_json, group["table_id"], ids, group["within"], group["fields"], False)


async def _bare_contextual(conn: asyncpg.Connection, bundle_id: int, limit: int) -> None:
    """The queries hatd runs for a page of a contextual bundle, its entities in one go."""
    ids = [r["id"] for r in await conn.fetch(BUNDLES.contextual_entity_page, bundle_id, None, limit + 1)][:limit]
    await conn.fetchval(BUNDLES.contextual_values_json, bundle_id, ids)


def _line(label: str, http: list[float], bare: list[float], size: int) -> None:
    h, s = statistics.median(http) * 1000, statistics.median(bare) * 1000
    print(f"  {label:<44} body {size / 1e6:5.1f} MB | HTTP p50 {h:7.1f} ms p99 {percentile(http, 0.99) * 1000:7.1f} ms"
          f" | bare SQL p50 {s:7.1f} ms | HTTP/SQL {h / s:.2f}x")  # fmt: skip


async def bench(base: str, dsn: str) -> None:
    async with aiohttp.ClientSession() as http:
        owner = await request_json(
            http, "GET", f"{base}/users/access_token", headers={"username": OWNER[0], "password": OWNER[1]}
        )
        oh = {"X-Auth-Token": owner["accessToken"]}

        async def post(path: str, body: Any, headers: dict[str, str] = oh) -> Any:
            return await request_json(http, "POST", base + path, json=body, headers=headers)

        tables = []
        for t in range(TABLES):
            table = await post(
                "/data/table",
                {"name": f"t{t}", "source": "bench", "fields": [{"name": f"f{i}"} for i in range(FIELDS)]},
            )
            fields = [f["id"] for f in table["fields"]]
            for start in range(0, RECORDS, 1000):
                await post("/data/record/values", records_with_values(fields, start, 1000))
            tables.append(table)
        prop = (await request_json(http, "GET", f"{base}/property", headers=oh))[0]["id"]
        field = tables[0]["fields"][0]["id"]
        for n in range(ENTITIES):
            person = await post("/person", {"name": f"p{n}", "personId": f"p{n}.bench"})
            await post(
                f"/person/{person['id']}/property/dynamic/{prop}",
                {"relationshipType": "reading", "field": {"id": field}},
            ) if n < 10 else None
        account = {"email": "app@bench.test", "pass": "app-password", "name": "app", "role": "dataDebit"}
        await post("/users/user", account)
        app = await request_json(
            http,
            "GET",
            f"{base}/users/access_token",
            headers={"username": "app@bench.test", "password": "app-password"},
        )
        ah = {"X-Auth-Token": app["accessToken"]}
        now = dt.datetime.now(dt.UTC)
        window = {
            "startDate": (now - dt.timedelta(days=1)).isoformat(),
            "endDate": (now + dt.timedelta(days=1)).isoformat(),
            "rolling": False,
            "sell": False,
            "price": 0,
        }
        bundle_tables = [{"name": f"t{t}", "table": {"id": tables[t]["id"]}} for t in range(TABLES)]
        contextless = await post(
            "/dataDebit/propose",
            {**window, "name": "tables", "kind": "contextless",
             "bundleContextless": {"name": "three tables", "bundleTable": bundle_tables}},
            ah,
        )  # fmt: skip
        contextual = await post(
            "/dataDebit/propose",
            {**window, "name": "people", "kind": "contextual",
             "bundleContextual": {"name": "everyone", "entities": [{"entityKind": "person"}]}},
            ah,
        )  # fmt: skip
        for debit in (contextless, contextual):
            await request_json(http, "PUT", f"{base}/dataDebit/{debit['key']}/enable", headers=oh)
        less_http, less_size = await _timed(
            http, f"{base}/dataDebit/{contextless['key']}/values?limit={RECORDS * TABLES}", ah
        )
        ctx_http, ctx_size = await _timed(http, f"{base}/dataDebit/{contextual['key']}/values", ah)

    conn = await asyncpg.connect(dsn)
    try:
        less_bare, ctx_bare = [], []
        for attempt in range(REQUESTS + 1):
            start = time.perf_counter()
            await _bare_contextless(conn, contextless["bundleContextless"]["id"], RECORDS * TABLES)
            if attempt:
                less_bare.append(time.perf_counter() - start)
            start = time.perf_counter()
            await _bare_contextual(conn, contextual["bundleContextual"]["id"], ENTITIES)
            if attempt:
                ctx_bare.append(time.perf_counter() - start)
    finally:
        await conn.close()
    print(f"hatd data debit benchmark: {os.cpu_count()} cores, embedded PostgreSQL, server in its own process")
    print(f"GET /dataDebit/{{key}}/values as the proposing app, {REQUESTS} requests each:")
    _line(f"contextless, {TABLES} tables x {RECORDS:,} records x {FIELDS} fields", less_http, less_bare, less_size)
    _line(f"contextual, {ENTITIES} people (10 with a 10k-value property)", ctx_http, ctx_bare, ctx_size)


def main() -> None:
    settings = {
        "HATD_LOG_LEVEL": "warning",
        "HATD_BCRYPT_ROUNDS": "4",
        "HATD_LOGIN_BURST": "1000000",
        "HATD_VALUES_MAX_LIMIT": str(RECORDS * TABLES),
        "HATD_MAX_BODY": str(64 * 1024 * 1024),
    }
    with served_hat(settings) as (base, dsn):
        asyncio.run(bench(base, dsn))


if __name__ == "__main__":
    main()
