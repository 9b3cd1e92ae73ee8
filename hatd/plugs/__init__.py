"""Data plugs: files people already have (iCalendar, GPX, CSV) into a HAT, through its API."""

from __future__ import annotations

from hatd.plugs.base import FileRefused, Plug, Summary, import_file
from hatd.plugs.csv_plug import CsvPlug
from hatd.plugs.gpx import GpxPlug
from hatd.plugs.ical import IcalPlug

KINDS = ("ical", "gpx", "csv")
# A file's kind by its extension, for the upload page.
EXTENSIONS = {".ics": "ical", ".ical": "ical", ".ifb": "ical", ".gpx": "gpx", ".csv": "csv", ".tsv": "csv"}


def make_plug(
    kind: str, *, table: str | None = None, key: str | None = None, time: str | None = None, source: str | None = None
) -> Plug:
    """The plug of a kind (ical, gpx, csv); the options are the CSV plug's."""
    if kind in ("ical", "ics"):
        return IcalPlug()
    if kind == "gpx":
        return GpxPlug()
    if kind == "csv":
        return CsvPlug(table or None, key=key or None, time=time or None, source=source or "csv")
    raise ValueError(f"no plug for {kind!r}: one of {', '.join(KINDS)}")


__all__ = [
    "EXTENSIONS",
    "KINDS",
    "CsvPlug",
    "FileRefused",
    "GpxPlug",
    "IcalPlug",
    "Plug",
    "Summary",
    "import_file",
    "make_plug",
]
