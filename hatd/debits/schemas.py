"""Request and response shapes of data debits (seed 002, "Sharing and Direct Data Debits")."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from hatd.bundles.schemas import BundleTableSchema, NewBundleSchema, NewContextualBundleSchema
from hatd.fields import HatTime, Id


class DebitBundleField(fields.Field[dict[str, Any]]):
    """bundleContextless: an existing bundle {"id"}, a whole bundle in any of its shapes (the
    original's later {name, sources} among them), or, as the reference's example has it, one bundle
    table {name, table} (the bundle takes its name)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValidationError("Must be a bundle: {id}, {name, bundleTable}, or {name, table}.")
        if "bundleTable" in value or "tables" in value or "sources" in value:
            return {"new": NewBundleSchema().load(value)}
        if "table" in value:
            table = BundleTableSchema().load(value)
            return {"new": {"name": table["name"], "bundleTable": [table], "tables": None}}
        if "id" in value:
            return {"id": Id().deserialize(value["id"])}
        raise ValidationError("Must be a bundle: {id}, {name, bundleTable}, or {name, table}.")


class ContextualBundleField(fields.Field[dict[str, Any]]):
    """bundleContextual: an existing bundle {"id"}, or a whole one {name, entities}."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        if isinstance(value, dict) and "entities" in value:
            return {"new": NewContextualBundleSchema().load(value)}
        if isinstance(value, dict) and "id" in value:
            return {"id": Id().deserialize(value["id"])}
        raise ValidationError("Must be a contextual bundle: {id} or {name, entities}.")


class StrictBoolean(fields.Field[bool]):
    """true or false, and nothing that merely resembles them (1, "yes")."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if type(value) is not bool:
            raise ValidationError("Not a valid boolean.")
        return value


class ProposeSchema(Schema):
    """POST /dataDebit/propose. A `key` sent along is ignored: the HAT makes it."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    startDate = HatTime(required=True)
    endDate = HatTime(required=True)
    rolling = StrictBoolean(required=True)
    sell = StrictBoolean(required=True)
    price = fields.Float(required=True, allow_nan=False, validate=validate.Range(min=0, max=1e15))

    @validates_schema(pass_original=True)
    def price_is_a_number(self, data: dict[str, Any], original: Any, **_: Any) -> None:
        if isinstance(original, dict) and not isinstance(original.get("price"), int | float):
            raise ValidationError("Not a valid number.", "price")

    kind = fields.String(required=True, validate=validate.OneOf(("contextless", "contextual")))
    bundleContextless = DebitBundleField(load_default=None)
    bundleContextual = ContextualBundleField(load_default=None)

    @validates_schema
    def consistent(self, data: dict[str, Any], **_: Any) -> None:
        if data["endDate"] <= data["startDate"]:
            raise ValidationError("must be after startDate", "endDate")
        if data["kind"] == "contextless" and data["bundleContextless"] is None:
            raise ValidationError("a contextless debit needs a contextless bundle", "bundleContextless")
        if data["kind"] == "contextless" and data["bundleContextual"] is not None:
            raise ValidationError("a contextless debit shares a contextless bundle", "bundleContextual")
        if data["kind"] == "contextual" and data["bundleContextual"] is None:
            raise ValidationError("a contextual debit needs a contextual bundle", "bundleContextual")
        if data["kind"] == "contextual" and data["bundleContextless"] is not None:
            raise ValidationError("a contextual debit shares a contextual bundle", "bundleContextless")


class DebitSchema(Schema):
    key = fields.UUID(required=True)
    name = fields.String(required=True)
    startDate = fields.String(required=True)
    endDate = fields.String(required=True)
    rolling = fields.Boolean(required=True)
    sell = fields.Boolean(required=True)
    price = fields.Float(required=True)
    kind = fields.String(required=True)
    enabled = fields.Boolean(required=True)
    proposer = fields.UUID(metadata={"description": "The account that proposed it (in the owner's list)"})
    dateCreated = fields.String(required=True)
    lastUpdated = fields.String(required=True)
    bundleContextless = fields.Dict()
    bundleContextual = fields.Raw(metadata={"description": "contextual debits: the bundle, or for values the entities"})


class DebitStateSchema(Schema):
    message = fields.String(required=True)
    key = fields.UUID(required=True)
    enabled = fields.Boolean(required=True)


class LogEntrySchema(Schema):
    id = Id(required=True)
    action = fields.String(required=True)
    account = fields.UUID(required=True)
    records = fields.Integer(allow_none=True)
    at = fields.String(required=True)
