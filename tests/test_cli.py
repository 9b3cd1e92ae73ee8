"""The `hatd` command run as real processes: help, settings errors, migrate, create-owner,
set-password, and serve over real HTTP (on a given database, and on the embedded PostgreSQL)."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import bcrypt
import jwt
import pytest

from hatd.cli import serving_line
from hatd.db import available_migrations
from hatd.embedded import EmbeddedPostgres
from hatd.provision import recorded_address
from hatd.settings import load
from tests import pg

REPO = Path(__file__).resolve().parent.parent
ISSUER = "http://hat.cli.test"
OWNER_EMAIL = "owner@cli.test"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def hatd_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """This process's environment without its HATD_* variables, plus the settings given (as
    HATD_<NAME>); hatd's own files go under tmp_path unless HATD_DATA_DIR is given."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("HATD_")}
    env.update(
        {
            "HATD_DATA_DIR": str(tmp_path / "var"),
            "HATD_HAT_ADDRESS": ISSUER,
            "HATD_OWNER_EMAIL": OWNER_EMAIL,
            "HATD_BCRYPT_ROUNDS": "4",
        }
    )
    env.update({f"HATD_{name.upper()}": value for name, value in settings.items()})
    return env


def hatd(*args: str, env: dict[str, str], stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hatd", *args],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def database_url(admin_dsn: str) -> Iterator[str]:
    """The DSN of a new, empty database of this test's own."""
    name = asyncio.run(pg.empty_database(admin_dsn))
    try:
        yield pg.with_database(admin_dsn, name)
    finally:
        asyncio.run(pg.drop(admin_dsn, name))


async def _fetchrow(dsn: str, query: str, *args: Any) -> asyncpg.Record | None:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchrow(query, *args)
    finally:
        await conn.close()


def account(dsn: str, role: str) -> asyncpg.Record:
    """The owner's or platform's row of the accounts table."""
    row = asyncio.run(_fetchrow(dsn, "SELECT user_id, email, pass_hash FROM accounts WHERE role = $1", role))
    assert row is not None
    return row


def password_matches(password: str, pass_hash: str) -> bool:
    return pass_hash.startswith("$2") and bcrypt.checkpw(password.encode(), pass_hash.encode())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """GET over a real TCP connection: (status, content type, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


class Server:
    """`hatd serve` as a child process, its output in files."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.port = int(env["HATD_PORT"])
        self.stdout_path, self.stderr_path = folder / "serve.out", folder / "serve.err"
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hatd", "serve"], cwd=REPO, env=env, stdout=out, stderr=err
            )

    def output(self) -> str:
        return f"stdout:\n{self.stdout_path.read_text()}\nstderr:\n{self.stderr_path.read_text()}"

    def wait_until_serving(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"hatd serve exited with {self.process.returncode}\n{self.output()}")
            try:
                status, _, _ = get(self.port, "/publickey")
            except OSError:
                time.sleep(0.1)
                continue
            assert status == 200, self.output()
            return
        pytest.fail(f"hatd serve did not answer within {timeout} s\n{self.output()}")

    def terminate(self) -> int:
        """SIGTERM, then the exit code (within 30 s)."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


StartServer = Callable[[dict[str, str], Path], Server]


@pytest.fixture
def serve() -> Iterator[StartServer]:
    """serve(env, folder): a running `hatd serve`; killed after the test if still running."""
    started: list[Server] = []

    def start(env: dict[str, str], folder: Path) -> Server:
        server = Server(env, folder)
        started.append(server)
        server.wait_until_serving()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.kill()


def process_alive(pid: int) -> bool:
    """Whether pid is a live process (a zombie waiting to be reaped counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "zombie" not in next(line for line in status.splitlines() if line.startswith("State:"))


def log_in_and_check_token(port: int, email: str, password: str) -> str:
    """Logs in over HTTP, checks the token offline and with the HAT; returns the userId."""
    status, content_type, body = get(port, "/users/access_token", {"username": email, "password": password})
    assert (status, content_type) == (200, "application/json; charset=utf-8"), body
    login = json.loads(body)
    assert set(login) == {"accessToken", "userId"}
    assert re.fullmatch(UUID, login["userId"])

    status, content_type, pem = get(port, "/publickey")
    assert status == 200
    assert content_type.startswith("text/plain")
    claims = jwt.decode(login["accessToken"], pem.decode(), algorithms=["RS256"], issuer="hat.cli.test")
    assert claims["iss"] == "hat.cli.test"
    assert claims["sub"] == login["userId"]
    assert claims["accessScope"] == "owner"

    status, _, body = get(port, "/users/access_token/validate", {"X-Auth-Token": login["accessToken"]})
    assert (status, json.loads(body)) == (200, {"message": "Authenticated"})
    user_id: str = login["userId"]
    return user_id


def assert_login_refused(port: int, email: str, password: str) -> None:
    status, _, body = get(port, "/users/access_token", {"username": email, "password": password})
    assert (status, json.loads(body)) == (
        401,
        {"message": "The supplied authentication is invalid", "cause": "Wrong username or password"},
    )


def test_help_names_the_commands_and_the_settings(tmp_path: Path) -> None:
    env = hatd_env(tmp_path)

    top = hatd("--help", env=env)

    assert (top.returncode, top.stderr) == (0, "")
    assert top.stdout.startswith("usage: hatd ")
    words = ("serve", "migrate", "create-owner", "set-password", "provision", "HATD_DATABASE_URL", "HATD_DATA_DIR")
    for word in (*words, "HATD_EMBEDDED_DATABASE"):
        assert word in top.stdout

    serve = hatd("serve", "--help", env=env)

    assert (serve.returncode, serve.stderr) == (0, "")
    assert serve.stdout.startswith("usage: hatd serve")
    text = " ".join(serve.stdout.split())
    assert "Start the HTTP server." in text
    assert "Without HATD_DATABASE_URL it starts the embedded PostgreSQL under HATD_DATA_DIR" in text

    reset = hatd("set-password", "--help", env=env)

    assert (reset.returncode, reset.stderr) == (0, "")
    assert reset.stdout.startswith("usage: hatd set-password [-h] [--password-stdin] ACCOUNT")
    text = " ".join(reset.stdout.split())
    assert "ACCOUNT is owner, platform, or any account's email (in any case) or name" in text


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        ({}, "hatd serving http://127.0.0.1:8080 — your pages: http://127.0.0.1:8080/owner"),
        (
            {"hat_address": "https://x.example", "host": "0.0.0.0"},  # noqa: S104
            "hatd serving https://x.example (listening on 0.0.0.0:8080) — your pages: https://x.example/owner",
        ),
        ({"port": 9000}, "hatd serving http://127.0.0.1:9000 — your pages: http://127.0.0.1:9000/owner"),
    ],
)
def test_the_serving_line_says_the_address_once_and_where_the_pages_are(changes: dict[str, Any], line: str) -> None:
    assert serving_line(load(environ={}).replace(**changes)) == line


