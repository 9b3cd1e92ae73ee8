"""bcrypt, off the event loop: hashing and checking passwords takes tens to hundreds of
milliseconds of CPU by design.

Logins check passwords on two lanes of threads of their own, so that no amount of login traffic
can take the CPU or the threads the rest of the HAT needs, and the owner's own login never waits
behind strangers' guesses: attempts from a device the owner has logged in from before (see
devices.py) run on the trusted lane, one at a time per device, everyone else's on the shared one.
A lane holds a bounded number of checks (running and waiting); one more is refused at once (Busy)
rather than queued."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import bcrypt

# bcrypt reads at most 72 bytes of a password; longer ones are refused rather than cut short.
MAX_PASSWORD_BYTES = 72
# An account with this hash cannot log in with any password.
NO_PASSWORD = "!"  # noqa: S105 (a marker, not a password)
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$")
# The costs a hash given ready-made (POST /users/user's `pass`) may have. Each step doubles the
# work: a cost-17 hash takes seconds to check, and anyone who knows the account's name could
# make the HAT run it again and again. Below 10 a stolen hash is cheap to crack.
MIN_GIVEN_COST = 10
# No hash above this cost is ever checked (one made before the limit existed matches nothing:
# give the account a new password with `hatd set-password`). HATD_BCRYPT_ROUNDS stays below it too.
MAX_COST = 14


def is_bcrypt_hash(value: str) -> bool:
    return bool(_BCRYPT_HASH.match(value))


def hash_cost(value: str) -> int | None:
    """The cost of a bcrypt hash, or None for anything else."""
    return int(value[4:6]) if is_bcrypt_hash(value) else None


def _hash(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def _check(password: str, hashed: str) -> bool:
    cost = hash_cost(hashed)
    if cost is None or cost > MAX_COST:
        return False
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:  # a password bcrypt refuses (too long): it matches nothing
        return False


async def hash_password(password: str, rounds: int) -> str:
    return await asyncio.get_running_loop().run_in_executor(None, _hash, password, rounds)


async def matches(password: str, hashed: str) -> bool:
    """Whether the password matches the hash, checked off the event loop (for the command line:
    requests check passwords in their lanes, check_password)."""
    return await asyncio.get_running_loop().run_in_executor(None, _check, password, hashed)


@functools.cache
def _decoy(rounds: int) -> str:
    return _hash("no account has this password", rounds)


class Busy(Exception):
    """A lane is full: the attempt is refused rather than queued."""


def _lower_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by `nice` (Linux keeps a nice value per thread)."""
    if not nice:
        return
    thread = threading.get_native_id()
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + nice))


class Lane:
    """`workers` threads for bcrypt, and room for `waiting` more checks queued for them. With
    `nice`, its threads yield the CPU to the rest of the process (the event loop, the other lane)."""

    def __init__(self, name: str, *, workers: int, waiting: int, nice: int = 0) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix=f"bcrypt-{name}",
            initializer=functools.partial(_lower_priority, nice),
        )
        # Released when the check ends, not when its request does: a client that hangs up does
        # not free the thread its check still holds.
        self._slots = threading.BoundedSemaphore(workers + waiting)
        # The holders (devices) with a check on this lane: one each.
        self._holders: set[str] = set()
        self._lock = threading.Lock()

    def _take(self, holder: str | None) -> None:
        with self._lock:
            if holder is not None and holder in self._holders:
                raise Busy
            if not self._slots.acquire(blocking=False):
                raise Busy
            if holder is not None:
                self._holders.add(holder)

    def _release(self, holder: str | None) -> None:
        with self._lock:
            if holder is not None:
                self._holders.discard(holder)
            self._slots.release()

    async def run(self, password: str, hashed: str, holder: str | None = None) -> bool:
        """Whether the password matches; Busy when the lane is full, or `holder` has a check on it."""
        self._take(holder)
        try:
            future = self._executor.submit(_check, password, hashed)
        except BaseException:
            self._release(holder)
            raise
        future.add_done_callback(lambda _: self._release(holder))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class Lanes:
    trusted: Lane
    shared: Lane

    @classmethod
    def create(cls) -> Lanes:
        # One core's worth for the owner's devices, the rest for everyone else (at least one thread).
        shared = max(1, (os.cpu_count() or 2) - 1)
        # Strangers' checks run at a lower priority: the owner's check and serving requests come first.
        return cls(
            trusted=Lane("trusted", workers=1, waiting=4),
            shared=Lane("shared", workers=shared, waiting=4 * shared, nice=10),
        )

    def close(self) -> None:
        self.trusted.close()
        self.shared.close()


async def check_password(
    password: str, hashed: str | None, rounds: int, lane: Lane, *, holder: str | None = None
) -> bool:
    """Whether the password matches. With no account (hashed None) bcrypt still runs, on a decoy,
    so the answer takes as long whether or not the username exists. Busy if the lane is full, or
    `holder` (a device) already has a check running or waiting on it."""
    target = hashed if hashed and is_bcrypt_hash(hashed) else _decoy(rounds)
    matched = await lane.run(password, target, holder)
    return matched and target is hashed
