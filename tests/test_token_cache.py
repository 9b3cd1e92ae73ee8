"""Token checks answered from memory (hatd/callers.py): every process serving a HAT keeps its
accounts' standing and its approvals in memory, and the database's notifications end a disabled
account's or a revoked approval's tokens at once in all of them; while a process cannot hear them,
it asks the database for every request."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import asyncpg
import jwt
import pytest

from hatd import callers, tokens
from hatd.callers import CallerCache
from hatd.state import CALLERS, TOKENS
from tests import pg
from tests.conftest import OWNER, auth, login, new_account
from tests.test_cli import Server, free_port, hatd_env
from tests.test_web_services import _approval_ids, _approve, _token_from_hatlogin
from tests.web_helpers import logged_in

VALIDATE = "/users/access_token/validate"
DISABLED = {"message": "The supplied authentication is invalid", "cause": "The token's account is disabled"}
REVOKED = {
    "message": "The supplied authentication is invalid",
    "cause": "The token was given to a service whose approval the owner has revoked",
}


def cache_of(client: Any) -> CallerCache:
    return client.app[CALLERS]


async def until(condition: Any, what: str) -> None:
    """Waits (up to 20 s) for something the test cannot make happen at a known moment."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"still not {what}")


async def answer(client: Any, token: str, path: str = VALIDATE) -> tuple[int, Any]:
    response = await client.get(path, headers=auth(token))
    return response.status, await response.json()


async def remembered(client: Any, token: str) -> None:
    """Asks twice with the token: the second check must come from memory, asking the database nothing.
    A busy machine can let the listener's lease lapse between the two (memory is then rightly not
    trusted), so this tries a few times; memory must answer in one of them."""
    cache = cache_of(client)
    for _ in range(5):
        await until(lambda: cache.trusted, "trusting memory")
        assert await answer(client, token) == (200, {"message": "Authenticated"})
        hits, misses = cache.hits, cache.misses
        assert await answer(client, token) == (200, {"message": "Authenticated"})
        if (cache.hits > hits, cache.misses) == (True, misses):
            return
    pytest.fail("the second check never came from memory")


async def test_disabling_an_account_ends_its_token_at_once(client, owner_token):
    assert cache_of(client).trusted
    account, token = await new_account(client, owner_token)
    await remembered(client, token)
    disabled = await client.put(f"/users/user/{account['userId']}/disable", headers=auth(owner_token))
    assert disabled.status == 200
    assert await answer(client, token) == (401, DISABLED)
    assert await answer(client, token, "/data/sources") == (401, DISABLED)
    enabled = await client.put(f"/users/user/{account['userId']}/enable", headers=auth(owner_token))
    assert enabled.status == 200
    await remembered(client, token)


async def test_a_change_through_one_process_ends_the_token_at_once_in_another(make_client):
    first, second = await make_client(), await make_client()
    assert cache_of(first) is not cache_of(second)
    owner = await login(first, *OWNER)
    account, token = await new_account(first, owner)
    await remembered(second, token)
    await remembered(first, token)
    assert (await first.put(f"/users/user/{account['userId']}/disable", headers=auth(owner))).status == 200
    assert await answer(second, token) == (401, DISABLED)
    assert await answer(first, token) == (401, DISABLED)
    # And back, the other way round.
    assert (await second.put(f"/users/user/{account['userId']}/enable", headers=auth(owner))).status == 200
    assert await answer(first, token) == (200, {"message": "Authenticated"})
    await remembered(first, token)


async def test_revoking_an_approval_in_one_process_ends_its_tokens_at_once_in_another(make_client):
    pages, api = await make_client(), await make_client()
    csrf = await logged_in(pages)
    assert (await _approve(pages, csrf, "Rumpel", "https://rumpel.example")).status == 303
    _, token = await _token_from_hatlogin(pages)
    await remembered(api, token)
    approvals_held = len(cache_of(api)._approvals)
    assert approvals_held == 1
    [approval_id] = await _approval_ids(pages)
    revoked = await pages.post(f"/owner/services/{approval_id}/revoke", data={"csrf": csrf}, allow_redirects=False)
    assert revoked.status == 303
    assert await answer(api, token) == (401, REVOKED)
    assert await answer(api, token, "/data/sources") == (401, REVOKED)


