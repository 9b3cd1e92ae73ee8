"""What checking a token asks of the database, kept in memory: an account's role and whether it is
enabled, and whether the approval a service's token names still stands.

The database says when either changes: triggers (sql/schema/0015_caller_notifications.sql) NOTIFY
the channel hatd_callers as the change commits, and every process serving the HAT LISTENs on it
over a connection of its own, forgetting everything it holds at each notification. A request
that disables an account or revokes an approval answers only once every listening process has
said (an ack on the channel) that it forgot: its tokens end in every process at once, as when
each request asked the database.

Memory is trusted only under a lease: while that connection is up AND it answered a query sent
less than LEASE ago (it is asked one every KEEPALIVE). A reply to a query sent after a change
committed comes after that change's notification on the same connection, so a process that has
not heard a change stops trusting its memory within LEASE of it, whatever went wrong (a connection
lost without a word, a stalled socket, a busy event loop); a writer waits for acks longer than
LEASE (ECHO_TIMEOUT), so by the time it answers, any process that did not ack asks the database.
Before the connection is up (startup), once it is lost (a restart, a network cut,
pg_terminate_backend) and until it is back, every token check asks the database, and the cache
starts empty on each new connection: what changed meanwhile was not heard.
A change heard while a lookup is in flight may have come after that lookup read the row; a
generation counter, moved by every notification and (re)connection, keeps such an answer out of
memory. Memory is bounded (MAX_ENTRIES each, the least recently used go first).

NOTIFY reaches only the sessions of the database it was sent in, and each HAT has its own
database: no HAT hears another's changes. Knows nothing of HTTP."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from hatd import db
from hatd.accounts import repository as accounts
from hatd.db import Conn
from hatd.services import repository as services

log = logging.getLogger("hatd.callers")
Q = db.queries("callers")

CHANNEL = "hatd_callers"
# The application_name of the listening connections, by which a process counts them.
LISTENER_NAME = "hatd callers"
ACK = "ack:"
# Entries of each kind (accounts, approvals) held at most. A HAT has a handful of each.
MAX_ENTRIES = 4096
# The listening connection is asked a query (one round trip, no row read) this often (seconds);
# memory is trusted only within LEASE of sending the last one answered. A query not answered within
# KEEPALIVE_TIMEOUT ends the connection (a new one is made).
KEEPALIVE = 0.5
LEASE = 1.0
KEEPALIVE_TIMEOUT = 5.0
CONNECT_TIMEOUT = 10.0
# How long a change waits (seconds) for every process to have forgotten before answering anyway. It
# must exceed LEASE: a process that has not acked by then no longer trusts its memory.
ECHO_TIMEOUT = 1.5
# Reconnecting waits this long after a failure, doubling up to RETRY_MAX.
RETRY_FIRST = 0.1
RETRY_MAX = 5.0

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Standing:
    """What a token check needs of its account."""

    role: str
    enabled: bool


class CallerCache:
    """One process's memory of accounts' standing and approvals, with the connection that keeps it true."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max = max_entries
        self._accounts: OrderedDict[str, Standing] = OrderedDict()
        self._approvals: OrderedDict[int, bool] = OrderedDict()
        self._generation = 0
        self._listener: asyncpg.Connection | None = None
        # When (time.monotonic) the last keepalive query answered was sent.
        self._renewed = 0.0
        # Acks being sent, and the lock that keeps them and the keepalive query apart.
        self._acks: set[asyncio.Task[None]] = set()
        self._talking = asyncio.Lock()
        # Set once the first attempt to listen has ended, either way.
        self.attempted = asyncio.Event()
        # For /metrics and the tests: checks answered from memory, and from the database.
        self.hits = 0
        self.misses = 0
        self.notifications = 0
        self.connections = 0

    @property
    def trusted(self) -> bool:
        """Whether memory may answer: the listening connection is up, and its lease is current."""
        return (
            self._listener is not None and not self._listener.is_closed() and time.monotonic() - self._renewed < LEASE
        )

    @property
    def listener_pid(self) -> int | None:
        """The server process of the listening connection, while there is one."""
        return self._listener.get_server_pid() if self._listener is not None else None

    def size(self) -> int:
        return len(self._accounts) + len(self._approvals)

    def forget(self) -> None:
        """Drops everything held, and keeps answers to lookups in flight out of memory."""
        self._generation += 1
        self._accounts.clear()
        self._approvals.clear()

    @asynccontextmanager
    async def changing(self, pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
        """db.transaction for a change to what token checks read (an account enabled or disabled,
        an approval revoked) that ends only once every process serving the HAT has forgotten
        what it held: the transaction also sends a marker, each process answers it (with an
        ack, on its listening connection) after forgetting, and this waits until every listening
        session it saw before committing has acked (ECHO_TIMEOUT at most: a process that does
        not answer by then is stuck or has lost its connection, and its lease has run out).

        The acks are heard on the transaction's own connection, listening from before the
        transaction to the end of the wait, so this waits whether or not this process's own
        listening connection is up."""
        marker = f"echo:{uuid.uuid4().hex}"
        expected: set[int] = set()
        acked: set[int] = set()
        done = asyncio.Event()

        def heard(_conn: Any, pid: int, _channel: str, payload: str) -> None:
            if payload == ACK + marker:
                acked.add(pid)
                if expected <= acked:
                    done.set()

        async with pool.acquire() as conn:
            await conn.add_listener(CHANNEL, heard)
            try:
                async with conn.transaction():
                    yield conn
                    expected.update(await conn.fetchval(Q.listeners, LISTENER_NAME))
                    await conn.execute(Q.announce, marker)
                self.forget()
                if expected <= acked:
                    done.set()
                with suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), ECHO_TIMEOUT)
                if not done.is_set():
                    log.debug("%s: no ack from the listening sessions %s", marker, sorted(expected - acked))
            finally:
                # Before it returns to the pool; a connection lost meanwhile is dropped by the pool.
                with suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    await conn.remove_listener(CHANNEL, heard)

    async def standing(self, conn: Conn, user_id: str) -> Standing | None:
        """The role and enabled flag of the account a token names, or None if there is none."""

        async def load() -> Standing | None:
            row = await accounts.caller_status(conn, user_id)
            return None if row is None else Standing(role=row["role"], enabled=row["enabled"])

        return await self._lookup(self._accounts, user_id, load)

    async def approval_stands(self, conn: Conn, approval_id: int) -> bool:
        """Whether the owner's approval a token was given under still stands."""

        async def load() -> bool | None:
            return await services.approval_stands(conn, approval_id)

        stands: bool | None = await self._lookup(self._approvals, approval_id, load)
        return bool(stands)

    async def _lookup(self, held: OrderedDict[K, V], key: K, load: Callable[[], Awaitable[V | None]]) -> V | None:
        if self.trusted:
            found = held.get(key)
            if found is not None:
                self.hits += 1
                held.move_to_end(key)
                return found
        self.misses += 1
        generation = self._generation
        value = await load()
        # Stored only if nothing was heard (and the connection did not change) since the lookup began.
        if value is not None and self.trusted and generation == self._generation:
            held[key] = value
            if len(held) > self._max:
                held.popitem(last=False)
        return value

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        self.notifications += 1
        if payload.startswith(ACK):  # a process has forgotten (heard by the writer); nothing changed
            return
        log.debug("heard %s on %s: forgetting %d entries", payload, channel, self.size())
        self.forget()
        if payload.startswith("echo:"):
            self._acks.add(asyncio.create_task(self._ack(conn, payload)))

    async def _ack(self, conn: asyncpg.Connection, marker: str) -> None:
        try:
            async with self._talking:
                await conn.execute(Q.announce, ACK + marker, timeout=KEEPALIVE_TIMEOUT)
        except Exception as exc:  # the connection is lost or closing: noticed anyway, and the lease runs out
            log.debug("could not acknowledge %s: %s", marker, exc)
        finally:
            self._acks.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def listen(self, dsn: str) -> None:
        """Keeps a connection listening on CHANNEL until cancelled, reconnecting when it is lost."""
        wait = RETRY_FIRST
        while True:
            connections = self.connections
            try:
                await self._listen_once(dsn)
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.debug("not listening on %s: %s", CHANNEL, exc)
            except Exception:
                log.exception("not listening on %s", CHANNEL)
            self.attempted.set()
            if self.connections > connections:  # it listened: the next failure starts the waits over
                wait = RETRY_FIRST
            await asyncio.sleep(wait)
            wait = min(wait * 2, RETRY_MAX)

    async def _listen_once(self, dsn: str) -> None:
        """Listens over one connection until it is lost, renewing the lease all along."""
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT, server_settings={"application_name": LISTENER_NAME})
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _: lost.set())
            sent = time.monotonic()
            await asyncio.wait_for(conn.add_listener(CHANNEL, self._notified), CONNECT_TIMEOUT)
            # Whatever changed while nobody listened was not heard, and lookups begun meanwhile
            # may have read it: neither may stay in memory.
            self.forget()
            self._renewed = sent
            self._listener = conn
            self.connections += 1
            self.attempted.set()
            log.debug("listening on %s (server process %s)", CHANNEL, conn.get_server_pid())
            while not lost.is_set():
                with suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), max(0.0, sent + KEEPALIVE - time.monotonic()))
                if lost.is_set():
                    break
                async with self._talking:
                    sent = time.monotonic()
                    await conn.execute(Q.keepalive, timeout=KEEPALIVE_TIMEOUT)
                self._renewed = sent
            log.debug("the listening connection was closed; checking tokens against the database")
        finally:
            self._listener = None
            self.forget()
            acks = list(self._acks)
            for task in acks:
                task.cancel()
            await asyncio.gather(*acks, return_exceptions=True)
            if not conn.is_closed():
                await _close(conn)


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await conn.close(timeout=KEEPALIVE_TIMEOUT)
    except Exception:
        conn.terminate()
