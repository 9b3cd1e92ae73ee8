-- What token checks keep in memory, and hearing of its changes (hatd/callers.py).

-- name: announce
-- Sends $1 on the channel hatd_callers when the transaction commits; returns nothing.
SELECT pg_notify('hatd_callers', $1);
