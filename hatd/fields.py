"""marshmallow fields every domain uses: database ids, references to a row by id, and times."""

from __future__ import annotations

import datetime as dt
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

# The largest bigint: an id beyond it names no row.
MAX_ID = 2**63 - 1


class Id(fields.Integer):
    """A database id: a positive whole number that fits a bigint."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, validate=validate.Range(min=1, max=MAX_ID), **kwargs)


class Ref(Schema):
    """A reference to a field or record by id; a `name` is accepted and ignored (the id decides)."""

    class Meta:
        unknown = EXCLUDE

    id = Id(required=True)
    name = fields.String()


# Times a HAT keeps: within these, a time converts to UTC and back without overflow, and never
# reaches the year 1 or 9999 boundaries that asyncpg turns into -infinity and infinity.
EARLIEST = dt.datetime(2, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9998, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _parse(value: Any) -> dt.datetime:
    if isinstance(value, bool):
        raise ValueError("not a time")
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    if isinstance(value, str):
        text = value.strip()
        try:
            return dt.datetime.fromtimestamp(float(text), tz=dt.UTC)
        except ValueError:
            parsed = dt.datetime.fromisoformat(text)
            return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise ValueError("not a time")


def parse_time(value: Any) -> dt.datetime:
    """Unix seconds (a number or numeric string) or ISO-8601; a time without a zone is UTC.
    ValueError for anything else, or a time outside the years 2 to 9998."""
    try:
        parsed = _parse(value)
    except (OverflowError, OSError):
        raise ValueError("out of range") from None
    if not EARLIEST <= parsed <= LATEST:
        raise ValueError("out of range")
    return parsed


class HatTime(fields.Field[dt.datetime]):
    """A time as unix seconds or ISO-8601 (`2015-11-22T21:24:44Z`)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        try:
            return parse_time(value)
        except ValueError:
            raise ValidationError("Not a time: give unix seconds or ISO-8601, in the years 2 to 9998.") from None
