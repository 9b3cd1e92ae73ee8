"""The test suite's PostgreSQL: HATD_TEST_DSN's server, or an embedded cluster on tmpfs with
fsync off, started once per run. Each test gets a database cloned from a migrated template."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from hatd import db
from hatd.accounts.bootstrap import create_hat
from hatd.embedded import EmbeddedPostgres
from hatd.settings import Settings


def with_database(dsn: str, name: str) -> str:
    """The same server DSN, naming another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


def scratch_dir(prefix: str) -> Path:
    """A new folder on tmpfs when the machine has one (clusters start and clone faster there)."""
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


@contextmanager
def server() -> Iterator[str]:
    """The admin DSN of the server the tests use."""
    given = os.environ.get("HATD_TEST_DSN")
    if given:
        yield given
        return
    folder = scratch_dir("hatd-test-")
    folder.chmod(0o755)
    embedded = EmbeddedPostgres(folder, fast=True)
    embedded.start()
    try:
        yield embedded.dsn()
    finally:
        embedded.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def _execute(admin_dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def create_template(admin_dsn: str, name: str, settings: Settings) -> None:
    """A database with every migration applied and the HAT created, to clone per test."""
    await _execute(admin_dsn, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(with_database(admin_dsn, name))
    try:
        await db.migrate(conn)
        await create_hat(conn, settings)
    finally:
        await conn.close()


async def clone(admin_dsn: str, template: str) -> str:
    name = f"hatd_test_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        version = conn.get_server_version()
        strategy = " STRATEGY FILE_COPY" if version.major >= 15 else ""
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}')
    finally:
        await conn.close()
    return name


async def drop(admin_dsn: str, name: str) -> None:
    await _execute(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def empty_database(admin_dsn: str) -> str:
    name = f"hatd_empty_{uuid.uuid4().hex[:16]}"
    await _execute(admin_dsn, f'CREATE DATABASE "{name}"')
    return name


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]
