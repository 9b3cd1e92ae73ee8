-- The original's later contextless-bundle dialect (from 2016-07): a bundle given as sources, each
-- with datasets (a table, by the source and the dataset's name) and the fields they share, by name
-- (a field with fields of its own names a subtable). Each dataset is a bundle table (its table and
-- the tree below it, as ever) and a row here: what the client gave, to answer in its dialect, and
-- the fields it named, the only ones whose values the bundle shares. A bundle with such rows is
-- answered in that dialect (`sources`, and debit values' `dataGroups` keyed by source).

CREATE TABLE bundle_datasets (
    bundle_table_id bigint PRIMARY KEY REFERENCES bundle_tables (id) ON DELETE CASCADE,
    source          text NOT NULL CHECK (source <> '' AND length(source) <= 500),
    description     text NOT NULL CHECK (length(description) <= 1000),
    -- The dataset's fields as given: [{name, description, fields?}], nested for subtables.
    fields          jsonb NOT NULL CHECK (jsonb_typeof(fields) = 'array'),
    -- The fields they name (of the bundle table's tree), whose values alone the dataset shares; none
    -- when an app named only fields that do not exist (it learns nothing from a refusal).
    field_ids       bigint[] NOT NULL CHECK (cardinality(field_ids) <= 10000),
    -- The tables on the way to those fields (the bundle table's own first): all of the tree the
    -- dataset shows, so that neither unnamed subtables nor tables linked in later are named to it.
    tables          bigint[] NOT NULL CHECK (cardinality(tables) BETWEEN 1 AND 10000)
);

-- A table's structure as a dataset shows it: only the subtables p_within and the fields p_fields.
CREATE FUNCTION data_table_json_within(p_table bigint, p_within bigint[], p_fields bigint[]) RETURNS json
LANGUAGE sql STABLE
AS $$
    SELECT json_build_object(
        'id', t.id, 'name', t.name, 'source', t.source,
        'dateCreated', hat_time(t.date_created), 'lastUpdated', hat_time(t.last_updated),
        'fields', coalesce(
            (SELECT json_agg(data_field_json(f) ORDER BY f.id)
             FROM data_fields f WHERE f.table_id = t.id AND f.id = ANY (p_fields)),
            '[]'::json),
        'subTables', coalesce(
            (SELECT json_agg(data_table_json_within(l.child_id, p_within, p_fields) ORDER BY l.child_id)
             FROM data_table_links l WHERE l.parent_id = t.id AND l.child_id = ANY (p_within)),
            '[]'::json))
    FROM data_tables t
    WHERE t.id = p_table
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
