"""Data plug memory benchmark: the peak memory an upload's parse takes, for each plug, at the
upload page's item cap (hatd.web.upload.MAX_ITEMS) and for a file of HATD_MAX_BODY's default 10 MB
of the smallest items a plug reads (beyond the cap: refused as soon as the plug reads one too many).

An import holds every item of a file in memory, so the cap is what bounds an upload's memory: a
1 MB CSV of one-character rows took ~212 MB before it. Each case runs in a process of its own and
measures its peak resident memory (VmHWM, reset just before the parse) above what it held before.
Target: every case under CEILING_MB. No server or database is needed."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from hatd.plugs import CsvPlug, FileRefused, GpxPlug, IcalPlug, Plug
from hatd.web.upload import MAX_ITEMS

CEILING_MB = 256
BODY = 10 * 1024 * 1024  # config/default.toml's max_body


def csv_file(rows: int) -> bytes:
    return ("v\n" + "1\n" * rows).encode()


def gpx_file(points: int) -> bytes:
    body = "".join(
        f'<trkpt lat="51.{i % 1000000:06d}" lon="0.1"><time>2026-01-05T07:00:00.{i % 1000000:06d}Z</time></trkpt>\n'
        for i in range(points)
    )
    return (
        '<?xml version="1.0"?>\n<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1">'
        f"<trk><trkseg>\n{body}</trkseg></trk></gpx>\n"
    ).encode()


def ics_file(events: int) -> bytes:
    body = "".join(f"BEGIN:VEVENT\nUID:{i}\nDTSTART:20260101T000000Z\nEND:VEVENT\n" for i in range(events))
    return f"BEGIN:VCALENDAR\n{body}END:VCALENDAR\n".encode()


def grown(make: object, size: int) -> int:
    """How many of a file maker's items fill `size` bytes."""
    assert callable(make)
    return size * 1000 // len(make(1000))


def case(name: str) -> tuple[Plug, bytes]:
    kind, what = name.split(":")
    plug: Plug
    if kind == "csv":
        plug, make = CsvPlug(), csv_file
    elif kind == "gpx":
        plug, make = GpxPlug(), gpx_file
    else:
        plug, make = IcalPlug(), ics_file
    # At the cap: as many items as an upload takes (a GPX file's track is one of them).
    count = (MAX_ITEMS - (kind == "gpx")) if what == "cap" else grown(make, BODY)
    return plug, make(count)


def status(key: str) -> int:
    """A /proc/self/status figure, in kB."""
    found = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    assert found is not None
    return int(found.group(1))


def child(name: str) -> None:
    plug, data = case(name)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak to what this process holds now
    before = status("VmRSS")
    began = time.perf_counter()
    try:
        parsed = plug.parse(data, f"bench.{name.split(':')[0]}", max_items=MAX_ITEMS)
        outcome = f"{len(parsed.items):,} items"
    except FileRefused as exc:
        outcome = f"refused at {str(exc).split(':')[0]}"
    seconds = time.perf_counter() - began
    peak = (status("VmHWM") - before) / 1024
    print(f"  {name:9} {len(data) / 1e6:6.1f} MB  {outcome:28} {seconds:6.1f} s  {peak:8.0f} MB   < {CEILING_MB} MB"
          f"{'' if peak < CEILING_MB else '   OVER'}")  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1:
        child(sys.argv[1])
        return
    print(f"hatd data plug memory benchmark: an upload's parse, capped at {MAX_ITEMS:,} items a file")
    print("  case        file    outcome                        time   peak above start   target")
    for name in ("csv:cap", "csv:10MB", "gpx:cap", "gpx:10MB", "ical:cap", "ical:10MB"):
        subprocess.run([sys.executable, __file__, name], check=True)


if __name__ == "__main__":
    main()
