-- A PostgreSQL server shared by many HATs: its roles and databases (hatd/provision.py).

-- name: database_exists
-- Returns true if a database of that name exists on the server.
SELECT exists(SELECT 1 FROM pg_database WHERE datname = $1);

-- name: role_exists
-- Returns true if a role of that name exists on the server.
SELECT exists(SELECT 1 FROM pg_roles WHERE rolname = $1);

-- name: current_role_powers
-- Returns one row about the connected role: its name, superuser, createrole, createdb.
SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user;

-- name: hat_parts
-- Returns one row about the name $1: whether a role has it (role_exists), whether that role may log
-- in (can_login), its comment (role_comment), and the owner of the database $1 (null when none).
SELECT r.oid IS NOT NULL AS role_exists,
       coalesce(r.rolcanlogin, false) AS can_login,
       shobj_description(r.oid, 'pg_authid') AS role_comment,
       (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1) AS database_owner
FROM (VALUES ($1::text)) AS wanted (name)
LEFT JOIN pg_roles AS r ON r.rolname = wanted.name;

-- name: lock_provisioning
-- Waits until no other process is provisioning the HAT $2 (held until the connection closes).
SELECT pg_advisory_lock($1, hashtext($2));

-- name: template0_is_utf8
-- Returns true if template0, which new HATs' databases copy, is encoded in UTF8.
SELECT pg_encoding_to_char(encoding) = 'UTF8' FROM pg_database WHERE datname = 'template0';

-- name: public_may_connect
-- Returns true if every role (PUBLIC) may connect to the database $1.
SELECT has_database_privilege('public', $1, 'CONNECT');

-- name: hats_at_address
-- Returns the names of the databases other than $2 whose comment is $1 (the one naming a HAT's address).
SELECT datname FROM pg_database
WHERE shobj_description(oid, 'pg_database') = $1 AND datname <> $2
ORDER BY datname;

-- name: database_comment
-- Returns the comment of the database $1 (null when it has none, or there is no such database).
SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1;
