"""Many HATs on one PostgreSQL server: each HAT gets a role of its own (LOGIN and nothing more)
owning a database of its own that no other role may connect to.

This module is the one place where hatd builds DDL: role and database names cannot be query
parameters, so they are checked against HAT_NAME first and only then quoted into statements.
Passwords never travel in clear text: the server gets a SCRAM-SHA-256 verifier computed here, so a
server that logs DDL (log_statement = 'ddl') logs no usable password.

A HAT's role is made NOLOGIN and may log in only once the HAT inside is whole (migrated, owner and
platform accounts and signing key made): until then the HAT's own `hatd serve`, which may already
hold the role's password (a pod restarting beside the provisioning job), cannot connect and make
the HAT with its own defaults. The provisioning itself works as the admin role, `SET ROLE` to the
HAT's role so that the role owns what it makes."""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
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
# Role passwords go into DSNs, and the deployment files paste them there unescaped: only URL
# "unreserved" characters, so a password never needs percent-encoding (and never needs SASLprep).
ROLE_PASSWORD = re.compile(r"[A-Za-z0-9._~-]{16,200}")
# Marks a role as made by `hatd provision`: a role so marked that cannot log in yet is a HAT whose
# provisioning stopped part-way, which `--exist-ok` may finish; any other role is someone else's.
ROLE_COMMENT = "hatd: the role of a HAT, made by hatd provision"
# A HAT's pool opens up to HATD_POOL_MAX_SIZE (10) connections; a few more for `hatd migrate`,
# `hatd export` or a starting process beside a stopping one.
DEFAULT_CONNECTION_LIMIT = 20
MAX_CONNECTION_LIMIT = 10000
# Serialises `hatd provision` runs for one name (two jobs at once, a job rerun beside a slow one).
PROVISION_LOCK_ID = 0x6861_7470
# A HAT's database carries its address in its comment: no two HATs on a server may share one,
# since they would sign tokens with the same issuer (`iss`).
ADDRESS_COMMENT = "hatd: the HAT at {}"
# Every role may connect to these by default (PUBLIC has CONNECT); on hatd's own embedded server
# no HAT's role needs to.
MAINTENANCE_DATABASES = ("postgres", "template1")


class ProvisionError(RuntimeError):
    """A HAT cannot be provisioned (or served) as asked; the message says why and what to do."""


class HatState(enum.Enum):
    ABSENT = "absent"  # no role and no database of that name
    COMPLETE = "complete"  # the role owns the database of that name and may log in
    UNFINISHED = "unfinished"  # hatd's role, not yet allowed to log in; its database, if any, is its own
    TAKEN = "taken"  # a role or database of that name that is no HAT of hatd's


class Provisioned(enum.Enum):
    CREATED = "created"
    FINISHED = "finished"
    EXISTED = "existed"


# What makes the HAT inside its database (migrations, accounts, key): called with a connection to
# that database acting as the HAT's role, and whether an unfinished HAT is being finished.
Prepare = Callable[[asyncpg.Connection, bool], Awaitable[None]]


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
        raise ProvisionError(
            "the role password must be 16 to 200 characters among A-Z a-z 0-9 . _ ~ - (it goes into DSNs "
            "unescaped); make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return password


def check_connection_limit(value: str, pool_max_size: int) -> int:
    """The CONNECTION LIMIT of a HAT's role, or ProvisionError: more than the pool may open, at most
    MAX_CONNECTION_LIMIT."""
    try:
        limit = int(value)
    except ValueError:
        raise ProvisionError(f"--connection-limit {value!r} is not a whole number") from None
    if limit <= pool_max_size:
        raise ProvisionError(
            f"--connection-limit {limit} leaves no room: a HAT's pool alone opens up to HATD_POOL_MAX_SIZE "
            f"({pool_max_size}) connections; give more than that (default {DEFAULT_CONNECTION_LIMIT})"
        )
    if limit > MAX_CONNECTION_LIMIT:
        raise ProvisionError(f"--connection-limit {limit} is more than {MAX_CONNECTION_LIMIT}")
    return limit


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


def _on_database(admin_dsn: str, name: str) -> str:
    """The admin DSN naming the database `name` (and no other, in its path or its options)."""
    parts = urlsplit(admin_dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ProvisionError("HATD_DATABASE_URL must be a postgresql:// URL")
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key not in ("dbname", "database")
    ]
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", urlencode(query, safe="/"), ""))


def hat_dsn(admin_dsn: str, name: str, password: str) -> str:
    """The admin DSN turned into the HAT's own: same server and options, the HAT's role and database.
    The password is percent-encoded, though role passwords hatd accepts never need it."""
    parts = urlsplit(_on_database(admin_dsn, name))
    hosts = parts.netloc.rpartition("@")[2]
    query = [
        (key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key not in ("user", "password")
    ]
    netloc = f"{quote(name, safe='')}:{quote(password, safe='')}@{hosts}"
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="/"), ""))


