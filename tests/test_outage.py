"""A database outage, made real: the HAT reaches its database through a proxy this test cuts and
restores. Meanwhile requests get 503 with Retry-After (never a 500 with a traceback), and the
outage is logged once when it starts and once when it ends."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from urllib.parse import parse_qs, urlsplit

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
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"postgresql://postgres@127.0.0.1:{port}/{self.name}?sslmode=disable"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
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
            "cause": "The database does not answer; nothing was stored; try again",
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
