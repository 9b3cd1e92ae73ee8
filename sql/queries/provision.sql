-- A PostgreSQL server shared by many HATs: its roles and databases (hatd/provision.py).

-- name: database_exists
-- Returns true if a database of that name exists on the server.
SELECT exists(SELECT 1 FROM pg_database WHERE datname = $1);

-- name: role_exists
-- Returns true if a role of that name exists on the server.
SELECT exists(SELECT 1 FROM pg_roles WHERE rolname = $1);

-- name: database_owner
-- Returns the name of the role owning database $1, or null when there is no such database.
SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1;

-- name: current_role_powers
-- Returns one row about the connected role: its name, superuser, createrole, createdb.
SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user;
