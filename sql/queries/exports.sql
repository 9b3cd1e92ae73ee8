-- The whole HAT as one JSON Lines document, out and back in (hatd/exports/repository.py, docs/export.md).
-- Sections come in the order of hatd/exports/repository.py SECTIONS: every table before those that
-- refer to it. Each line is one row, built here by row_to_json: its first key is "section" (the
-- table), then the table's columns by name. Times are rendered in the session's time zone, which
-- the export sets to UTC, so an export of the same data is the same bytes every time.
-- Never exported: password hashes, the signing keys, the migration bookkeeping.

-- name: export_session
-- Makes this transaction render times in UTC and floats in their shortest exact form; returns nothing.
SELECT set_config('TimeZone', 'UTC', true), set_config('extra_float_digits', '1', true);

-- name: header
-- Returns the first line (text): format $1, version $2, the HAT's address $3, the schema version, and
-- per section (in file order) its rows and the next id its sequence gives (null: no sequence).
SELECT row_to_json(h)::text
FROM (SELECT $1::text AS format, $2::integer AS version,
             (SELECT max(version) FROM schema_migrations) AS "schemaVersion", $3::text AS hat,
             (SELECT array_to_json(array_agg(row_to_json(s) ORDER BY v.position))
              FROM (VALUES
                  (1, 'accounts', (SELECT count(*) FROM accounts), NULL::bigint),
                  (2, 'system_types', (SELECT count(*) FROM system_types),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM system_types_id_seq)),
                  (3, 'system_type_links', (SELECT count(*) FROM system_type_links),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
                    FROM system_type_links_id_seq)),
                  (4, 'system_units', (SELECT count(*) FROM system_units),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM system_units_id_seq)),
                  (5, 'system_properties', (SELECT count(*) FROM system_properties),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
                    FROM system_properties_id_seq)),
                  (6, 'person_relationship_types', (SELECT count(*) FROM person_relationship_types),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
                    FROM person_relationship_types_id_seq)),
                  (7, 'data_tables', (SELECT count(*) FROM data_tables),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM data_tables_id_seq)),
                  (8, 'data_table_links', (SELECT count(*) FROM data_table_links), NULL),
                  (9, 'data_fields', (SELECT count(*) FROM data_fields),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM data_fields_id_seq)),
                  (10, 'data_records', (SELECT count(*) FROM data_records),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM data_records_id_seq)),
                  (11, 'data_values', (SELECT count(*) FROM data_values),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM data_values_id_seq)),
                  (12, 'entities', (SELECT count(*) FROM entities),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM entities_id_seq)),
                  (13, 'entity_links', (SELECT count(*) FROM entity_links),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM entity_links_id_seq)),
                  (14, 'entity_types', (SELECT count(*) FROM entity_types),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM entity_types_id_seq)),
                  (15, 'entity_properties', (SELECT count(*) FROM entity_properties),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
                    FROM entity_properties_id_seq)),
                  (16, 'bundles_contextless', (SELECT count(*) FROM bundles_contextless),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
                    FROM bundles_contextless_id_seq)),
                  (17, 'bundle_tables', (SELECT count(*) FROM bundle_tables),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM bundle_tables_id_seq)),
                  (18, 'bundle_slices', (SELECT count(*) FROM bundle_slices),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM bundle_slices_id_seq)),
                  (19, 'bundle_slice_conditions', (SELECT count(*) FROM bundle_slice_conditions),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
                    FROM bundle_slice_conditions_id_seq)),
                  (20, 'bundles_contextual', (SELECT count(*) FROM bundles_contextual),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
                    FROM bundles_contextual_id_seq)),
                  (21, 'bundle_entity_selections', (SELECT count(*) FROM bundle_entity_selections),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
                    FROM bundle_entity_selections_id_seq)),
                  (22, 'bundle_property_selections', (SELECT count(*) FROM bundle_property_selections),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
                    FROM bundle_property_selections_id_seq)),
                  (23, 'data_debits', (SELECT count(*) FROM data_debits), NULL),
                  (24, 'data_debit_log', (SELECT count(*) FROM data_debit_log),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM data_debit_log_id_seq)),
                  (25, 'bundle_datasets', (SELECT count(*) FROM bundle_datasets), NULL)
              ) AS v (position, name, rows, next_id)
              CROSS JOIN LATERAL (SELECT v.name, v.rows, v.next_id AS "nextId") AS s) AS sections) AS h;

-- name: schema_version
-- Returns the newest migration applied to this database.
SELECT max(version) FROM schema_migrations;

-- name: lock_hat
-- Keeps every other writer out of the HAT's tables until the import's transaction ends, and every
-- reader too out of those whose indexes or foreign keys it drops and makes again
-- (REBUILT_INDEX_TABLES and CHECKED_FOREIGN_KEYS in hatd/exports/repository.py: dropping them takes
-- that lock anyway; taken here first, all at once, so that no other transaction comes between),
-- in the order the API's writers take them (tables, then fields, records, values), so that a
-- writer under way cannot deadlock with it; returns nothing.
LOCK TABLE accounts, system_types, system_type_links, system_units, system_properties, person_relationship_types,
    data_tables, data_table_links
    IN EXCLUSIVE MODE;
LOCK TABLE data_fields, data_records, data_values IN ACCESS EXCLUSIVE MODE;
LOCK TABLE entities, entity_links, entity_types,
    entity_properties, bundles_contextless, bundle_tables, bundle_slices, bundle_slice_conditions,
    bundles_contextual, bundle_entity_selections, bundle_property_selections, data_debits, data_debit_log,
    bundle_datasets
    IN EXCLUSIVE MODE;

