-- Entities, their links, types and properties (hatd/context/repository.py).

-- name: insert_entity
-- Creates an entity of kind $1; returns it as JSON text.
INSERT INTO entities (kind, name, person_id) VALUES ($1, $2, $3) RETURNING entity_json(entities)::text;

-- name: entities_json
-- Returns every entity of kind $1 as a JSON array (text), by id.
SELECT coalesce(json_agg(entity_json(e) ORDER BY e.id), '[]')::text FROM entities e WHERE e.kind = $1;

-- name: entity_json
-- Returns entity $2 if it is of kind $1, as JSON text.
SELECT entity_json(e)::text FROM entities e WHERE e.id = $2 AND e.kind = $1;

-- name: entity_kind
-- Returns the kind of entity $1, locking it against deletion until the transaction ends.
SELECT kind FROM entities WHERE id = $1 FOR KEY SHARE;

-- name: person_relationship_type
-- Returns the id and name of the person relationship type with id $1 (if given) and name $2 (if given).
SELECT id, name FROM person_relationship_types
WHERE ($1::bigint IS NULL OR id = $1) AND ($2::text IS NULL OR name = $2);

-- name: link_entities
-- Links entity $1 to entity $2; returns the link's id.
INSERT INTO entity_links (entity_id, linked_id, relationship_type, person_relationship_type_id)
VALUES ($1, $2, $3, $4) RETURNING id;

-- name: add_type
-- Gives entity $1 type $2; returns the link's id.
INSERT INTO entity_types (entity_id, type_id, relationship_type) VALUES ($1, $2, $3) RETURNING id;

-- name: property_exists
-- Returns true if the property exists.
SELECT exists(SELECT 1 FROM system_properties WHERE id = $1);

-- name: field_exists
-- Returns true if the field exists.
SELECT exists(SELECT 1 FROM data_fields WHERE id = $1);

-- name: record_exists
-- Returns true if the record exists.
SELECT exists(SELECT 1 FROM data_records WHERE id = $1);

-- name: field_has_value_in_record
-- Returns true if field $1 holds a value in record $2 (what a static property link points at).
SELECT exists(SELECT 1 FROM data_values WHERE field_id = $1 AND record_id = $2);

-- name: add_property
-- Links entity $1 to property $2 over field $4 (and record $5 when static); returns the link's id.
INSERT INTO entity_properties (entity_id, property_id, relationship_type, field_id, record_id)
VALUES ($1, $2, $3, $4, $5) RETURNING id;

-- name: property_links_json
-- Returns the static ($3 true) or dynamic property links of entity $2 of kind $1 as a JSON array
-- (text), by id; null if there is no such entity.
SELECT (SELECT coalesce(json_agg(CASE WHEN r.id IS NULL
               THEN json_build_object(
                   'id', ep.id, 'relationshipType', ep.relationship_type, 'property', system_property_json(p),
                   'field', json_build_object('id', f.id, 'name', f.name, 'tableId', f.table_id))
               ELSE json_build_object(
                   'id', ep.id, 'relationshipType', ep.relationship_type, 'property', system_property_json(p),
                   'field', json_build_object('id', f.id, 'name', f.name, 'tableId', f.table_id),
                   'record', json_build_object('id', r.id, 'name', r.name))
               END
           ORDER BY ep.id), '[]')::text
        FROM entity_properties ep
        JOIN system_properties p ON p.id = ep.property_id
        JOIN data_fields f ON f.id = ep.field_id
        LEFT JOIN data_records r ON r.id = ep.record_id
        WHERE ep.entity_id = e.id AND (ep.record_id IS NOT NULL) = $3)
FROM entities e
WHERE e.id = $2 AND e.kind = $1;

-- name: entity_values_json
-- Returns entity $2 of kind $1 with everything linked to it, as a one-item JSON array (text):
-- linked entities grouped by kind, types, and static and dynamic properties with their values.
-- Groups with nothing in them, and a personId for other kinds, are left out.
WITH e AS (
    SELECT * FROM entities WHERE id = $2 AND kind = $1
),
linked AS (
    SELECT le.kind, json_agg(json_build_object(
               'id', l.id, 'relationshipType', l.relationship_type, le.kind, entity_json(le))
           ORDER BY l.id) AS items
    FROM entity_links l JOIN entities le ON le.id = l.linked_id
    WHERE l.entity_id = $2
    GROUP BY le.kind
),
types AS (
    SELECT json_agg(json_build_object('id', et.id, 'relationshipType', et.relationship_type, 'type', system_type_json(t))
           ORDER BY et.id) AS items
    FROM entity_types et JOIN system_types t ON t.id = et.type_id
    WHERE et.entity_id = $2
),
property_values AS (
    -- Static: the values of the field in the linked record; dynamic: every value of the field, newest first.
    SELECT ep.id AS link_id,
           json_agg(data_value_json(v) ORDER BY v.last_updated DESC, v.id DESC) AS vals
    FROM entity_properties ep
    JOIN data_values v ON v.field_id = ep.field_id AND (ep.record_id IS NULL OR v.record_id = ep.record_id)
    WHERE ep.entity_id = $2
    GROUP BY ep.id
),
properties AS (
    SELECT ep.record_id IS NOT NULL AS static,
           json_agg(CASE WHEN r.id IS NULL
               THEN json_build_object(
                   'id', ep.id, 'relationshipType', ep.relationship_type, 'property', system_property_json(p),
                   'field', json_build_object('id', f.id, 'name', f.name, 'tableId', f.table_id,
                                              'values', coalesce(pv.vals, '[]'::json)))
               ELSE json_build_object(
                   'id', ep.id, 'relationshipType', ep.relationship_type, 'property', system_property_json(p),
                   'field', json_build_object('id', f.id, 'name', f.name, 'tableId', f.table_id,
                                              'values', coalesce(pv.vals, '[]'::json)),
                   'record', json_build_object('id', r.id, 'name', r.name))
               END
           ORDER BY ep.id) AS items
    FROM entity_properties ep
    JOIN system_properties p ON p.id = ep.property_id
    JOIN data_fields f ON f.id = ep.field_id
    LEFT JOIN data_records r ON r.id = ep.record_id
    LEFT JOIN property_values pv ON pv.link_id = ep.id
    WHERE ep.entity_id = $2
    GROUP BY ep.record_id IS NOT NULL
)
SELECT json_build_array(
           (SELECT json_object_agg(key, value ORDER BY position)
            FROM (VALUES
                (1, 'id', to_json(e.id)),
                (2, 'name', to_json(e.name)),
                (3, 'personId', to_json(e.person_id)),
                (4, 'people', (SELECT items FROM linked WHERE kind = 'person')),
                (5, 'things', (SELECT items FROM linked WHERE kind = 'thing')),
                (6, 'events', (SELECT items FROM linked WHERE kind = 'event')),
                (7, 'locations', (SELECT items FROM linked WHERE kind = 'location')),
                (8, 'organisations', (SELECT items FROM linked WHERE kind = 'organisation')),
                (9, 'types', (SELECT items FROM types)),
                (10, 'staticProperties', (SELECT items FROM properties WHERE static)),
                (11, 'dynamicProperties', (SELECT items FROM properties WHERE NOT static))
            ) AS parts(position, key, value)
            WHERE value IS NOT NULL))::text
FROM e;
