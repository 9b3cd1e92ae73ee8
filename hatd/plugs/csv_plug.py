"""The CSV plug, for anything else: the header row names the fields, each row is one record of one
table (source `csv`, named after the file unless given), empty cells store no value. A chosen key
column names each record (a row's key); without one, a row is known by its content, so the same
row twice is one record. A chosen time column is the record's time (ISO-8601 or unix seconds)."""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from pathlib import PurePath

from hatd.fields import parse_time
from hatd.plugs.base import KEY, MAX_KEY, FileRefused, Item, Parsed, RecordsOnly, Refused, clip, too_many
from hatd.plugs.ical import decode

SOURCE = "csv"
DELIMITERS = ",;\t|"
MAX_FIELD_NAME = 500
_LINE_END = re.compile(r"\r\n|\r|\n")


class Lines:
    """The physical lines of a text, for csv.reader, with the number of the last one handed out;
    `restart` goes back to just after a given line, so that a row the reader chokes on (a broken
    quote, a quote never closed that swallowed the lines after it) costs only its own first line."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.number = 0  # lines handed out
        self.position = 0
        self.starts: list[int] = []  # where each line handed out since the last restart begins

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.position >= len(self.text):
            raise StopIteration
        end = _LINE_END.search(self.text, self.position)
        stop = end.end() if end else len(self.text)
        line = self.text[self.position : stop]
        self.starts.append(self.position)
        self.position = stop
        self.number += 1
        return line

    def mark(self) -> int:
        """Forget the lines read so far (a row ends here); the number of the next line."""
        self.starts.clear()
        return self.number + 1

    def restart(self, line: int) -> None:
        """Read on from the line after `line`, the first line of the last row the reader began."""
        if self.starts:
            end = _LINE_END.search(self.text, self.starts[0])
            self.position = end.end() if end else len(self.text)
        self.number = line
        self.starts.clear()


class CsvPlug(RecordsOnly):
    kind = "csv"

    def __init__(
        self,
        table: str | None = None,
        *,
        key: str | None = None,
        time: str | None = None,
        source: str = SOURCE,
        delimiter: str | None = None,
    ) -> None:
        self.table = table
        self.key = key
        self.time = time
        self.source = source
        self.delimiter = delimiter

    def _dialect_delimiter(self, text: str) -> str:
        if self.delimiter:
            return self.delimiter
        try:
            return csv.Sniffer().sniff(text[:8192], delimiters=DELIMITERS).delimiter
        except csv.Error:
            return ","

    def parse(self, data: bytes, name: str, *, max_items: int | None = None) -> Parsed:
        text = decode(data)
        if "\x00" in text:
            line = text[: text.index("\x00")].count("\n") + 1
            raise FileRefused(f"line {line}: a NUL character: this is not a text file")
        table = (self.table or PurePath(name).stem or "csv").strip()
        if not 1 <= len(table) <= MAX_FIELD_NAME:
            raise FileRefused("the table needs a name of 1 to 500 characters")
        # A cell can be as long as the file (the HAT's body limit bounds it); the default stops at 131,072.
        csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
        delimiter = self._dialect_delimiter(text)
        lines = Lines(text)
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise FileRefused("line 1: the file is empty; it needs a header row") from None
        except csv.Error as exc:
            raise FileRefused(f"line {reader.line_num}: {exc}") from None
        columns = [column.strip() for column in header]
        for number, column in enumerate(columns, 1):
            if not column:
                raise FileRefused(f"line 1: column {number} of the header has no name")
            if len(column) > MAX_FIELD_NAME:
                raise FileRefused(f"line 1: column {number}'s name is over {MAX_FIELD_NAME} characters")
            if columns.index(column) != number - 1:
                raise FileRefused(f"line 1: two columns are called {column!r}")
        if KEY in columns:
            raise FileRefused(f"line 1: a column is called {KEY!r}, the name the plug gives each row's key")
        for option, wanted in (("--key", self.key), ("--time", self.time)):
            if wanted is not None and wanted not in columns:
                raise FileRefused(f"{option} {wanted!r}: the header has no such column ({', '.join(columns)})")
        items: list[Item] = []
        refused: list[Refused] = []
        while True:
            start = lines.mark()
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                if max_items is not None and len(items) + len(refused) >= max_items:
                    raise too_many(max_items, start) from None
                refused.append(Refused(f"line {start}", str(exc)))
                lines.restart(start)  # and a fresh reader, in case the old one kept some of its state
                reader = csv.reader(lines, delimiter=delimiter, strict=True)
                continue
            where = f"line {start}"
            if not any(cell.strip() for cell in row):
                continue
            if max_items is not None and len(items) + len(refused) >= max_items:
                raise too_many(max_items, start)
            if len(row) != len(columns):
                refused.append(Refused(where, f"{len(row)} cells where the header has {len(columns)}"))
                continue
            values = {column: cell for column, cell in zip(columns, row, strict=True) if cell != ""}
            when = None
            if self.time is not None:
                given = values.get(self.time, "").strip()
                try:
                    when = parse_time(given) if given else None
                except ValueError:
                    refused.append(
                        Refused(where, f"{self.time} {clip(given, 40)!r} is not a time (ISO-8601 or unix seconds)")
                    )
                    continue
                if when is None:
                    refused.append(Refused(where, f"it has no {self.time}"))
                    continue
            if self.key is not None:
                key = values.get(self.key, "").strip()
                if not key:
                    refused.append(Refused(where, f"it has no {self.key}, its key"))
                    continue
                if len(key) > MAX_KEY:
                    refused.append(Refused(where, f"its {self.key} is over {MAX_KEY} characters"))
                    continue
            else:
                key = "row " + hashlib.sha256("\x1f".join(row).encode()).hexdigest()[:32]
            items.append(Item(table, key, values, when, where))
        return Parsed(self.source, {table: columns}, items, refused)