-- name: rebuildable_indexes
-- Returns, for the tables $1 (names), each index that refuses no row (not unique, behind no
-- constraint), by name: `drop`, the statement that drops it, and `definition`, the one that makes it
-- again exactly as it is (PostgreSQL's own, as pg_indexes shows it), so the two cannot drift apart.
SELECT format('DROP INDEX %I.%I', n.nspname, c.relname) AS drop, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.indrelid = ANY ($1::text[]::regclass[])
  AND NOT i.indisunique
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
ORDER BY c.relname;

-- name: checked_foreign_keys
-- Returns the foreign keys named $1, in the order they were made: `drop`, the statement that drops
-- one, and `definition`, the one that adds it again exactly as it is (PostgreSQL's own), checking
-- every row at once.
SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', k.conrelid::regclass, k.conname) AS drop,
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', k.conrelid::regclass, k.conname, pg_get_constraintdef(k.oid))
           AS definition
FROM pg_constraint k
WHERE k.conname = ANY ($1::text[]) AND k.contype = 'f' AND k.connamespace = current_schema()::regnamespace
ORDER BY k.oid;

-- name: index_build_memory
-- Gives this transaction's index builds $1 of memory each (maintenance_work_mem, as SET LOCAL), so
-- that each sorts in memory rather than through temporary files; returns nothing.
SELECT set_config('maintenance_work_mem', $1::text, true);

-- name: hat_contents
-- Returns the tables holding what an empty HAT lacks (accounts: other than the owner and platform),
-- leaving out the vocabulary, which vocabulary_left_out checks.
SELECT t.name
FROM (VALUES
    (1, 'accounts', EXISTS (SELECT 1 FROM accounts WHERE role NOT IN ('owner', 'platform'))),
    (7, 'data_tables', EXISTS (SELECT 1 FROM data_tables)),
    (8, 'data_table_links', EXISTS (SELECT 1 FROM data_table_links)),
    (9, 'data_fields', EXISTS (SELECT 1 FROM data_fields)),
    (10, 'data_records', EXISTS (SELECT 1 FROM data_records)),
    (11, 'data_values', EXISTS (SELECT 1 FROM data_values)),
    (12, 'entities', EXISTS (SELECT 1 FROM entities)),
    (13, 'entity_links', EXISTS (SELECT 1 FROM entity_links)),
    (14, 'entity_types', EXISTS (SELECT 1 FROM entity_types)),
    (15, 'entity_properties', EXISTS (SELECT 1 FROM entity_properties)),
    (16, 'bundles_contextless', EXISTS (SELECT 1 FROM bundles_contextless)),
    (17, 'bundle_tables', EXISTS (SELECT 1 FROM bundle_tables)),
    (18, 'bundle_slices', EXISTS (SELECT 1 FROM bundle_slices)),
    (19, 'bundle_slice_conditions', EXISTS (SELECT 1 FROM bundle_slice_conditions)),
    (20, 'bundles_contextual', EXISTS (SELECT 1 FROM bundles_contextual)),
    (21, 'bundle_entity_selections', EXISTS (SELECT 1 FROM bundle_entity_selections)),
    (22, 'bundle_property_selections', EXISTS (SELECT 1 FROM bundle_property_selections)),
    (23, 'data_debits', EXISTS (SELECT 1 FROM data_debits)),
    (24, 'data_debit_log', EXISTS (SELECT 1 FROM data_debit_log)),
    (25, 'bundle_datasets', EXISTS (SELECT 1 FROM bundle_datasets))
) AS t (position, name, used)
WHERE t.used
ORDER BY t.position;

-- name: special_password_hashes
-- Returns the password hashes of the owner and the platform account, by role.
SELECT role, pass_hash FROM accounts WHERE role IN ('owner', 'platform');

-- name: keep_target_vocabulary
-- Notes the vocabulary the HAT has before the import (each row by id and what names it), for
-- vocabulary_left_out; the note goes with the transaction. Returns nothing.
CREATE TEMPORARY TABLE import_target_vocabulary ON COMMIT DROP AS
SELECT 'system_types'::text AS section, id, name AS label FROM system_types
UNION ALL SELECT 'system_type_links', id, type_id || ' ' || relationship_type || ' ' || linked_type_id
          FROM system_type_links
UNION ALL SELECT 'system_units', id, name FROM system_units
UNION ALL SELECT 'system_properties', id, name FROM system_properties
UNION ALL SELECT 'person_relationship_types', id, name FROM person_relationship_types;

-- name: clear_target
-- Deletes the accounts and the vocabulary of an empty HAT, for the file's to take their place; returns nothing.
DELETE FROM accounts;
DELETE FROM system_properties;
DELETE FROM system_type_links;
DELETE FROM system_units;
DELETE FROM system_types;
DELETE FROM person_relationship_types;

-- name: vocabulary_left_out
-- Returns (section, id, label) of up to 10 vocabulary rows the HAT had before the import that the
-- file does not hold with the same id and name: vocabulary of the HAT's own, so it was not empty.
WITH imported AS (
    SELECT 'system_types'::text AS section, id, name AS label FROM system_types
    UNION ALL SELECT 'system_type_links', id, type_id || ' ' || relationship_type || ' ' || linked_type_id
              FROM system_type_links
    UNION ALL SELECT 'system_units', id, name FROM system_units
    UNION ALL SELECT 'system_properties', id, name FROM system_properties
    UNION ALL SELECT 'person_relationship_types', id, name FROM person_relationship_types
)
SELECT k.section, k.id, k.label
FROM import_target_vocabulary k
WHERE NOT EXISTS (SELECT 1 FROM imported i WHERE (i.section, i.id, i.label) = (k.section, k.id, k.label))
ORDER BY k.section, k.id
LIMIT 10;

-- name: special_roles
-- Returns how many owner and how many platform accounts there are.
SELECT count(*) FILTER (WHERE role = 'owner') AS owners, count(*) FILTER (WHERE role = 'platform') AS platforms
FROM accounts;

-- name: table_link_cycle
-- Returns a table that lies below itself through subtable links, or null when the links form no cycle.
WITH RECURSIVE below (start, id) AS (
    SELECT parent_id, child_id FROM data_table_links
    UNION
    SELECT b.start, l.child_id FROM below b JOIN data_table_links l ON l.parent_id = b.id
)
SELECT start FROM below WHERE start = id LIMIT 1;

-- name: import_violations
-- Returns up to 5 sentences, each naming a row of the file the API could never have made: the rules
-- hatd's code enforces where the tables' constraints do not (docs/export.md lists them). None: the
-- file is sound. A bundle table's tree may name a table deleted since it was made (below $3, the
-- file's next data_tables id, so never given again), never one still to come.
-- $1, $2: the pairs (kind, kind it may link to) of hatd/context/repository.py MAY_LINK_TO.
WITH RECURSIVE below (top, id) AS (
    SELECT DISTINCT table_id, table_id FROM bundle_tables
    UNION
    SELECT b.top, l.child_id FROM below b JOIN data_table_links l ON l.parent_id = b.id
),
type_reach (start, id) AS (
    SELECT type_id, linked_type_id FROM system_type_links
    UNION
    SELECT r.start, l.linked_type_id FROM type_reach r JOIN system_type_links l ON l.type_id = r.id
),
next_table AS (
    SELECT greatest($3::numeric, (SELECT max(id)::numeric + 1 FROM data_tables)) AS id
),
blank (section, id, field) AS (
    SELECT 'system_types', id, 'name' FROM system_types WHERE name ~ '^\s*$'
    UNION ALL SELECT 'system_units', id, 'name' FROM system_units WHERE name ~ '^\s*$'
    UNION ALL SELECT 'system_properties', id, 'name' FROM system_properties WHERE name ~ '^\s*$'
    UNION ALL SELECT 'person_relationship_types', id, 'name' FROM person_relationship_types WHERE name ~ '^\s*$'
    UNION ALL SELECT 'system_type_links', id, 'relationship_type' FROM system_type_links
              WHERE relationship_type ~ '^\s*$'
    UNION ALL SELECT 'entities', id, 'name' FROM entities WHERE name ~ '^\s*$'
    UNION ALL SELECT 'entities', id, 'person_id' FROM entities WHERE person_id ~ '^\s*$'
    UNION ALL SELECT 'entity_properties', id, 'relationship_type' FROM entity_properties
              WHERE relationship_type ~ '^\s*$'
    UNION ALL SELECT 'bundles_contextless', id, 'name' FROM bundles_contextless WHERE name ~ '^\s*$'
    UNION ALL SELECT 'bundle_tables', id, 'name' FROM bundle_tables WHERE name ~ '^\s*$'
    UNION ALL SELECT 'bundles_contextual', id, 'name' FROM bundles_contextual WHERE name ~ '^\s*$'
    UNION ALL SELECT 'bundle_entity_selections', id, 'entity_name' FROM bundle_entity_selections
              WHERE entity_name = ''
    UNION ALL SELECT 'bundle_property_selections', id, 'property_name' FROM bundle_property_selections
              WHERE property_name ~ '^\s*$'
    UNION ALL SELECT 'bundle_property_selections', id, 'property_type' FROM bundle_property_selections
              WHERE property_type ~ '^\s*$'
    UNION ALL SELECT 'bundle_property_selections', id, 'property_unit' FROM bundle_property_selections
              WHERE property_unit ~ '^\s*$'
),
problems (rule, key, problem) AS (
    -- A bundle table shares its tree: its table and tables below it, never another table or a future one.
    SELECT 1, bt.id, format('bundle_tables row %s: tree %s is not table %s and tables below it through '
                            'data_table_links', bt.id, bt.tree, bt.table_id)
    FROM bundle_tables bt
    WHERE coalesce(array_ndims(bt.tree), 0) <> 1
       OR NOT bt.table_id = ANY (bt.tree)
       OR cardinality(bt.tree) <> (SELECT count(DISTINCT x) FROM unnest(bt.tree) AS x)
       OR EXISTS (SELECT 1 FROM unnest(bt.tree) AS x
                  WHERE NOT EXISTS (SELECT 1 FROM below b WHERE b.top = bt.table_id AND b.id = x)
                    AND (EXISTS (SELECT 1 FROM data_tables t WHERE t.id = x) OR x < 1
                         OR x >= (SELECT id FROM next_table)))
    UNION ALL
    SELECT 2, s.id, format('bundle_slices row %s: table %s is outside bundle table %s''s tree %s',
                           s.id, s.table_id, bt.id, bt.tree)
    FROM bundle_slices s JOIN bundle_tables bt ON bt.id = s.bundle_table_id
    WHERE NOT s.table_id = ANY (bt.tree)
    UNION ALL
    -- A dataset shows its table and tables of its tree, and shares only fields of those.
    SELECT 3, d.bundle_table_id, format('bundle_datasets row %s: tables %s are not table %s and tables of its '
                                        'tree %s, or field ids %s are not all fields of those tables',
                                        d.bundle_table_id, d.tables, bt.table_id, bt.tree, d.field_ids)
    FROM bundle_datasets d JOIN bundle_tables bt ON bt.id = d.bundle_table_id
    WHERE coalesce(array_ndims(d.tables), 0) <> 1
       OR d.tables[1] IS DISTINCT FROM bt.table_id
       OR NOT d.tables <@ bt.tree
       OR (cardinality(d.field_ids) > 0 AND array_ndims(d.field_ids) <> 1)
       OR EXISTS (SELECT 1 FROM unnest(d.field_ids) AS x
                  WHERE NOT EXISTS (SELECT 1 FROM data_fields f WHERE f.id = x AND f.table_id = ANY (d.tables)))
    UNION ALL
    SELECT 3, c.id, format('bundle_slice_conditions row %s: field %s is not a field of slice %s''s table %s',
                           c.id, c.field_id, s.id, s.table_id)
    FROM bundle_slice_conditions c JOIN bundle_slices s ON s.id = c.slice_id JOIN data_fields f ON f.id = c.field_id
    WHERE f.table_id <> s.table_id
    UNION ALL
    -- Positions and counts: a page cursor packs a bundle table's position below 100 (hatd/bundles).
    SELECT 4, bt.id, format('bundle_tables row %s: position %s is not 0 to 99', bt.id, bt.position)
    FROM bundle_tables bt WHERE bt.position NOT BETWEEN 0 AND 99
    UNION ALL
    SELECT 5, b.id, format('bundles_contextless row %s: %s tables; a bundle has 1 to 100', b.id, count(bt.id))
    FROM bundles_contextless b LEFT JOIN bundle_tables bt ON bt.bundle_id = b.id
    GROUP BY b.id HAVING count(bt.id) NOT BETWEEN 1 AND 100
    UNION ALL
    SELECT 5, bundle_table_id, format('bundle_tables row %s: %s slices; a bundle table has at most 20',
                                      bundle_table_id, count(*))
    FROM bundle_slices GROUP BY bundle_table_id HAVING count(*) > 20
    UNION ALL
    -- A slice without conditions would pass every record.
    SELECT 5, s.id, format('bundle_slices row %s: %s conditions; a slice has 1 to 20', s.id, count(c.id))
    FROM bundle_slices s LEFT JOIN bundle_slice_conditions c ON c.slice_id = s.id
    GROUP BY s.id HAVING count(c.id) NOT BETWEEN 1 AND 20
    UNION ALL
    SELECT 5, bt.bundle_id, format('bundles_contextless row %s: %s slice conditions; a bundle has at most 200',
                                   bt.bundle_id, count(*))
    FROM bundle_tables bt JOIN bundle_slices s ON s.bundle_table_id = bt.id
    JOIN bundle_slice_conditions c ON c.slice_id = s.id
    GROUP BY bt.bundle_id HAVING count(*) > 200
    UNION ALL
    SELECT 5, b.id, format('bundles_contextual row %s: %s entity selections; a bundle has 1 to 100',
                           b.id, count(s.id))
    FROM bundles_contextual b LEFT JOIN bundle_entity_selections s ON s.bundle_id = b.id
    GROUP BY b.id HAVING count(s.id) NOT BETWEEN 1 AND 100
    UNION ALL
    SELECT 5, selection_id, format('bundle_entity_selections row %s: %s property selections; at most 20',
                                   selection_id, count(*))
    FROM bundle_property_selections GROUP BY selection_id HAVING count(*) > 20
    UNION ALL
    SELECT 6, l.id, format('entity_links row %s: %s %s may not link to %s %s', l.id, e.kind, e.id, le.kind, le.id)
    FROM entity_links l JOIN entities e ON e.id = l.entity_id JOIN entities le ON le.id = l.linked_id
    WHERE NOT EXISTS (SELECT 1 FROM unnest($1::text[], $2::text[]) AS m (kind, linked_kind)
                      WHERE m.kind = e.kind AND m.linked_kind = le.kind)
    UNION ALL
    -- Person to person: an existing relationship type, by its name; no other link has one.
    SELECT 7, l.id, format('entity_links row %s: %s', l.id, CASE
        WHEN e.kind = 'person' AND le.kind = 'person' AND l.person_relationship_type_id IS NULL
            THEN 'a person to person link needs a person_relationship_type_id'
        WHEN NOT (e.kind = 'person' AND le.kind = 'person')
            THEN 'only a person to person link has a person_relationship_type_id'
        ELSE format('relationship_type %s is not the name of person relationship type %s (%s)',
                    quote_literal(l.relationship_type), p.id, quote_literal(p.name)) END)
    FROM entity_links l JOIN entities e ON e.id = l.entity_id JOIN entities le ON le.id = l.linked_id
    LEFT JOIN person_relationship_types p ON p.id = l.person_relationship_type_id
    WHERE (e.kind = 'person' AND le.kind = 'person') <> (l.person_relationship_type_id IS NOT NULL)
       OR p.name <> l.relationship_type
    UNION ALL
    (SELECT 8, start, format('system_type_links: the type links form a cycle through type %s', start)
     FROM type_reach WHERE start = id ORDER BY start LIMIT 1)
    UNION ALL
    SELECT 9, NULL, format('data_table_links row (%s, %s): relationship_type is longer than 500 characters',
                           parent_id, child_id)
    FROM data_table_links WHERE length(relationship_type) > 500
    UNION ALL
    SELECT 10, id, format('%s row %s: %s is blank', section, id, field) FROM blank
    UNION ALL
    -- Times the API takes lie in the years 2 to 9998 (hatd/raw/schemas.py).
    SELECT 11, id, format('data_records row %s: last_updated %s is outside the years 2 to 9998', id, last_updated)
    FROM data_records WHERE last_updated NOT BETWEEN '0002-01-01 00:00+00' AND '9998-12-31 23:59:59.999999+00'
    UNION ALL
    SELECT 11, id, format('data_values row %s: last_updated %s is outside the years 2 to 9998', id, last_updated)
    FROM data_values WHERE last_updated NOT BETWEEN '0002-01-01 00:00+00' AND '9998-12-31 23:59:59.999999+00'
    UNION ALL
    SELECT 12, NULL, format('data_debits row %s: %s', d.key, CASE
        WHEN a.role NOT IN ('owner', 'platform', 'dataDebit')
            THEN format('its proposer %s is a %s account, which may not propose', d.proposer, a.role)
        WHEN d.price > 1e15 THEN format('price %s is over 1e15', d.price)
        ELSE format('start_date %s or end_date %s is outside the years 2 to 9998', d.start_date, d.end_date) END)
    FROM data_debits d JOIN accounts a ON a.user_id = d.proposer
    WHERE a.role NOT IN ('owner', 'platform', 'dataDebit') OR d.price > 1e15
       OR d.start_date < '0002-01-01 00:00+00' OR d.end_date > '9998-12-31 23:59:59.999999+00'
    UNION ALL
    -- The log says who did what: the proposer proposes, the owner enables and disables, the owner or
    -- the proposer reads, and only a read counts records.
    SELECT 13, g.id, format('data_debit_log row %s: %s', g.id, CASE
        WHEN (g.action = 'values') <> (g.records IS NOT NULL)
            THEN format('records must be given for a values read and only for one, not for %s', g.action)
        ELSE format('account %s may not %s data debit %s', g.account, g.action, g.debit_key) END)
    FROM data_debit_log g JOIN data_debits d ON d.key = g.debit_key JOIN accounts a ON a.user_id = g.account
    WHERE (g.action = 'values') <> (g.records IS NOT NULL)
       OR (g.action = 'propose' AND g.account <> d.proposer)
       OR (g.action IN ('enable', 'disable') AND a.role <> 'owner')
       OR (g.action = 'values' AND g.account <> d.proposer AND a.role <> 'owner')
)
SELECT problem FROM problems ORDER BY rule, key LIMIT 5;

-- name: next_ids
-- Returns (name, next_id) for every id sequence: the id the file says it gives next ($1: section
-- names, $2: next ids), or past the highest id imported if that is higher. Numeric, so that an id
-- at the bigint maximum is reported rather than overflowing.
SELECT s.name, greatest(s.floor, coalesce(n.next_id, 1)) AS next_id
FROM (VALUES
    ('system_types', (SELECT coalesce(max(id), 0)::numeric + 1 FROM system_types)),
    ('system_type_links', (SELECT coalesce(max(id), 0)::numeric + 1 FROM system_type_links)),
    ('system_units', (SELECT coalesce(max(id), 0)::numeric + 1 FROM system_units)),
    ('system_properties', (SELECT coalesce(max(id), 0)::numeric + 1 FROM system_properties)),
    ('person_relationship_types', (SELECT coalesce(max(id), 0)::numeric + 1 FROM person_relationship_types)),
    ('data_tables', (SELECT coalesce(max(id), 0)::numeric + 1 FROM data_tables)),
    ('data_fields', (SELECT coalesce(max(id), 0)::numeric + 1 FROM data_fields)),
    ('data_records', (SELECT coalesce(max(id), 0)::numeric + 1 FROM data_records)),
    ('data_values', (SELECT coalesce(max(id), 0)::numeric + 1 FROM data_values)),
    ('entities', (SELECT coalesce(max(id), 0)::numeric + 1 FROM entities)),
    ('entity_links', (SELECT coalesce(max(id), 0)::numeric + 1 FROM entity_links)),
    ('entity_types', (SELECT coalesce(max(id), 0)::numeric + 1 FROM entity_types)),
    ('entity_properties', (SELECT coalesce(max(id), 0)::numeric + 1 FROM entity_properties)),
    ('bundles_contextless', (SELECT coalesce(max(id), 0)::numeric + 1 FROM bundles_contextless)),
    ('bundle_tables', (SELECT coalesce(max(id), 0)::numeric + 1 FROM bundle_tables)),
    ('bundle_slices', (SELECT coalesce(max(id), 0)::numeric + 1 FROM bundle_slices)),
    ('bundle_slice_conditions', (SELECT coalesce(max(id), 0)::numeric + 1 FROM bundle_slice_conditions)),
    ('bundles_contextual', (SELECT coalesce(max(id), 0)::numeric + 1 FROM bundles_contextual)),
    ('bundle_entity_selections', (SELECT coalesce(max(id), 0)::numeric + 1 FROM bundle_entity_selections)),
    ('bundle_property_selections', (SELECT coalesce(max(id), 0)::numeric + 1 FROM bundle_property_selections)),
    ('data_debit_log', (SELECT coalesce(max(id), 0)::numeric + 1 FROM data_debit_log))
) AS s (name, floor)
LEFT JOIN unnest($1::text[], $2::numeric[]) AS n (name, next_id) USING (name);

-- name: set_sequences
-- Sets the id sequence of each table $1 to give next the id $2; returns nothing.
SELECT setval(pg_get_serial_sequence(s.name, 'id'), s.next_id, false)
FROM unnest($1::text[], $2::bigint[]) AS s (name, next_id);

-- name: export_accounts
-- Returns one JSON line (text) per account, by user_id.
SELECT row_to_json(r)::text
FROM (SELECT 'accounts'::text AS section,
             user_id, email, name, role, enabled, date_created, last_updated
      FROM accounts) AS r
ORDER BY r.user_id;

-- name: import_accounts
-- Inserts the accounts on JSON lines $1: the owner with password hash $2, the platform with $3, the
-- others with none ('!'); returns nothing.
INSERT INTO accounts (user_id, email, name, pass_hash, role, enabled, date_created, last_updated)
SELECT r.user_id, r.email, r.name, CASE r.role WHEN 'owner' THEN $2 WHEN 'platform' THEN $3 ELSE '!' END,
       r.role, r.enabled, r.date_created, r.last_updated
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::accounts, l.line::json) AS r;

-- name: export_system_types
-- Returns one JSON line (text) per data type, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'system_types'::text AS section,
             id, name, description, date_created, last_updated
      FROM system_types) AS r
