"""Request and response shapes of the raw data routes (seed 002, "Raw Data Input and Output")."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from hatd.fields import MAX_ID, HatTime, Id, parse_time

MAX_TREE_DEPTH = 32
_ABSENT = object()
NAME = validate.Length(min=1, max=500)


class NewTableSchema(Schema):
    """POST /data/table: a table, its fields, and subtables to any depth."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=NAME)
    source = fields.String(required=True, validate=NAME)
    fields_ = fields.List(fields.Nested(lambda: NewFieldInTableSchema()), data_key="fields", load_default=list)
    subTables = fields.List(fields.Nested(lambda: NewTableSchema()), load_default=list)

    @validates_schema(pass_original=True)
    def not_too_deep(self, data: Any, original: Any, **_: Any) -> None:
        depth, level = 0, [original]
        while level:
            depth += 1
            if depth > MAX_TREE_DEPTH:
                raise ValidationError(f"subTables may nest at most {MAX_TREE_DEPTH} deep", "subTables")
            level = [sub for item in level if isinstance(item, dict) for sub in item.get("subTables") or []]


class NewFieldInTableSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=NAME)


class NewFieldSchema(Schema):
    """POST /data/field."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=NAME)
    tableId = Id(required=True)


class TableQuerySchema(Schema):
    """GET /data/table?name=&source=."""

    class Meta:
        unknown = EXCLUDE  # the token may travel in the query too

    name = fields.String(required=True, validate=NAME)
    source = fields.String(required=True, validate=NAME)


class LinkSchema(Schema):
    """POST /data/table/{id}/table/{subId}: the body is optional."""

    class Meta:
        unknown = EXCLUDE

    relationshipType = fields.String(load_default="parent_child", validate=NAME)


class NewRecordSchema(Schema):
    """POST /data/record, and the `record` of POST /data/record/values."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=validate.Length(max=500))
    lastUpdated = HatTime(load_default=None, metadata={"description": "The source's own time; default now"})


def value_text(value: Any) -> str:
    """A value as stored: strings as they are; numbers and booleans as their JSON text."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):  # 1e400 parses as infinity
        raise ValueError("must be a finite number")
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise ValueError("must be a string, number or boolean")


def _json_type(value: Any) -> str:
    """What a parsed JSON value was, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "a number" if isinstance(value, float) else type(value).__name__


def _ref_id(item: dict[str, Any], key: str, errors: dict[str, list[str]]) -> int | None:
    ref = item.get(key)
    if not isinstance(ref, dict):
        errors[key] = ["Missing data for required field." if ref is None else "Must be an object with an id."]
        return None
    ref_id = ref.get("id")
    if isinstance(ref_id, bool) or not isinstance(ref_id, int) or not 1 <= ref_id <= MAX_ID:
        errors[f"{key}.id"] = ["Missing data for required field." if ref_id is None else "Not a valid id."]
        return None
    return ref_id


@dataclass
class ValueBatch:
    """Values ready for one insert: parallel lists, in the order given."""

    texts: list[str] = field(default_factory=list)
    field_ids: list[int] = field(default_factory=list)
    record_ids: list[int | None] = field(default_factory=list)
    times: list[dt.datetime | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)


def plain_value_batch(items: list[Any], *, with_record: bool = False) -> ValueBatch | None:
    """The batch of a list of values that are all plainly well-formed (a string value, ids that
    are ints in range, no lastUpdated or a valid one), or None: then ValueItems's item-by-item
    loop decides, and names what is wrong. The common case costs a third of that loop."""
    texts: list[str] = []
    field_ids: list[int] = []
    record_ids: list[int | None] = []
    times: list[dt.datetime | None] = []
    record_id: int | None = None
    for item in items:
        if type(item) is not dict:
            return None
        text = item.get("value")
        ref = item.get("field")
        if type(text) is not str or type(ref) is not dict:
            return None
        field_id = ref.get("id")
        if type(field_id) is not int or not 1 <= field_id <= MAX_ID:
            return None
        if with_record:
            ref = item.get("record")
            if type(ref) is not dict:
                return None
            record_id = ref.get("id")
            if type(record_id) is not int or not 1 <= record_id <= MAX_ID:
                return None
        when = item.get("lastUpdated")
        if when is not None:
            try:
                when = parse_time(when)
            except ValueError:
                return None
        texts.append(text)
        field_ids.append(field_id)
        record_ids.append(record_id)
        times.append(when)
    return ValueBatch(texts, field_ids, record_ids, times)


