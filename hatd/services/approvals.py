"""Which services act as the owner: those the owner approved (rows, see repository.py) and those
the provider pre-approved (HATD_APPROVED_SERVICES). /hatlogin gives an approved service an owner
token naming its approval, and the auth middleware asks `stands` of every such token, so that a
revoked approval (or a preset removed from the settings) ends its tokens at once (the owner's
approvals are remembered by hatd/callers.py, which forgets them the moment one is revoked)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from hatd.accounts import repository as accounts
from hatd.callers import CallerCache
from hatd.db import Conn
from hatd.debits import repository as debits
from hatd.services import repository
from hatd.services.origins import origin_of
from hatd.settings import Settings

PRESET = "preset:"
OWNED = "owner:"


@dataclass(frozen=True)
class Approval:
    name: str
    origin: str
    # What a token given under it names: "owner:<id>" or "preset:<origin>".
    claim: str
    # Made by the provider's settings (the owner cannot revoke it), or by the owner (its id).
    preset: bool
    id: int | None = None


def _preset(origin: str, name: str) -> Approval:
    return Approval(name=name, origin=origin, claim=PRESET + origin, preset=True)


async def find(conn: Conn, settings: Settings, redirect: str) -> Approval | None:
    """The approval covering an app's redirect address (by its origin), if there is one."""
    origin = origin_of(redirect)
    if origin is None:
        return None
    if origin in settings.preset_services:
        return _preset(origin, settings.preset_services[origin])
    row = await repository.approval_for(conn, origin)
    if row is None:
        return None
    return Approval(name=row["name"], origin=row["origin"], claim=f"{OWNED}{row['id']}", preset=False, id=row["id"])


async def stands(conn: Conn, settings: Settings, claim: str, callers: CallerCache) -> bool:
    """Whether the approval a token names still stands."""
    if claim.startswith(PRESET):
        return claim[len(PRESET) :] in settings.preset_services
    if claim.startswith(OWNED) and claim[len(OWNED) :].isdigit():
        return await callers.approval_stands(conn, int(claim[len(OWNED) :]))
    return False


async def listing(conn: Conn, settings: Settings) -> list[Approval]:
    """The provider's approvals, then the owner's, oldest first."""
    rows = await repository.approvals(conn)
    owned = [
        Approval(name=r["name"], origin=r["origin"], claim=f"{OWNED}{r['id']}", preset=False, id=r["id"]) for r in rows
    ]
    return [_preset(origin, name) for origin, name in settings.preset_services.items()] + owned


async def revoke(conn: asyncpg.Connection, approval_id: int, owner_id: str) -> None:
    """Revokes an approval the owner made: its tokens stop working at once (they name it), and the
    data debits the service enabled with them are disabled, so that it cannot read on through them."""
    await repository.revoke(conn, approval_id)
    await _withdraw(conn, [f"{OWNED}{approval_id}"], owner_id)


async def withdraw_stale_presets(conn: asyncpg.Connection, settings: Settings) -> None:
    """At start: disables the data debits that services the provider no longer pre-approves enabled
    while they were (their tokens already fail: they name a preset the settings lack)."""
    current = [PRESET + origin for origin in settings.preset_services]
    stale = await repository.stale_preset_claims(conn, current)
    owner = await accounts.special_account(conn, "owner")
    if stale and owner is not None:
        await _withdraw(conn, stale, str(owner))


async def _withdraw(conn: asyncpg.Connection, claims: list[str], owner_id: str) -> None:
    for key in await repository.take_grants(conn, claims):
        await debits.set_enabled(conn, str(key), False, owner_id)