ORDER BY r.id;

-- name: import_system_types
-- Inserts the data type rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO system_types (id, name, description, date_created, last_updated)
SELECT r.id, r.name, r.description, r.date_created, r.last_updated
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::system_types, l.line::json) AS r;

-- name: export_system_type_links
-- Returns one JSON line (text) per type link, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'system_type_links'::text AS section,
             id, type_id, linked_type_id, relationship_type, date_created
      FROM system_type_links) AS r
ORDER BY r.id;

-- name: import_system_type_links
-- Inserts the type link rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO system_type_links (id, type_id, linked_type_id, relationship_type, date_created)
SELECT r.id, r.type_id, r.linked_type_id, r.relationship_type, r.date_created
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::system_type_links, l.line::json) AS r;

-- name: export_system_units
-- Returns one JSON line (text) per unit of measurement, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'system_units'::text AS section,
             id, name, description, symbol, date_created, last_updated
      FROM system_units) AS r
ORDER BY r.id;

-- name: import_system_units
-- Inserts the unit of measurement rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO system_units (id, name, description, symbol, date_created, last_updated)
SELECT r.id, r.name, r.description, r.symbol, r.date_created, r.last_updated
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::system_units, l.line::json) AS r;

-- name: export_system_properties
-- Returns one JSON line (text) per property, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'system_properties'::text AS section,
             id, name, description, type_id, unit_id, date_created, last_updated
      FROM system_properties) AS r
