"""Many HATs on one PostgreSQL server: each HAT gets a role of its own (LOGIN and nothing more)
owning a database of its own that no other role may connect to.

This module is the one place where hatd builds DDL: role and database names cannot be query
parameters, so they are checked against HAT_NAME first and only then quoted into statements.
Passwords never travel in clear text: the server gets a SCRAM-SHA-256 verifier computed here, so a
server that logs DDL (log_statement = 'ddl') logs no usable password."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import asyncpg

from hatd import db
from hatd.settings import HAT_NAME

Q = db.queries("provision")

# Names PostgreSQL reserves for roles or databases of its own, or that would read as keywords.
RESERVED_NAMES = frozenset(
    {"postgres", "template0", "template1", "public", "none", "current_role", "current_user", "session_user", "all"}
)
SCRAM_ITERATIONS = 4096
# A password the server gets only as a SCRAM verifier; PostgreSQL would SASLprep anything beyond
# printable ASCII first, so such passwords are refused rather than silently verified differently.
ROLE_PASSWORD = re.compile(r"[\x21-\x7e]{16,200}")


class ProvisionError(RuntimeError):
    """A HAT cannot be provisioned (or served) as asked; the message says why and what to do."""


@dataclass(frozen=True)
class ServerPowers:
    role: str
    superuser: bool
    createrole: bool
    createdb: bool


def check_name(name: str) -> str:
    """The name of a HAT (its role and its database), or ProvisionError saying what is wrong with it."""
    if not HAT_NAME.fullmatch(name):
        raise ProvisionError(
            f"{name!r} is not a valid HAT name: use 1 to 32 characters, lowercase letters, digits and "
            "underscores, starting with a letter"
        )
    if name in RESERVED_NAMES or name.startswith("pg_"):
        raise ProvisionError(f"{name!r} is reserved by PostgreSQL: choose another HAT name")
    return name


def check_role_password(password: str) -> str:
    if not ROLE_PASSWORD.fullmatch(password):
        raise ProvisionError("the role password must be 16 to 200 printable ASCII characters, without spaces")
    return password


def new_role_password() -> str:
    """A strong password for a HAT's role (256 bits, URL-safe: it goes into a DSN unescaped)."""
    return secrets.token_urlsafe(32)


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 secret PostgreSQL stores for `password` (RFC 5802, as pg_authid holds it)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def hat_dsn(admin_dsn: str, name: str, password: str) -> str:
    """The admin DSN turned into the HAT's own: same server and options, the HAT's role and database."""
    parts = urlsplit(admin_dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ProvisionError("HATD_DATABASE_URL must be a postgresql:// URL")
    hosts = parts.netloc.rpartition("@")[2]
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key not in ("user", "password", "dbname", "database")
    ]
    netloc = f"{quote(name, safe='')}:{quote(password, safe='')}@{hosts}"
    return urlunsplit((parts.scheme, netloc, f"/{name}", urlencode(query, safe="/"), ""))


async def server_powers(conn: asyncpg.Connection) -> ServerPowers:
    row = await conn.fetchrow(Q.current_role_powers)
    assert row is not None
    return ServerPowers(row["rolname"], row["rolsuper"], row["rolcreaterole"], row["rolcreatedb"])


async def hat_exists(admin_dsn: str, name: str) -> bool:
    """Whether the server holds the HAT `name`: a database of that name owned by the role of that name."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        owner: str | None = await conn.fetchval(Q.database_owner, check_name(name))
        return owner == name
    finally:
        await conn.close()


async def ensure_database(admin_dsn: str, name: str, owner: str) -> None:
    """The role and its database, made if missing; safe when several processes start at once.
    (The embedded server's own HAT: its role has no password, the server admits only its socket.)"""
    assert HAT_NAME.fullmatch(name) and HAT_NAME.fullmatch(owner)
    conn = await asyncpg.connect(admin_dsn)
    try:
        # A concurrent start may make either one between the check and the CREATE: that is fine.
        if not await conn.fetchval(Q.role_exists, owner):
            with suppress(asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
                await conn.execute(f'CREATE ROLE "{owner}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE')
        if not await conn.fetchval(Q.database_exists, name):
            try:
                await conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                return
            # Only by the process that made it: two REVOKEs at once on one database can collide.
            await conn.execute(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{name}" FROM PUBLIC')
    finally:
        await conn.close()


async def create_role_and_database(admin_dsn: str, name: str, password: str) -> None:
    """The HAT's role (LOGIN, no other power, `password`) and its database, owned by it, that only
    that role (and superusers) may connect to. Refuses, changing nothing, when either name is taken
    or the admin DSN's role lacks the powers; undoes its own work when a later step fails."""
    check_name(name)
    check_role_password(password)
    conn = await asyncpg.connect(admin_dsn)
    try:
        powers = await server_powers(conn)
        if not (powers.superuser or (powers.createrole and powers.createdb)):
            raise ProvisionError(
                f"the role {powers.role!r} of the admin DSN cannot create roles and databases: provisioning "
                "needs a superuser or a role with CREATEROLE and CREATEDB (set HATD_DATABASE_URL to such a "
                "role's DSN). Nothing was changed."
            )
        taken = [
            kind
            for kind, query in (("a role", Q.role_exists), ("a database", Q.database_exists))
            if await conn.fetchval(query, name)
        ]
        if taken:
            raise ProvisionError(
                f"{' and '.join(taken)} named {name!r} already exist{'s' if len(taken) == 1 else ''} on the "
                "server: choose another name for a new HAT. Nothing was changed."
            )
        try:
            await conn.execute(
                f'CREATE ROLE "{name}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS '
                f"PASSWORD '{scram_verifier(password)}'"
            )
        except (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
            raise ProvisionError(
                f"a role named {name!r} was created by someone else meanwhile. Nothing was changed."
            ) from None
        try:
            if not powers.superuser:
                # CREATE DATABASE ... OWNER needs the creator to be a member of the owner role.
                await conn.execute(f'GRANT "{name}" TO CURRENT_USER')
            await conn.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
            # The owner keeps its implicit rights; every other role loses the default CONNECT.
            await conn.execute(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{name}" FROM PUBLIC')
        except BaseException:
            await _drop(conn, name)
            raise
    finally:
        await conn.close()


async def drop_role_and_database(admin_dsn: str, name: str) -> None:
    """Undo create_role_and_database (when the HAT could not be finished)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await _drop(conn, check_name(name))
    finally:
        await conn.close()


async def _drop(conn: asyncpg.Connection, name: str) -> None:
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.execute(f'DROP ROLE IF EXISTS "{name}"')
