"""Request and response shapes of contextless bundles (seed 002, "Contextless Bundling"; the
original server's shape in ../shared/reference/hat-v1-facts.md)."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate, validates_schema

from hatd.fields import Id, Ref
from hatd.raw.schemas import value_text
from hatd.reads import PageQuerySchema


def _not_blank(value: str) -> None:
    if value and not value.strip():
        raise ValidationError("must not be blank")


NAME = validate.And(validate.Length(min=1, max=200), _not_blank)
# Conditions over all of a bundle's slices: each is checked and evaluated per record.
MAX_CONDITIONS = 200
OPERATORS = ("equal", "notEqual", "greaterThan", "lessThan", "like")


class TableRefSchema(Schema):
    """A raw table by id, or by name and source."""

    class Meta:
        unknown = EXCLUDE

    id = Id(load_default=None)
    name = fields.String(load_default=None)
    source = fields.String(load_default=None)

    @validates_schema
    def named(self, data: dict[str, Any], **_: Any) -> None:
        if data["id"] is None and not (data["name"] and data["source"]):
            raise ValidationError("give the table's id, or its name and source")


class ConditionValue(fields.Field[str]):
    """A condition's value: text, or a number or boolean as its JSON text (as values are stored)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        try:
            return value_text(value)
        except ValueError as exc:
            raise ValidationError(str(exc).capitalize() + ".") from None


class ConditionSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    field = fields.Nested(Ref, required=True)
    operator = fields.String(required=True, validate=validate.OneOf(OPERATORS))
    value = ConditionValue(required=True)


class SliceSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    table = fields.Nested(TableRefSchema, required=True)
    conditions = fields.List(fields.Nested(ConditionSchema), required=True, validate=validate.Length(min=1, max=20))


class BundleTableSchema(Schema):
    """One table of a bundle: the reference's {name, table}, with the original's optional slices."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=NAME)
    table = fields.Nested(TableRefSchema, required=True)
    slices = fields.List(fields.Nested(SliceSchema), load_default=list, validate=validate.Length(max=20))


class OriginalTableSchema(Schema):
    """The original server's {name, bundleTable: {name, table, slices}}."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(load_default=None, validate=NAME)
    bundleTable = fields.Nested(BundleTableSchema, required=True)


# How deep a dataset's fields may nest (subtables of subtables...), and how many field entries a
# bundle may hold in all (each is resolved by the database).
MAX_DATASET_DEPTH = 10
MAX_DATASET_FIELDS = 1000


class DatasetFieldSchema(Schema):
    """A field a dataset shares, by name; with `fields`, the subtable of that name and its fields."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=validate.Length(min=1, max=500))
    description = fields.String(load_default="", validate=validate.Length(max=1000))
    fields_ = fields.List(
        fields.Nested(lambda: DatasetFieldSchema()),
        data_key="fields",
        load_default=list,
        validate=validate.Length(max=MAX_DATASET_FIELDS),
    )


class DatasetSchema(Schema):
    """One dataset of a source: the table of that name, and the fields of it to share."""

    class Meta:
        unknown = EXCLUDE

    # A dataset is a bundle table, whose name is at most 200 characters.
    name = fields.String(required=True, validate=NAME)
    description = fields.String(load_default="", validate=validate.Length(max=1000))
    fields_ = fields.List(
        fields.Nested(DatasetFieldSchema),
        data_key="fields",
        required=True,
        validate=validate.Length(min=1, max=MAX_DATASET_FIELDS),
    )


class SourceSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    source = fields.String(required=True, validate=validate.Length(min=1, max=500))
    datasets = fields.List(fields.Nested(DatasetSchema), required=True, validate=validate.Length(min=1, max=100))


def _depth(value: Any) -> int:
    """How deep JSON nests (lists and objects), counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


