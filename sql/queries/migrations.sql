-- The migration runner's own bookkeeping (hatd/db.py).

-- name: create_migrations_table
-- Creates the table of applied migrations if it is not there yet; returns nothing.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: applied_migrations
-- Returns every applied migration, oldest first.
SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version;

-- name: record_migration
-- Records one applied migration; returns nothing.
INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3);

-- name: lock_migrations
-- Waits until no other process is migrating this database; returns nothing.
SELECT pg_advisory_lock($1);

-- name: unlock_migrations
-- Lets the next process migrate; returns nothing.
SELECT pg_advisory_unlock($1);

-- name: health
-- Returns the newest applied migration: proves the database answers and is migrated.
SELECT max(version) FROM schema_migrations;

-- name: values_stored_estimate
-- Returns PostgreSQL's estimate of the number of raw values (cheap, unlike count(*)).
SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'data_values'::regclass;
