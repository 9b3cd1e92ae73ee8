"""When the database stops answering: requests get 503 with Retry-After, not a 500 and a
traceback each, and the outage is logged once when it starts and once when it ends (a probe
asks the database every PROBE_INTERVAL seconds meanwhile).

A database that answers but is short of resources (too many connections, disk full, out of
memory: PostgreSQL's class 53) refuses only the requests that need them: those get 503 too,
logged once per spell (SHORTAGE_QUIET seconds without one ends it), with no probe, since the
database still answers the others."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from hatd import db

log = logging.getLogger("hatd.database")

# What clients are told to wait, in seconds.
RETRY_AFTER = 5
PROBE_INTERVAL = 1.0
PROBE_TIMEOUT = 2.0
# A spell of resource refusals ends after this many seconds without one; the next is logged again.
SHORTAGE_QUIET = 60.0

# Errors that can only mean the server is gone, shutting down, or not yet up.
_DOWN = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
# Errors that may mean it (a refused or reset socket, a closed connection), or something else: a
# probe of the database decides.
_MAYBE_DOWN = (OSError, asyncpg.InterfaceError)
# The database answers but cannot take this request: TooManyConnectionsError, DiskFullError,
# OutOfMemoryError, ConfigurationLimitExceededError.
_SHORT = asyncpg.InsufficientResourcesError

# What the 503 says. A connection lost during COMMIT may have committed: the client must check
# before it repeats a write. A refusal for resources came from the database itself: it undid all.
DOWN_CAUSE = "The database does not answer; the request may not have been stored; try again"
SHORT_CAUSE = "The database is short of resources (connections, disk or memory); nothing was stored; try again"


def cause_of(exc: BaseException) -> str:
    """The 503's cause for an error is_outage took for the database being unavailable."""
    return SHORT_CAUSE if isinstance(exc, _SHORT) else DOWN_CAUSE


async def answers(pool: asyncpg.Pool) -> bool:
    """Whether the database answers a query now."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await pool.fetchval(db.Q.health)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    return True


class DatabaseWatch:
    """The state of an outage of one pool's database, for the error middleware."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.refused = 0
        self._probe: asyncio.Task[None] | None = None
        # The last refusal for resources (time.monotonic()), and how many this spell has had.
        self._short_last: float | None = None
        self._short_refused = 0

    async def is_outage(self, pool: asyncpg.Pool | None, exc: BaseException) -> bool:
        """Whether `exc`, raised by a request, is the database being unavailable; the first such
        error starts an outage (logged) and a probe that ends it (logged) when the database answers."""
        if pool is None:
            return False
        if self.since is None and isinstance(exc, _SHORT):
            self._shortage(exc)
            return True
        if self.since is None:
            if not isinstance(exc, _DOWN) and not (isinstance(exc, _MAYBE_DOWN) and not await answers(pool)):
                return False
            if self.since is None:  # another request may have started it while this one probed
                self.since = time.monotonic()
                log.error("the database does not answer (%s: %s); requests get 503 until it does",
                          type(exc).__name__, exc)  # fmt: skip
                self._probe = asyncio.create_task(self._until_it_answers(pool))
        self.refused += 1
        return True

    def _shortage(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._short_last is None or now - self._short_last > SHORTAGE_QUIET:
            ended = f" (the last spell refused {self._short_refused})" if self._short_refused else ""
            log.error("the database is short of resources (%s: %s); requests that need them get 503%s",
                      type(exc).__name__, exc, ended)  # fmt: skip
            self._short_refused = 0
        self._short_last = now
        self._short_refused += 1

    async def _until_it_answers(self, pool: asyncpg.Pool) -> None:
        while True:
            if await answers(pool):
                break
            await asyncio.sleep(PROBE_INTERVAL)
        assert self.since is not None
        log.warning("the database answers again after %.1f s; %d request(s) got 503 meanwhile",
                    time.monotonic() - self.since, self.refused)  # fmt: skip
        self.since, self.refused, self._probe = None, 0, None

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