async def server_powers(conn: asyncpg.Connection) -> ServerPowers:
    row = await conn.fetchrow(Q.current_role_powers)
    assert row is not None
    return ServerPowers(row["rolname"], row["rolsuper"], row["rolcreaterole"], row["rolcreatedb"])


@dataclass(frozen=True)
class _Found:
    state: HatState
    role: bool
    database: bool


async def _find(conn: asyncpg.Connection, name: str) -> _Found:
    row = await conn.fetchrow(Q.hat_parts, name)
    assert row is not None
    role, owner = row["role_exists"], row["database_owner"]
    if not role and owner is None:
        state = HatState.ABSENT
    elif role and row["can_login"] and owner == name:
        state = HatState.COMPLETE
    elif role and not row["can_login"] and row["role_comment"] == ROLE_COMMENT and owner in (None, name):
        state = HatState.UNFINISHED
    else:
        state = HatState.TAKEN
    return _Found(state, role, owner is not None)


async def hat_state(admin_dsn: str, name: str) -> HatState:
    """Whether the server holds the HAT `name`, whole or unfinished, or something else by that name."""
    async with db.connection(admin_dsn) as conn:
        return (await _find(conn, check_name(name))).state


async def ensure_database(admin_dsn: str, name: str, owner: str) -> None:
    """The role and its database, made if missing; safe when several processes start at once.
    (The embedded server's own HAT: its role has no password, the server admits only its socket.)"""
    assert HAT_NAME.fullmatch(name) and HAT_NAME.fullmatch(owner)
    async with db.connection(admin_dsn) as conn:
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


