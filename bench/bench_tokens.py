"""Token benchmark: issue and validate latency, and /users/access_token/validate throughput at
concurrency 1 and 16, against a real `hatd serve` process on the embedded PostgreSQL.

Prints figures; asserts nothing. Beside validate, in the same run, the same requests go to a bare
aiohttp server in its own process (bare_validate.py) that answers the same JSON with no
authentication: validate's throughput is printed as a share of it (the aim: at least 60%). The
rounds alternate between the two, so that the machine's other load falls on both alike. The
ceiling printed last is the SQL query a token check runs when its account's standing is not in
memory (caller_status), straight through asyncpg."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import asyncpg
from common import OWNER, ROOT, free_port, percentile, served_hat

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
    issue, check, remembered = [], [], []
    tokens = []
    for _ in range(2000):
        start = time.perf_counter()
        tokens.append(service.issue("5974832d-2dc1-4f49-adf1-c6d8bc790275", "owner"))
        issue.append(time.perf_counter() - start)
    for token in tokens:  # each new to the service: decoded and its signature verified
        start = time.perf_counter()
        service.check(token)
        check.append(time.perf_counter() - start)
    for _ in range(2000):  # the same one again: remembered, its expiry alone checked
        start = time.perf_counter()
        service.check(tokens[-1])
        remembered.append(time.perf_counter() - start)
    print(f"sign a token (RS256, in process)          {_ms(issue)}")
    print(f"check a new token (RS256, in process)     {_ms(check)}")
    print(f"check a token checked before (in process) {_ms(remembered)}")


ROUNDS = 3


def start_bare() -> tuple[subprocess.Popen[bytes], str]:
    """The bare aiohttp server, serving; and its base URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "bare_validate.py"), str(port)], cwd=ROOT)
    deadline = time.time() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                process.kill()
                raise SystemExit("the bare aiohttp server did not start") from None
            time.sleep(0.1)


async def bench_http(base: str, dsn: str, bare_base: str) -> None:
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

        def validator(url: str) -> Callable[[], Awaitable[None]]:
            async def validate() -> None:
                async with http.get(url, headers=headers) as response:
                    assert response.status == 200
                    await response.read()

            return validate

        hatd_validate = validator(f"{base}/users/access_token/validate")
        bare_validate = validator(f"{bare_base}/users/access_token/validate")
        await _timed(hatd_validate, 300, 4)  # warm up
        await _timed(bare_validate, 300, 4)
        for concurrency, count in ((1, 3000), (16, 6000)):
            rates: dict[str, list[float]] = {"hatd": [], "bare": []}
            latencies: dict[str, list[float]] = {"hatd": [], "bare": []}
            for _ in range(ROUNDS):
                for name, call in (("hatd", hatd_validate), ("bare", bare_validate)):
                    samples, elapsed = await _timed(call, count, concurrency)
                    rates[name].append(count / elapsed)
                    latencies[name] += samples
            hatd_rate, bare_rate = statistics.median(rates["hatd"]), statistics.median(rates["bare"])
            hatd_ms, bare_ms = _ms(latencies["hatd"]), _ms(latencies["bare"])
            print(f"validate, concurrency {concurrency:2d}:                  {hatd_rate:8.0f} req/s   {hatd_ms}")
            print(f"bare aiohttp (no auth), concurrency {concurrency:2d}:    {bare_rate:8.0f} req/s   {bare_ms}")
            share = 100 * hatd_rate / bare_rate
            print(f"  validate does {share:.0f}% of the bare handler's throughput (median of {ROUNDS} rounds each)")

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
        bare, bare_base = start_bare()
        try:
            asyncio.run(bench_http(base, dsn, bare_base))
        finally:
            bare.send_signal(signal.SIGINT)
            try:
                bare.wait(timeout=30)
            except subprocess.TimeoutExpired:
                bare.kill()
                bare.wait()


if __name__ == "__main__":
    main()
