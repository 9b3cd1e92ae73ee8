-- What token checks keep in memory, and hearing of its changes (hatd/callers.py).

-- name: announce
-- Sends $1 on the channel hatd_callers when the transaction commits; returns nothing.
SELECT pg_notify('hatd_callers', $1);

-- name: listeners
-- Returns how many sessions of this database carry application_name $1 (the listening
-- connections of the hatd processes serving it).
SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1;
