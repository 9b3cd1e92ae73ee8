"""The CSV plug, for anything else: the header row names the fields, each row is one record of one
table (source `csv`, named after the file unless given), empty cells store no value. A chosen key
column names each record (a row's key); without one, a row is known by its content, so the same
row twice is one record. A chosen time column is the record's time (ISO-8601 or unix seconds)."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import PurePath

from hatd.plugs.base import KEY, MAX_KEY, FileRefused, Item, Parsed, RecordsOnly, Refused, clip
from hatd.plugs.ical import decode
from hatd.raw.schemas import parse_time

SOURCE = "csv"
DELIMITERS = ",;\t|"
MAX_FIELD_NAME = 500


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

    def parse(self, data: bytes, name: str) -> Parsed:
        text = decode(data)
        if "\x00" in text:
            line = text[: text.index("\x00")].count("\n") + 1
            raise FileRefused(f"line {line}: a NUL character: this is not a text file")
        table = (self.table or PurePath(name).stem or "csv").strip()
        if not 1 <= len(table) <= MAX_FIELD_NAME:
            raise FileRefused("the table needs a name of 1 to 500 characters")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self._dialect_delimiter(text), strict=True)
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
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                refused.append(Refused(f"line {start}", str(exc)))
                break  # the reader cannot find the next row after a broken quote
            where = f"line {start}"
            if not any(cell.strip() for cell in row):
                continue
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