def _second_server(database: str, tmp_path: Any) -> Server:
    """A real `hatd serve` on the same database, starting (wait_until_serving)."""
    port = free_port()
    env = hatd_env(
        tmp_path,
        database_url=database,
        host="127.0.0.1",
        port=str(port),
        hat_address="http://hat.test",
        owner_email=OWNER[0],
        owner_password=OWNER[1],
        log_level="warning",
        metrics_token="scrape-secret",
    )
    return Server(env, tmp_path)


async def test_a_change_is_heard_by_a_separate_hatd_serve_process(client, owner_token, database, tmp_path):
    """The other process is a real `hatd serve` on the same database."""
    server = _second_server(database, tmp_path)
    try:
        await asyncio.to_thread(server.wait_until_serving)
        account, token = await new_account(client, owner_token)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{server.port}") as other:
            for _ in range(2):
                assert await answer(other, token) == (200, {"message": "Authenticated"})
            disabled = await client.put(f"/users/user/{account['userId']}/disable", headers=auth(owner_token))
            assert disabled.status == 200
            assert await answer(other, token) == (401, DISABLED)
            # It listens, and answered the token's second check from memory.
            async with other.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}) as response:
                metrics = await response.text()
        assert "hatd_token_cache_listening 1\n" in metrics
        memory = re.search(r'hatd_token_cache_lookups\{source="memory"\} (\d+)\n', metrics)
        assert memory and int(memory[1]) >= 1, metrics
    finally:
        assert await asyncio.to_thread(server.terminate) == 0, server.output()


async def test_without_its_listening_connection_a_process_asks_the_database_then_recovers(
    client, owner_token, database, monkeypatch
):
    monkeypatch.setattr(callers, "RETRY_FIRST", 2.0)  # time to look while it is not listening
    cache = cache_of(client)
    account, token = await new_account(client, owner_token)
    await remembered(client, token)
    admin = await asyncpg.connect(database)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 10000)", cache.listener_pid)
        await until(lambda: not cache.trusted and cache.size() == 0, "noticed the lost connection")
        misses = cache.misses
        disabled = await client.put(f"/users/user/{account['userId']}/disable", headers=auth(owner_token))
        assert disabled.status == 200
        assert await answer(client, token) == (401, DISABLED)
        assert await answer(client, token) == (401, DISABLED)
        assert not cache.trusted, "it listened again too soon for this test to see the fallback"
        assert cache.misses >= misses + 2 and cache.size() == 0  # each check asked; nothing was kept
        metrics = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert "hatd_token_cache_listening 0\n" in await metrics.text()

        await until(lambda: cache.trusted, "listening again")
        assert cache.connections == 2
        assert await answer(client, token) == (401, DISABLED)
        enabled = await client.put(f"/users/user/{account['userId']}/enable", headers=auth(owner_token))
        assert enabled.status == 200
        await remembered(client, token)
        # And notifications are heard again.
        disabled = await client.put(f"/users/user/{account['userId']}/disable", headers=auth(owner_token))
        assert disabled.status == 200
        assert await answer(client, token) == (401, DISABLED)
    finally:
        await admin.close()