ORDER BY r.id;

-- name: import_system_properties
-- Inserts the property rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO system_properties (id, name, description, type_id, unit_id, date_created, last_updated)
SELECT r.id, r.name, r.description, r.type_id, r.unit_id, r.date_created, r.last_updated
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::system_properties, l.line::json) AS r;

-- name: export_person_relationship_types
-- Returns one JSON line (text) per person relationship type, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'person_relationship_types'::text AS section,
             id, name, description
      FROM person_relationship_types) AS r
ORDER BY r.id;

-- name: import_person_relationship_types
-- Inserts the person relationship type rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO person_relationship_types (id, name, description)
SELECT r.id, r.name, r.description
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::person_relationship_types, l.line::json) AS r;

-- name: export_data_tables
-- Returns one JSON line (text) per raw table, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'data_tables'::text AS section,
             id, name, source, date_created, last_updated
      FROM data_tables) AS r
ORDER BY r.id;

-- name: import_data_tables
-- Inserts the raw table rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO data_tables (id, name, source, date_created, last_updated)
SELECT r.id, r.name, r.source, r.date_created, r.last_updated
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::data_tables, l.line::json) AS r;

-- name: export_data_table_links
-- Returns one JSON line (text) per subtable link, by parent_id and child_id.
SELECT row_to_json(r)::text
FROM (SELECT 'data_table_links'::text AS section,
             parent_id, child_id, relationship_type, date_created
      FROM data_table_links) AS r
