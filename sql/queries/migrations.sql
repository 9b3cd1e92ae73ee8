-- hatd/db.py's own queries: the migration runner's bookkeeping, health, and the snapshots of reads.

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

-- name: create_functions_table
-- Creates the table of applied function files (sql/functions) if it is not there yet; returns nothing.
CREATE TABLE IF NOT EXISTS schema_functions (
    name       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: applied_functions
-- Returns each applied function file with the checksum it had.
SELECT name, checksum FROM schema_functions;

-- name: record_functions
-- Records that function file $1 with checksum $2 is applied; returns nothing.
INSERT INTO schema_functions (name, checksum) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum, applied_at = now();

-- name: defer_function_checks
-- Lets a function be made before the functions it calls (in this transaction); returns nothing.
SET LOCAL check_function_bodies = off;

-- name: limit_idle_snapshot
-- Ends this transaction if it sits idle for 5 minutes (a streamed read's snapshot); returns nothing.
SET LOCAL idle_in_transaction_session_timeout = '5min';
