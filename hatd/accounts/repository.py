"""Accounts and signing keys in the database. Takes a connection, returns plain data, raises
domain errors; knows nothing of HTTP."""

from __future__ import annotations

import uuid

import asyncpg

from hatd.db import Conn, queries
from hatd.errors import BadRequest, Conflict, NotFound
from hatd.tokens import KeyPair

Q = queries("accounts")

SPECIAL_ROLES = ("owner", "platform")

_DUPLICATE_CAUSES = {
    "accounts_pkey": "an account with this userId already exists",
    "idx_accounts_lower_email": "an account with this email already exists",
    "idx_accounts_name": "an account with this name already exists",
    "idx_accounts_role_special": "the HAT already has this special account",
}


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None


async def caller_status(conn: Conn, user_id: str) -> asyncpg.Record | None:
    """Role and enabled flag of the account a token names, or None if there is none."""
    parsed = _uuid(user_id)
    return None if parsed is None else await conn.fetchrow(Q.caller_status, parsed)


async def find_login(conn: Conn, username: str) -> asyncpg.Record | None:
    """The account a username (email, else name) names, with its password hash."""
    return await conn.fetchrow(Q.find_login, username)


async def owner_login(conn: Conn) -> asyncpg.Record | None:
    """The owner account with its password hash (the owner's pages ask for the password only)."""
    return await conn.fetchrow(Q.owner_login)


async def create_account(
    conn: asyncpg.Connection, *, user_id: uuid.UUID | None, email: str, name: str, pass_hash: str, role: str
) -> str:
    """Creates an account; returns it as JSON text. Conflict if its userId, email or name is taken."""
    try:
        new_id = await conn.fetchval(Q.insert_account, user_id, email, name, pass_hash, role)
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(_DUPLICATE_CAUSES.get(exc.constraint_name or "", "the account already exists")) from None
    text: str = await conn.fetchval(Q.account_json, new_id)
    return text


async def list_accounts(conn: Conn) -> str:
    """Every account as a JSON array (text), without password hashes."""
    text: str = await conn.fetchval(Q.list_accounts_json)
    return text


async def set_enabled(conn: asyncpg.Connection, user_id: uuid.UUID, enabled: bool) -> None:
    """Enables or disables an account. NotFound if there is none; the owner and platform stay enabled."""
    role = await conn.fetchval(Q.account_role, user_id)
    if role is None:
        raise NotFound(f"There is no account with userId {user_id}")
    if role in SPECIAL_ROLES and not enabled:
        raise BadRequest(f"The {role} account can never be disabled", message="Not allowed")
    await conn.execute(Q.set_enabled, user_id, enabled)


async def special_account(conn: Conn, role: str) -> uuid.UUID | None:
    """The userId of the owner or platform account, if the HAT has been created."""
    found: uuid.UUID | None = await conn.fetchval(Q.special_account, role)
    return found


async def set_special_password(conn: Conn, role: str, pass_hash: str) -> uuid.UUID | None:
    found: uuid.UUID | None = await conn.fetchval(Q.set_password, role, pass_hash)
    return found


async def set_login_password(conn: Conn, username: str, pass_hash: str) -> asyncpg.Record | None:
    """Sets the password of the account a username (email, else name) names and closes its browser
    sessions; its user_id, role and enabled, or None if no account has that email or name."""
    found: asyncpg.Record | None = await conn.fetchrow(Q.set_login_password, username, pass_hash)
    return found


async def current_signing_key(conn: Conn) -> KeyPair | None:
    row = await conn.fetchrow(Q.current_signing_key)
    return (
        None if row is None else KeyPair(kid=row["kid"], private_pem=row["private_pem"], public_pem=row["public_pem"])
    )


async def insert_signing_key(conn: Conn, keys: KeyPair) -> None:
    await conn.execute(Q.insert_signing_key, keys.kid, keys.private_pem, keys.public_pem)


async def change_password(
    conn: Conn, user_id: str, checked_hash: str, pass_hash: str, keep_session: bytes
) -> int | None:
    """Gives the account a new password if its hash is still `checked_hash` (the one the current
    password was checked against), ending its browser sessions but the one `keep_session` (its
    secret's hash) names; how many it ended, or None when the password had changed meanwhile."""
    closed: int | None = await conn.fetchval(
        Q.change_password, uuid.UUID(user_id), checked_hash, pass_hash, keep_session
    )
    return closed
