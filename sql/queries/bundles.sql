-- Contextless bundles (hatd/bundles/repository.py).

-- name: insert_bundle
-- Creates a bundle; returns its id.
INSERT INTO bundles_contextless (name) VALUES ($1) RETURNING id;

-- name: insert_bundle_table
-- Adds table $3, with the subtables it has now, to bundle $1 as $2 at position $4; returns the
-- bundle table's id.
WITH RECURSIVE tree (id) AS (
    SELECT $3::bigint
    UNION
    SELECT l.child_id FROM data_table_links l JOIN tree t ON l.parent_id = t.id
)
INSERT INTO bundle_tables (bundle_id, name, table_id, position, tree)
SELECT $1, $2, $3, $4, array_agg(id) FROM tree
RETURNING id;

-- name: insert_slice
-- Adds a slice over table $2 to bundle table $1 at position $3; returns its id.
INSERT INTO bundle_slices (bundle_table_id, table_id, position) VALUES ($1, $2, $3) RETURNING id;

-- name: insert_conditions
-- Adds conditions (fields $2, operators $3, values $4, in order) to slice $1; returns nothing.
INSERT INTO bundle_slice_conditions (slice_id, field_id, operator, value, position)
SELECT $1, c.field_id, c.operator, c.value, c.i
FROM unnest($2::bigint[], $3::text[], $4::text[]) WITH ORDINALITY AS c(field_id, operator, value, i);

-- name: fields_of_table
-- Returns those of fields $1 that belong to table $2.
SELECT coalesce(array_agg(id), '{}') FROM data_fields WHERE id = ANY ($1::bigint[]) AND table_id = $2;

-- name: bundle_json
-- Returns a bundle's structure (tables, slices, conditions) as JSON text.
SELECT bundle_contextless_json($1)::text;

-- name: bundle_record_page
-- Returns the (record, bundle table) pairs of a page of bundle $1: up to $4 + 1 (one more than the
-- page, to know whether more follow) over all its tables, newest record first, in the window
-- [$2, $3] on the record's lastUpdated, passing the slices (and, for a dataset, holding one of its
-- fields), after the cursor ($5 time, $6 record id, $7 table position) when given: rows
-- (bundle_table_id, position, id, last_updated). Each table of each bundle table gives at most
-- $4 + 1 records from its index, in order, so a page costs what it holds times the tables, not
-- what the tables hold (see table_record_page in raw.sql). A bundle table's cursor bound is
-- (time, record) <= the cursor's for tables before the cursor's position, < for the others:
-- ids are whole numbers, so "<= id" is "< id + 1".
SELECT c.bundle_table_id, c.position, c.id, c.last_updated
FROM (
    SELECT bt.id AS bundle_table_id, bt.position, tr.record_id AS id, tr.last_updated
    FROM bundle_tables bt
    LEFT JOIN bundle_datasets ds ON ds.bundle_table_id = bt.id
    -- A dataset's records are those of the tables that hold its fields; a bundle table's, its tree's.
    CROSS JOIN LATERAL unnest(CASE WHEN ds.field_ids IS NULL THEN bt.tree ELSE ARRAY(
        SELECT DISTINCT f.table_id FROM data_fields f WHERE f.id = ANY (ds.field_ids)) END) AS tree (table_id)
    CROSS JOIN LATERAL (
        SELECT tr.record_id, tr.last_updated
        FROM data_table_records tr
        WHERE tr.table_id = tree.table_id
          AND tr.last_updated >= coalesce($2::timestamptz, '-infinity')
          AND tr.last_updated <= coalesce($3::timestamptz, 'infinity')
          AND (tr.last_updated, tr.record_id)
              < (coalesce($5::timestamptz, 'infinity'),
                 coalesce($6::bigint, 0) + CASE WHEN bt.position < $7::integer THEN 1 ELSE 0 END)
          -- A dataset holds the records with values in the fields it names.
          AND (ds.field_ids IS NULL OR EXISTS (
              SELECT 1 FROM data_values v
              -- OFFSET 0: a probe per record, never a hashed scan of every value.
              WHERE v.record_id = tr.record_id AND v.field_id = ANY (ds.field_ids) OFFSET 0))
          AND (NOT EXISTS (SELECT 1 FROM bundle_slices s WHERE s.bundle_table_id = bt.id)
               OR EXISTS (
                   SELECT 1 FROM bundle_slices s
                   WHERE s.bundle_table_id = bt.id
                     AND NOT EXISTS (
                         SELECT 1 FROM bundle_slice_conditions c
                         WHERE c.slice_id = s.id
                           AND NOT EXISTS (
                               SELECT 1 FROM data_values v
                               WHERE v.record_id = tr.record_id AND v.field_id = c.field_id
                                 AND bundle_condition_holds(v.value, c.operator, c.value)))))
        ORDER BY tr.last_updated DESC, tr.record_id DESC
        LIMIT $4 + 1
    ) AS tr
    WHERE bt.bundle_id = $1
) AS c
GROUP BY c.bundle_table_id, c.position, c.id, c.last_updated
ORDER BY c.last_updated DESC, c.id DESC, c.position DESC
LIMIT $4 + 1;

