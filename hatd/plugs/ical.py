"""The iCalendar plug (RFC 5545, the .ics every calendar exports): each VEVENT becomes a record of
the table `events` (source `ical`), named after its UID and RECURRENCE-ID (in UTC), with its times, location,
attendees and recurrence rules as given; and a context `event` entity, linked to a `location`
entity where the event has a location.

The `icalendar` library decodes the events (escapes, parameters, time zones with their VTIMEZONE
rules: much that is easy to get subtly wrong by hand). This module first splits the file into its
events itself, keeping each one's line numbers and raw lines, so that a broken event is refused
alone, by its line, and recurrence rules are stored exactly as the file writes them."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import icalendar

from hatd.client.aio import AsyncHat
from hatd.client.models import Entity, HatError, Record, Table
from hatd.plugs.base import FileRefused, Item, Parsed, Refused, Summary, clip, too_many

SOURCE = "ical"
TABLE = "events"
FIELDS = [
    "uid", "recurrenceId", "summary", "description", "start", "end", "duration", "timezone", "allDay",
    "location", "geo", "status", "organizer", "attendees", "rrule", "rdate", "exdate", "categories", "url",
    "created", "lastModified", "sequence", "calendar",
]  # fmt: skip
ENTITY_NAME = 100  # the most an entity's name may hold
# The vocabulary an event's entity is tied to its record by (both in every HAT's default vocabulary).
START_PROPERTY = "Date and Time"
ADDRESS_PROPERTY = "Location Address"
_NAME = re.compile(r"[A-Za-z0-9-]+")
_LINE_BREAK = re.compile(r"\r\n|\n|\r")
# Decoded properties an event cannot be stored without, when they are there and broken.
_TIMES = ("DTSTART", "DTEND", "RECURRENCE-ID", "DURATION")


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileRefused(f"line {line}: not UTF-8 text") from None


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, content line) with folded lines joined (RFC 5545 3.1); blank lines dropped.
    One at a time: a big calendar's lines are never all held at once."""
    held: tuple[int, str] | None = None
    number, position = 0, 0
    while position <= len(text):
        found = _LINE_BREAK.search(text, position)
        end = found.start() if found else len(text)
        line = text[position:end]
        number += 1
        position = found.end() if found else len(text) + 1
        if line[:1] in (" ", "\t") and held is not None:
            held = (held[0], held[1] + line[1:])
        elif line.strip():
            if held is not None:
                yield held
            held = (number, line)
    if held is not None:
        yield held


def split_line(line: str) -> tuple[str, str, str] | None:
    """(NAME, parameters, value) of a content line, or None if it is not one."""
    cut = len(line)
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            cut = index
            break
    if cut == len(line):
        return None
    head = line[:cut]
    name, _, params = head.partition(";")
    if not _NAME.fullmatch(name):
        return None
    return name.upper(), params, line[cut + 1 :]


@dataclass
class Block:
    """One VEVENT: where it starts, its content lines, and the first problem in them."""

    line: int
    lines: list[str] = field(default_factory=list)
    raw: dict[str, list[str]] = field(default_factory=dict)
    problem: str | None = None


def split_events(text: str, max_items: int | None = None) -> tuple[list[str], list[Block]]:
    """(the calendar's other lines, its time zones among them; the events), or FileRefused naming
    the line where the file's structure breaks (or where it holds more than `max_items` events)."""
    lines = logical_lines(text)
    first = next(lines, None)
    if first is None or first[1].strip().upper() != "BEGIN:VCALENDAR":
        where = f"line {first[0]}" if first else "line 1"
        raise FileRefused(f"{where}: an iCalendar file starts with BEGIN:VCALENDAR")
    rest: list[str] = []
    events: list[Block] = []
    stack: list[str] = []
    event: Block | None = None
    number = first[0]
    for number, line in itertools.chain([first], lines):
        parts = split_line(line)
        if parts is None:
            if event is not None:
                event.problem = event.problem or f"line {number}: not an iCalendar content line: {clip(line, 60)!r}"
                event.lines.append(line)
                continue
            raise FileRefused(f"line {number}: not an iCalendar content line: {clip(line, 60)!r}")
        name, _, value = parts
        component = value.strip().upper()
        if name == "BEGIN":
            stack.append(component)
            if component == "VEVENT" and stack[:-1] == ["VCALENDAR"]:
                if max_items is not None and len(events) >= max_items:
                    raise too_many(max_items, number)
                event = Block(number)
        elif name == "END":
            if not stack or stack[-1] != component:
                opened = f"BEGIN:{stack[-1]}" if stack else "nothing"
                raise FileRefused(f"line {number}: END:{component} closes {opened}")
            stack.pop()
        if event is not None:
            event.lines.append(line)
            if len(stack) == 2 and name not in ("BEGIN", "END"):  # the event's own properties, not its alarms'
                event.raw.setdefault(name, []).append(line if name in ("RDATE", "EXDATE") else value)
            if name == "END" and component == "VEVENT" and stack == ["VCALENDAR"]:
                events.append(event)
                event = None
        elif not (name in ("BEGIN", "END") and component == "VCALENDAR" and not stack[1:]):
            rest.append(line)
    if stack:
        raise FileRefused(f"line {number}: the file ends inside BEGIN:{stack[-1]}")
    return rest, events


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(icalendar.vDuration(value).to_ical().decode())  # type: ignore[no-untyped-call]
    return str(value)