class Paused:
    """A connection whose lookups read the row, then wait to be let go before answering."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.read = asyncio.Event()
        self.go = asyncio.Event()

    async def fetchrow(self, *args: Any) -> Any:
        row = await self.conn.fetchrow(*args)
        self.read.set()
        await self.go.wait()
        return row


@pytest.fixture
async def listening(database):
    """A CallerCache listening on this test's database, and a connection to it."""
    cache = CallerCache(max_entries=2)
    task = asyncio.create_task(cache.listen(database))
    await cache.attempted.wait()
    assert cache.trusted
    conn = await asyncpg.connect(database)
    yield cache, conn
    await conn.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_lookup_that_read_before_a_change_it_hears_of_is_not_kept(listening):
    cache, conn = listening
    owner = str(await conn.fetchval("SELECT user_id FROM accounts WHERE role = 'owner'"))
    platform_id = await conn.fetchval("SELECT user_id FROM accounts WHERE role = 'platform'")
    paused = Paused(conn)
    lookup = asyncio.create_task(cache.standing(paused, str(platform_id)))  # type: ignore[arg-type]
    await paused.read.wait()
    heard = cache.notifications
    await conn.execute("UPDATE accounts SET role = role WHERE user_id = $1", platform_id)
    await until(lambda: cache.notifications > heard, "heard of the change")
    paused.go.set()
    assert (await lookup).role == "platform"  # the answer it read stands for that request
    assert cache.size() == 0  # but is not kept
    assert (await cache.standing(conn, owner)).role == "owner"
    assert cache.size() == 1


async def test_memory_is_bounded(listening):
    cache, conn = listening
    for number in range(3):
        await conn.execute(
            "INSERT INTO accounts (email, name, pass_hash, role) VALUES ($1, $1, '!', 'dataDebit')", f"b{number}@x.test"
        )
    await until(lambda: cache.notifications >= 3, "heard of the new accounts")
    ids = [str(row["user_id"]) for row in await conn.fetch("SELECT user_id FROM accounts")]
    assert len(ids) == 5
    for user_id in ids:
        assert (await cache.standing(conn, user_id)) is not None
    assert len(cache._accounts) == 2
    assert list(cache._accounts) == ids[-2:]  # the least recently used went first


async def test_a_hat_does_not_hear_another_hats_changes(listening, admin_dsn, template):
    cache, conn = listening
    name = await pg.clone(admin_dsn, template)
    other_hat = CallerCache()
    task = asyncio.create_task(other_hat.listen(pg.with_database(admin_dsn, name)))
    try:
        await other_hat.attempted.wait()
        assert other_hat.trusted
        await conn.execute("UPDATE accounts SET enabled = enabled")
        await until(lambda: cache.notifications > 0, "heard of its own change")
        other = await asyncpg.connect(pg.with_database(admin_dsn, name))
        try:
            await other.execute("SELECT pg_notify('hatd_callers', 'flush')")  # one it does hear, after
        finally:
            await other.close()
        await until(lambda: other_hat.notifications > 0, "heard of its own notification")
        assert other_hat.notifications == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pg.drop(admin_dsn, name)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


async def test_a_token_whose_check_is_remembered_still_expires(client, owner_token, monkeypatch):
    assert await answer(client, owner_token) == (200, {"message": "Authenticated"})
    assert owner_token in client.app[TOKENS]._checked
    expires = jwt.decode(owner_token, options={"verify_signature": False})["exp"]
    monkeypatch.setattr(tokens, "time", Clock(expires + tokens.LEEWAY_SECONDS - 1))
    assert await answer(client, owner_token) == (200, {"message": "Authenticated"})
    monkeypatch.setattr(tokens, "time", Clock(expires + tokens.LEEWAY_SECONDS))
    expired = {"message": "The supplied authentication is invalid", "cause": "The token has expired"}
    assert await answer(client, owner_token) == (401, expired)
    assert owner_token not in client.app[TOKENS]._checked


async def test_a_stalled_listener_stops_trusting_its_memory_before_the_writer_answers(make_client):
    """A process whose listening connection stalls (a network cut without FIN, a busy event loop, here
    a socket that reads nothing) neither acks nor hears the change: the writer answers only after its
    lease has run out, so it asks the database."""
    first, second = await make_client(), await make_client()
    owner = await login(first, *OWNER)
    account, token = await new_account(first, owner)
    await remembered(second, token)
    listener = cache_of(second)._listener
    assert listener is not None
    listener._transport.pause_reading()  # type: ignore[attr-defined]
    try:
        disabled = await first.put(f"/users/user/{account['userId']}/disable", headers=auth(owner))
        assert disabled.status == 200
        assert not cache_of(second).trusted
        assert await answer(first, token) == (401, DISABLED)
        assert await answer(second, token) == (401, DISABLED)
    finally:
        if not listener.is_closed():
            listener._transport.resume_reading()  # type: ignore[attr-defined]


