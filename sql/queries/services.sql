-- Services the owner approved for Login with HAT (hatd/services/repository.py).

-- name: insert_approval
-- Approves the service at origin $2 under name $1; returns its id.
INSERT INTO approved_services (name, origin) VALUES ($1, $2) RETURNING id;

-- name: approval_by_origin
-- Returns the approval of origin $1 (id, name, origin), if there is one.
SELECT id, name, origin, date_created FROM approved_services WHERE origin = $1;

-- name: approval_exists
-- Returns true if approval $1 still stands.
SELECT exists(SELECT 1 FROM approved_services WHERE id = $1);

-- name: list_approvals
-- Returns every approval, oldest first.
SELECT id, name, origin, date_created FROM approved_services ORDER BY date_created, id;

-- name: delete_approval
-- Revokes approval $1; returns its origin (null if there was none).
DELETE FROM approved_services WHERE id = $1 RETURNING origin;

-- name: record_grant
-- Notes that the service approved as $1 (its claim) enabled data debit $2; returns nothing.
INSERT INTO approval_grants (claim, debit_key) VALUES ($1, $2) ON CONFLICT DO NOTHING;

-- name: take_grants
-- Forgets the grants made under claims $1; returns the keys of the data debits they named.
WITH gone AS (
    DELETE FROM approval_grants WHERE claim = ANY ($1::text[]) RETURNING debit_key
)
SELECT coalesce(array_agg(DISTINCT debit_key), '{}') FROM gone;

-- name: stale_preset_claims
-- Returns the preset claims that grants name but the settings ($1: the current preset claims) no
-- longer hold.
SELECT coalesce(array_agg(DISTINCT claim), '{}') FROM approval_grants
WHERE claim LIKE 'preset:%' AND NOT claim = ANY ($1::text[]);