def test_a_bad_setting_exits_2_naming_it(tmp_path: Path) -> None:
    result = hatd("migrate", env=hatd_env(tmp_path, port="notanumber"))

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("hatd: bad settings: ")
    assert "port = 'notanumber' is not a valid int" in result.stderr
    assert not (tmp_path / "var").exists()


def test_migrate_applies_pending_migrations_and_status_lists_them(tmp_path: Path, database_url: str) -> None:
    env = hatd_env(tmp_path, database_url=database_url)
    names = [f"{m.version:04d}_{m.name}" for m in available_migrations()]
    assert names[0] == "0001_accounts"

    before = hatd("migrate", "--status", env=env)

    assert before.returncode == 0, before.stderr
    assert before.stdout.splitlines() == [f"pending  {name}" for name in names]

    applied = hatd("migrate", env=env)

    assert applied.returncode == 0, applied.stderr
    assert applied.stdout == f"applied {len(names)} migration(s)\n"

    after = hatd("migrate", "--status", env=env)

    assert after.returncode == 0, after.stderr
    lines = after.stdout.splitlines()
    assert len(lines) == len(names)
    for line, name in zip(lines, names, strict=True):
        assert re.fullmatch(rf"applied  {name}  \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{{4}}", line), line

    again = hatd("migrate", env=env)

    assert (again.returncode, again.stdout) == (0, "the database is up to date\n")


