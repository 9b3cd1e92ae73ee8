"""Data plug benchmark: a 100,000-point GPX file imported with the GPX plug (`hatd plug gpx`'s code,
through hatd.client over HTTP) into a real `hatd serve`, beside the raw ingest figure of the same
run: POST /data/record/values with prepared bodies of about a thousand values, two requests in
flight (as the plug sends them), records shaped like the plug's points.

Prints figures; asserts nothing about time. The ceiling is the raw ingest rate in values/s: the
plug parses the file, builds and encodes its batches and reads back the keys already there, so it
can only come near it. Targets: the plug at >= 50% of raw ingest (values/s); a second import of
the same file (all points already there, nothing stored) spends, beyond parsing the file again,
under a tenth of the first import's time (it reads the 100,000 keys back)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time

import aiohttp
from common import OWNER, served_hat

from hatd.client import AsyncHat
from hatd.plugs import GpxPlug, import_file
from hatd.plugs.base import IN_FLIGHT

SETTINGS = {
    "HATD_LOG_LEVEL": "warning",
    "HATD_BCRYPT_ROUNDS": "4",
    "HATD_LOGIN_BURST": "1000000",
    "HATD_VALUES_MAX_LIMIT": "10000",
}
POINTS = 100_000
TRACKS = 10
RAW_VALUES = 200_000  # values sent for the raw ingest figure
TARGET_RATIO = 0.5
TARGET_SECOND = 0.1


def gpx(points: int, tracks: int) -> bytes:
    """A GPX file of `tracks` tracks sharing `points` points, one a second, with elevation and heart rate."""
    start = dt.datetime(2026, 1, 1, 7, 0, tzinfo=dt.UTC)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<gpx version="1.1" creator="bench" xmlns="http://www.topografix.com/GPX/1/1" '
        'xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v1">',
    ]
    per_track = points // tracks
    for t in range(tracks):
        lines.append(f"<trk><name>Run {t}</name><type>running</type><trkseg>")
        for p in range(per_track):
            when = start + dt.timedelta(days=t, seconds=p)
            lines.append(
                f'<trkpt lat="{51.5 + p * 1e-5:.6f}" lon="{-0.12 - p * 1e-5:.6f}"><ele>{10 + p % 50:.1f}</ele>'
                f"<time>{when:%Y-%m-%dT%H:%M:%SZ}</time><extensions><gpxtpx:TrackPointExtension>"
                f"<gpxtpx:hr>{100 + p % 60}</gpxtpx:hr></gpxtpx:TrackPointExtension></extensions></trkpt>"
            )
        lines.append("</trkseg></trk>")
    lines.append("</gpx>")
    return "\n".join(lines).encode()


async def raw_ingest(base: str, token: str, per_record: int) -> float:
    """Values/s of POST /data/record/values, bodies of about a thousand values prepared beforehand."""
    headers = {"X-Auth-Token": token, "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        table = {"name": "raw", "source": "bench", "fields": [{"name": f"f{i}"} for i in range(per_record)]}
        async with http.post(f"{base}/data/table", json=table, headers=headers) as response:
            fields = [f["id"] for f in (await response.json())["fields"]]
        records = 1000 // per_record
        bodies = []
        for b in range(RAW_VALUES // (records * per_record)):
            items = [
                {
                    "record": {"name": f"raw {b}.{r}", "lastUpdated": "2026-01-01T00:00:00Z"},
                    "values": [{"value": f"{b}.{r}.{f}", "field": {"id": fid}} for f, fid in enumerate(fields)],
                }
                for r in range(records)
            ]
            bodies.append(json.dumps(items).encode())
        async with http.post(f"{base}/data/record/values", data=bodies[0], headers=headers) as response:
            await response.read()  # warm up
        queue = iter(bodies[1:])

        async def worker() -> None:
            for body in queue:
                async with http.post(f"{base}/data/record/values", data=body, headers=headers) as response:
                    if response.status != 201:
                        raise SystemExit(f"raw ingest answered {response.status}: {(await response.read())[:300]!r}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        return (len(bodies) - 1) * records * per_record / (time.perf_counter() - started)


async def run(base: str) -> None:
    data = gpx(POINTS, TRACKS)
    began = time.perf_counter()
    parsed = GpxPlug().parse(data, "bench.gpx")
    parse_seconds = time.perf_counter() - began
    values = sum(len(item.values) + 1 for item in parsed.items)  # +1: the key field
    per_point = len(parsed.items[-1].values) + 1
    print(f"file: {len(data) / 1e6:.1f} MB, {TRACKS} tracks, {POINTS:,} points, {values:,} values "
          f"({per_point} a point); parsing alone: {parse_seconds:.1f} s")  # fmt: skip

    async with await AsyncHat.login(base, *OWNER) as hat:
        assert hat.token is not None
        raw_rate = await raw_ingest(base, hat.token, per_point)
        began = time.perf_counter()
        first = await import_file(hat, GpxPlug(), data, "bench.gpx")
        first_seconds = time.perf_counter() - began
        began = time.perf_counter()
        second = await import_file(hat, GpxPlug(), data, "bench.gpx")
        second_seconds = time.perf_counter() - began
    if not (first.ok and second.ok) or first.new != POINTS + TRACKS or second.existing != POINTS + TRACKS:
        raise SystemExit(f"the imports did not do what they should: {first.lines()} / {second.lines()}")
    plug_rate = values / first_seconds
    print()
    print("                                      seconds     points/s     values/s   of raw ingest   target")
    print(f"  raw ingest (POST /data/record/values, ~1,000 values a request, {IN_FLIGHT} in flight, prepared bodies)  "
          f"{raw_rate:12,.0f}   (the ceiling)")  # fmt: skip
    print(f"  hatd plug gpx, first import         {first_seconds:7.1f} {POINTS / first_seconds:12,.0f} "
          f"{plug_rate:12,.0f}   {plug_rate / raw_rate:13.0%}   >= {TARGET_RATIO:.0%}")  # fmt: skip
    beyond = max(second_seconds - parse_seconds, 0.0)
    print(f"  hatd plug gpx, again (nothing new)  {second_seconds:7.1f}   (parsing {parse_seconds:.1f} s, then "
          f"{beyond:.1f} s reading the keys back: {beyond / first_seconds:.0%} of the first import; "
          f"target < {TARGET_SECOND:.0%})")  # fmt: skip


def main() -> None:
    print(f"hatd data plug benchmark: {os.cpu_count()} cores; server in its own process, the plug in this one")
    started = time.perf_counter()
    with served_hat(SETTINGS) as (base, _dsn):
        asyncio.run(run(base))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