-- name: bundle_groups
-- Returns bundle $1's tables in order, with what each shares: rows (position, table_id, within
-- (the tables of the tree it holds), fields (a dataset's fields; null: all)).
SELECT bt.position, bt.table_id, coalesce(ds.tables, bt.tree) AS within, ds.field_ids AS fields
FROM bundle_tables bt
LEFT JOIN bundle_datasets ds ON ds.bundle_table_id = bt.id
WHERE bt.bundle_id = $1
ORDER BY bt.position;

-- name: bundle_values_envelope
-- Returns bundle $1's values read without its records, as JSON text (null if there is no such
-- bundle): {"id", "name", "dateCreated", "lastUpdated", "dataGroups": [{bundle table name: {"id",
-- "name", "table", "data": "<$2>:<position>"}}]}, where the string "<$2>:<position>" marks where
-- that bundle table's records go (hatd/jsontext.py). A bundle made of datasets (the original's
-- later dialect) answers in that dialect: "dataGroups": {source: [{"name", "table" (its
-- structure), "data"}]}.
WITH groups AS (
    SELECT bt.position, bt.name, bt.table_id, ds.source AS dataset_source, ds.tables AS dataset_tables,
           ds.field_ids AS dataset_fields, to_json($2::text || ':' || bt.position) AS data,
           json_build_object(
               'id', bt.id, 'name', bt.name,
               'table', json_build_object('id', t.id, 'name', t.name, 'source', t.source),
               'data', to_json($2::text || ':' || bt.position)) AS grp
    FROM bundle_tables bt
    JOIN data_tables t ON t.id = bt.table_id
    LEFT JOIN bundle_datasets ds ON ds.bundle_table_id = bt.id
    WHERE bt.bundle_id = $1
)
SELECT json_build_object(
           'id', b.id, 'name', b.name,
           'dateCreated', hat_time(b.date_created), 'lastUpdated', hat_time(b.last_updated),
           'dataGroups', CASE
               WHEN EXISTS (SELECT 1 FROM groups WHERE dataset_source IS NOT NULL) THEN (
                   SELECT json_object_agg(s.dataset_source, s.datasets ORDER BY s.first)
                   FROM (SELECT dataset_source, min(position) AS first,
                                json_agg(json_build_object(
                                    'name', name,
                                    'table', data_table_json_within(table_id, dataset_tables, dataset_fields),
                                    'data', data) ORDER BY position) AS datasets
                         FROM groups GROUP BY dataset_source) AS s)
               ELSE coalesce((SELECT json_agg(json_build_object(name, grp) ORDER BY position) FROM groups),
                             '[]'::json)
           END)::text
FROM bundles_contextless b
WHERE b.id = $1;

