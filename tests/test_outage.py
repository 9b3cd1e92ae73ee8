"""A database outage, made real: the HAT reaches its database through a proxy this test cuts and
restores. Meanwhile requests get 503 with Retry-After (never a 500 with a traceback), and the
outage is logged once when it starts and once when it ends."""

from __future__ import annotations

import asyncio
import logging
import struct
from contextlib import suppress
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from hatd import outage
from tests.conftest import OWNER, auth, login


class Proxy:
    """TCP on 127.0.0.1 to the test server's unix socket, which can be cut (every connection
    closed, new ones refused) and restored."""

    def __init__(self, database: str) -> None:
        parts = urlsplit(database)
        query = parse_qs(parts.query)
        self.socket = f"{query['host'][0]}/.s.PGSQL.{query.get('port', ['5432'])[0]}"
        self.name = parts.path.lstrip("/")
        self.up = True
        # A PostgreSQL error (SQLSTATE) new connections are refused with instead of being served.
        self.refuse_with: str | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"postgresql://postgres@127.0.0.1:{port}/{self.name}?sslmode=disable"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        if self.refuse_with is not None:  # as PostgreSQL refuses a connection: after the startup message
            (length,) = struct.unpack("!i", await reader.readexactly(4))
            await reader.readexactly(length - 4)
            fields = (
                b"".join(
                    kind + text.encode() + b"\0"
                    for kind, text in (
                        (b"S", "FATAL"),
                        (b"C", self.refuse_with),
                        (b"M", "sorry, too many clients already"),
                    )
                )
                + b"\0"
            )
            writer.write(b"E" + struct.pack("!i", len(fields) + 4) + fields)
            await writer.drain()
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_unix_connection(self.socket)
        self.writers += [writer, upstream_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    def cut(self) -> None:
        self.up = False
        for writer in self.writers:
            writer.close()
        self.writers.clear()

    async def close(self) -> None:
        self.cut()
        self.server.close()


@pytest.fixture
async def proxy(database):
    made = Proxy(database)
    yield made
    await made.close()


async def test_an_outage_answers_503_and_is_logged_once_at_start_and_once_at_end(
    make_client, proxy, caplog, monkeypatch
):
    monkeypatch.setattr(outage, "PROBE_INTERVAL", 0.05)
    client = await make_client(database_url=await proxy.start())
    token = await login(client, *OWNER)
    assert (await client.get("/users/user", headers=auth(token))).status == 200
    caplog.set_level(logging.INFO)
    proxy.cut()
    for path in ("/users/user", "/data/sources", "/users/access_token/validate"):
        response = await client.get(path, headers=auth(token))
        assert response.status == 503, await response.text()
        assert response.headers["Retry-After"] == "5"
        assert await response.json() == {
            "message": "Service unavailable",
            "cause": "The database does not answer; the request may not have been stored; try again",
        }
    proxy.up = True
    for _ in range(100):
        if any("answers again" in r.message for r in caplog.records):
            break
        await asyncio.sleep(0.05)
    assert (await client.get("/users/user", headers=auth(token))).status == 200
    logged = [r for r in caplog.records if r.name.startswith("hatd")]
    assert [r.levelname for r in logged] == ["ERROR", "WARNING"], [r.message for r in logged]
    assert "the database does not answer" in logged[0].message and not logged[0].exc_info
    assert "answers again after" in logged[1].message and "request(s) got 503" in logged[1].message


async def test_a_database_short_of_connections_answers_503_and_is_logged_once(make_client, proxy, caplog):
    """PostgreSQL refuses new connections (too many clients, SQLSTATE 53300) while it still runs:
    503 with Retry-After for every request that needs one, one log line, no traceback."""
    client = await make_client(database_url=await proxy.start())
    token = await login(client, *OWNER)
    caplog.set_level(logging.INFO)
    proxy.refuse_with = "53300"
    proxy.cut()  # the pool's connections close; every new one is refused
    proxy.up = True
    await asyncio.sleep(0.1)
    for path in ("/users/user", "/data/sources", "/users/user"):
        response = await client.get(path, headers=auth(token))
        assert response.status == 503, await response.text()
        assert response.headers["Retry-After"] == "5"
        assert await response.json() == {
            "message": "Service unavailable",
            "cause": "The database is short of resources (connections, disk or memory); nothing was stored; try again",
        }
    logged = [r for r in caplog.records if r.name.startswith("hatd") or r.levelno >= logging.ERROR]
    assert len(logged) == 1 and not logged[0].exc_info, [r.message for r in logged]
    assert "short of resources (TooManyConnectionsError" in logged[0].message
    proxy.refuse_with = None
    assert (await client.get("/users/user", headers=auth(token))).status == 200


async def test_a_full_disk_is_a_shortage_logged_once_per_spell(caplog, monkeypatch):
    """The database answers (no probe starts) but refuses writes: each is a 503, logged once a spell."""
    watch, pool = outage.DatabaseWatch(), object()
    caplog.set_level(logging.INFO)
    full = asyncpg.DiskFullError("could not extend file: No space left on device")
    assert [await watch.is_outage(pool, full) for _ in range(3)] == [True] * 3
    assert watch.since is None and outage.cause_of(full) == outage.SHORT_CAUSE
    monkeypatch.setattr(outage, "SHORTAGE_QUIET", -1.0)  # the spell is over: the next one is logged
    assert await watch.is_outage(pool, full)
    messages = [r.message for r in caplog.records]
    assert len(messages) == 2 and "short of resources (DiskFullError" in messages[0]
    assert "the last spell refused 3" in messages[1]
