-- Bundles: slice conditions and the shapes of contextless and contextual bundles.
--
-- Database functions are code, not history: this file holds their live definitions, applied by
-- `hatd migrate` (and at every start) after the migrations, whenever its checksum changes
-- (hatd/db.py). Edit a function here, in place; CREATE OR REPLACE cannot change a function's
-- arguments or result type: for that, DROP FUNCTION IF EXISTS the old one first, here.
-- Function bodies are checked when called, not when made, so the order of the files does not matter.

-- Whether a value meets a condition. Values are text and compared as text, as the original did.
CREATE OR REPLACE FUNCTION bundle_condition_holds(p_value text, p_operator text, p_wanted text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE p_operator
        WHEN 'equal' THEN p_value = p_wanted
        WHEN 'notEqual' THEN p_value <> p_wanted
        WHEN 'greaterThan' THEN p_value > p_wanted
        WHEN 'lessThan' THEN p_value < p_wanted
        -- No escape character: a backslash is just a backslash (and cannot end a pattern badly).
        WHEN 'like' THEN p_value LIKE p_wanted ESCAPE ''
    END
$$;

-- A bundle's structure: the reference's dialect ({tables: [{bundleTable: ...}]}), or, for a bundle
-- made of datasets, the original's later one ({sources: [{source, datasets: [{name, description,
-- fields}]}]}, sources in the order they were given).
CREATE OR REPLACE FUNCTION bundle_contextless_json(p_bundle bigint) RETURNS json
LANGUAGE sql STABLE
AS $$
    SELECT CASE WHEN NOT EXISTS (
               SELECT 1 FROM bundle_tables bt JOIN bundle_datasets d ON d.bundle_table_id = bt.id
               WHERE bt.bundle_id = b.id)
    THEN json_build_object(
        'id', b.id, 'name', b.name,
        'dateCreated', hat_time(b.date_created), 'lastUpdated', hat_time(b.last_updated),
        'tables', coalesce((
            SELECT json_agg(json_build_object(
                'id', bt.id, 'name', bt.name,
                'bundleTable', json_build_object(
                    'id', bt.id, 'name', bt.name,
                    'table', json_build_object('id', t.id, 'name', t.name, 'source', t.source),
                    'slices', coalesce((
                        SELECT json_agg(json_build_object(
                            'id', s.id,
                            'table', json_build_object('id', st.id, 'name', st.name, 'source', st.source),
                            'conditions', coalesce((
                                SELECT json_agg(json_build_object(
                                    'id', c.id, 'operator', c.operator, 'value', c.value,
                                    'field', json_build_object('id', f.id, 'name', f.name, 'tableId', f.table_id))
                                    ORDER BY c.position)
                                FROM bundle_slice_conditions c JOIN data_fields f ON f.id = c.field_id
                                WHERE c.slice_id = s.id), '[]'::json))
                            ORDER BY s.position)
                        FROM bundle_slices s JOIN data_tables st ON st.id = s.table_id
                        WHERE s.bundle_table_id = bt.id), '[]'::json)))
                ORDER BY bt.position)
            FROM bundle_tables bt JOIN data_tables t ON t.id = bt.table_id
            WHERE bt.bundle_id = b.id), '[]'::json))
    ELSE json_build_object(
        'id', b.id, 'name', b.name,
        'dateCreated', hat_time(b.date_created), 'lastUpdated', hat_time(b.last_updated),
        'sources', (
            SELECT json_agg(json_build_object('source', g.source, 'datasets', g.datasets) ORDER BY g.first)
            FROM (SELECT d.source, min(bt.position) AS first,
                         json_agg(json_build_object('name', bt.name, 'description', d.description,
                                                    'fields', d.fields) ORDER BY bt.position) AS datasets
                  FROM bundle_tables bt JOIN bundle_datasets d ON d.bundle_table_id = bt.id
                  WHERE bt.bundle_id = b.id
                  GROUP BY d.source) AS g))
    END
    FROM bundles_contextless b
    WHERE b.id = p_bundle
$$;

-- A contextual bundle's structure, built from the two above (the same shape as before).
CREATE OR REPLACE FUNCTION bundle_contextual_json(p_bundle bigint) RETURNS json
LANGUAGE sql STABLE
AS $$
    SELECT json_build_object(
        'id', b.id, 'name', b.name,
        'dateCreated', hat_time(b.date_created), 'lastUpdated', hat_time(b.last_updated),
        'entities', coalesce((
            SELECT json_agg(bundle_entity_selection_json(s.id) ORDER BY s.id)
            FROM bundle_entity_selections s WHERE s.bundle_id = b.id), '[]'::json))
    FROM bundles_contextual b
    WHERE b.id = p_bundle
$$;

-- One property selection of a contextual bundle: what adding one answers.
CREATE OR REPLACE FUNCTION bundle_property_selection_json(p_selection bigint) RETURNS json
LANGUAGE sql STABLE
AS $$
    SELECT json_build_object(
        'id', ps.id, 'propertyRelationshipKind', ps.relationship_kind,
        'propertyName', ps.property_name, 'propertyType', ps.property_type,
        'propertyUnitofmeasurement', ps.property_unit)
    FROM bundle_property_selections ps
    WHERE ps.id = p_selection
$$;

-- One entity selection of a contextual bundle, with its property selections: what adding one answers.
CREATE OR REPLACE FUNCTION bundle_entity_selection_json(p_selection bigint) RETURNS json
LANGUAGE sql STABLE
AS $$
    SELECT json_build_object(
        'id', s.id, 'entityId', s.entity_id, 'entityName', s.entity_name, 'entityKind', s.entity_kind,
        'properties', coalesce((
            SELECT json_agg(bundle_property_selection_json(ps.id) ORDER BY ps.id)
            FROM bundle_property_selections ps WHERE ps.selection_id = s.id), '[]'::json))
    FROM bundle_entity_selections s
    WHERE s.id = p_selection
$$;
