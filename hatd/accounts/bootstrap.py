"""Creating a HAT: its owner and platform accounts and its signing key, once, on the first start;
and giving an account a new password from the command line."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import asyncpg

from hatd.accounts import passwords, repository
from hatd.accounts.repository import Q
from hatd.settings import Settings
from hatd.tokens import generate_key_pair

HAT_CREATION_LOCK_ID = 0x6861_7401
NOT_CREATED = "this HAT has not been created yet: run `hatd create-owner` first"


class HatCreationError(RuntimeError):
    """The settings do not describe accounts hatd can create."""


@dataclass(frozen=True)
class CreatedHat:
    owner_id: str
    # The owner's password when hatd made it up (no HATD_OWNER_PASSWORD): shown once, never stored.
    generated_owner_password: str | None


def _checked_password(setting: str, password: str) -> str:
    if len(password.encode()) > passwords.MAX_PASSWORD_BYTES:
        raise HatCreationError(
            f"{setting} is longer than {passwords.MAX_PASSWORD_BYTES} bytes, which bcrypt cannot use"
        )
    return password


async def create_hat(conn: asyncpg.Connection, settings: Settings) -> CreatedHat | None:
    """Creates the owner and platform accounts and the key pair, unless the HAT exists already
    (then returns None). One transaction: a HAT is created whole or not at all."""
    async with conn.transaction():
        await conn.execute(Q.lock_hat_creation, HAT_CREATION_LOCK_ID)
        if await repository.special_account(conn, "owner") is not None:
            return None
        generated = None if settings.owner_password else secrets.token_urlsafe(18)
        owner_password = _checked_password("HATD_OWNER_PASSWORD", settings.owner_password or generated or "")
        owner_hash = await passwords.hash_password(owner_password, settings.bcrypt_rounds)
        platform_hash = passwords.NO_PASSWORD
        if settings.platform_password:
            _checked_password("HATD_PLATFORM_PASSWORD", settings.platform_password)
            platform_hash = await passwords.hash_password(settings.platform_password, settings.bcrypt_rounds)
        try:
            owner_id = await conn.fetchval(
                Q.insert_account, None, settings.owner_email, settings.owner_name, owner_hash, "owner"
            )
            await conn.fetchval(
                Q.insert_account, None, settings.platform_email, settings.platform_name, platform_hash, "platform"
            )
        except asyncpg.UniqueViolationError:
            raise HatCreationError("the owner and platform accounts need different names and emails") from None
        except asyncpg.CheckViolationError as exc:
            raise HatCreationError(
                f"an owner or platform setting is empty or too long ({exc.constraint_name})"
            ) from None
        await repository.insert_signing_key(conn, generate_key_pair())
        return CreatedHat(owner_id=str(owner_id), generated_owner_password=generated)


async def settings_not_applied(conn: asyncpg.Connection, settings: Settings) -> list[str]:
    """The HATD_OWNER_* and HATD_PLATFORM_* settings that the existing HAT's accounts do not have.
    They are read only when the HAT is created, so hatd says at start which ones it did not apply.
    A password setting counts only when given and not the account's password."""
    differing = []
    for row in await conn.fetch(Q.special_accounts):
        role = row["role"]
        prefix = f"HATD_{role.upper()}_"
        if row["email"].casefold() != getattr(settings, f"{role}_email").casefold():
            differing.append(prefix + "EMAIL")
        if row["name"] != getattr(settings, f"{role}_name"):
            differing.append(prefix + "NAME")
        password = getattr(settings, f"{role}_password")
        if password and not await passwords.matches(password, row["pass_hash"]):
            differing.append(prefix + "PASSWORD")
    return sorted(differing)


async def record_served_address(conn: asyncpg.Connection, address: str) -> None:
    """Notes the address `hatd serve` serves the HAT at, for commands run from another shell."""
    await conn.execute(Q.record_served_address, address)


async def hat_address(conn: asyncpg.Connection, settings: Settings) -> str:
    """The HAT's address for a command: HATD_HAT_ADDRESS when given; else the address `hatd serve`
    last served it at (another shell need not repeat HATD_HOST and HATD_PORT); else, never served,
    the address the settings would listen on."""
    if settings.hat_address:
        return settings.address
    try:
        served: str | None = await conn.fetchval(Q.served_address)
    except asyncpg.UndefinedTableError:  # a database the migrations of this hatd have not reached yet
        served = None
    return served or settings.address


async def set_password(conn: asyncpg.Connection, role: str, password: str, rounds: int) -> str:
    """Gives the owner or platform account a new password; returns its userId."""
    pass_hash = await passwords.hash_password(_checked_password("the password", password), rounds)
    user_id = await repository.set_special_password(conn, role, pass_hash)
    if user_id is None:
        raise HatCreationError(NOT_CREATED)
    return str(user_id)


@dataclass(frozen=True)
class PasswordSet:
    user_id: str
    role: str
    enabled: bool


def _unknown_account(account: str) -> HatCreationError:
    return HatCreationError(
        f"no account has the email or name {account!r}: give owner, platform, or an account's email or name. "
        "Nothing was changed."
    )


async def check_account(conn: asyncpg.Connection, account: str) -> None:
    """HatCreationError unless `account` (owner, platform, or an email or name) names an account:
    asked before the new password, so that nobody types one for nothing."""
    if account in repository.SPECIAL_ROLES:
        if await repository.special_account(conn, account) is None:
            raise HatCreationError(NOT_CREATED)
    elif await repository.find_login(conn, account) is None:
        raise _unknown_account(account)


async def set_account_password(conn: asyncpg.Connection, account: str, password: str, rounds: int) -> PasswordSet:
    """Gives the account a username names (its email in any case, else its name: what it logs in
    with) a new password, closing its browser sessions. Apps' accounts restored by `hatd import`
    have none until given one this way."""
    pass_hash = await passwords.hash_password(_checked_password("the password", password), rounds)
    row = await repository.set_login_password(conn, account, pass_hash)
    if row is None:
        raise _unknown_account(account)
    return PasswordSet(user_id=str(row["user_id"]), role=row["role"], enabled=row["enabled"])
