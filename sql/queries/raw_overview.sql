-- What the owner's pages tell about raw data before showing or deleting it (hatd/raw/repository.py):
-- how many records a table holds, and what goes with a table or a record. The reads of values
-- themselves are raw.sql's (table_record_page, table_values_json), shared with the API.

-- name: table_record_count
-- Returns how many records hold values anywhere in the tree under table $1, with last_updated in
-- [$2, $3] (nulls: open): the records table_record_page pages through.
WITH RECURSIVE tree (id) AS (
    SELECT $1::bigint
    UNION
    SELECT l.child_id FROM data_table_links l JOIN tree t ON l.parent_id = t.id
),
tree_records AS MATERIALIZED (
    SELECT DISTINCT v.record_id
    FROM data_values v
    WHERE v.field_id IN (SELECT f.id FROM data_fields f WHERE f.table_id IN (SELECT id FROM tree))
)
SELECT count(*)
FROM tree_records tr
JOIN data_records r ON r.id = tr.record_id
WHERE ($2::timestamptz IS NULL OR r.last_updated >= $2)
  AND ($3::timestamptz IS NULL OR r.last_updated <= $3);

-- name: tables_deletion
-- Returns what deleting tables $1 takes with it (delete_tables in raw.sql): the tables' ids and
-- names (by id), how many values they hold, and how many records are left without values and go.
WITH touched AS (
    SELECT DISTINCT v.record_id FROM data_values v JOIN data_fields f ON f.id = v.field_id
    WHERE f.table_id = ANY ($1::bigint[])
)
SELECT (SELECT coalesce(json_agg(json_build_object('id', t.id, 'name', t.name, 'source', t.source) ORDER BY t.id),
                        '[]')::text
        FROM data_tables t WHERE t.id = ANY ($1::bigint[])) AS tables,
       (SELECT count(*) FROM data_values v JOIN data_fields f ON f.id = v.field_id
        WHERE f.table_id = ANY ($1::bigint[])) AS values,
       (SELECT count(*) FROM touched t
        WHERE NOT EXISTS (
            SELECT 1 FROM data_values v JOIN data_fields f ON f.id = v.field_id
            WHERE v.record_id = t.record_id AND NOT (f.table_id = ANY ($1::bigint[])))) AS records;

-- name: record_deletion
-- Returns record $1's name and time and how many values go with it, and the names of the tables
-- (by id) holding them; no row if there is no such record.
SELECT r.id, r.name, hat_time(r.last_updated) AS last_updated,
       (SELECT count(*) FROM data_values v WHERE v.record_id = r.id) AS values,
       (SELECT coalesce(array_agg(t.name ORDER BY t.id), '{}')
        FROM data_tables t
        WHERE t.id IN (SELECT f.table_id FROM data_values v JOIN data_fields f ON f.id = v.field_id
                       WHERE v.record_id = r.id)) AS tables
FROM data_records r
WHERE r.id = $1;
