-- Raw data: tables, fields, records and values (hatd/raw/repository.py).
-- The JSON shapes come from the functions in sql/functions/raw.sql.

-- name: insert_table
-- Creates a table; returns its id.
INSERT INTO data_tables (name, source) VALUES ($1, $2) RETURNING id;

-- name: insert_fields
-- Creates fields $2 (names) in table $1; returns nothing.
INSERT INTO data_fields (table_id, name) SELECT $1, name FROM unnest($2::text[]) WITH ORDINALITY AS n(name, i) ORDER BY i;

-- name: link_tables
-- Makes table $2 a subtable of table $1; returns nothing.
INSERT INTO data_table_links (parent_id, child_id, relationship_type) VALUES ($1, $2, $3);

-- name: touch_table
-- Marks a table as updated now; returns nothing.
UPDATE data_tables SET last_updated = now() WHERE id = $1;

-- name: table_exists
-- Returns true if the table exists.
SELECT exists(SELECT 1 FROM data_tables WHERE id = $1);

-- name: table_json
-- Returns a table with its fields and subtables, recursively, as JSON text (null if none).
SELECT data_table_json($1)::text;

-- name: find_table_id
-- Returns the id of the table with this name and source, if any.
SELECT id FROM data_tables WHERE name = $1 AND source = $2;

