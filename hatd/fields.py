"""marshmallow fields every domain uses: database ids, and references to a row by id."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate

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
