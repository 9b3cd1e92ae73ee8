-- What hatd's backups ask the embedded server (hatd/backup), as its superuser.

-- name: system_identifier
-- Returns the cluster's system identifier (text): a backup belongs to one cluster.
SELECT system_identifier::text FROM pg_control_system();

-- name: archiver
-- Returns one row: how often archive_command failed, on which WAL file and when last, and the last
-- file archived and when.
SELECT failed_count, last_failed_wal, last_failed_time, last_archived_wal, last_archived_time FROM pg_stat_archiver;

-- name: switch_wal
-- Closes the current WAL file so that it is archived; returns its name (text).
SELECT pg_walfile_name(pg_switch_wal());

-- name: in_recovery
-- Returns whether the server is still replaying WAL (a restore under way).
SELECT pg_is_in_recovery();

-- name: archiving
-- Returns one row: the running server's archive_mode and archive_command (an adopted server started
-- by an older hatd may have neither).
SELECT current_setting('archive_mode') AS archive_mode, current_setting('archive_command') AS archive_command;

-- name: replayed_until
-- Returns the commit time of the last transaction a restore replayed (timestamptz; NULL: none),
-- still known after the server promoted itself.
SELECT pg_last_xact_replay_timestamp();
