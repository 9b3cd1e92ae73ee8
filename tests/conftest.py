"""Fixtures: a real PostgreSQL for the whole run, a fresh database per test, and an HTTP client
for a hatd app on it."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hatd.app import create_app
from hatd.embedded import EmbeddedPostgres
from hatd.settings import CONFIG_DIR, Settings, load
from tests import pg
from tests.openapi_check import check_every_response

OWNER = ("owner@hat.test", "owner-password")
PLATFORM = ("platform@hat.test", "platform-password")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load(files=(CONFIG_DIR / "test.toml",), environ={})


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    with pg.server() as dsn:
        yield dsn


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A scratch HATD_DATA_DIR; an embedded server left running in it is stopped after the test."""
    folder = pg.scratch_dir("hatd-cli-test-")
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        if (folder / "postgres" / "postmaster.pid").exists():
            leftover = EmbeddedPostgres(folder)
            leftover.start()
            leftover.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def template(admin_dsn: str, settings: Settings) -> Iterator[str]:
    name = f"hatd_template_{os.getpid()}"
    asyncio.run(pg.create_template(admin_dsn, name, settings))
    yield name
    asyncio.run(pg.drop(admin_dsn, name))


@pytest.fixture
async def database(admin_dsn: str, template: str) -> AsyncIterator[str]:
    """The DSN of a database of its own for this test: migrated, with the HAT created."""
    name = await pg.clone(admin_dsn, template)
    yield pg.with_database(admin_dsn, name)
    await pg.drop(admin_dsn, name)


MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def make_client(database: str, settings: Settings, aiohttp_client: Any) -> MakeClient:
    """make_client(**settings_changes): a client of a hatd app on this test's database. (`database`
    comes first so that it is dropped after the clients are closed.) Every response it receives is
    checked against the app's OpenAPI document (tests/openapi_check.py)."""

    async def make(**changes: Any) -> TestClient[Any, Any]:
        app = create_app(settings.replace(**{"database_url": database, **changes}))
        client: TestClient[Any, Any] = await aiohttp_client(app)
        return check_every_response(client)

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient[Any, Any]:
    return await make_client()


async def login(client: TestClient[Any, Any], username: str, password: str) -> str:
    response = await client.get("/users/access_token", headers={"username": username, "password": password})
    assert response.status == 200, await response.text()
    token: str = (await response.json())["accessToken"]
    return token


@pytest.fixture
async def owner_token(client: TestClient[Any, Any]) -> str:
    return await login(client, *OWNER)


@pytest.fixture
async def platform_token(client: TestClient[Any, Any]) -> str:
    return await login(client, *PLATFORM)


async def new_account(
    client: TestClient[Any, Any], token: str, role: str = "dataDebit", **fields: Any
) -> tuple[dict[str, Any], str]:
    """Creates an account through the API; returns (its JSON, a token for it)."""
    number = fields.pop("number", os.urandom(4).hex())
    body = {"email": f"app{number}@example.com", "pass": "app-password", "name": f"app{number}", "role": role, **fields}
    response = await client.post("/users/user", json=body, headers={"X-Auth-Token": token})
    assert response.status == 201, await response.text()
    account = await response.json()
    return account, await login(client, body["email"], body["pass"])


def auth(token: str) -> dict[str, str]:
    return {"X-Auth-Token": token}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """A skipped browser test is said in red at the end of the run, not only in the skip list."""
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if "BROWSER TESTS SKIPPED" in reason:
            terminalreporter.write_sep("!", reason.removeprefix("Skipped: "), red=True, bold=True)
            return
