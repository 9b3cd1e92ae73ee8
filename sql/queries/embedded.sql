-- The embedded server's housekeeping (hatd/cli.py).

-- name: database_exists
-- Returns true if a database of that name exists on the server.
SELECT exists(SELECT 1 FROM pg_database WHERE datname = $1);

-- name: role_exists
-- Returns true if a role of that name exists on the server.
SELECT exists(SELECT 1 FROM pg_roles WHERE rolname = $1);