def test_create_owner_prints_a_generated_password_once(tmp_path: Path, database_url: str) -> None:
    env = hatd_env(tmp_path, database_url=database_url)
    assert "HATD_OWNER_PASSWORD" not in env

    first = hatd("create-owner", env=env)

    assert first.returncode == 0, first.stderr
    created = re.match(rf"Created the HAT {ISSUER}: owner {OWNER_EMAIL} \(userId ({UUID})\)\n", first.stdout)
    assert created, first.stdout
    shown = re.findall(r"^ {6}(\S+)$", first.stdout, re.MULTILINE)
    assert len(shown) == 1, first.stdout
    password = shown[0]
    assert len(password) >= 20
    assert first.stdout.count(password) == 1
    assert first.stdout.count("shown only this once") == 1
    assert password not in first.stderr

    owner = account(database_url, "owner")
    assert str(owner["user_id"]) == created[1]
    assert owner["email"] == OWNER_EMAIL
    assert password_matches(password, owner["pass_hash"])
    assert not password_matches(password + "x", owner["pass_hash"])
    assert account(database_url, "platform")["pass_hash"] == "!"

    second = hatd("create-owner", env=env)

    assert (second.returncode, second.stdout) == (0, "")
    assert password not in second.stderr
    assert account(database_url, "owner")["pass_hash"] == owner["pass_hash"]


def test_owner_settings_given_after_the_hat_exists_are_named_as_not_applied(tmp_path: Path, database_url: str) -> None:
    env = hatd_env(tmp_path, database_url=database_url, owner_password="first-password", owner_name="alice")
    assert hatd("create-owner", env=env).returncode == 0
    owner = account(database_url, "owner")

    same = hatd("create-owner", env=env)
    assert (same.returncode, same.stdout) == (0, "")
    assert "not applied" not in same.stderr, same.stderr

    changed = {**env, "HATD_OWNER_EMAIL": "new@example.com", "HATD_OWNER_PASSWORD": "second-password"}
    later = hatd("create-owner", env=changed)
    assert (later.returncode, later.stdout) == (0, "")
    (line,) = [line for line in later.stderr.splitlines() if "not applied" in line]
    assert "WARNING" in line
    assert "HATD_OWNER_EMAIL, HATD_OWNER_PASSWORD: not applied, the HAT exists" in line
    assert "hatd set-password owner" in line
    assert "second-password" not in later.stderr
    assert account(database_url, "owner") == owner


def test_set_password_reads_the_new_password_from_stdin(tmp_path: Path, database_url: str) -> None:
    env = hatd_env(tmp_path, database_url=database_url, owner_password="old-password")
    created = hatd("create-owner", env=env)
    assert created.returncode == 0, created.stderr
    owner_id = str(account(database_url, "owner")["user_id"])

    result = hatd("set-password", "owner", "--password-stdin", env=env, stdin="new-password\n")

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Set the password of the owner account ({owner_id}).\n"
    pass_hash = account(database_url, "owner")["pass_hash"]
    assert password_matches("new-password", pass_hash)
    assert not password_matches("old-password", pass_hash)


def test_set_password_before_the_hat_exists_exits_1(tmp_path: Path, database_url: str) -> None:
    env = hatd_env(tmp_path, database_url=database_url)
    assert hatd("migrate", env=env).returncode == 0

    result = hatd("set-password", "owner", "--password-stdin", env=env, stdin="new-password\n")

    assert (result.returncode, result.stdout) == (1, "")
    assert "this HAT has not been created yet: run `hatd create-owner` first" in result.stderr


