"""The owner's table pages, against a real `hatd serve` on the embedded PostgreSQL: a table of
RECORDS records (a table of FIELDS numeric fields and a subtable of two), then
- the table's page (grid of 25 and the charts of the newest 500 records), its first and second page;
- the CSV and JSON downloads of the whole table, beside the ceiling: the API's own paged values
  read of the same records (GET /data/table/{id}/values, the largest page, following Link).

Prints figures; asserts nothing about time."""

from __future__ import annotations

import asyncio
import html
import platform
import re
import statistics
import time

import aiohttp
from common import OWNER, percentile, records_with_values, request_json, served_hat

SETTINGS = {"HATD_LOG_LEVEL": "warning", "HATD_BCRYPT_ROUNDS": "4", "HATD_LOGIN_BURST": "1000000",
            "HATD_VALUES_MAX_LIMIT": "10000", "HATD_MAX_BODY": str(64 * 1024 * 1024)}  # fmt: skip
RECORDS = 20_000
FIELDS = 8
PAGE_REQUESTS = 15
DOWNLOADS = 3
TABLE = {
    "name": "bench", "source": "bench", "fields": [{"name": f"n{i}"} for i in range(FIELDS)],
    "subTables": [{"name": "sub", "source": "bench", "fields": [{"name": "s0"}, {"name": "s1"}]}],
}  # fmt: skip


async def _timed(http: aiohttp.ClientSession, url: str) -> tuple[float, int]:
    """Seconds and bytes of a GET that must answer 200."""
    start = time.perf_counter()
    async with http.get(url) as response:
        body = await response.read()
        if response.status != 200:
            raise SystemExit(f"GET {url} -> {response.status}")
    return time.perf_counter() - start, len(body)


async def _api_read(http: aiohttp.ClientSession, base: str, table_id: int, token: str) -> tuple[float, int]:
    start, size = time.perf_counter(), 0
    url: str | None = f"{base}/data/table/{table_id}/values?limit=0"
    while url:
        async with http.get(url, headers={"X-Auth-Token": token}) as response:
            size += len(await response.read())
            link = response.headers.get("Link")
        url = re.match(r"<([^>]+)>", link).group(1) if link else None  # type: ignore[union-attr]
    return time.perf_counter() - start, size


def _line(name: str, samples: list[float]) -> str:
    return (f"{name:<34} median {statistics.median(samples) * 1000:8.1f} ms   "
            f"p95 {percentile(samples, 0.95) * 1000:8.1f} ms   ({len(samples)} requests)")  # fmt: skip


async def main() -> None:
    with served_hat(SETTINGS) as (base, _):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            answer = await request_json(http, "GET", f"{base}/users/access_token",
                                        headers={"username": OWNER[0], "password": OWNER[1]})  # fmt: skip
            token = answer["accessToken"]
            table = await request_json(http, "POST", f"{base}/data/table", json=TABLE, headers={"X-Auth-Token": token})
            field_ids = [f["id"] for f in table["fields"]] + [f["id"] for f in table["subTables"][0]["fields"]]
            for start in range(0, RECORDS, 1000):
                await request_json(http, "POST", f"{base}/data/record/values", headers={"X-Auth-Token": token},
                                   json=records_with_values(field_ids, start, 1000))  # fmt: skip

            form = await (await http.get(f"{base}/owner/login")).text()
            csrf = html.unescape(re.search(r'name="csrf" value="([^"]+)"', form).group(1))  # type: ignore[union-attr]
            async with http.post(f"{base}/owner/login", data={"csrf": csrf, "password": OWNER[1], "next": "/owner"},
                                 allow_redirects=False) as response:  # fmt: skip
                if response.status != 303:
                    raise SystemExit(f"page login -> {response.status}")

            page = f"{base}/owner/tables/{table['id']}"
            first = await (await http.get(page)).text()
            older = html.unescape(re.search(r'<a href="([^"]+)" id="older"', first).group(1))  # type: ignore[union-attr]
            charts = first.count('<svg class="chart"')
            print(f"hatd owner pages, {RECORDS:,} records of {FIELDS + 2} fields; {platform.python_version()}, "
                  f"{platform.machine()}; charts on the page: {charts}")  # fmt: skip
            for name, url in (("table page (first, charts of 500)", page), ("table page (second)", base + older)):
                samples = [(await _timed(http, url))[0] for _ in range(PAGE_REQUESTS)]
                print(_line(name, samples))
            for name, url in (("CSV download", f"{page}/csv"), ("JSON download", f"{page}/json")):
                runs = [await _timed(http, url) for _ in range(DOWNLOADS)]
                best = min(seconds for seconds, _ in runs)
                print(f"{name:<34} best {best:8.2f} s   {runs[0][1] / 1e6:7.1f} MB   "
                      f"{RECORDS / best:9,.0f} records/s")  # fmt: skip
            runs = [await _api_read(http, base, table["id"], token) for _ in range(DOWNLOADS)]
            best = min(seconds for seconds, _ in runs)
            print(f"{'ceiling: API values read, paged':<34} best {best:8.2f} s   {runs[0][1] / 1e6:7.1f} MB   "
                  f"{RECORDS / best:9,.0f} records/s")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
