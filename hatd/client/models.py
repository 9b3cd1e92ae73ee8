"""What the HAT client hands back and takes: tables, fields, records and entities as small typed
objects, and the error a HAT answered with. Reads whose shape is the server's own (values, bundles,
debits) stay plain JSON objects, so the client does not break when a server adds or omits a key."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

JsonObject = dict[str, Any]
# What a value may be when it goes in: a HAT stores values as text, numbers and booleans as their JSON text.
Scalar = str | int | float | bool
# A time as the HAT takes it: a datetime (naive means UTC), ISO-8601 text, or unix seconds.
Time = dt.datetime | dt.date | str | int | float

ENTITY_KINDS = ("person", "thing", "event", "location", "organisation")


class HatError(Exception):
    """A HAT refused a request, or could not be reached. `status` is the HTTP status (0 when no
    answer came); `message` and `cause` are the server's own words. `location`: where a redirect
    (a 3xx, which the client never follows) pointed."""

    def __init__(
        self, status: int, message: str, cause: str, *, method: str = "", url: str = "", location: str | None = None
    ) -> None:
        self.status = status
        self.message = message
        self.cause = cause
        self.method = method
        self.url = url
        self.location = location
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.method} {self.url}: " if self.method else ""
        answer = f"{self.status} " if self.status else ""
        return f"{where}{answer}{self.message}" + (f": {self.cause}" if self.cause else "")

    @property
    def bad_input(self) -> bool:
        """A 4xx other than 429 (and 408): the request itself was wrong, and sending it again will not help."""
        return 400 <= self.status < 500 and self.status not in (408, 429)


@dataclass(frozen=True)
class Field:
    id: int
    name: str
    table_id: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Field:
        return cls(id=int(data["id"]), name=str(data["name"]), table_id=int(data["tableId"]))


@dataclass(frozen=True)
class Table:
    """A raw data table with its fields and subtables, as the HAT answered it."""

    id: int
    name: str
    source: str
    fields: tuple[Field, ...] = ()
    subtables: tuple[Table, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Table:
        return cls(
            id=int(data["id"]),
            name=str(data["name"]),
            source=str(data["source"]),
            fields=tuple(Field.from_json(f) for f in data.get("fields") or []),
            subtables=tuple(Table.from_json(t) for t in data.get("subTables") or []),
        )

    def field(self, name: str) -> Field:
        """This table's own field called `name` (the first, as field names are not unique)."""
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        raise KeyError(f"table {self.name!r} ({self.source}) has no field {name!r}")

    def subtable(self, name: str) -> Table:
        for candidate in self.subtables:
            if candidate.name == name:
                return candidate
        raise KeyError(f"table {self.name!r} ({self.source}) has no subtable {name!r}")


@dataclass(frozen=True)
class TableSpec:
    """A table to find or make: its name, source, field names and subtables (to any depth)."""

    name: str
    source: str
    fields: Sequence[str] = ()
    subtables: Sequence[TableSpec] = ()

    def to_json(self) -> JsonObject:
        return {
            "name": self.name,
            "source": self.source,
            "fields": [{"name": name} for name in self.fields],
            "subTables": [sub.to_json() for sub in self.subtables],
        }


@dataclass(frozen=True)
class Record:
    id: int
    name: str
    last_updated: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        return cls(id=int(data["id"]), name=str(data.get("name", "")), last_updated=data.get("lastUpdated"))


@dataclass
class NewRecord:
    """A record to store with its values: {field (or field id): value}. `last_updated` is the
    source's own time (the HAT's time windows filter on it); None lets the HAT say now."""

    name: str
    values: Mapping[Field | int, Scalar] = field(default_factory=dict)
    last_updated: Time | None = None

    def to_json(self) -> JsonObject:
        record: JsonObject = {"name": self.name}
        if self.last_updated is not None:
            record["lastUpdated"] = time_json(self.last_updated)
        values = [
            {"value": value, "field": {"id": key.id if isinstance(key, Field) else int(key)}}
            for key, value in self.values.items()
        ]
        return {"record": record, "values": values}


@dataclass(frozen=True)
class Entity:
    id: int
    kind: str
    name: str
    person_id: str | None = None

    @classmethod
    def from_json(cls, kind: str, data: Mapping[str, Any]) -> Entity:
        return cls(id=int(data["id"]), kind=kind, name=str(data["name"]), person_id=data.get("personId"))


def time_json(when: Time) -> str | int | float:
    """A time as the HAT's JSON takes it: ISO-8601 in UTC for datetimes (naive ones are UTC)."""
    if isinstance(when, dt.datetime):
        aware = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(when, dt.date):
        return when.isoformat() + "T00:00:00Z"
    return when