def accounts(dsn: str) -> list[tuple[Any, ...]]:
    async def fetch() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(dsn)
        try:
            return [tuple(row.values()) for row in await conn.fetch("SELECT * FROM accounts ORDER BY user_id")]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_set_password_refuses_an_account_nobody_has_changing_nothing(tmp_path: Path, database_url: str) -> None:
    env = hatd_env(tmp_path, database_url=database_url, owner_password="old-password")
    assert hatd("create-owner", env=env).returncode == 0
    before = accounts(database_url)

    given = hatd("set-password", "nobody@cli.test", "--password-stdin", env=env, stdin="new-password\n")
    # Without a terminal and without --password-stdin a password would be made up and shown: not here.
    made_up = hatd("set-password", "nobody", env=env)

    for result, account in ((given, "nobody@cli.test"), (made_up, "nobody")):
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            f"hatd: no account has the email or name {account!r}: give owner, platform, or an account's email "
            "or name. Nothing was changed.\n"
        )
    assert accounts(database_url) == before


def test_set_password_by_email_closes_the_accounts_browser_sessions(tmp_path: Path, database_url: str) -> None:
    env = hatd_env(tmp_path, database_url=database_url, owner_password="old-password")
    assert hatd("create-owner", env=env).returncode == 0
    owner_id = account(database_url, "owner")["user_id"]

    async def open_session() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "INSERT INTO web_sessions (secret_hash, user_id, csrf, expires) "
                "VALUES (sha256('s'), $1, repeat('c', 32), now() + interval '1 hour')",
                owner_id,
            )
        finally:
            await conn.close()

    asyncio.run(open_session())

    result = hatd("set-password", OWNER_EMAIL.upper(), "--password-stdin", env=env, stdin="new-password\n")

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Set the password of the owner account {OWNER_EMAIL.upper()} ({owner_id}).\n"
    assert password_matches("new-password", account(database_url, "owner")["pass_hash"])
    assert asyncio.run(_fetchrow(database_url, "SELECT count(*) FROM web_sessions"))[0] == 0  # type: ignore[index]


@pytest.mark.slow
def test_serve_answers_over_http_and_exits_0_on_sigterm(tmp_path: Path, database_url: str, serve: StartServer) -> None:
    port = free_port()
    env = hatd_env(
        tmp_path, database_url=database_url, host="127.0.0.1", port=str(port), owner_password="served-password"
    )

    server = serve(env, tmp_path)

    user_id = log_in_and_check_token(port, OWNER_EMAIL, "served-password")
    assert user_id == str(account(database_url, "owner")["user_id"])
    assert_login_refused(port, OWNER_EMAIL, "wrong-password")

    assert server.terminate() == 0, server.output()
    stdout = server.stdout_path.read_text()
    assert f"Created the HAT {ISSUER}: owner {OWNER_EMAIL} (userId {user_id})" in stdout
    assert f"hatd serving {ISSUER} (listening on 127.0.0.1:{port}) — your pages: {ISSUER}/owner\n" in stdout
    # `make run` puts no hatd on the PATH: the line after names one that works from here.
    (command,) = re.findall(r"^Other commands: (.+) --help$", stdout, re.MULTILINE)
    assert command.endswith("hatd")
    helped = subprocess.run([*shlex.split(command), "--help"], cwd=REPO, env=env, capture_output=True, text=True)
    assert helped.returncode == 0 and "usage: hatd" in helped.stdout, helped.stderr
    with pytest.raises(OSError):
        get(port, "/publickey")


