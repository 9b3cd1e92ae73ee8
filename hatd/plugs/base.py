"""What every data plug shares: a file becomes items (one record each, named after the source's own
identity) and refusals (a bad item, with its line); the pipeline stores the items through the HAT
client, skipping those already there, so importing a file twice stores nothing twice.

The pipeline speaks only the HAT API (hatd.client), so a plug works against any HAT, and the
owner's upload page runs the very same code against its own HAT."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hatd.client.aio import AsyncHat
from hatd.client.models import Field, HatError, NewRecord, Record, Scalar, Table

# A record's name (and key) is at most this long on a HAT.
MAX_KEY = 500


class FileRefused(Exception):
    """The whole file cannot be read (not the format, or broken where no item can be told apart);
    nothing from it is stored. The message names the line."""


def too_many(limit: int, line: int) -> FileRefused:
    """The refusal of a file with more than `limit` items (records and refusals): a plug raises it
    while it reads, before the items it holds in memory grow past the bound."""
    return FileRefused(
        f"line {line}: more than {limit:,} items (rows, events, tracks and points), the most one import here "
        "takes: split the file, or import it with `hatd plug`"
    )


@dataclass(slots=True)
class Item:
    """One record to store: in `table`, named `key` (the source's identity), with values by field
    name, at the source's own `time`; `where` says where in the file it came from."""

    table: str
    key: str
    values: dict[str, str]
    time: dt.datetime | None
    where: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Refused:
    where: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.why}"


@dataclass
class Parsed:
    """A file read: its tables (name -> field names), the items and the refusals, in file order."""

    source: str
    tables: dict[str, list[str]]
    items: list[Item]
    refused: list[Refused]


@dataclass
class Summary:
    """What an import did with one file."""

    file: str
    new: int = 0
    existing: int = 0
    refused: list[Refused] = field(default_factory=list)
    # What the plug made beside the records (iCalendar: event and location entities).
    entities: int = 0
    # Why the whole file was refused (nothing from it was stored).
    error: str | None = None
    # Why the HAT stopped the import (what went in before stays; importing again finishes it).
    stopped: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.stopped is None and not self.refused

    def lines(self) -> list[str]:
        if self.error is not None:
            return [f"{self.file}: refused, nothing stored: {self.error}"]
        text = f"{self.file}: {self.new} new, {self.existing} already there, {len(self.refused)} refused"
        if self.entities:
            text += f"; {self.entities} entities made"
        out = [text]
        out += [f"  refused {refusal}" for refusal in self.refused]
        if self.stopped is not None:
            out.append(f"  stopped: {self.stopped}")
        return out


# Requests in flight at once while storing.
IN_FLIGHT = 2

# Keys read back a page: hatd's largest page by default (HATD_VALUES_MAX_LIMIT).
KEY_PAGE = 10_000

# The key field every plug table has: its value is the record's name, the source's identity. The
# pipeline reads this one field back to learn which records a HAT has already.
KEY = "key"

Progress = Callable[[int], None]


class Plug(Protocol):
    kind: str

    def parse(self, data: bytes, name: str, *, max_items: int | None = None) -> Parsed:
        """The file's items, or FileRefused (see `too_many`) when it holds more than `max_items`."""
        ...

    async def after(
        self, hat: AsyncHat, tables: dict[str, Table], parsed: Parsed, records: dict[str, Record], summary: Summary
    ) -> None:
        """What the plug does once the records are in (`records`: every item's record by key, new
        or already there, where the HAT told us its id)."""
        ...


class RecordsOnly:
    """A plug with nothing to do after the records."""

    async def after(
        self, hat: AsyncHat, tables: dict[str, Table], parsed: Parsed, records: dict[str, Record], summary: Summary
    ) -> None:
        return None


async def existing_keys(hat: AsyncHat, table: Table) -> set[str]:
    """The keys of the records a plug table holds already (the values of its key field)."""
    try:
        key_field = table.field(KEY)
    except KeyError:
        return set()
    try:  # big pages: fewer round trips; a HAT that allows less answers 400 to the first, and we ask its own
        return {str(value.get("value")) async for value in hat.field_values(key_field, page_size=KEY_PAGE)}
    except HatError as exc:
        if exc.status != 400:
            raise
    return {str(value.get("value")) async for value in hat.field_values(key_field)}


