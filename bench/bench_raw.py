"""Raw data benchmark: values in (POST /data/record/values) and out (GET /data/table/{id}/values),
against a real `hatd serve` process on the embedded PostgreSQL, each beside its ceiling.

Prints figures; asserts nothing about time. The ceilings, measured in the same run on the same
database and the same tables:
- ingest: the same rows written straight with COPY (asyncpg copy_records_to_table), one transaction
  per batch, records first (ids reserved from their sequence) then values;
- read: the two named queries the server runs for a page (table_record_page, records_values_json),
  straight through asyncpg with the same parameters.
Targets the project states: HTTP >= 50% of COPY at batch 1,000; reads within 2x of the bare SQL."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import asyncpg
from common import OWNER, percentile, served_hat

from hatd.db import queries

RAW = queries("raw")
SETTINGS = {
    "HATD_LOG_LEVEL": "warning",
    "HATD_BCRYPT_ROUNDS": "4",
    "HATD_LOGIN_BURST": "1000000",
    "HATD_VALUES_MAX_LIMIT": "10000",
    "HATD_MAX_BODY": str(64 * 1024 * 1024),
}

FIELDS = 10
BATCHES = (1, 100, 1_000, 10_000)
CONCURRENCIES = (1, 8)
# HTTP and COPY are measured in ROUNDS rounds, side by side (HTTP then COPY, then COPY then HTTP,
# and so on), so that the machine's drift (it is shared and noisy) weighs on both alike; the ratio
# is the median of the rounds' ratios. A measurement runs until MIN_SECONDS have passed or
# MAX_VALUES values are in, whichever comes first, with at least MIN_REQUESTS requests (or COPY
# transactions) per worker.
ROUNDS = 5
MIN_SECONDS = 0.5
MAX_VALUES = 25_000
MIN_REQUESTS = 2
READS = ((1_000, 20), (10_000, 5))  # (records in the table and page size, requests timed)

NEXT_RECORD_IDS = "SELECT nextval(pg_get_serial_sequence('data_records', 'id')) FROM generate_series(1, $1)"


class Failed(Exception):
    """A measurement that cannot run: the server or the SQL answered with an error."""


def _record_shape(batch: int) -> tuple[int, int]:
    """(records, values per record) for a batch: one value alone, else records of FIELDS values."""
    return (1, 1) if batch == 1 else (batch // FIELDS, FIELDS)


def _body(batch: int, field_ids: list[int]) -> bytes:
    """The body of POST /data/record/values for `batch` values: a list of {record, values}."""
    records, per_record = _record_shape(batch)
    items = [
        {
            "record": {"name": f"bench {r}"},
            "values": [{"value": f"value {r}.{f}", "field": {"id": field_ids[f]}} for f in range(per_record)],
        }
        for r in range(records)
    ]
    return json.dumps(items).encode()


async def _run_workers(step: Callable[[], Awaitable[int]], concurrency: int) -> tuple[int, float, list[float]]:
    """Runs `step` (which returns how many values it stored) in `concurrency` workers until the
    measurement is long enough; returns (values stored, seconds, per-step latencies)."""
    total = 0
    latencies: list[float] = []
    start = time.perf_counter()

    async def worker() -> None:
        nonlocal total
        done = 0
        while done < MIN_REQUESTS or (time.perf_counter() - start < MIN_SECONDS and total < MAX_VALUES):
            began = time.perf_counter()
            stored = await step()  # not `total += await step()`: that reads total before awaiting
            total += stored
            latencies.append(time.perf_counter() - began)
            done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total, time.perf_counter() - start, latencies


class Bench:
    def __init__(self, base: str, dsn: str, http: aiohttp.ClientSession, headers: dict[str, str]) -> None:
        self.base = base
        self.dsn = dsn
        self.http = http
        self.headers = headers

    async def create_table(self, name: str) -> tuple[int, list[int]]:
        table = {"name": name, "source": "bench", "fields": [{"name": f"field{i}"} for i in range(FIELDS)]}
        async with self.http.post(f"{self.base}/data/table", json=table, headers=self.headers) as response:
            body = await response.json()
            if response.status != 201:
                raise SystemExit(f"POST /data/table answered {response.status}: {body}")
        return body["id"], [f["id"] for f in body["fields"]]

    async def post_values(self, body: bytes, batch: int) -> int:
        headers = {**self.headers, "Content-Type": "application/json"}
        async with self.http.post(f"{self.base}/data/record/values", data=body, headers=headers) as response:
            text = await response.read()
            if response.status != 201:
                raise SystemExit(
                    f"POST /data/record/values ({batch} values) answered {response.status}: {text[:500]!r}"
                )
        return batch

    # -- ingest ---------------------------------------------------------------------------------

    async def ingest(self) -> None:
        _, field_ids = await self.create_table("ingest")
        connections = [await asyncpg.connect(self.dsn) for _ in range(max(CONCURRENCIES))]
        try:
            print()
            print("ingest: POST /data/record/values over HTTP vs COPY straight into the same tables")
            print("  (per batch: one request / one COPY transaction; values/s: the median of the rounds; n: how many")
            print(
                f"  were timed in all {ROUNDS} rounds; p50: their latency; HTTP/COPY: the median of the rounds' ratios)"
            )
            print("  batch  conc  records |  HTTP values/s     n   p50 ms |  COPY values/s     n   p50 ms | HTTP/COPY")
            for batch in BATCHES:
                body = _body(batch, field_ids)
                for concurrency in CONCURRENCIES:
                    https, copies = [], []
                    for round_ in range(ROUNDS):
                        http_first = round_ % 2 == 0
                        for measure_http in (http_first, not http_first):
                            if measure_http:
                                https.append(await self._measure_http(body, batch, concurrency))
                            else:
                                copies.append(await self._measure_copy(connections[:concurrency], batch, field_ids))
                    records, _ = _record_shape(batch)
                    http_rates = [values / seconds for values, seconds, _ in https]
                    copy_rates = [values / seconds for values, seconds, _ in copies]
                    ratio = statistics.median(h / c for h, c in zip(http_rates, copy_rates, strict=True))
                    http_latencies = [t for _, _, times in https for t in times]
                    copy_latencies = [t for _, _, times in copies for t in times]
                    print(
                        f"  {batch:5d}  {concurrency:4d}  {records:7d} | {statistics.median(http_rates):14,.0f} "
                        f"{len(http_latencies):5d} {statistics.median(http_latencies) * 1000:8.1f} | "
                        f"{statistics.median(copy_rates):14,.0f} {len(copy_latencies):5d} "
                        f"{statistics.median(copy_latencies) * 1000:8.1f} | {ratio:8.0%}",
                        flush=True,
                    )
        finally:
            for conn in connections:
                await conn.close()

    async def _measure_http(self, body: bytes, batch: int, concurrency: int) -> tuple[int, float, list[float]]:
        await asyncio.gather(*(self.post_values(body, batch) for _ in range(concurrency)))  # warm up
        return await _run_workers(lambda: self.post_values(body, batch), concurrency)

    async def _measure_copy(
        self, connections: list[asyncpg.Connection], batch: int, field_ids: list[int]
    ) -> tuple[int, float, list[float]]:
        records, per_record = _record_shape(batch)
        values = [(f"value {r}.{f}", field_ids[f]) for r in range(records) for f in range(per_record)]
        idle = list(connections)

        async def copy_batch() -> int:
            conn = idle.pop()
            try:
                async with conn.transaction():
                    ids = [row[0] for row in await conn.fetch(NEXT_RECORD_IDS, records)]
                    await conn.copy_records_to_table(
                        "data_records", records=[(i, f"bench {n}") for n, i in enumerate(ids)], columns=["id", "name"]
                    )
                    await conn.copy_records_to_table(
                        "data_values",
                        records=[(text, field, ids[n // per_record]) for n, (text, field) in enumerate(values)],
                        columns=["value", "field_id", "record_id"],
                    )
            finally:
                idle.append(conn)
            return batch

        await asyncio.gather(*(copy_batch() for _ in connections))  # warm up
        return await _run_workers(copy_batch, len(connections))

    # -- read -----------------------------------------------------------------------------------

    async def read(self) -> list[str]:
        """Measures the reads; returns what failed."""
        tables = []
        for size, _ in READS:
            table_id, field_ids = await self.create_table(f"read {size}")
            fill = min(size * FIELDS, 10_000)
            body = _body(fill, field_ids)
            for _ in range(size * FIELDS // fill):
                await self.post_values(body, fill)
            tables.append(table_id)
        failures = []
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute("ANALYZE")
            print()
            print("read: GET /data/table/{id}/values?limit=N over HTTP vs the bare SQL that builds the same JSON")
            print("  (bare SQL: table_record_page then records_values_json, through asyncpg on one connection,")
            print(f"  after ANALYZE; the table holds N records x {FIELDS} values, the page is all of them)")
            print(
                "  records  limit     n  body MB |  HTTP p50 ms  HTTP p99 ms |  SQL p50 ms   SQL p99 ms | HTTP/SQL p50"
            )
            for (size, count), table_id in zip(READS, tables, strict=True):
                failure = await self._measure_read(conn, table_id, size, count)
                if failure:
                    print(f"  {size:7d}  {size:5d}  FAILED: {failure}", flush=True)
                    failures.append(failure)
        finally:
            await conn.close()
        return failures

    async def _measure_read(self, conn: asyncpg.Connection, table_id: int, limit: int, count: int) -> str | None:
        """Prints one line of figures, or returns what went wrong."""
        url = f"{self.base}/data/table/{table_id}/values?limit={limit}"

        async def get() -> bytes:
            async with self.http.get(url, headers=self.headers) as response:
                body = await response.read()
                if response.status != 200:
                    raise Failed(
                        f"GET /data/table/{table_id}/values?limit={limit} answered {response.status}: {body[:200]!r}"
                    )
                return body

        async def bare() -> str:
            try:
                rows = await conn.fetch(RAW.table_record_page, table_id, None, None, None, None, limit + 1)
                ids = [r["id"] for r in rows[:limit]]
                items = await conn.fetchval(RAW.records_values_json, table_id, ids, None, None, False)
                text = f"[{items or ''}]"
            except asyncpg.PostgresError as exc:
                message = " ".join(str(exc).split())
                raise Failed(f"the bare SQL fails too: {type(exc).__name__}: {message}") from None
            return text

        problems = []
        for call in (get, bare):  # warm up, and check both give the same page
            try:
                await call()
            except Failed as exc:
                problems.append(str(exc))
        if problems:
            return "; ".join(problems)
        items = json.loads(await get())
        if len(items) != limit:
            return f"GET {url} gave {len(items)} records, not {limit}"
        if json.loads(await bare()) != items:
            print("  note: the bare SQL and the HTTP answer differ")
        http_times, sql_times = [], []
        size = 0
        for _ in range(count):
            began = time.perf_counter()
            size = len(await get())
            http_times.append(time.perf_counter() - began)
        for _ in range(count):
            began = time.perf_counter()
            await bare()
            sql_times.append(time.perf_counter() - began)
        http_p50, sql_p50 = statistics.median(http_times), statistics.median(sql_times)
        print(
            f"  {limit:7d}  {limit:5d}  {count:4d}  {size / 1e6:7.2f} | {http_p50 * 1000:11.1f}  "
            f"{percentile(http_times, 0.99) * 1000:11.1f} | {sql_p50 * 1000:11.1f}  "
            f"{percentile(sql_times, 0.99) * 1000:11.1f} | {http_p50 / sql_p50:11.2f}x",
            flush=True,
        )
        return None


async def bench(base: str, dsn: str) -> list[str]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
        login = {"username": OWNER[0], "password": OWNER[1]}
        async with http.get(f"{base}/users/access_token", headers=login) as response:
            if response.status != 200:
                raise SystemExit(f"login answered {response.status}: {await response.text()}")
            token = (await response.json())["accessToken"]
        conn = await asyncpg.connect(dsn)
        try:
            version = await conn.fetchval("SHOW server_version")
            sync = await conn.fetchval("SHOW synchronous_commit")
            fsync = await conn.fetchval("SHOW fsync")
        finally:
            await conn.close()
        print(f"PostgreSQL {version} (embedded, fsync {fsync}, synchronous_commit {sync})")
        bench = Bench(base, dsn, http, {"X-Auth-Token": token})
        await bench.ingest()
        return await bench.read()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    print(
        f"hatd raw data benchmark: {os.cpu_count()} cores ({_cpu_name()}), Python {platform.python_version()}, "
        f"server in its own process, bench client in this one"
    )
    print("settings: " + " ".join(f"{k}={v}" for k, v in SETTINGS.items()) + "; pool size and the rest: defaults")
    print(
        f"ingest measurements: {ROUNDS} rounds of HTTP and COPY side by side, each until {MIN_SECONDS:g} s or "
        f"{MAX_VALUES:,} values, whichever first, at least {MIN_REQUESTS} requests per worker, after one warm-up "
        f"request per worker; {FIELDS} fields per table"
    )
    started = time.perf_counter()
    with served_hat(SETTINGS) as (base, dsn):
        failures = asyncio.run(bench(base, dsn))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if failures:
        raise SystemExit(f"{len(failures)} measurement(s) could not run: the raw data code answered with errors")


if __name__ == "__main__":
    main()
