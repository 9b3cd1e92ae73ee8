-- The context vocabulary: types, units, properties, person relationship types (hatd/context/repository.py).
-- Entities and their links: entities.sql.

-- name: insert_type
-- Creates a type; returns it as JSON text.
INSERT INTO system_types (name, description) VALUES ($1, $2) RETURNING system_type_json(system_types)::text;

-- name: types_json
-- Returns every type as a JSON array (text), by id.
SELECT coalesce(json_agg(system_type_json(t) ORDER BY t.id), '[]')::text FROM system_types t;

-- name: type_by_name_json
-- Returns the type of that name as JSON text.
SELECT system_type_json(t)::text FROM system_types t WHERE t.name = $1;

-- name: missing_types
-- Returns those of the type ids $1 that do not exist.
SELECT coalesce(array_agg(x ORDER BY x), '{}') FROM unnest($1::bigint[]) AS x
WHERE NOT EXISTS (SELECT 1 FROM system_types t WHERE t.id = x);

-- name: lock_type_links
-- Waits until no other transaction is linking types (held to the end of the transaction), so two
-- links made at once cannot together close a cycle.
SELECT pg_advisory_xact_lock($1);

-- name: type_reaches
-- Returns true if type $2 can be reached from type $1 by following type links (or is $1).
WITH RECURSIVE reach (id) AS (
    SELECT $1::bigint
    UNION
    SELECT l.linked_type_id FROM system_type_links l JOIN reach r ON l.type_id = r.id
)
SELECT exists(SELECT 1 FROM reach WHERE id = $2);

-- name: link_types
-- Links type $1 to type $2 with relationship $3; returns the link's id.
INSERT INTO system_type_links (type_id, linked_type_id, relationship_type) VALUES ($1, $2, $3) RETURNING id;

-- name: insert_unit
-- Creates a unit of measurement; returns it as JSON text.
INSERT INTO system_units (name, description, symbol) VALUES ($1, $2, $3) RETURNING system_unit_json(system_units)::text;

-- name: units_json
-- Returns every unit of measurement as a JSON array (text), by id.
SELECT coalesce(json_agg(system_unit_json(u) ORDER BY u.id), '[]')::text FROM system_units u;

-- name: unit_by_name_json
-- Returns the unit of measurement of that name as JSON text.
SELECT system_unit_json(u)::text FROM system_units u WHERE u.name = $1;

-- name: unit_exists
-- Returns true if the unit of measurement exists.
SELECT exists(SELECT 1 FROM system_units WHERE id = $1);

-- name: insert_property
-- Creates a property of type $3 and unit $4; returns it, with its type and unit, as JSON text.
INSERT INTO system_properties (name, description, type_id, unit_id) VALUES ($1, $2, $3, $4)
RETURNING system_property_json(system_properties)::text;

-- name: properties_json
-- Returns every property, with its type and unit, as a JSON array (text), by id.
SELECT coalesce(json_agg(system_property_json(p) ORDER BY p.id), '[]')::text FROM system_properties p;

-- name: property_by_name_json
-- Returns the property of that name, with its type and unit, as JSON text.
SELECT system_property_json(p)::text FROM system_properties p WHERE p.name = $1;

-- name: insert_relationship_type
-- Creates a person relationship type; returns it as JSON text.
INSERT INTO person_relationship_types (name, description) VALUES ($1, $2)
RETURNING json_build_object('id', id, 'name', name, 'description', description)::text;

-- name: relationship_types_json
-- Returns every person relationship type as a JSON array (text), by id.
SELECT coalesce(json_agg(json_build_object('id', id, 'name', name, 'description', description) ORDER BY id), '[]')::text
FROM person_relationship_types;