async def test_a_writer_whose_own_listener_is_down_still_waits_for_the_others(make_client, database, monkeypatch):
    """It hears the acks on its own transaction's connection: here it waits for a listening session
    (slow) that acks only when the test says so."""
    monkeypatch.setattr(callers, "RETRY_FIRST", 30.0)
    monkeypatch.setattr(callers, "ECHO_TIMEOUT", 60.0)
    first, second = await make_client(), await make_client()
    owner = await login(first, *OWNER)
    markers: list[str] = []
    admin = await asyncpg.connect(database)
    slow = await asyncpg.connect(database, server_settings={"application_name": callers.LISTENER_NAME})
    try:
        await slow.add_listener(callers.CHANNEL, lambda _c, _p, _ch, payload: markers.append(payload))
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 10000)", cache_of(first).listener_pid)
        await until(lambda: cache_of(first)._listener is None, "first noticed its lost listener")
        account, token = await new_account(first, owner)
        await remembered(second, token)
        disable = asyncio.create_task(first.put(f"/users/user/{account['userId']}/disable", headers=auth(owner)))
        await until(lambda: any(m.startswith("echo:") for m in markers), "heard the change's marker")
        [marker] = [m for m in markers if m.startswith("echo:")]
        await asyncio.sleep(0.2)  # room for a wrong answer to arrive
        assert not disable.done(), "the disable answered before every listening session had acked"
        await slow.execute("SELECT pg_notify($1, $2)", callers.CHANNEL, callers.ACK + marker)
        assert (await disable).status == 200
        assert await answer(second, token) == (401, DISABLED)
    finally:
        await slow.close()
        await admin.close()


async def test_a_revoke_through_a_process_not_listening_ends_the_token_in_the_others(
    make_client, database, monkeypatch
):
    monkeypatch.setattr(callers, "RETRY_FIRST", 30.0)
    pages, api = await make_client(), await make_client()
    csrf = await logged_in(pages)
    admin = await asyncpg.connect(database)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 10000)", cache_of(pages).listener_pid)
        await until(lambda: cache_of(pages)._listener is None, "pages noticed its lost listener")
        for _ in range(2):
            assert (await _approve(pages, csrf, "Rumpel", "https://rumpel.example")).status == 303
            _, token = await _token_from_hatlogin(pages)
            await remembered(api, token)
            [approval_id] = await _approval_ids(pages)
            revoked = await pages.post(
                f"/owner/services/{approval_id}/revoke", data={"csrf": csrf}, allow_redirects=False
            )
            assert revoked.status == 303
            assert await answer(api, token) == (401, REVOKED)
    finally:
        await admin.close()


async def test_a_disable_waits_for_the_ack_of_each_listening_session(client, owner_token, database, monkeypatch):
    """Acks are matched to the listening sessions by their server process: an ack from any other
    session does not stand for a listener that has not answered."""
    monkeypatch.setattr(callers, "ECHO_TIMEOUT", 60.0)
    account, token = await new_account(client, owner_token)
    markers: list[str] = []
    slow = await asyncpg.connect(database, server_settings={"application_name": callers.LISTENER_NAME})
    other = await asyncpg.connect(database)
    try:
        await slow.add_listener(callers.CHANNEL, lambda _c, _p, _ch, payload: markers.append(payload))
        disable = asyncio.create_task(client.put(f"/users/user/{account['userId']}/disable", headers=auth(owner_token)))
        await until(lambda: any(m.startswith("echo:") for m in markers), "heard the change's marker")
        [marker] = [m for m in markers if m.startswith("echo:")]
        # The client's own listener acks; so does a session that is not listening, in slow's place.
        await other.execute("SELECT pg_notify($1, $2)", callers.CHANNEL, callers.ACK + marker)
        await until(lambda: markers.count(callers.ACK + marker) == 2, "heard both acks")
        await asyncio.sleep(0.2)  # room for a wrong answer to arrive
        assert not disable.done(), "the disable answered before every listening session had acked"
        await slow.execute("SELECT pg_notify($1, $2)", callers.CHANNEL, callers.ACK + marker)
        disabled = await disable
        assert disabled.status == 200
        assert await answer(client, token) == (401, DISABLED)
    finally:
        await other.close()
        await slow.close()