-- name: sources_json
-- Returns the top-level tables (those that are nobody's subtable) as a JSON array (text).
SELECT coalesce(json_agg(json_build_object(
           'id', t.id, 'name', t.name, 'source', t.source,
           'dateCreated', hat_time(t.date_created), 'lastUpdated', hat_time(t.last_updated))
       ORDER BY t.id), '[]')::text
FROM data_tables t
WHERE NOT EXISTS (SELECT 1 FROM data_table_links l WHERE l.child_id = t.id);

-- name: lock_table_links
-- Waits until no other transaction is changing subtable links (held to the end of the transaction),
-- so that two links made at once cannot together close a cycle.
SELECT pg_advisory_xact_lock($1);

-- name: is_descendant
-- Returns true if table $2 is table $1 or lies anywhere below it (linking $1 under $2 would make a cycle).
WITH RECURSIVE below (id) AS (
    SELECT $1::bigint
    UNION
    SELECT l.child_id FROM data_table_links l JOIN below b ON l.parent_id = b.id
)
SELECT exists(SELECT 1 FROM below WHERE id = $2);

-- name: insert_field
-- Creates a field in a table; returns it as JSON text.
INSERT INTO data_fields (table_id, name) VALUES ($1, $2) RETURNING data_field_json(data_fields)::text;

-- name: field_json
-- Returns one field as JSON text.
SELECT data_field_json(f)::text FROM data_fields f WHERE f.id = $1;

-- name: insert_record
-- Creates a record ($2: the source's time, or null for now); returns it as JSON text.
INSERT INTO data_records (name, last_updated) VALUES ($1, coalesce($2, now()))
RETURNING data_record_json(data_records)::text;

-- name: record_json
-- Returns one record as JSON text.
SELECT data_record_json(r)::text FROM data_records r WHERE r.id = $1;

-- name: record_exists
-- Returns true if the record exists.
SELECT exists(SELECT 1 FROM data_records WHERE id = $1);

-- name: missing_fields
-- Returns those of the field ids $1 that do not exist.
SELECT coalesce(array_agg(DISTINCT x), '{}') FROM unnest($1::bigint[]) AS x
WHERE NOT EXISTS (SELECT 1 FROM data_fields f WHERE f.id = x);

-- name: missing_records
-- Returns those of the record ids $1 that do not exist.
SELECT coalesce(array_agg(DISTINCT x), '{}') FROM unnest($1::bigint[]) AS x
WHERE NOT EXISTS (SELECT 1 FROM data_records r WHERE r.id = x);

-- name: insert_values
-- Stores values $1 at fields $2 and records $3 with times $4 (null: now); returns them, in the
-- order given, as a JSON array (text) of values with their field and record.
WITH ins AS (
    SELECT * FROM data_insert_values($1::text[], $2::bigint[], $3::bigint[], $4::timestamptz[])
)
SELECT coalesce(json_agg(json_build_object(
           'id', ins.id, 'value', ins.value,
           'dateCreated', hat_time(ins.date_created), 'lastUpdated', hat_time(ins.last_updated),
           'field', json_build_object('id', f.id, 'tableId', f.table_id, 'name', f.name),
           'record', json_build_object('id', r.id, 'name', r.name))
       ORDER BY ins.id), '[]')::text
FROM ins
JOIN data_fields f ON f.id = ins.field_id
JOIN data_records r ON r.id = ins.record_id;

-- name: insert_records_with_values
-- Creates records with names $1 and times $2 (null: now) and their values: the texts of the JSON
-- array $3 at the fields of the JSON array $4, the first $5[1] of them in the first record, the
-- next $5[2] in the second, and so on, with times $6 (null, or a null array: now); $7 is the
-- fields' ids, once each. One statement, so one transaction with no round trip to open or close
-- it. Returns now() (every default's time), the record ids in the order of $1, the value ids in the
-- order of $3 as a JSON array (both ascending, taken from the sequences in order, so the caller
-- writes the answer itself), and the id, table and name of each field of $7 that exists: when one
-- does not, nothing is stored and the caller refuses the batch.
-- Why JSON for the values: asyncpg encodes an array of thousands of texts or ids element by
-- element, in Python, and that cost more than PostgreSQL spends reading the same JSON (sent as
-- text, written by orjson: the pool's json codec would write it with json.dumps). Why the
-- sequences are named as constants: nextval of a name worked out per row (pg_get_serial_sequence)
-- costs five times as much, milliseconds for a batch of thousands.
WITH record_ids AS MATERIALIZED (
    SELECT nextval('data_records_id_seq'::regclass) AS id, i
    FROM generate_series(1, cardinality($1::text[])) AS i
),
value_ids AS MATERIALIZED (
    SELECT nextval('data_values_id_seq'::regclass) AS id, i
    FROM generate_series(1, json_array_length($3::text::json)) AS i
),
value_records AS (  -- each value's record, by position: 1 for the first $5[1] values, and so on
    SELECT row_number() OVER (ORDER BY c.record, n) AS i, c.record
    FROM unnest($5::int[]) WITH ORDINALITY AS c(count, record), generate_series(1, c.count) AS n
),
fields AS MATERIALIZED (
    SELECT f.id, f.table_id, f.name FROM data_fields f WHERE f.id = ANY ($7::bigint[])
),
complete AS MATERIALIZED (
    SELECT NOT EXISTS (SELECT 1 FROM unnest($7::bigint[]) AS x WHERE x NOT IN (SELECT id FROM fields)) AS ok
),
records AS (
    INSERT INTO data_records (id, name, last_updated)
    SELECT r.id, n.name, coalesce(n.last_updated, now())
    FROM unnest($1::text[], $2::timestamptz[]) WITH ORDINALITY AS n(name, last_updated, i)
    JOIN record_ids r USING (i)
    WHERE (SELECT ok FROM complete)
),
values_ AS (
    INSERT INTO data_values (id, value, field_id, record_id, last_updated)
    SELECT v.id, x.value, x.field_id::bigint, r.id, coalesce(($6::timestamptz[])[x.i], now())
    FROM ROWS FROM (json_array_elements_text($3::text::json), json_array_elements_text($4::text::json))
         WITH ORDINALITY AS x(value, field_id, i)
    JOIN value_ids v USING (i)
    JOIN value_records p USING (i)
    JOIN record_ids r ON r.i = p.record
    WHERE (SELECT ok FROM complete)
    ORDER BY v.id  -- the primary key's index grows at its end, as with COPY
)
SELECT now() AS now,
       (SELECT coalesce(array_agg(id ORDER BY i), '{}') FROM record_ids) AS record_ids,
       (SELECT coalesce(json_agg(id ORDER BY i), '[]')::text FROM value_ids) AS value_ids,
       (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM fields) AS field_ids,
       (SELECT coalesce(array_agg(table_id ORDER BY id), '{}') FROM fields) AS table_ids,
       (SELECT coalesce(array_agg(name ORDER BY id), '{}') FROM fields) AS field_names;

-- name: table_record_page
-- Returns up to $6 records with values anywhere in the tree under table $1, newest first, with
-- last_updated in [$2, $3] (nulls: open) and before the cursor ($4, $5) when given. Each table of
-- the tree gives at most $6 records from its index (data_table_records), so a page costs what it
-- holds times the tree's tables, whatever the table's size. The bounds are index conditions, never
-- "$n IS NULL OR": a generic plan would otherwise filter the whole table row by row.
WITH RECURSIVE tree (id) AS (
    SELECT $1::bigint
    UNION
    SELECT l.child_id FROM data_table_links l JOIN tree t ON l.parent_id = t.id
)
SELECT c.record_id AS id, c.last_updated
FROM tree
CROSS JOIN LATERAL (
    SELECT tr.record_id, tr.last_updated
    FROM data_table_records tr
    WHERE tr.table_id = tree.id
      AND tr.last_updated >= coalesce($2::timestamptz, '-infinity')
      AND tr.last_updated <= coalesce($3::timestamptz, 'infinity')
      AND (tr.last_updated, tr.record_id) < (coalesce($4::timestamptz, 'infinity'), coalesce($5::bigint, 0))
    ORDER BY tr.last_updated DESC, tr.record_id DESC
    LIMIT $6
) AS c
GROUP BY c.record_id, c.last_updated
ORDER BY c.last_updated DESC, c.record_id DESC
LIMIT $6;

-- name: records_values_json
-- Returns records $2 (in that order), each with the tree under table $1 and its values, as the
-- items of a JSON array joined by ", " (text; null when none of them exists): the items of
-- GET /data/table/{id}/values. $3: only these tables of the tree (null: all); $4: only these
-- fields (null: all); $5: shaped as pretty=true gives them (the original's flattenRecordValues):
-- {"id", "name", "lastUpdated", "data": {<table $1's name>: {field: value, subtable: {...}}}}.
-- Bundles and debits read their records through it too.
SELECT string_agg(
           CASE WHEN $5::boolean
               THEN json_build_object(
                   'id', r.id, 'name', r.name, 'lastUpdated', hat_time(r.last_updated),
                   'data', json_build_object(tb.name, t.body))
               ELSE json_build_object(
                   'id', r.id, 'name', r.name,
                   'dateCreated', hat_time(r.date_created), 'lastUpdated', hat_time(r.last_updated),
                   'tables', json_build_array(t.body)) END::text,
           ', ' ORDER BY p.i)
FROM unnest($2::bigint[]) WITH ORDINALITY AS p(id, i)
JOIN data_records r ON r.id = p.id
JOIN (
    SELECT * FROM data_table_values_json($1, $2, $3, $4) WHERE NOT $5::boolean
    UNION ALL
    SELECT * FROM data_table_pretty_json($1, $2, $3, $4) WHERE $5::boolean
) AS t ON t.record_id = p.id
CROSS JOIN (SELECT name FROM data_tables WHERE id = $1) AS tb;

-- name: field_value_page
-- Returns up to $6 values of field $1, by their record's last_updated, newest first (then by id,
-- newest first), within [$2, $3] and before the cursor ($4 time, $5 value id) when given. The
-- records come from the field's table's index (data_table_records), newest first: the first $6
-- values in that order are the page, but for the records of its oldest time, whose values may
-- interleave by id; those records are read again, all of them, and the page sorted. So a page
-- costs what it holds plus the records sharing its oldest time, whatever the field's size: records
-- share a time when one batch writes them, or when their source gives them one (a coarse clock).
WITH firsts AS MATERIALIZED (
    SELECT v.id, tr.last_updated
    FROM data_table_records tr
    JOIN data_values v ON v.record_id = tr.record_id AND v.field_id = $1
    WHERE tr.table_id = (SELECT table_id FROM data_fields WHERE id = $1)
      AND tr.last_updated >= coalesce($2::timestamptz, '-infinity')
      AND tr.last_updated <= least(coalesce($3::timestamptz, 'infinity'), coalesce($4::timestamptz, 'infinity'))
      AND (tr.last_updated, v.id) < (coalesce($4::timestamptz, 'infinity'), coalesce($5::bigint, 0))
    ORDER BY tr.last_updated DESC, tr.record_id DESC
    LIMIT $6
),
edge AS (SELECT min(last_updated) AS t, count(*) = $6 AS full FROM firsts)
SELECT p.id, p.last_updated
FROM (
    SELECT firsts.id, firsts.last_updated FROM firsts, edge WHERE NOT edge.full OR firsts.last_updated > edge.t
    UNION ALL
    SELECT v.id, tr.last_updated
    FROM edge
    JOIN data_table_records tr ON tr.last_updated = edge.t
    JOIN data_values v ON v.record_id = tr.record_id AND v.field_id = $1
    WHERE edge.full AND tr.table_id = (SELECT table_id FROM data_fields WHERE id = $1)
      AND (tr.last_updated, v.id) < (coalesce($4::timestamptz, 'infinity'), coalesce($5::bigint, 0))
) AS p
ORDER BY p.last_updated DESC, p.id DESC
LIMIT $6;

-- name: field_values_json
-- Returns field $1 with the values $2 (in that order) as JSON text; with no values, no `values` key
-- (as the original: a client reading values[0] must not be handed an empty list). No other key of
-- the object is ever null, so stripping nulls removes only that one.
SELECT json_strip_nulls(json_build_object(
           'id', f.id, 'name', f.name, 'tableId', f.table_id,
           'dateCreated', hat_time(f.date_created), 'lastUpdated', hat_time(f.last_updated),
           'values', (SELECT json_agg(data_value_json(v) ORDER BY p.i)
                      FROM unnest($2::bigint[]) WITH ORDINALITY AS p(id, i)
                      JOIN data_values v ON v.id = p.id)))::text
FROM data_fields f
WHERE f.id = $1;

-- name: record_values_json
-- Returns record $1 with, for each top-level table whose tree holds its values, that tree and the
-- values, as JSON text (null if there is no such record); with $2, as `pretty=true` gives it:
-- {"id", "name", "lastUpdated", "data": {<top-level table name>: {field: value, subtable: {...}}}}.
-- The tables holding its values come from the record index (data_table_records).
WITH RECURSIVE holding (id) AS (
    SELECT tr.table_id FROM data_table_records tr WHERE tr.record_id = $1
    UNION
    SELECT l.parent_id FROM data_table_links l JOIN holding h ON l.child_id = h.id
),
roots AS (
    SELECT h.id FROM holding h WHERE NOT EXISTS (SELECT 1 FROM data_table_links l WHERE l.child_id = h.id)
)
SELECT CASE WHEN $2::boolean
           THEN json_build_object(
               'id', r.id, 'name', r.name, 'lastUpdated', hat_time(r.last_updated),
               'data', coalesce(
                   (SELECT jsonb_object_agg(tb.name, t.body ORDER BY roots.id)
                    FROM roots
                    JOIN data_tables tb ON tb.id = roots.id
                    CROSS JOIN LATERAL data_table_pretty_json(roots.id, ARRAY[$1::bigint]) AS t)::json,
                   '{}'::json))
           ELSE json_build_object(
               'id', r.id, 'name', r.name,
               'dateCreated', hat_time(r.date_created), 'lastUpdated', hat_time(r.last_updated),
               'tables', coalesce(
                   (SELECT json_agg(t.body ORDER BY roots.id)
                    FROM roots CROSS JOIN LATERAL data_table_values_json(roots.id, ARRAY[$1::bigint]) AS t),
                   '[]'::json)) END::text
FROM data_records r
WHERE r.id = $1;

-- name: delete_value
-- Deletes one value; returns its id (null if there was none).
DELETE FROM data_values WHERE id = $1 RETURNING id;

-- name: delete_record
-- Deletes one record and its values; returns its id (null if there was none).
DELETE FROM data_records WHERE id = $1 RETURNING id;

-- name: delete_field
-- Deletes one field and its values; returns its id (null if there was none).
DELETE FROM data_fields WHERE id = $1 RETURNING id;

-- name: deletable_tree_ids
-- Returns table $1 and the tables below it that only tables in that set hold: a subtable another
-- table also holds stays (only its link to the deleted table goes). Empty if $1 does not exist.
SELECT data_deletable_tree($1);

-- name: lock_tree_fields
-- Locks the fields of tables $1 (and so waits for writers of their values); returns nothing.
SELECT 1 FROM data_fields WHERE table_id = ANY ($1::bigint[]) ORDER BY id FOR UPDATE;

-- name: delete_tables
-- Deletes tables $1 (their fields and values go by cascade), and the records that had values only
-- in them; returns the number of tables deleted.
WITH touched AS (
    SELECT DISTINCT v.record_id FROM data_values v JOIN data_fields f ON f.id = v.field_id
    WHERE f.table_id = ANY ($1::bigint[])
),
gone_tables AS (
    DELETE FROM data_tables WHERE id = ANY ($1::bigint[]) RETURNING id
),
gone_records AS (
    DELETE FROM data_records r USING touched t
    WHERE r.id = t.record_id
      AND NOT EXISTS (
          SELECT 1 FROM data_values v JOIN data_fields f ON f.id = v.field_id
          WHERE v.record_id = r.id AND NOT (f.table_id = ANY ($1::bigint[])))
    RETURNING r.id
)
SELECT count(*) FROM gone_tables;

-- name: table_summaries
-- Returns each top-level table with its number of subtables, the records holding values anywhere
-- in its tree and when its newest value was last updated, by source and name (the owner's pages).
WITH RECURSIVE tree (root, id) AS (
    SELECT t.id, t.id
    FROM data_tables t
    WHERE NOT EXISTS (SELECT 1 FROM data_table_links l WHERE l.child_id = t.id)
    UNION
    SELECT tree.root, l.child_id FROM data_table_links l JOIN tree ON l.parent_id = tree.id
),
counts AS (
    SELECT tree.root, count(DISTINCT v.record_id) AS records, max(v.last_updated) AS last_updated
    FROM tree
    JOIN data_fields f ON f.table_id = tree.id
    JOIN data_values v ON v.field_id = f.id
    GROUP BY tree.root
)
SELECT t.id, t.name, t.source,
       (SELECT count(*) - 1 FROM tree WHERE tree.root = t.id) AS subtables,
       coalesce(c.records, 0) AS records,
       hat_time(c.last_updated) AS last_updated
FROM data_tables t
JOIN (SELECT DISTINCT root FROM tree) roots ON roots.root = t.id
LEFT JOIN counts c ON c.root = t.id
ORDER BY t.source, t.name, t.id;