ORDER BY r.parent_id, r.child_id;

-- name: import_data_table_links
-- Inserts the subtable link rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO data_table_links (parent_id, child_id, relationship_type, date_created)
SELECT r.parent_id, r.child_id, r.relationship_type, r.date_created
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::data_table_links, l.line::json) AS r;

-- name: export_data_fields
-- Returns one JSON line (text) per field, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'data_fields'::text AS section,
             id, table_id, name, date_created, last_updated
      FROM data_fields) AS r
ORDER BY r.id;

-- name: import_data_fields
-- Inserts the field rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO data_fields (id, table_id, name, date_created, last_updated)
SELECT r.id, r.table_id, r.name, r.date_created, r.last_updated
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::data_fields, l.line::json) AS r;

-- name: export_data_records
-- Returns one JSON line (text) per record, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'data_records'::text AS section,
             id, name, date_created, last_updated
      FROM data_records) AS r
ORDER BY r.id;

-- name: import_data_records
-- Inserts the record rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO data_records (id, name, date_created, last_updated)
SELECT r.id, r.name, r.date_created, r.last_updated
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::data_records, l.line::json) AS r;

-- name: export_data_values
-- Returns one JSON line (text) per value, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'data_values'::text AS section,
             id, value, field_id, record_id, date_created, last_updated
      FROM data_values) AS r
