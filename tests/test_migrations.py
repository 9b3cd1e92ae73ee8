"""The migration runner: every migration applies to an empty database, in order, once; a
database newer than the code, or an edited migration, is refused."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from hatd import db
from hatd.accounts.bootstrap import create_hat
from tests import pg


@pytest.fixture
async def empty(admin_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    name = await pg.empty_database(admin_dsn)
    conn = await asyncpg.connect(pg.with_database(admin_dsn, name))
    yield conn
    await conn.close()
    await pg.drop(admin_dsn, name)


async def test_all_migrations_apply_to_an_empty_database_in_order(empty):
    available = db.available_migrations()
    assert [m.version for m in available] == list(range(1, len(available) + 1))
    applied_now = await db.migrate(empty)
    assert [m.version for m in applied_now] == [m.version for m in available]
    rows = await empty.fetch("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["name"], r["checksum"]) for r in rows] == [
        (m.version, m.name, m.checksum) for m in available
    ]
    assert await db.migrate(empty) == []


async def test_stairway_each_migration_applies_on_top_of_the_previous(empty, monkeypatch):
    available = db.available_migrations()
    for count in range(1, len(available) + 1):
        monkeypatch.setattr(db, "available_migrations", lambda count=count: available[:count])
        applied = await db.migrate(empty)
        assert [m.version for m in applied] == [available[count - 1].version]


async def test_status_lists_applied_and_pending(empty):
    applied, pending = await db.migration_status(empty)
    assert applied == []
    assert [m.name for m in pending] == [m.name for m in db.available_migrations()]
    await db.migrate(empty)
    applied, pending = await db.migration_status(empty)
    assert [r["name"] for r in applied] == [m.name for m in db.available_migrations()]
    assert pending == []


async def test_a_database_newer_than_the_code_is_refused(empty):
    await db.migrate(empty)
    await empty.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')")
    with pytest.raises(db.MigrationError, match="the database is newer than the code"):
        await db.migrate(empty)


async def test_an_edited_migration_is_refused(empty):
    await db.migrate(empty)
    await empty.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(db.MigrationError, match="changed after it was applied"):
        await db.migrate(empty)


async def test_a_failing_migration_leaves_nothing_behind(empty, tmp_path, monkeypatch):
    broken = [db.Migration(1, "broken", "CREATE TABLE half_done (id int); SELECT no_such_function();")]
    monkeypatch.setattr(db, "available_migrations", lambda: broken)
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await db.migrate(empty)
    assert await empty.fetchval("SELECT to_regclass('half_done')") is None
    assert await empty.fetchval("SELECT count(*) FROM schema_migrations") == 0


async def test_hat_creation_is_once_and_whole(empty, settings):
    await db.migrate(empty)
    created = await create_hat(empty, settings.replace(owner_password="", platform_password=""))
    assert created is not None
    assert created.generated_owner_password
    assert await create_hat(empty, settings) is None
    rows = await empty.fetch("SELECT role, enabled, pass_hash FROM accounts ORDER BY date_created")
    assert [(r["role"], r["enabled"]) for r in rows] == [("owner", True), ("platform", True)]
    # No platform password: the platform account exists but no password opens it.
    assert rows[1]["pass_hash"] == "!"
    assert await empty.fetchval("SELECT count(*) FROM signing_keys") == 1


async def test_special_accounts_are_protected_by_the_schema(empty, settings):
    await db.migrate(empty)
    await create_hat(empty, settings)
    with pytest.raises(asyncpg.CheckViolationError):
        await empty.execute("UPDATE accounts SET enabled = false WHERE role = 'owner'")
    with pytest.raises(asyncpg.UniqueViolationError):
        await empty.execute("INSERT INTO accounts (email, name, pass_hash, role) VALUES ('o2@x', 'o2', '!', 'owner')")


async def test_concurrent_first_starts_create_one_hat(empty, admin_dsn, settings):
    dsn = pg.with_database(admin_dsn, await empty.fetchval("SELECT current_database()"))

    async def first_start() -> object:
        conn = await asyncpg.connect(dsn)
        try:
            await db.migrate(conn)
            return await create_hat(conn, settings)
        finally:
            await conn.close()

    results = await asyncio.gather(*(first_start() for _ in range(4)))
    assert sum(result is not None for result in results) == 1
    assert await empty.fetchval("SELECT count(*) FROM accounts") == 2
    assert await empty.fetchval("SELECT count(*) FROM signing_keys") == 1


async def test_concurrent_embedded_database_creation(admin_dsn):
    from hatd.provision import ensure_database as _ensure_database

    name = f"hatd_race_{uuid.uuid4().hex[:8]}"
    await asyncio.gather(*(_ensure_database(admin_dsn, name, "hatd_race_role") for _ in range(4)))
    conn = await asyncpg.connect(admin_dsn)
    try:
        owner = await conn.fetchval("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", name)
        assert owner == "hatd_race_role"
        assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = 'hatd_race_role'") is False
    finally:
        await conn.close()
    await pg.drop(admin_dsn, name)


async def test_sessions_open_before_their_details_existed_get_an_id_and_stay_open(empty, settings, monkeypatch):
    available = db.available_migrations()
    details = next(index for index, m in enumerate(available) if m.name == "web_session_details")
    monkeypatch.setattr(db, "available_migrations", lambda: available[:details])
    await db.migrate(empty)
    await create_hat(empty, settings)
    for secret in (b"a" * 32, b"b" * 32):
        await empty.execute(
            "INSERT INTO web_sessions (secret_hash, user_id, csrf, expires) "
            "SELECT $1, user_id, repeat('c', 43), now() + interval '1 hour' FROM accounts WHERE role = 'owner'",
            secret,
        )
    monkeypatch.setattr(db, "available_migrations", lambda: available)
    await db.migrate(empty)
    rows = await empty.fetch("SELECT id, last_seen, user_agent FROM web_sessions ORDER BY id")
    assert len({row["id"] for row in rows}) == 2 and all(row["id"] is not None for row in rows)
    assert all(row["last_seen"] is not None and row["user_agent"] == "" for row in rows)