async def test_a_lookup_begun_while_not_listening_is_not_kept_once_listening_again(listening, database, monkeypatch):
    """What a lookup read while nobody listened may have changed unheard before listening resumed."""
    cache, conn = listening
    monkeypatch.setattr(callers, "RETRY_FIRST", 1.0)
    platform_id = await conn.fetchval("SELECT user_id FROM accounts WHERE role = 'platform'")
    assert await conn.fetchval("SELECT pg_terminate_backend($1, 10000)", cache.listener_pid)
    await until(lambda: cache._listener is None, "noticed the lost connection")
    paused = Paused(conn)
    lookup = asyncio.create_task(cache.standing(paused, str(platform_id)))  # type: ignore[arg-type]
    await paused.read.wait()
    assert cache.connections == 1, "it listened again too soon for this test"
    await until(lambda: cache.trusted, "listening again")
    paused.go.set()
    assert (await lookup).role == "platform"
    assert cache.size() == 0


async def test_a_direct_change_in_the_database_reaches_a_separate_process_through_its_trigger(
    client, owner_token, database, tmp_path
):
    """No route, no ack: only the trigger's notification can make the other process forget."""
    server = _second_server(database, tmp_path)
    admin = await asyncpg.connect(database)
    try:
        await asyncio.to_thread(server.wait_until_serving)
        account, token = await new_account(client, owner_token)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{server.port}") as other:

            async def from_memory() -> int:
                async with other.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}) as response:
                    found = re.search(r'hatd_token_cache_lookups\{source="memory"\} (\d+)\n', await response.text())
                assert found
                return int(found[1])

            before = await from_memory()
            for _ in range(3):
                assert await answer(other, token) == (200, {"message": "Authenticated"})
            assert await from_memory() > before, "the other process never answered from memory"
            await admin.execute("UPDATE accounts SET enabled = false WHERE user_id = $1", account["userId"])
            for _ in range(200):  # memory answers until the notification is heard, then never again
                if await answer(other, token) == (401, DISABLED):
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the other process never heard of the change")
            assert await answer(other, token) == (401, DISABLED)
    finally:
        await admin.close()
        assert await asyncio.to_thread(server.terminate) == 0, server.output()


async def test_acks_still_pending_when_the_listening_connection_ends_are_ended_with_it(listening):
    """They would otherwise run on a connection being closed (and die unretrieved)."""
    cache, conn = listening
    pending = asyncio.create_task(asyncio.Event().wait())  # an ack that has not been sent yet
    cache._acks.add(pending)
    assert await conn.fetchval("SELECT pg_terminate_backend($1, 10000)", cache.listener_pid)
    await until(lambda: cache._listener is None, "noticed the lost connection")
    await until(lambda: pending.done(), "ended the pending ack")
    assert pending.cancelled()


async def test_listening_that_never_starts_is_given_up_after_the_connect_timeout(database, monkeypatch):
    async def never(*_: Any) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(callers, "CONNECT_TIMEOUT", 0.2)
    monkeypatch.setattr(asyncpg.Connection, "add_listener", never)
    cache = CallerCache()
    task = asyncio.create_task(cache.listen(database))
    try:
        await asyncio.wait_for(cache.attempted.wait(), 20)
        assert not cache.trusted
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
