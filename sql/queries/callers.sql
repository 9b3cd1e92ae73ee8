-- What token checks keep in memory, and hearing of its changes (hatd/callers.py).

-- name: announce
-- Sends $1 on the channel hatd_callers when the transaction commits; returns nothing.
SELECT pg_notify('hatd_callers', $1);

-- name: listeners
-- Returns the server process ids of the sessions of this database whose application_name is $1
-- (the listening connections of the hatd processes serving it).
SELECT coalesce(array_agg(pid), ARRAY[]::int[]) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = $1;

-- name: keepalive
-- Returns nothing, reading nothing: one round trip on the listening connection, renewing its lease.
SELECT;
