"""GET /health: no token, 200 while the database answers, 503 when it does not."""

from __future__ import annotations

from hatd import db
from hatd.state import POOL


async def test_health_is_ok_without_a_token(client):
    response = await client.get("/health")
    assert response.status == 200
    assert await response.json() == {
        "status": "ok",
        "database": "ok",
        "schemaVersion": db.available_migrations()[-1].version,
    }


async def test_health_is_503_when_the_database_does_not_answer(client):
    await client.app[POOL].close()
    response = await client.get("/health")
    assert response.status == 503
    assert await response.json() == {"status": "unavailable", "database": "unavailable", "schemaVersion": None}
