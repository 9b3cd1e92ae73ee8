"""The database: named queries from sql/queries, forward-only migrations from sql/schema, the
live function definitions from sql/functions, the connection pool's life, and the one place a
request's transaction is opened."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import asyncpg

from hatd.errors import NotFound

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
SCHEMA_DIR = SQL_DIR / "schema"
FUNCTIONS_DIR = SQL_DIR / "functions"
QUERIES_DIR = SQL_DIR / "queries"

# Any constant works; it only has to be the same for every hatd process migrating one database.
MIGRATION_LOCK_ID = 0x6861_7464  # "hatd"

log = logging.getLogger("hatd.db")

# What repositories run queries on: a connection (inside a transaction) or, for a lone read, the pool.
Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


class QueryFile:
    """The named queries of one file in sql/queries, as attributes: `ACCOUNTS.insert_account`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        text = path.read_text()
        parts = _NAME_LINE.split(text)
        self._queries: dict[str, str] = {}
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in self._queries:
                raise ValueError(f"{path}: query {name!r} is defined twice")
            self._queries[name] = body.strip()

    def __getattr__(self, name: str) -> str:
        try:
            return self._queries[name]
        except KeyError:
            raise AttributeError(f"{self.path.name} has no query named {name!r}") from None

    def names(self) -> list[str]:
        return sorted(self._queries)


def queries(domain: str) -> QueryFile:
    """The named queries of sql/queries/<domain>.sql."""
    return QueryFile(QUERIES_DIR / f"{domain}.sql")


Q = queries("migrations")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    """The database's schema and this code disagree in a way hatd must not paper over."""


def available_migrations(directory: Path = SCHEMA_DIR) -> list[Migration]:
    """Every migration file NNNN_name.sql, in version order."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = re.fullmatch(r"(\d{4})_([a-z0-9_]+)\.sql", path.name)
        if not match:
            raise MigrationError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


async def migration_status(conn: asyncpg.Connection) -> tuple[list[asyncpg.Record], list[Migration]]:
    """(applied rows, pending migrations), after checking that the two agree."""
    await conn.execute(Q.create_migrations_table)
    applied = await conn.fetch(Q.applied_migrations)
    known = {m.version: m for m in available_migrations()}
    for row in applied:
        migration = known.get(row["version"])
        if migration is None:
            raise MigrationError(
                f"the database has migration {row['version']:04d}_{row['name']}, which this hatd does not "
                f"know: the database is newer than the code. Run a newer hatd against it."
            )
        if migration.checksum != row["checksum"]:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name}.sql changed after it was applied; "
                f"migrations are forward-only: add a new one instead"
            )
    done = {row["version"] for row in applied}
    return list(applied), [m for m in known.values() if m.version not in done]


@dataclass(frozen=True)
class FunctionFile:
    """One file of sql/functions: the live definitions of a domain's database functions."""

    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def function_files(directory: Path | None = None) -> list[FunctionFile]:
    """The files of sql/functions (or of `directory`), by name."""
    found = sorted((directory or FUNCTIONS_DIR).glob("*.sql"))
    return [FunctionFile(path.stem, path.read_text()) for path in found]


async def apply_functions(conn: asyncpg.Connection, directory: Path | None = None) -> list[str]:
    """Apply the function files whose checksum differs from the one last applied, all in one
    transaction; returns their names. Run by `migrate`, after the migrations, under its lock."""
    await conn.execute(Q.create_functions_table)
    applied = {row["name"]: row["checksum"] for row in await conn.fetch(Q.applied_functions)}
    changed = [f for f in function_files(directory) if applied.get(f.name) != f.checksum]
    if changed:
        async with conn.transaction():
            await conn.execute(Q.defer_function_checks)
            for file in changed:
                await conn.execute(file.sql)
                await conn.execute(Q.record_functions, file.name, file.checksum)
        log.info("applied function files %s", ", ".join(f"sql/functions/{f.name}.sql" for f in changed))
    return [f.name for f in changed]


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply every pending migration, each in its own transaction, then the function files that
    changed; returns the migrations applied. Safe to run from several processes at once: they
    queue on an advisory lock."""
    await conn.execute(Q.lock_migrations, MIGRATION_LOCK_ID)
    try:
        _, pending = await migration_status(conn)
        for migration in pending:
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(Q.record_migration, migration.version, migration.name, migration.checksum)
            log.info("applied migration %04d_%s", migration.version, migration.name)
        await apply_functions(conn)
        return pending
    finally:
        await conn.execute(Q.unlock_migrations, MIGRATION_LOCK_ID)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb/json columns come back as Python objects, and go in from them.
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _no_reset(conn: asyncpg.Connection) -> None:
    """hatd sets no session state (its advisory locks are transaction-scoped, it never LISTENs or
    SETs), so the round trip asyncpg spends resetting each released connection buys nothing."""


async def create_pool(dsn: str, *, min_size: int, max_size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, command_timeout=60, reset=_no_reset
    )
    assert pool is not None
    return pool


async def fetch_json(conn: Conn, query: str, *args: object, missing: str) -> str:
    """The JSON text a query builds, or NotFound(missing) when it finds nothing."""
    text: str | None = await conn.fetchval(query, *args)
    if text is None:
        raise NotFound(missing)
    return text


@asynccontextmanager
async def connection(dsn: str, *, connect_timeout: float = 60) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own (the CLI's, provisioning's, a backup's), closed when the block ends,
    however it ends."""
    conn = await asyncpg.connect(dsn, timeout=connect_timeout)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside one transaction: committed if the block ends normally, rolled back
    if it raises. Every request that writes goes through here, once."""
    async with pool.acquire() as conn, conn.transaction():
        yield conn


@asynccontextmanager
async def snapshot(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside one read-only transaction that sees the database as it was when it
    began: a read made of several queries (a page, then its records a chunk at a time, while
    they are written to the client) gives one consistent answer."""
    async with pool.acquire() as conn, snapshot_on(conn):
        yield conn


@asynccontextmanager
async def snapshot_on(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """As snapshot, on a connection already held."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        # A backstop: a snapshot left idle (a writer stuck on a slow client) ends on its own.
        await conn.execute(Q.limit_idle_snapshot)
        yield conn