ORDER BY r.id;

-- name: import_data_values
-- Inserts the value rows on JSON lines $1 as they are, ids included. The import drops the table's
-- foreign keys (CHECKED_FOREIGN_KEYS in hatd/exports/repository.py) until every row is in, so this
-- checks them itself, for the whole batch at once (each field and record it names once, by key):
-- returns the first line (its place in $1, from 1) whose field or record does not exist, with the
-- constraint it breaks and PostgreSQL's own detail; no row when every line holds.
WITH r AS MATERIALIZED (
    SELECT l.n, r.id, r.value, r.field_id, r.record_id, r.date_created, r.last_updated
    FROM unnest($1::text[]) WITH ORDINALITY AS l (line, n), json_populate_record(NULL::data_values, l.line::json) AS r
), inserted AS (
    INSERT INTO data_values (id, value, field_id, record_id, date_created, last_updated)
    SELECT r.id, r.value, r.field_id, r.record_id, r.date_created, r.last_updated FROM r
), missing AS (
    SELECT 1 AS position, 'data_values_field_id_fkey' AS name, 'field_id' AS key, k.id, 'data_fields' AS parent
    FROM (SELECT DISTINCT r.field_id AS id FROM r) AS k
    WHERE NOT EXISTS (SELECT FROM data_fields AS f WHERE f.id = k.id)
    UNION ALL
    SELECT 2, 'data_values_record_id_fkey', 'record_id', k.id, 'data_records'
    FROM (SELECT DISTINCT r.record_id AS id FROM r) AS k
    WHERE NOT EXISTS (SELECT FROM data_records AS d WHERE d.id = k.id)
)
SELECT r.n, m.name AS constraint, format('Key (%s)=(%s) is not present in table "%s".', m.key, m.id, m.parent) AS detail
FROM missing AS m
JOIN r ON CASE m.position WHEN 1 THEN r.field_id ELSE r.record_id END = m.id
ORDER BY r.n, m.position
LIMIT 1;

