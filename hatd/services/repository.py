"""Services the owner approved for Login with HAT, in the database. Takes a connection, returns
plain data, raises domain errors; knows nothing of HTTP."""

from __future__ import annotations

import uuid

import asyncpg

from hatd.db import Conn, queries
from hatd.errors import Conflict, NotFound

Q = queries("services")


async def approve(conn: Conn, name: str, origin: str) -> int:
    """Approves the service at `origin` (normalised by origins.origin_of); returns the approval's id.
    Conflict if that origin is approved already."""
    try:
        approval_id: int = await conn.fetchval(Q.insert_approval, name, origin)
    except asyncpg.UniqueViolationError:
        raise Conflict(f"{origin} is approved already; revoke it first to approve it under another name") from None
    return approval_id


async def approval_for(conn: Conn, origin: str) -> asyncpg.Record | None:
    """The owner's approval of this origin (id, name, origin, date_created), if any."""
    found: asyncpg.Record | None = await conn.fetchrow(Q.approval_by_origin, origin)
    return found


async def approval_stands(conn: Conn, approval_id: int) -> bool:
    """Whether an approval a token was given under still stands."""
    return bool(await conn.fetchval(Q.approval_exists, approval_id))


async def approvals(conn: Conn) -> list[asyncpg.Record]:
    """Every approval the owner made, oldest first."""
    rows: list[asyncpg.Record] = await conn.fetch(Q.list_approvals)
    return rows


async def revoke(conn: Conn, approval_id: int) -> str:
    """Revokes an approval (the tokens given under it stop working at once); returns its origin."""
    origin: str | None = await conn.fetchval(Q.delete_approval, approval_id)
    if origin is None:
        raise NotFound(f"There is no approved service with id {approval_id}")
    return origin


async def record_grant(conn: Conn, claim: str, debit_key: uuid.UUID) -> None:
    """Notes that the service approved as `claim` enabled this data debit."""
    await conn.execute(Q.record_grant, claim, debit_key)


async def take_grants(conn: Conn, claims: list[str]) -> list[uuid.UUID]:
    """Forgets the grants made under these claims; returns the data debits they named."""
    keys: list[uuid.UUID] = list(await conn.fetchval(Q.take_grants, claims))
    return keys


async def stale_preset_claims(conn: Conn, current: list[str]) -> list[str]:
    """The preset claims that grants name but the settings no longer hold."""
    claims: list[str] = list(await conn.fetchval(Q.stale_preset_claims, current))
    return claims
