"""A Python client for the HAT API, async (AsyncHat) and not (Hat). docs/client.md shows it at work."""

from hatd.client.aio import AsyncHat
from hatd.client.models import Entity, Field, HatError, JsonObject, NewRecord, Record, Table, TableSpec
from hatd.client.sync import Hat

__all__ = ["AsyncHat", "Entity", "Field", "Hat", "HatError", "JsonObject", "NewRecord", "Record", "Table", "TableSpec"]
