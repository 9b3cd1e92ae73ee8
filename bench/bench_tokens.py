"""Token benchmark: issue and validate latency, and /users/access_token/validate throughput at
concurrency 1 and 16, against a real `hatd serve` process on the embedded PostgreSQL.

Prints figures; asserts nothing. The ceiling printed beside the HTTP figures is the bare SQL
query the auth middleware runs per request (caller_status), straight through asyncpg."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable

import aiohttp
import asyncpg
from common import OWNER, percentile, served_hat

from hatd.accounts.repository import Q as ACCOUNTS
from hatd.tokens import TokenService, generate_key_pair


def _ms(samples: list[float]) -> str:
    p50 = statistics.median(samples) * 1000
    p99 = percentile(samples, 0.99) * 1000
    return f"p50 {p50:7.3f} ms   p99 {p99:7.3f} ms"


async def _timed(call: Callable[[], Awaitable[None]], count: int, concurrency: int) -> tuple[list[float], float]:
    samples: list[float] = []
    remaining = iter(range(count))

    async def worker() -> None:
        for _ in remaining:
            start = time.perf_counter()
            await call()
            samples.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples, time.perf_counter() - start


def bench_signing() -> None:
    service = TokenService(generate_key_pair(), issuer="http://bench.test", ttl=7200)
    issue, check = [], []
    token = ""
    for _ in range(2000):
        start = time.perf_counter()
        token = service.issue("5974832d-2dc1-4f49-adf1-c6d8bc790275", "owner")
        issue.append(time.perf_counter() - start)
    for _ in range(2000):
        start = time.perf_counter()
        service.check(token)
        check.append(time.perf_counter() - start)
    print(f"sign a token (RS256, in process)          {_ms(issue)}")
    print(f"check a token (RS256, in process)         {_ms(check)}")


async def bench_http(base: str, dsn: str) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
        login_headers = {"username": OWNER[0], "password": OWNER[1]}

        async def login() -> None:
            async with http.get(f"{base}/users/access_token", headers=login_headers) as response:
                assert response.status == 200, await response.text()
                await response.read()

        samples, _ = await _timed(login, 20, 1)
        print(f"issue: GET /users/access_token (bcrypt 12) {_ms(samples)}")

        async with http.get(f"{base}/users/access_token", headers=login_headers) as response:
            token = (await response.json())["accessToken"]
            user_id = (await response.json())["userId"]
        headers = {"X-Auth-Token": token}

        async def validate() -> None:
            async with http.get(f"{base}/users/access_token/validate", headers=headers) as response:
                assert response.status == 200
                await response.read()

        await _timed(validate, 300, 4)  # warm up
        for concurrency, count in ((1, 3000), (16, 6000)):
            samples, elapsed = await _timed(validate, count, concurrency)
            print(f"validate, concurrency {concurrency:2d}: {count / elapsed:8.0f} req/s   {_ms(samples)}")

    pool = await asyncpg.create_pool(dsn, min_size=16, max_size=16)
    assert pool is not None
    import uuid

    parsed = uuid.UUID(user_id)

    async def bare() -> None:
        await pool.fetchrow(ACCOUNTS.caller_status, parsed)

    await _timed(bare, 500, 4)
    for concurrency, count in ((1, 5000), (16, 10000)):
        samples, elapsed = await _timed(bare, count, concurrency)
        print(f"ceiling: bare caller_status SQL, conc {concurrency:2d}: {count / elapsed:8.0f} q/s   {_ms(samples)}")
    await pool.close()


def main() -> None:
    with served_hat({"HATD_LOGIN_BURST": "1000000", "HATD_LOG_LEVEL": "warning"}) as (base, dsn):
        print(f"hatd token benchmark: {os.cpu_count()} cores, embedded PostgreSQL, server in its own process")
        bench_signing()
        asyncio.run(bench_http(base, dsn))


if __name__ == "__main__":
    main()