-- name: bundles_using_tables
-- Returns the names of the bundles that hold any of tables $1 (as a bundle table or a slice's table).
SELECT coalesce(array_agg(DISTINCT b.name ORDER BY b.name), '{}')
FROM bundles_contextless b
JOIN bundle_tables bt ON bt.bundle_id = b.id
LEFT JOIN bundle_slices s ON s.bundle_table_id = bt.id
WHERE bt.table_id = ANY ($1::bigint[]) OR s.table_id = ANY ($1::bigint[]);

-- name: bundles_using_fields
-- Returns the names of the bundles whose slice conditions use any of fields $1.
SELECT coalesce(array_agg(DISTINCT b.name ORDER BY b.name), '{}')
FROM bundles_contextless b
JOIN bundle_tables bt ON bt.bundle_id = b.id
JOIN bundle_slices s ON s.bundle_table_id = bt.id
JOIN bundle_slice_conditions c ON c.slice_id = s.id
WHERE c.field_id = ANY ($1::bigint[]);

-- name: insert_contextual_bundle
-- Creates a contextual bundle; returns its id.
INSERT INTO bundles_contextual (name) VALUES ($1) RETURNING id;

-- name: insert_entity_selection
-- Adds an entity selector (id $2, name $3, kind $4; nulls: any) to contextual bundle $1; returns its id.
INSERT INTO bundle_entity_selections (bundle_id, entity_id, entity_name, entity_kind) VALUES ($1, $2, $3, $4)
RETURNING id;

-- name: insert_property_selection
-- Adds a property selector to entity selection $1; returns its id.
INSERT INTO bundle_property_selections (selection_id, relationship_kind, property_name, property_type, property_unit)
VALUES ($1, $2, $3, $4, $5) RETURNING id;

-- name: dataset_fields
-- Resolves, in one statement, the fields a dataset names under table $1: $2 is a JSON array of
-- {"path": [subtable names, from $1 down], "name": field name}. Returns `field_ids`, the fields
-- found (each once, by id), and `tables`, table $1 and the tables on the way to them.
WITH RECURSIVE leaf AS (
    SELECT l.ord, l.item -> 'path' AS path, l.item ->> 'name' AS name, jsonb_array_length(l.item -> 'path') AS depth
    FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS l (item, ord)
),
walk (ord, step, table_id) AS (
    SELECT ord, 0, $1::bigint FROM leaf
    UNION ALL
    SELECT w.ord, w.step + 1, below.child_id
    FROM walk w
    JOIN leaf ON leaf.ord = w.ord AND w.step < leaf.depth
    CROSS JOIN LATERAL (
        SELECT l.child_id FROM data_table_links l JOIN data_tables t ON t.id = l.child_id
        WHERE l.parent_id = w.table_id AND t.name = leaf.path ->> w.step
        ORDER BY l.child_id
        LIMIT 1
    ) AS below
),
found AS (
    SELECT DISTINCT f.id, leaf.ord
    FROM leaf
    JOIN walk w ON w.ord = leaf.ord AND w.step = leaf.depth
    JOIN data_fields f ON f.table_id = w.table_id AND f.name = leaf.name
)
SELECT coalesce((SELECT array_agg(DISTINCT id ORDER BY id) FROM found), '{}') AS field_ids,
       (SELECT array_agg(x ORDER BY x = $1 DESC, x)
        FROM (SELECT $1::bigint AS x
              UNION
              SELECT w.table_id FROM walk w WHERE w.ord IN (SELECT ord FROM found)) AS t) AS tables;

-- name: insert_dataset
-- Makes bundle table $1 a dataset of source $2 with description $3, the fields as given $4, the
-- field ids they name $5 and the tables on the way to them $6; returns nothing.
INSERT INTO bundle_datasets (bundle_table_id, source, description, fields, field_ids, tables)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: entity_selection_json
-- Returns one entity selection with its property selections as JSON text.
SELECT bundle_entity_selection_json($1)::text;

-- name: property_selection_json
-- Returns one property selection as JSON text.
SELECT bundle_property_selection_json($1)::text;

-- name: entity_selection_bundle
-- Returns the contextual bundle entity selection $2 belongs to, if it belongs to bundle $1.
SELECT bundle_id FROM bundle_entity_selections WHERE id = $2 AND bundle_id = $1;

-- name: entity_exists
-- Returns true if the entity exists.
SELECT exists(SELECT 1 FROM entities WHERE id = $1);

-- name: contextual_bundle_json
-- Returns a contextual bundle's structure (entity and property selectors) as JSON text.
SELECT bundle_contextual_json($1)::text;

-- name: contextual_bundle_exists
-- Returns true if contextual bundle $1 exists.
SELECT exists(SELECT 1 FROM bundles_contextual WHERE id = $1);

-- name: contextual_entity_page
-- Returns the ids of up to $3 entities contextual bundle $1 selects, in id order, after entity $2
-- (null: from the first).
SELECT DISTINCT e.id
FROM bundle_entity_selections s
JOIN entities e ON (s.entity_id IS NULL OR e.id = s.entity_id)
               AND (s.entity_name IS NULL OR e.name = s.entity_name)
               AND (s.entity_kind IS NULL OR e.kind = s.entity_kind)
WHERE s.bundle_id = $1 AND e.id > coalesce($2::bigint, 0)
ORDER BY e.id
LIMIT $3;

-- name: contextual_values_json
-- Returns entities $2 (in id order) as contextual bundle $1 gives them, each with the properties
-- its selectors admit and their values, as the items of a JSON array joined by ", " (text; null
-- when none): {"kind", <kind>: {...}}. Links to other entities are not followed.
WITH chosen AS (
    SELECT e.id AS entity_id, s.id AS selection_id
    FROM bundle_entity_selections s
    JOIN entities e ON (s.entity_id IS NULL OR e.id = s.entity_id)
                   AND (s.entity_name IS NULL OR e.name = s.entity_name)
                   AND (s.entity_kind IS NULL OR e.kind = s.entity_kind)
    WHERE s.bundle_id = $1 AND e.id = ANY ($2::bigint[])
),
admitted AS (
    SELECT DISTINCT ep.id, ep.entity_id, ep.record_id IS NOT NULL AS static
    FROM chosen c
    JOIN entity_properties ep ON ep.entity_id = c.entity_id
    JOIN system_properties p ON p.id = ep.property_id
    JOIN system_types t ON t.id = p.type_id
    JOIN system_units u ON u.id = p.unit_id
    WHERE NOT EXISTS (SELECT 1 FROM bundle_property_selections ps WHERE ps.selection_id = c.selection_id)
       OR EXISTS (
           SELECT 1 FROM bundle_property_selections ps
           WHERE ps.selection_id = c.selection_id
             AND (ps.relationship_kind IS NULL
                  OR ps.relationship_kind = CASE WHEN ep.record_id IS NULL THEN 'dynamic' ELSE 'static' END)
             AND (ps.property_name IS NULL OR ps.property_name = p.name)
             AND (ps.property_type IS NULL OR ps.property_type = t.name)
             AND (ps.property_unit IS NULL OR ps.property_unit = u.name))
),
grouped AS (
    SELECT entity_id, static, json_agg(entity_property_json(id) ORDER BY id) AS items
    FROM admitted GROUP BY entity_id, static
),
selected AS (
    SELECT e.*,
           coalesce((SELECT items FROM grouped g WHERE g.entity_id = e.id AND g.static), '[]'::json) AS static_items,
           coalesce((SELECT items FROM grouped g WHERE g.entity_id = e.id AND NOT g.static), '[]'::json) AS dynamic_items
    FROM entities e WHERE e.id IN (SELECT entity_id FROM chosen)
)
SELECT string_agg(json_build_object(
           'kind', s.kind,
           s.kind, CASE WHEN s.kind = 'person'
               THEN json_build_object('id', s.id, 'name', s.name, 'personId', s.person_id,
                                      'staticProperties', s.static_items, 'dynamicProperties', s.dynamic_items)
               ELSE json_build_object('id', s.id, 'name', s.name,
                                      'staticProperties', s.static_items, 'dynamicProperties', s.dynamic_items)
               END)::text,
       ', ' ORDER BY s.id)
FROM selected s;

-- name: bundle_listing
-- Returns every bundle, contextless then contextual, by id, as a JSON array (text) of {"id",
-- "name", "kind", "dateCreated", "lastUpdated", "holds"}: holds is the number of tables (a
-- contextless bundle) or entity selections (a contextual one).
SELECT coalesce(json_agg(b ORDER BY b.kind, b.id), '[]')::text
FROM (
    SELECT c.id, c.name, 'contextless' AS kind, hat_time(c.date_created) AS "dateCreated",
           hat_time(c.last_updated) AS "lastUpdated",
           (SELECT count(*) FROM bundle_tables bt WHERE bt.bundle_id = c.id) AS holds
    FROM bundles_contextless c
    UNION ALL
    SELECT x.id, x.name, 'contextual', hat_time(x.date_created), hat_time(x.last_updated),
           (SELECT count(*) FROM bundle_entity_selections s WHERE s.bundle_id = x.id)
    FROM bundles_contextual x
) AS b;
