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
from hatd.app import create_app
from tests import pg
from tests.conftest import OWNER, auth, login


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


async def _fill(conn: asyncpg.Connection, version: int) -> dict[str, int]:
    """Rows a HAT holds, written in SQL as the schema of `version` takes them (raw data from 0002,
    a contextless bundle over it from 0006); their ids."""
    ids: dict[str, int] = {}
    if version >= 2:
        ids["table"] = await conn.fetchval(
            "INSERT INTO data_tables (name, source) VALUES ('kitchen', 'up') RETURNING id"
        )
        ids["field"] = await conn.fetchval(
            "INSERT INTO data_fields (table_id, name) VALUES ($1, 'temperature') RETURNING id", ids["table"]
        )
        ids["record"] = await conn.fetchval("INSERT INTO data_records (name) VALUES ('monday') RETURNING id")
        await conn.execute(
            "INSERT INTO data_values (value, field_id, record_id) VALUES ('21.5', $1, $2)", ids["field"], ids["record"]
        )
    if version >= 6:
        ids["bundle"] = await conn.fetchval("INSERT INTO bundles_contextless (name) VALUES ('heat') RETURNING id")
        await conn.execute(
            "INSERT INTO bundle_tables (bundle_id, name, table_id, position, tree) VALUES ($1, 'kitchen', $2, 0, $3)",
            ids["bundle"],
            ids["table"],
            [ids["table"]],
        )
    return ids


@pytest.mark.parametrize("step", [m.version for m in db.available_migrations()][1:])
async def test_an_upgrade_keeps_the_data_and_serves_it(
    empty, admin_dsn, settings, monkeypatch, aiohttp_client, step, tmp_path
):
    """Forward-only migrations, tested with data: migrations 1..step-1, then the HAT's accounts and
    rows, then migration `step` and every later one; the rows are all there and the API reads them."""
    available = db.available_migrations()
    functions = db.FUNCTIONS_DIR
    # The code of an older schema has its functions in its migrations, and no function files.
    monkeypatch.setattr(db, "FUNCTIONS_DIR", tmp_path)
    monkeypatch.setattr(db, "available_migrations", lambda: available[: step - 1])
    await db.migrate(empty)
    assert await create_hat(empty, settings) is not None
    ids = await _fill(empty, step - 1)
    monkeypatch.setattr(db, "available_migrations", lambda: available)
    monkeypatch.setattr(db, "FUNCTIONS_DIR", functions)
    assert [m.version for m in await db.migrate(empty)] == list(range(step, len(available) + 1))

    dsn = pg.with_database(admin_dsn, await empty.fetchval("SELECT current_database()"))
    client = await aiohttp_client(create_app(settings.replace(database_url=dsn)))
    token = await login(client, *OWNER)
    if "table" in ids:
        response = await client.get(f"/data/table/{ids['table']}/values", headers=auth(token))
        assert response.status == 200, await response.text()
        (record,) = await response.json()
        assert record["id"] == ids["record"]
        assert record["name"] == "monday"
        (table,) = record["tables"]
        assert (table["id"], table["name"], table["source"]) == (ids["table"], "kitchen", "up")
        assert [(f["id"], f["name"], [v["value"] for v in f["values"]]) for f in table["fields"]] == [
            (ids["field"], "temperature", ["21.5"])
        ]
    if "bundle" in ids:
        response = await client.get(f"/bundles/contextless/{ids['bundle']}/values", headers=auth(token))
        assert response.status == 200, await response.text()
        assert "21.5" in await response.text()


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


# -- function files (sql/functions) ------------------------------------------------------------

FUNCTION_NAME = r"CREATE (?:OR REPLACE )?FUNCTION (\w+)\("


async def test_every_function_lives_in_a_function_file_as_the_database_has_it(empty):
    """No function exists only in the history of migrations (trigger functions, which are part of
    the schema, excepted), and after migrate the database runs exactly what the files say."""
    import re

    await db.migrate(empty)
    in_files = {name: f.name for f in db.function_files() for name in re.findall(FUNCTION_NAME, f.sql)}
    in_migrations = {name for m in db.available_migrations() for name in re.findall(FUNCTION_NAME, m.sql)}
    triggers = {
        r["proname"]
        for r in await empty.fetch(
            "SELECT proname FROM pg_proc WHERE prorettype = 'trigger'::regtype AND pronamespace = 'public'::regnamespace"
        )
    }
    assert in_migrations - triggers <= set(in_files), in_migrations - triggers - set(in_files)
    checked = set()
    for file in db.function_files():
        for name, body in re.findall(FUNCTION_NAME + r".*?\nAS \$\$(.*?)\$\$;", file.sql, flags=re.S):
            live = await empty.fetchval("SELECT prosrc FROM pg_proc WHERE proname = $1", name)
            assert live == body, f"{name} in the database is not sql/functions/{file.name}.sql's"
            checked.add(name)
    assert checked == set(in_files)


async def test_a_changed_function_file_is_applied_once_and_alone(empty, tmp_path):
    await db.migrate(empty)
    assert await db.apply_functions(empty) == []
    for file in db.function_files():
        (tmp_path / f"{file.name}.sql").write_text(file.sql)
    debits = (tmp_path / "debits.sql").read_text()
    assert "'price', d.price" in debits
    (tmp_path / "debits.sql").write_text(debits.replace("'price', d.price", "'price', d.price * 2"))
    assert await db.apply_functions(empty, tmp_path) == ["debits"]
    assert await db.apply_functions(empty, tmp_path) == []
    shape = await empty.fetchval(
        """SELECT data_debit_json(jsonb_populate_record(NULL::data_debits, '{"price": 1.5}'))->>'price'"""
    )
    assert shape == "3"
    # Back to the files of the code: applied again at the next migrate.
    await db.migrate(empty)
    assert await db.apply_functions(empty) == []


async def test_a_broken_function_file_changes_nothing(empty, tmp_path):
    await db.migrate(empty)
    for file in db.function_files():
        (tmp_path / f"{file.name}.sql").write_text(file.sql)
    (tmp_path / "zz_broken.sql").write_text(
        "CREATE OR REPLACE FUNCTION x() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$; nonsense;"
    )
    (tmp_path / "debits.sql").write_text(
        (tmp_path / "debits.sql").read_text().replace("'price', d.price", "'price', 0")
    )
    with pytest.raises(asyncpg.PostgresSyntaxError):
        await db.apply_functions(empty, tmp_path)
    assert await empty.fetchval("SELECT to_regproc('x')") is None
    assert "'price', d.price" in await empty.fetchval("SELECT prosrc FROM pg_proc WHERE proname = 'data_debit_json'")


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
