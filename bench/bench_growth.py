"""Growth benchmark: what a values read costs as a table grows from 10k to 100k records (100k to 1M
values), for a table and for a data debit over it; and hatd's peak memory with 1 and with 16
clients reading a 10k-record page. Against a real `hatd serve` on the embedded PostgreSQL.

Prints figures; asserts nothing about time. Targets the project states (issue 13): the latest 100
records grow at most 1.5x for 10x the data, reading everything page by page at most 12x, and 16
readers of a 10k-record page stay within 100 MB of one reader, no slower than before.

BENCH_BASELINE=<git ref> also serves the same HAT from that commit (a temporary git worktree, the
same Python environment) and prints its figures beside, measured in the same run."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from common import OWNER, ROOT, request_json, served_hat_process

from hatd.db import queries

RAW = queries("raw")
SETTINGS = {
    "HATD_LOG_LEVEL": "warning",
    "HATD_BCRYPT_ROUNDS": "4",
    "HATD_LOGIN_BURST": "1000000",
    "HATD_VALUES_MAX_LIMIT": "10000",
    "HATD_POOL_MAX_SIZE": "20",
}
SIZES = (10_000, 100_000)
FIELDS = 10
LATEST = 100
LATEST_REQUESTS = 20
# The two sizes are measured side by side, in ROUNDS rounds (each: the latest page and one
# read-everything of each size, the smaller first in even rounds), and a growth is the median of
# the rounds' ratios: the shared machine's speed drifts by more than the targets' margins between
# one minute and the next, so sizes measured minutes apart compared the machine, not hatd.
ROUNDS = 3
READERS = 16
PAGE = 10_000


async def _fill(dsn: str, table_id: int, field_ids: list[int], records: int) -> None:
    """`records` records of a value in each field, written straight into the database."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            ids = await conn.fetch(
                "INSERT INTO data_records (name, last_updated) "
                "SELECT 'r' || i, '2020-01-01'::timestamptz + i * interval '1 minute' "
                "FROM generate_series(1, $1) AS i RETURNING id",
                records,
            )
            await conn.execute(
                "INSERT INTO data_values (value, field_id, record_id) "
                "SELECT 'value ' || r || '.' || f, f, r "
                "FROM unnest($1::bigint[]) AS r CROSS JOIN unnest($2::bigint[]) AS f",
                [row["id"] for row in ids],
                field_ids,
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def _drain(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int, str | None]:
    """Reads a page to the end without keeping it; (bytes, URL of the next page or None)."""
    async with http.get(url, headers=headers) as response:
        size = 0
        async for chunk in response.content.iter_chunked(1 << 16):
            size += len(chunk)
        if response.status != 200:
            raise SystemExit(f"GET {url} -> {response.status}")
        link = response.headers.get("Link")
    following = re.fullmatch(r"<([^>]*)>; rel=\"next\"", link).group(1) if link else None  # type: ignore[union-attr]
    return size, following


async def _latest(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> float:
    samples = []
    for attempt in range(LATEST_REQUESTS + 1):
        began = time.perf_counter()
        await _drain(http, url, headers)
        if attempt:
            samples.append(time.perf_counter() - began)
    return statistics.median(samples)


async def _read_all(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[float, int, int]:
    """Seconds to follow every Link from `url`, pages, bytes."""
    began = time.perf_counter()
    pages = size = 0
    following: str | None = url
    while following:
        got, following = await _drain(http, following, headers)
        pages += 1
        size += got
    return time.perf_counter() - began, pages, size


def _rss(pid: int, key: str) -> int:
    """The process's VmRSS or VmHWM (peak), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise SystemExit(f"no {key} for process {pid}")


class PeakWatch:
    """The highest RSS of a process while it runs, sampled every 5 ms (VmHWM cannot be reset)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss(self.pid, "VmRSS"))
            time.sleep(0.005)

    def __enter__(self) -> PeakWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss(self.pid, "VmRSS"))


async def _memory(http: aiohttp.ClientSession, url: str, headers: dict[str, str], pid: int) -> dict[str, float]:
    """Peak RSS and read times with 1, then 16 concurrent readers of one page."""
    figures: dict[str, float] = {"idle": _rss(pid, "VmRSS")}
    with PeakWatch(pid) as watch:
        one = []
        for _ in range(3):
            began = time.perf_counter()
            await _drain(http, url, headers)
            one.append(time.perf_counter() - began)
    figures["one_peak"], figures["one_time"] = watch.peak, statistics.median(one)
    times: list[float] = []

    async def reader() -> None:
        for _ in range(2):
            began = time.perf_counter()
            await _drain(http, url, headers)
            times.append(time.perf_counter() - began)

    with PeakWatch(pid) as watch:
        await asyncio.gather(*(reader() for _ in range(READERS)))
    figures["many_peak"], figures["many_time"] = watch.peak, statistics.median(times)
    figures["after"] = _rss(pid, "VmRSS")
    return figures


async def _measure(base: str, dsn: str, pid: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
        token = await request_json(
            http, "GET", f"{base}/users/access_token", headers={"username": OWNER[0], "password": OWNER[1]}
        )
        headers = {"X-Auth-Token": token["accessToken"]}
        now = dt.datetime.now(dt.UTC)
        reads: dict[int, tuple[tuple[str, str], ...]] = {}
        for size in SIZES:
            table = await request_json(http, "POST", f"{base}/data/table", headers=headers, json={
                "name": f"phone {size}", "source": "bench",
                "fields": [{"name": f"f{i}"} for i in range(FIELDS)],
            })  # fmt: skip
            await _fill(dsn, table["id"], [f["id"] for f in table["fields"]], size)
            debit = await request_json(http, "POST", f"{base}/dataDebit/propose", headers=headers, json={
                "name": f"phone {size}", "kind": "contextless", "rolling": False, "sell": False, "price": 0,
                "startDate": (now - dt.timedelta(days=1)).isoformat(),
                "endDate": (now + dt.timedelta(days=1)).isoformat(),
                "bundleContextless": {"name": f"phone {size}", "table": {"id": table["id"], "name": table["name"]}},
            })  # fmt: skip
            await request_json(http, "PUT", f"{base}/dataDebit/{debit['key']}/enable", headers=headers)
            reads[size] = (
                ("table", f"/data/table/{table['id']}/values"),
                ("debit", f"/dataDebit/{debit['key']}/values"),
            )
            if size == SIZES[0]:
                page = f"{base}/data/table/{table['id']}/values?limit={PAGE}"
                out["memory"] = await _memory(http, page, headers, pid)
        for round_ in range(ROUNDS):
            for size in SIZES if round_ % 2 == 0 else SIZES[::-1]:
                for kind, path in reads[size]:
                    out.setdefault((kind, "latest", size), []).append(
                        await _latest(http, f"{base}{path}?limit={LATEST}", headers)
                    )
                    out.setdefault((kind, "all", size), []).append(await _read_all(http, f"{base}{path}", headers))
    return out


def _run(root: Path) -> dict[str, Any]:
    with served_hat_process(SETTINGS, root=root) as (base, dsn, pid):
        return asyncio.run(_measure(base, dsn, pid))


def _report(label: str, figures: dict[str, Any]) -> None:
    small, large = SIZES
    print(f"\n{label}")
    for kind in ("table", "debit"):
        small_latest, large_latest = figures[kind, "latest", small], figures[kind, "latest", large]
        growth = statistics.median(b / a for a, b in zip(small_latest, large_latest, strict=True))
        a, b = statistics.median(small_latest), statistics.median(large_latest)
        print(f"  {kind} latest {LATEST}: {a * 1000:8.1f} ms at {small:,} records, {b * 1000:8.1f} ms at {large:,}"
              f"  growth {growth:5.2f}x  (target <= 1.5x)")  # fmt: skip
        small_all, large_all = figures[kind, "all", small], figures[kind, "all", large]
        growth = statistics.median(b[0] / a[0] for a, b in zip(small_all, large_all, strict=True))
        ta, pa = statistics.median(t for t, _, _ in small_all), small_all[0][1]
        tb, pb, sb = statistics.median(t for t, _, _ in large_all), large_all[0][1], large_all[0][2]
        print(f"  {kind} read all, pages of 1,000: {ta:7.2f} s ({pa} pages)"
              f" at {small:,}, {tb:7.2f} s ({pb} pages, {sb / 1e6:.0f} MB in all) at {large:,}"
              f"  growth {growth:5.2f}x  (target <= 12x)")  # fmt: skip
    m = figures["memory"]
    mb = 1 << 20
    print(f"  memory, GET /data/table/{{id}}/values?limit={PAGE:,} ({FIELDS} fields): idle {m['idle'] / mb:.0f} MiB;"
          f" 1 reader: peak {m['one_peak'] / mb:.0f} MiB, read p50 {m['one_time']:.2f} s;"
          f" {READERS} readers x 2: peak {m['many_peak'] / mb:.0f} MiB, read p50 {m['many_time']:.2f} s;"
          f" afterwards {m['after'] / mb:.0f} MiB")  # fmt: skip
    extra = (m["many_peak"] - m["one_peak"]) / mb
    print(f"  {READERS} readers' peak - 1 reader's peak: {extra:.0f} MiB (target <= 100 MiB)")


def main() -> None:
    print(f"hatd growth benchmark: {os.cpu_count()} cores, embedded PostgreSQL, server in its own process")
    print(f"a table of {FIELDS} fields filled straight into the database, a debit (owner) over it, read over HTTP;")
    print(f"both sizes side by side in {ROUNDS} rounds: times are the rounds' medians, growths their ratios' medians")
    started = time.perf_counter()
    _report("this hatd:", _run(ROOT))
    baseline = os.environ.get("BENCH_BASELINE")
    if baseline:
        folder = Path(tempfile.mkdtemp(prefix="hatd-baseline-"))
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), baseline], check=True)
        try:
            _report(f"hatd at {baseline} (BENCH_BASELINE), same run:", _run(folder))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)], check=False)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
