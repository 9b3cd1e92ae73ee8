"""bcrypt, off the event loop: hashing and checking passwords takes tens to hundreds of
milliseconds of CPU by design."""

from __future__ import annotations

import asyncio
import functools
import re

import bcrypt

# bcrypt reads at most 72 bytes of a password; longer ones are refused rather than cut short.
MAX_PASSWORD_BYTES = 72
# An account with this hash cannot log in with any password.
NO_PASSWORD = "!"  # noqa: S105 (a marker, not a password)
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$")


def is_bcrypt_hash(value: str) -> bool:
    return bool(_BCRYPT_HASH.match(value))


def _hash(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def _check(password: str, hashed: str) -> bool:
    if not is_bcrypt_hash(hashed):
        return False
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:  # a password bcrypt refuses (too long): it matches nothing
        return False


async def hash_password(password: str, rounds: int) -> str:
    return await asyncio.get_running_loop().run_in_executor(None, _hash, password, rounds)


@functools.cache
def _decoy(rounds: int) -> str:
    return _hash("no account has this password", rounds)


async def check_password(password: str, hashed: str | None, rounds: int) -> bool:
    """Whether the password matches. With no account (hashed None) bcrypt still runs, on a decoy,
    so the answer takes as long whether or not the username exists."""
    target = hashed if hashed and is_bcrypt_hash(hashed) else _decoy(rounds)
    matched = await asyncio.get_running_loop().run_in_executor(None, _check, password, target)
    return matched and target is hashed