class NewBundleSchema(Schema):
    """POST /bundles/contextless: {name, bundleTable: [...]} (the reference), {name, tables: [...]}
    (the original server), or {name, sources: [...]} (the original's later dialect: datasets and the
    fields they share). Exactly one of them, not empty: a bundle is never silently empty."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=NAME)
    bundleTable = fields.List(fields.Nested(BundleTableSchema), load_default=None, validate=validate.Length(max=100))
    tables = fields.List(fields.Nested(OriginalTableSchema), load_default=None, validate=validate.Length(max=100))
    sources = fields.List(fields.Nested(SourceSchema), load_default=None, validate=validate.Length(max=100))

    @pre_load
    def shallow_sources(self, data: Any, **_: Any) -> Any:
        # Each level of nesting is a level of recursion in loading: refuse a deep one before it.
        if isinstance(data, dict) and _depth(data.get("sources")) > 4 + 2 * MAX_DATASET_DEPTH:
            raise ValidationError(f"a dataset's fields nest at most {MAX_DATASET_DEPTH} deep", "sources")
        return data

    @validates_schema
    def one_shape(self, data: dict[str, Any], **_: Any) -> None:
        given = [key for key in ("bundleTable", "tables", "sources") if data.get(key) is not None]
        if len(given) != 1:
            raise ValidationError(
                "give the bundle's tables as bundleTable (or tables, or sources with datasets: the original's shapes)",
                "bundleTable",
            )
        if not data[given[0]]:
            raise ValidationError("a bundle needs at least one table", given[0])
        if given[0] == "sources":
            if sum(len(s["datasets"]) for s in data["sources"]) > 100:
                raise ValidationError("a bundle holds at most 100 datasets", "sources")
            entries, stack = 0, [d["fields_"] for s in data["sources"] for d in s["datasets"]]
            while stack:
                level = stack.pop()
                entries += len(level)
                stack.extend(f["fields_"] for f in level if f["fields_"])
            if entries > MAX_DATASET_FIELDS:
                raise ValidationError(f"a bundle's datasets name at most {MAX_DATASET_FIELDS} fields in all", "sources")
            return
        conditions = sum(len(s["conditions"]) for t in bundle_tables(data) for s in t["slices"])
        if conditions > MAX_CONDITIONS:
            raise ValidationError(f"a bundle may hold at most {MAX_CONDITIONS} slice conditions in all", given[0])


def bundle_tables(loaded: dict[str, Any]) -> list[dict[str, Any]]:
    """The bundle tables of either shape, as [{name, table, slices}]."""
    if loaded["bundleTable"] is not None:
        return list(loaded["bundleTable"])
    return [item["bundleTable"] for item in loaded["tables"]]


class BundleValuesQuerySchema(PageQuerySchema):
    """GET /bundles/contextless/{id}/values and /dataDebit/{key}/values: a page size (records over
    all the bundle's tables), a window on their lastUpdated, and the cursor a Link header gave."""


class BundleSchema(Schema):
    id = Id(required=True)
    name = fields.String(required=True)
    dateCreated = fields.String(required=True)
    lastUpdated = fields.String(required=True)
    tables = fields.List(
        fields.Dict(), metadata={"description": "[{id, name, bundleTable: {id, name, table, slices}}]"}
    )
    sources = fields.List(
        fields.Dict(),
        metadata={"description": "A bundle made in the original's later dialect, instead of tables: "
                  "[{source, datasets: [{name, description, fields}]}]"},
    )  # fmt: skip


class BundleValuesSchema(Schema):
    id = Id(required=True)
    name = fields.String(required=True)
    dateCreated = fields.String(required=True)
    lastUpdated = fields.String(required=True)
    dataGroups = fields.Raw(
        required=True,
        metadata={"description": "[{bundle table name: {id, name, table, data: [records]}}]; for a bundle made "
                  "in the original's later dialect, {source: [{name, table, data: [records]}]}. Records as the "
                  "table values give them (pretty=true: flattened)"},
    )  # fmt: skip


# -- contextual bundles -------------------------------------------------------------------------

KINDS = ("person", "thing", "event", "location", "organisation")


class PropertySelectorSchema(Schema):
    """Which properties of a selected entity to share; every given criterion must hold."""

    class Meta:
        unknown = EXCLUDE

    propertyRelationshipKind = fields.String(load_default=None, validate=validate.OneOf(("static", "dynamic")))
    propertyName = fields.String(load_default=None, validate=NAME)
    propertyType = fields.String(load_default=None, validate=NAME)
    propertyUnitofmeasurement = fields.String(load_default=None, validate=NAME)


class EntitySelectorSchema(Schema):
    """Which entities to share: by id, name and/or kind (at least one); with property selectors,
    only the properties one of them admits (none: all properties)."""

    class Meta:
        unknown = EXCLUDE

    entityId = Id(load_default=None)
    entityName = fields.String(load_default=None, validate=validate.Length(min=1, max=100))
    entityKind = fields.String(load_default=None, validate=validate.OneOf(KINDS))
    properties = fields.List(fields.Nested(PropertySelectorSchema), load_default=list, validate=validate.Length(max=20))

    @validates_schema
    def selects(self, data: dict[str, Any], **_: Any) -> None:
        if data["entityId"] is None and data["entityName"] is None and data["entityKind"] is None:
            raise ValidationError("give entityId, entityName or entityKind")


class NewContextualBundleSchema(Schema):
    """POST /bundles/context."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=NAME)
    entities = fields.List(fields.Nested(EntitySelectorSchema), required=True, validate=validate.Length(min=1, max=100))


class PropertySelectionSchema(Schema):
    id = Id(required=True)
    propertyRelationshipKind = fields.String(allow_none=True)
    propertyName = fields.String(allow_none=True)
    propertyType = fields.String(allow_none=True)
    propertyUnitofmeasurement = fields.String(allow_none=True)


class EntitySelectionSchema(Schema):
    id = Id(required=True, metadata={"description": "The SELECTION_ID of .../entitySelection/{id}/propertySelection"})
    entityId = Id(allow_none=True)
    entityName = fields.String(allow_none=True)
    entityKind = fields.String(allow_none=True)
    properties = fields.List(fields.Nested(PropertySelectionSchema), required=True)


class ContextualBundleSchema(Schema):
    id = Id(required=True)
    name = fields.String(required=True)
    dateCreated = fields.String(required=True)
    lastUpdated = fields.String(required=True)
    entities = fields.List(fields.Nested(EntitySelectionSchema))


class ContextualValuesItemSchema(Schema):
    """One entity of a contextual bundle: its kind, and the entity under a key named by that kind."""

    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    person = fields.Dict(metadata={"description": "when kind is person: the person with its properties"})
    thing = fields.Dict(metadata={"description": "when kind is thing"})
    event = fields.Dict(metadata={"description": "when kind is event"})
    location = fields.Dict(metadata={"description": "when kind is location"})
    organisation = fields.Dict(metadata={"description": "when kind is organisation"})
