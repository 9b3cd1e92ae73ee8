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
