"""hatd.db's helpers that are not the migration runner (tests/test_migrations.py has that)."""

from __future__ import annotations

import pytest

from hatd import db


async def test_a_connection_of_its_own_is_closed_when_its_block_ends(admin_dsn):
    async with db.connection(admin_dsn) as conn:
        assert await conn.fetchval("SELECT 1") == 1
    assert conn.is_closed()


async def test_a_connection_of_its_own_is_closed_when_its_block_fails(admin_dsn):
    with pytest.raises(ZeroDivisionError):
        async with db.connection(admin_dsn) as conn:
            await conn.fetchval("SELECT 1")
            raise ZeroDivisionError
    assert conn.is_closed()