class ValueItems(fields.Field[ValueBatch]):
    """A list of values `{value, field: {id}, record: {id}?, lastUpdated?}`, checked item by item.

    A plain loop rather than a nested Schema per value: data plugs send thousands of values per
    request, and a nested schema costs ~18 us a value where this costs ~1 us. The rules are the
    same ones a schema would state, and a bad item is named by its index."""

    def __init__(self, *, with_record: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.with_record = with_record

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> ValueBatch:
        if not isinstance(value, list):
            raise ValidationError("Must be a list of values.")
        fast = plain_value_batch(value, with_record=self.with_record)
        if fast is not None:
            return fast
        batch = ValueBatch()
        problems: dict[int, dict[str, list[str]]] = {}
        for index, item in enumerate(value):
            errors: dict[str, list[str]] = {}
            if not isinstance(item, dict):
                problems[index] = {"_schema": ["Must be an object."]}
                continue
            if "value" not in item:
                errors["value"] = ["Missing data for required field."]
                text = ""
            else:
                try:
                    text = value_text(item["value"])
                except ValueError as exc:
                    errors["value"] = [f"{str(exc).capitalize()}, not {_json_type(item['value'])}."]
                    text = ""
            field_id = _ref_id(item, "field", errors)
            record_id = _ref_id(item, "record", errors) if self.with_record else None
            when = item.get("lastUpdated")
            time: dt.datetime | None = None
            if when is not None:
                try:
                    time = parse_time(when)
                except ValueError:
                    errors["lastUpdated"] = ["Not a time: give unix seconds or ISO-8601, in the years 2 to 9998."]
            if errors:
                problems[index] = errors
                continue
            assert field_id is not None
            batch.texts.append(text)
            batch.field_ids.append(field_id)
            batch.record_ids.append(record_id)
            batch.times.append(time)
        if problems:
            raise ValidationError(problems)  # type: ignore[arg-type]
        return batch


class RecordValuesSchema(Schema):
    """POST /data/record/{id}/values: {"values": [...]} (the body is the list itself)."""

    values = ValueItems(required=True)


class NewRecordValuesSchema(Schema):
    """One item of POST /data/record/values."""

    class Meta:
        unknown = EXCLUDE

    record = fields.Nested(NewRecordSchema, required=True)
    values = ValueItems(load_default=ValueBatch)


def plain_records_with_values(items: list[Any]) -> list[dict[str, Any]] | None:
    """What NewRecordValuesSchema(many=True) loads from `items`, when every item is plainly
    well-formed; otherwise None, and the schema decides and names what is wrong (so bad input gets
    exactly the schema's messages). Marshmallow costs ~25 us per item; this a few."""
    loaded = []
    for item in items:
        if type(item) is not dict:
            return None
        record = item.get("record")
        if type(record) is not dict:
            return None
        name = record.get("name")
        if type(name) is not str or len(name) > 500:
            return None
        when = record.get("lastUpdated")
        if when is not None:
            try:
                when = parse_time(when)
            except ValueError:
                return None
        values = item.get("values", _ABSENT)
        if values is _ABSENT:
            batch: ValueBatch | None = ValueBatch()
        elif type(values) is not list:
            return None
        else:
            batch = plain_value_batch(values)
        if batch is None:
            return None
        loaded.append({"record": {"name": name, "lastUpdated": when}, "values": batch})
    return loaded


class NewValuesSchema(Schema):
    """POST /value: {"values": [...]}, each naming its field and record (the body is one value or a list)."""

    values = ValueItems(required=True, with_record=True)


# Response shapes, for the docs.


class FieldSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    tableId = fields.Integer(required=True)
    dateCreated = fields.String(required=True)
    lastUpdated = fields.String(required=True)


class TableSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    source = fields.String(required=True)
    dateCreated = fields.String(required=True)
    lastUpdated = fields.String(required=True)
    fields_ = fields.List(fields.Nested(FieldSchema), data_key="fields")
    subTables = fields.List(fields.Nested(lambda: TableSchema()))


class RecordSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    dateCreated = fields.String(required=True)
    lastUpdated = fields.String(required=True)


class ValueSchema(Schema):
    id = fields.Integer(required=True)
    value = fields.String(required=True)
    dateCreated = fields.String(required=True)
    lastUpdated = fields.String(required=True)
    field = fields.Dict(metadata={"description": "{id, tableId, name}"})
    record = fields.Dict(metadata={"description": "{id, name}"})


class RecordWithValuesSchema(Schema):
    record = fields.Nested(RecordSchema)
    values = fields.List(fields.Nested(ValueSchema))


class FieldValuesSchema(FieldSchema):
    values = fields.List(fields.Nested(ValueSchema))


class TableValuesItemSchema(RecordSchema):
    tables = fields.List(fields.Dict(), metadata={"description": "The table tree with this record's values"})


class PrettyRecordSchema(Schema):
    """A record as pretty=true gives it (the original's flattenRecordValues)."""

    id = fields.Integer(required=True)
    name = fields.String(required=True)
    lastUpdated = fields.String(required=True)
    data = fields.Dict(
        required=True,
        metadata={"description": "{<table>: {<field>: value (several: a list of them), <subtable>: {...}}}"},
    )


class DeletedSchema(Schema):
    """DELETE /data/{value,record,field,table}/{id}: the message and the id of what was deleted."""

    message = fields.String(required=True)
    valueId = fields.Integer()
    recordId = fields.Integer()
    fieldId = fields.Integer()
    tableId = fields.Integer()