@pytest.mark.slow
def test_an_export_from_another_shell_names_the_hat_by_the_address_it_is_served_at(
    tmp_path: Path, database_url: str, serve: StartServer
) -> None:
    """`hatd serve` on a port of its own, and `hatd export` from a shell with none of its settings
    but the database: the export names the HAT as served, not by the default 127.0.0.1:8080."""
    port = free_port()
    served_env = hatd_env(tmp_path, database_url=database_url, host="127.0.0.1", port=str(port))
    del served_env["HATD_HAT_ADDRESS"]
    other_shell = hatd_env(tmp_path, database_url=database_url)
    del other_shell["HATD_HAT_ADDRESS"]
    address = f"http://127.0.0.1:{port}"

    assert hatd("create-owner", env=other_shell).returncode == 0
    before = hatd("export", str(tmp_path / "before.jsonl"), env=other_shell)  # never served yet
    assert before.returncode == 0, before.stderr
    assert json.loads((tmp_path / "before.jsonl").read_text().splitlines()[0])["hat"] == "http://127.0.0.1:8080"

    server = serve(served_env, tmp_path)
    exported = hatd("export", str(tmp_path / "hat.jsonl"), env=other_shell)
    assert exported.returncode == 0, exported.stderr
    assert f"of the HAT {address} to" in exported.stdout
    assert json.loads((tmp_path / "hat.jsonl").read_text().splitlines()[0])["hat"] == address
    assert server.terminate() == 0, server.output()

    # HATD_HAT_ADDRESS, when given, still says which address the HAT has.
    named = hatd("export", str(tmp_path / "named.jsonl"), env={**other_shell, "HATD_HAT_ADDRESS": ISSUER})
    assert named.returncode == 0, named.stderr
    assert json.loads((tmp_path / "named.jsonl").read_text().splitlines()[0])["hat"] == ISSUER


@pytest.mark.slow
def test_on_the_embedded_server_an_export_from_another_shell_leaves_the_served_address_alone(
    tmp_path: Path, data_dir: Path, serve: StartServer
) -> None:
    """`make run` on a port of its own, then `hatd export` from a shell that gives only the data
    folder: the export names the HAT as served, and the address provisioning keeps for this HAT
    stays the served one (the export does not record 127.0.0.1:8080 over it)."""
    port = free_port()
    served_env = hatd_env(tmp_path, data_dir=str(data_dir), host="127.0.0.1", port=str(port))
    del served_env["HATD_HAT_ADDRESS"]
    other_shell = hatd_env(tmp_path, data_dir=str(data_dir))
    del other_shell["HATD_HAT_ADDRESS"]

    server = serve(served_env, tmp_path)
    exported = hatd("export", str(tmp_path / "hat.jsonl"), env=other_shell)
    assert exported.returncode == 0, exported.stderr
    assert json.loads((tmp_path / "hat.jsonl").read_text().splitlines()[0])["hat"] == f"http://127.0.0.1:{port}"
    assert server.terminate() == 0, server.output()

    embedded = EmbeddedPostgres(data_dir)
    embedded.start()
    try:
        assert asyncio.run(recorded_address(embedded.dsn(), "hatd")) == f"127.0.0.1:{port}"
    finally:
        embedded.stop()


@pytest.mark.slow
def test_serve_after_set_password_takes_the_new_password_only(
    tmp_path: Path, database_url: str, serve: StartServer
) -> None:
    port = free_port()
    env = hatd_env(tmp_path, database_url=database_url, host="127.0.0.1", port=str(port), owner_password="first")
    assert hatd("create-owner", env=env).returncode == 0
    assert hatd("set-password", "owner", "--password-stdin", env=env, stdin="second\n").returncode == 0

    server = serve(env, tmp_path)

    log_in_and_check_token(port, OWNER_EMAIL, "second")
    assert_login_refused(port, OWNER_EMAIL, "first")
    assert server.terminate() == 0, server.output()


@pytest.mark.slow
def test_serve_without_a_database_url_runs_and_stops_the_embedded_server(
    tmp_path: Path, data_dir: Path, serve: StartServer
) -> None:
    port = free_port()
    env = hatd_env(tmp_path, data_dir=str(data_dir), host="127.0.0.1", port=str(port), owner_password="embedded")
    assert "HATD_DATABASE_URL" not in env

    server = serve(env, tmp_path)

    pidfile = data_dir / "postgres" / "postmaster.pid"
    assert pidfile.exists(), server.output()
    postmaster = int(pidfile.read_text().splitlines()[0])
    assert process_alive(postmaster)
    log_in_and_check_token(port, OWNER_EMAIL, "embedded")

    assert server.terminate() == 0, server.output()
    assert not pidfile.exists(), server.output()
    deadline = time.monotonic() + 10
    while process_alive(postmaster) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(postmaster)
    assert "embedded PostgreSQL stopped" in server.stderr_path.read_text()