-- name: export_entities
-- Returns one JSON line (text) per entity (all five kinds), by id.
SELECT row_to_json(r)::text
FROM (SELECT 'entities'::text AS section,
             id, kind, name, person_id, date_created, last_updated
      FROM entities) AS r
ORDER BY r.id;

-- name: import_entities
-- Inserts the entity (all five kinds) rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO entities (id, kind, name, person_id, date_created, last_updated)
SELECT r.id, r.kind, r.name, r.person_id, r.date_created, r.last_updated
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::entities, l.line::json) AS r;

-- name: export_entity_links
-- Returns one JSON line (text) per entity link, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'entity_links'::text AS section,
             id, entity_id, linked_id, relationship_type, person_relationship_type_id, date_created
      FROM entity_links) AS r
ORDER BY r.id;

-- name: import_entity_links
-- Inserts the entity link rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO entity_links (id, entity_id, linked_id, relationship_type, person_relationship_type_id, date_created)
SELECT r.id, r.entity_id, r.linked_id, r.relationship_type, r.person_relationship_type_id, r.date_created
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::entity_links, l.line::json) AS r;

-- name: export_entity_types
-- Returns one JSON line (text) per entity type link, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'entity_types'::text AS section,
             id, entity_id, type_id, relationship_type, date_created
      FROM entity_types) AS r
ORDER BY r.id;

-- name: import_entity_types
-- Inserts the entity type link rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO entity_types (id, entity_id, type_id, relationship_type, date_created)
SELECT r.id, r.entity_id, r.type_id, r.relationship_type, r.date_created
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::entity_types, l.line::json) AS r;

-- name: export_entity_properties
-- Returns one JSON line (text) per entity property link (static and dynamic), by id.
SELECT row_to_json(r)::text
FROM (SELECT 'entity_properties'::text AS section,
             id, entity_id, property_id, relationship_type, field_id, record_id, date_created
      FROM entity_properties) AS r
ORDER BY r.id;

-- name: import_entity_properties
-- Inserts the entity property link (static and dynamic) rows on JSON lines $1, ids included; returns nothing.
INSERT INTO entity_properties (id, entity_id, property_id, relationship_type, field_id, record_id, date_created)
SELECT r.id, r.entity_id, r.property_id, r.relationship_type, r.field_id, r.record_id, r.date_created
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::entity_properties, l.line::json) AS r;

-- name: export_bundles_contextless
-- Returns one JSON line (text) per contextless bundle, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'bundles_contextless'::text AS section,
             id, name, date_created, last_updated
      FROM bundles_contextless) AS r
ORDER BY r.id;

-- name: import_bundles_contextless
-- Inserts the contextless bundle rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO bundles_contextless (id, name, date_created, last_updated)
SELECT r.id, r.name, r.date_created, r.last_updated
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::bundles_contextless, l.line::json) AS r;

-- name: export_bundle_tables
-- Returns one JSON line (text) per bundle table, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'bundle_tables'::text AS section,
             id, bundle_id, name, table_id, position, tree, date_created
      FROM bundle_tables) AS r
ORDER BY r.id;