async def _store(
    hat: AsyncHat, tables: dict[str, Table], items: Sequence[Item], summary: Summary, progress: Progress
) -> dict[str, Record]:
    """Stores the items in requests of about a thousand values, two in flight (one is built and
    encoded here while the HAT stores the other). A request the HAT refuses as bad input is split
    until the bad item is found and refused alone, so the good ones go in."""
    stored: dict[str, Record] = {}
    failures: list[HatError] = []

    def record_of(item: Item) -> NewRecord:
        table = tables[item.table]
        values: dict[Field | int, Scalar] = {table.field(name): text for name, text in item.values.items()}
        return NewRecord(item.key, values, item.time)

    async def send(low: int, high: int) -> None:
        try:  # records are built a batch at a time: a big file's values are not held twice
            made = await hat.create_batch([record_of(item) for item in items[low:high]])
        except HatError as exc:
            if not exc.bad_input:
                raise
            if high - low == 1:
                summary.refused.append(Refused(items[low].where, f"the HAT refused it: {exc.message}: {exc.cause}"))
                progress(1)
                return
            middle = (low + high) // 2
            await send(low, middle)
            await send(middle, high)
            return
        for item, record in zip(items[low:high], made, strict=True):
            stored[item.key] = record
        summary.new += high - low
        progress(high - low)

    parts: list[tuple[int, int]] = []  # runs of about batch_values values, as hatd.client.batches cuts them
    low, count = 0, 0
    for index, item in enumerate(items):
        size = max(len(item.values), 1)
        if index > low and count + size > hat.batch_values:
            parts.append((low, index))
            low, count = index, 0
        count += size
    if low < len(items):
        parts.append((low, len(items)))
    queue = iter(parts)

    async def worker() -> None:
        for low, high in queue:  # one iterator for both: each part is taken once
            if failures:
                return
            try:
                await send(low, high)
            except HatError as exc:
                failures.append(exc)
                return

    async with asyncio.TaskGroup() as group:
        for _ in range(IN_FLIGHT):
            group.create_task(worker())
    if failures:
        raise failures[0]
    return stored


async def import_file(
    hat: AsyncHat, plug: Plug, data: bytes, name: str, *, progress: Progress | None = None,
    on_parsed: Callable[[int], None] | None = None, max_items: int | None = None,
) -> Summary:  # fmt: skip
    """Imports one file into the HAT. Raises nothing for what the file or the HAT says: a file
    refused whole is the summary's `error`, a HAT that stopped the import its `stopped`. A file of
    more than `max_items` items is refused whole, as soon as the plug reads one item too many: the
    memory an import takes grows with its items (a few hundred bytes to 2 kB each)."""
    summary = Summary(name)
    advance = progress or (lambda _: None)
    try:
        # In a thread: a big file takes seconds to read, and a server (the upload page) must go on
        # answering meanwhile, the requests of this very import among them.
        parsed = await asyncio.to_thread(plug.parse, data, name, max_items=max_items)
    except FileRefused as exc:
        summary.error = str(exc)
        return summary
    except Exception as exc:  # a plug's (or its library's) surprise at an odd file refuses it, never a crash
        summary.error = f"it cannot be read: {type(exc).__name__}: {exc}"
        return summary
    summary.refused += parsed.refused
    if on_parsed is not None:
        on_parsed(len(parsed.items))
    try:
        await _import(hat, plug, parsed, summary, advance)
    except HatError as exc:  # what went in stays, and the next import skips it
        summary.stopped = str(exc)
    summary.refused.sort(key=_order)
    return summary


async def _import(hat: AsyncHat, plug: Plug, parsed: Parsed, summary: Summary, advance: Progress) -> None:
    """The tables found or made, the keys already there read back, the new items stored."""
    tables: dict[str, Table] = {}
    for table_name, fields in parsed.tables.items():
        tables[table_name] = await hat.table(table_name, parsed.source, [KEY, *fields])
    seen: dict[str, set[str]] = {}
    first_where: dict[tuple[str, str], str] = {}
    new: list[Item] = []
    for item in parsed.items:
        if item.table not in seen:
            seen[item.table] = await existing_keys(hat, tables[item.table])
        where = first_where.get((item.table, item.key))
        if where is not None or len(item.key) > MAX_KEY:
            why = f"its identity is {where}'s too ({clip(item.key, 80)})" if where else "its identity is too long"
            summary.refused.append(Refused(item.where, why))
            advance(1)
            continue
        first_where[(item.table, item.key)] = item.where
        if item.key in seen[item.table]:
            summary.existing += 1
            advance(1)
            continue
        item.values[KEY] = item.key
        new.append(item)
    stored = await _store(hat, tables, new, summary, advance)
    await plug.after(hat, tables, parsed, stored, summary)


def _order(refusal: Refused) -> tuple[int, str]:
    """File order: by the line number in `where` ("line 12", "<trkpt> on line 40")."""
    digits = "".join(ch if ch.isdigit() else " " for ch in refusal.where).split()
    return (int(digits[-1]) if digits else 0, refusal.where)


def clip(text: str, limit: int) -> str:
    """Text cut to `limit` characters, with an ellipsis where it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
