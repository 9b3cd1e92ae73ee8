"""What every paged values read takes (raw tables and fields, bundles, data debits): its query
(`limit`, a `starttime`/`endtime` window, `cursor`, `pretty`), the opaque cursor of a `Link:
rel="next"` header, and the window and position types the repositories page with."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate, validates_schema

from hatd.fields import EPOCH, MAX_ID, HatTime

# (starttime, endtime) on a record's lastUpdated; either may be None.
Window = tuple[Any, Any]
# Where a page ended: the last row's time and id.
Position = tuple[dt.datetime, int]


class PrettyQuerySchema(Schema):
    """`pretty=true`: the values reads' records flattened, as the original's clients read them."""

    class Meta:
        unknown = EXCLUDE  # the token may travel in the query too

    pretty = fields.Boolean(
        load_default=False,
        metadata={"description": "Each record as {id, name, lastUpdated, data: {table: {field: value}}}"},
    )


class PageQuerySchema(PrettyQuerySchema):
    """The query of the values reads: a page size, a time window on the record's lastUpdated, and
    the cursor a `Link: rel="next"` header gave."""

    class Meta:
        unknown = EXCLUDE  # the token may travel in the query too

    @validates_schema
    def window_in_order(self, data: Any, **_: Any) -> None:
        if data.get("starttime") and data.get("endtime") and data["starttime"] > data["endtime"]:
            raise ValidationError("starttime is after endtime", "starttime")

    limit = fields.Integer(
        validate=validate.Range(min=0),
        load_default=None,
        metadata={"description": "Records per page; 0: the largest page the HAT gives (HATD_VALUES_MAX_LIMIT)"},
    )
    starttime = HatTime(load_default=None)
    endtime = HatTime(load_default=None)
    cursor = fields.String(load_default=None)

    @pre_load
    def strip_empty(self, data: Any, **_: Any) -> Any:
        return {k: v for k, v in data.items() if v != ""} if isinstance(data, dict) else data


def encode_cursor(scope: str, time: dt.datetime, row_id: int) -> str:
    """An opaque position: the scope it belongs to (say "table:4"), and the time and id of the
    last row given, the time in whole microseconds (a float would round some of them away)."""
    stamp = (time - EPOCH) // dt.timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"{scope}:{stamp}:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(scope: str, cursor: str) -> tuple[dt.datetime, int]:
    """The position in a cursor made for this scope, or ValidationError."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        made_for, stamp, row_id = text.rsplit(":", 2)
        if made_for != scope:
            raise ValueError("another scope")
        position = int(row_id)
        if not 0 <= position <= MAX_ID:
            raise ValueError("out of range")
        return EPOCH + dt.timedelta(microseconds=int(stamp)), position
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise ValidationError({"cursor": ["Not a cursor this HAT made for this read."]}) from None
