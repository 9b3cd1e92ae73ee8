-- Shapes the original HAT's clients read (issue: the original's clients work unchanged).

-- A record's table tree in the values reads: a field with no value in the record is left out, as
-- the original left it out (Rumpel reads field.values[0].value of every field it is given). Every
-- table of the tree stays, with `fields` (possibly empty) and `subTables`, since clients walk both.
-- p_fields: only these fields (a bundle's dataset names its fields); null: every field.
DROP FUNCTION data_table_values_json(bigint, bigint[], bigint[]);
CREATE FUNCTION data_table_values_json(
    p_table bigint, p_records bigint[], p_within bigint[] DEFAULT NULL, p_fields bigint[] DEFAULT NULL
)
RETURNS TABLE (record_id bigint, body json)
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN QUERY
    WITH tree_table AS (
        SELECT t.id, t.name, t.source, hat_time(t.date_created) AS created, hat_time(t.last_updated) AS updated
        FROM data_tables t WHERE t.id = p_table
    ),
    table_fields AS (
        SELECT f.id, f.name, f.table_id, hat_time(f.date_created) AS created, hat_time(f.last_updated) AS updated
        FROM data_fields f WHERE f.table_id = p_table AND (p_fields IS NULL OR f.id = ANY (p_fields))
    ),
    field_values AS (
        SELECT v.record_id, v.field_id, json_agg(data_value_json(v) ORDER BY v.id) AS vals
        FROM data_values v
        WHERE v.field_id IN (SELECT id FROM table_fields) AND v.record_id = ANY (p_records)
        GROUP BY v.record_id, v.field_id
    ),
    record_fields AS (
        SELECT fv.record_id,
               json_agg(
                   json_build_object(
                       'id', f.id, 'name', f.name, 'tableId', f.table_id,
                       'dateCreated', f.created, 'lastUpdated', f.updated,
                       'values', fv.vals)
                   ORDER BY f.id) AS fields
        FROM field_values fv
        JOIN table_fields f ON f.id = fv.field_id
        GROUP BY fv.record_id
    ),
    record_subtables AS (
        SELECT c.record_id, json_agg(c.body ORDER BY l.child_id) AS subs
        FROM data_table_links l
        CROSS JOIN LATERAL data_table_values_json(l.child_id, p_records, p_within, p_fields) AS c
        WHERE l.parent_id = p_table AND (p_within IS NULL OR l.child_id = ANY (p_within))
        GROUP BY c.record_id
    )
    SELECT r.id,
           json_build_object(
               'id', t.id, 'name', t.name, 'source', t.source,
               'dateCreated', t.created, 'lastUpdated', t.updated,
               'fields', coalesce(rf.fields, '[]'::json),
               'subTables', coalesce(rs.subs, '[]'::json))
    FROM unnest(p_records) AS r(id)
    CROSS JOIN tree_table t
    LEFT JOIN record_fields rf ON rf.record_id = r.id
    LEFT JOIN record_subtables rs ON rs.record_id = r.id;
END
$$;

-- The same tree as `pretty=true` gives it (the original's flattenTableValues): for each record, an
-- object of field name -> its value (a string; several values: an array of them, oldest first; no
-- value: left out) and subtable name -> the same object for the subtable ({} when it holds none).
-- A subtable wins over a field of the same name, and of two fields of one name the later one, as
-- in the original's maps.
CREATE FUNCTION data_table_pretty_json(
    p_table bigint, p_records bigint[], p_within bigint[] DEFAULT NULL, p_fields bigint[] DEFAULT NULL
)
RETURNS TABLE (record_id bigint, body json)
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN QUERY
    WITH field_values AS (
        SELECT v.record_id, f.id AS field_id, f.name,
               CASE WHEN count(*) = 1 THEN to_jsonb(min(v.value))
                    ELSE jsonb_agg(v.value ORDER BY v.id) END AS val
        FROM data_fields f
        JOIN data_values v ON v.field_id = f.id
        WHERE f.table_id = p_table AND v.record_id = ANY (p_records)
          AND (p_fields IS NULL OR f.id = ANY (p_fields))
        GROUP BY v.record_id, f.id, f.name
    ),
    pairs AS (
        SELECT fv.record_id, fv.name AS key, fv.val, 0 AS kind, fv.field_id AS position FROM field_values fv
        UNION ALL
        SELECT c.record_id, t.name, c.body::jsonb, 1, l.child_id
        FROM data_table_links l
        JOIN data_tables t ON t.id = l.child_id
        CROSS JOIN LATERAL data_table_pretty_json(l.child_id, p_records, p_within, p_fields) AS c
        WHERE l.parent_id = p_table AND (p_within IS NULL OR l.child_id = ANY (p_within))
    )
    SELECT r.id,
           coalesce((SELECT jsonb_object_agg(p.key, p.val ORDER BY p.kind, p.position)
                     FROM pairs p WHERE p.record_id = r.id), '{}'::jsonb)::json
    FROM unnest(p_records) AS r(id);
END
$$;

-- One property selection of a contextual bundle: what adding one answers.
CREATE FUNCTION bundle_property_selection_json(p_selection bigint) RETURNS json
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
CREATE FUNCTION bundle_entity_selection_json(p_selection bigint) RETURNS json
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
