"""Data debits in the database: proposing, enabling, reading under the debit's rules, and the
log of it all. Takes a connection, returns JSON text built by PostgreSQL, raises domain errors;
knows nothing of HTTP."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from hatd.bundles import repository as bundles
from hatd.db import Conn, queries
from hatd.errors import BadRequest, Forbidden, NotFound
from hatd.reads import Window
from hatd.roles import OWNER, PLATFORM

Q = queries("debits")

# One answer for every refusal a non-owner gets about a debit that is not theirs or not there,
# so that keys cannot be probed.
NOT_YOURS = "There is no data debit with this key that this account may read"


def _key(key: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(key)
    except ValueError:
        return None


async def propose(conn: asyncpg.Connection, debit: dict[str, Any], proposer: str, role: str) -> str:
    """Stores a proposed debit (disabled) with its bundle, made here if given inline; returns the
    debit as JSON text: with its bundle's structure for the owner, its id and name for others."""
    try:
        return await _propose(conn, debit, proposer, role)
    except BadRequest as exc:
        if role == OWNER:
            raise
        # What exactly is missing would tell an app which tables, fields and entities the owner has.
        raise BadRequest(
            "The bundle names a table, field or entity that does not exist or does not fit", message=exc.message
        ) from None


async def _propose(conn: asyncpg.Connection, debit: dict[str, Any], proposer: str, role: str) -> str:
    contextless = debit["kind"] == "contextless"
    given = debit["bundleContextless"] if contextless else debit["bundleContextual"]
    if "id" in given:
        if role != OWNER:  # another account must not read the owner's bundles by guessing ids
            raise Forbidden("Only the owner may propose a debit of an existing bundle; give the bundle inline")
        bundle_id = given["id"]
        await (bundles.bundle(conn, bundle_id) if contextless else bundles.contextual_bundle(conn, bundle_id))
    elif contextless:
        bundle_id = await bundles.insert_new_bundle(conn, given["new"], strict=role == OWNER)
    else:
        bundle_id = await bundles.insert_contextual_bundle(conn, given["new"]["name"], given["new"]["entities"])
    key = await conn.fetchval(
        Q.insert_debit, debit["name"], debit["startDate"], debit["endDate"], debit["rolling"], debit["sell"],
        debit["price"], debit["kind"], bundle_id if contextless else None, uuid.UUID(proposer),
        None if contextless else bundle_id,
    )  # fmt: skip
    await conn.execute(Q.log, key, uuid.UUID(proposer), "propose", None)
    text: str = await conn.fetchval(Q.debit_json if role == OWNER else Q.debit_summary_json, key)
    return text


async def _debit_for(
    conn: Conn, key: str, user_id: str, role: str, *, platform_may: bool = False, reading: bool = False
) -> asyncpg.Record:
    """The debit, if this account may see it: the owner any (404 if none); the proposer (and, where
    allowed, the platform) their own; anyone else the same Forbidden as for a key that does not exist.
    When `reading`, the row is locked so that a disable waits for the read."""
    parsed = _key(key)
    row = None if parsed is None else await conn.fetchrow(Q.debit_for_read if reading else Q.debit, parsed)
    if role == OWNER:
        if row is None:
            raise NotFound(f"There is no data debit with key {key[:40]}")
        return row
    if row is None or not (str(row["proposer"]) == user_id or (platform_may and role == PLATFORM)):
        raise Forbidden(NOT_YOURS)
    return row


async def debit(conn: Conn, key: str, user_id: str, role: str) -> str:
    row = await _debit_for(conn, key, user_id, role, platform_may=True)
    text: str = await conn.fetchval(Q.debit_json if role == OWNER else Q.debit_summary_json, row["key"])
    return text


async def debits(conn: Conn, proposer: str | None = None) -> str:
    """Every debit as a JSON array (text); with `proposer`, only the debits that account proposed."""
    text: str = await conn.fetchval(Q.debits_json, uuid.UUID(proposer) if proposer else None)
    return text


async def owner_listing(conn: Conn, key: uuid.UUID | None = None) -> str:
    """Every debit (or the one `key` names) as a JSON array (text), each with its proposer, its
    bundle's id and name, and its `state` for the owner: waiting (never enabled), disabled, or
    enabled and not started, active or ended; the waiting ones first, then the newest."""
    text: str = await conn.fetchval(Q.owner_debits_json, key)
    return text


async def set_enabled(conn: asyncpg.Connection, key: str, enabled: bool, owner_id: str) -> uuid.UUID:
    parsed = _key(key)
    found: uuid.UUID | None = None if parsed is None else await conn.fetchval(Q.set_enabled, parsed, enabled)
    if found is None:
        raise NotFound(f"There is no data debit with key {key[:40]}")
    await conn.execute(Q.log, found, uuid.UUID(owner_id), "enable" if enabled else "disable", None)
    return found


async def values(
    conn: asyncpg.Connection,
    key: str,
    user_id: str,
    role: str,
    window: Window,
    after: tuple[Any, Any],
    limit: int,
    *,
    pretty: bool = False,
) -> bundles.ValuesPage:
    """The debit's fields and a page of its bundle's data, for the owner always and for the
    proposer only while the debit is enabled and now lies in its window. Every read is logged
    (here, before a word of it is written: run this in its own transaction and commit it, then
    write the parts, which read the records a chunk at a time)."""
    row = await _debit_for(conn, key, user_id, role, reading=True)
    if role != OWNER:
        now = dt.datetime.now(dt.UTC)
        if not row["enabled"]:
            raise Forbidden("The owner has not enabled this data debit")
        if now <= row["start_date"]:
            raise Forbidden("This data debit has not started yet")
        if now >= row["end_date"]:
            raise Forbidden("This data debit has ended")
    if row["kind"] == "contextless":
        page = await bundles.bundle_values(conn, row["bundle_contextless_id"], window, after, limit, pretty=pretty)
        part = "bundleContextless"
    else:
        page = await bundles.contextual_values(conn, row["bundle_contextual_id"], after, limit)
        part = "bundleContextual"
    await conn.execute(Q.log, row["key"], uuid.UUID(user_id), "values", page.records)
    debit_text: str = await conn.fetchval(Q.debit_fields_json, row["key"])

    # Texts PostgreSQL built, joined without decoding any: {...debit, "bundleContextless": {...}}.
    async def parts() -> AsyncIterator[str]:
        yield f'{debit_text[:-1]}, "{part}": '
        async for piece in page.parts:
            yield piece
        yield "}"

    return bundles.ValuesPage(parts(), page.records, page.more)


async def log(conn: Conn, key: str) -> str:
    parsed = _key(key)
    if parsed is None or await conn.fetchrow(Q.debit, parsed) is None:
        raise NotFound(f"There is no data debit with key {key[:40]}")
    text: str = await conn.fetchval(Q.log_json, parsed)
    return text
