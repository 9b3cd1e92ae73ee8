"""Login benchmark: the owner's login while twelve addresses guess the owner's password, against
a real `hatd serve` (bcrypt cost 12, the default login limits) on the embedded PostgreSQL.

The owner logs in from a client that has logged in before (its device cookie), as OWASP's device
cookies intend; the guesses come from twelve addresses (X-Forwarded-For, the test client playing
the trusted proxy), four at a time each, for ATTACK_SECONDS. Before the fix, such an attack held
the owner's login for 10 to 12 s. Prints figures; asserts nothing. The ceiling printed beside the
owner's login under attack is twice its time without one."""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import aiohttp
from common import OWNER, percentile, served_hat

ADDRESSES = 12
PER_ADDRESS = 4
ATTACK_SECONDS = float(os.environ.get("ATTACK_SECONDS", "20"))
OWNER_LOGINS = 10


def _ms(samples: list[float]) -> str:
    return f"p50 {statistics.median(samples) * 1000:7.1f} ms   p99 {percentile(samples, 0.99) * 1000:7.1f} ms"


async def _owner_logins(http: aiohttp.ClientSession, base: str, count: int) -> tuple[list[float], list[int]]:
    headers = {"username": OWNER[0], "password": OWNER[1], "X-Forwarded-For": "198.51.100.1"}
    samples, statuses = [], []
    for _ in range(count):
        start = time.perf_counter()
        async with http.get(f"{base}/users/access_token", headers=headers) as response:
            await response.read()
            statuses.append(response.status)
        samples.append(time.perf_counter() - start)
        await asyncio.sleep(0.2)
    return samples, statuses


async def _guesses(base: str, stop: asyncio.Event, counts: dict[int, int]) -> None:
    jar = aiohttp.DummyCookieJar()  # strangers keep no device cookie
    async with aiohttp.ClientSession(cookie_jar=jar, connector=aiohttp.TCPConnector(limit=0)) as http:

        async def guess(address: str) -> None:
            headers = {"username": OWNER[0], "password": "guess", "X-Forwarded-For": address}
            while not stop.is_set():
                async with http.get(f"{base}/users/access_token", headers=headers) as response:
                    await response.read()
                    counts[response.status] = counts.get(response.status, 0) + 1
                    if response.status == 429:
                        await asyncio.sleep(0.05)

        await asyncio.gather(*(guess(f"203.0.113.{a}") for a in range(ADDRESSES) for _ in range(PER_ADDRESS)))


async def bench(base: str) -> None:
    # unsafe: aiohttp keeps no cookies of a host given as an IP address (127.0.0.1) otherwise.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as owner:
        await _owner_logins(owner, base, 1)  # the device cookie
        alone, _ = await _owner_logins(owner, base, OWNER_LOGINS)
        print(f"owner login, alone (bcrypt 12)                    {_ms(alone)}")
        stop, counts = asyncio.Event(), {}
        attack = asyncio.create_task(_guesses(base, stop, counts))
        await asyncio.sleep(2)  # the attack has drained the account's bucket by now
        attacked, statuses = await _owner_logins(owner, base, OWNER_LOGINS)
        # The owner on a client never used before:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as fresh:
            _, fresh_statuses = await _owner_logins(fresh, base, 1)
        await asyncio.sleep(max(0.0, ATTACK_SECONDS - 2 - sum(attacked)))
        stop.set()
        await attack
    ceiling = 2 * statistics.median(alone) * 1000
    print(
        f"owner login, {ADDRESSES} addresses guessing            {_ms(attacked)}   "
        f"ceiling p50 {ceiling:.1f} ms (twice alone); {statuses.count(200)}/{len(statuses)} answered 200"
    )
    print(f"owner login from a new client, under attack      {fresh_statuses[0]} (a stranger's limits apply)")
    total = sum(counts.values())
    print(
        f"strangers' guesses in {ATTACK_SECONDS:.0f} s: {total} sent, {counts.get(401, 0)} checked by bcrypt (401), "
        f"{counts.get(429, 0)} refused at once (429), other {total - counts.get(401, 0) - counts.get(429, 0)}"
    )


def main() -> None:
    with served_hat({"HATD_TRUSTED_PROXIES": "127.0.0.1", "HATD_LOG_LEVEL": "error"}) as (base, _):
        asyncio.run(bench(base))


if __name__ == "__main__":
    main()
