-- Raw data: the time format, the shapes of tables, fields, records and values, and the helpers
-- the raw queries (sql/queries/raw.sql) call.
--
-- Database functions are code, not history: this file holds their live definitions, applied by
-- `hatd migrate` (and at every start) after the migrations, whenever its checksum changes
-- (hatd/db.py). Edit a function here, in place; CREATE OR REPLACE cannot change a function's
-- arguments or result type: for that, DROP FUNCTION IF EXISTS the old one first, here.
-- Function bodies are checked when called, not when made, so the order of the files does not matter.

-- Every timestamp leaves the API as ISO-8601 in UTC with milliseconds and a Z.
CREATE OR REPLACE FUNCTION hat_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

-- Two JSON objects as one, the second's keys after the first's, as text: the spacing and key order
-- json_build_object gave them stay (a jsonb || would respace them and sort the keys).
CREATE OR REPLACE FUNCTION json_object_concat(a json, b json) RETURNS json
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (left(a::text, -1) || ', ' || substr(b::text, 2))::json $$;

-- Table $1 and the tables below it that no table outside the set holds: what deleting $1 removes.
CREATE OR REPLACE FUNCTION data_deletable_tree(p_table bigint) RETURNS bigint[]
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    tree bigint[];
    more bigint[];
BEGIN
    SELECT array_agg(id) INTO tree FROM data_tables WHERE id = p_table;
    IF tree IS NULL THEN
        RETURN '{}';
    END IF;
    LOOP
        SELECT array_agg(c.child_id) INTO more
        FROM (SELECT DISTINCT l.child_id FROM data_table_links l
              WHERE l.parent_id = ANY (tree) AND NOT l.child_id = ANY (tree)) AS c
        WHERE NOT EXISTS (SELECT 1 FROM data_table_links o
                          WHERE o.child_id = c.child_id AND NOT o.parent_id = ANY (tree));
        EXIT WHEN more IS NULL;
        tree := tree || more;
    END LOOP;
    RETURN tree;
END
$$;

-- Stores a batch of values in the order given (times null: now); returns the new rows.
CREATE OR REPLACE FUNCTION data_insert_values(p_values text[], p_fields bigint[], p_records bigint[], p_times timestamptz[])
RETURNS SETOF data_values
LANGUAGE sql
AS $$
    INSERT INTO data_values (value, field_id, record_id, last_updated)
    SELECT v.value, v.field_id, v.record_id, coalesce(v.last_updated, now())
    FROM unnest(p_values, p_fields, p_records, p_times) WITH ORDINALITY AS v(value, field_id, record_id, last_updated, i)
    ORDER BY v.i
    RETURNING *
$$;

CREATE OR REPLACE FUNCTION data_field_json(f data_fields) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT json_build_object(
        'id', f.id, 'name', f.name, 'tableId', f.table_id,
        'dateCreated', hat_time(f.date_created), 'lastUpdated', hat_time(f.last_updated))
$$;

CREATE OR REPLACE FUNCTION data_record_json(r data_records) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT json_build_object(
        'id', r.id, 'name', r.name,
        'dateCreated', hat_time(r.date_created), 'lastUpdated', hat_time(r.last_updated))
$$;

CREATE OR REPLACE FUNCTION data_value_json(v data_values) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT json_build_object(
        'id', v.id, 'value', v.value,
        'dateCreated', hat_time(v.date_created), 'lastUpdated', hat_time(v.last_updated))
$$;

-- A table with its fields and, recursively, its subtables: the structure without values.
CREATE OR REPLACE FUNCTION data_table_json(p_table bigint) RETURNS json
LANGUAGE sql STABLE
AS $$
    SELECT json_build_object(
        'id', t.id, 'name', t.name, 'source', t.source,
        'dateCreated', hat_time(t.date_created), 'lastUpdated', hat_time(t.last_updated),
        'fields', coalesce(
            (SELECT json_agg(data_field_json(f) ORDER BY f.id) FROM data_fields f WHERE f.table_id = t.id),
            '[]'::json),
        'subTables', coalesce(
            (SELECT json_agg(data_table_json(l.child_id) ORDER BY l.child_id)
             FROM data_table_links l WHERE l.parent_id = t.id),
            '[]'::json))
    FROM data_tables t
    WHERE t.id = p_table
$$;

CREATE OR REPLACE FUNCTION data_table_values_json(
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
CREATE OR REPLACE FUNCTION data_table_pretty_json(
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

-- A table's structure as a dataset shows it: only the subtables p_within and the fields p_fields.
CREATE OR REPLACE FUNCTION data_table_json_within(p_table bigint, p_within bigint[], p_fields bigint[]) RETURNS json
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

-- The per-table record index (data_table_records, sql/schema/0013_table_records.sql), kept by
-- statement triggers on data_values.

-- Once per statement, over all its new values: a batch of thousands costs one insert here.
CREATE OR REPLACE FUNCTION data_table_records_add() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO data_table_records (table_id, record_id, last_updated)
    SELECT DISTINCT f.table_id, a.record_id, r.last_updated
    FROM added a
    JOIN data_fields f ON f.id = a.field_id
    JOIN data_records r ON r.id = a.record_id
    -- One order for every writer, so two batches over the same records cannot deadlock here.
    ORDER BY f.table_id, a.record_id
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

-- A record leaves a table when its last value there goes (a value or a field deleted). Checked per
-- record touched, since a deleted field's table can no longer be looked up from the field.
-- Deleting a record or a table removes its rows here by cascade.
-- The records are locked first: a transaction writing a value of one of them holds a key-share lock
-- on it (its foreign key), so this waits for it to end, and then, in a statement of its own, sees
-- its value; two deletes of a record's last two values wait for each other the same way. Without
-- the lock, either race left the index wrong for good (a record missing from every page, or an
-- empty one listed).
CREATE OR REPLACE FUNCTION data_table_records_remove() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM 1 FROM data_records WHERE id IN (SELECT record_id FROM removed) ORDER BY id FOR UPDATE;
    DELETE FROM data_table_records d
    USING (SELECT DISTINCT record_id FROM removed) AS x
    WHERE d.record_id = x.record_id
      AND NOT EXISTS (
          SELECT 1 FROM data_values v JOIN data_fields f ON f.id = v.field_id
          WHERE v.record_id = d.record_id AND f.table_id = d.table_id);
    RETURN NULL;
END
$$;