-- name: import_bundle_tables
-- Inserts the bundle table rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO bundle_tables (id, bundle_id, name, table_id, position, tree, date_created)
SELECT r.id, r.bundle_id, r.name, r.table_id, r.position, r.tree, r.date_created
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::bundle_tables, l.line::json) AS r;

-- name: export_bundle_slices
-- Returns one JSON line (text) per bundle slice, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'bundle_slices'::text AS section,
             id, bundle_table_id, table_id, position
      FROM bundle_slices) AS r
ORDER BY r.id;

-- name: import_bundle_slices
-- Inserts the bundle slice rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO bundle_slices (id, bundle_table_id, table_id, position)
SELECT r.id, r.bundle_table_id, r.table_id, r.position
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::bundle_slices, l.line::json) AS r;

-- name: export_bundle_slice_conditions
-- Returns one JSON line (text) per slice condition, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'bundle_slice_conditions'::text AS section,
             id, slice_id, field_id, operator, value, position
      FROM bundle_slice_conditions) AS r
ORDER BY r.id;

-- name: import_bundle_slice_conditions
-- Inserts the slice condition rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO bundle_slice_conditions (id, slice_id, field_id, operator, value, position)
SELECT r.id, r.slice_id, r.field_id, r.operator, r.value, r.position
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::bundle_slice_conditions, l.line::json) AS r;

-- name: export_bundles_contextual
-- Returns one JSON line (text) per contextual bundle, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'bundles_contextual'::text AS section,
             id, name, date_created, last_updated
      FROM bundles_contextual) AS r
ORDER BY r.id;

-- name: import_bundles_contextual
-- Inserts the contextual bundle rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO bundles_contextual (id, name, date_created, last_updated)
SELECT r.id, r.name, r.date_created, r.last_updated
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::bundles_contextual, l.line::json) AS r;

-- name: export_bundle_entity_selections
-- Returns one JSON line (text) per entity selection, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'bundle_entity_selections'::text AS section,
             id, bundle_id, entity_id, entity_name, entity_kind, date_created
      FROM bundle_entity_selections) AS r
ORDER BY r.id;

-- name: import_bundle_entity_selections
-- Inserts the entity selection rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO bundle_entity_selections (id, bundle_id, entity_id, entity_name, entity_kind, date_created)
SELECT r.id, r.bundle_id, r.entity_id, r.entity_name, r.entity_kind, r.date_created
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::bundle_entity_selections, l.line::json) AS r;

-- name: export_bundle_property_selections
-- Returns one JSON line (text) per property selection, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'bundle_property_selections'::text AS section,
             id, selection_id, relationship_kind, property_name, property_type, property_unit, date_created
      FROM bundle_property_selections) AS r
ORDER BY r.id;

-- name: import_bundle_property_selections
-- Inserts the property selection rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO bundle_property_selections (
    id, selection_id, relationship_kind, property_name, property_type, property_unit, date_created
)
SELECT r.id, r.selection_id, r.relationship_kind, r.property_name, r.property_type, r.property_unit, r.date_created
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::bundle_property_selections, l.line::json) AS r;

-- name: export_data_debits
-- Returns one JSON line (text) per data debit, by key.
SELECT row_to_json(r)::text
FROM (SELECT 'data_debits'::text AS section,
             key, name, start_date, end_date, rolling, sell, price, kind, bundle_contextless_id,
             bundle_contextual_id, enabled, proposer, date_created, last_updated
      FROM data_debits) AS r
ORDER BY r.key;

-- name: import_data_debits
-- Inserts the data debit rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO data_debits (
    key, name, start_date, end_date, rolling, sell, price, kind, bundle_contextless_id, bundle_contextual_id,
    enabled, proposer, date_created, last_updated
)
SELECT r.key, r.name, r.start_date, r.end_date, r.rolling, r.sell, r.price, r.kind, r.bundle_contextless_id,
       r.bundle_contextual_id, r.enabled, r.proposer, r.date_created, r.last_updated
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::data_debits, l.line::json) AS r;

-- name: export_data_debit_log
-- Returns one JSON line (text) per data debit log entry, by id.
SELECT row_to_json(r)::text
FROM (SELECT 'data_debit_log'::text AS section,
             id, debit_key, account, action, records, at
      FROM data_debit_log) AS r
ORDER BY r.id;

-- name: import_data_debit_log
-- Inserts the data debit log entry rows on JSON lines $1 as they are, ids included; returns nothing.
INSERT INTO data_debit_log (id, debit_key, account, action, records, at)
SELECT r.id, r.debit_key, r.account, r.action, r.records, r.at
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::data_debit_log, l.line::json) AS r;

-- name: export_bundle_datasets
-- Returns one JSON line (text) per dataset of a bundle in the original's later dialect, by bundle table.
SELECT row_to_json(r)::text
FROM (SELECT 'bundle_datasets'::text AS section,
             bundle_table_id, source, description, fields, field_ids, tables
      FROM bundle_datasets) AS r
ORDER BY r.bundle_table_id;

-- name: import_bundle_datasets
-- Inserts the dataset rows on JSON lines $1 as they are; returns nothing.
INSERT INTO bundle_datasets (bundle_table_id, source, description, fields, field_ids, tables)
SELECT r.bundle_table_id, r.source, r.description, r.fields, r.field_ids, r.tables
FROM unnest($1::text[]) AS l (line), json_populate_record(NULL::bundle_datasets, l.line::json) AS r;
