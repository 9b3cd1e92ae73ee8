"""Context benchmark: GET /person/{id}/values for a person with 100 links and 50 dynamic
properties over fields of 1,000 values each, against a real `hatd serve` on the embedded
PostgreSQL, beside the bare SQL query that builds the same JSON (the ceiling).

Prints figures; asserts nothing about time."""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import aiohttp
import asyncpg
from common import OWNER, percentile, records_with_values, request_json, served_hat

from hatd.db import queries

ENTITIES = queries("entities")
LINKS = 100
PROPERTIES = 50
VALUES_PER_FIELD = 1_000
REQUESTS = 20


async def bench(base: str, dsn: str) -> None:
    async with aiohttp.ClientSession() as http:
        login = await request_json(
            http, "GET", f"{base}/users/access_token", headers={"username": OWNER[0], "password": OWNER[1]}
        )
        headers = {"X-Auth-Token": login["accessToken"]}  # type: ignore[index]

        async def post(path: str, body: object) -> dict:
            return await request_json(http, "POST", base + path, json=body, headers=headers)  # type: ignore[return-value]

        table = await post(
            "/data/table",
            {"name": "sensors", "source": "bench", "fields": [{"name": f"f{i}"} for i in range(PROPERTIES)]},
        )
        fields = [f["id"] for f in table["fields"]]
        for start in range(0, VALUES_PER_FIELD, 100):
            await post("/data/record/values", records_with_values(fields, start, 100))
        me = await post("/person", {"name": "Me", "personId": "me.bench"})
        for n in range(LINKS):
            kind = ("location", "organisation")[n % 2]
            other = await post(f"/{kind}", {"name": f"{kind} {n}"})
            await post(f"/person/{me['id']}/{kind}/{other['id']}", {"relationshipType": "knows"})
        properties = await request_json(http, "GET", f"{base}/property", headers=headers)
        property_id = properties[0]["id"]  # type: ignore[index]
        for field in fields:
            await post(
                f"/person/{me['id']}/property/dynamic/{property_id}",
                {"relationshipType": "reading", "field": {"id": field}},
            )

        url = f"{base}/person/{me['id']}/values"
        samples, size = [], 0
        for attempt in range(REQUESTS + 2):
            start = time.perf_counter()
            async with http.get(url, headers=headers) as response:
                body = await response.read()
                assert response.status == 200, body[:300]
            if attempt >= 2:
                samples.append(time.perf_counter() - start)
            size = len(body)

    conn = await asyncpg.connect(dsn)
    bare = []
    try:
        for attempt in range(REQUESTS + 2):
            start = time.perf_counter()
            text = await conn.fetchval(ENTITIES.entity_values_json, "person", me["id"])
            if attempt >= 2:
                bare.append(time.perf_counter() - start)
        assert text is not None and len(text) == size, (len(text or ""), size)
    finally:
        await conn.close()
    http_p50, sql_p50 = statistics.median(samples) * 1000, statistics.median(bare) * 1000
    print(f"hatd context benchmark: {os.cpu_count()} cores, embedded PostgreSQL, server in its own process")
    shape = f"{LINKS} links, {PROPERTIES} dynamic properties x {VALUES_PER_FIELD:,} values"
    print(f"GET /person/{{id}}/values: {shape}, body {size / 1e6:.1f} MB")
    print(
        f"  HTTP      p50 {http_p50:8.1f} ms   p99 {percentile(samples, 0.99) * 1000:8.1f} ms   ({REQUESTS} requests)"
    )
    print(f"  bare SQL  p50 {sql_p50:8.1f} ms   p99 {percentile(bare, 0.99) * 1000:8.1f} ms")
    print(f"  HTTP/SQL  {http_p50 / sql_p50:.2f}x")


def main() -> None:
    with served_hat({"HATD_LOG_LEVEL": "warning", "HATD_BCRYPT_ROUNDS": "4", "HATD_LOGIN_BURST": "1000000"}) as (
        base,
        dsn,
    ):
        asyncio.run(bench(base, dsn))


if __name__ == "__main__":
    main()
