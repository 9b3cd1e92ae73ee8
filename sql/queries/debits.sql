-- Data debits and their log (hatd/debits/repository.py).

-- name: insert_debit
-- Proposes a debit (disabled) over contextless bundle $8 or contextual bundle $10; returns its key.
INSERT INTO data_debits
    (name, start_date, end_date, rolling, sell, price, kind, bundle_contextless_id, proposer, bundle_contextual_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING key;

-- name: log
-- Records an operation on a debit; returns nothing.
INSERT INTO data_debit_log (debit_key, account, action, records) VALUES ($1, $2, $3, $4);

-- name: debit
-- Returns a debit's state: who proposed it, whether it is enabled, its window and bundle.
SELECT key, proposer, enabled, start_date, end_date, kind, bundle_contextless_id, bundle_contextual_id
FROM data_debits WHERE key = $1;

-- name: debit_for_read
-- Returns a debit's state as debit does, locking it so that a disable waits for this read to end
-- (and a read after the disable sees it).
SELECT key, proposer, enabled, start_date, end_date, kind, bundle_contextless_id, bundle_contextual_id
FROM data_debits WHERE key = $1 FOR SHARE;

-- name: debit_summary_json
-- Returns a debit with only its bundle's id and name (what an account other than the owner sees).
SELECT json_object_concat(data_debit_json(d), json_build_object(
           CASE WHEN d.kind = 'contextless' THEN 'bundleContextless' ELSE 'bundleContextual' END,
           json_build_object('id', coalesce(b.id, c.id), 'name', coalesce(b.name, c.name))))::text
FROM data_debits d
LEFT JOIN bundles_contextless b ON b.id = d.bundle_contextless_id
LEFT JOIN bundles_contextual c ON c.id = d.bundle_contextual_id
WHERE d.key = $1;

-- name: debit_json
-- Returns a debit with its bundle's structure as JSON text.
SELECT json_object_concat(data_debit_json(d), CASE WHEN d.kind = 'contextless'
           THEN json_build_object('bundleContextless', bundle_contextless_json(d.bundle_contextless_id))
           ELSE json_build_object('bundleContextual', bundle_contextual_json(d.bundle_contextual_id)) END)::text
FROM data_debits d WHERE d.key = $1;

-- name: debits_json
-- Returns every debit (proposed by account $1; null: by anyone) with its bundle's name and id,
-- newest first, as a JSON array (text).
SELECT coalesce(json_agg(
           json_object_concat(data_debit_json(d), json_build_object(
               'proposer', d.proposer,
               CASE WHEN d.kind = 'contextless' THEN 'bundleContextless' ELSE 'bundleContextual' END,
               json_build_object('id', coalesce(b.id, c.id), 'name', coalesce(b.name, c.name))))
           ORDER BY d.date_created DESC, d.key), '[]')::text
FROM data_debits d
LEFT JOIN bundles_contextless b ON b.id = d.bundle_contextless_id
LEFT JOIN bundles_contextual c ON c.id = d.bundle_contextual_id
WHERE $1::uuid IS NULL OR d.proposer = $1;

-- name: set_enabled
-- Enables or disables a debit; returns its key (null if there is none).
UPDATE data_debits SET enabled = $2, last_updated = now() WHERE key = $1 RETURNING key;

-- name: log_json
-- Returns a debit's log, oldest first, as a JSON array (text).
SELECT coalesce(json_agg(json_build_object(
           'id', l.id, 'action', l.action, 'account', l.account, 'records', l.records, 'at', hat_time(l.at))
       ORDER BY l.id), '[]')::text
FROM data_debit_log l WHERE l.debit_key = $1;

-- name: debit_fields_json
-- Returns a debit's own fields (no bundle) as JSON text.
SELECT data_debit_json(d)::text FROM data_debits d WHERE d.key = $1;

-- name: owner_debits_json
-- Returns every debit (or only debit $1) with its proposer, bundle's id and name, and its state
-- for the owner: waiting (never enabled), disabled, or, enabled, not started, active or ended by
-- its window (windowEnded: whatever its state); the waiting ones first, then newest first, as a
-- JSON array (text).
SELECT coalesce(json_agg(item ORDER BY state = 'waiting' DESC, date_created DESC, key), '[]')::text
FROM (
    SELECT d.key, d.date_created, s.state,
           json_object_concat(data_debit_json(d), json_build_object(
               'proposer', d.proposer, 'state', s.state, 'windowEnded', now() >= d.end_date,
               CASE WHEN d.kind = 'contextless' THEN 'bundleContextless' ELSE 'bundleContextual' END,
               json_build_object('id', coalesce(b.id, c.id), 'name', coalesce(b.name, c.name)))) AS item
    FROM data_debits d
    LEFT JOIN bundles_contextless b ON b.id = d.bundle_contextless_id
    LEFT JOIN bundles_contextual c ON c.id = d.bundle_contextual_id
    CROSS JOIN LATERAL (SELECT CASE
        WHEN NOT d.enabled AND NOT EXISTS (
            SELECT 1 FROM data_debit_log l WHERE l.debit_key = d.key AND l.action = 'enable') THEN 'waiting'
        WHEN NOT d.enabled THEN 'disabled'
        WHEN now() <= d.start_date THEN 'not started'
        WHEN now() >= d.end_date THEN 'ended'
        ELSE 'active' END AS state) s
    WHERE $1::uuid IS NULL OR d.key = $1
) items;
