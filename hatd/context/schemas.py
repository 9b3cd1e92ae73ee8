"""Request and response shapes of the context domain: entities and their links, and the
vocabulary that describes them (types, units, properties, person relationship types). Seed 002,
"Contextualisation" to "System Units of Measurement"."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from hatd.fields import Id, Ref


def _not_blank(value: str) -> None:
    if value and not value.strip():  # an empty one is the Length rule's to refuse
        raise ValidationError("must not be blank")


NAME = validate.And(validate.Length(min=1, max=200), _not_blank)
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


# -- entities ----------------------------------------------------------------------------------


class NewEntitySchema(Schema):
    """POST /person, /thing, /event, /location, /organisation (a person also needs a personId)."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=validate.And(validate.Length(min=1, max=100), _not_blank))
    personId = fields.String(load_default=None, validate=validate.And(validate.Length(min=1, max=200), _not_blank))


class RelationshipSchema(Schema):
    """POST /K/{id}/K2/{id2} and /K/{id}/type/{typeId}: {"relationshipType": "..."}. For person to
    person, the relationship type is an existing person relationship type: {"id", "name"} or its name."""

    class Meta:
        unknown = EXCLUDE

    relationshipType = fields.Raw(required=True)


class PropertyLinkSchema(Schema):
    """POST /K/{id}/property/static/{propertyId} (field and record) and .../dynamic/{propertyId}
    (field). A `property` object sent along is accepted and ignored: the path names the property."""

    class Meta:
        unknown = EXCLUDE

    relationshipType = fields.String(required=True, validate=NAME)
    field = fields.Nested(Ref, required=True)
    record = fields.Nested(Ref, load_default=None)
    property = fields.Nested(Ref, load_default=None)


class PersonRelationshipRefSchema(Schema):
    """The relationship type of a person-to-person link: {"id", "name"}; either one names it."""

    class Meta:
        unknown = EXCLUDE

    id = Id(load_default=None)
    name = fields.String(load_default=None, validate=NAME)


class PersonLinkSchema(Schema):
    """A person-to-person link's relationshipType, when it is an object."""

    relationshipType = fields.Nested(PersonRelationshipRefSchema, required=True)


class EntitySchema(Schema):
    id = Id(required=True)
    name = fields.String(required=True)
    personId = fields.String(metadata={"description": "people only"})


class EntityValuesSchema(EntitySchema):
    people = fields.List(fields.Dict(), metadata={"description": "[{id, relationshipType, person}]"})
    things = fields.List(fields.Dict())
    events = fields.List(fields.Dict())
    locations = fields.List(fields.Dict())
    organisations = fields.List(fields.Dict())
    types = fields.List(fields.Dict(), metadata={"description": "[{id, relationshipType, type}]"})
    staticProperties = fields.List(
        fields.Dict(), metadata={"description": "[{id, relationshipType, property, field: {values}, record}]"}
    )
    dynamicProperties = fields.List(
        fields.Dict(), metadata={"description": "[{id, relationshipType, property, field: {values}}]"}
    )


class PropertyLinkOutSchema(Schema):
    id = Id(required=True)
    relationshipType = fields.String(required=True)
    property = fields.Nested(PropertySchema)
    field = fields.Dict()
    record = fields.Dict(allow_none=True)
