"""Request and response shapes of the context vocabulary: types, units, properties, person
relationship types (seed 002, "Data Type Annotations" to "System Units of Measurement")."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

from hatd.fields import Id, Ref

NAME = validate.Length(min=1, max=200)
DESCRIPTION = validate.Length(max=2000)


class _Named(Schema):
    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=NAME)
    description = fields.String(load_default=None, allow_none=True, validate=DESCRIPTION)


class NewTypeSchema(_Named):
    """POST /type/type."""


class NewUnitSchema(_Named):
    """POST /type/unitofmeasurement."""

    symbol = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=50))


class NewPropertySchema(_Named):
    """POST /property: the type and unit by id (a name sent beside the id is ignored)."""

    propertyType = fields.Nested(Ref, required=True)
    unitOfMeasurement = fields.Nested(Ref, required=True)


class NewRelationshipTypeSchema(_Named):
    """POST /person/relationshipType."""


class TypeLinkSchema(Schema):
    """POST /type/{id}/type/{id2}."""

    class Meta:
        unknown = EXCLUDE

    relationshipType = fields.String(required=True, validate=NAME)


class NameQuerySchema(Schema):
    """?name=X: one object (404 if none) instead of the list."""

    class Meta:
        unknown = EXCLUDE  # the token may travel in the query too

    name = fields.String(load_default=None, validate=NAME)


class TypeSchema(Schema):
    id = Id(required=True)
    name = fields.String(required=True)
    description = fields.String(allow_none=True)
    dateCreated = fields.String(required=True)
    lastUpdated = fields.String(required=True)


class UnitSchema(TypeSchema):
    symbol = fields.String(allow_none=True)


class PropertySchema(TypeSchema):
    propertyType = fields.Nested(TypeSchema)
    unitOfMeasurement = fields.Nested(UnitSchema)


class RelationshipTypeSchema(Schema):
    id = Id(required=True)
    name = fields.String(required=True)
    description = fields.String(allow_none=True)


class CreatedIdSchema(Schema):
    id = Id(required=True)
