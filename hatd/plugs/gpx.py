"""The GPX plug (GPS Exchange Format 1.0 and 1.1, what running and cycling watches export): tracks,
their points (time, latitude, longitude, elevation, and heart rate, cadence and temperature where a
watch adds them) and waypoints, into the tables `tracks`, `points` and `waypoints` (source `gpx`).

Read with the standard library's SAX parser behind defusedxml (which refuses entity expansion and
external entities, the XML bombs and file reads a hostile file could hold) rather than gpxpy: SAX
tells the line of every element, so a bad point is refused alone, by its line, where gpxpy stops at
the first bad value in a file and names no line; and it reads a long track without building a tree.

Identities: a track is its name (or "track") and the earliest time of its points (of any point whose
time can be read, refused or not, so that fixing a point does not make the track another); a point
is its track and its time (without a time: its segment and place in it); a waypoint its name and
position."""

from __future__ import annotations

import datetime as dt
import math
import xml.sax
from dataclasses import dataclass, field
from typing import Any

import defusedxml.sax
from defusedxml import DefusedXmlException

from hatd.fields import EARLIEST, LATEST
from hatd.plugs.base import FileRefused, Item, Parsed, RecordsOnly, Refused, clip, too_many

SOURCE = "gpx"
TRACK_FIELDS = ["name", "type", "description", "segments", "points", "start", "end"]
POINT_FIELDS = ["track", "segment", "time", "lat", "lon", "ele"]
# Garmin's and others' TrackPointExtension: heart rate, cadence, air temperature, speed.
EXTENSIONS = ("hr", "cad", "atemp", "speed")
WAYPOINT_FIELDS = ["name", "time", "lat", "lon", "ele", "description", "symbol", "type"]
TEXT_OF = {"name": "name", "desc": "description", "type": "type", "sym": "symbol", "ele": "ele", "time": "time"}


def _local(name: str) -> str:
    return name.rsplit(":", 1)[-1]


def parse_time(text: str) -> dt.datetime:
    """An xsd:dateTime as GPX writes it (2026-01-05T09:00:00Z); no zone means UTC. ValueError for
    anything else, OverflowError for a time whose UTC falls outside the years 1 to 9999."""
    moment = dt.datetime.fromisoformat(text.strip())
    return moment.astimezone(dt.UTC) if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _number(text: str, low: float, high: float) -> str:
    value = float(text)
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError
    return text.strip()


@dataclass(slots=True)
class Point:
    kind: str  # trkpt or wpt
    line: int
    attrs: dict[str, str]
    texts: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Track:
    line: int
    texts: dict[str, str] = field(default_factory=dict)
    segments: list[list[Point]] = field(default_factory=list)


class _Reader(xml.sax.ContentHandler):
    """Collects tracks, segments, points and waypoints with their lines; knows nothing of records."""

    def __init__(self, max_items: int | None = None) -> None:
        super().__init__()
        self.max_items = max_items
        self.count = 0  # tracks, track points and waypoints: one item (or refusal) each
        self.path: list[str] = []
        self.tracks: list[Track] = []
        self.waypoints: list[Point] = []
        self.routes = 0
        self.point: Point | None = None
        self.text: list[str] = []
        self.root = ""

    def _line(self) -> int:
        locator = getattr(self, "_locator", None)
        return int(locator.getLineNumber()) if locator is not None else 0

    def startElement(self, name: str, attrs: Any) -> None:
        local = _local(name)
        if not self.path:
            self.root = local
            if local != "gpx":
                raise FileRefused(f"line {self._line()}: the root element is <{name}>, not <gpx>")
        parent = self.path[-1] if self.path else ""
        self.path.append(local)
        self.text = []
        if (local == "trk" and parent == "gpx") or (local in ("trkpt", "wpt") and parent in ("trkseg", "gpx")):
            self.count += 1
            if self.max_items is not None and self.count > self.max_items:
                raise too_many(self.max_items, self._line())
        if local == "trk" and parent == "gpx":
            self.tracks.append(Track(self._line()))
        elif local == "trkseg" and parent == "trk" and self.tracks:
            self.tracks[-1].segments.append([])
        elif local in ("trkpt", "wpt") and parent in ("trkseg", "gpx"):
            # Only the attributes a point is read for, under the module's own key strings: a long
            # track holds one such dict a point, and each key expat makes is a new string.
            self.point = Point(local, self._line(), {k: attrs[k] for k in ("lat", "lon") if k in attrs})
        elif local == "rte" and parent == "gpx":
            self.routes += 1

    def characters(self, content: str) -> None:
        self.text.append(content)

    def endElement(self, name: str) -> None:
        local = self.path.pop()
        text = "".join(self.text).strip()
        self.text = []
        parent = self.path[-1] if self.path else ""
        if self.point is not None:
            if local == self.point.kind:
                if local == "wpt":
                    self.waypoints.append(self.point)
                elif self.tracks and self.tracks[-1].segments:
                    self.tracks[-1].segments[-1].append(self.point)
                self.point = None
            elif parent == self.point.kind and local in TEXT_OF and text:
                self.point.texts[TEXT_OF[local]] = text
            elif local in EXTENSIONS and text and "extensions" in self.path:
                self.point.texts[local] = text
        elif parent == "trk" and local in TEXT_OF and text and self.tracks:
            self.tracks[-1].texts[TEXT_OF[local]] = text


