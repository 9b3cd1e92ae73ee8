"""Token benchmark: issue and validate latency, and /users/access_token/validate throughput at
concurrency 1 and 16, against a real `hatd serve` process on the embedded PostgreSQL.

Prints figures; asserts nothing. The ceiling printed beside the HTTP figures is the bare SQL
query the auth middleware runs per request (caller_status), straight through asyncpg."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hatd.accounts.repository import Q as ACCOUNTS  # noqa: E402
from hatd.embedded import EmbeddedPostgres  # noqa: E402
from hatd.tokens import TokenService, generate_key_pair  # noqa: E402

OWNER = ("owner@bench.test", "bench-owner-password")


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return f"p50 {p50:7.3f} ms   p99 {p99:7.3f} ms"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    folder = Path(tempfile.mkdtemp(prefix="hatd-bench-"))
    folder.chmod(0o755)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATD_")}
    env.update(
        HATD_DATA_DIR=str(folder),
        HATD_PORT=str(port),
        HATD_OWNER_EMAIL=OWNER[0],
        HATD_OWNER_PASSWORD=OWNER[1],
        HATD_LOGIN_BURST="1000000",
        HATD_LOG_LEVEL="warning",
    )
    server = subprocess.Popen([sys.executable, "-m", "hatd", "serve"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise SystemExit("hatd serve did not start") from None
                time.sleep(0.2)
        print(f"hatd token benchmark: {os.cpu_count()} cores, embedded PostgreSQL, server in its own process")
        bench_signing()
        embedded = EmbeddedPostgres(folder)
        embedded.start()
        try:
            asyncio.run(bench_http(base, embedded.dsn("hatd")))
        finally:
            embedded.stop()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