def _utc(value: Any) -> dt.datetime | None:
    """A record's time: a datetime in UTC (a floating one, and a date's midnight, taken as UTC)."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    return None


def _text(event: icalendar.cal.Component, name: str) -> str:
    value = event.get(name)
    if value is None:
        return ""
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if name == "CATEGORIES":
        return ",".join(str(c) for c in getattr(value, "cats", [value]))
    return str(value)


def _attendees(event: icalendar.cal.Component) -> str:
    given = event.get("ATTENDEE")
    if given is None:
        return ""
    people = []
    for attendee in given if isinstance(given, list) else [given]:
        person = {"address": str(attendee)}
        for key, param in (("name", "CN"), ("role", "ROLE"), ("status", "PARTSTAT")):
            if attendee.params.get(param):
                person[key] = str(attendee.params[param])
        people.append(person)
    return json.dumps(people, ensure_ascii=False)


class IcalPlug:
    kind = "ical"

    def parse(self, data: bytes, name: str, *, max_items: int | None = None) -> Parsed:
        rest, blocks = split_events(decode(data), max_items)
        calendar_name = ""
        for line in rest:
            parts = split_line(line)
            if parts and parts[0] == "X-WR-CALNAME":
                calendar_name = parts[2].strip()
        items: list[Item] = []
        refused: list[Refused] = []
        blocks.reverse()
        while blocks:  # each event's lines are let go once it is read: they and the items are not all held at once
            block = blocks.pop()
            where = f"VEVENT on line {block.line}"
            if block.problem is not None:
                refused.append(Refused(where, block.problem))
                continue
            try:
                item = self._item(block, rest, where, calendar_name)
            except ValueError as exc:
                refused.append(Refused(where, str(exc)))
                continue
            except Exception as exc:  # the library's surprise at one odd event refuses that event, not the file
                refused.append(Refused(where, f"cannot be read: {type(exc).__name__}: {exc}"))
                continue
            items.append(item)
        return Parsed(SOURCE, {TABLE: FIELDS}, items, refused)

    def _item(self, block: Block, rest: list[str], where: str, calendar_name: str) -> Item:
        for once in ("UID", *_TIMES):  # RFC 5545: these appear at most once in an event
            if len(block.raw.get(once, [])) > 1:
                raise ValueError(f"it has {len(block.raw[once])} {once} lines; an event has one")
        text = "\r\n".join(["BEGIN:VCALENDAR", *rest, *block.lines, "END:VCALENDAR"]) + "\r\n"
        try:
            found = icalendar.Calendar.from_ical(text).walk("VEVENT")
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"cannot be read: {exc}") from None
        event = found[0]
        broken = [f"{prop}: {problem}" for prop, problem in event.errors if prop in _TIMES]
        if broken:
            raise ValueError("; ".join(broken))
        uid = _text(event, "UID").strip()
        if not uid:
            raise ValueError("it has no UID, which names an event")
        if event.get("DTSTART") is None:
            raise ValueError("it has no DTSTART")
        start = event.decoded("DTSTART")
        key = uid
        values = {"uid": uid, "start": _iso(start)}
        if event.get("RECURRENCE-ID") is not None:
            recurrence = event.decoded("RECURRENCE-ID")
            values["recurrenceId"] = _iso(recurrence)
            # One instance, however the file writes it (in its zone, or in UTC): its UTC time; a
            # floating time and a date name no instant, and stay as they are.
            if isinstance(recurrence, dt.datetime) and recurrence.tzinfo is not None:
                recurrence = recurrence.astimezone(dt.UTC)
            key = f"{uid} {_iso(recurrence)}"
        if event.get("DTEND") is not None:
            values["end"] = _iso(event.decoded("DTEND"))
        if event.get("DURATION") is not None:
            values["duration"] = _iso(event.decoded("DURATION"))
        tzid = event["DTSTART"].params.get("TZID")
        if tzid:
            values["timezone"] = str(tzid)
        values["allDay"] = "true" if not isinstance(start, dt.datetime) else "false"
        for field_name, prop in (
            ("summary", "SUMMARY"), ("description", "DESCRIPTION"), ("location", "LOCATION"), ("status", "STATUS"),
            ("organizer", "ORGANIZER"), ("categories", "CATEGORIES"), ("url", "URL"), ("sequence", "SEQUENCE"),
        ):  # fmt: skip
            found_text = _text(event, prop)
            if found_text:
                values[field_name] = found_text
        if event.get("GEO") is not None:
            geo = event.get("GEO")
            values["geo"] = f"{geo.latitude};{geo.longitude}" if hasattr(geo, "latitude") else str(geo)
        for field_name, prop in (("created", "CREATED"), ("lastModified", "LAST-MODIFIED")):
            if event.get(prop) is not None:
                values[field_name] = _iso(event.decoded(prop))
        attendees = _attendees(event)
        if attendees:
            values["attendees"] = attendees
        for field_name, prop in (("rrule", "RRULE"), ("rdate", "RDATE"), ("exdate", "EXDATE")):
            if block.raw.get(prop):
                values[field_name] = "\n".join(block.raw[prop])
        if calendar_name:
            values["calendar"] = calendar_name
        extra = {"entity": clip(values.get("summary", "").strip() or "(untitled event)", ENTITY_NAME)}
        if values.get("location", "").strip():
            extra["location"] = clip(values["location"].strip(), ENTITY_NAME)
        return Item(TABLE, key, values, _utc(start), where, extra)

    async def after(
        self, hat: AsyncHat, tables: dict[str, Table], parsed: Parsed, records: dict[str, Record], summary: Summary
    ) -> None:
        """Each event gets an `event` entity, tied to its record by a static property link ("start",
        over its start field), and linked to a `location` entity (one per place, by name). Events
        already in the HAT are matched to their entities through that link, so a second import
        makes none twice, and one stopped between its records and its entities is finished."""
        table = tables[TABLE]
        start_field, location_field = table.field("start"), table.field("location")
        start_property = await _property_id(hat, START_PROPERTY)
        address_property = await _property_id(hat, ADDRESS_PROPERTY)
        items = {item.key: item for item in parsed.items}
        events = await hat.entities("event")
        todo = dict(records)
        waiting = {key for key in items if key not in records}  # already there before this import
        if waiting and start_property is not None:
            names = {items[key].extra["entity"] for key in waiting}
            for entity in events:
                if entity.name not in names:
                    continue
                for link in await hat.property_links(entity, static=True):
                    record = link.get("record") or {}
                    linked_field = (link.get("field") or {}).get("id")
                    if link.get("relationshipType") == "start" and linked_field == start_field.id:
                        waiting.discard(str(record.get("name")))
            if waiting:  # events stored before, without their entity: find their records
                async for stored in hat.table_values(table):
                    if stored.get("name") in waiting:
                        todo[str(stored["name"])] = Record.from_json(stored)
        elif start_property is None:
            waiting.clear()
        locations = {entity.name: entity for entity in await hat.entities("location")}
        for key, record in todo.items():
            item = items.get(key)
            if item is None or (key not in records and key not in waiting):
                continue
            event = await hat.create_entity("event", item.extra["entity"])
            summary.entities += 1
            if start_property is not None:
                await hat.add_property(event, start_property, start_field, "start", record)
            place = item.extra.get("location")
            if place is None:
                continue
            location = locations.get(place)
            if location is None:
                location = locations[place] = await hat.create_entity("location", place)
                summary.entities += 1
                if address_property is not None:
                    await hat.add_property(location, address_property, location_field, "address", record)
            await _link(hat, event, location)


async def _property_id(hat: AsyncHat, name: str) -> int | None:
    found = await hat.properties(name)
    return int(found[0]["id"]) if found else None


async def _link(hat: AsyncHat, event: Entity, location: Entity) -> None:
    try:
        await hat.link_entities(event, location, "location")
    except HatError as exc:
        if exc.status != 409:  # linked already
            raise