def read(data: bytes, max_items: int | None = None) -> _Reader:
    reader = _Reader(max_items)
    try:
        defusedxml.sax.parseString(data, reader)
    except xml.sax.SAXParseException as exc:
        raise FileRefused(f"line {exc.getLineNumber()}: not well-formed XML: {exc.getMessage()}") from None
    except DefusedXmlException as exc:
        raise FileRefused(f"refused: {exc}") from None
    return reader


def _position(point: Point) -> tuple[str, str, str | None]:
    """(lat, lon, ele) as the file writes them, checked; ValueError saying which is wrong."""
    out = []
    for attr, bound in (("lat", 90.0), ("lon", 180.0)):
        given = point.attrs.get(attr)
        if given is None:
            raise ValueError(f"it has no {attr}")
        try:
            out.append(_number(given, -bound, bound))
        except ValueError:
            raise ValueError(f"{attr}={given!r} is not a number from {-bound:g} to {bound:g}") from None
    ele = point.texts.get("ele")
    if ele is not None:
        try:
            _number(ele, -1e6, 1e6)
        except ValueError:
            raise ValueError(f"<ele> {clip(ele, 40)!r} is not a number") from None
    return out[0], out[1], ele


def _time(point: Point) -> dt.datetime | None:
    given = point.texts.get("time")
    if given is None:
        return None
    try:
        moment = parse_time(given)
    except ValueError:
        raise ValueError(f"<time> {clip(given, 40)!r} is not a time") from None
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is in the year 10000 in UTC
        moment = None
    if moment is None or not EARLIEST <= moment <= LATEST:  # what a HAT stores a record's time in
        raise ValueError(f"<time> {clip(given, 40)!r} is not a time in the years 2 to 9998")
    return moment


class GpxPlug(RecordsOnly):
    kind = "gpx"

    def parse(self, data: bytes, name: str, *, max_items: int | None = None) -> Parsed:
        reader = read(data, max_items)
        items: list[Item] = []
        refused: list[Refused] = []
        extensions: set[str] = set()
        for number, track in enumerate(reader.tracks, 1):
            self._track(track, number, name, items, refused, extensions)
        for waypoint in reader.waypoints:
            where = f"<wpt> on line {waypoint.line}"
            try:
                lat, lon, ele = _position(waypoint)
                when = _time(waypoint)
            except ValueError as exc:
                refused.append(Refused(where, str(exc)))
                continue
            label = waypoint.texts.get("name", "waypoint")
            key = f"{label} @ {lat},{lon}" + (f" {when.isoformat()}" if when else "")
            values = {k: v for k, v in waypoint.texts.items() if k in WAYPOINT_FIELDS}
            values |= {"lat": lat, "lon": lon} | ({"ele": ele} if ele else {})
            items.append(Item("waypoints", key, values, when, where))
        tables: dict[str, list[str]] = {}
        if reader.tracks:
            tables["tracks"] = TRACK_FIELDS
            tables["points"] = POINT_FIELDS + sorted(extensions)
        if reader.waypoints:
            tables["waypoints"] = WAYPOINT_FIELDS
        if reader.routes:
            refused.append(Refused("<rte>", f"{reader.routes} route(s) not imported: this plug reads tracks"))
        return Parsed(SOURCE, tables, items, refused)

    def _track(
        self, track: Track, number: int, file: str, items: list[Item], refused: list[Refused], extensions: set[str]
    ) -> None:
        good: list[tuple[int, int, Point, str, str, str | None, dt.datetime | None]] = []
        # Every time that can be read, of points refused or not: the track's identity must not
        # change when a point is fixed and the file imported again (it would store the track twice).
        times: list[dt.datetime] = []
        for segment_number, segment in enumerate(track.segments, 1):
            for index, point in enumerate(segment, 1):
                try:
                    when = _time(point)
                except ValueError as exc:
                    refused.append(Refused(f"<trkpt> on line {point.line}", str(exc)))
                    continue
                if when is not None:
                    times.append(when)
                try:
                    lat, lon, ele = _position(point)
                except ValueError as exc:
                    refused.append(Refused(f"<trkpt> on line {point.line}", str(exc)))
                    continue
                good.append((segment_number, index, point, lat, lon, ele, when))
        label = track.texts.get("name", "track")
        # Without times, nothing in the file names a track better than its place in the file.
        key = f"{label} {min(times).isoformat()}" if times else f"{label} #{number} of {file}"
        track_values = {k: v for k, v in track.texts.items() if k in TRACK_FIELDS}
        track_values |= {"segments": str(len(track.segments)), "points": str(len(good))}
        if times:
            track_values |= {"start": min(times).isoformat(), "end": max(times).isoformat()}
        items.append(Item("tracks", key, track_values, min(times) if times else None, f"<trk> on line {track.line}"))
        for segment_number, index, point, lat, lon, ele, when in good:
            point_key = f"{key} @ {when.isoformat()}" if when else f"{key} #{segment_number}.{index}"
            values = {"track": key, "segment": str(segment_number), "lat": lat, "lon": lon}
            if ele is not None:
                values["ele"] = ele
            if "time" in point.texts:
                values["time"] = point.texts["time"]
            for name in EXTENSIONS:
                if name in point.texts:
                    values[name] = point.texts[name]
                    extensions.add(name)
            items.append(Item("points", point_key, values, when, f"<trkpt> on line {point.line}"))
