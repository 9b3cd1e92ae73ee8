-- Context: the shapes of the vocabulary (types, units, properties) and of entities.
--
-- Database functions are code, not history: this file holds their live definitions, applied by
-- `hatd migrate` (and at every start) after the migrations, whenever its checksum changes
-- (hatd/db.py). Edit a function here, in place; CREATE OR REPLACE cannot change a function's
-- arguments or result type: for that, DROP FUNCTION IF EXISTS the old one first, here.
-- Function bodies are checked when called, not when made, so the order of the files does not matter.

CREATE OR REPLACE FUNCTION system_type_json(t system_types) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT json_build_object(
        'id', t.id, 'name', t.name, 'description', t.description,
        'dateCreated', hat_time(t.date_created), 'lastUpdated', hat_time(t.last_updated))
$$;

CREATE OR REPLACE FUNCTION system_unit_json(u system_units) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT json_build_object(
        'id', u.id, 'name', u.name, 'description', u.description, 'symbol', u.symbol,
        'dateCreated', hat_time(u.date_created), 'lastUpdated', hat_time(u.last_updated))
$$;

CREATE OR REPLACE FUNCTION system_property_json(p system_properties) RETURNS json
LANGUAGE sql STABLE
AS $$
    SELECT json_build_object(
        'id', p.id, 'name', p.name, 'description', p.description,
        'propertyType', (SELECT system_type_json(t) FROM system_types t WHERE t.id = p.type_id),
        'unitOfMeasurement', (SELECT system_unit_json(u) FROM system_units u WHERE u.id = p.unit_id),
        'dateCreated', hat_time(p.date_created), 'lastUpdated', hat_time(p.last_updated))
$$;

-- An entity as the lists show it: id, name, and a person's personId.
CREATE OR REPLACE FUNCTION entity_json(e entities) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN e.kind = 'person'
                THEN json_build_object('id', e.id, 'name', e.name, 'personId', e.person_id)
                ELSE json_build_object('id', e.id, 'name', e.name) END
$$;

-- A property link of an entity, with the raw values it points at (static: the field's values in
-- the record; dynamic: every value of the field, newest first).
CREATE OR REPLACE FUNCTION entity_property_json(p_link bigint) RETURNS json
LANGUAGE sql STABLE
AS $$
    SELECT CASE WHEN ep.record_id IS NULL
        THEN json_build_object(
            'id', ep.id, 'relationshipType', ep.relationship_type, 'property', system_property_json(p),
            'field', json_build_object('id', f.id, 'name', f.name, 'tableId', f.table_id, 'values', vals.v))
        ELSE json_build_object(
            'id', ep.id, 'relationshipType', ep.relationship_type, 'property', system_property_json(p),
            'field', json_build_object('id', f.id, 'name', f.name, 'tableId', f.table_id, 'values', vals.v),
            'record', json_build_object('id', r.id, 'name', r.name))
        END
    FROM entity_properties ep
    JOIN system_properties p ON p.id = ep.property_id
    JOIN data_fields f ON f.id = ep.field_id
    LEFT JOIN data_records r ON r.id = ep.record_id
    CROSS JOIN LATERAL (
        SELECT coalesce(json_agg(data_value_json(v) ORDER BY v.last_updated DESC, v.id DESC), '[]'::json) AS v
        FROM data_values v
        WHERE v.field_id = ep.field_id AND (ep.record_id IS NULL OR v.record_id = ep.record_id)
    ) AS vals
    WHERE ep.id = p_link
$$;