async def close_maintenance_databases(admin_dsn: str) -> None:
    """On hatd's own embedded server: revoke PUBLIC's CONNECT on `postgres` and `template1`, so a
    HAT's role can connect to its own database only (superusers still can)."""
    async with db.connection(admin_dsn) as conn:
        await conn.execute(Q.lock_provisioning, PROVISION_LOCK_ID, ":maintenance databases")
        for name in MAINTENANCE_DATABASES:
            if await conn.fetchval(Q.public_may_connect, name):
                await conn.execute(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{name}" FROM PUBLIC')


def _address_comment(address: str) -> str:
    return ADDRESS_COMMENT.format(address)


async def _comment_address(conn: asyncpg.Connection, name: str, address: str) -> None:
    literal = _address_comment(address).replace("'", "''")
    await conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{literal}'")


async def _refuse_taken_address(conn: asyncpg.Connection, name: str, address: str, fix: str) -> None:
    """ProvisionError if a HAT other than `name` on the server has `address` (an issuer). Holds a
    lock on the address until the connection closes: two runs for one address go one at a time."""
    await conn.execute(Q.lock_provisioning, PROVISION_LOCK_ID, f"address {address}")
    others = [row["datname"] for row in await conn.fetch(Q.hats_at_address, _address_comment(address), name)]
    if others:
        raise ProvisionError(
            f"the HAT {others[0]!r} on this server already has the address {address}: two HATs would sign "
            f"tokens with the same issuer. {fix} Nothing was changed."
        )


async def record_address(admin_dsn: str, name: str, address: str) -> None:
    """Note the address (an issuer, settings.issuer_of) the HAT `name` is served at (the embedded
    server's first HAT, which no `hatd provision` made, or one provisioned before addresses were
    recorded), so that provisioning refuses it to another HAT. Refuses (ProvisionError) an address
    another HAT on the server has."""
    assert HAT_NAME.fullmatch(name)
    async with db.connection(admin_dsn) as conn:
        await conn.execute(Q.lock_provisioning, PROVISION_LOCK_ID, name)
        await _refuse_taken_address(conn, name, address, "Serve this one at another address (HATD_HAT_ADDRESS).")
        await _comment_address(conn, name, address)


async def recorded_address(admin_dsn: str, name: str) -> str | None:
    """The address (an issuer) recorded for the HAT `name`, or None if none is."""
    async with db.connection(admin_dsn) as conn:
        comment = await conn.fetchval(Q.database_comment, name)
    prefix = ADDRESS_COMMENT.format("")
    return comment.removeprefix(prefix) if comment and comment.startswith(prefix) else None


async def provision_hat(
    admin_dsn: str,
    name: str,
    password: str,
    prepare: Prepare,
    *,
    connection_limit: int = DEFAULT_CONNECTION_LIMIT,
    exist_ok: bool = False,
    address: str | None = None,
) -> Provisioned:
    """Makes the HAT `name`: its role (NOLOGIN for now, no other power) and its database, owned by
    it, that only that role (and superusers) may connect to; then `prepare` fills the database; last,
    the role may log in, with `password` and at most `connection_limit` connections.

    Refuses, changing nothing, when the name is taken or the admin DSN's role lacks the powers.
    With `exist_ok`, a whole HAT is left as it is (EXISTED) and an unfinished one is finished
    (FINISHED). A new HAT that cannot be finished is dropped again; an unfinished one that still
    cannot be finished is left unfinished (its role still cannot log in). With `address`, refuses
    an address another HAT on the server has, and records it on the new HAT's database."""
    check_name(name)
    check_role_password(password)
    on_hat_database = _on_database(admin_dsn, name)
    async with db.connection(admin_dsn) as conn:
        await conn.execute(Q.lock_provisioning, PROVISION_LOCK_ID, name)
        found = await _find(conn, name)
        if found.state is HatState.COMPLETE and exist_ok:
            return Provisioned.EXISTED
        if found.state is HatState.UNFINISHED and not exist_ok:
            raise ProvisionError(
                f"the HAT {name!r} was left unfinished by a provisioning that stopped part-way (its role cannot "
                f"log in yet): run `hatd provision {name} --exist-ok` to finish it. Nothing was changed."
            )
        if found.state in (HatState.COMPLETE, HatState.TAKEN):
            taken = [kind for kind, there in (("a role", found.role), ("a database", found.database)) if there]
            raise ProvisionError(
                f"{' and '.join(taken)} named {name!r} already exist{'s' if len(taken) == 1 else ''} on the "
                "server: choose another name for a new HAT. Nothing was changed."
            )
        if address is not None:
            # Two runs with one address and different names: the second waits, then sees the first's.
            await _refuse_taken_address(conn, name, address, "Give this one another --address.")
        powers = await server_powers(conn)
        if not (powers.superuser or (powers.createrole and powers.createdb)):
            raise ProvisionError(
                f"the role {powers.role!r} of the admin DSN cannot create roles and databases: provisioning "
                "needs a superuser or a role with CREATEROLE and CREATEDB (set HATD_DATABASE_URL to such a "
                "role's DSN). Nothing was changed."
            )
        finishing = found.state is HatState.UNFINISHED
        if not finishing:
            await _create_role(conn, name)
        try:
            if not powers.superuser:
                # CREATE DATABASE ... OWNER, and SET ROLE, need the admin to be a member of the role.
                await conn.execute(f'GRANT "{name}" TO CURRENT_USER')
            if not found.database:
                await conn.execute(await _create_database_sql(conn, name))
            # The owner keeps its implicit rights; every other role loses the default CONNECT.
            await conn.execute(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{name}" FROM PUBLIC')
            hat = await asyncpg.connect(on_hat_database)
            try:
                await hat.execute(f'SET ROLE "{name}"')
                await prepare(hat, finishing)
            finally:
                await hat.close()
            if address is not None:
                await _comment_address(conn, name, address)
            # The last step: from here on the HAT's own process may connect.
            await conn.execute(
                f'ALTER ROLE "{name}" LOGIN CONNECTION LIMIT {int(connection_limit)} '
                f"PASSWORD '{scram_verifier(password)}'"
            )
        except BaseException:
            if not finishing:
                await _drop(conn, name)
            raise
        return Provisioned.FINISHED if finishing else Provisioned.CREATED


async def _create_role(conn: asyncpg.Connection, name: str) -> None:
    """The HAT's role, NOLOGIN, marked as hatd's in the same transaction (so a role left by a killed
    provisioning is always recognisable as an unfinished HAT's)."""
    try:
        async with conn.transaction():
            await conn.execute(
                f'CREATE ROLE "{name}" NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS'
            )
            await conn.execute(f"COMMENT ON ROLE \"{name}\" IS '{ROLE_COMMENT}'")
    except (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
        raise ProvisionError(
            f"a role named {name!r} was created by someone else meanwhile. Nothing was changed."
        ) from None


async def _create_database_sql(conn: asyncpg.Connection, name: str) -> str:
    """CREATE DATABASE for a HAT: UTF8 whatever the server's default, from template0 (template1 may
    hold a provider's own objects). template0's locale suits UTF8 if template0 is UTF8 itself;
    otherwise its locale may not (en_US.ISO-8859-1, say), and the C locale suits any encoding."""
    locale = "" if await conn.fetchval(Q.template0_is_utf8) else " LC_COLLATE 'C' LC_CTYPE 'C'"
    return f'CREATE DATABASE "{name}" OWNER "{name}" ENCODING \'UTF8\' TEMPLATE template0{locale}'


async def drop_role_and_database(admin_dsn: str, name: str) -> None:
    """Drop the HAT `name`: its database and its role (tests use it)."""
    async with db.connection(admin_dsn) as conn:
        await _drop(conn, check_name(name))


async def _drop(conn: asyncpg.Connection, name: str) -> None:
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.execute(f'DROP ROLE IF EXISTS "{name}"')
