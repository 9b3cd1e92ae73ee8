"""A table's records as a grid, for the table's page and its CSV download: one column per field of
the table tree (a subtable's fields grouped under its name), one row per record, each cell the
record's values in that field. Works on the JSON the API's values read gives (GET
/data/table/{id}/values), so the page and the download show what the API does."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# What a cell holding several values of one field joins them with: a line of its own each
# (spreadsheets show a quoted multi-line cell as a list).
VALUE_SEPARATOR = "\n"
# A spreadsheet reads a cell starting with one of these as a formula (OWASP, "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A plain decimal number: a spreadsheet reads "-3.5" as the number, never as a formula, so it
# keeps its sign rather than a quote in front.
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class Column:
    field_id: int
    name: str
    # The path of the field in the download: "kitchen.tableTestField", "kitchenElectricity.x",
    # "room.appliance.watts" (the top table's name, or the subtables' names below it).
    path: str


@dataclass(frozen=True)
class Group:
    """A table of the tree and its fields: the first header row of the grid."""

    label: str  # "kitchen", "kitchenElectricity", "room / appliance"
    columns: tuple[Column, ...]


def groups(table: dict[str, Any]) -> list[Group]:
    """The table's own fields, then each subtable's (depth first), skipping tables without fields."""
    found: list[Group] = []

    def walk(node: dict[str, Any], trail: tuple[str, ...]) -> None:
        path = ".".join(trail) if trail else node["name"]
        columns = tuple(Column(f["id"], f["name"], f"{path}.{f['name']}") for f in node.get("fields") or [])
        if columns:
            found.append(Group(" / ".join(trail) if trail else node["name"], columns))
        for sub in node.get("subTables") or []:
            walk(sub, (*trail, sub["name"]))

    walk(table, ())
    return found


def columns(found: list[Group]) -> list[Column]:
    return [column for group in found for column in group.columns]


def _values(tree: dict[str, Any]) -> Iterator[tuple[int, str]]:
    for field in tree.get("fields") or []:
        for value in field.get("values") or []:
            yield field["id"], value["value"]
    for sub in tree.get("subTables") or []:
        yield from _values(sub)


def values_by_field(record: dict[str, Any]) -> dict[int, list[str]]:
    """A record's values (as the values read gives it) by field id, in the order they came."""
    found: dict[int, list[str]] = {}
    for tree in record.get("tables") or []:
        for field_id, value in _values(tree):
            found.setdefault(field_id, []).append(value)
    return found


def rows(records: list[dict[str, Any]], cols: list[Column]) -> list[dict[str, Any]]:
    """Each record with its cells: one list of values per column."""
    out = []
    for record in records:
        found = values_by_field(record)
        out.append({**record, "cells": [found.get(column.field_id, []) for column in cols]})
    return out


def safe_cell(text: str) -> str:
    """A cell a spreadsheet cannot run: text starting as a formula gets a ' in front (which
    spreadsheets hide), plain numbers stay as they are."""
    if text.startswith(FORMULA_START) and not NUMBER.fullmatch(text):
        return "'" + text
    return text


CSV_LEADING = ("record id", "record time", "record name")


def csv_header(cols: list[Column]) -> list[str]:
    return [*CSV_LEADING, *(safe_cell(column.path) for column in cols)]


def csv_row(record: dict[str, Any], cols: list[Column]) -> list[str]:
    found = values_by_field(record)
    cells = [VALUE_SEPARATOR.join(found.get(column.field_id, [])) for column in cols]
    return [str(record["id"]), record["lastUpdated"], safe_cell(record["name"]), *(safe_cell(c) for c in cells)]
